"""Search methods on a published run table, scored on fair yardsticks (../shared/DESIGN.md, contract 6).

Per target and trial (:func:`trial_runs`), the training table's runs are split into

* the **pool** every method may use (look up, fit on, buy);
* the **yardstick runs**: a same-scale table no method is given, or the trial's held-out split
  (``test_fraction`` of the training runs, seeded by trial, a mixture's repeated runs on one side) — removed
  from the pool;
* **test tables**: held-out runs at this and other scales, only ever scored on;
* **fidelity tables**: smaller-scale runs of the pool's mixtures that multi-fidelity BO may buy.

Each method (:func:`choose_mixture`) picks a mixture; :func:`score_mixture` then reports

* ``measured_loss`` where the chosen mixture is a measured run at the training scale (random
  search and BO pick pool runs): the table's own number, no model involved;
* ``surrogate:yardstick_loss`` for every method: the prediction of a ridge regression on
  log-weight features (:mod:`mixmin_core.search.yardstick`) fitted on the yardstick runs only, a
  different model family from RegMix's LightGBM and BO's Gaussian process. The ``surrogate:``
  prefix marks a model's number, not a measurement;
* ``yardstick_spearman``: that yardstick's cross-validated Spearman on its own runs, printed next
  to the scores so a reader knows how far to trust them; ``yardstick_rmse``, its cross-validated
  error; ``yardstick_beyond_runs``, how far the prediction lies beyond the best run the yardstick
  was fitted on (0 within their range; more than the RMSE is an extrapolation).

For score tables (higher is better, e.g. ADMIRE) the same metrics are named ``*_score`` and keep
the table's orientation. Methods work on losses (lower is better) throughout.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.search.run_tables import (
    RunTable,
    _warn_once,
    load_run_table,
    prior_for,
    scale_params,
    table_scale,
)
from mixmin_core.search.swarm import (
    mixture_groups,
    random_search_table,
    regmix_fit_choose,
    spearman,
    weak_ranking,
)
from mixmin_core.search.yardstick import Yardstick, fit_yardstick
from mixmin_core.solver.results import MixtureResult

log = logging.getLogger("mixmin.search")

METHODS = ("natural", "random_search", "regmix", "bo")
TEST_SPLIT = "test_split"
_LOSS_LIKE = ("measured_loss", "best_run_loss", "surrogate:", "top1_loss/", "best_loss/")


@dataclass(frozen=True)
class TrialRuns:
    """The runs of one trial; see the module docstring."""

    pool: RunTable
    tests: dict
    yardstick: RunTable
    fidelity: tuple = ()


def resolve_yardstick(train_table: str, test_tables: list, test_fraction: float, yardstick: str, own=()) -> str:
    """The yardstick's runs: ``yardstick`` itself, or for ``"auto"`` the first test table at the
    training table's scale, else the held-out split (``"test_split"``). ``own``: your own tables
    (:class:`~mixmin_core.search.run_tables.OwnTable`), which names may also refer to.

    Raises
    ------
    InputError
        If no runs are left for the yardstick, or a named table is unknown or at another scale.
    """
    scale = table_scale(train_table, own)

    def same_scale(name):  # 1M, 1m and 1000K are one scale
        return scale_params(table_scale(name, own)) == scale_params(scale)

    if yardstick == "auto":
        same = [t for t in test_tables if same_scale(t) and t != train_table]
        if same:
            return same[0]
        yardstick = TEST_SPLIT
    if yardstick == TEST_SPLIT:
        if not test_fraction > 0:
            raise InputError(f"yardstick: no runs at scale {scale} are held out from every method; set "
                             "test_fraction > 0 (e.g. 0.25) or name a same-scale table as yardstick.")
        return TEST_SPLIT
    if not same_scale(yardstick) or yardstick == train_table:
        raise InputError(f"yardstick table {yardstick!r} must hold other runs at the training scale {scale}; "
                         f"it is at scale {table_scale(yardstick, own)}.")
    return yardstick


def trial_runs(train_table: str, test_tables: list, *, test_fraction: float, yardstick: str,
               fidelity_tables: list = (), seed: int = 0, trial: int = 0, own=()) -> TrialRuns:
    """Load and split the runs of one trial (the held-out split is seeded by ``seed`` and ``trial``); ``own``: your
    own tables, as :func:`resolve_yardstick`.

    Raises
    ------
    InputError
        As :func:`resolve_yardstick`, or if tables have other sources than ``train_table``.
    """
    train = load_run_table(train_table, own=own)
    tests = {name: load_run_table(name, own=own) for name in test_tables}
    where = resolve_yardstick(train_table, list(test_tables), test_fraction, yardstick, own)
    if test_fraction > 0:
        held = _held_out(train.weights, test_fraction, np.random.default_rng([seed, 99, trial]))
        tests[TEST_SPLIT] = train.subset(held)
        train = train.subset(~held)
    ruler = tests[TEST_SPLIT] if where == TEST_SPLIT else tests.get(where) or load_run_table(where, own=own)
    fidelity = tuple(sorted((load_run_table(n, own=own) for n in fidelity_tables), key=lambda t: scale_params(t.scale)))
    tests = {name: _in_order(t, train, "test_tables") for name, t in tests.items()}
    ruler = _in_order(ruler, train, "yardstick")
    fidelity = tuple(_in_order(t, train, "bo_fidelity_tables") for t in fidelity)
    _check_shared(train, {t.name: t for name, t in [*tests.items(), ("", ruler)] if name != TEST_SPLIT})
    roles = [("test_tables", t) for t in tests.values()] + [("yardstick", ruler)] + [("bo_fidelity_tables", t) for t in fidelity]
    for role, table in roles:
        if table.higher_is_better != train.higher_is_better:  # one orientation for every score of a run
            raise InputError(f"{role}: table {table.name!r} and {train_table!r} disagree on higher_is_better; "
                             "give every table of one family the same.")
    return TrialRuns(pool=train, tests=tests, yardstick=ruler, fidelity=fidelity)


def _check_shared(pool: RunTable, tables: dict) -> None:
    """Warn where a held-out table at the pool's scale repeats mixtures of the pool: its runs of them were, in
    effect, given to the methods. One that repeats only the pool's mixtures (the same files under another name)
    holds nothing out: an error."""
    ours = {w.tobytes() for w in pool.weights}
    for table in tables.values():
        shared = sum(w.tobytes() in ours for w in table.weights)
        if not shared or scale_params(table.scale) != scale_params(pool.scale):
            continue
        if shared == table.n_runs:
            raise InputError(f"table {table.name!r}: each of its {shared} runs repeats a mixture of the runs of "
                             f"{pool.name!r} (the same files?), which the methods search, so it holds nothing out. Name a table of "
                             f"other runs, or hold out part of {pool.name!r} with test_fraction (e.g. 0.25).")
        _warn_once("%s: %d of its %d runs repeat a mixture of %s's runs, which the methods search; scores on "
                   "them are not held out (drop those runs from one table)", table.name, shared, table.n_runs,
                   pool.name)


def _held_out(W: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A mask of the runs held out: whole mixtures (the runs of one mixture are all held out or all kept, so no method
    is given a copy of a held-out run), drawn in a seeded order, as many as bring the count closest to ``fraction``
    of the runs (at least one mixture), and never every mixture. Without repeated mixtures that is
    ``round(fraction * runs)`` runs, as before mixtures were grouped.

    Raises
    ------
    InputError
        If the table holds one mixture only (nothing would be left to search).
    """
    groups = mixture_groups(W)
    n_groups = int(groups.max()) + 1
    if n_groups < 2:
        raise InputError(f"test_fraction: every run of the train table is one mixture ({len(W)} runs), so holding some "
                         "out leaves nothing to search; set test_fraction: 0 and name a yardstick table.")
    order = rng.permutation(n_groups)
    total = np.cumsum(np.bincount(groups)[order])[:-1]  # held-out runs after 1, 2, ... mixtures (one always kept)
    n_held = int(np.argmin(np.abs(total - max(1, round(fraction * len(W)))))) + 1
    return np.isin(groups, order[:n_held])


