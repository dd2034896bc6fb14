"""Bad arguments to the search functions: one InputError naming the argument, raised before any work.

Each evaluate() row of a search trains a proxy, so every argument (also those used only after the runs: the
regressor's seed, top_k, the GP's xi) is checked first. ``BAD_SEARCH_INPUTS`` rows are ``(id, call, match)``:
``call(evaluate)`` must raise InputError matching ``match`` with ``evaluate`` never called, no regressor or
GP fitted and no pool run bought.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from mixmin_core.errors import InputError
from mixmin_core.search import bayesopt as bayesopt_module
from mixmin_core.search import multifidelity, swarm
from mixmin_core.search.bayesopt import bayesopt, bo_table
from mixmin_core.search.multifidelity import (
    ScalePool,
    SearchTrace,
    search_bo,
    search_random,
    search_regmix,
    trace_metrics,
)
from mixmin_core.search.run_tables import load_run_table
from mixmin_core.search.swarm import (
    fit_regressor,
    matched_trials,
    random_search,
    random_search_table,
    regmix,
    regmix_fit_choose,
    sample_random_mixtures,
)

NAMES = list("abcde")
_W = np.random.default_rng(1).dirichlet(np.ones(5), 30)
_Y = 1.0 - _W[:, 2] + 0.3 * _W[:, 0]


def _regmix(**kw):
    return lambda ev: regmix(ev, **{"source_names": NAMES, "prior": np.ones(5), "n_runs": 50, "rng": 0, **kw})


def _bayesopt(**kw):
    return lambda ev: bayesopt(ev, **{"source_names": NAMES, "prior": np.ones(5), "budget": 5, "rng": 0, **kw})


def _bo_table(**kw):
    return lambda ev: bo_table(**{"W": _W, "y": _Y, "source_names": NAMES, "budget": 6, "rng": 0, **kw})


def _rs_table(**kw):
    return lambda ev: random_search_table(**{"W": _W, "losses": _Y, "source_names": NAMES, "n_trials": 5, "rng": 0,
                                            **kw})


def _fit_choose(**kw):
    return lambda ev: regmix_fit_choose(**{"W": _W, "y": _Y, "source_names": NAMES, "prior": np.ones(5), "rng": 0,
                                           "n_candidates": 100, "top_k": 5, **kw})


def _synthetic_pool(n=40) -> ScalePool:
    rng = np.random.default_rng(0)
    W = rng.dirichlet(np.ones(4), size=n)
    high = 2.0 - 1.5 * W[:, 2]
    return ScalePool(weights=W.astype(np.float32), losses=np.stack([3 * high + 5, high]),
                     costs=np.stack([np.full(n, 0.02), np.ones(n)]), scales=np.array([1e6, 6e7]),
                     level_names=("1M", "60M"), source_names=("s0", "s1", "s2", "s3"))


@cache
def _regmix_tables():
    return load_run_table("regmix_1m_test"), load_run_table("regmix_60m_test")


def _from_tables(tables=None, **kw):
    return lambda ev: ScalePool.from_tables(list(_regmix_tables()) if tables is None else tables(), "pile_cc", **kw)


def _pool_search(search, **kw):
    return lambda ev: search(_synthetic_pool(), **{"budget": 3, "rng": 0, **kw})


_SEED = r"seed must be an integer seed in \[0, 2\*\*32\); got "

BAD_SEARCH_INPUTS = [
    # regmix: what is used after the swarm's runs (the regressor, the choice) is checked before them
    ("regmix-seed-text", _regmix(seed="x"), _SEED + "'x'"),
    ("regmix-seed-negative", _regmix(seed=-1), _SEED + "-1"),
    ("regmix-seed-too-large", _regmix(seed=2**32), _SEED + "4294967296"),
    ("regmix-seed-bool", _regmix(seed=True), _SEED + "True"),
    ("regmix-compute-text", _regmix(compute_per_run="x"), "compute_per_run must be a non-negative number; got 'x'"),
    ("regmix-compute-negative", _regmix(compute_per_run=-5), "compute_per_run must be a non-negative number; got -5"),
    ("regmix-top-k-zero", _regmix(top_k=0), "top_k must be an integer >= 1; got 0"),
    ("regmix-n-candidates-zero", _regmix(n_candidates=0), "n_candidates must be an integer >= 1; got 0"),
    ("regmix-top-k-over-candidates", _regmix(n_candidates=10, top_k=11), r"top_k must be at most n_candidates \(10\)"),
    ("regmix-min-weight-text", _regmix(min_weight="x"), "min_weight must be a non-negative number; got 'x'"),
    ("regmix-prior-keyed-missing", _regmix(prior={"a": 1.0}),
     r"prior is keyed by source name but has no entry for 4 source\(s\), e.g. \['b', 'c', 'd', 'e'\]"),
    ("regmix-prior-text", _regmix(prior="x"), "prior must be an array of numbers; got array of shape"),
    # bayesopt: the GP's arguments are checked before the first runs
    ("bayesopt-n-candidates-zero", _bayesopt(n_candidates=0), "n_candidates must be an integer >= 1; got 0"),
    ("bayesopt-n-candidates-huge", _bayesopt(n_candidates=10**12), "n_candidates must be at most 10,000,000"),
    ("bayesopt-xi-text", _bayesopt(xi="x"), "xi must be a non-negative number; got 'x'"),
    ("bayesopt-xi-nan", _bayesopt(xi=float("nan")), "xi must be a non-negative number; got nan"),
    ("bayesopt-seed-negative", _bayesopt(seed=-1), _SEED + "-1"),
    ("bayesopt-compute-negative", _bayesopt(compute_per_run=-5),
     "compute_per_run must be a non-negative number; got -5"),
    ("bayesopt-prior-keyed-missing", _bayesopt(prior={"a": 1, "b": 1, "c": 1, "d": 1}),
     r"prior is keyed by source name but has no entry for 1 source\(s\), e.g. \['e'\]"),
    # random search
    ("random-search-prior-keyed-missing",
     lambda ev: random_search(ev, source_names=NAMES, n_trials=3, rng=0, prior={"b": 1.0}),
     r"prior is keyed by source name but has no entry for 4 source\(s\)"),
    ("random-table-run-ids-number", _rs_table(run_ids=5), r"run_ids must name every run of the table \(30\); got 5"),
    ("random-table-run-ids-text", _rs_table(run_ids="abc"),
     r"run_ids must name every run of the table \(30\); got 'abc'"),
    ("random-table-frame-other-columns", _rs_table(W=pd.DataFrame(_W, columns=list("abcdx"))),
     r"W's columns must be the sources in any order; missing \['e'\], extra \['x'\]"),
    ("random-table-frame-repeated-column", _rs_table(W=pd.DataFrame(_W, columns=list("abcda")).assign(e=0.1)),
     r"W's columns must be the sources in any order; missing \[\], extra \[\], some repeated"),
    ("random-table-losses-2d", _rs_table(losses=_Y.reshape(2, 15)),
     r"losses must hold one loss per mixture, shape \(30,\) \(1-D, or a 1-column table\); got array of shape \(2, "),
    ("random-table-losses-frame-2-columns", _rs_table(losses=pd.DataFrame({"x": _Y, "y": _Y})),
     r"losses must hold one loss per mixture, shape \(30,\).*got array of shape \(30, 2\)"),
    ("random-table-W-text", _rs_table(W=[["x"] * 5] * 30), "W must be an array of numbers"),
    # a table of your own has no natural weights: its None said "got array of shape () and dtype object"
    ("regmix-fit-choose-prior-none", _fit_choose(prior=None), r"prior is required: .* prior_for\(table\)"),
    # as mixmin's prior: weight on a source that is not there is refused (it was dropped and the rest renormalised)
    ("regmix-fit-choose-prior-elsewhere", _fit_choose(prior={**dict.fromkeys(NAMES, 0.1), "zz": 0.5}),
     r"prior gives weight to 1 source\(s\) that are not among these sources, e.g. \['zz'\]"),
    # percentages: bo_table returned weights summing to 100, RegMix fitted on them and predicted for mixtures
    *[(f"{name}-W-percent", call(W=_W * 100), (r"W row 0 sums to 100 \(30 of 30 rows are off\); each row is a run's "
                                                r"mixture, summing to 1 \(\+-0.01\). If the rows hold percentages or "
                                                r"token counts, divide each row by its sum"))
      for name, call in (("random-table", _rs_table), ("bo-table", _bo_table), ("regmix-fit-choose", _fit_choose))],
    # bo_table: everything before the first GP fit
    ("bo-table-refit-every-zero", _bo_table(refit_every=0), "refit_every must be an integer >= 1; got 0"),
    ("bo-table-refit-every-negative", _bo_table(refit_every=-1), "refit_every must be an integer >= 1; got -1"),
    ("bo-table-max-fit-rows-zero", _bo_table(max_fit_rows=0), "max_fit_rows must be an integer >= 2; got 0"),
    ("bo-table-xi-text", _bo_table(xi="a"), "xi must be a non-negative number; got 'a'"),
    ("bo-table-seed-text", _bo_table(seed="a"), _SEED + "'a'"),
    ("bo-table-seed-negative", _bo_table(seed=-1), _SEED + "-1"),
    ("bo-table-tests-short-losses", _bo_table(tests={"t": (_W, _Y[:3])}),
     r"tests\['t'\]\[1\] must hold one loss per mixture, shape \(30,\)"),
    ("bo-table-tests-no-pair", _bo_table(tests={"t": _W}), r"tests\['t'\] must be a pair \(W, y\)"),
    ("bo-table-tests-list", _bo_table(tests=[(_W, _Y)]), r"tests must be a dict of name -> \(W_test, y_test\).*a list"),
    ("bo-table-tests-other-sources", _bo_table(tests={"t": (_W[:, :4], _Y)}),
     r"tests\['t'\]\[0\] must have shape \(n_mixtures, 5\)"),
    ("bo-table-run-ids-short", _bo_table(run_ids=[1]), r"run_ids must name every run of the table \(30\); got 1"),
    # regmix_fit_choose: all before the regressor is fitted
    ("fit-choose-val-number", _fit_choose(val=5), r"val must be a pair \(W, y\)"),
    ("fit-choose-tests-short", _fit_choose(tests={"t": (_W, _Y[:3])}), r"tests\['t'\]\[1\] must hold one loss"),
    ("fit-choose-top-k", _fit_choose(top_k=0), "top_k must be an integer >= 1; got 0"),
    ("fit-choose-prior", _fit_choose(prior=np.ones(4)), r"prior must have shape \(5,\)"),
    ("fit-choose-seed", _fit_choose(seed=1.5), _SEED + "1.5"),
    ("fit-choose-meta", _fit_choose(meta=5), "meta must be a dict"),
    ("fit-regressor-seed", lambda ev: fit_regressor(_W, _Y, seed=-3), _SEED + "-3"),
    # sizes that numpy cannot hold or count
    ("matched-trials-overflow", lambda ev: matched_trials(1e300, 1e-300),
     "total_compute / compute_per_trial must be at most 10,000,000 trials; got 1e.300 / 1e-300"),
    ("sample-too-many", lambda ev: sample_random_mixtures(10**12, 5, np.random.default_rng(0)),
     "n must be at most 10,000,000; got 1,000,000,000,000"),
    # multi-fidelity pools and searches
    ("from-tables-one", _from_tables(lambda: [_regmix_tables()[1]]),
     r"tables must list at least 2 run tables .*; got \['regmix_60m_test'\]"),
    ("from-tables-numbers", _from_tables(lambda: [1, 2]), r"tables must list at least 2 run tables .*; got \[1, 2\]"),
    ("from-tables-low-cost-negative", _from_tables(low_cost=-1), "low_cost must be a positive finite number; got -1"),
    ("from-tables-low-cost-text", _from_tables(low_cost="x"), "low_cost must be a positive finite number; got 'x'"),
    ("from-tables-rows-beyond", _from_tables(rows=[1000]),
     r"rows must be distinct row indices of table 'regmix_60m_test', in \[0, 256\).*got \[1000\]"),
    ("from-tables-rows-empty", _from_tables(rows=[]), r"rows must be distinct row indices.*got \[\]"),
    ("from-tables-rows-negative", _from_tables(rows=[-1, 0, 1]),
     r"rows must be distinct row indices.*got \[-1, 0, 1\]"),
    ("search-random-budget-text", _pool_search(search_random, budget="5"),
     "budget must be a positive number of largest-scale runs; got '5'"),
    ("search-random-budget-none", _pool_search(search_random, budget=None), "budget must be a positive number.*None"),
    ("search-random-budget-list", _pool_search(search_random, budget=[5]), r"budget must be a positive number.*\[5\]"),
    ("search-random-no-pool", lambda ev: search_random(None, budget=3, rng=0), "pool must be a ScalePool"),
    ("search-bo-transfer-other-sources", _pool_search(search_bo, transfer_W=np.ones((3, 2))),
     r"transfer_W must have shape \(n_mixtures, 4\); got array of shape \(3, 2\)"),
    ("search-bo-levels-fractions", _pool_search(search_bo, levels=[0.5, 1.7]),
     r"levels must be scale indices in \[0, 1\] including the largest \(1\); got \[0.5, 1.7\]"),
    ("search-bo-levels-number", _pool_search(search_bo, levels=1), r"levels must be scale indices.*; got 1"),
    ("search-bo-refit-growth-zero", _pool_search(search_bo, refit_growth=0),
     "refit_growth must be a finite number >= 1; got 0"),
    ("search-bo-refit-growth-nan", _pool_search(search_bo, refit_growth=float("nan")),
     "refit_growth must be a finite number >= 1; got nan"),
    ("search-regmix-transfer-other-sources", _pool_search(search_regmix, transfer_W=np.ones((3, 2))),
     r"transfer_W must have shape \(n_mixtures, 4\)"),
    ("search-regmix-seed-text", _pool_search(search_regmix, seed="x"), _SEED + "'x'"),
    ("trace-metrics-within-negative", lambda ev: trace_metrics(SearchTrace("x"), _synthetic_pool(), within=-1),
     "within must be a non-negative number; got -1"),
]


@pytest.fixture
def no_work(monkeypatch):
    """Fail on any proxy-like work: fitting a regressor or a GP, buying a pool run."""
    def work(*args, **kwargs):
        raise AssertionError("work was done before the bad argument was refused")
    monkeypatch.setattr(swarm, "fit_regressor", work)
    monkeypatch.setattr(multifidelity, "fit_regressor", work)
    monkeypatch.setattr(bayesopt_module, "fit_gp", work)
    monkeypatch.setattr(SearchTrace, "buy", work)


@pytest.mark.parametrize("call,match", [row[1:] for row in BAD_SEARCH_INPUTS],
                         ids=[row[0] for row in BAD_SEARCH_INPUTS])
def test_bad_search_inputs_are_refused_before_any_work(call, match, no_work):
    calls = []

    def evaluate(W):  # a proxy per row: counted, and valid, so only the arguments can fail
        calls.append(len(W))
        return np.asarray(W, dtype=np.float64)[:, 0]

    with pytest.raises(InputError, match=match):
        call(evaluate)
    assert calls == []


# ----------------------------------------------------------------------------- valid inputs


def test_a_table_draw_with_no_finite_loss_is_not_success_like_random_search():
    result = random_search_table(np.array([[.5, .5], [.2, .8], [.9, .1]]), [np.nan, 1., 2.], source_names=["a", "b"],
                                 n_trials=1, rng=np.random.default_rng(11))
    assert result.meta["run_indices"] == [0]  # the one NaN run
    assert not result.success and result.status == "non_finite" and result.meta["best_run"] is None
    np.testing.assert_allclose(result.weights, 0.5)


def test_a_frame_with_source_columns_is_read_by_name():
    ids = [f"r{i}" for i in range(30)]
    plain = random_search_table(_W, _Y, source_names=NAMES, n_trials=5, rng=0, run_ids=ids)
    shuffled = pd.DataFrame(_W, columns=NAMES)[NAMES[::-1]]
    named = random_search_table(shuffled, pd.Series(_Y), source_names=NAMES, n_trials=5, rng=0,
                                run_ids=pd.Series(ids, index=range(100, 130)))  # ids by position, not label
    np.testing.assert_array_equal(named.weights, plain.weights)
    assert named.meta["best_run"] == plain.meta["best_run"]
    by_position = random_search_table(pd.DataFrame(_W), pd.DataFrame({"loss": _Y}), source_names=NAMES, n_trials=5,
                                      rng=0)  # 0, 1, ... columns and a 1-column table of losses
    np.testing.assert_array_equal(by_position.weights, plain.weights)
    bo_plain = bo_table(_W, _Y, source_names=NAMES, budget=3, rng=0)
    bo_named = bo_table(shuffled, _Y, source_names=NAMES, budget=3, rng=0, tests={"t": (shuffled, _Y)})
    assert bo_named.meta["evaluated"] == bo_plain.meta["evaluated"]


def test_priors_keyed_by_source_name_match_priors_in_source_order():
    prior = np.array([3.0, 1.0, 2.0, 5.0, 4.0])
    keyed = dict(zip(NAMES[::-1], prior[::-1]))

    def ev(W):
        return 1.0 - np.asarray(W, dtype=np.float64)[:, 2]

    a = random_search(ev, source_names=NAMES, n_trials=4, rng=3, prior=prior)
    b = random_search(ev, source_names=NAMES, n_trials=4, rng=3, prior=keyed)
    np.testing.assert_array_equal(a.weights, b.weights)
    a = bayesopt(ev, source_names=NAMES, prior=prior, budget=2, rng=3)
    b = bayesopt(ev, source_names=NAMES, prior=pd.Series(keyed), budget=2, rng=3)
    np.testing.assert_array_equal(a.weights, b.weights)


def test_largest_seed_and_zero_compute_are_accepted():
    result = fit_regressor(_W, _Y, seed=2**32 - 1, preset="mixmin-paper")
    assert result.n_train > 0
    ok = regmix(lambda W: 1.0 - np.asarray(W, dtype=np.float64)[:, 2], source_names=NAMES, prior=np.ones(5), n_runs=8,
                rng=0, preset="mixmin-paper", n_candidates=200, top_k=5, compute_per_run=0, seed=np.int64(3))
    assert ok.meta["compute"] == 0.0


def test_no_transfer_mixtures_are_predicted_as_none():
    """A held-out table with no finite loss at the target gives (0, P) transfer mixtures: nothing to predict."""
    for search in (search_bo, search_regmix):
        trace = search(_synthetic_pool(), budget=2, rng=0, transfer_W=np.empty((0, 4)))
        assert trace.transfer_pred.shape == (0,)


def test_table_rows_at_one_stay_as_they_are_and_rounded_rows_sum_to_one():
    """Renormalising rows that summed to 1 up to float32 noise (3e-8) moved RegMix's pick on RegMix's own table."""
    W = _W.astype(np.float32).astype(np.float64)
    assert np.abs(W.sum(1) - 1).max() > 0  # float32 noise
    np.testing.assert_array_equal(swarm._check_weights_table("W", W), W)
    rounded = np.round(_W, 3)  # as published: rows sum to 1 +- 0.003
    np.testing.assert_allclose(swarm._check_weights_table("W", rounded).sum(1), 1.0, atol=1e-12)
