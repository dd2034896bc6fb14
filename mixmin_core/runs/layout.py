"""Where a run keeps its files, so that pipelines write and the app reads the same paths.

    runs/<run_id>/config.json                           resolved config (written first)
    runs/<run_id>/results.csv                           one row per trial x target x variant x method x metric
    runs/<run_id>/summary.csv                           mean, 95% CI over trials, p vs MixMin, compute
    runs/<run_id>/sources.csv                           optional: source, title, category, ...
    runs/<run_id>/proxy_outputs/<problem>.npz|.json     ProxyOutputs on a target's fit split
    runs/<run_id>/mixtures/<problem>__<method>.json     MixtureResult.to_dict()
    runs/<run_id>/topk/<problem>.json                   top sources with metadata and intervals
    runs/<run_id>/logs/                                 job logs

``<problem>`` is ``<target>__trial<k>`` or ``<target>__<variant>__trial<k>`` (e.g. a
source-count sweep variant ``sources-100``). Names are made filesystem-safe.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mixmin_core.errors import InputError
from mixmin_core.runs.fileio import atomic_path
from mixmin_core.solver.results import OVERALL

#: Columns every pipeline's ``results.csv`` has (extra columns may follow).
RESULT_COLUMNS = ("trial", "target", "variant", "method", "metric", "value", "proxy_compute", "final_compute")
#: Columns every ``summary.csv`` has (improvement over a reference and extra columns may follow).
SUMMARY_COLUMNS = ("target", "variant", "method", "metric", "mean", "ci_low", "ci_high", "n_trials",
                   "proxy_compute", "final_compute", "p_vs_mixmin")

_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def safe_name(name: str) -> str:
    return _SAFE.sub("-", str(name))


#: Target names the reports keep for themselves (the mean over targets).
RESERVED_TARGETS = (OVERALL,)


def check_target_names(names, what: str) -> None:
    """An InputError unless each name gets a problem key of its own: none reserved, none holding ``__`` (the
    key's separator), and no two alike once :func:`safe_name` has made them file names (``ER α`` and ``ER-α``
    both become ``ER--``: one's files would overwrite the other's)."""
    names = [str(n) for n in names]
    reserved = [n for n in names if n in RESERVED_TARGETS]
    if reserved:
        raise InputError(f"{what}: {reserved[0]!r} is the name the reports give the mean over targets; rename it.")
    split = [n for n in names if "__" in n]
    if split:
        raise InputError(f"{what}: {split[0]!r} holds '__', which separates the parts of a problem's file names; "
                         "rename it (e.g. with a single '_').")
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(safe_name(name), name)
        if other != name:
            raise InputError(f"{what}: {other!r} and {name!r} would share files ({safe_name(name)!r}: characters other "
                             "than letters, digits and . _ + - become '-'); rename one of them.")


@dataclass(frozen=True)
class Problem:
    """One (target, variant, trial) mixture problem within a run."""

    target: str
    trial: int
    variant: str = ""

    @property
    def key(self) -> str:
        parts = [safe_name(self.target)] + ([safe_name(self.variant)] if self.variant else []) + [f"trial{self.trial}"]
        return "__".join(parts)

    @classmethod
    def from_key(cls, key: str) -> Problem:
        """The problem a key names; ValueError for anything but ``TARGET[__VARIANT]__trialN``."""
        parts = key.split("__")
        if not 2 <= len(parts) <= 3 or not parts[-1].startswith("trial") or not parts[0]:
            raise ValueError(f"not a problem key: {key!r}")
        trial = int(parts[-1].removeprefix("trial"))
        return cls(parts[0], trial, parts[1] if len(parts) == 3 else "")


def budget_variant(budget: float) -> str:
    """The variant name of one proxy budget of a compute sweep, e.g. ``budget-0.05``."""
    return f"budget-{float(budget):g}"


def outputs_path(run_dir: Path, problem: Problem) -> Path:
    return Path(run_dir) / "proxy_outputs" / problem.key


def mixture_path(run_dir: Path, problem: Problem, method: str) -> Path:
    return Path(run_dir) / "mixtures" / f"{problem.key}__{safe_name(method)}.json"


def topk_path(run_dir: Path, problem: Problem) -> Path:
    return Path(run_dir) / "topk" / f"{problem.key}.json"


def sources_path(run_dir: Path) -> Path:
    return Path(run_dir) / "sources.csv"


def list_problems(run_dir: Path) -> list[Problem]:
    """Problems whose proxy outputs exist in ``run_dir`` (sorted by target, variant, trial)."""
    folder = Path(run_dir) / "proxy_outputs"
    return _problems(run_dir, (path.stem for path in folder.glob("*.json")) if folder.exists() else ())


def _problems(run_dir: Path, keys) -> list[Problem]:
    """The problems of file ``keys``, each with its target's real name (a key holds :func:`safe_name`'s form:
    SIDER's 'Hepatobiliary disorders' is 'Hepatobiliary-disorders' there, which no results row or config knows)."""
    names = target_names(run_dir)
    probs = set()
    for key in keys:
        try:
            probs.add(run_problem(run_dir, key, names))
        except ValueError:  # not a problem's file (or a run from before names with '__' were refused)
            continue
    return sorted(probs, key=lambda p: (p.target, p.variant, p.trial))


