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
