import numpy as np
import pytest

from mixmin_core import InputError, ProxyOutputs, bootstrap_weights, mixmin
from mixmin_core.solver.synthetic import example_problem


def test_intervals_cover_the_point_estimate_and_are_reproducible():
    outputs, true_w = example_problem(n_sources=4, n_samples=2000, seed=1)
    point = mixmin(outputs).weights
    a = bootstrap_weights(outputs, n_boot=60, seed=3)
    b = bootstrap_weights(outputs, n_boot=60, seed=3)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.samples.shape == (60, 4) and a.samples.dtype == np.float32
    np.testing.assert_allclose(a.samples.sum(1), 1, atol=1e-5)
    assert (a.lower <= point + 0.02).all() and (point - 0.02 <= a.upper).all()
    assert (a.lower <= a.median).all() and (a.median <= a.upper).all()
    # more target samples -> narrower intervals
    big, _ = example_problem(n_sources=4, n_samples=20000, seed=1)
    c = bootstrap_weights(big, n_boot=60, seed=3)
    assert (c.upper - c.lower).mean() < (a.upper - a.lower).mean()


def test_batched_bootstrap_equals_solving_each_resample(path):
    outputs, _ = example_problem(n_sources=3, n_samples=300, seed=2)
    res = bootstrap_weights(outputs, n_boot=3, seed=5, max_iter=50)
    rng = np.random.default_rng(5)
    counts = rng.multinomial(300, np.full(300, 1 / 300), size=3)
    for i in range(3):
        idx = np.repeat(np.arange(300), counts[i])
        single = mixmin(outputs.select(samples=idx), max_iter=50, tol=0)
        np.testing.assert_allclose(res.samples[i], single.trajectory[-1], atol=2e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"n_boot": 1}, "n_boot must be an integer >= 2"),
    ({"level": 1.5}, r"level must be in \(0, 1\)"),
    ({"step_size": -1}, "step_size must be a positive"),
])
def test_bootstrap_errors(kwargs, match):
    outputs, _ = example_problem(n_sources=3, n_samples=50)
    with pytest.raises(InputError, match=match):
        bootstrap_weights(outputs, **kwargs)


@pytest.fixture(params=["compiled", "batched"])
def path(request, monkeypatch):
    """Few sources in memory solve each resample through the compiled descent; others (or any, here) in one batch."""
    from mixmin_core.solver import objectives

    if request.param == "batched":
        monkeypatch.setattr(objectives.Objective, "compiled", property(lambda self: False))
    return request.param


@pytest.mark.parametrize("step_size,max_iter", [(1.0, 200), (10.0, 100)])
def test_each_resample_gets_what_mixmin_returns_for_it(step_size, max_iter, path):
    """The batch stops each resample on its gap and keeps the lowest-loss iterate when the loss rose, as mixmin
    does: at step 10 the Solver showed the start's weights beside intervals of the 100th iterate."""
    from mixmin_core.solver.objectives import make_objective
    from mixmin_core.solver.synthetic import example_problem

    outputs = example_problem()[0]
    assert make_objective(outputs).compiled == (path == "compiled")
    boot = bootstrap_weights(outputs, n_boot=4, seed=3, step_size=step_size, max_iter=max_iter)
    n = outputs.n_samples
    counts = np.random.default_rng(3).multinomial(n, np.full(n, 1.0 / n), size=4)  # the resamples it drew
    for k in range(4):
        alone = mixmin(outputs.select(samples=np.repeat(np.arange(n), counts[k])), step_size=step_size,
                       max_iter=max_iter)
        np.testing.assert_allclose(boot.samples[k], alone.weights, atol=2e-4)
    full = mixmin(outputs, step_size=step_size, max_iter=max_iter)
    assert ((boot.lower <= full.weights + 1e-3) & (full.weights <= boot.upper + 1e-3)).all()


@pytest.mark.parametrize("constraint", [{"caps": [0.3, 0.3, 0.3, 0.3]}, {"prior_strength": 0.5},
                                        {"caps": [0.45, 0.45, 0.45, 0.45], "prior": "uniform", "prior_strength": 0.2}])
