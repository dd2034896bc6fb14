"""Bayesian optimisation over mixtures: expected improvement, table BO, simplex BO (multi-fidelity BO:
test_multifidelity.py)."""
import numpy as np
import pytest
from scipy.stats import norm

from mixmin_core.errors import InputError
from mixmin_core.search.bayesopt import (
    bayesopt,
    bo_table,
    expected_improvement,
    fit_gp,
    pick_best,
)
from mixmin_core.search.swarm import random_search_table

NAMES = tuple(f"s{i}" for i in range(4))


def smooth_loss(W, best=2):
    """Lowest at the corner ``best``; smooth in the weights (a GP's home ground)."""
    W = np.asarray(W, dtype=np.float64)
    return 2.0 - 1.5 * W[:, best] + 0.5 * W[:, 0] * W[:, 1] + 0.3 * np.sin(3 * W[:, 3])


def test_expected_improvement_known_values():
    assert expected_improvement([1.0], [0.0], best=3.0)[0] == pytest.approx(2.0)  # certain gain
    assert expected_improvement([4.0], [0.0], best=3.0)[0] == 0.0  # certain loss
    assert expected_improvement([3.0], [2.0], best=3.0)[0] == pytest.approx(2.0 * norm.pdf(0.0))
    mu, sd = 2.5, 0.7  # closed form against a Monte Carlo estimate
    draws = np.random.default_rng(0).normal(mu, sd, 400_000)
    assert expected_improvement([mu], [sd], best=3.0)[0] == pytest.approx(np.maximum(3.0 - draws, 0).mean(), rel=1e-2)
    assert expected_improvement([3.0], [1.0], best=3.0, xi=0.5)[0] < expected_improvement([3.0], [1.0], best=3.0)[0]


def test_gp_interpolates_a_smooth_loss():
    W = np.random.default_rng(1).dirichlet(np.ones(4), size=60)
    y = smooth_loss(W)
    gp = fit_gp(W[:50], y[:50])
    assert np.corrcoef(gp.predict(W[50:]), y[50:])[0, 1] > 0.9


def test_fidelity_kernel_gradient_matches_finite_differences():
    rng = np.random.default_rng(6)
    X = np.c_[rng.dirichlet(np.ones(4), size=30), rng.integers(0, 2, size=30)]
    gp = fit_gp(X, smooth_loss(X[:, :4]) + X[:, 4], n_fidelity_dims=1)
    assert gp.kernel_.theta.size == 4  # constant, weights' length scale, fidelity length scale, noise
    theta = np.log([1.0, 0.3, 0.8, 1e-2])  # a well-conditioned point (the fitted one may sit at a bound)
    lml, grad = gp.log_marginal_likelihood(theta, eval_gradient=True)
    for j in range(theta.size):
        step = np.zeros_like(theta)
        step[j] = 1e-4
        numeric = (gp.log_marginal_likelihood(theta + step) - gp.log_marginal_likelihood(theta - step)) / 2e-4
        assert grad[j] == pytest.approx(numeric, rel=1e-3, abs=1e-3)


def test_bo_table_beats_random_search_at_equal_lookups():
    W = np.random.default_rng(2).dirichlet(np.full(4, 0.7), size=300)
    y = smooth_loss(W)
    bo, rs = [], []
    for seed in range(5):
        result = bo_table(W, y, source_names=NAMES, budget=14, n_init=5, rng=np.random.default_rng(seed))
        assert result.method == "bo" and result.meta["compute"] == 14.0 and len(set(result.meta["evaluated"])) == 14
        assert result.loss == pytest.approx(y[result.meta["best_run"]])
        assert np.all(np.diff(result.meta["best_so_far"]) <= 0)
        bo.append(result.loss)
        rs.append(random_search_table(W, y, source_names=NAMES, n_trials=14, rng=np.random.default_rng(seed)).loss)
    # measured in regret over the best run in the table: BO's is a fraction of random search's
    assert np.mean(bo) - y.min() < 0.5 * (np.mean(rs) - y.min())
    assert int(np.argmax(W[np.argmin(y)])) == 2  # the table's best run is near the known best corner


def test_bo_table_does_not_follow_the_files_row_order():
    """Where the GP sees no structure (here: losses unrelated to the weights), expected improvement is flat
    over the pool, and ``argmax`` took the lowest rows: a table sorted by loss handed BO its best runs."""
    rng = np.random.default_rng(3)
    W, y = rng.dirichlet(np.ones(4), size=80), np.sort(rng.normal(3.0, 0.1, 80))  # sorted: row 0 is the best run
    first_rows = sum(bool({0, 1, 2} & set(bo_table(W, y, source_names=NAMES, budget=5,
                                                    rng=np.random.default_rng(seed)).meta["evaluated"][2:]))
                     for seed in range(20))
    assert first_rows <= 6  # at random, three picks of 78 rows hit rows 0-2 in about 2 of 20 seeds


