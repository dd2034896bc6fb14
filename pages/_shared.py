"""Cached loaders, figure builders and small widgets shared by the pages (not a page itself).

Loaders are ``st.cache_data`` functions keyed on a file path and its modification time, so a
file rewritten by a running job is read again and an unchanged one is never re-read.
A "problem" the Solver page solves is named by a string id:

    example                      the built-in problem with known true weights
    upload:<path>                proxy outputs uploaded on the Upload page (saved in the store)
    run:<run_id>:<problem key>   a run's saved proxy outputs (see mixmin_core.runs.layout)
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from mixmin_core import ProxyOutputs, bootstrap_weights, mixmin
from mixmin_core.errors import InputError, MixminError
from mixmin_core.runs import layout
from mixmin_core.runs.fileio import read_json
from mixmin_core.runs.store import RunStore
from mixmin_core.solver.synthetic import example_problem

EXAMPLE = "example"
#: The paper's Table 1 colours: cytotoxicity red, phenotypic green, protein binding/inhibition blue, other orange.
CATEGORY_COLOURS = {"cytotoxicity": "#d62728", "phenotypic": "#2ca02c", "protein": "#1f77b4", "other": "#ff7f0e"}
GREY = "rgba(150,150,150,0.35)"
HIGHLIGHT = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
METHOD_ORDER = ["mixmin", "natural", "balanced", "target_only", "ensemble", "random_search", "regmix"]
METHOD_COLOURS = {"mixmin": "#d62728", "natural": "#1f77b4", "balanced": "#aec7e8", "target_only": "#7f7f7f",
                  "ensemble": "#9467bd", "random_search": "#2ca02c", "regmix": "#ff7f0e"}
LOWER_IS_BETTER = ("nll", "loss", "error", "mse", "perplexity", "l1")


def route_through_app() -> None:
    """Make sure this page runs under app.py's router; call first in every page.

    A fresh server whose first request is a page URL (say a reload of /solver) runs that file
    directly, in Streamlit's legacy ``pages/`` mode, until some run calls ``st.navigation``. Then
    app.py has not initialised the session: switch the legacy mode off and rerun through app.py,
    which routes back to the same page.
    """
    if "app.run_id" not in st.session_state:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
        st.rerun()


# ---- errors and widgets ----------------------------------------------------------------------
@contextlib.contextmanager
def shows_errors():
    """Show a ``MixminError`` raised inside as ``st.error`` (other exceptions surface)."""
    try:
        yield
    except MixminError as exc:
        st.error(str(exc))


def keep(key: str) -> str:
    """Widget key for the persistent session-state value ``key`` (initialised in app.py).

    Widget values are dropped when the user changes page; the value is copied to ``key`` in a
    callback and restored from it, so choices survive page switches. Use as
    ``st.slider(..., key=keep("solve.step_size"), on_change=save, args=("solve.step_size",))``.
    """
    wkey = "w:" + key
    if wkey not in st.session_state and key in st.session_state:
        st.session_state[wkey] = st.session_state[key]
    return wkey


def save(key: str) -> None:
    st.session_state[key] = st.session_state["w:" + key]


def select_kept(label: str, options: list, key: str, container=st, **kwargs):
    """A selectbox whose value persists across pages (falls back to the first option)."""
    if not options:
        return None
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]
        st.session_state.pop("w:" + key, None)
    wkey = keep(key)
    if st.session_state.get(wkey) not in options:
        st.session_state[wkey] = st.session_state[key]
    return container.selectbox(label, options, key=wkey, on_change=save, args=(key,), **kwargs)


# ---- store and loaders --------------------------------------------------------------------------
def store() -> RunStore:
    return RunStore()


def mtime(path) -> float:
    path = Path(path)
    return path.stat().st_mtime if path.exists() else 0.0


def catalog_stamp(st_: RunStore) -> tuple:
    """Changes whenever the catalog is written (database or its WAL file)."""
    return tuple(mtime(st_.db_path.with_name(st_.db_path.name + suffix)) for suffix in ("", "-wal"))


@st.cache_data(max_entries=64, show_spinner=False)
def load_outputs_file(path: str, npz_mtime: float, json_mtime: float) -> ProxyOutputs:
    return ProxyOutputs.load(path)


@st.cache_data(max_entries=4, show_spinner=False)
def load_example() -> tuple[ProxyOutputs, np.ndarray]:
    return example_problem()


def problem_path(problem_id: str) -> Path | None:
    """The saved proxy-outputs path (without extension) behind ``problem_id`` (None for the example)."""
    if problem_id == EXAMPLE:
        return None
    kind, _, rest = problem_id.partition(":")
    if kind == "upload":
        return Path(rest)
    if kind == "run":
        run_id, _, key = rest.partition(":")
        return layout.outputs_path(store().run_dir(run_id), layout.Problem.from_key(key))
    raise InputError(f"problem id must be 'example', 'upload:<path>' or 'run:<run_id>:<problem>'; got {problem_id!r}.")


def load_problem(problem_id: str) -> ProxyOutputs:
    """The proxy outputs named by ``problem_id`` (cached on path and modification time)."""
    path = problem_path(problem_id)
    if path is None:
        return load_example()[0]
    npz = path.with_name(path.name + ".npz")
    return load_outputs_file(str(path), mtime(npz), mtime(path.with_name(path.name + ".json")))


def problem_stamp(problem_id: str) -> float:
    path = problem_path(problem_id)
    return 0.0 if path is None else mtime(path.with_name(path.name + ".npz"))


@st.cache_data(max_entries=256, show_spinner=False)
def solve(problem_id: str, stamp: float, step_size: float, max_iter: int, init: str,
          max_weight: float = 1.0, prior_strength: float = 0.0):
    """MixMin on the named problem (cached per problem version and solver settings).

    ``max_weight`` < 1 caps every source's weight; ``prior_strength`` > 0 pulls towards the natural
    (or uniform) weights with a KL term.
    """
    outputs = load_problem(problem_id)
    caps = None if max_weight >= 1 else np.full(outputs.n_sources, float(max_weight))
    return mixmin(outputs, step_size=float(step_size), max_iter=int(max_iter), init=init, caps=caps,
                  prior_strength=float(prior_strength))


@st.cache_data(max_entries=32, show_spinner="Bootstrapping the weights...")
def bootstrap(problem_id: str, stamp: float, step_size: float, max_iter: int, init: str, n_boot: int):
    b = bootstrap_weights(load_problem(problem_id), n_boot=int(n_boot), step_size=float(step_size),
                          max_iter=int(max_iter), init=init)
    return b.lower, b.upper


SWEEP = re.compile(r"^(sources|compute|budget)[-=:_]?([0-9.]+|all)(pct|%)?$", re.IGNORECASE)


def sweep_point(variant: str):
    """``(kind, x)`` for sweep variants such as ``sources-10``, ``sources-all``, ``budget-0.05`` or
    ``compute-5pct`` (kind ``sources`` or ``compute``; x a count, inf for all, or a budget fraction)."""
    m = SWEEP.match(str(variant))
    if not m:
        return None
    kind = "sources" if m.group(1).lower() == "sources" else "compute"
    if m.group(2) == "all":
        return kind, np.inf
    return kind, float(m.group(2)) / (100 if m.group(3) else 1)


def main_first(variant: str) -> tuple:
    """Sort key that puts a run's main setting first: "", else the largest sweep point (all sources,
    the largest proxy budget), then the other sweep points from large to small, then the rest."""
    if variant == "":
        return (0, 0.0, "")
    point = sweep_point(variant)
    return (1, -point[1], variant) if point else (2, 0.0, variant)


def list_problem_ids(run_id: str) -> list[str]:
    problems = sorted(layout.list_problems(store().run_dir(run_id)), key=lambda p: (main_first(p.variant), p.target, p.trial))
    return [f"run:{run_id}:{p.key}" for p in problems]


def list_uploads() -> list[str]:
    folder = store().root / "uploads"
    return [f"upload:{p.with_suffix('')}" for p in sorted(folder.glob("*.npz"), key=mtime, reverse=True)]


def problem_label(problem_id: str) -> str:
    if problem_id == EXAMPLE:
        return "built-in example (known true weights)"
    kind, _, rest = problem_id.partition(":")
    if kind == "upload":
        return f"upload: {Path(rest).name}"
    run_id, _, key = rest.partition(":")
    prob = layout.Problem.from_key(key)
    variant = f" [{prob.variant}]" if prob.variant else ""
    return f"{prob.target}{variant} · trial {prob.trial}"


@st.cache_data(max_entries=64, show_spinner=False)
def load_json(path: str, modified: float):
    return read_json(path)


def read_mixtures(run_id: str, problem: layout.Problem) -> dict[str, dict]:
    """``{method: MixtureResult.to_dict()}`` saved for ``problem``."""
    paths = layout.list_mixtures(store().run_dir(run_id), problem)
    return {m: load_json(str(p), mtime(p)) for m, p in paths.items()}


@st.cache_data(max_entries=32, show_spinner=False)
def load_results(run_id: str, stamp: tuple) -> pd.DataFrame:
    return store().results(run_id)


def results(run_id: str) -> pd.DataFrame:
    st_ = store()
    return load_results(run_id, catalog_stamp(st_))


@st.cache_data(max_entries=32, show_spinner=False)
def load_sources_csv(path: str, modified: float) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"source": str})


def source_table(run_id: str) -> pd.DataFrame:
    """``source, title, category`` for the run's sources (empty frame if the run has no sources.csv)."""
    path = layout.sources_path(store().run_dir(run_id))
    if not path.exists():
        return pd.DataFrame(columns=["source", "title", "category"])
    frame = load_sources_csv(str(path), mtime(path))
    for col in ("title", "category"):
        if col not in frame:
            frame[col] = ""
    return frame.fillna({"title": "", "category": ""})


