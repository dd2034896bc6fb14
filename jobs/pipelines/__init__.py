"""Pipeline registry: a config's ``pipeline`` key names a module here.

Each module defines ``CONFIG`` (its ``<Name>Config`` dataclass), ``run(config, ctx) -> dict``
(the run summary) and optionally ``validate(config)`` (checks inputs before a run is created,
so bad input never leaves a half-written run) and ``dataset(config) -> str``.
"""
from __future__ import annotations

import importlib

from mixmin_core.errors import ConfigError

PIPELINES = {
    "synthetic": "jobs.pipelines.synthetic",
    "chem": "jobs.pipelines.chem",
    "lm": "jobs.pipelines.lm",
    "run_table": "jobs.pipelines.run_table",
    "chem_evolve": "jobs.pipelines.chem_evolve",
    "chem_ladder": "jobs.pipelines.chem_ladder",
}


def load_pipeline(name: str):
    if name not in PIPELINES:
        raise ConfigError(f"pipeline must be one of {sorted(PIPELINES)}; got {name!r}.")
    return importlib.import_module(PIPELINES[name])