def test_pick_best_breaks_ties_at_random():
    rng = np.random.default_rng(0)
    picks = [pick_best(np.array([0.5, 1.0, 1.0 - 1e-5, 0.2, 1.0]), rng) for _ in range(300)]
    assert set(picks) == {1, 2, 4}  # within 0.1% of the best
    assert pick_best(np.array([-np.inf, 3.0, -np.inf]), rng) == 1
    assert pick_best(np.array([np.nan, 2.0, np.nan]), rng) == 1
    assert {pick_best(np.array([-np.inf, 0.0, 0.0]), rng) for _ in range(50)} == {1, 2}  # no improvement anywhere


def test_bo_table_reports_test_spearman():
    W = np.random.default_rng(4).dirichlet(np.ones(4), size=120)
    y = smooth_loss(W)
    result = bo_table(W[:100], y[:100], source_names=NAMES, budget=20, n_init=10, rng=np.random.default_rng(0),
                      tests={"rest": (W[100:], y[100:])})
    assert result.meta["spearman_tests"]["rest"] > 0.6
    assert result.meta["metrics"]["spearman/rest"] == result.meta["spearman_tests"]["rest"]


def test_bayesopt_on_the_simplex_finds_the_best_corner():
    result = bayesopt(smooth_loss, source_names=NAMES, prior=np.full(4, 0.25), budget=15, n_init=5,
                      rng=np.random.default_rng(5), n_candidates=3000, compute_per_run=2.0)
    assert result.meta["compute"] == 30.0 and len(result.meta["candidate_losses"]) == 15
    assert int(np.argmax(result.weights)) == 2 and result.weights[2] > 0.7
    initial_best = min(result.meta["candidate_losses"][:5])
    assert result.loss < initial_best  # the EI rounds improved on the random start
    np.testing.assert_allclose(result.weights.sum(), 1, atol=1e-6)


def test_bo_takes_a_seed_a_budget_of_one_and_losses_that_all_fail():
    """rng=0 raised AttributeError ('int' has no 'choice'), budget=1 failed on the default n_init (2), and
    all-NaN losses reached sklearn ('Found array with 0 samples')."""
    W = np.random.default_rng(3).dirichlet(np.ones(4), size=30)
    y = smooth_loss(W)
    seeded = bo_table(W, y, source_names=NAMES, budget=4, rng=7)
    assert seeded.meta["evaluated"] == bo_table(W, y, source_names=NAMES, budget=4, rng=np.random.default_rng(7)).meta["evaluated"]
    one = bo_table(W, y, source_names=NAMES, budget=1, rng=0, tests={"all": (W, y)})
    assert one.meta["n_init"] == 1 and len(one.meta["evaluated"]) == 1 and one.meta["spearman_tests"] == {"all": None}
    assert bayesopt(smooth_loss, source_names=NAMES, prior=np.full(4, 0.25), budget=1, rng=0).meta["n_init"] == 1
    failed = bayesopt(lambda W: np.full(len(W), np.nan), source_names=NAMES, prior=np.full(4, 0.25), budget=4, rng=1)
    assert failed.status == "non_finite" and len(failed.meta["candidate_losses"]) == 4


@pytest.mark.parametrize("call,match", [
    (lambda: bo_table(np.full((5, 4), 0.25), np.arange(5.0), source_names=NAMES, budget=6,
                      rng=np.random.default_rng()), "budget must be at most the number of runs"),
    (lambda: bo_table(np.full((5, 4), 0.25), np.arange(5.0), source_names=NAMES, budget=3, n_init=4,
                      rng=np.random.default_rng()), r"n_init must be at most budget \(3\)"),
    (lambda: bo_table(np.full((5, 3), 1 / 3), np.arange(5.0), source_names=NAMES, budget=3,
                      rng=np.random.default_rng()), r"W must have shape \(n_mixtures, 4\)"),
    (lambda: bayesopt(smooth_loss, source_names=NAMES, prior=[0.5, 0.5, 0.0, 0.0], budget=3,
                      rng=np.random.default_rng()), "prior must be positive"),
    (lambda: bayesopt(smooth_loss, source_names=NAMES, prior=np.full(4, 0.25), budget=0,
                      rng=np.random.default_rng()), "budget must be an integer >= 1"),
])
def test_documented_errors(call, match):
    with pytest.raises(InputError, match=match):
        call()