def category_group(category: str) -> str:
    """The paper's Table 1 colour group of an assay category."""
    text = str(category).lower()
    if "cytotox" in text or "viability" in text:
        return "cytotoxicity"
    if "phenotypic" in text:
        return "phenotypic"
    if "protein" in text or "binding" in text or "inhibition" in text:
        return "protein"
    return "other"


def lower_is_better(metric: str) -> bool:
    return any(word in str(metric).lower() for word in LOWER_IS_BETTER)


def method_sort_key(method: str):
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


# ---- solver diagnostics and figures --------------------------------------------------------
def step_warning(losses: np.ndarray) -> str | None:
    """A warning when the loss rises or oscillates over the iterations (step size too large)."""
    losses = np.asarray(losses, dtype=np.float64)
    losses = losses[np.isfinite(losses)]
    if losses.size < 3:
        return None
    diffs = np.diff(losses)
    tol = 1e-6 * max(1.0, float(np.abs(losses).max()))
    rises = int((diffs > tol).sum())
    if rises == 0:
        return None
    signs = np.sign(diffs[np.abs(diffs) > tol])
    flips = int((signs[1:] != signs[:-1]).sum())
    shape = "oscillates" if flips >= 3 else "rises"
    return (f"The loss {shape}: it went up at {rises} of {diffs.size} iterations. "
            "The step size is too large for this problem; try a smaller one.")


