"""The exponentiated-gradient step against its formula, for one weight vector and a batch."""
import numpy as np
import pytest

from mixmin_core.solver.simplex import entropic_step


def _formula(w, g, eta):
    """``w exp(-eta g) / Z`` in float64."""
    e = np.asarray(w, np.float64) * np.exp(-eta * (np.asarray(g, np.float64) - np.min(g, axis=-1, keepdims=True)))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("shape", [(7,), (1328,), (30, 50)])
def test_step_matches_the_formula_and_keeps_float32(shape):
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1] or None).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    w[..., 0] = 0.0  # a zero weight stays zero (log 0 = -inf)
    out = entropic_step(w, g, 2.0)
    assert out.dtype == np.float32 and out.shape == shape
    np.testing.assert_allclose(out, _formula(w, g, 2.0), rtol=1e-5, atol=1e-8)
    assert (out[..., 0] == 0).all()
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-6)


def test_float64_stays_float64_and_a_huge_step_does_not_underflow_to_nan():
    w = np.array([0.5, 0.25, 0.25])
    out = entropic_step(w, np.array([0.0, 1e4, 2e4]), 1.0)  # exp(-1e4) underflows: the max-shift keeps it finite
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [1.0, 0.0, 0.0])


def test_one_gradient_broadcasts_over_a_batch_of_weights():
    rng = np.random.default_rng(1)
    W = rng.dirichlet(np.ones(5), size=4).astype(np.float32)
    g = rng.normal(size=5).astype(np.float32)
    out = entropic_step(W, g, 0.5)
    for i in range(4):
        np.testing.assert_allclose(out[i], entropic_step(W[i], g, 0.5), rtol=1e-6)


@pytest.mark.parametrize("step_size", [1e9, 1e12, 1e30])
def test_a_huge_finite_step_lands_on_a_vertex(step_size):
    """Logits near 1e10 and beyond, once rounded to float32, all fell hundreds below their unrounded
    maximum: every weight underflowed to zero (ZeroDivisionError, or a NaN iterate)."""
    g = np.array([0.6295, 0.6209, 0.6372, 0.6613], dtype=np.float32)
    out = entropic_step(np.full(4, 0.25, np.float32), g, step_size)
    np.testing.assert_array_equal(out, [0.0, 1.0, 0.0, 0.0])
