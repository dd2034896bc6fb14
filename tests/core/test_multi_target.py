"""Multi-target MixMin against SLSQP (weighted sum; epigraph form of the worst case), its certificate,
the Pareto front and the cross-target table."""
import json

import numpy as np
import pytest
from scipy.optimize import minimize

from mixmin_core import (
    InputError,
    MixtureResult,
    ProxyOutputs,
    cross_target_table,
    mixmin,
    mixmin_multi,
    pareto_front,
)
from mixmin_core.solver.multi_target import common_sources
from mixmin_core.solver.pareto import pareto_frame, target_weight_grid
from mixmin_core.solver.synthetic import categorical_outputs, categorical_sources, sample_mixture

from .reference import reference_loss

P = 5
#: float32 losses carry ~1e-7 relative rounding: the slack when comparing with float64 references
FLOAT_SLACK = 2e-6


def _binary(seed, n=400):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    values = np.clip(y * rng.uniform(0.1, 0.7, (P, 1)) + rng.uniform(0, 0.5, (P, n)), 0, 1)
    return ProxyOutputs(values, "binary", labels=y, natural_weights=[5, 1, 1, 2, 1])  # sizes: shared by targets


def _loglik(seed, n=600):
    rng = np.random.default_rng(seed)
    dists = categorical_sources(P, 30, np.random.default_rng(99))  # the same sources for every target
    target = sample_mixture(dists, rng.dirichlet(np.ones(P)), n, rng)
    return categorical_outputs(dists, target, natural_weights=np.arange(1, P + 1))


def _targets(kind, seed, n_targets=3):
    make = _binary if kind == "binary" else _loglik
    return [make(seed * 10 + t) for t in range(n_targets)]


def _slsqp_epigraph(outs, scales):
    """min s subject to L_t(w) / scale_t <= s, w on the simplex; best of two starts (float64)."""
    best = None
    starts = [np.full(P, 1 / P), 0.5 * np.eye(P)[0] + 0.5 / P]
    cons = [{"type": "eq", "fun": lambda x: x[:P].sum() - 1}] + [
        {"type": "ineq", "fun": lambda x, o=o, s=s: x[P] - reference_loss(o, np.clip(x[:P], 1e-12, None)) / s}
        for o, s in zip(outs, scales)]
    for w0 in starts:
        x0 = np.r_[w0, max(reference_loss(o, w0) / s for o, s in zip(outs, scales))]
        res = minimize(lambda x: x[P], x0, method="SLSQP", bounds=[(0, 1)] * P + [(None, None)],
                       constraints=cons, options={"ftol": 1e-13, "maxiter": 2000})
        w = np.clip(res.x[:P], 0, None)
        w /= w.sum()
        value = max(reference_loss(o, w) / s for o, s in zip(outs, scales))
        if best is None or value < best[0]:
            best = (value, w)
    return best


def _slsqp_sum(outs, a, scales):
    f = lambda w: sum(ai * reference_loss(o, np.clip(w, 1e-12, None)) / s for ai, o, s in zip(a, outs, scales))
    res = minimize(f, np.full(P, 1 / P), method="SLSQP", bounds=[(0, 1)] * P,
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}], options={"ftol": 1e-13, "maxiter": 2000})
    w = np.clip(res.x, 0, None)
    return f(w / w.sum())


