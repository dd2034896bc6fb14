"""The proxy-compute ladder on chemistry: MixMin with proxies of growing budget until the mixture is stable.

A rung is ``(row_fraction, trees)``: every source's proxy is trained on that fraction of its fit rows
(a seeded, nested subset: a rung's rows contain the previous rung's) with that many trees. A rung's
budget is its planned proxy compute (trees x rows, summed over the sources) as a fraction of the
final model's (``final_trees`` x the rows the final model trains on), so rungs read as "0.1%, 1%,
10% of the final run". Per target, :func:`mixmin_core.engine.ladder.proxy_ladder` climbs the rungs,
solving MixMin at each, and stops once the change measure falls under ``threshold``. Proxies are
shared by the targets and live in the store's content-addressed proxy cache.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from mixmin_core.chem.splits import MIN_ROWS, row_subset
from mixmin_core.chem.workspace import ChemWorkspace
from mixmin_core.engine.ladder import LadderResult, loss_regret, proxy_ladder
from mixmin_core.engine.report import convergence_warning
from mixmin_core.errors import InputError
from mixmin_core.runs import layout
from mixmin_core.runs.fileio import read_json, write_json
from mixmin_core.runs.layout import Problem
from mixmin_core.runs.runner import Unit
from mixmin_core.solver.solvers import mixmin

log = logging.getLogger("mixmin.chem.ladder")


@dataclass
class Rung:
    index: int
    row_fraction: float
    trees: int
    compute: float  # planned: trees x rows over the sources
    budget: float  # compute / the final model's compute
    units: dict  # source -> proxy Unit

    def describe(self) -> dict:
        return {"rung": self.index, "row_fraction": self.row_fraction, "trees": self.trees, "compute": self.compute,
                "budget": self.budget}


@dataclass
class Ladder:
    """The rungs of one run and what the final models train on (every source's whole fit split)."""

    sources: list
    fit: dict  # source -> fit rows
    rungs: list
    final_compute: float
    final_rows: int
    sources_path: str  # the sources file of the final models
    sources_file: str  # the same, relative to the run folder (recorded in ladder/<target>.json)

    @property
    def budgets(self) -> list:
        return [r.budget for r in self.rungs]


def plan_ladder(ws: ChemWorkspace, sources: list, rungs: list, *, final_trees: int, max_final_rows: int) -> Ladder:
    """The rungs' proxy units and budgets.

    Raises
    ------
    InputError
        If the rungs' planned compute does not grow (small sources hit the row floor).
    """
    fit = {a: ws.rows(a) for a in sources}
    final_rows = sum(r.size for r in fit.values())
    final_rows = min(final_rows, max_final_rows) if max_final_rows else final_rows
    final_compute = float(final_trees * final_rows)
    planned = []
    for k, (fraction, trees) in enumerate(rungs):
        rows = {a: row_subset(fit[a], fraction, seed=ws.seed, assay=a) for a in sources}
        path = ws.sources_file(sources, sources, [rows[a] for a in sources])
        units = {a: ws.proxy_unit(a, a, rows[a], sources_path=path, trees=trees, unit_id=f"proxy/rung{k}/{a}")
                 for a in sources}
        compute = float(sum(trees * r.size for r in rows.values()))
        planned.append(Rung(k, float(fraction), int(trees), compute, compute / final_compute, units))
    budgets = [r.budget for r in planned]
    if any(b <= a for a, b in itertools.pairwise(budgets)):
        raise InputError(f"the rungs' proxy compute does not grow ({[r.compute for r in planned]}); small sources hit "
                         f"the {MIN_ROWS}-row floor: raise the first rungs' row_fraction or trees.")
    full = ws.sources_file(sources, sources, [fit[a] for a in sources])
    return Ladder(list(sources), fit, planned, final_compute, final_rows, full,
                  str(Path(full).relative_to(ws.ctx.run_dir)))


def climb(ws: ChemWorkspace, ladder: Ladder, target: str, *, threshold: float, run_all: bool, rule: str,
          step_size: float, max_iter: int) -> LadderResult:
    """Climb the rungs for ``target``: train (or find) a rung's proxies, solve, stop when stable."""
    by_budget = {r.budget: r for r in ladder.rungs}
    last: list = [None]  # the previous rung's result

    def solve_at(budget: float):
        rung = by_budget[budget]
        ws.run_proxies(list(rung.units.values()), f"rung {rung.index} proxies")
        problem = Problem(target, 0, f"rung{rung.index}")
        units = [rung.units[a] for a in ladder.sources]
        outputs = ws.outputs(target, ladder.sources, units, natural=[ladder.fit[a].size for a in ladder.sources],
                             meta={"variant": problem.variant, "proxy_compute": rung.compute, "budget": budget})
        outputs.save(layout.outputs_path(ws.ctx.run_dir, problem))
        start = time.perf_counter()
        result = mixmin(outputs, step_size=step_size, max_iter=max_iter)
        regret = loss_regret(outputs, last[0], result)
        last[0] = result
        result = dataclasses.replace(result, meta={
            **result.meta, "compute": float(sum(ws.proxy(u)[1] for u in units)), "planned_compute": rung.compute,
            "budget": budget, "seconds": time.perf_counter() - start, "loss_regret": regret})
        write_json(layout.mixture_path(ws.ctx.run_dir, problem, "mixmin"), result.to_dict())
        return result

    ladder_result = proxy_ladder(solve_at, ladder.budgets, threshold=threshold, run_all=run_all, rule=rule)
    stable, stopped = ladder_result.stable_at, ladder_result.unconverged
    if stopped:  # their weights are not the optimum: a small change between them says little
        first = ladder_result.results[ladder_result.budgets.index(stopped[0])]
        log.warning("%s: MixMin did not converge at %d of %d rungs (%s of the final model's compute), and a small "
                    "change between such weights may be the solver's stop, not the proxies' agreement; at %.3g%%, MixMin "
                    "%s", target, len(stopped), len(ladder_result.results),
                    ", ".join(f"{100 * b:.3g}%" for b in stopped), 100 * stopped[0], convergence_warning(first))
    log.info("%s: %d rungs climbed, %s", target, len(ladder_result.results),
             "never stable" if stable is None else f"stable at {100 * stable:.3g}% of the final model's compute"
             + (" between solves that did not converge (not to be trusted: see the warning above)"
                if ladder_result.stable_unconverged else ""))
    return ladder_result


def final_units(ws: ChemWorkspace, ladder: Ladder, target: str, result: LadderResult, *, trees: int, depth: int,
                max_rows: int) -> list[Unit]:
    """A final model on each climbed rung's mixture (its test AP says what the extra compute bought)."""
    units = []
    for k, r in enumerate(result.results):
        key = Problem(target, 0, f"rung{k}").key
        units.append(ws.final_unit(f"final/{key}", key, sources_path=ladder.sources_path, names=r.source_names,
                                   weights=r.weights, target=target, trees=trees, depth=depth, max_rows=max_rows))
    return units


def report(ladder: Ladder, target: str, result: LadderResult, finals: list[Unit] | None, *, run_all: bool):
    """``(info, rows, summary)`` of one target: ``ladder/<target>.json``, its ``results.csv`` rows (the
    ``proxy_compute`` a rung really spent) and its line of ``ladder.json``."""
    fins = [read_json(u.output) for u in finals] if finals else [None] * len(result.results)
    aps = [None if f is None else f["ap"] for f in fins]
    regrets = [r.meta["loss_regret"] for r in result.results]
    info = {"target": target, "source_names": ladder.sources, "final_compute": ladder.final_compute,
            "final_rows": ladder.final_rows, "run_all": run_all, "ap": aps, "loss_regret": regrets,
            # the target's test split is the same on every rung: the Beyond page says when its AP rests on few
            "test_positives": next((f.get("test_positives") for f in fins if f), None),
            "rungs": [r.describe() for r in ladder.rungs], "sources_file": ladder.sources_file, **result.to_dict()}
    stop = None if result.stable_at is None else ladder.budgets.index(result.stable_at)
    rows = []
    for k, r in enumerate(result.results):
        rung = ladder.rungs[k]
        base = {"trial": 0, "target": target, "variant": f"rung{k}", "method": "mixmin",
                "proxy_compute": r.meta["compute"],
                "final_compute": 0.0 if fins[k] is None else fins[k]["final_compute"],
                "budget": rung.budget, "row_fraction": rung.row_fraction, "trees": rung.trees,
                "stable": bool(k and result.measures[k] < result.threshold),  # this rung moved less than it
                "converged": bool(r.success)}
        rows.append({**base, "metric": "proxy_budget_fraction", "value": rung.budget})
        if k:
            rows.append({**base, "metric": "ladder_l1_change", "value": result.l1_changes[k]})
            rows.append({**base, "metric": "ladder_loss_regret", "value": regrets[k]})
            if result.rule == "loss_regret":  # what the rule compares with the threshold (0.0073 read as under 0.01)
                rows.append({**base, "metric": "ladder_relative_loss_regret", "value": result.measures[k]})
        if aps[k] is not None:
            rows.append({**base, "metric": "ap", "value": aps[k], "test_positives": fins[k].get("test_positives")})
    summary = {"rungs_climbed": len(result.results), "stable_at_rung": stop, "stable_at_budget": result.stable_at,
               "stable_unconverged": result.stable_unconverged,
               "unconverged_rungs": [k for k, r in enumerate(result.results) if not r.success],
               "l1_changes": [None if math.isnan(c) else round(c, 4) for c in result.l1_changes],
               "loss_regret": [None if g is None else round(g, 5) for g in regrets],
               **({"relative_loss_regret": [None if math.isnan(m) else round(m, 5) for m in result.measures]}
                  if result.rule == "loss_regret" else {}),
               "ap": [None if a is None else round(a, 4) for a in aps]}
    return info, rows, summary
