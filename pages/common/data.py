"""Run store access and cached loaders shared by the pages (not a page itself).

Loaders are ``st.cache_data`` functions keyed on a file path and its modification time, so a
file rewritten by a running job is read again and an unchanged one is never re-read.
A "problem" the Solver page solves is named by a string id:

    example                      the built-in problem with known true weights
    upload:<path>                proxy outputs uploaded on the Upload page (saved in the store)
    run:<run_id>:<problem key>   a run's saved proxy outputs (see mixmin_core.runs.layout)
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import streamlit as st
from threadpoolctl import ThreadpoolController

from mixmin_core import ProxyOutputs, bootstrap_weights, mixmin
from mixmin_core.errors import InputError
from mixmin_core.runs import layout
from mixmin_core.runs.fileio import read_json
from mixmin_core.runs.store import RunStore, default_home
from mixmin_core.search.swarm import WEAK_SPEARMAN
from mixmin_core.solver.kernels import HALF_SUPPORTED
from mixmin_core.solver.results import is_diagnostic
from mixmin_core.solver.synthetic import example_problem
from pages.common import figures
from pages.common.access import read_only, shown

EXAMPLE = "example"


def store() -> RunStore:
    """The run store at ``MIXMIN_HOME`` (one object per root: opening it writes the catalog schema; read-only,
    it is opened for reading and nothing is created)."""
    return _store(str(default_home()), read_only())


@st.cache_resource(max_entries=8, show_spinner=False)
def _store(root: str, read_only: bool) -> RunStore:
    return RunStore(root, read_only=read_only)


def mtime(path) -> float:
    path = Path(path)
    return path.stat().st_mtime if path.exists() else 0.0


def catalog_stamp(st_: RunStore) -> tuple:
    """Changes whenever the catalog is written (database or its WAL file)."""
    return tuple(mtime(st_.db_path.with_name(st_.db_path.name + suffix)) for suffix in ("", "-wal"))


@st.cache_resource(max_entries=8, show_spinner=False)
def load_outputs_file(path: str, npz_mtime: float, json_mtime: float) -> ProxyOutputs:
    """One shared, read-only ProxyOutputs per file version (``cache_resource``: a cache hit costs no copy
    of the matrix, which ``cache_data`` would unpickle on every rerun)."""
    return ProxyOutputs.load(path)


@st.cache_data(max_entries=4, show_spinner=False)
def load_example() -> tuple[ProxyOutputs, np.ndarray]:
    return example_problem()


class ProblemRef(NamedTuple):
    """A problem id taken apart (see the module docstring)."""

    kind: str  # "run", "upload", or the id itself (e.g. "example")
    run_id: str = ""  # a run problem's run
    key: str = ""  # a run problem's key (layout.Problem.key)
    path: str = ""  # an upload's saved path (without extension)


def parse_problem(problem_id: str) -> ProblemRef:
    kind, _, rest = str(problem_id).partition(":")
    if kind == "run":
        run_id, _, key = rest.partition(":")
        return ProblemRef("run", run_id=run_id, key=key)
    return ProblemRef("upload", path=rest) if kind == "upload" else ProblemRef(str(problem_id))


def run_problem_id(run_id: str, key: str) -> str:
    return f"run:{run_id}:{key}"


def upload_problem_id(path) -> str:
    return f"upload:{path}"


def problem_path(problem_id: str) -> Path | None:
    """The saved proxy-outputs path (without extension) behind ``problem_id`` (None for the example)."""
    if problem_id == EXAMPLE:
        return None
    ref = parse_problem(problem_id)
    if ref.kind == "upload":
        return Path(ref.path)
    if ref.kind == "run":
        return layout.outputs_path(store().run_dir(ref.run_id), layout.Problem.from_key(ref.key))
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
    """MixMin on the named problem (cached per problem version and solver settings): the result without its
    trajectory, and what the trajectory figure draws of it (:class:`figures.Trajectory`; a result kept whole held
    400 MB per setting for a 100,000-source upload at 1,000 iterations).

    ``max_weight`` < 1 caps every source's weight; ``prior_strength`` > 0 pulls towards the natural
    (or uniform) weights with a KL term.
    """
    outputs = load_problem(problem_id)
    caps = _caps(outputs, max_weight)
    # One BLAS thread: in the server, BLAS's spinning helper threads fight the server's threads and the
    # browser for the cores (a 616 x 1,107 solve took 0.13-0.7 s there, 0.03-0.06 s with one thread).
    # Large problems take the solver's own threads (mixmin_core.solver.kernels), which this leaves alone.
    with _blas().limit(limits=1, user_api="blas"):
        result = mixmin(outputs, step_size=float(step_size), max_iter=int(max_iter), init=init, caps=caps,
                        prior_strength=float(prior_strength), storage=live_storage(outputs))
    return dataclasses.replace(result, trajectory=None), figures.Trajectory.of(result)


def storage_note(result) -> None:
    """Say so under a live solve that read a float16 copy of the matrix (:func:`live_storage`)."""
    if result.meta.get("storage") == "float16":
        st.caption("Solved live on a float16 copy of this large matrix (float32 arithmetic; half the bytes read per "
                   "iteration): the weights are within about 1e-4 (L1) of a float32 solve's. The Solver page's "
                   "download records it; a run's own mixtures (Compare, Assays) are float32 solves.")


def live_storage(outputs: ProxyOutputs) -> str:
    """How a live solve stores the solver's copy of the matrix: float16 for probabilities (``binary``), where the
    CPU converts it in hardware. It applies only to a large many-source matrix (``result.meta["storage"]`` says
    what was used) and reads half the bytes per iteration there: a 1,328 x 20,000 step-size move took 0.43 s in
    the browser, 0.28-0.31 s with it (``benchmarks/app_browser.py``); the weights stay within 1e-4 (L1) of float32's
    (``benchmarks/solver.py``). Other kinds keep float32: float16 holds an unbounded value to 3 digits."""
    return "float16" if outputs.kind == "binary" and HALF_SUPPORTED else "float32"


@st.cache_resource(show_spinner=False)
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, found once (finding them takes milliseconds; limiting, microseconds)."""
    return ThreadpoolController()