@pytest.mark.parametrize("kind", ["binary", "loglik"])
@pytest.mark.parametrize("normalise", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_worst_matches_slsqp_epigraph_and_gap_bounds_suboptimality(kind, normalise, seed):
    outs = _targets(kind, seed)
    result = mixmin_multi(outs, mode="worst", normalise=normalise, max_iter=3000, tol=1e-6)
    scales = np.array(result.meta["target_scales"])
    if normalise:  # each scale is the target's own loss at the natural mixture
        np.testing.assert_allclose(scales, [reference_loss(o, o.natural_weights) for o in outs], rtol=1e-5)
    opt, _ = _slsqp_epigraph(outs, scales)
    ours = max(reference_loss(o, result.weights) / s for o, s in zip(outs, scales))
    assert result.success, result.message
    assert result.gap <= 1e-6
    assert ours - opt <= result.gap + FLOAT_SLACK  # the certificate bounds the true suboptimality
    assert ours <= opt + 1e-5
    assert result.loss == pytest.approx(ours, abs=FLOAT_SLACK)
    raw = {t: reference_loss(o, result.weights) for t, o in zip(result.meta["targets"], outs)}
    assert result.target_losses == pytest.approx(raw, abs=FLOAT_SLACK)
    assert abs(result.weights.sum() - 1) < 1e-5 and (result.weights >= 0).all()


@pytest.mark.parametrize("kind", ["binary", "loglik"])
def test_gap_bounds_suboptimality_along_the_way(kind):
    """Stopped early, the certificate is large but still an upper bound."""
    outs = _targets(kind, 2)
    opt, _ = _slsqp_epigraph(outs, np.ones(3))
    for max_iter in (0, 3, 20):
        result = mixmin_multi(outs, mode="worst", max_iter=max_iter, tol=0.0)
        ours = max(reference_loss(o, result.weights) for o in outs)
        assert result.status == "max_iter" and not result.success
        assert ours - opt <= result.gap + FLOAT_SLACK
        assert result.meta["lower_bound"] <= opt + FLOAT_SLACK


@pytest.mark.parametrize("kind", ["binary", "loglik"])
@pytest.mark.parametrize("normalise", [False, True])
def test_mean_matches_slsqp_and_gap_bounds_suboptimality(kind, normalise):
    outs = _targets(kind, 3)
    a = np.array([2.0, 5.0, 3.0])  # normalised to 0.2, 0.5, 0.3
    result = mixmin_multi(outs, mode="mean", target_weights=a, normalise=normalise, max_iter=5000, tol=1e-7)
    scales = np.array(result.meta["target_scales"])
    opt = _slsqp_sum(outs, a / a.sum(), scales)
    ours = sum(ai * reference_loss(o, result.weights) / s for ai, o, s in zip(a / a.sum(), outs, scales))
    assert result.success and result.method == "mixmin_joint_mean"  # as the pipelines and `jobs export` name it
    assert ours <= opt + 1e-6
    assert ours - opt <= result.gap + FLOAT_SLACK
    assert result.meta["target_weights"] == pytest.approx([0.2, 0.5, 0.3])


def test_one_target_is_plain_mixmin():
    outs = _binary(5)
    single = mixmin(outs, max_iter=3000, tol=1e-8)
    for mode in ("mean", "worst"):
        multi = mixmin_multi([outs], mode=mode, max_iter=3000, tol=1e-7)
        assert multi.loss == pytest.approx(single.loss, abs=1e-6)


def test_worst_is_no_worse_than_each_own_mixture_and_mean_on_average():
    outs = _targets("binary", 4)
    table = cross_target_table(outs, max_iter=3000, tol=1e-6)
    assert list(table.columns) == ["target_0", "target_1", "target_2", "mean", "worst"]
    worst = table.loc["joint (worst)", "worst"]
    assert worst <= table["worst"].min() + 1e-5
    assert table.loc["joint (mean)", "mean"] <= table["mean"].min() + 1e-5
    for t in ("target_0", "target_1", "target_2"):  # a target's own mixture is best for it
        assert table.loc[f"{t} (own)", t] <= table[t].min() + 1e-5
    assert "natural" in table.index


def test_cross_table_normalised_natural_row_is_one_and_takes_given_results():
    named = {"tox": _binary(1), "sol": _binary(2)}
    tox = mixmin(named["tox"], max_iter=500)
    table = cross_target_table(named, normalise=True)
    np.testing.assert_allclose(table.loc["natural", ["tox", "sol"]].to_numpy(float), 1.0, rtol=1e-5)
    given = cross_target_table(named, [tox, mixmin(named["sol"], max_iter=500)])
    assert list(given.index) == ["mixmin", "mixmin #2"]
    assert given.loc["mixmin", "tox"] == pytest.approx(tox.loss, abs=1e-6)


def test_cross_table_reorders_result_weights_by_source_name():
    outs = [_binary(1), _binary(2)]
    result = mixmin(outs[0], max_iter=300)
    order = [4, 2, 0, 1, 3]
    shuffled = MixtureResult(weights=result.weights[order], source_names=tuple(result.source_names[i] for i in order))
    a = cross_target_table(outs, {"r": result})
    b = cross_target_table(outs, {"r": shuffled})
    np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-6)