def test_resamples_are_solved_under_the_same_caps_and_prior_as_the_mixture(constraint):
    """Intervals beside a capped (or prior-pulled) mixture came from unconstrained solves: the Solver page hid them."""
    outputs = example_problem(n_sources=4, n_samples=400, seed=4)[0]
    boot = bootstrap_weights(outputs, n_boot=4, seed=3, max_iter=200, **constraint)
    n = outputs.n_samples
    counts = np.random.default_rng(3).multinomial(n, np.full(n, 1.0 / n), size=4)
    for k in range(4):
        alone = mixmin(outputs.select(samples=np.repeat(np.arange(n), counts[k])), max_iter=200, **constraint)
        np.testing.assert_allclose(boot.samples[k], alone.weights, atol=2e-4)
    if "caps" in constraint:
        assert (boot.samples <= constraint["caps"][0] + 1e-6).all()
    plain = bootstrap_weights(outputs, n_boot=4, seed=3, max_iter=200)
    assert np.abs(plain.samples - boot.samples).max() > 1e-3  # the constraint changed them
    with pytest.raises(InputError, match="caps"):
        bootstrap_weights(outputs, caps=[0.1] * 4)


def test_the_share_of_resamples_that_converged_is_reported(path):
    """At the default 100 steps the intervals excluded the optimum (c in [0.57, 0.71] against 0.84), and nothing
    said the resamples had stopped at the iteration limit."""
    outputs, _ = example_problem(n_sources=4, n_samples=2000, seed=1)
    short = bootstrap_weights(outputs, n_boot=20, max_iter=3)
    settled = bootstrap_weights(outputs, n_boot=20, max_iter=5000, tol=1e-5)
    assert short.converged == 0.0 and settled.converged == 1.0


def test_a_resample_whose_gap_of_zero_the_clip_made_is_not_counted_converged(path):
    """A reviewer's case: mixmin said "clipped" at step 10 (one source alone gives some samples their label),
    while the bootstrap of the same problem and settings counted every resample converged."""
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.5).astype(np.float32)
    hard = np.where(np.arange(400) % 20, labels, 1 - labels)  # certain, and wrong on 5% of samples
    soft = np.where(labels == 1, 0.6, 0.4)
    outputs = ProxyOutputs(np.vstack([hard, soft]).astype(np.float32), "binary", labels=labels)
    assert mixmin(outputs, step_size=50.0).status == "clipped"
    flat = bootstrap_weights(outputs, n_boot=8, step_size=50.0, max_iter=300)
    assert flat.converged < 0.5
    good = bootstrap_weights(outputs, n_boot=8, max_iter=3000)
    assert good.converged == 1.0 and abs(float(good.median[0]) - 0.875) < 0.05


def test_one_target_sample_has_nothing_to_resample():
    one = ProxyOutputs(np.array([[0.9], [0.2]], dtype=np.float32), "binary", labels=np.array([1.0], dtype=np.float32))
    with pytest.raises(InputError, match="need at least 2 target samples to resample; got 1"):
        bootstrap_weights(one)


def test_weights_below_the_smallest_normal_float32_are_zero(path):
    """An interval's lower end read 2.8e-45 in the Solver's CSV: a denormal weight mirror descent left behind."""
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.5).astype(np.float32)
    good = np.where(labels == 1, 0.9, 0.1)
    bad = np.where(labels == 1, 0.02, 0.98)  # always wrong
    outputs = ProxyOutputs(np.vstack([good, bad, np.full(400, 0.5)]).astype(np.float32), "binary", labels=labels)
    # one step of 105 takes the uninformative source to ~3e-39, below float32's smallest normal number (1.2e-38)
    solved = mixmin(outputs, step_size=105.0, max_iter=5)
    assert 0 < solved.trajectory[-1, 2] < np.finfo(np.float32).tiny and solved.weights[2] == 0.0
    boot = bootstrap_weights(outputs, n_boot=10, step_size=105.0, max_iter=5)
    assert (boot.samples[:, 1:] == 0).all() and boot.lower[2] == boot.upper[2] == 0.0
