"""MixMin against independent methods (EM, SLSQP) and the properties every solver must keep."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from mixmin_core import (
    InputError,
    MixtureResult,
    ProxyOutputs,
    Status,
    balanced,
    fixed_mixture,
    mixmin,
    mixture_loss,
    natural,
)
from mixmin_core.solver.objectives import make_objective
from mixmin_core.solver.simplex import uniform
from mixmin_core.solver.synthetic import (
    categorical_outputs,
    categorical_sources,
    sample_mixture,
)

from .reference import reference_loss


def _em_weights(outputs, n_iter=20000):
    """EM for mixture proportions with fixed component densities (float64, independent code)."""
    dens = np.exp(outputs.values.astype(np.float64))
    w = np.full(outputs.n_sources, 1 / outputs.n_sources)
    for _ in range(n_iter):
        resp = w[:, None] * dens
        w = (resp / resp.sum(0)).mean(1)
    return w


def _slsqp(outputs):
    P = outputs.n_sources
    res = minimize(lambda w: reference_loss(outputs, np.clip(w, 1e-12, None)),
                   np.full(P, 1 / P), method="SLSQP", bounds=[(0, 1)] * P,
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                   options={"ftol": 1e-12, "maxiter": 1000})
    w = np.clip(res.x, 0, None)
    return w / w.sum()


@pytest.fixture(scope="module")
def well_specified():
    rng = np.random.default_rng(0)
    dists = categorical_sources(4, 30, rng)
    true_w = np.array([0.5, 0.3, 0.15, 0.05])
    target = sample_mixture(dists, true_w, 20000, rng)
    return categorical_outputs(dists, target), true_w


def test_loglik_recovers_true_weights_and_matches_em(well_specified):
    outputs, true_w = well_specified
    result = mixmin(outputs, max_iter=5000, tol=1e-7)
    assert result.success and result.status == "converged"
    # sampling error of proportions from 20,000 samples is ~0.005 per source
    np.testing.assert_allclose(result.weights, true_w, atol=0.03)
    em = _em_weights(outputs)
    assert result.loss == pytest.approx(mixture_loss(outputs, em), abs=1e-6)


@pytest.mark.parametrize("kind", ["binary", "mse"])
def test_binary_and_mse_match_slsqp(kind):
    rng = np.random.default_rng(7)
    n = 400
    if kind == "binary":
        y = rng.integers(0, 2, n)
        values = np.clip(y * 0.6 + rng.uniform(0, 0.4, (5, n)) * rng.uniform(0.5, 1.5, (5, 1)), 0, 1)
        outputs = ProxyOutputs(values, "binary", labels=y)
    else:
        y = rng.normal(size=n)
        values = y + rng.normal(scale=rng.uniform(0.5, 2, (5, 1)), size=(5, n))
        outputs = ProxyOutputs(values, "mse", labels=y)
    result = mixmin(outputs, max_iter=3000, tol=1e-7)
    reference = _slsqp(outputs)
    assert result.loss <= mixture_loss(outputs, reference) + 1e-5
    np.testing.assert_allclose(result.weights, reference, atol=0.02)


def _problem(seed, n_sources, kind):
    rng = np.random.default_rng(seed)
    n = 200
    if kind == "binary":
        return ProxyOutputs(rng.uniform(0, 1, (n_sources, n)), kind, labels=rng.integers(0, 2, n),
                            natural_weights=rng.integers(1, 100, n_sources))
    if kind == "mse":
        return ProxyOutputs(rng.normal(size=(n_sources, n)), kind, labels=rng.normal(size=n),
                            natural_weights=rng.integers(1, 100, n_sources))
    return ProxyOutputs(-rng.uniform(0, 20, (n_sources, n)), kind, token_counts=rng.integers(1, 9, n),
                        natural_weights=rng.integers(1, 100, n_sources))


SOLVERS = {
    "mixmin": lambda o: mixmin(o),
    "mixmin_big_step": lambda o: mixmin(o, step_size=50.0),
    "natural": natural,
    "balanced": balanced,
}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_sources=st.integers(2, 8), kind=st.sampled_from(["binary", "mse", "loglik"]))
def test_contract_holds_for_every_solver(seed, n_sources, kind):
    outputs = _problem(seed, n_sources, kind)
    start = mixture_loss(outputs, np.full(n_sources, 1 / n_sources))
    for name, solve in SOLVERS.items():
        result = solve(outputs)
        w = result.weights
        assert w.shape == (n_sources,) and w.dtype == np.float32, name
        assert (w >= 0).all() and abs(float(w.sum()) - 1) < 1e-5, name
        assert result.loss == pytest.approx(mixture_loss(outputs, w), rel=1e-5, abs=1e-6), name
        assert result.source_names == outputs.source_names
        if name.startswith("mixmin"):
            assert result.loss <= start + 1e-6 * max(1, abs(start)), name
            assert result.trajectory.shape == (result.n_iter + 1, n_sources)
            assert result.losses.shape == (result.n_iter + 1,)
            np.testing.assert_allclose(result.trajectory[0], 1 / n_sources, rtol=1e-6)
            if result.success:
                assert result.gap <= 1e-6


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["binary", "mse", "loglik"]))
def test_permuting_sources_permutes_weights(seed, kind):
    outputs = _problem(seed, 5, kind)
    perm = np.random.default_rng(seed).permutation(5)
    a = mixmin(outputs)
    b = mixmin(outputs.select(sources=perm))
    np.testing.assert_allclose(b.weights, a.weights[perm], atol=1e-5)
    assert b.source_names == tuple(outputs.source_names[i] for i in perm)


def test_callback_sees_every_iterate_and_can_stop():
    outputs = _problem(0, 4, "binary")
    seen = []
    result = mixmin(outputs, tol=0, callback=lambda it: seen.append(it.iteration) or it.iteration == 5)
    assert seen == list(range(6))
    assert result.status == Status.STOPPED_BY_CALLBACK and not result.success and result.n_iter == 5


def test_max_iter_returns_unsuccessful_result():
    result = mixmin(_problem(1, 6, "binary"), max_iter=3, tol=0)
    assert result.status == "max_iter" and not result.success and result.n_iter == 3
    assert "max_iter" in result.message


def test_non_finite_loss_ends_with_status_not_exception():
    huge = np.full((2, 3), 3e38, dtype=np.float32)  # squared residuals overflow float32
    outputs = ProxyOutputs(huge, "mse", labels=[-3e38, -3e38, -3e38])
    with np.errstate(over="ignore", invalid="ignore"):
        result = mixmin(outputs)
    assert result.status == "non_finite" and not result.success
    assert "starting weights" in result.message
    assert result.trajectory.shape == (1, 2)
    # its record is strict JSON (a browser's JSON.parse refuses NaN and Infinity), and reads back
    import json

    text = json.dumps(result.to_dict(), allow_nan=False)
    back = MixtureResult.from_dict(json.loads(text))
    assert not np.isfinite(back.loss) and back.status == "non_finite"
    np.testing.assert_array_equal(back.weights, result.weights)
    joint = MixtureResult.from_dict({**json.loads(text), "target_losses": {"a": None, "b": 0.5}})
    assert np.isnan(joint.target_losses["a"]) and joint.target_losses["b"] == 0.5


def test_init_natural_and_array():
    outputs = _problem(2, 3, "loglik")
    r = mixmin(outputs, init="natural", max_iter=0)
    np.testing.assert_allclose(r.weights, outputs.natural_weights, rtol=1e-6)
    r = mixmin(outputs, init=[0.2, 0.3, 0.5], max_iter=0)
    np.testing.assert_allclose(r.weights, [0.2, 0.3, 0.5], rtol=1e-6)


def test_fixed_mixture_reports_gap():
    outputs = _problem(3, 4, "binary")
    r = fixed_mixture(outputs, [0.25] * 4, "mine")
    assert r.method == "mine" and r.gap >= 0 and r.status == "not_iterative"


@pytest.mark.parametrize("kwargs,match", [
    ({"step_size": 0}, "step_size must be a positive"),
    ({"step_size": float("nan")}, "step_size must be a positive"),
    ({"max_iter": -1}, "max_iter must be a non-negative integer"),
    ({"max_iter": 2.5}, "max_iter must be a non-negative integer"),
    ({"tol": -1}, "tol must be a non-negative"),
    ({"init": "random"}, "init must be 'uniform', 'natural' or an array"),
    ({"init": [0.5, 0.5]}, r"init must have shape \(3,\)"),
    ({"init": [0.5, 0.6, -0.1]}, "init must be non-negative"),
    ({"init": [0.2, 0.2, 0.2]}, "init must sum to 1; got sum 0.6"),
    ({"init": [0.5, 0.5, 0.0]}, "init must be strictly positive"),
])
def test_solver_argument_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        mixmin(_problem(0, 3, "binary"), **kwargs)


def test_natural_without_natural_weights_is_an_error():
    outputs = ProxyOutputs([[0.1, 0.2], [0.3, 0.4]], "binary", labels=[0, 1])
    with pytest.raises(InputError, match="natural needs outputs.natural_weights"):
        natural(outputs)
    with pytest.raises(InputError, match="init='natural' needs"):
        mixmin(outputs, init="natural")


def test_mixture_loss_rejects_weights_off_the_simplex():
    with pytest.raises(InputError, match="weights must sum to 1; got sum 0.97 for 3 sources"):
        mixture_loss(_problem(0, 3, "mse"), [0.5, 0.27, 0.2])


@pytest.mark.parametrize("kind", ["binary", "mse", "loglik"])
@pytest.mark.parametrize("tol", [0.0, 1e-3])
def test_compiled_descent_follows_the_python_loop(kind, tol):
    """Few sources in memory run the whole descent compiled; a callback forces the Python loop: same iterates."""
    outputs = _problem(3, 5, kind)
    assert make_objective(outputs).descend(uniform(5), 1.0, 3, 0.0) is not None  # the compiled path applies
    fast = mixmin(outputs, tol=tol, max_iter=60)
    slow = mixmin(outputs, tol=tol, max_iter=60, callback=lambda it: False)
    assert (fast.status, fast.n_iter, fast.message, fast.meta) == (slow.status, slow.n_iter, slow.message, slow.meta)
    np.testing.assert_array_equal(fast.trajectory, slow.trajectory)
    np.testing.assert_allclose(fast.losses, slow.losses, rtol=1e-12)  # one reduction kernel reports both
    np.testing.assert_allclose(fast.gaps, slow.gaps, rtol=1e-6, atol=1e-12)
    # the loss reported is the objective's at the weights returned (what a regret or a comparison reads)
    assert fast.loss == pytest.approx(float(make_objective(outputs).loss(fast.weights)), rel=1e-12)


def test_compiled_descent_stops_on_a_non_finite_loss_mid_run():
    """A huge step moves all the weight to source 0, whose squared residual overflows float32 (MSE)."""
    outputs = ProxyOutputs(np.array([[2e19, 0.0], [0.0, 1e18]], dtype=np.float32), "mse", labels=[0.0, 0.0])
    start = np.array([0.001, 0.999])
    with np.errstate(over="ignore", invalid="ignore"):
        fast = mixmin(outputs, step_size=1e-34, init=start)
        slow = mixmin(outputs, step_size=1e-34, init=start, callback=lambda it: False)
    assert fast.status == slow.status == "non_finite"
    assert fast.message == slow.message and "iteration 1" in fast.message
    np.testing.assert_array_equal(fast.trajectory, slow.trajectory)
    assert fast.trajectory.shape == (1, 2)


@pytest.mark.parametrize("callback", [None, lambda it: None])  # the compiled descent and the Python loop
def test_a_huge_step_size_jumps_to_a_vertex_and_keeps_the_better_start(callback):
    rng = np.random.default_rng(0)
    outputs = ProxyOutputs(rng.uniform(0.05, 0.95, (4, 200)).astype(np.float32), "binary",
                           labels=(rng.random(200) < 0.3).astype(float))
    result = mixmin(outputs, step_size=1e12, max_iter=5, callback=callback)
    assert result.status == "max_iter"  # it was "non_finite" (every weight underflowed) or a ZeroDivisionError
    assert sorted(result.trajectory[1].tolist()) == [0.0, 0.0, 0.0, 1.0]
    np.testing.assert_array_equal(result.weights, np.full(4, 0.25, np.float32))  # the start's loss was lowest


def test_a_result_prints_in_a_few_lines_and_mean_ci_checks_its_level():
    from mixmin_core.solver.results import mean_ci
    from mixmin_core.solver.synthetic import example_problem

    result = mixmin(example_problem()[0])
    assert len(repr(result)) < 1000 and "trajectory" not in repr(result)  # it printed every iterate
    with pytest.raises(InputError, match=r"level must be a fraction in \(0, 1\), e.g. 0.95 .*; got 95"):
        mean_ci([1.0, 2.0, 3.0], level=95)  # it returned NaNs


def _hard_and_soft(n: int = 200):
    """A hard proxy, certain and right on 95% of samples and certain and wrong on 5%, and a soft one (0.6 on the
    label): the optimum mixes them (about 0.875 / 0.125)."""
    y = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(np.float32)
    right = np.ones(n, bool)
    right[::20] = False
    hard = np.where(right, y, 1 - y)
    soft = np.where(y == 1, 0.6, 0.4)
    return ProxyOutputs(np.vstack([hard, soft]).astype(np.float32), "binary", labels=y, source_names=["hard", "soft"])


def test_a_gap_of_zero_where_the_clip_makes_the_loss_flat_is_no_convergence():
    """A reviewer's case: at step_size 50 one step put all weight on the hard proxy, where the wrong samples'
    probability is clipped and their gradient 0; the solver said "converged", gap 0, at a loss 0.5 above the
    optimum and above the start's. For loglik the same at a density clipped below 1e-30."""
    outputs = _hard_and_soft()
    good = mixmin(outputs, step_size=1.0)
    assert good.status == "converged" and abs(good.weights[0] - 0.875) < 1e-3
    flat = mixmin(outputs, step_size=50.0)
    assert flat.status == "clipped" and not flat.success and "certifies nothing" in flat.message
    assert flat.loss <= flat.losses[0] + 1e-6  # never worse than the start
    start = mixmin(outputs, init=[1 - 1e-7, 1e-7])  # a start already in the flat region: gap 0 at once
    assert start.status == "clipped" and not start.success
    rng = np.random.default_rng(0)
    base = -rng.uniform(300, 600, 200)
    best = np.ones(200, bool)
    best[::20] = False
    loglik = ProxyOutputs(np.vstack([np.where(best, base, base - 80), np.where(best, base - 5, base)]).astype(np.float32),
                          "loglik", source_names=["a", "b"])
    assert mixmin(loglik, step_size=1.0).status == "converged"
    jumped = mixmin(loglik, step_size=100.0)
    assert jumped.status == "clipped" and jumped.loss <= jumped.losses[0] + 1e-4