def test_targets_scored_in_another_source_order_are_aligned():
    outs = _targets("loglik", 1)
    shuffled = outs[1].select(list(reversed(outs[1].source_names)))
    a = mixmin_multi(outs, mode="worst", max_iter=200)
    b = mixmin_multi([outs[0], shuffled, outs[2]], mode="worst", max_iter=200)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-6)


def test_pareto_front_two_targets_trades_losses_monotonically():
    named = {"a": _binary(11), "b": _binary(12)}
    front = pareto_front(named, n_points=6, max_iter=3000, tol=1e-7)
    assert len(front) == 6
    la = np.array([r.target_losses["a"] for r in front])
    lb = np.array([r.target_losses["b"] for r in front])
    # from a's best mixture to b's: a's loss rises while b's falls
    assert (np.diff(la) >= -1e-6).all() and (np.diff(lb) <= 1e-6).all()
    assert la[0] == pytest.approx(mixmin(named["a"], max_iter=5000, tol=1e-8).loss, abs=1e-5)
    assert lb[-1] == pytest.approx(mixmin(named["b"], max_iter=5000, tol=1e-8).loss, abs=1e-5)
    # every front point is undominated among the front and the worst-case mixture is not below it
    worst = mixmin_multi(named, mode="worst", max_iter=3000, tol=1e-7)
    for r in front:
        assert r.meta["target_weights"] is not None
        dominated = (worst.target_losses["a"] < r.target_losses["a"] - 1e-5) and (
            worst.target_losses["b"] < r.target_losses["b"] - 1e-5)
        assert not dominated


def test_pareto_frame_has_losses_target_weights_and_gap():
    front = pareto_front({"a": _binary(11), "b": _binary(12)}, n_points=3, max_iter=300)
    frame = pareto_frame(front)
    assert list(frame.columns) == ["a", "b", "weight:a", "weight:b", "gap"]
    assert frame["weight:a"].tolist() == [1.0, 0.5, 0.0]
    assert frame.loc[1, "a"] == front[1].target_losses["a"]
    with pytest.raises(InputError, match="front must be the list pareto_front returns"):
        pareto_frame([mixmin(_binary(11), max_iter=5)])


def test_common_sources_keeps_the_shared_ones():
    """Chemistry targets are scored on the other assays: restrict them to the sources they share."""
    base = _binary(1)
    a = base.select(["source_0", "source_1", "source_2", "source_3"])
    b = _binary(2).select(["source_4", "source_3", "source_1", "source_0"])
    kept = common_sources({"a": a, "b": b})
    assert {k: o.source_names for k, o in kept.items()} == {"a": ("source_0", "source_1", "source_3")} | {
        "b": ("source_0", "source_1", "source_3")}
    assert mixmin_multi(kept, mode="worst", max_iter=50).source_names == ("source_0", "source_1", "source_3")
    with pytest.raises(InputError, match="share 1 source"):
        common_sources([a.select(["source_0", "source_1"]), b.select(["source_4", "source_0"])])
    with pytest.raises(InputError, match="non-empty list of ProxyOutputs"):
        common_sources([a, None])


