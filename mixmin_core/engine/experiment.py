"""The experiment skeleton every domain runs through: plan, proxies, mixtures, search, finals, report.

A :class:`Domain` says only what is specific to its data (see its docstring). The engine owns the
rest, once for every domain:

  plan       targets x variants x trials (:class:`Plan`); a variant is a source set and, in a
             compute sweep, a proxy budget
  proxies    one unit per source (shared by every problem that uses it), resumable
  mixtures   per problem: ProxyOutputs on the target's fit split, MixMin, natural, balanced, and the
             search methods, each planned to fit MixMin's *measured* proxy compute
             (:func:`mixmin_core.search.swarm.matched_trials`), with candidates drawn fresh per trial
  ledger     every method's ``proxy_compute`` is the sum of what the units it used recorded
  finals     one final model per distinct mixture (the domain deduplicates), evaluated held out
  report     ``results.csv`` and ``summary.csv`` (:mod:`mixmin_core.engine.report`)
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mixmin_core.engine import methods as M
from mixmin_core.engine.report import convergence_warning, write_report
from mixmin_core.errors import MixminError
from mixmin_core.runs import layout
from mixmin_core.runs.fileio import write_json
from mixmin_core.runs.layout import Problem
from mixmin_core.runs.runner import RunContext, Unit
from mixmin_core.solver.baselines import balanced, natural
from mixmin_core.solver.bootstrap import bootstrap_weights
from mixmin_core.solver.proxy_outputs import ProxyOutputs
from mixmin_core.solver.results import OVERALL, MixtureResult
from mixmin_core.solver.solvers import mixmin

log = logging.getLogger("mixmin.engine")


@dataclass(frozen=True)
class Variant:
    """One setting of a run: a candidate source set (a problem drops its own target) and, in a
    compute sweep, the proxy budget as a fraction of one final model's compute."""

    name: str
    sources: tuple
    budget: float | None = None


@dataclass
class Plan:
    targets: list
    variants: list
    trials: int
    include_target: bool = False  # the target's own data is one more source

    def problems(self) -> list[Problem]:
        return [Problem(t, k, v.name) for t in self.targets for v in self.variants for k in range(self.trials)]

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def sources(self, problem: Problem) -> list:
        others = [s for s in self.variant(problem.variant).sources if s != problem.target]
        return others + [problem.target] if self.include_target else others

    @property
    def main_variant(self) -> str:
        """The setting a run is summarised by: the last (largest source count or budget)."""
        return self.variants[-1].name


@dataclass
class Settings:
    """What the engine runs, independent of the domain."""

    methods: tuple
    seed: int = 0
    step_size: float = 1.0
    max_iter: int = 100
    n_boot: int = 0  # bootstrap resamples for the top-k table's weight intervals (0: none)
    top_k: int = 10
    regmix_preset: str = "auto"
    regmix_candidates: int = 100_000
    search_max_sources: int = 0  # search only where a problem has at most this many sources (0: always)
    bo_init: int = 0  # BO's initial random mixtures (0: half its runs)
    reference: str | None = "natural"  # the method improvements are measured against


class Domain(Protocol):
    """What a domain supplies. Units return a dict with the ``compute`` they really spent.

    ``proxy_units(problem)``           {source: Unit} training each source's proxy (ids shared across problems)
    ``proxy_outputs(problem, units)``  ProxyOutputs of those proxies on the target's fit split
    ``search_cost(problem, method)``   planned compute of one search run (a proxy on a mixture)
    ``search_run(problem, method, w)`` the Unit training a proxy on mixture ``w`` (ids shared where equal)
    ``search_loss(problem, unit)``     that proxy's loss on the target's fit split
    ``final_rows(mixtures)``           train and evaluate final models for ``{(problem, method): result}``;
                                       result rows (``value``, ``metric``, ``final_compute``, ...)
    ``regmix_max_usage``               RegMix's per-source usage bound (None: none)
    ``headline_metric``, ``lower_is_better``
    Optional: ``ensemble_rows(problem, result)``, ``target_only_rows(problems)``, ``stored_compute(unit)``
    (the compute a finished unit's output records, for units another run trained).
    """

    headline_metric: str
    lower_is_better: bool
    regmix_max_usage: float | None


