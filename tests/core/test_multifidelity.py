"""Multi-fidelity BO that buys its own fidelities: the GP, the acquisition, baselines, real pools."""
import numpy as np
import pytest

from mixmin_core.errors import InputError
from mixmin_core.search.multifidelity import (
    ScaleGP,
    ScalePool,
    SearchTrace,
    search_bo,
    search_random,
    search_regmix,
    trace_metrics,
)
from mixmin_core.search.run_tables import load_run_table

NAMES = tuple(f"s{i}" for i in range(4))


def smooth_loss(W, best=2):
    W = np.asarray(W, dtype=np.float64)
    return 2.0 - 1.5 * W[:, best] + 0.5 * W[:, 0] * W[:, 1] + 0.3 * np.sin(3 * W[:, 3])


def synthetic_pool(n=120, *, low="related", low_cost=0.02, seed=0):
    """Two scales; the small one is a shifted, scaled copy of the large one (or unrelated noise)."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.full(4, 0.7), size=n)
    high = smooth_loss(W)
    small = 3.0 * high + 5.0 + rng.normal(0, 0.01, n) if low == "related" else rng.normal(8.0, 0.5, n)
    return ScalePool(weights=W.astype(np.float32), losses=np.stack([small, high]),
                     costs=np.stack([np.full(n, low_cost), np.ones(n)]), scales=np.array([1e6, 6e7]),
                     level_names=("1M", "60M"), source_names=NAMES)


def test_scale_gp_matches_scikit_learn_with_the_same_kernel():
    """One scale: amp * Matern52(sqrt-weights) + offset + noise is an ordinary GP (independent reference)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    W = np.random.default_rng(1).dirichlet(np.ones(4), size=40)
    y = smooth_loss(W)
    gp = ScaleGP(W, [0.0])
    gp.theta = np.log([0.8, 0.4, 1.0, 0.3, 1e-3])
    gp.fit(np.arange(30), np.zeros(30, dtype=int), y[:30], learn=False)
    mean, sd, _ = gp.posterior(np.arange(30, 40), 0, [])
    z, center, scale = (y[:30] - y[:30].mean()) / y[:30].std(ddof=1), y[:30].mean(), y[:30].std(ddof=1)
    kernel = ConstantKernel(0.8, "fixed") * Matern(0.4, "fixed", nu=2.5) + ConstantKernel(0.3, "fixed") \
        + WhiteKernel(1e-3 + 1e-8, "fixed")
    ref = GaussianProcessRegressor(kernel, optimizer=None).fit(np.sqrt(W[:30]), z)
    ref_mean = ref.predict(np.sqrt(W[30:]))
    np.testing.assert_allclose(mean, center + scale * ref_mean, rtol=1e-6)
    # the sd is that of the mixture-dependent part: the Matern term's posterior, offset and noise left out
    K = kernel(np.sqrt(W[:30]))
    k_star = 0.8 * Matern(0.4, nu=2.5)(np.sqrt(W[:30]), np.sqrt(W[30:]))
    var = 0.8 - np.sum(k_star * np.linalg.solve(K, k_star), axis=0)
    np.testing.assert_allclose(sd, scale * np.sqrt(var), rtol=1e-4)


def test_scale_gp_correlates_scales_that_move_together():
    pool = synthetic_pool()
    rows = np.r_[np.arange(60), np.arange(10)]
    levels = np.r_[np.zeros(60, int), np.ones(10, int)]
    gp = ScaleGP(pool.weights, np.log(pool.scales))
    gp.fit(rows, levels, pool.losses[levels, rows])
    _, _, per_level = gp.posterior(np.arange(60, 120), 1, [0, 1])
    assert np.median(per_level[0][1]) > 0.8  # a 1M run says a lot about the 60M loss
    unrelated = synthetic_pool(low="noise")
    gp = ScaleGP(unrelated.weights, np.log(unrelated.scales))
    gp.fit(rows, levels, unrelated.losses[levels, rows])
    assert np.median(gp.posterior(np.arange(60, 120), 1, [0])[2][0][1]) < 0.5


def test_multi_fidelity_bo_buys_cheap_runs_and_beats_single_fidelity_at_equal_cost():
    pool = synthetic_pool()
    regret_mf, regret_sf = [], []
    for seed in range(4):
        mf = search_bo(pool, budget=4, rng=np.random.default_rng(seed))
        sf = search_bo(pool, budget=4, rng=np.random.default_rng(seed), levels=[1])
        assert mf.levels[:2] == [1, 1]  # starts with largest-scale runs only: no 1M run bought up front
        assert 0 < mf.levels.count(0) and mf.spent <= 4 + 1e-9 and sf.spent == 4 and set(sf.levels) == {1}
        assert mf.losses == [pool.losses[lv, i] for lv, i in zip(mf.levels, mf.indices)]
        assert len(set(zip(mf.levels, mf.indices))) == len(mf.levels)  # never buys a run twice
        regret_mf.append(trace_metrics(mf, pool)["regret"])
        regret_sf.append(trace_metrics(sf, pool)["regret"])
    assert np.mean(regret_mf) < np.mean(regret_sf)
    assert np.mean(regret_mf) < 0.1 * (np.mean(pool.losses[1]) - pool.best)