def run_problem(run_dir: Path, key: str, names: dict | None = None) -> Problem:
    """The problem of run ``run_dir`` that ``key`` names, with its target's real name (``names``: the run's
    :func:`target_names`, if already read); ValueError for anything but a problem key."""
    p = Problem.from_key(key)
    names = target_names(run_dir) if names is None else names
    return Problem(names.get(p.target, p.target), p.trial, p.variant)


def target_names(run_dir: Path) -> dict[str, str]:
    """``{safe_name(target): target}`` for the targets a run's ``config.json`` and ``dataset.json`` name (a
    target is a name, or a mapping with a ``name``, as an LM target is)."""
    import json

    names = {}
    for file in ("config.json", "dataset.json"):
        try:
            targets = json.loads((Path(run_dir) / file).read_text(encoding="utf-8")).get("targets")
        except (OSError, ValueError, AttributeError):
            continue
        for t in targets if isinstance(targets, list) else ():
            name = t.get("name") if isinstance(t, dict) else t
            if isinstance(name, (str, int)):
                names[safe_name(name)] = str(name)
    return names


def mixture_problems(run_dir: Path) -> list[Problem]:
    """Problems with a saved mixture in ``run_dir`` (a run on published run tables has no proxy outputs), sorted
    as :func:`list_problems`."""
    folder = Path(run_dir) / "mixtures"
    return _problems(run_dir, (path.stem.rsplit("__", 1)[0] for path in folder.glob("*__*.json"))
                     if folder.exists() else ())


def list_mixtures(run_dir: Path, problem: Problem) -> dict[str, Path]:
    """``{method: path}`` of the mixtures saved for ``problem``."""
    folder = Path(run_dir) / "mixtures"
    prefix = problem.key + "__"
    return {p.stem[len(prefix):]: p for p in sorted(folder.glob(prefix + "*.json"))
            if "__" not in p.stem[len(prefix):]}


def results_path(run_dir: Path) -> Path:
    return Path(run_dir) / "results.csv"


def summary_path(run_dir: Path) -> Path:
    return Path(run_dir) / "summary.csv"


