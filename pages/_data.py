"""Run store access and cached loaders shared by the pages (not a page itself).

Loaders are ``st.cache_data`` functions keyed on a file path and its modification time, so a
file rewritten by a running job is read again and an unchanged one is never re-read.
A "problem" the Solver page solves is named by a string id:

    example                      the built-in problem with known true weights
    upload:<path>                proxy outputs uploaded on the Upload page (saved in the store)
    run:<run_id>:<problem key>   a run's saved proxy outputs (see mixmin_core.runs.layout)
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from mixmin_core import ProxyOutputs, bootstrap_weights, mixmin
from mixmin_core.errors import InputError
from mixmin_core.runs import layout
from mixmin_core.runs.fileio import read_json
from mixmin_core.runs.store import RunStore
from mixmin_core.solver.synthetic import example_problem

EXAMPLE = "example"
LOWER_IS_BETTER = ("nll", "loss", "error", "mse", "perplexity", "l1")


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


def lower_is_better(metric: str) -> bool:
    return any(word in str(metric).lower() for word in LOWER_IS_BETTER)


def layout_problems(run_id: str) -> list:
    """The run's problems (``mixmin_core.runs.layout.Problem``) that have proxy outputs."""
    return layout.list_problems(store().run_dir(run_id))