def top_indices(weights: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-np.asarray(weights), kind="stable")[:k]


def trajectory_figure(result, k: int = 8) -> go.Figure:
    """Weights per iteration: the ``k`` largest final weights in colour, the rest as one grey trace."""
    traj = np.asarray(result.trajectory, dtype=np.float32)
    n_steps, n_sources = traj.shape
    top = top_indices(result.weights, k)
    rest = np.setdiff1d(np.arange(n_sources), top)
    fig = go.Figure()
    if rest.size:
        x = np.tile(np.append(np.arange(n_steps, dtype=np.float32), np.nan), rest.size)
        y = np.hstack([traj[:, rest].T, np.full((rest.size, 1), np.nan, np.float32)]).ravel()
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=GREY, width=1),
                                 name=f"other {rest.size} sources", hoverinfo="skip"))
    for rank, i in enumerate(top):
        fig.add_trace(go.Scatter(x=np.arange(n_steps), y=traj[:, i], mode="lines",
                                 line=dict(color=HIGHLIGHT[rank % len(HIGHLIGHT)], width=2.5),
                                 name=str(result.source_names[i])))
    fig.update_layout(title="Weight trajectories", xaxis_title="iteration", yaxis_title="weight",
                      height=460, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.18, font=dict(size=11)))
    return fig