def _in_order(table: RunTable, train: RunTable, role: str) -> RunTable:
    """``table`` with its sources in ``train``'s order (the same sources in other columns are the same mixtures), a
    source only one of them names left at 0 where it is 0 in every run of the one that names it (the same mixtures,
    written with one column more), or an InputError naming the sources one has and the other lacks."""
    if table.source_names == train.source_names:
        return table
    only = sorted(set(table.source_names) - set(train.source_names))
    lacks = sorted(set(train.source_names) - set(table.source_names))
    unused = [n for n in only if not table.weights[:, table.source_names.index(n)].any()] + [
        n for n in lacks if not train.weights[:, train.source_names.index(n)].any()]
    if set(only) | set(lacks) != set(unused):
        raise InputError(f"{role}: table {table.name!r} has other sources than {train.name!r}: only it has "
                         f"{only[:5]}, and it lacks {lacks[:5]}; pick tables of one family (a source at 0 in every "
                         "run of the table that names it may be left out of the other).")
    columns = np.zeros((len(table.weights), len(train.source_names)), dtype=table.weights.dtype)
    natural = None if table.natural_weights is None else np.zeros(len(train.source_names))
    for j, name in enumerate(train.source_names):
        if name in table.source_names:
            columns[:, j] = table.weights[:, table.source_names.index(name)]
            if natural is not None:
                natural[j] = table.natural_weights[table.source_names.index(name)]
    return dataclasses.replace(table, weights=columns, source_names=train.source_names, natural_weights=natural)


