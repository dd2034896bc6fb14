"""Search baselines: swarm design, top-k averaging, compute matching, random search, RegMix."""
import logging
from pathlib import Path

import numpy as np
import pytest

from mixmin_core.errors import InputError
from mixmin_core.search.swarm import (
    PRESETS,
    dirichlet_prior,
    fit_regressor,
    matched_trials,
    random_search,
    random_search_table,
    regmix,
    regmix_choose,
    regmix_fit_choose,
    regmix_swarm,
    sample_random_mixtures,
    spearman,
)

NAMES = tuple(f"s{i}" for i in range(5))


def corner_loss(best: int, n_sources: int):
    """A synthetic target loss whose best mixture is the corner ``best``."""
    def evaluate(W):
        W = np.asarray(W, dtype=np.float64)
        assert W.shape[1] == n_sources
        return 1.0 - W[:, best] + 0.1 * (W ** 2).sum(axis=1)
    return evaluate


class LinearModel:
    def __init__(self, c):
        self.c = np.asarray(c, dtype=np.float64)

    def predict(self, W):
        return np.asarray(W, dtype=np.float64) @ self.c


# ----------------------------------------------------------------------------- sampling

def test_dirichlet_prior_known_values():
    np.testing.assert_allclose(dirichlet_prior(np.array([0.64, 0.36])), [0.8 / 1.4, 0.6 / 1.4])
    np.testing.assert_allclose(dirichlet_prior(np.array([0.64, 0.36]), temperature=1.0), [0.64, 0.36])


