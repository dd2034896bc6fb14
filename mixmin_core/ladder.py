"""The proxy-compute ladder: solve MixMin with proxies of growing budget until the mixture is stable.

The paper's advice ("use more proxy compute until the mixture is stable") as a procedure: at each
rung train proxies at the next budget, solve, and stop once the L1 change of the weights from the
previous rung falls under ``threshold``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import InputError
from .results import MixtureResult


@dataclass(frozen=True)
class LadderResult:
    """Per rung: ``budgets[k]``, ``results[k]`` and ``l1_changes[k]`` (NaN at the first rung).

    ``stable_at`` is the budget at which the change first fell under the threshold (None if never).
    """

    budgets: list
    results: list
    l1_changes: list
    threshold: float
    stable_at: float | None

    @property
    def weights(self) -> np.ndarray:
        """(n_rungs, n_sources) weights per rung, for a weights-against-budget plot."""
        return np.stack([r.weights for r in self.results])

    def to_dict(self) -> dict:
        return {"budgets": list(self.budgets), "l1_changes": list(self.l1_changes), "threshold": self.threshold,
                "stable_at": self.stable_at, "results": [r.to_dict() for r in self.results]}


def proxy_ladder(solve_at: Callable[[float], MixtureResult], budgets: Sequence[float], *,
                 threshold: float = 0.05, run_all: bool = False) -> LadderResult:
    """Climb ``budgets`` (increasing), calling ``solve_at(budget)`` at each rung.

    Parameters
    ----------
    solve_at : trains (or loads cached) proxies at ``budget`` and returns the MixMin result.
    budgets : increasing proxy budgets, e.g. fractions of the final run's compute.
    threshold : stop when ``sum |w_k - w_{k-1}|`` < threshold (default 0.05).
    run_all : climb every rung even after the mixture is stable (to draw the full plot).

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
    results, changes, stable_at = [], [], None
    for budget in budgets:
        result = solve_at(budget)
        if results and result.source_names != results[-1].source_names:
            raise InputError(f"the sources changed between rungs at budget {budget}; a ladder compares one source set.")
        change = float(np.abs(result.weights - results[-1].weights).sum()) if results else float("nan")
        results.append(result)
        changes.append(change)
        if stable_at is None and change < threshold:
            stable_at = budget
            if not run_all:
                break
    return LadderResult(budgets[: len(results)], results, changes, float(threshold), stable_at)
