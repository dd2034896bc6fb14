"""layout.sweep_point: the one parser of sweep variant names (the app's sweep axes use it)."""
from __future__ import annotations

import math

import pytest

from mixmin_core.runs.layout import budget_variant, sweep_point


@pytest.mark.parametrize("variant,expected", [
    ("sources-10", ("sources", 10.0)), ("sources-100", ("sources", 100.0)), ("Sources=3", ("sources", 3.0)),
    ("budget-0.05", ("compute", 0.05)), ("compute-5pct", ("compute", 0.05)), ("compute-10%", ("compute", 0.1)),
    (budget_variant(0.01), ("compute", 0.01)),
])
def test_sweep_points(variant, expected):
    assert sweep_point(variant) == expected


def test_all_sources_is_the_largest_point():
    kind, x = sweep_point("sources-all")
    assert kind == "sources" and math.isinf(x)


@pytest.mark.parametrize("variant", ["", "main", "v1", "sources-", "sources-ten", "trial0"])
def test_other_variants_are_not_sweep_points(variant):
    assert sweep_point(variant) is None


def test_sweep_points_that_train_the_same_are_refused():
    """chem proxy_budgets [0.0001, 0.0005] trained one set of proxies (the row floor) and ran it twice; LM refused
    such a sweep. Both use one check now."""
    from mixmin_core.engine.sweeps import check_distinct_points
    from mixmin_core.errors import ConfigError

    check_distinct_points("proxy_budgets", {0.1: 1, 0.5: 2}, str, "fix")
    with pytest.raises(ConfigError, match=r"proxy_budgets: \[0.0001, 0.0005\] all give the same 20 rows; the sweep "
                                          r"would repeat one point. Keep one\."):
        check_distinct_points("proxy_budgets", {0.0001: 20, 0.0005: 20, 1.0: 100}, lambda k: f"{k} rows", "Keep one.")


@pytest.mark.parametrize("budget,share,said", [(0.0001, 0.0091, "91x the label"), (0.01, 0.87, "87x the label"),
                                               (0.5, 0.1, "0.2x the label"), (0.1, 0.15, None), (1.0, 1.0, None)])
def test_a_budget_whose_proxies_cost_far_from_its_label_is_said(budget, share, said):
    from mixmin_core.engine.sweeps import budget_share_note

    note = budget_share_note(budget, share, "a floor")
    assert note is None if said is None else (said in note and "(a floor)" in note and f"labelled {budget:g}" in note)
