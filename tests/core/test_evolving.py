import numpy as np
import pytest

from mixmin_core import InputError, MixtureResult, mixmin
from mixmin_core.engine.evolving import (
    compute_saved,
    content_hash,
    iterations_to_loss,
    l1_by_group,
    mixture_change,
    warm_start,
)
from mixmin_core.solver.synthetic import example_problem


def test_content_hash_tracks_content_not_identity():
    a = np.arange(5, dtype=np.int32)
    assert content_hash(a, {"trees": 50}) == content_hash(a.copy(), {"trees": 50})
    assert content_hash(a, {"trees": 50}) != content_hash(a, {"trees": 51})
    assert content_hash(a) != content_hash(a.astype(np.int64))
    assert content_hash(a[:4]) != content_hash(a)


def test_warm_start_is_faster_and_reaches_the_same_mixture():
    outputs, _ = example_problem(n_sources=6, n_samples=4000, seed=4)
    old = mixmin(outputs.select(sources=list(outputs.source_names[:5])), max_iter=2000, tol=1e-7)
    init = warm_start(old, outputs.source_names)
    assert init.sum() == pytest.approx(1) and (init > 0).all()
    cold = mixmin(outputs, max_iter=2000, tol=1e-7)
    warm = mixmin(outputs, max_iter=2000, tol=1e-7, init=init)
    assert warm.n_iter < cold.n_iter
    np.testing.assert_allclose(warm.weights, cold.weights, atol=2e-3)


def test_mixture_change_and_compute_saved():
    prev = MixtureResult(np.array([0.5, 0.5], np.float32), ("a", "b"))
    cur = MixtureResult(np.array([0.5, 0.3, 0.2], np.float32), ("a", "b/1", "b/2"))
    change = mixture_change(prev, cur)
    assert change["l1"] == pytest.approx(1.0)
    assert change["largest_moves"][0]["source"] == "b"
    saved = compute_saved({"a": 10, "b/1": 5, "b/2": 5}, {"b/1", "b/2"})
    assert saved == {"total": 20, "spent": 10, "saved": 10, "saved_fraction": 0.5}
    with pytest.raises(InputError, match="new_share must be positive"):
        warm_start(prev, ["a"], new_share=0)


def test_l1_by_group_does_not_count_a_split_as_a_change():
    prev = MixtureResult(np.array([0.5, 0.5], np.float32), ("a", "b"))
    halves = MixtureResult(np.array([0.5, 0.3, 0.2], np.float32), ("a", "b#1", "b#2"))
    moved = MixtureResult(np.array([0.7, 0.2, 0.1], np.float32), ("a", "b#1", "b#2"))
    group = {"a": "a", "b": "b", "b#1": "b", "b#2": "b"}
    assert mixture_change(prev, halves)["l1"] == pytest.approx(1.0)
    assert l1_by_group(prev, halves, group) == pytest.approx(0.0, abs=1e-7)
    assert l1_by_group(prev, moved, group) == pytest.approx(0.4, abs=1e-6)


def test_iterations_to_loss_counts_until_the_better_final_loss():
    outputs, _ = example_problem(n_sources=6, n_samples=4000, seed=4)
    cold = mixmin(outputs, max_iter=2000, tol=1e-7)
    at_optimum = mixmin(outputs, max_iter=2000, tol=1e-7, init=cold.weights)
    assert iterations_to_loss(at_optimum, cold) == 0
    assert 0 < iterations_to_loss(cold, at_optimum) <= cold.n_iter
