"""The proxy-compute ladder on chemistry: MixMin with proxies of growing budget until the mixture is stable.

A rung is ``[row_fraction, trees]`` (see :mod:`mixmin_core.chem.ladder`): every source's proxy sees
that fraction of its fit rows with that many trees, and the rung's budget is its proxy compute as a
fraction of the final model's. Per target the ladder climbs until the L1 change of the weights (or
the loss regret) falls under ``threshold`` (``run_all``: every rung, for the whole plot). Writes
``ladder/<target>.json`` (what the app's Beyond page reads), ``ladder.json``, ``results.csv`` and
``summary.csv``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from jobs.config import MAX_TREES, setting
from mixmin_core.chem import data as chemdata
from mixmin_core.chem.experiment import (
    VALIDATE_PARSE_MOLECULES,
    load_metadata,
    load_table,
    parsed_molecules,
)
from mixmin_core.chem.ladder import climb, final_units, plan_ladder, report
from mixmin_core.chem.workspace import ChemWorkspace, check_source, check_target
from mixmin_core.engine.ladder import RULES
from mixmin_core.engine.report import write_report
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs.fileio import write_json
from mixmin_core.runs.layout import safe_name
from mixmin_core.runs.runner import RunContext

from ._chem_base import ChemBeyondConfig, check_assays, default_said


@dataclass
class ChemLadderConfig(ChemBeyondConfig):
    targets: list[str] = setting(["ACEA_T47D_80hr_Negative", "APR_HepG2_CellLoss_72h_dn", "APR_HepG2_MitoMass_24h_dn"],
                                 unique=True)
    sources: int | list[str] = setting(40, min=2, unique=True,
                                       doc="assay names, or N = the first N informative non-target assays")
    rungs: list[list[float]] = setting([[0.05, 1], [0.1, 3], [0.3, 5], [1.0, 10], [1.0, 30]],
                                       doc="[row_fraction in (0, 1], trees >= 1] per rung, growing in compute")
    threshold: float = setting(0.05, gt=0, max=1e6, doc="stop when the rule's change measure between rungs falls under this")
    rule: str = setting("l1", choices=RULES, doc="l1: L1 change of the weights | loss_regret: previous mixture's "
                                                 "extra loss / loss")
    run_all: bool = setting(False, doc="climb every rung anyway (the full weights-against-budget plot)")
    score_rungs: bool = setting(True, doc="train a final model on each climbed rung's mixture; report its test AP")

    def __post_init__(self):
        super().__post_init__()
        check_assays("targets", self.targets, count=False)
        check_assays("sources", self.sources)
        if not 2 <= len(self.rungs) <= 50 or not all(
                len(r) == 2 and 0 < r[0] <= 1 and 1 <= r[1] <= MAX_TREES and float(r[1]).is_integer() for r in self.rungs):
            raise ConfigError(f"rungs: must be a list of 2 to 50 [row_fraction in (0, 1], trees in 1..{MAX_TREES}] (a "
                              f"ladder compares each rung with the one before); got {str(self.rungs)[:200]}.")
        if self.rule == "l1" and self.threshold >= 2:  # an L1 change between mixtures is at most 2
            raise ConfigError(f"threshold: {self.threshold:g} with rule l1 stops at the second rung whatever the weights "
                              "do (an L1 change between two mixtures is at most 2); give one under 2, e.g. 0.05.")
        self.rungs = [[float(f), int(t)] for f, t in self.rungs]
        sizes = [f * t for f, t in self.rungs]
        if any(b <= a for a, b in itertools.pairwise(sizes)):
            raise ConfigError(f"rungs: must grow in compute (row_fraction x trees strictly increasing); "
                              f"got {self.rungs!r}.")


CONFIG = ChemLadderConfig


def dataset(config: ChemLadderConfig) -> str:
    n = len(config.targets)
    return f"{config.path or config.dataset} (chemistry, proxy-compute ladder, {n} target{'s' * (n != 1)})"


def pick_sources(config: ChemLadderConfig, table: chemdata.AssayTable, limit: int | None = None) -> list:
    """The configured sources (targets excluded), checked against the table's molecules RDKit parses (those of a
    table up to ``limit`` molecules; all when None)."""
    valid = parsed_molecules(table, limit=limit)
    informative = chemdata.informative_assays(table, valid)[0]
    with default_said(config, "targets"):
        for t in config.targets:
            check_target(table, t, informative, valid)
    if isinstance(config.sources, int):
        pool = [a for a in informative if a not in config.targets]
        if len(pool) < 2:
            raise InputError(f"only {len(pool)} informative assays besides the targets; need at least 2 sources.")
        if config.sources > len(pool):  # as chem_evolve's `initial`: not silently fewer
            raise InputError(f"sources: asks for the first {config.sources} informative assays besides the targets, "
                             f"but there are {len(pool)}; ask for at most {len(pool)}, or list them.")
        return pool[: config.sources]
    if len(config.sources) < 2:  # one source is no mixture: it failed after the first rung's proxies
        raise InputError(f"sources: a ladder mixes at least 2 sources; got {list(config.sources)}.")
    for a in config.sources:
        table.index(a)
        if a in config.targets:
            raise InputError(f"sources: {a!r} is also a target; a target's data cannot be a source.")
        check_source(table, a, informative, valid, where="sources")
    return list(config.sources)


def validate(config: ChemLadderConfig) -> None:
    pick_sources(config, load_table(config.data), limit=VALIDATE_PARSE_MOLECULES)
    load_metadata(config.data)


def run(config: ChemLadderConfig, ctx: RunContext) -> dict:
    table = load_table(config.data)
    sources = pick_sources(config, table)  # the features unit below reads the same fingerprint cache
    ws = ChemWorkspace(ctx, table, assays=sources + list(config.targets), seed=config.seed, device=config.device,
                       proxy_depth=config.proxy_depth, n_jobs=config.xgb_threads)
    ws.write_sources({a: a for a in sources}, load_metadata(config.data))
    ladder = plan_ladder(ws, sources, config.rungs, final_trees=config.final_trees,
                         max_final_rows=config.max_final_rows)
    climbed = {t: climb(ws, ladder, t, threshold=config.threshold, run_all=config.run_all, rule=config.rule,
                        step_size=config.step_size, max_iter=config.max_iter) for t in config.targets}
    finals = {t: final_units(ws, ladder, t, r, trees=config.final_trees, depth=config.final_depth,
                             max_rows=config.max_final_rows) if config.score_rungs else None
              for t, r in climbed.items()}
    if config.score_rungs:
        ctx.run_units([u for units in finals.values() for u in units], "final models")
    rows, summary = [], {}
    for target, result in climbed.items():
        info, target_rows, summary[target] = report(ladder, target, result, finals[target], run_all=config.run_all)
        write_json(ctx.path("ladder", f"{safe_name(target)}.json"), info)
        rows += target_rows
    write_json(ctx.path("ladder.json"), {"targets": list(climbed), "budgets": ladder.budgets, "summary": summary})
    write_report(ctx.run_dir, rows)
    return summary