def test_sample_random_mixtures_uniform_and_prior():
    rng = np.random.default_rng(0)
    W = sample_random_mixtures(20000, 4, rng)
    assert W.shape == (20000, 4) and W.dtype == np.float32
    np.testing.assert_allclose(W.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(W.mean(axis=0), 0.25, atol=0.01)
    prior = np.array([0.7, 0.1, 0.1, 0.1])
    W = sample_random_mixtures(20000, 4, rng, prior=prior, concentration=5.0)
    np.testing.assert_allclose(W.mean(axis=0), prior, atol=0.01)
    assert W[:, 0].std() < sample_random_mixtures(20000, 4, rng, prior=prior)[:, 0].std()


def test_swarm_enumerates_the_grid_when_every_mixture_is_needed():
    # two sources, weights on a 0.1 grid and below 0.1 dropped: exactly 11 distinct mixtures exist
    rng = np.random.default_rng(1)
    W = regmix_swarm(11, np.array([0.5, 0.5]), rng, min_weight=0.1, min_conc=1.0, max_conc=1.0)
    assert sorted(np.round(W[:, 0], 6).tolist()) == pytest.approx([i / 10 for i in range(11)])
    with pytest.raises(InputError, match="found only 11 distinct mixtures"):
        regmix_swarm(12, np.array([0.5, 0.5]), rng, min_weight=0.1, min_conc=1.0, max_conc=1.0)


def test_swarm_respects_upper_bounds():
    # source 0 capped at 0.3: only w0 in {0, 0.1, 0.2, 0.3} is possible
    W = regmix_swarm(4, np.array([0.5, 0.5]), np.random.default_rng(2), min_weight=0.1,
                     upper_bounds=np.array([0.3, 1.0]))
    assert sorted(np.round(W[:, 0], 6).tolist()) == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_swarm_design_properties_on_the_pile_prior():
    natural = np.array([0.24, 0.19, 0.11, 0.10, 0.08, 0.07, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01, 0.008, 0.002])
    natural = natural / natural.sum()
    bounds = np.minimum(15 * natural, 1.0)
    W = regmix_swarm(300, dirichlet_prior(natural), np.random.default_rng(3), upper_bounds=bounds)
    assert W.shape == (300, natural.size) and W.dtype == np.float32
    np.testing.assert_allclose(W.sum(axis=1), 1, atol=1e-5)
    assert (W <= bounds + 2e-4).all()  # rounding to the 2e-4 grid may add half a step
    nonzero = W[W > 0]
    assert nonzero.min() >= 2e-4 * (1 - 1e-3)
    # on the 2e-4 grid up to the final renormalisation (the rounded rows sum to 1 +- a few grid steps)
    np.testing.assert_allclose(nonzero / 2e-4, np.round(nonzero / 2e-4), rtol=5e-3)
    assert len(np.unique(np.round(W / 2e-4).astype(int), axis=0)) == 300  # no duplicates
    # low concentrations put most weight on few sources, high ones spread it: both are present
    top = W.max(axis=1)
    assert (top > 0.9).any() and (top < 0.5).any()
    again = regmix_swarm(300, dirichlet_prior(natural), np.random.default_rng(3), upper_bounds=bounds)
    np.testing.assert_array_equal(W, again)


def test_swarm_projects_onto_bounds_when_rejection_cannot_fill_it(caplog):
    natural = np.random.default_rng(12).dirichlet(np.full(150, 2.0))
    bounds = np.minimum(15 * natural, 1.0)
    with pytest.raises(InputError, match="use bounds_mode='project'"):
        regmix_swarm(150, dirichlet_prior(natural), np.random.default_rng(0), upper_bounds=bounds)
    W = regmix_swarm(150, dirichlet_prior(natural), np.random.default_rng(0), upper_bounds=bounds,
                     bounds_mode="project")
    assert W.shape == (150, 150) and (W <= bounds * (1 + 1e-6)).all()
    np.testing.assert_allclose(W.sum(axis=1), 1, atol=1e-5)
    assert len(np.unique(W, axis=0)) == 150
    names = tuple(f"s{i}" for i in range(150))
    with caplog.at_level(logging.WARNING, logger="mixmin.search"):
        result = regmix(corner_loss(0, 150), source_names=names, prior=natural, n_runs=150,
                        rng=np.random.default_rng(1), n_candidates=2000)
    assert "Projected the draws onto the bounds" in result.meta["warnings"][0] and "Projected" in caplog.text
    swarm = np.array(result.meta["swarm"])
    assert (swarm <= bounds * (1 + 1e-6)).all()


def test_matched_trials():
    assert matched_trials(17 * 2.5, 2.5) == 17  # MixMin: one proxy per source
    assert matched_trials(10, 3) == 3
    assert matched_trials(1, 5) == 1  # never zero
    assert matched_trials(0.7 * 10, 0.7) == 10  # floating-point products do not lose a trial


# ----------------------------------------------------------------------------- random search

def test_random_search_keeps_the_best_candidate_and_records_compute():
    rng = np.random.default_rng(4)
    result = random_search(corner_loss(2, 5), source_names=NAMES, n_trials=9, rng=rng, compute_per_trial=3.0)
    losses = np.array(result.meta["candidate_losses"])
    cands = np.array(result.meta["candidates"])
    assert result.method == "random_search" and result.meta["n_trials"] == 9 and result.meta["compute"] == 27.0
    assert result.loss == pytest.approx(losses.min())
    np.testing.assert_allclose(result.weights, cands[np.argmin(losses)])
    assert result.weights.dtype == np.float32 and result.source_names == NAMES


def test_random_search_all_non_finite_is_not_success():
    result = random_search(lambda W: np.full(len(W), np.nan), source_names=NAMES, n_trials=3,
                           rng=np.random.default_rng(0))
    assert not result.success and result.status == "non_finite"
    np.testing.assert_allclose(result.weights, 0.2)


def test_random_search_table_looks_up_runs():
    W = np.random.default_rng(5).dirichlet(np.ones(5), size=50)
    y = np.arange(50, dtype=float)[::-1]  # the last run is the best
    result = random_search_table(W, y, source_names=NAMES, n_trials=7, rng=np.random.default_rng(6),
                                 run_ids=[f"r{i}" for i in range(50)])
    idx = result.meta["run_indices"]
    assert len(set(idx)) == 7 and result.meta["compute"] == 7.0
    best = max(idx)
    assert result.loss == y[best] and result.meta["best_run"] == f"r{best}"
    np.testing.assert_allclose(result.weights, W[best], atol=1e-6)
    full = random_search_table(W, y, source_names=NAMES, n_trials=50, rng=np.random.default_rng(0))
    assert full.loss == 0.0 and full.meta["best_run"] == 49


# ----------------------------------------------------------------------------- RegMix

def test_top_k_averaging_matches_an_independent_computation():
    prior = np.array([0.4, 0.3, 0.2, 0.1, 0.05])
    prior = prior / prior.sum()
    model = LinearModel([0.3, -1.0, 0.5, 0.2, 0.0])
    w = regmix_choose(model, prior, np.random.default_rng(7), n_candidates=5000, top_k=16)
    cands = np.random.default_rng(7).dirichlet(prior, size=5000)
    expected = cands[np.argsort(cands @ model.c)[:16]].mean(axis=0)
    np.testing.assert_allclose(w, expected / expected.sum(), atol=1e-5)
    one = regmix_choose(model, prior, np.random.default_rng(7), n_candidates=5000, top_k=1)
    np.testing.assert_allclose(one, cands[np.argmin(cands @ model.c)], atol=1e-5)
    everything = regmix_choose(model, prior, np.random.default_rng(7), n_candidates=5000, top_k=5000)
    np.testing.assert_allclose(everything, cands.mean(axis=0), atol=1e-5)


def test_top_k_is_the_same_when_candidates_come_in_chunks(monkeypatch):
    from mixmin_core.search import swarm as search

    prior = np.array([0.4, 0.3, 0.2, 0.1])
    model = LinearModel([0.3, -1.0, 0.5, 0.2])
    whole = regmix_choose(model, prior, np.random.default_rng(3), n_candidates=4500, top_k=50)
    monkeypatch.setattr(search, "_CHUNK_VALUES", 10)  # 1,000-row chunks: 5 of them, the last partial
    chunked = regmix_choose(model, prior, np.random.default_rng(3), n_candidates=4500, top_k=50)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


def test_regressor_finds_the_known_best_corner():
    rng = np.random.default_rng(8)
    prior = np.full(5, 0.2)
    W = regmix_swarm(400, prior, rng)
    model = fit_regressor(W, corner_loss(3, 5)(W))
    assert model.spearman > 0.9 and not model.constant and model.n_val == 50 and model.n_train == 350
    w = regmix_choose(model, prior, rng, n_candidates=20000, top_k=128)
    assert int(np.argmax(w)) == 3 and w[3] > 0.6


def test_a_regressor_that_cannot_rank_its_held_out_runs_says_so():
    """On MUV RegMix fitted 10 runs and ranked its held-out ones at Spearman <= 0.03 in 7 of 12 problems; its pick
    (0.55 on one source) came with no warning."""
    rng = np.random.default_rng(8)
    W = regmix_swarm(400, np.full(5, 0.2), rng)
    good = fit_regressor(W, corner_loss(3, 5)(W))
    assert good.warnings == []  # Spearman 0.9: nothing to say
    noise = fit_regressor(W, rng.permutation(corner_loss(3, 5)(W)))  # losses unrelated to the mixtures
    assert noise.spearman < 0.3 and len(noise.warnings) == 1
    assert f"ranks its 50 held-out runs at Spearman {noise.spearman:.2f}" in noise.warnings[0]


def test_early_stopping_holds_out_whole_mixtures():
    """Three seeds of each of 100 mixtures: a random split of rows put copies on both sides, so the held-out
    loss was a copy's (Spearman 0.994) and early stopping never stopped. Distinct mixtures split as before."""
    from mixmin_core.search.swarm import _split_order

    W = regmix_swarm(100, np.full(5, 0.2), np.random.default_rng(3))
    seeds = np.repeat(W, 3, axis=0)
    order, n_val = _split_order(seeds, 38, seed=42)
    held, fit = {tuple(r) for r in seeds[order[:n_val]]}, {tuple(r) for r in seeds[order[n_val:]]}
    assert n_val == 36 and not held & fit and len(held) == 12 and sorted(order) == list(range(300))
    baseline = np.vstack([np.repeat(np.full((1, 5), 0.2), 40, axis=0), W[:20]])  # a diff reviewer's: one mixture's
    for seed in range(6):                                                        # 40 seeds took 45 of 60 rows
        order, n_val = _split_order(baseline, 8, seed=seed)
        assert n_val == 8 and not (baseline[order[:n_val]] == 0.2).all(axis=1).any()
    order, n_val = _split_order(np.repeat(W[:5], 4, axis=0), 3, seed=42)  # 4 seeds each, 3 rows asked: one mixture
    assert n_val == 4 and len({tuple(r) for r in np.repeat(W[:5], 4, axis=0)[order[:4]]}) == 1
    order, n_val = _split_order(W, 13, seed=42)
    assert n_val == 13 and (order == np.random.default_rng(42).permutation(100)).all()


def test_regmix_end_to_end_on_a_synthetic_loss():
    prior = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    result = regmix(corner_loss(1, 5), source_names=NAMES, prior=prior, n_runs=256, rng=np.random.default_rng(9),
                    n_candidates=20000, compute_per_run=0.5)
    assert result.method == "regmix" and result.success and result.meta["warnings"] == []
    assert result.meta["n_runs"] == 256 and result.meta["compute"] == 128.0 and result.meta["preset"] == "faithful"
    assert result.top(1)[0][0] == "s1" and result.meta["spearman"] > 0.9
    assert len(result.meta["swarm"]) == 256 and len(result.meta["swarm_losses"]) == 256
    np.testing.assert_allclose(result.weights.sum(), 1, atol=1e-6)


def test_regmix_warns_when_lightgbm_cannot_split(caplog):
    prior = np.full(5, 0.2)
    with caplog.at_level(logging.WARNING, logger="mixmin.search"):
        result = regmix(corner_loss(0, 5), source_names=NAMES, prior=prior, n_runs=7,
                        rng=np.random.default_rng(10), n_candidates=2000)
    assert not result.success and "cannot split" in result.meta["warnings"][0]
    assert "cannot split" in caplog.text
    small = regmix(corner_loss(0, 5), source_names=NAMES, prior=prior, n_runs=7, rng=np.random.default_rng(10),
                   n_candidates=2000, preset="mixmin-paper")
    assert small.success and small.meta["warnings"] == [] and small.meta["n_train"] == 4  # 2/3 of 7 runs
    assert PRESETS["mixmin-paper"]["n_runs"] == 7


def test_regmix_fit_choose_reports_test_spearman():
    rng = np.random.default_rng(11)
    W = regmix_swarm(300, np.full(5, 0.2), rng)
    y = corner_loss(4, 5)(W)
    W_test = regmix_swarm(60, np.full(5, 0.2), rng)
    result = regmix_fit_choose(W, y, source_names=NAMES, prior=np.full(5, 0.2), rng=rng, n_candidates=5000,
                               tests={"test": (W_test, corner_loss(4, 5)(W_test)),
                                      "reversed": (W_test, -corner_loss(4, 5)(W_test))})
    assert result.meta["spearman_tests"]["test"] > 0.9 and result.meta["spearman_tests"]["reversed"] < -0.9
    assert result.meta["compute"] == 300.0 and result.loss == pytest.approx(result.meta["predicted_loss"])
    y_test = corner_loss(4, 5)(W_test)
    top1 = result.meta["tests_top1"]
    assert top1["test"]["best"] == y_test.min() and top1["reversed"]["best"] == (-y_test).min()
    assert top1["test"]["top1"] - y_test.min() < 0.1 * np.ptp(y_test)  # a good ranker picks a near-best run


def test_spearman_undefined_cases():
    assert np.isnan(spearman([1, 2], [1, 2])) and np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("call,match", [
    (lambda: dirichlet_prior(np.array([0.5, 0.0, 0.5])), "natural must be positive"),
    (lambda: dirichlet_prior(np.array([0.5, 0.5]), temperature=0), "temperature must be a positive finite number; got 0"),
    (lambda: sample_random_mixtures(0, 3, np.random.default_rng()), "n must be an integer >= 1"),
    (lambda: sample_random_mixtures(3, 1, np.random.default_rng()), "n_sources must be an integer >= 2"),
    (lambda: sample_random_mixtures(3, 3, np.random.default_rng(), prior=[0.5, 0.5]), r"prior must have shape \(3,\)"),
    (lambda: sample_random_mixtures(3, 2, np.random.default_rng(), concentration=-1), "concentration must be a positive finite number; got -1"),
    (lambda: regmix_swarm(5, np.full(4, 0.25), np.random.default_rng(), min_weight=0.3), "min_weight must be in"),
    (lambda: regmix_swarm(5, np.full(4, 0.25), np.random.default_rng(), min_conc=2, max_conc=1), "min_conc <= max_conc"),
    (lambda: regmix_swarm(5, np.full(4, 0.25), np.random.default_rng(), bounds_mode="clip"), "bounds_mode must be"),
    (lambda: regmix_swarm(5, np.full(2, 0.5), np.random.default_rng(), upper_bounds=np.array([0.3, 0.3])),
     "upper_bounds must be 2 positive values summing to at least 1"),
    (lambda: matched_trials(0, 1), "total_compute must be a positive finite number; got 0"),
    (lambda: matched_trials(5, float("nan")), "compute_per_trial must be a positive finite number; got nan"),
    (lambda: random_search(lambda W: np.zeros(2), source_names=NAMES, n_trials=3, rng=np.random.default_rng()),
     r"evaluate must return one loss per mixture, shape \(3,\)"),
    (lambda: random_search(lambda W: ["a"] * 3, source_names=NAMES, n_trials=3, rng=0),
     r"evaluate must return one loss \(a number\) per mixture; got \['a', 'a', 'a'\]"),
    (lambda: random_search(lambda W: np.zeros(len(W)), source_names=NAMES, n_trials=0, rng=0),
     "n_trials must be an integer >= 1; got 0"),
    (lambda: random_search_table(np.vstack([np.zeros(5), np.full(5, 0.2)]), [0.1, 0.2], source_names=NAMES,
                                 n_trials=2, rng=0), r"W row\(s\) \[0\] are all zero"),  # it became uniform
    (lambda: random_search_table(np.full((3, 5), 0.2), [1, 2, 3], source_names=NAMES, n_trials=4,
                                 rng=np.random.default_rng()), "n_trials must be at most the number of runs"),
    (lambda: random_search_table(np.full((3, 4), 0.25), [1, 2, 3], source_names=NAMES, n_trials=1,
                                 rng=np.random.default_rng()), r"W must have shape \(n_mixtures, 5\)"),
    (lambda: fit_regressor(np.full((3, 2), 0.5), [1.0, np.nan, np.nan]), "at least 2 runs with a finite loss"),
    (lambda: fit_regressor(np.full((3, 2), 0.5), [1, 2, 3], preset="fast"), "preset must be one of"),
    (lambda: regmix_choose(LinearModel([1, 2]), [0.5, 0.5], np.random.default_rng(), n_candidates=10, top_k=11),
     "top_k must be at most n_candidates"),
    (lambda: regmix(corner_loss(0, 2), source_names=("a", "b"), prior=[1.0, 0.0], n_runs=5,
                    rng=np.random.default_rng()), "prior must be positive"),
])
def test_documented_errors(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_regmix_auto_preset_falls_back_when_the_faithful_regressor_cannot_split():
    """One rule for every domain: faithful where it learns (47+ runs and a split), else mixmin-paper."""
    from mixmin_core.search.swarm import regmix_fit_choose

    rng = np.random.default_rng(0)
    prior = np.full(5, 0.2)
    W = rng.dirichlet(np.ones(5), size=200)
    y = W @ np.array([3.0, 1.0, 2.0, 0.5, 4.0])  # learnable: a linear loss
    learnt = regmix_fit_choose(W, y, source_names=list("abcde"), prior=prior, rng=rng, preset="auto",
                               n_candidates=500, top_k=10)
    assert learnt.meta["preset"] == "faithful" and learnt.success
    few = regmix_fit_choose(W[:20], y[:20], source_names=list("abcde"), prior=prior, rng=rng, preset="auto",
                            n_candidates=500, top_k=10)
    assert few.meta["preset"] == "mixmin-paper"  # under 47 runs the faithful regressor cannot split
    flat = regmix_fit_choose(W[:60], np.ones(60), source_names=list("abcde"), prior=prior, rng=rng, preset="auto",
                             n_candidates=500, top_k=10)
    assert flat.meta["preset"] == "mixmin-paper"  # constant losses: faithful predicts a constant, fall back


def test_rng_may_be_a_seed_and_anything_else_is_named():
    a = random_search(lambda W: W[:, 0], source_names=("a", "b"), n_trials=4, rng=3)
    b = random_search(lambda W: W[:, 0], source_names=("a", "b"), n_trials=4, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a.weights, b.weights)
    with pytest.raises(InputError, match="rng must be a numpy Generator .* or a non-negative integer seed; got 'x'"):
        random_search(lambda W: W[:, 0], source_names=("a", "b"), n_trials=4, rng="x")
    with pytest.raises(InputError, match=r"run_ids must name every run of the table \(3\); got 2"):
        random_search_table(np.eye(3), [1, 2, 3], source_names=("a", "b", "c"), n_trials=2, rng=0, run_ids=[1, 2])
    with pytest.raises(InputError, match="compute_per_trial must be a positive finite number; got -1"):
        random_search(lambda W: W[:, 0], source_names=("a", "b"), n_trials=4, rng=0, compute_per_trial=-1)
    with pytest.raises(InputError, match="min_conc must be a positive finite number; got 'x'"):
        regmix_swarm(5, [0.5, 0.5], 0, min_conc="x")


def test_max_usage_and_val_fraction_are_named():
    with pytest.raises(InputError, match="max_usage must be a finite number >= 1; got 0.5"):
        regmix(lambda W: W[:, 0], source_names=("a", "b"), prior=[0.5, 0.5], n_runs=5, rng=0, max_usage=0.5)
    W = np.random.default_rng(0).dirichlet([1, 1], 20)
    with pytest.raises(InputError, match="val_fraction must be below 1"):
        fit_regressor(W, np.arange(20.0), val_fraction=2)


@pytest.mark.parametrize("names,match", [(("a", "a"), r"source_names must be unique; duplicated: \['a'\]"),
                                         ("ab", "source_names must be a list of names")])
def test_source_names_must_be_distinct_names(names, match):
    with pytest.raises(InputError, match=match):  # a result would have merged the two 'a' sources
        random_search(lambda W: W[:, 0], source_names=names, n_trials=4, rng=0)


def test_the_readmes_search_snippet_runs_on_a_table_of_your_own(tmp_path, monkeypatch):
    """The README's "search baselines from Python" block, run as written on runs.csv / metrics.csv in RegMix's
    layout: the search API was not exported (mixmin_core.search named nothing) and no example showed it."""
    import re
    import runpy

    import pandas as pd

    from mixmin_core.search import RunTable

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "mixmin_core.search import" in b]
    rng = np.random.default_rng(0)
    W = rng.dirichlet(np.ones(4), size=60)
    runs = pd.DataFrame(W, columns=["web", "code", "books", "wiki"]).rename_axis("index").reset_index()
    metrics = pd.DataFrame({"index": runs["index"], "val_loss": 3.0 - W[:, 1] + 0.5 * (W[:, 1] - 0.4) ** 2})
    runs.to_csv(tmp_path / "runs.csv", index=False)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snippet.py").write_text(block)
    scope = runpy.run_path(str(tmp_path / "snippet.py"))
    assert isinstance(scope["table"], RunTable) and scope["table"].weights.shape == (60, 4)
    pick = scope["pick"]
    assert pick.method == "regmix" and abs(float(pick.weights.sum()) - 1) < 1e-5
    assert pick.source_names[int(np.argmax(pick.weights))] == "code"  # the loss falls with code's share
