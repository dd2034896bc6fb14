"""The proxy-compute ladder: solve MixMin with proxies of growing budget until the mixture is stable.

The paper's advice ("use more proxy compute until the mixture is stable") as a procedure: at each
rung train proxies at the next budget, solve, and stop once the L1 change of the weights from the
previous rung falls under ``threshold``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver.results import DEFAULT_TOL, MixtureResult, stopped_short


@dataclass(frozen=True)
class LadderResult:
    """Per rung: ``budgets[k]``, ``results[k]``, ``l1_changes[k]`` and the rule's ``measures[k]`` (the L1
    change, or the relative loss regret; NaN at the first rung).

    ``stable_at`` is the budget at which the measure first fell under the threshold (None if never): where
    the procedure stops. With ``run_all`` a later rung can move again; :attr:`moved_again` lists those.
    :attr:`unconverged` lists the budgets whose solve stopped short of converging: weights where the iterations ran
    out can move little between rungs because the solver stopped, not because the proxies agree, so
    :attr:`stable_unconverged` says when the stop compared such a solve.
    """

    budgets: list
    results: list
    l1_changes: list
    threshold: float
    stable_at: float | None
    rule: str = "l1"
    measures: list | None = None

    @property
    def moved_again(self) -> list:
        """Budgets after ``stable_at`` whose measure is back at or above the threshold (climbed with ``run_all``)."""
        if self.stable_at is None or not self.measures:
            return []
        return [b for b, m in zip(self.budgets, self.measures) if b > self.stable_at and not m < self.threshold]

    @property
    def unconverged(self) -> list:
        """Budgets whose solve stopped short (:func:`~mixmin_core.solver.results.stopped_short`: clipped,
        non-finite, or out of iterations with a gap above ten times its tol), as the evolving view's versions."""
        return [b for b, r in zip(self.budgets, self.results) if _short(r)]

    @property
    def stable_unconverged(self) -> bool:
        """Whether either solve the stop compared (the stable rung's and the one before) stopped short."""
        if self.stable_at is None:
            return False
        k = self.budgets.index(self.stable_at)
        return _short(self.results[k]) or _short(self.results[k - 1])

    @property
    def weights(self) -> np.ndarray:
        """(n_rungs, n_sources) weights per rung, for a weights-against-budget plot."""
        return np.stack([r.weights for r in self.results])

    def to_dict(self) -> dict:
        return {"budgets": list(self.budgets), "l1_changes": _nulls(self.l1_changes), "threshold": self.threshold,
                "stable_at": self.stable_at, "rule": self.rule, "measures": _nulls(self.measures or []),
                "moved_again": self.moved_again, "unconverged": self.unconverged,
                "stable_unconverged": self.stable_unconverged, "results": [r.to_dict() for r in self.results]}


def _short(result: MixtureResult) -> bool:
    return stopped_short(result.status, result.gap, result.meta.get("tol", DEFAULT_TOL))


RULES = ("l1", "loss_regret")


def proxy_ladder(solve_at: Callable[[float], MixtureResult], budgets: Sequence[float], *,
                 threshold: float = 0.05, run_all: bool = False, rule: str = "l1") -> LadderResult:
    """Climb ``budgets`` (increasing), calling ``solve_at(budget)`` at each rung.

    Parameters
    ----------
    solve_at : trains (or loads cached) proxies at ``budget`` and returns the MixMin result.
    budgets : increasing proxy budgets, e.g. fractions of the final run's compute.
    threshold : stop when the rule's change measure falls below it (default 0.05).
    run_all : climb every rung even after the mixture is stable (to draw the full plot).
    rule : "l1" (default): ``sum |w_k - w_{k-1}|``. "loss_regret": how much worse the previous
        rung's mixture is under this rung's proxies, relative to this rung's loss; ``solve_at`` must
        put the absolute regret in ``result.meta["loss_regret"]``. With near-duplicate sources the
        weights can trade places while the loss no longer moves; this rule stops there.

    Raises
    ------
    InputError
        If budgets are empty or not strictly increasing, or the threshold is not positive.
    """
    budgets = list(budgets)
    if not budgets or any(b <= a for a, b in zip(budgets, budgets[1:])):
        raise InputError(f"budgets must be a non-empty, strictly increasing list; got {budgets!r}.")
    if not threshold > 0:
        raise InputError(f"threshold must be positive; got {threshold!r}.")
    if rule not in RULES:
        raise InputError(f"rule must be one of {RULES}; got {rule!r}.")
    results, changes, measures, stable_at = [], [], [], None
    for budget in budgets:
        result = solve_at(budget)
        if results and result.source_names != results[-1].source_names:
            raise InputError(f"the sources changed between rungs at budget {budget}; a ladder compares one source set.")
        change = float(np.abs(result.weights - results[-1].weights).sum()) if results else float("nan")
        measure = change if rule == "l1" or not results else _relative_regret(result, budget)
        results.append(result)
        changes.append(change)
        measures.append(measure)
        if stable_at is None and measure < threshold:
            stable_at = budget
            if not run_all:
                break
    return LadderResult(budgets[: len(results)], results, changes, float(threshold), stable_at, rule, measures)


def _relative_regret(result: MixtureResult, budget) -> float:
    regret = result.meta.get("loss_regret")
    if regret is None:
        raise InputError(f"rule 'loss_regret' needs result.meta['loss_regret'] from solve_at; missing at budget {budget}.")
    return float(regret) / max(abs(float(result.loss)), 1e-12)


def loss_regret(outputs, previous: MixtureResult | None, result: MixtureResult) -> float | None:
    """How much worse the previous rung's mixture is than ``result`` under this rung's (better)
    proxies ``outputs``; None at the first rung. What rule ``"loss_regret"`` reads from ``meta``."""
    from mixmin_core.solver.baselines import mixture_loss

    if previous is None:
        return None
    return float(mixture_loss(outputs, previous.weights)) - float(result.loss)


def _nulls(values) -> list:
    """``values`` with NaN as None: the first rung has no change, and a bare NaN is no JSON strict readers take."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]