def _caps(outputs, max_weight: float):
    """Every source capped at ``max_weight`` (None at 1), or an InputError when no mixture fits under it."""
    if max_weight * outputs.n_sources < 1:
        raise InputError(f"Max weight per source {max_weight!r} x {outputs.n_sources} sources < 1: no mixture fits "
                         f"under it (the weights sum to 1). Set it to at least {math.ceil(100 / outputs.n_sources) / 100:g}.")
    return None if max_weight >= 1 else np.full(outputs.n_sources, float(max_weight))


@st.cache_data(max_entries=32, show_spinner="Bootstrapping the weights...")
def bootstrap(problem_id: str, stamp: float, step_size: float, max_iter: int, init: str, n_boot: int,
              max_weight: float = 1.0, prior_strength: float = 0.0):
    """95% intervals of the weights :func:`solve` gives with the same settings (caps and pull included), and the
    share of resamples that converged."""
    outputs = load_problem(problem_id)
    b = bootstrap_weights(outputs, n_boot=int(n_boot), step_size=float(step_size), max_iter=int(max_iter),
                          init=init, caps=_caps(outputs, max_weight), prior_strength=float(prior_strength))
    return b.lower, b.upper, b.converged


def main_first(variant: str) -> tuple:
    """Sort key that puts a run's main setting first: "", else the largest sweep point (all sources,
    the largest proxy budget), then the other sweep points from large to small; then stages from the
    last (a ladder's full-budget rung, an evolving set's current version) to the first; then the rest."""
    if variant == "":
        return (0, 0.0, "")
    point, stage = layout.sweep_point(variant), layout.stage(variant)
    if point:
        return (1, -point[1], variant)
    return (2, -stage, variant) if stage is not None else (3, 0.0, variant)


def setting_label(variant: str) -> str:
    return variant or "main"


def list_problem_ids(run_id: str) -> list[str]:
    problems = sorted(layout.list_problems(store().run_dir(run_id)), key=lambda p: (main_first(p.variant), p.target, p.trial))
    return [run_problem_id(run_id, p.key) for p in problems]


def list_uploads() -> list[str]:
    """The uploads saved in the store, newest first: files in its ``uploads`` folder itself (a symbolic link there,
    or an ``uploads`` folder that is one, planted by someone who could write the store, would read a file from
    anywhere)."""
    folder = store().root / "uploads"
    real = folder.resolve()
    if real.parent != store().root.resolve():  # the folder itself a link out of the store
        return []
    return [upload_problem_id(p.with_suffix('')) for p in sorted(folder.glob("*.npz"), key=mtime, reverse=True)
            if all(f.resolve().parent == real and not f.is_symlink() for f in (p, p.with_suffix(".json")))]