def test_a_sample_every_source_gets_wrong_leaves_the_certificate_alone():
    """Clipped where no mixture helps much (every proxy nearly certain and wrong: a mislabelled sample) the optimum
    itself sits at the clip: it is reported converged (a reviewer's case was flagged at the true optimum)."""
    outputs = _hard_and_soft()
    values = outputs.values.copy()
    values[1, ::20] = np.where(outputs.labels[::20] == 1, 3e-6, 1 - 3e-6)  # the soft proxy gives them 3e-6 only
    both = ProxyOutputs(values, "binary", labels=outputs.labels, source_names=["hard", "soft"])
    result = mixmin(both, step_size=1.0)
    assert result.status == "converged" and result.weights[0] > 0.99
    n, hidden = make_objective(outputs).clipped_gradient(np.array([1.0, 0.0], np.float32))
    assert n == 10 and hidden[1] - hidden[0] < -1e4  # the pull towards the soft proxy, hidden by the clip


@pytest.mark.parametrize("seed", range(4))
def test_samples_every_proxy_gets_certainly_wrong_do_not_fake_a_clipped_verdict(seed):
    """A reviewer's case: all proxies said p = 1 on 20 negatives (float32 XGBoost output rounds to 1). Their pull
    is the same ~1e4 for every source, which no gap sees, but added to the float32 gradient it left a gap of
    rounding noise: half the seeds reported "clipped" at the optimum (SLSQP: within 1e-8)."""
    rng = np.random.default_rng(seed)
    values = rng.beta(0.5, 0.5, (6, 2000)).astype(np.float32)
    labels = (rng.uniform(size=2000) < 0.3).astype(np.float32)
    values[:, rng.choice(np.flatnonzero(labels == 0), 20, replace=False)] = 1.0
    outputs = ProxyOutputs(values, "binary", labels=labels)
    result = mixmin(outputs, max_iter=2000)
    assert result.status == "converged", result.message
    n, hidden = make_objective(outputs).clipped_gradient(result.weights)
    assert n == 20 and hidden.dtype == np.float64 and np.abs(hidden).max() < 1e-6