def loss_gap_figure(result) -> go.Figure:
    """Loss (left axis) and Frank-Wolfe gap (right axis, log scale) per iteration."""
    it = np.arange(len(result.losses))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=it, y=result.losses, mode="lines", name="loss", line=dict(color="#1f77b4")))
    if result.gaps is not None:
        gaps = np.maximum(np.asarray(result.gaps, dtype=np.float64), 1e-12)
        fig.add_trace(go.Scatter(x=it, y=gaps, mode="lines", name="Frank–Wolfe gap", yaxis="y2",
                                 line=dict(color="#d62728", dash="dot")))
    fig.update_layout(title="Loss and Frank–Wolfe gap", xaxis_title="iteration", yaxis=dict(title="loss"),
                      yaxis2=dict(title="gap (log)", overlaying="y", side="right", type="log", showgrid=False,
                                  exponentformat="e", dtick=1),
                      height=460, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def weights_figure(names, weights, lower=None, upper=None, k: int = 20, colours=None,
                   title: str = "Final weights", true_weights=None) -> go.Figure:
    """Horizontal bars of the ``k`` largest weights, with interval whiskers and true-weight markers when given."""
    weights = np.asarray(weights, dtype=np.float64)
    top = top_indices(weights, k)[::-1]
    error = None
    if lower is not None and upper is not None:
        error = dict(type="data", symmetric=False, array=np.maximum(np.asarray(upper)[top] - weights[top], 0),
                     arrayminus=np.maximum(weights[top] - np.asarray(lower)[top], 0), color="#444")
    fig = go.Figure(go.Bar(x=weights[top], y=[str(names[i]) for i in top], orientation="h", error_x=error,
                           marker_color=None if colours is None else [colours[i] for i in top], name="weight"))
    if true_weights is not None:
        fig.add_trace(go.Scatter(x=np.asarray(true_weights)[top], y=[str(names[i]) for i in top], mode="markers",
                                 marker=dict(symbol="diamond", size=11, color="#d62728"), name="true weight"))
    fig.update_layout(showlegend=true_weights is not None, legend=dict(orientation="h", y=-0.25))
    fig.update_layout(title=title + (" (95% bootstrap intervals)" if error else ""), xaxis_title="weight",
                      height=max(260, 24 * len(top) + 90), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def solver_figures(result, k: int = 8):
    """The Solver page's figures for ``result`` (the app benchmark times this too)."""
    return trajectory_figure(result, k), loss_gap_figure(result)


def weights_table(result, lower=None, upper=None, true_weights=None) -> pd.DataFrame:
    frame = pd.DataFrame({"source": list(result.source_names), "weight": np.asarray(result.weights, np.float64)})
    if lower is not None:
        frame["ci_low"], frame["ci_high"] = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    if true_weights is not None:
        frame["true_weight"] = np.asarray(true_weights, np.float64)
    return frame.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)


def layout_problems(run_id: str) -> list:
    """The run's problems (``mixmin_core.runs.layout.Problem``) that have proxy outputs."""
    return layout.list_problems(store().run_dir(run_id))


def current_run() -> str | None:
    """The run picked in the sidebar, or None after saying how to get one."""
    run_id = st.session_state["app.run_id"]
    if not run_id:
        st.info("No runs yet. Start the ToxCast demo on the Runs page, or any experiment on the Jobs page.")
    return run_id