def _write_frame(path: Path, frame, first: tuple) -> None:
    missing = [c for c in first if c not in frame.columns]
    if missing:
        raise ValueError(f"{path.name}: columns {missing} missing; every run writes {list(first)}.")
    frame = frame[list(first) + [c for c in frame.columns if c not in first]]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _read_frame(path: Path, columns: tuple):
    import pandas as pd

    if not path.exists():
        return pd.DataFrame(columns=list(columns))
    try:
        frame = pd.read_csv(path, dtype={"target": str, "variant": str, "method": str, "metric": str},
                            keep_default_na=False, na_values=[""])
    except (UnicodeDecodeError, ValueError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise InputError(f"{path}: cannot read it as CSV ({type(exc).__name__}: {str(exc)[:200]}); "
                         "the run writes it again when its job runs again.") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: columns {missing} missing; every run writes {list(columns)}.")
    return frame


def write_results(run_dir: Path, frame) -> None:
    """``results.csv``: one row per (trial, target, variant, method, metric)."""
    _write_frame(results_path(run_dir), frame.fillna({"variant": ""}), RESULT_COLUMNS)


def read_results(run_dir: Path):
    """The run's ``results.csv`` as a DataFrame (empty, with the contract's columns, if none yet)."""
    frame = _read_frame(results_path(run_dir), RESULT_COLUMNS)
    return frame.fillna({"variant": ""}) if len(frame) else frame


def write_summary(run_dir: Path, frame) -> None:
    """``summary.csv``: one row per (target incl. ``overall``, variant, method, metric)."""
    _write_frame(summary_path(run_dir), frame.fillna({"variant": ""}), SUMMARY_COLUMNS)


def read_summary(run_dir: Path):
    frame = _read_frame(summary_path(run_dir), SUMMARY_COLUMNS)
    return frame.fillna({"variant": ""}) if len(frame) else frame


def write_sources(run_dir: Path, frame) -> None:
    """``sources.csv`` (quoted CSV): ``source, title, category`` first, then any facts per source."""
    for col in ("title", "category"):
        if col not in frame.columns:
            frame = frame.assign(**{col: frame["source"] if col == "title" else ""})
    _write_frame(sources_path(run_dir), frame, ("source", "title", "category"))


def read_sources(run_dir: Path):
    """``source, title, category, ...`` of the run's sources (an empty frame when there is no sources.csv)."""
    import pandas as pd

    path = sources_path(run_dir)
    if not path.exists():
        return pd.DataFrame(columns=["source", "title", "category"])
    try:
        frame = pd.read_csv(path, dtype={"source": str, "title": str, "category": str}, keep_default_na=False,
                            na_values=[""])  # a source named NA or null is a name, not a missing value
    except (UnicodeDecodeError, ValueError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise InputError(f"{path}: cannot read it as CSV ({type(exc).__name__}: {str(exc)[:200]}); the run writes it "
                         "again when its job runs again.") from None
    if "source" not in frame.columns:
        raise InputError(f"{path}: no 'source' column; every run writes source, title, category.")
    return frame.fillna({"title": "", "category": ""})


_SWEEP = re.compile(r"^(sources|compute|budget)[-=:_]?([0-9.]+|all)(pct|%)?$", re.IGNORECASE)


def sweep_point(variant: str) -> tuple[str, float] | None:
    """Where a variant sits on a sweep axis: ``("sources", n)`` for ``sources-10`` (``inf`` for
    ``sources-all``), ``("compute", fraction)`` for ``budget-0.05`` or ``compute-5pct``; None for a
    variant that is not a sweep point. The one place that parses variant names."""
    m = _SWEEP.match(str(variant))
    if not m:
        return None
    kind = "sources" if m.group(1).lower() == "sources" else "compute"
    if m.group(2) == "all":
        return kind, float("inf")
    return kind, float(m.group(2)) / (100 if m.group(3) else 1)


_STAGE = re.compile(r"^(rung|v)(\d+)$")


def stage(variant: str) -> int | None:
    """The index of a stage that grows towards the run's result: ``rung2`` of a compute ladder (its largest
    rung is the full budget), ``v4`` of an evolving source set (its last version is the current one); None
    for any other variant."""
    m = _STAGE.match(str(variant))
    return int(m.group(2)) if m else None


def answer_outputs_path(run_dir: Path, problem: Problem) -> Path:
    """LM choice targets: ProxyOutputs of the answer given the question (the predictive objective)."""
    return Path(run_dir) / "proxy_outputs_answer" / problem.key


def cross_task_path(run_dir: Path) -> Path:
    """LM: each target's MixMin model evaluated on every other target (``cross_task.json``)."""
    return Path(run_dir) / "cross_task.json"
