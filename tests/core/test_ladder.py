import numpy as np
import pytest

from mixmin_core import InputError, MixtureResult, mixmin, mixture_loss
from mixmin_core.engine.ladder import loss_regret, proxy_ladder
from mixmin_core.solver.synthetic import (
    categorical_outputs,
    categorical_sources,
    estimate_density,
    sample_mixture,
)


def _world():
    rng = np.random.default_rng(0)
    dists = categorical_sources(4, 30, rng)
    true_w = np.array([0.4, 0.3, 0.2, 0.1])
    target = sample_mixture(dists, true_w, 20000, rng)
    return dists, true_w, target


def test_ladder_stabilises_as_proxy_data_grows():
    """Budget = samples each proxy density is estimated from: more budget, better proxies."""
    dists, true_w, target = _world()

    def solve_at(budget):
        rng = np.random.default_rng(int(budget))
        dens = np.stack([estimate_density(rng.choice(30, size=int(budget), p=d), 30) for d in dists])
        return mixmin(categorical_outputs(dens, target), max_iter=500)

    ladder = proxy_ladder(solve_at, [10, 100, 1000, 10000, 100000], threshold=0.03, run_all=True)
    assert len(ladder.results) == 5 and np.isnan(ladder.l1_changes[0])
    assert ladder.l1_changes[-1] < ladder.l1_changes[1]
    assert ladder.stable_at is not None and ladder.stable_at >= 1000
    assert np.abs(ladder.weights[-1] - true_w).sum() < np.abs(ladder.weights[0] - true_w).sum()
    stopped = proxy_ladder(solve_at, [10, 100, 1000, 10000, 100000], threshold=0.03)
    assert stopped.budgets[-1] == stopped.stable_at and len(stopped.results) <= 5


@pytest.mark.parametrize("budgets,threshold,match", [
    ([], 0.1, "budgets must be a non-empty, strictly increasing list"),
    ([1, 1], 0.1, "strictly increasing"),
    ([1, 2], 0.0, "threshold must be positive"),
])
def test_ladder_errors(budgets, threshold, match):
    with pytest.raises(InputError, match=match):
        proxy_ladder(lambda b: None, budgets, threshold=threshold)


def test_loss_regret_rule_stops_when_the_loss_stops_moving():
    """Two identical sources: the weights can trade places forever, the loss does not move."""
    flips = [np.array([0.9, 0.1]), np.array([0.2, 0.8]), np.array([0.7, 0.3]), np.array([0.4, 0.6])]
    regrets = [None, 0.5, 0.002, 0.001]

    def solve_at(budget):
        k = int(budget) - 1
        return MixtureResult(flips[k].astype(np.float32), ("a", "b"), loss=1.0, meta={"loss_regret": regrets[k]})

    assert proxy_ladder(solve_at, [1, 2, 3, 4], threshold=0.05).stable_at is None
    ladder = proxy_ladder(solve_at, [1, 2, 3, 4], threshold=0.01, rule="loss_regret")
    assert ladder.stable_at == 3 and ladder.rule == "loss_regret" and len(ladder.results) == 3
    with pytest.raises(InputError, match="rule must be one of"):
        proxy_ladder(solve_at, [1, 2], rule="kl")


def test_loss_regret_is_the_previous_mixtures_extra_loss():
    dists, true_w, target = _world()
    outputs = categorical_outputs(np.stack(dists), target)
    result = mixmin(outputs, max_iter=500)
    uniform = MixtureResult(np.full(4, 0.25, np.float32), outputs.source_names)
    assert loss_regret(outputs, None, result) is None
    regret = loss_regret(outputs, uniform, result)
    assert regret == pytest.approx(mixture_loss(outputs, uniform.weights) - result.loss) and regret > 0
    assert loss_regret(outputs, result, result) == pytest.approx(0.0, abs=1e-9)


def test_climbing_on_reports_rungs_where_the_mixture_moved_again():
    """With run_all, every rung after the first small change was marked stable, even one whose weights
    jumped by 0.45 (L1) again."""
    path = [np.array([0.5, 0.5]), np.array([0.502, 0.498]), np.array([0.73, 0.27]), np.array([0.731, 0.269])]

    def solve_at(budget):
        return MixtureResult(path[int(budget) - 1].astype(np.float32), ("a", "b"))

    ladder = proxy_ladder(solve_at, [1, 2, 3, 4], threshold=0.01, run_all=True)
    assert ladder.stable_at == 2 and ladder.moved_again == [3]
    assert [m < 0.01 for m in ladder.measures[1:]] == [True, False, True]
    assert ladder.to_dict()["moved_again"] == [3]
    assert proxy_ladder(solve_at, [1, 2, 3, 4], threshold=0.01).moved_again == []  # stopped at 2: nothing seen after



def test_a_stop_between_solves_stopped_at_max_iter_says_so():
    """With max_iter=1 the weights barely leave the start at every rung, so they change little between rungs, and
    the ladder said "stable" with nothing to tell that the solves had not converged."""
    path = [np.array([0.5, 0.5]), np.array([0.501, 0.499]), np.array([0.8, 0.2]), np.array([0.801, 0.199])]
    converged = [False, False, True, True]

    def solve_at(budget):
        k = int(budget) - 1
        return MixtureResult(path[k].astype(np.float32), ("a", "b"), success=converged[k],
                             status="converged" if converged[k] else "max_iter")

    ladder = proxy_ladder(solve_at, [1, 2, 3, 4], threshold=0.01, run_all=True)
    assert ladder.stable_at == 2 and ladder.unconverged == [1, 2] and ladder.stable_unconverged
    info = ladder.to_dict()
    assert info["unconverged"] == [1, 2] and info["stable_unconverged"] is True
    converged[:2] = [True, True]
    ladder = proxy_ladder(solve_at, [1, 2, 3, 4], threshold=0.01)
    assert ladder.stable_at == 2 and ladder.unconverged == [] and not ladder.to_dict()["stable_unconverged"]
    converged[0] = False  # one of the two compared is enough
    assert proxy_ladder(solve_at, [1, 2, 3, 4], threshold=0.01).stable_unconverged


@pytest.mark.parametrize("gap,short", [(6.8e-6, False), (9e-6, False), (2e-5, True), (None, True)])
def test_a_rung_out_of_iterations_within_ten_times_its_tol_counts_as_converged(gap, short):
    """The ladder flagged rungs at gaps of 6.8e-6 (tol 1e-6) that the evolving view let pass: one rule for both."""
    from mixmin_core.solver.results import stopped_short

    def solve_at(budget):
        status = "converged" if budget > 1 else "max_iter"
        return MixtureResult(np.array([0.5, 0.5], np.float32), ("a", "b"), success=budget > 1, status=status,
                             gap=np.nan if gap is None else gap, meta={"tol": 1e-6})

    ladder = proxy_ladder(solve_at, [1, 2], threshold=0.01)
    assert (ladder.unconverged == [1]) == short and ladder.stable_unconverged == short
    assert stopped_short("max_iter", gap, 1e-6) == short  # as the Beyond page judges an evolving version
    assert not stopped_short("converged", 1.0, 1e-6) and stopped_short("clipped", 0.0, 1e-6)
