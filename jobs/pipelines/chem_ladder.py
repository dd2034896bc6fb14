"""The proxy-compute ladder on chemistry: MixMin with proxies of growing budget until the mixture is stable.

A rung is ``[row_fraction, trees]``: every source's proxy is trained on that fraction of its fit rows
(a seeded, nested subset: a rung's rows contain the previous rung's) with that many trees. A rung's
budget is its total proxy compute (trees x rows, summed over the sources) as a fraction of the final
model's compute (``final_trees`` x the rows the final model trains on), so rungs read as "0.1%, 1%, 10%
of the final run". Per target, :func:`mixmin_core.engine.ladder.proxy_ladder` climbs the rungs, solving MixMin at
each, and stops once the L1 change of the weights falls under ``threshold`` (``run_all``: climb every rung
to draw the whole weights-against-budget plot). Proxies are shared between targets and live in the
store's content-addressed proxy folder. Per target: ``ladder/<target>.json`` (the LadderResult plus the
rungs' settings and, with ``score_rungs``, the test AP of a final model trained on each rung's mixture).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from mixmin_core import ProxyOutputs, mixmin, mixture_loss
from mixmin_core.chem import data as chemdata
from mixmin_core.chem.proxies import resolve_device
from mixmin_core.chem.splits import MIN_ROWS, row_subset
from mixmin_core.engine.ladder import RULES, proxy_ladder
from mixmin_core.errors import ConfigError, InputError
from mixmin_core.runs.fileio import read_json, write_json
from mixmin_core.runs.layout import Problem, mixture_path, outputs_path, safe_name
from mixmin_core.runs.runner import RunContext, Unit

from . import _chem_beyond as cb

log = logging.getLogger("mixmin.chem_ladder")


@dataclass
class ChemLadderConfig(cb.ChemBeyondConfig):
    targets: list = field(default_factory=lambda: ["ACEA_T47D_80hr_Negative", "APR_HepG2_CellLoss_72h_dn",
                                                   "APR_HepG2_MitoMass_24h_dn"])
    sources: object = 40  # list of assays, or N = the first N informative assays that are not targets
    rungs: list = field(default_factory=lambda: [[0.05, 1], [0.1, 3], [0.3, 5], [1.0, 10], [1.0, 30]])  # [row_fraction, trees]
    threshold: float = 0.05  # stop when the rule's change measure between rungs falls under this
    rule: str = "l1"  # l1: L1 change of the weights | loss_regret: previous mixture's extra loss / loss
    run_all: bool = False  # climb every rung anyway (the full weights-against-budget plot)
    score_rungs: bool = True  # train a final model on each climbed rung's mixture and report its test AP

    def __post_init__(self):
        super().__post_init__()
        cb.check_source_list("targets", self.targets, allow_count=False)
        cb.check_source_list("sources", self.sources)
        rungs = self.rungs
        if not isinstance(rungs, list) or not rungs or not all(
                isinstance(r, (list, tuple)) and len(r) == 2 and isinstance(r[0], (int, float))
                and not isinstance(r[1], bool) and isinstance(r[1], int) and 0 < r[0] <= 1 and r[1] >= 1 for r in rungs):
            raise ConfigError(f"rungs must be a non-empty list of [row_fraction in (0, 1], trees >= 1]; got {rungs!r}.")
        sizes = [r[0] * r[1] for r in rungs]
        if any(b <= a for a, b in zip(sizes, sizes[1:])):
            raise ConfigError(f"rungs must grow in compute (row_fraction x trees strictly increasing); got {rungs!r}.")
        if not (isinstance(self.threshold, (int, float)) and self.threshold > 0):
            raise ConfigError(f"threshold must be a positive number; got {self.threshold!r}.")
        if self.rule not in RULES:
            raise ConfigError(f"rule must be one of {RULES}; got {self.rule!r}.")


CONFIG = ChemLadderConfig


def dataset(config: ChemLadderConfig) -> str:
    return f"{config.path or config.dataset} (chemistry, proxy-compute ladder, {len(config.targets)} targets)"


def pick_sources(config: ChemLadderConfig, table: chemdata.AssayTable, informative: list) -> list:
    """The configured sources (targets excluded), checked against the table."""
    for t in config.targets:
        cb.check_target(table, t, informative)
    if isinstance(config.sources, int):
        pool = [a for a in informative if a not in config.targets]
        if len(pool) < 2:
            raise InputError(f"only {len(pool)} informative assays besides the targets; need at least 2 sources.")
        return pool[: config.sources]
    for a in config.sources:
        table.index(a)
        if a in config.targets:
            raise InputError(f"sources: {a!r} is also a target; a target's data cannot be a source.")
        if a not in informative:
            raise InputError(f"sources: assay {a!r} has no positive or no negative label in {table.path}.")
    return list(config.sources)


def validate(config: ChemLadderConfig) -> None:
    table = cb.load_table(config)
    informative, _ = chemdata.informative_assays(table)
    pick_sources(config, table, informative)


def run(config: ChemLadderConfig, ctx: RunContext) -> dict:
    table = cb.load_table(config)
    informative, _ = chemdata.informative_assays(table)
    sources = pick_sources(config, table, informative)
    device = resolve_device(config.device)
    feats = cb.prepare_features(ctx, table)
    codes = cb.fit_split(table, sources + list(config.targets), seed=config.seed, valid=feats.valid)
    cb.write_sources_csv(ctx.run_dir, {a: a for a in sources}, cb.load_metadata(config))
    fit = {a: np.flatnonzero(codes[a] == 0) for a in sources}
    final_rows = sum(r.size for r in fit.values())
    final_rows = min(final_rows, config.max_final_rows) if config.max_final_rows else final_rows
    final_compute = float(config.final_trees * final_rows)
    cache = cb.proxy_cache_dir(ctx.store)
    common = {"features_path": feats.features_path, "labels_path": feats.labels_path, "depth": config.proxy_depth,
              "seed": config.seed, "device": device, "n_jobs": config.xgb_threads}

    rungs = []  # per rung: settings, rows per source, units
    for k, (fraction, trees) in enumerate(config.rungs):
        rows = {a: row_subset(fit[a], fraction, seed=config.seed, assay=a) for a in sources}
        units = {}
        for a in sources:
            settings = cb.proxy_settings(trees=trees, depth=config.proxy_depth, seed=config.seed)
            key = cb.proxy_key(feats.table_key, rows[a], table.labels[rows[a], table.index(a)], settings)
            out = cache / f"{key}.npz"
            units[a] = Unit(f"proxy/rung{k}/{a}", cb.train_cached_proxy, {
                **common, "source": a, "assay": a, "rows": rows[a], "trees": trees, "key": key, "output": str(out)},
                output=out, kind="proxy")
        compute = float(sum(trees * r.size for r in rows.values()))
        rungs.append({"rung": k, "row_fraction": float(fraction), "trees": int(trees), "compute": compute,
                      "budget": compute / final_compute, "rows": rows, "units": units})
    budgets = [r["budget"] for r in rungs]
    if any(b <= a for a, b in zip(budgets, budgets[1:])):
        raise InputError(f"the rungs' proxy compute does not grow ({[r['compute'] for r in rungs]}); small sources hit "
                         f"the {MIN_ROWS}-row floor: raise the first rungs' row_fraction or trees.")
    by_budget = {b: r for b, r in zip(budgets, rungs)}
    sources_p = ctx.path("ladder", "sources.npz")
    if not sources_p.exists():
        cb.save_source_rows(sources_p, sources, sources, [fit[a] for a in sources])

    ladders, final_units = {}, []
    for target in config.targets:
        t = table.index(target)
        fit_t = np.flatnonzero(codes[target] == 0)
        last = {}  # the previous rung's weights

        def solve_at(budget, target=target, t=t, fit_t=fit_t, last=last):
            rung = by_budget[budget]
            ctx.run_units(list(rung["units"].values()), f"rung {rung['rung']} proxies")
            preds = [cb.load_proxy(rung["units"][a].output)[0][fit_t] for a in sources]
            problem = Problem(target, 0, f"rung{rung['rung']}")
            outputs = ProxyOutputs(np.stack(preds), "binary", source_names=sources,
                                   labels=table.labels[fit_t, t].astype(np.float32),
                                   natural_weights=np.array([fit[a].size for a in sources], dtype=np.float64),
                                   sample_ids=[str(i) for i in fit_t],
                                   meta={"target": target, "variant": problem.variant, "split": "fit",
                                         "proxy_compute": rung["compute"], "budget": budget})
            outputs.save(outputs_path(ctx.run_dir, problem))
            start = time.perf_counter()
            result = mixmin(outputs, step_size=config.step_size, max_iter=config.max_iter)
            # regret: how much worse the previous rung's mixture is under this rung's (better) proxies
            regret = None if not last else float(mixture_loss(outputs, last["w"])) - float(result.loss)
            last["w"] = result.weights
            result = dataclasses.replace(result, meta={**result.meta, "compute": rung["compute"], "budget": budget,
                                                       "seconds": time.perf_counter() - start, "loss_regret": regret})
            write_json(mixture_path(ctx.run_dir, problem, "mixmin"), result.to_dict())
            return result

        ladder = proxy_ladder(solve_at, budgets, threshold=config.threshold, run_all=config.run_all, rule=config.rule)
        ladders[target] = ladder
        log.info("%s: %d rungs climbed, stable at %s", target, len(ladder.results), ladder.stable_at)
        if config.score_rungs:
            test_t = np.flatnonzero(codes[target] == 2)
            for k in range(len(ladder.results)):
                problem = Problem(target, 0, f"rung{k}")
                out = ctx.path("finals", cb.final_name(problem.key, ladder.results[k]))
                final_units.append(Unit(f"final/{problem.key}", cb.train_mixture_final, {
                    "mixture_path": str(mixture_path(ctx.run_dir, problem, "mixmin")), "sources_path": str(sources_p),
                    "target": target, "test_rows": test_t, "features_path": feats.features_path,
                    "labels_path": feats.labels_path, "trees": config.final_trees, "depth": config.final_depth,
                    "max_rows": config.max_final_rows, "seed": config.seed, "device": device,
                    "n_jobs": config.xgb_threads, "output": str(out)}, output=out, kind="final"))
    if final_units:
        ctx.run_units(final_units, "final models")

    rows, summary = [], {}
    for target, ladder in ladders.items():
        aps = []
        for k in range(len(ladder.results)):
            out = ctx.path("finals", cb.final_name(Problem(target, 0, f"rung{k}").key, ladder.results[k]))
            aps.append(read_json(out)["ap"] if config.score_rungs else None)
        info = {"target": target, "source_names": sources, "final_compute": final_compute, "final_rows": final_rows,
                "run_all": config.run_all, "ap": aps, "loss_regret": [r.meta["loss_regret"] for r in ladder.results],
                "rungs": [{k: r[k] for k in ("rung", "row_fraction", "trees", "compute", "budget")} for r in rungs],
                **ladder.to_dict()}
        write_json(ctx.path("ladder", f"{safe_name(target)}.json"), info)
        stop = None if ladder.stable_at is None else budgets.index(ladder.stable_at)
        for k, result in enumerate(ladder.results):
            base = {"target": target, "method": "mixmin", "trial": 0, "variant": f"rung{k}",
                    "compute": rungs[k]["compute"]}
            extra = {"budget": rungs[k]["budget"], "row_fraction": rungs[k]["row_fraction"], "trees": rungs[k]["trees"],
                     "stable": stop is not None and k >= stop}
            rows.append({**base, "metric": "proxy_budget_fraction", "value": rungs[k]["budget"], "extra": extra})
            if k:
                rows.append({**base, "metric": "ladder_l1_change", "value": ladder.l1_changes[k], "extra": extra})
                rows.append({**base, "metric": "ladder_loss_regret", "value": result.meta["loss_regret"], "extra": extra})
            if aps[k] is not None:
                rows.append({**base, "metric": "ap", "value": aps[k], "extra": extra})
        summary[target] = {"rungs_climbed": len(ladder.results), "stable_at_rung": stop,
                           "stable_at_budget": ladder.stable_at,
                           "l1_changes": [None if math.isnan(c) else round(c, 4) for c in ladder.l1_changes],
                           "loss_regret": [None if k == 0 else round(r.meta["loss_regret"], 5)
                                           for k, r in enumerate(ladder.results)],
                           "ap": [None if a is None else round(a, 4) for a in aps]}
    ctx.store.add_results(ctx.run_id, rows)
    write_json(ctx.path("ladder.json"), {"targets": list(ladders), "budgets": budgets, "summary": summary})
    return summary
