"""Caps and the KL-to-prior term, checked against SciPy's SLSQP as an independent solver."""
import numpy as np
import pytest
from scipy.optimize import minimize

from mixmin_core import InputError, ProxyOutputs, mixmin
from mixmin_core.solver.constraints import (
    availability_caps,
    linear_min_capped,
    project_capped,
)

from .reference import reference_loss


def _slsqp(fun, n, caps):
    res = minimize(fun, np.full(n, 1 / n), method="SLSQP", bounds=[(1e-12, c) for c in caps],
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                   options={"ftol": 1e-13, "maxiter": 2000})
    return res.x


def _problem(seed=0, n=500):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    values = np.clip(y * rng.uniform(0.2, 0.7, (5, 1)) + rng.uniform(0, 0.4, (5, n)), 0, 1)
    return ProxyOutputs(values, "binary", labels=y, natural_weights=[5, 1, 1, 2, 1])


def test_capped_solution_matches_slsqp():
    outputs = _problem()
    free = mixmin(outputs, max_iter=3000, tol=1e-8)
    caps = np.full(5, 0.6)
    caps[np.argmax(free.weights)] = 0.5 * free.weights.max()  # a binding cap
    result = mixmin(outputs, caps=caps, max_iter=5000, tol=1e-7)
    ref = _slsqp(lambda w: reference_loss(outputs, w), 5, caps)
    assert (result.weights <= caps + 1e-6).all() and abs(result.weights.sum() - 1) < 1e-5
    assert result.weights[np.argmax(free.weights)] == pytest.approx(caps[np.argmax(free.weights)], abs=1e-5)
    assert result.loss <= reference_loss(outputs, ref) + 1e-5
    np.testing.assert_allclose(result.weights, ref, atol=0.01)
    assert result.success and result.gap <= 1e-7
    assert result.meta["caps"] == pytest.approx(caps.tolist())


def test_one_cap_for_every_source():
    """The Solver page's "max weight per source" is one number; the library refused it ("caps must have shape")."""
    outputs = _problem()
    np.testing.assert_array_equal(mixmin(outputs, caps=0.3).weights, mixmin(outputs, caps=np.full(5, 0.3)).weights)
    with pytest.raises(InputError, match=r"caps sum to 0.5 < 1"):
        mixmin(outputs, caps=0.1)


def test_prior_term_matches_slsqp_and_pulls_towards_prior():
    outputs = _problem(1)
    prior = outputs.natural_weights.astype(np.float64)
    lam = 0.05
    result = mixmin(outputs, prior_strength=lam, max_iter=5000, tol=1e-8)

    def fun(w):
        return reference_loss(outputs, w) + lam * np.sum(w * np.log(w / prior))

    ref = _slsqp(fun, 5, np.ones(5))
    assert result.loss == pytest.approx(fun(ref), abs=1e-5)
    np.testing.assert_allclose(result.weights, ref, atol=0.01)
    strong = mixmin(outputs, prior_strength=100.0, max_iter=500, step_size=0.005)
    np.testing.assert_allclose(strong.weights, prior, atol=0.02)


def test_projection_is_the_kl_projection():
    rng = np.random.default_rng(2)
    v = rng.uniform(0.1, 1, 6)
    caps = np.array([0.1, 0.5, 0.3, 0.05, 0.4, 0.3])
    w = project_capped(v, caps)
    ref = _slsqp(lambda x: np.sum(x * np.log(x / v)) - x.sum(), 6, caps)
    np.testing.assert_allclose(w, ref, atol=1e-5)
    assert w.sum() == pytest.approx(1)


def test_caps_summing_to_one_within_rounding_leave_the_caps():
    """0.3333333333 x 3 passed the check (sum 1 - 1e-10) and every source hit its cap: 0 / 0, NaN weights."""
    caps = np.full(3, 0.3333333333)
    with np.errstate(all="raise"):
        w = project_capped(np.array([0.7, 0.2, 0.1]), caps)
    np.testing.assert_allclose(w, 1 / 3)
    assert w.sum() == pytest.approx(1.0)


def test_linear_minimiser_over_capped_simplex():
    g = np.array([3.0, 1.0, 2.0])
    assert linear_min_capped(g, np.array([1.0, 0.4, 0.5])) == pytest.approx(0.4 * 1 + 0.5 * 2 + 0.1 * 3)


def test_availability_caps():
    np.testing.assert_allclose(availability_caps([10, 100, 1000], tokens_needed=400, repetitions=4), [0.1, 1, 1])


@pytest.mark.parametrize("caps,match", [
    ([0.3, 0.3, 0.2, 0.1, 0.05], r"caps sum to 0\.95 < 1, so no mixture satisfies them"),
    ([0.3, 0.3], r"caps must have shape \(5,\)"),
    ([0.5, 0.5, 0.5, 0.5, 0.0], r"caps must lie in \(0, 1\]"),
    ([0.5, 0.5, 0.5, 0.5, 1.5], r"caps must lie in \(0, 1\]"),
])
def test_cap_errors(caps, match):
    with pytest.raises(InputError, match=match):
        mixmin(_problem(), caps=caps)


def test_prior_errors():
    with pytest.raises(InputError, match="prior_strength must be a non-negative number"):
        mixmin(_problem(), prior_strength=-1)
    with pytest.raises(InputError, match="tokens_needed and repetitions must be positive"):
        availability_caps([1, 2], tokens_needed=0)
