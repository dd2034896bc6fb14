"""Sweeps (proxy budgets, source counts): the checks every domain runs on the points it would draw.

A sweep whose points train the same proxies draws one point as many; a budget whose proxies are floored or
rounded up (a row floor, whole training steps) costs another share of a final model than its label says.
"""
from __future__ import annotations

from collections.abc import Callable

from mixmin_core.errors import ConfigError

#: a budget's proxies may cost this many times more (or less) than its label before the log says so
SHARE_RATIO = 2.0


def check_distinct_points(field: str, keys: dict, what: Callable[[object], str], fix: str) -> None:
    """``keys``: each point as written -> what it trains (hashable). Points that train the same would repeat one
    point of the sweep: refuse them, naming ``field``, the points and ``what(key)`` they share.

    Raises
    ------
    ConfigError
        Naming the field, the points that coincide and ``fix``.
    """
    groups: dict = {}
    for point, key in keys.items():
        groups.setdefault(key, []).append(point)
    same = [(key, points) for key, points in groups.items() if len(points) > 1]
    if same:
        key, points = same[0]
        raise ConfigError(f"{field}: {points} all give the same {what(key)}; the sweep would repeat one point. {fix}")


def budget_share_note(budget: float, share: float, why: str) -> str | None:
    """A log line where the proxies of ``budget`` cost ``share`` of one final model's compute, more than
    :data:`SHARE_RATIO` times off their label (``why``: the floor or rounding that made them); else None."""
    if budget > 0 and not share > SHARE_RATIO * budget and not share < budget / SHARE_RATIO:
        return None
    return (f"proxy budget {budget:g}: its proxies cost {share:.3g} of one final model's compute, {share / budget:.3g}x "
            f"the label ({why}); the point labelled {budget:g} measures proxies of that "
            f"{'larger' if share > budget else 'smaller'} budget (their proxy_compute is in results.csv)")