def _finite(table: RunTable, target: str):
    y = table.loss(target)
    ok = np.isfinite(y)
    return table.weights[ok], y[ok], np.flatnonzero(ok)


def _spent(table: RunTable, rows) -> float:
    """Cost of looking up ``rows``: the table's published costs if it has them, else one per run."""
    rows = np.asarray(rows, dtype=np.int64)
    return float(len(rows)) if table.costs is None else float(np.sum(table.costs[rows]))


def choose_mixture(method: str, runs: TrialRuns, target: str, *, rng: np.random.Generator, prior: str = "natural",
                   preset: str = "faithful", n_candidates: int = 100_000, top_k: int = 128, n_random: int = 0,
                   regmix_runs: int = 0, bo_budget: int = 0, bo_init: int = 0,
                   fidelity_cost: float = 0.0) -> MixtureResult:
    """One method's mixture for ``target`` on the trial's pool (``meta["metrics"]``: its own facts,
    ``meta["compute"]``: what it spent, in runs of the pool or the table's published costs).

    ``n_random``: random search's look-ups (0: one per source); ``bo_budget``: BO's (0: as random
    search); ``bo_init``: BO's random start (0: one per source, at most half the budget). With
    fidelity tables, BO is multi-fidelity (:func:`mixmin_core.search.multifidelity.search_bo`).

    Raises
    ------
    InputError
        For an unknown method or budgets beyond the pool.
    """
    pool = runs.pool
    W, y, rows = _finite(pool, target)
    ids = tuple(np.asarray(pool.run_ids, dtype=object)[rows].tolist())
    names = pool.source_names
    n_random = n_random or len(names)
    tests = {name: _finite(t, target)[:2] for name, t in runs.tests.items()}
    if method == "natural":
        p = prior_for(pool, prior)
        return MixtureResult(weights=(p / p.sum()).astype(np.float32), source_names=names, method="natural",
                             meta={"compute": 0.0, "prior": prior, "metrics": {}}, message=f"{prior} prior of the table")
    if method == "random_search":
        result = random_search_table(W, y, source_names=names, n_trials=n_random, rng=rng, run_ids=ids)
        result.meta.update(compute=_spent(pool, rows[result.meta["run_indices"]]),
                           metrics={"measured_loss": result.loss, "best_run_loss": float(y.min())})
        return result
    if method == "regmix":
        keep = np.sort(rng.choice(len(W), size=regmix_runs, replace=False)) if regmix_runs else np.arange(len(W))
        # LightGBM's seed (which runs early stopping holds out) is drawn per trial like the candidates: with it fixed,
        # every trial on one pool fitted the same regressor, and its Spearman intervals had zero width
        result = regmix_fit_choose(W[keep], y[keep], source_names=names, prior=prior_for(pool, prior), rng=rng,
                                   seed=int(rng.integers(2**31 - 1)),
                                   preset=preset, n_candidates=n_candidates, top_k=top_k, tests=tests,
                                   compute=_spent(pool, rows[keep]), meta={"table": pool.name, "prior": prior})
        metrics = {"surrogate:own_prediction_loss": result.loss}  # "_score" in a score table (see orient)
        if result.meta["spearman"] is not None:
            metrics["spearman_holdout"] = result.meta["spearman"]
        metrics.update({f"spearman/{k}": v for k, v in result.meta["spearman_tests"].items() if v is not None})
        for k, v in result.meta["tests_top1"].items():
            metrics.update({f"top1_loss/{k}": v["top1"], f"best_loss/{k}": v["best"]})
        result.meta["metrics"] = metrics
        return result
    if method == "bo":
        budget = bo_budget or n_random
        if runs.fidelity:
            return _multi_fidelity(runs, target, budget=budget, n_init=bo_init or 2, rng=rng, low_cost=fidelity_cost)
        from mixmin_core.search.bayesopt import bo_table

        n_init = min(bo_init or max(1, min(len(names), budget // 2)), budget)
        result = bo_table(W, y, source_names=names, budget=budget, n_init=n_init, rng=rng, run_ids=ids,
                          tests=tests, seed=int(rng.integers(2**31 - 1)))  # the GP's restarts, per trial like RegMix's
        result.meta["compute"] = _spent(pool, rows[result.meta["evaluated"]])
        return result
    raise InputError(f"method must be one of {list(METHODS)}; got {method!r}.")


def _multi_fidelity(runs: TrialRuns, target: str, *, budget: int, n_init: int, rng, low_cost: float) -> MixtureResult:
    from mixmin_core.search.multifidelity import ScalePool, search_bo

    pool = ScalePool.from_tables([*runs.fidelity, runs.pool], target, low_cost=low_cost or None)
    tests = {name: _finite(t, target)[:2] for name, t in runs.tests.items()}
    trace = search_bo(pool, budget=budget, rng=rng, n_init=n_init,
                      transfer_W=np.concatenate([w for w, _ in tests.values()]) if tests else None)
    best = trace.recommendation
    metrics = {"measured_loss": float(pool.losses[-1, best]), "best_run_loss": pool.best}
    start = 0
    for name, (_, y_test) in tests.items():  # the final GP's ranking of held-out runs (largest scale)
        rho = spearman(trace.transfer_pred[start:start + len(y_test)], y_test)
        start += len(y_test)
        if np.isfinite(rho):
            metrics[f"spearman/{name}"] = rho
    for level, name in enumerate(pool.level_names):
        metrics[f"runs_bought/{name}"] = float(np.sum(np.asarray(trace.levels) == level))
    return MixtureResult(weights=pool.weights[best], source_names=pool.source_names, loss=metrics["measured_loss"],
                         method="bo", meta={"compute": trace.spent, "best_run": pool.run_ids[best],
                                            "bought": list(zip(trace.levels, trace.indices)), "metrics": metrics,
                                            "fidelities": list(pool.level_names)},
                         message=f"multi-fidelity BO: best measured {pool.level_names[-1]} run of "
                                 f"{len(trace.levels)} bought at scales {sorted(set(trace.levels))}")


def score_mixture(result: MixtureResult, yardstick: Yardstick, where: str = "") -> dict:
    """The method's own metrics plus the yardstick's prediction and its held-out Spearman; a prediction beyond
    the yardstick's runs by more than its error is logged (``where``: the target and trial, for the log)."""
    metrics = dict(result.meta.get("metrics", {}))
    predicted = float(yardstick.predict(result.weights[None, :])[0])
    metrics["surrogate:yardstick_loss"] = predicted
    metrics["yardstick_spearman"] = yardstick.spearman
    # sizes, not losses: the same in a score table's orientation
    metrics["yardstick_rmse"] = yardstick.rmse
    metrics["yardstick_beyond_runs"] = yardstick.beyond_runs(predicted)
    if "measured_loss" in metrics:  # where the pick was a run: how far off the yardstick is there
        metrics["yardstick_error_at_pick"] = abs(predicted - metrics["measured_loss"])
    weak = weak_ranking(result)
    if weak:
        log.warning("%s%s", where, weak)
    if metrics["yardstick_beyond_runs"] > yardstick.rmse:  # a reviewer's 0.17 bits-per-byte against runs >= 1.10
        log.warning("%s%s: the yardstick predicts its mixture %.3g beyond the best run it was fitted on, more than "
                    "its cross-validated error (%.3g): an extrapolation, not a measurement", where, result.method,
                    metrics["yardstick_beyond_runs"], yardstick.rmse)
    return metrics


def fit_trial_yardstick(runs: TrialRuns, target: str, *, seed: int = 0) -> Yardstick:
    """The yardstick of one trial: fitted on the yardstick runs only."""
    W, y, _ = _finite(runs.yardstick, target)
    return fit_yardstick(W, y, seed=seed)


def orient(metrics: dict, higher_is_better: bool) -> dict:
    """Metrics in the table's orientation: for score tables, loss-like values are negated back and
    ``_loss`` becomes ``_score`` in their names; Spearman correlations are unchanged."""
    if not higher_is_better:
        return dict(metrics)
    out = {}
    for key, value in metrics.items():
        if key.startswith(_LOSS_LIKE):  # the name before a "/"; after it a table's name, kept as it is
            head, sep, tail = key.partition("/")
            out[head.replace("_loss", "_score") + sep + tail] = -value
        else:
            out[key] = value
    return out
