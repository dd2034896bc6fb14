"""Evolving source sets on chemistry (Olmix's setting): sources are added, removed, split and revised.

Version 0 is the ``initial`` source list; each entry of ``updates`` ({add|remove|split|revise: ...},
see :mod:`mixmin_core.chem.evolve`) makes the next version. A version trains only the proxies of new
or changed sources (the rest come from the store's content-addressed proxy cache), solves MixMin
warm from the previous weights and trains one final model. Writes ``evolve.json`` (what the app's
Beyond page reads), ``results.csv`` and ``summary.csv``.
"""
from __future__ import annotations

from dataclasses import dataclass

from jobs.config import MAX_TREES, setting
from mixmin_core.chem import data as chemdata
from mixmin_core.chem.evolve import (
    SOLVE_TOL,
    UPDATE_KINDS,
    build_versions,
    check_caps,
    evolve,
    result_rows,
    save_members,
)
from mixmin_core.chem.experiment import (
    VALIDATE_PARSE_MOLECULES,
    load_metadata,
    load_table,
    parsed_molecules,
)
from mixmin_core.chem.workspace import ChemWorkspace, check_target
from mixmin_core.engine.report import write_report
from mixmin_core.errors import ConfigError
from mixmin_core.runs.fileio import write_json
from mixmin_core.runs.runner import RunContext

from ._chem_base import ChemBeyondConfig, check_assays, default_said


@dataclass
class ChemEvolveConfig(ChemBeyondConfig):
    target: str = setting("APR_HepG2_CellLoss_72h_dn")
    initial: int | list[str] = setting(40, min=1, doc="assay names, or N = the first N informative non-target assays")
    updates: list[dict] = setting([], doc="ordered, each {add|remove|split|revise: ...}")
    revise_fraction: float = setting(0.2, gt=0, lt=1, doc="share of a revised source's molecules its new release drops")
    caps: float | dict | None = setting(None, gt=0, max=1, doc="max weight per source: a number or {source or assay: cap}")
    prior_strength: float = setting(0.0, min=0, max=1e6, doc="KL pull towards the natural mixture (0 = plain MixMin)")
    proxy_trees: int = setting(20, min=1, max=MAX_TREES)

    def __post_init__(self):
        super().__post_init__()
        if not self.target:
            raise ConfigError(f"target: must be an assay name; got {self.target!r}.")
        check_assays("initial", self.initial)
        for i, upd in enumerate(self.updates):
            if len(upd) != 1 or next(iter(upd)) not in UPDATE_KINDS:
                raise ConfigError(f"updates[{i}]: must be a mapping with exactly one key out of {list(UPDATE_KINDS)}, "
                                  f"e.g. {{add: [ASSAY]}} or {{split: ASSAY}}; got {upd!r}.")
            kind, value = next(iter(upd.items()))
            check_assays(f"updates[{i}].{kind}", [value] if isinstance(value, str) else value, count=kind == "add")
        if isinstance(self.caps, dict) and not (self.caps and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 for v in self.caps.values())):
            raise ConfigError(f"caps: must be a number in (0, 1] or a non-empty mapping {{source or assay: cap in "
                              f"(0, 1]}}; got {self.caps!r}.")


CONFIG = ChemEvolveConfig


def dataset(config: ChemEvolveConfig) -> str:
    return f"{config.path or config.dataset} (chemistry, evolving sources, target {config.target})"


def validate(config: ChemEvolveConfig) -> None:
    """Read the table (parsing its molecules, up to VALIDATE_PARSE_MOLECULES) and replay the updates (assay names,
    caps) before any run folder exists."""
    _checked_versions(config, load_table(config.data), limit=VALIDATE_PARSE_MOLECULES)
    load_metadata(config.data)


def _checked_versions(config: ChemEvolveConfig, table, limit: int | None = None):
    """The versions, without molecules RDKit cannot parse; the target checked among the parsed ones."""
    valid = parsed_molecules(table, limit=limit)
    informative, _ = chemdata.informative_assays(table, valid)
    with default_said(config, "target"):
        check_target(table, config.target, informative, valid)
    versions = build_versions(table, informative, target=config.target, initial=config.initial,
                              updates=config.updates, revise_fraction=config.revise_fraction, seed=config.seed,
                              valid=valid)
    check_caps(config.caps, versions)
    return versions


def run(config: ChemEvolveConfig, ctx: RunContext) -> dict:
    table = load_table(config.data)
    versions = _checked_versions(config, table)  # the features unit below reads the same fingerprint cache
    sources = {n: s.assay for v in versions for n, s in v.sources.items()}
    ws = ChemWorkspace(ctx, table, assays=[*sources.values(), config.target], seed=config.seed, device=config.device,
                       proxy_depth=config.proxy_depth, n_jobs=config.xgb_threads)
    ws.write_sources(sources, load_metadata(config.data))
    save_members(ctx.path("sources", "members.npz"), versions)
    records = evolve(ws, versions, target=config.target, proxy_trees=config.proxy_trees,
                     final_trees=config.final_trees, final_depth=config.final_depth,
                     max_final_rows=config.max_final_rows, caps=config.caps, step_size=config.step_size,
                     max_iter=config.max_iter, prior_strength=config.prior_strength)
    write_json(ctx.path("evolve.json"), {
        "target": config.target, "dataset": config.path or config.dataset, "proxy_trees": config.proxy_trees,
        "caps": config.caps, "prior_strength": config.prior_strength, "tol": SOLVE_TOL, "versions": records})
    write_report(ctx.run_dir, result_rows(config.target, records))
    return {"versions": [{"variant": r["variant"], "n_sources": r["n_sources"], "ap": r["ap"],
                          "trained": len(r["trained"]), "reused": len(r["reused"]),
                          "saved_fraction": round(r["compute"]["saved_fraction"], 4),
                          "l1_change": None if r["mixture_change"] is None else round(r["mixture_change"]["l1"], 4)}
                         for r in records]}