def test_clipped_samples_are_counted_alike_on_every_path(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.uniform(0.05, 0.95, (40, 6000)).astype(np.float32)
    labels = (rng.random(6000) < 0.5).astype(np.float32)
    values[0, :300] = 1 - labels[:300]  # source 0 certain and wrong on 300 samples; others give them more
    outputs = ProxyOutputs(values, "binary", labels=labels)
    w = np.r_[1.0, np.zeros(39)].astype(np.float32)
    outputs.save(tmp_path / "big", compress=False)
    found = [make_objective(outputs).clipped_gradient(w),
             make_objective(outputs, block_bytes=1 << 16).clipped_gradient(w),  # many blocks: the row kernel's copy
             make_objective(outputs, block_bytes=1 << 16, storage="float16").clipped_gradient(w),
             make_objective(ProxyOutputs.load(tmp_path / "big", mmap=True), block_bytes=1 << 16).clipped_gradient(w)]
    assert [n for n, _ in found] == [300] * 4
    for k, (_, hidden) in enumerate(found[1:], 1):  # float16 rounds the values themselves
        np.testing.assert_allclose(hidden, found[0][1], rtol=1e-4, atol=1e-4 * np.abs(found[0][1]).max() if k == 2 else 0)


def test_the_log_says_of_an_unconverged_solve_what_its_result_says(well_specified):
    """A step so large the loss rose returned iteration 0, and the engine's log still advised "raise max_iter or
    step_size"; the log now words it as the result (and, where the gap fell steadily, as the Compare page)."""
    from mixmin_core.engine.report import MAX_ITER_ADVICE, convergence_warning

    outputs, _ = well_specified
    rose = mixmin(outputs, step_size=1e4, max_iter=100)
    assert rose.status == "max_iter" and rose.meta["iterate"] < rose.n_iter
    said = convergence_warning(rose)
    assert said.startswith("stopped at its iteration limit, not converged (gap ") and rose.message in said
    assert "try a smaller step_size" in said and "larger max_iter" not in said
    short = mixmin(outputs, step_size=1.0, max_iter=2)
    said = convergence_warning(short)
    assert short.message in said and said.endswith("; " + MAX_ITER_ADVICE.replace("`", ""))
    assert f"(gap {short.gap:.2g}: its loss is at most that much above the optimum's, while its weights may still " \
           "move)" in said
    assert "a larger joint_max_iter helps" in convergence_warning(short, max_iter_field="joint_max_iter")
    assert convergence_warning(mixmin(outputs, max_iter=5000)) is None