def test_baselines_spend_the_budget_and_recommend_measured_runs():
    pool = synthetic_pool()
    rs = search_random(pool, budget=5, rng=np.random.default_rng(0))
    assert rs.levels == [1] * 5 and rs.spent == 5
    assert search_random(pool, budget=5, rng=0).indices == rs.indices  # a seed works as the other searches'
    rm = search_regmix(pool, budget=5, rng=np.random.default_rng(0))
    n_small = rm.levels.count(0)
    assert n_small == 120 and rm.levels[:n_small] == [0] * n_small  # the whole pool at 1M fits 4 runs' budget
    assert rm.spent <= 5 + 1e-9 and rm.levels[n_small:] == [1] * (len(rm.levels) - n_small)
    assert pool.losses[1, rm.recommendation] == min(loss for loss, lv in zip(rm.losses, rm.levels) if lv == 1)


def test_trace_metrics_regret_cost_and_cost_to_one_percent():
    pool = ScalePool(weights=np.full((3, 4), 0.25, np.float32), losses=np.array([[5.0, 6.0, 7.0], [1.0, 1.005, 2.0]]),
                     costs=np.array([[0.5, 0.5, 0.5], [2.0, 2.0, 2.0]]), scales=np.array([1.0, 2.0]),
                     level_names=("a", "b"), source_names=NAMES)
    trace = SearchTrace("x")
    for level, index in [(0, 0), (1, 2), (1, 1), (1, 0)]:
        trace.buy(pool, level, index)
    assert trace.incumbent == [-1, 2, 1, 0]
    m = trace_metrics(pool=pool, trace=trace)
    # costs in largest-scale runs (2.0 each): 0.25, 1.25, 2.25, 3.25
    assert m["regret"] == 0 and m["cost"] == pytest.approx(3.25) and m["runs_a"] == 1 and m["runs_b"] == 3
    assert m["cost_to_0.01"] == pytest.approx(2.25) and m["cost_to_best"] == pytest.approx(3.25)
    assert np.isnan(trace_metrics(SearchTrace("none"), pool)["regret"])


def test_real_pools_start_empty_and_stay_within_budget():
    tables = [load_run_table(f"admire_{s}") for s in ("0.5b", "3b", "7b")]
    pool = ScalePool.from_tables(tables, "avg_id+ood")
    assert pool.losses.shape == (3, 76) and np.isfinite(pool.losses).all()
    assert pool.top_cost == pytest.approx(tables[2].costs.mean())  # ADMIRE's train_time
    trace = search_bo(pool, budget=3, rng=np.random.default_rng(0))
    assert trace.spent <= 3 * pool.top_cost * (1 + 1e-9) and trace.levels[:2] == [2, 2]
    regmix = ScalePool.from_tables([load_run_table("regmix_1m_test"), load_run_table("regmix_60m_test")], "pile_cc")
    assert regmix.costs[0, 0] == pytest.approx(1 / 60) and regmix.costs[1, 0] == 1.0


@pytest.mark.parametrize("call,match", [
    (lambda: search_bo(synthetic_pool(), budget=0, rng=np.random.default_rng()), "budget must be a positive number"),
    (lambda: search_bo(synthetic_pool(), budget=2, levels=[0], rng=np.random.default_rng()),
     r"levels must be scale indices in \[0, 1\] including the largest"),
    (lambda: search_bo(synthetic_pool(), budget=2, n_init=0, rng=np.random.default_rng()), "n_init must be an integer >= 1"),
    (lambda: ScalePool.from_tables([load_run_table("regmix_60m_test"), load_run_table("regmix_1m_test")], "pile_cc"),
     "ordered by increasing model scale"),
    (lambda: ScalePool.from_tables([load_run_table("olmix_dclm"), load_run_table("regmix_60m_test")], "pile_cc"),
     "has other sources"),
])
def test_documented_errors(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_a_first_pick_dearer_than_the_budget_is_passed_over():
    """Costs vary about their mean (ADMIRE's train_time): a budget of one mean-cost run must still buy a run
    (the first random pick cost more than the mean, so BO bought nothing and recommended the pool's last row)."""
    pool = synthetic_pool(n=12)
    pool = ScalePool(weights=pool.weights, losses=pool.losses, scales=pool.scales, level_names=pool.level_names,
                     source_names=NAMES, costs=np.stack([np.full(12, 0.02), np.r_[np.full(6, 0.9), np.full(6, 1.1)]]))
    for seed in range(8):
        for search in (search_bo, search_random):
            trace = search(pool, budget=1, rng=np.random.default_rng(seed))
            assert trace.recommendation >= 0 and pool.costs[1, trace.recommendation] == pytest.approx(0.9)
            assert trace.spent <= pool.top_cost * (1 + 1e-9)
    with pytest.raises(InputError, match="buys no largest-scale run: the cheapest costs 0.9; raise the budget to at "
                                         "least 0.9"):
        search_bo(pool, budget=0.5, rng=0)


def test_regmix_at_equal_cost_passes_over_a_dear_small_run_and_buys_the_cheap_ones():
    """It stopped buying small runs at the first one dearer than what was left, with cheap ones still affordable."""
    pool = synthetic_pool(n=40)
    low = np.full(40, 0.02)
    low[:2] = 0.6  # two dear small runs: the second no longer fits after the first
    pool = ScalePool(weights=pool.weights, losses=pool.losses, scales=pool.scales, level_names=pool.level_names,
                     source_names=NAMES, costs=np.stack([low, np.ones(40)]))
    for seed in range(6):
        trace = search_regmix(pool, budget=2, rng=np.random.default_rng(seed))
        small = [i for lv, i in zip(trace.levels, trace.indices) if lv == 0]
        spent = float(pool.costs[0, small].sum())
        left = [i for i in range(40) if i not in small]
        assert all(spent + pool.costs[0, i] > 1.0 + 1e-9 for i in left), (seed, spent)  # nothing affordable left