@dataclass
class Experiment:
    domain: Domain
    ctx: RunContext
    plan: Plan
    settings: Settings
    proxy_infos: dict = field(default_factory=dict)
    not_run: dict = field(default_factory=dict)  # variant -> {method: why it was not run}
    _said: set = field(default_factory=set)  # (variant, target, method) whose skip is in the log

    # ---- stages ---------------------------------------------------------------------------------
    def run(self) -> dict:
        problems = self.plan.problems()
        units = {p: self.domain.proxy_units(p) for p in problems}
        unique = {u.unit_id: u for us in units.values() for u in us.values()}
        self.proxy_infos = self.ctx.run_units(list(unique.values()), "proxies")
        mixtures = {}
        for p in problems:
            for method, result in self.mixtures(p, units[p]).items():
                mixtures[p, method] = result
        rows = self.domain.final_rows({k: v for k, v in mixtures.items() if k[1] in M.MIXTURE_METHODS})
        if "ensemble" in self.settings.methods and hasattr(self.domain, "ensemble_rows"):
            rows += [r for p in problems for r in self.domain.ensemble_rows(p, mixtures[p, "mixmin"])]
        if "target_only" in self.settings.methods and hasattr(self.domain, "target_only_rows"):
            rows += self.domain.target_only_rows(problems)
        table = write_report(self.ctx.run_dir, rows, reference=self.settings.reference)
        return self.summary(table)

    def mixtures(self, problem: Problem, units: dict) -> dict[str, MixtureResult]:
        """Every mixture method's result for ``problem``, saved under the run's ``mixtures/``."""
        outputs = self.domain.proxy_outputs(problem, units)
        outputs.save(layout.outputs_path(self.ctx.run_dir, problem))
        spent = float(sum(self._compute(self.proxy_infos[u.unit_id], u) for u in units.values()))
        s = self.settings
        start = time.perf_counter()
        results = {"mixmin": _with_meta(mixmin(outputs, step_size=s.step_size, max_iter=s.max_iter),
                                        compute=spent, seconds=time.perf_counter() - start)}
        unconverged = convergence_warning(results["mixmin"])  # its weights are not the optimum
        if unconverged:
            log.warning("%s: MixMin %s", problem.key, unconverged)
        for method, fn in (("natural", natural), ("balanced", balanced)):
            if method in s.methods:
                results[method] = _with_meta(fn(outputs), compute=0.0)
        skipped = {}
        for method in (m for m in M.SEARCH_METHODS if m in s.methods):
            if s.search_max_sources and outputs.n_sources > s.search_max_sources:
                skipped[method] = (f"not run: {outputs.n_sources} sources > search_max_sources="
                                   f"{s.search_max_sources}")
                continue
            results[method] = self.search(method, problem, outputs, spent)
        for method, result in results.items():
            write_json(layout.mixture_path(self.ctx.run_dir, problem, method), result.to_dict())
        for method, reason in skipped.items():
            if (problem.variant, problem.target, method) not in self._said:  # once per setting and target (a
                self._said.add((problem.variant, problem.target, method))   # setting's targets have other pools)
                log.warning("%s: %s for target %s %s", problem.variant, method, problem.target, reason)
            self.not_run.setdefault(problem.variant, {})[method] = reason
        self._write_topk(problem, outputs, results["mixmin"])
        return results

    def search(self, method: str, problem: Problem, outputs: ProxyOutputs, budget: float) -> MixtureResult:
        """``method`` with as many search runs as fit ``budget`` (MixMin's measured proxy compute);
        its ``compute`` is what those runs recorded. Random search draws its mixtures uniformly on the simplex;
        RegMix (as published) and BO draw theirs from ``Dirichlet(natural weights)``, which with concentrations
        summing to 1 puts most of a draw on few sources."""
        from mixmin_core.search import swarm
        from mixmin_core.search.bayesopt import bayesopt

        s, names = self.settings, outputs.source_names
        cost = float(self.domain.search_cost(problem, method))
        n = swarm.matched_trials(budget, cost)
        if method != "random_search":  # a regressor or a GP needs two runs to fit (one over budget where one fits)
            n = max(n, 2)
        rng = M.search_rng(s.seed, problem.trial, method, names)
        spent: list[float] = []

        def evaluate(W):
            runs = [self.domain.search_run(problem, method, w) for w in np.asarray(W, dtype=np.float64)]
            infos = self.ctx.run_units(runs, f"{method} runs")
            spent.extend(self._compute(infos[u.unit_id], u) for u in runs)
            return np.array([self.domain.search_loss(problem, u) for u in runs], dtype=np.float64)

        start = time.perf_counter()
        prior = outputs.natural_weights
        if method == "random_search":
            result = swarm.random_search(evaluate, source_names=names, n_trials=n, rng=rng, compute_per_trial=cost)
        elif method == "regmix":
            result = swarm.regmix(evaluate, source_names=names, prior=prior, n_runs=n, rng=rng, preset=s.regmix_preset,
                                  n_candidates=s.regmix_candidates, compute_per_run=cost,
                                  max_usage=self.domain.regmix_max_usage)
        else:
            n_init = min(n, s.bo_init or max(1, n // 2))
            result = bayesopt(evaluate, source_names=names, prior=prior, budget=n, rng=rng, n_init=n_init,
                              compute_per_run=cost, seed=s.seed + problem.trial)  # the GP's restarts, per trial
        weak = swarm.weak_ranking(result) if method == "regmix" else None
        if weak:
            log.warning("%s: %s", problem.key, weak)
        return _with_meta(result, compute=float(sum(spent)), planned_runs=n, planned_compute=n * cost,
                          runs=len(spent), seconds=time.perf_counter() - start)

    # ---- helpers ---------------------------------------------------------------------------------
    def _compute(self, info: dict, unit: Unit) -> float:
        """What ``unit`` spent: from the catalog, or (a unit another run trained, e.g. a cached proxy)
        from its output through the domain's ``stored_compute``."""
        if "compute" in (info or {}):
            return float(info["compute"])
        if hasattr(self.domain, "stored_compute"):
            return float(self.domain.stored_compute(unit))
        raise MixminError(f"unit {unit.unit_id} recorded no compute; delete {unit.output} and resume to retrain it.")

    def _write_topk(self, problem: Problem, outputs: ProxyOutputs, result: MixtureResult) -> None:
        """The top-k sources of MixMin's mixture with titles, categories and bootstrap intervals."""
        s = self.settings
        lower = upper = converged = None
        if s.n_boot >= 2:
            boot = bootstrap_weights(outputs, n_boot=s.n_boot, seed=s.seed + problem.trial, step_size=s.step_size,
                                     max_iter=s.max_iter)
            lower, upper, converged = boot.lower, boot.upper, float(boot.converged)
        meta = layout.read_sources(self.ctx.run_dir).set_index("source")
        info = {name: meta.loc[name] if name in meta.index else {} for name in (*outputs.source_names, problem.target)}
        rows = []
        for rank, i in enumerate(np.argsort(-result.weights, kind="stable")[: s.top_k], 1):
            name = outputs.source_names[i]
            rows.append({"rank": rank, "source": name, "title": info[name].get("title", name) or name,
                         "category": info[name].get("category", "") or "", "weight": float(result.weights[i]),
                         "lower": None if lower is None else float(lower[i]),
                         "upper": None if upper is None else float(upper[i])})
        target = info[problem.target]
        write_json(layout.topk_path(self.ctx.run_dir, problem), {
            "target": problem.target, "variant": problem.variant, "trial": problem.trial, "method": "mixmin",
            "target_title": target.get("title", problem.target) or problem.target,
            "target_category": target.get("category", "") or "", "n_sources": outputs.n_sources,
            "n_boot": s.n_boot, "boot_converged": converged, "k": len(rows), "sources": rows})

    def summary(self, table) -> dict:
        """The run's headline for the catalog: the main setting's mean of the headline metric over
        targets (the ``overall`` row, or the only target's) per method, with its 95% CI."""
        metric, main = self.domain.headline_metric, self.plan.main_variant
        targets = set(table["target"])
        who = OVERALL if OVERALL in targets else next(iter(targets))
        sel = table[(table["target"] == who) & (table["variant"] == main) & (table["metric"] == metric)]
        return {"metric": metric, "setting": main, "lower_is_better": self.domain.lower_is_better,
                "methods": {r.method: [_round(r["mean"]), _round(r.ci_low), _round(r.ci_high)] for _, r in sel.iterrows()},
                "not_run": self.not_run, "summary_csv": str(layout.summary_path(self.ctx.run_dir))}


def _round(x) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None


def _with_meta(result: MixtureResult, **extra) -> MixtureResult:
    return dataclasses.replace(result, meta={**result.meta, **extra})


def run_experiment(domain: Domain, ctx: RunContext, plan: Plan, settings: Settings) -> dict:
    """Run ``plan`` for ``domain``; write results.csv and summary.csv; return the run's summary."""
    return Experiment(domain, ctx, plan, settings).run()