def test_pareto_front_three_targets_grid():
    front = pareto_front(_targets("loglik", 0), n_points=3, max_iter=300)
    assert len(front) == 6
    np.testing.assert_allclose(np.array([r.meta["target_weights"] for r in front]), target_weight_grid(3, 3))
    assert all(set(r.target_losses) == {"target_0", "target_1", "target_2"} for r in front)


def test_target_losses_round_trip_through_dict():
    result = mixmin_multi(_targets("binary", 0), mode="worst", max_iter=50)
    back = MixtureResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.target_losses == pytest.approx(result.target_losses)
    assert back.method == "mixmin_joint_worst"
    plain = MixtureResult.from_dict(mixmin(_binary(0), max_iter=10).to_dict())
    assert plain.target_losses is None and "target_losses" not in mixmin(_binary(0), max_iter=10).to_dict()


def test_callback_stops_and_caps_hold():
    outs = _targets("binary", 1)
    seen = []
    result = mixmin_multi(outs, mode="worst", callback=lambda it: seen.append(it.gap) or it.iteration == 4)
    assert result.status == "stopped_by_callback" and len(seen) == 5
    caps = np.full(P, 0.3)
    capped = mixmin_multi(outs, mode="worst", caps=caps, max_iter=2000, tol=1e-6)
    assert (capped.weights <= caps + 1e-6).all()
    # the capped optimum is no better than the free one, and its certificate is over the capped set
    free = mixmin_multi(outs, mode="worst", max_iter=2000, tol=1e-6)
    assert capped.loss >= free.loss - 1e-6


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "median"}, "mode must be one of"),
    ({"target_weights": [1, -1, 1]}, "target_weights must be finite, non-negative"),
    ({"target_weights": [1, 1]}, "target_weights must hold 3 numbers"),
    ({"target_weights": [0, 0, 0]}, "not all zero"),
    ({"target_weights": ["a", "b", "c"]}, "target_weights must be an array of numbers"),
    ({"mode": "worst", "target_weights": [1, 1, 1]}, "target_weights apply to mode='mean' only"),
    ({"step_size": 0}, "step_size must be a positive"),
    ({"max_iter": -1}, "max_iter must be a non-negative integer"),
    ({"normalise": "yes"}, "normalise must be True or False"),
    ({"caps": [0.1] * P}, "caps sum to"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(InputError, match=match):
        mixmin_multi(_targets("binary", 0), **kwargs)


def test_bad_target_lists_are_named():
    outs = _targets("binary", 0)
    with pytest.raises(InputError, match=r"target names must stay unique as text; \['1'\]"):
        mixmin_multi({1: outs[0], "1": outs[1]})  # one result would have hidden the other
    with pytest.raises(InputError, match="at least one target"):
        mixmin_multi([])
    with pytest.raises(InputError, match=r"outputs_list\[1\] \(target_1\) must be ProxyOutputs"):
        mixmin_multi([outs[0], "tox21"])
    other = outs[1].select([0, 1, 2, 3])
    with pytest.raises(InputError, match=r"outputs_list\[1\].*missing \['source_4'\]"):
        mixmin_multi([outs[0], other])
    no_natural = ProxyOutputs(outs[1].values, "binary", labels=outs[1].labels)
    with pytest.raises(InputError, match=r"normalise=True .* outputs_list\[1\] \(target_1\) has no natural_weights"):
        mixmin_multi([outs[0], no_natural], normalise=True)
    with pytest.raises(InputError, match="outputs_list must be a list"):
        mixmin_multi(outs[0])
    with pytest.raises(InputError, match="pareto_front traces two or three targets; got 4"):
        pareto_front(_targets("binary", 0, n_targets=4))
    with pytest.raises(InputError, match="n_points must be an integer"):
        pareto_front(outs[:2], n_points=1)
    with pytest.raises(InputError, match=r"results\['x'\] must be a MixtureResult"):
        cross_target_table(outs, {"x": np.ones(P) / P})


def test_dominated_marks_points_another_beats():
    from mixmin_core.solver.pareto import dominated

    losses = [[1.0, 3.0], [2.0, 2.0], [2.5, 2.5], [3.0, 1.0], [1.0, 3.0]]  # (2.5, 2.5) is beaten by (2, 2)
    assert dominated(losses).tolist() == [False, False, True, False, False]  # equal points do not beat each other
    assert not dominated([[0.99629, 0.99802], [0.99613, 0.99803]]).any()
    assert dominated([[0.99629, 0.99802], [0.99613, 0.99793]]).tolist() == [True, False]  # lm_ci's first point


def test_normalised_losses_descend_at_their_own_scale():
    """On text (losses ~6 nats) "relative to natural" shrank every gradient 6-fold: the joint mixture stopped at
    the iteration limit, beaten on both targets by a target's own mixture. The step now takes the losses' scale."""
    outs = _targets("loglik", 3, n_targets=2)
    same = [outs[0], outs[0]]  # equal natural losses: normalising only rescales the objective
    raw = mixmin_multi(same, max_iter=50, tol=0.0)
    normalised = mixmin_multi(same, normalise=True, max_iter=50, tol=0.0)
    assert normalised.meta["step_scale"] == pytest.approx(normalised.meta["target_scales"][0])
    np.testing.assert_allclose(normalised.weights, raw.weights, atol=1e-5)  # the same iterates
    both = mixmin_multi(outs, normalise=True, max_iter=100)
    long = mixmin_multi(outs, normalise=True, max_iter=5000, tol=1e-9)
    assert both.loss - long.loss < 1e-4 and both.gap < 1e-3


def test_target_weights_keyed_by_target_name():
    """target_weights={'x': 1, 'y': 3} was refused ("must hold 2 numbers") for targets passed by name."""
    outs = _targets("binary", 5, n_targets=2)
    named = {"x": outs[0], "y": outs[1]}
    keyed = mixmin_multi(named, target_weights={"y": 3, "x": 1}, max_iter=200)
    ordered = mixmin_multi(named, target_weights=[1, 3], max_iter=200)
    np.testing.assert_array_equal(keyed.weights, ordered.weights)
    with pytest.raises(InputError, match=r"target_weights is keyed by target name but has no entry for 1 target\(s\), e.g. \['y'\]"):
        mixmin_multi(named, target_weights={"x": 1})


def test_a_joint_mixture_stuck_at_the_clip_is_not_converged():
    """As mixmin: a step of 50 put all weight on a proxy certain and wrong on 5% of samples, where their gradient
    is 0 and the gap 0; the mean-mode solve said "converged" there."""
    y = np.r_[np.ones(100), np.zeros(100)].astype(np.float32)
    right = np.ones(200, bool)
    right[::20] = False
    hard, soft = np.where(right, y, 1 - y), np.where(y == 1, 0.6, 0.4)
    outs = [ProxyOutputs(np.vstack([hard, soft]).astype(np.float32), "binary", labels=y, source_names=["h", "s"])
            for _ in range(2)]
    assert mixmin_multi(outs, mode="mean", step_size=1.0, max_iter=500).status == "converged"
    stuck = mixmin_multi(outs, mode="mean", step_size=50.0, max_iter=500)
    assert stuck.status == "clipped" and not stuck.success and stuck.loss <= stuck.losses[0] + 1e-6
    # Worst mode the same: its lower bound, taken where the clip hid that pull, was 0.69 above the optimum's 0.18, and
    # the duality gap read 0 at a loss of 0.27.
    assert mixmin_multi(outs, mode="worst", step_size=1.0, max_iter=500).status == "converged"
    for worst in (mixmin_multi(outs, mode="worst", step_size=50.0, max_iter=500),
                  mixmin_multi(outs, mode="worst", init=[1 - 1e-7, 1e-7], max_iter=500)):
        assert worst.status == "clipped" and not worst.success and "duality gap" in worst.message
