"""Where a run keeps its files, so that pipelines write and the app reads the same paths.

    runs/<run_id>/config.json                           resolved config (written first)
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

_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def safe_name(name: str) -> str:
    return _SAFE.sub("-", str(name))


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
        parts = key.split("__")
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
    if not folder.exists():
        return []
    probs = {Problem.from_key(p.stem) for p in folder.glob("*.json")}
    return sorted(probs, key=lambda p: (p.target, p.variant, p.trial))


def list_mixtures(run_dir: Path, problem: Problem) -> dict[str, Path]:
    """``{method: path}`` of the mixtures saved for ``problem``."""
    folder = Path(run_dir) / "mixtures"
    prefix = problem.key + "__"
    return {p.stem[len(prefix):]: p for p in sorted(folder.glob(prefix + "*.json"))
            if "__" not in p.stem[len(prefix):]}