def delete_upload(problem_id: str) -> None:
    """Remove an upload the store keeps (its ``.npz`` and ``.json``): only one :func:`list_uploads` lists, so
    nothing outside the store's uploads folder."""
    if problem_id not in list_uploads():
        raise InputError("that upload is no longer in the run store (deleted already?); reload the page.")
    base = Path(parse_problem(problem_id).path)
    for path in (base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")):
        path.unlink(missing_ok=True)


def run_settings(problem_id: str) -> dict | None:
    """How the run solved its own MixMin mixture of a run problem (``step_size``, ``max_iter``, ``warm_start``),
    else None (the example, uploads, a run without that mixture)."""
    ref = parse_problem(problem_id)
    if ref.kind != "run":
        return None
    path = layout.mixture_path(store().run_dir(ref.run_id), layout.Problem.from_key(ref.key), "mixmin")
    return _mixture_settings(str(path), mtime(path))


@st.cache_data(max_entries=64, show_spinner=False)
def _mixture_settings(path: str, stamp: float) -> dict | None:
    try:
        meta = read_json(path).get("meta")
        step, iters = float(meta["step_size"]), meta["max_iter"]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return {"step_size": step, "max_iter": iters, "warm_start": bool(meta.get("warm_start"))} \
        if isinstance(iters, int) and iters > 0 else None


def problem_meta(problem_id: str) -> dict:
    """Where a problem came from, as the CLI's ``export`` records it: ``run`` and ``problem`` (its key), or the upload."""
    ref = parse_problem(problem_id)
    if ref.kind == "upload":
        return {"upload": Path(ref.path).name}
    if ref.kind == "run":
        return {"run": ref.run_id, "problem": ref.key}
    return {"problem": problem_id}


#: How a target's own fit split (``include_target``), a source named like the target, is shown: it is no other assay.
OWN_DATA = "(target's own data)"


def shown_names(problem_id: str, names) -> tuple:
    """``names`` as the pages show them: a run problem's target among its sources is :data:`OWN_DATA`."""
    ref = parse_problem(problem_id)
    if ref.kind != "run":
        return tuple(names)
    return own_data_names(ref.run_id, run_problem(ref.run_id, ref.key).target, names)


def own_data_names(run_id: str, target: str, names) -> tuple:
    """``names`` with ``target`` as :data:`OWN_DATA` where the run trained on it (``include_target``); elsewhere a
    source may share a target's name."""
    if not run_config(run_id).get("include_target"):
        return tuple(names)
    return tuple(OWN_DATA if n == target else n for n in names)


def problem_label(problem_id: str) -> str:
    if problem_id == EXAMPLE:
        return "built-in example (known true weights)"
    ref = parse_problem(problem_id)
    if ref.kind == "upload":  # with its objective: one file uploaded as binary and as mse differed by digest only
        sidecar = store().root / "uploads" / f"{Path(ref.path).name}.json"  # only the store's uploads are read
        kind = _upload_kind(str(sidecar), mtime(sidecar))
        return f"upload: {Path(ref.path).name}" + (f" ({kind})" if kind else "")
    prob = run_problem(ref.run_id, ref.key)
    variant = f" [{prob.variant}]" if prob.variant else ""
    return f"{prob.target}{variant} · trial {prob.trial}"


@st.cache_data(max_entries=256, show_spinner=False)
def _upload_kind(sidecar: str, _mtime: float) -> str:
    """The objective an upload's sidecar names ('' where it cannot be read: the Solver says why when it is opened)."""
    try:
        kind = read_json(sidecar).get("kind")
    except (OSError, ValueError, AttributeError):
        return ""
    return kind if kind in ("binary", "loglik", "mse") else ""


def run_problem(run_id: str, key: str) -> layout.Problem:
    """The problem ``key`` names in run ``run_id``, with its target's real name (a key holds a file-safe form)."""
    run_dir = store().run_dir(run_id)
    return layout.run_problem(run_dir, key, _target_names(str(run_dir), mtime(run_dir / "config.json"),
                                                          mtime(run_dir / "dataset.json")))


@st.cache_data(max_entries=64, show_spinner=False)
def _target_names(run_dir: str, *modified: float) -> dict:
    return layout.target_names(Path(run_dir))


@st.cache_data(max_entries=64, show_spinner=False)
def load_json(path: str, modified: float):
    return read_json(path)


def dataset_info(run_id: str) -> dict:
    """The run's ``dataset.json`` (what a chemistry run read and how it split it; which target examples an LM
    run's sources hold); ``{}`` if it has none."""
    path = store().run_dir(run_id) / "dataset.json"
    info = load_json(str(path), mtime(path)) if path.is_file() else {}
    return info if isinstance(info, dict) else {}


def _setting_mixtures(run_id: str, variant: str):
    """``(problem, method, mixture dict)`` of every mixture saved for the setting's problems."""
    for problem in (p for p in mixture_problems(run_id) if p.variant == variant):
        for method, mix in read_mixtures(run_id, problem).items():
            if isinstance(mix, dict):
                yield problem, method, mix


def weak_regressors(run_id: str, variant: str, below: float = WEAK_SPEARMAN) -> tuple[int, int]:
    """``(weak, checked)``: of the setting's RegMix mixtures whose regressor was checked on held-out runs, how many
    ranked them at a Spearman below ``below`` (their picks are little better than a draw from the prior)."""
    rhos = [mix.get("meta", {}).get("spearman") for _, method, mix in _setting_mixtures(run_id, variant)
            if method == "regmix"]
    rhos = [float(r) for r in rhos if isinstance(r, (int, float))]
    return sum(r < below for r in rhos), len(rhos)


def unconverged(run_id: str, variant: str) -> list[tuple[str, float]]:
    """``(what, gap)`` of the setting's MixMin mixtures that stopped at ``max_iter``: a problem key, or for a joint
    mixture (one solve for every target of a trial, filed under each) ``<method>, trial <k>``, once."""
    found = {}
    for problem, method, mix in _setting_mixtures(run_id, variant):
        if method.startswith("mixmin") and mix.get("status") == "max_iter":
            what = problem.key if method == "mixmin" else f"{method}, trial {problem.trial}"
            found[what] = float(mix.get("gap") if mix.get("gap") is not None else "nan")
    return list(found.items())


def clipped(run_id: str, variant: str) -> list[str]:
    """The setting's problems whose MixMin mixture ended where clipped probabilities made the loss flat (status
    ``clipped``: its gap certifies nothing)."""
    return sorted({problem.key for problem, method, mix in _setting_mixtures(run_id, variant)
                   if method.startswith("mixmin") and mix.get("status") == "clipped"})


def failed_searches(run_id: str, variant: str) -> list[tuple[str, str, str]]:
    """``(problem key, method, message)`` of the setting's mixtures other than MixMin's that report no success
    (a RegMix regressor that predicts a constant, a search whose candidates all failed): chosen arbitrarily."""
    return [(problem.key, method, str(mix.get("message") or mix.get("status") or ""))
            for problem, method, mix in _setting_mixtures(run_id, variant)
            if method != "mixmin" and mix.get("success") is False
            and not (method.startswith("mixmin") and mix.get("status") in ("max_iter", "clipped"))]  # said apart


def underspent(run_id: str, variant: str, below: float = 0.9) -> dict[str, float]:
    """``{method: measured / planned proxy compute}`` (summed over the setting's problems) of the search methods
    that measured less than ``below`` of what they were planned to spend (their runs' measured compute)."""
    spent, planned = {}, {}
    for _, method, mix in _setting_mixtures(run_id, variant):
        meta = mix.get("meta") if isinstance(mix.get("meta"), dict) else {}
        if method.startswith("mixmin"):  # planned for the search methods only (a ladder's rungs plan MixMin's own)
            continue
        if isinstance(meta.get("planned_compute"), (int, float)) and isinstance(meta.get("compute"), (int, float)):
            spent[method] = spent.get(method, 0.0) + float(meta["compute"])
            planned[method] = planned.get(method, 0.0) + float(meta["planned_compute"])
    return {m: spent[m] / planned[m] for m in planned if planned[m] > 0 and spent[m] < below * planned[m]}


def unmatched(total: pd.DataFrame, compute: str, ratio: float = 1.5) -> str:
    """The methods that spent over ``ratio`` times the proxy compute of the thriftiest method that spent any, said
    with their multiples ("" if none): RegMix on every pool run beside searches of one run per source (11x)."""
    spent = total.groupby("method")[compute].max()
    spent = spent[spent > 0]
    if spent.empty or spent.max() <= ratio * spent.min():
        return ""
    low = spent.idxmin()
    return ", ".join(f"`{m}` spent {v / spent[low]:.3g}x the proxy compute of `{low}`"
                     for m, v in spent.sort_values(ascending=False).items() if v > ratio * spent[low])


def read_mixtures(run_id: str, problem: layout.Problem) -> dict[str, dict]:
    """``{method: MixtureResult.to_dict()}`` saved for ``problem``."""
    paths = layout.list_mixtures(store().run_dir(run_id), problem)
    return {m: load_json(str(p), mtime(p)) for m, p in paths.items()}


@st.cache_data(max_entries=32, show_spinner=False)
def _read_run_file(reader: str, run_dir: str, modified: float) -> pd.DataFrame:
    return getattr(layout, reader)(Path(run_dir))


def _run_file(reader: str, path_of, run_id: str) -> pd.DataFrame:
    """``layout.<reader>`` of the run's folder, cached on the file's path and modification time."""
    run_dir = store().run_dir(run_id)
    return _read_run_file(reader, str(run_dir), mtime(path_of(run_dir)))


def results(run_id: str) -> pd.DataFrame:
    """The run's ``results.csv`` (empty, with the contract's columns, while the run has none)."""
    return _run_file("read_results", layout.results_path, run_id)


def summary(run_id: str) -> pd.DataFrame:
    """The run's ``summary.csv`` (per target and ``overall``; empty while the run has none)."""
    return _run_file("read_summary", layout.summary_path, run_id)


def source_table(run_id: str) -> pd.DataFrame:
    """``source, title, category`` for the run's sources (empty frame if the run has no sources.csv)."""
    return _run_file("read_sources", layout.sources_path, run_id)


@st.cache_data(max_entries=32, show_spinner=False)
def _run_part(run_id: str, stamp: tuple, part: str = "config") -> dict:
    """A part of the run's catalog record (its config or its summary), read once per catalog version."""
    run = store().get_run(run_id)
    return (run or {}).get(part) or {}


def run_config(run_id: str) -> dict:
    """The run's resolved config (from the catalog; ``{}`` for an unknown run)."""
    return _run_part(run_id, catalog_stamp(store()))


def max_trials(run_id: str) -> int | None:
    """The most trials the run's pipeline allows (chem_evolve and chem_ladder: 1), or None when it sets no bound
    below the schema's own."""
    from dataclasses import fields

    from jobs.pipelines import PIPELINES, load_pipeline

    name = run_config(run_id).get("pipeline")
    if name not in PIPELINES:
        return None
    bound = next((f.metadata.get("max") for f in fields(load_pipeline(name).CONFIG) if f.name == "trials"), None)
    return bound if bound is not None and bound < 3 else None


def extrapolations(frame: pd.DataFrame, column: str = "value") -> pd.Series:
    """``(method, target) ->`` how far a run-table yardstick predicts the method's mixture beyond the best run it was
    fitted on, where that exceeds the yardstick's own cross-validated error on that target (each target's own: a
    mean over targets, 0.054 beside 0.075 and 0.034, judged one against the other's error). ``column``: ``value``
    of a results frame (means over trials are taken), ``mean`` of a summary."""
    rmse = frame[frame["metric"] == "yardstick_rmse"].groupby("target")[column].mean()
    beyond = frame[(frame["metric"] == "yardstick_beyond_runs") & (frame["target"] != layout.OVERALL)].groupby(
        ["method", "target"])[column].mean()
    limit = beyond.index.get_level_values("target").map(rmse).to_numpy(dtype=float)
    return beyond[beyond.to_numpy(dtype=float) > limit].sort_values(ascending=False)


def shape_text(outputs, samples: str = "sample") -> str:
    """``5 sources × 1 sample``: the problem's size, each count with its own plural."""
    return (f"{outputs.n_sources} source{'s' * (outputs.n_sources != 1)} × {outputs.n_samples} "
            f"{samples}{'s' * (outputs.n_samples != 1)}")


def is_surrogate(metric: str) -> bool:
    """Metrics named ``surrogate:...`` are estimates from a surrogate model, not measured on a final model."""
    return str(metric).startswith("surrogate:")


#: Units of metrics whose numbers mean little without them (an LM's losses are nats of the run's own tokenizer,
#: not the bits per byte of published run tables).
METRIC_UNITS = {"generative_loss": "nats per token", "predictive_loss": "nats per token"}


def metric_label(metric: str) -> str:
    if is_surrogate(metric):
        return f"{metric} (surrogate estimate)"
    return f"{metric} ({METRIC_UNITS[metric]})" if metric in METRIC_UNITS else str(metric)


def step_text(job: dict, store_root=None) -> str:
    """What a running job is doing, or why a job stopped and how to go on (nothing for finished jobs), as a visitor
    may see it (:func:`pages.common.access.shown`: the owner's paths are not shown)."""
    status = job.get("status")
    if status == "running":
        return shown(job.get("message", ""), store_root)
    resume = f"resume with `python -m jobs resume {job.get('run_id')}`"
    if status == "died":  # where it stopped, as `jobs status` says it (it read only "died")
        return shown(f"died; last progress: {job.get('message') or 'started'}; {resume}", store_root)
    if status in ("failed", "cancelled"):
        lines = shown(job.get("error") or status, store_root).strip().splitlines()
        last = lines[-1] if lines else status
        return f"{last}; {resume}" if status == "cancelled" else last
    return ""


def true_weights(problem_id: str, outputs) -> list | None:
    """The weights that made the problem, where it has them: the built-in example's, or a synthetic run's (kept in
    its summary, by source name); None elsewhere."""
    if problem_id == EXAMPLE:
        return outputs.meta.get("true_weights")
    ref = parse_problem(problem_id)
    known = _run_part(ref.run_id, catalog_stamp(store()), "summary").get("true_weights") if ref.kind == "run" else None
    if not isinstance(known, dict) or not all(n in known for n in outputs.source_names):
        return None
    return [float(known[n]) for n in outputs.source_names]


def headline_metric(run_id: str) -> str | None:
    """The metric the run's pipeline reports first (its domain's ``headline_metric``, kept in the catalog)."""
    run = store().get_run(run_id) or {}
    metric = (run.get("summary") or {}).get("metric")
    return metric if isinstance(metric, str) else None


def metrics_by_default(frame: pd.DataFrame, headline: str | None = None) -> list[str]:
    """The metrics of a results or summary frame, the one the Compare page opens on first: comparisons first
    (scores of two or more methods, not facts about the yardstick or the table such as ``yardstick_spearman`` or
    ``best_run_loss``); among them the run's ``headline`` metric (:func:`headline_metric`), then measured before
    surrogate estimates, then the one comparing the most methods. A run-table run's headline is its yardstick's
    estimate, the one score every method has there (only the search methods measure a run)."""
    n_methods = frame.groupby("metric")["method"].nunique()
    return sorted(n_methods.index, key=lambda m: (n_methods[m] < 2 or is_diagnostic(m),
                                                  m != headline, is_surrogate(m), -n_methods[m], m))


def settings_by_default(frame: pd.DataFrame) -> list[str]:
    """The variants of a frame, main setting first (see :func:`main_first`)."""
    return sorted(frame["variant"].unique(), key=main_first)


def layout_problems(run_id: str) -> list:
    """The run's problems (``mixmin_core.runs.layout.Problem``) that have proxy outputs."""
    return layout.list_problems(store().run_dir(run_id))


def folder_gone(run_id: str) -> bool:
    return not store().run_dir(run_id).is_dir()


def gone_note(run_id: str) -> str:
    """What pages say of a run whose folder is gone: deleted (``jobs delete``) while the page was open, or by
    hand while the catalog still lists it."""
    if store().get_run(run_id) is None:
        return "This run was deleted from the run store (`python -m jobs delete`): pick another run in the sidebar."
    return ("This run's folder is gone from the run store (deleted by hand?): the catalog still lists it, but its "
            "files are not there. Run its config again to make it anew, or remove it with `python -m jobs delete`.")


def no_outputs_note(run_id: str) -> str:
    """Why a page that reads proxy outputs has nothing to show for ``run_id``."""
    if folder_gone(run_id):
        return gone_note(run_id)
    if (store().get_run(run_id) or {}).get("pipeline") == "run_table":
        return ("A run on run tables trains no proxies, so it has no proxy outputs: its methods' mixtures and scores "
                "are on the Compare page.")
    return "This run has no proxy outputs yet: they appear when its proxies have been scored."


def mixture_problems(run_id: str) -> list:
    """The run's problems that have a saved mixture (also a run-table run's, which has no proxy outputs)."""
    return layout.mixture_problems(store().run_dir(run_id))


