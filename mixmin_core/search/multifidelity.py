"""Multi-fidelity Bayesian optimisation that buys its own fidelities, on pools of published runs.

A :class:`ScalePool` holds mixtures measured at several model scales (RegMix's 1M and 60M runs of
the same 256 mixtures; ADMIRE's 76 mixtures at Qwen2.5 0.5B, 3B and 7B). The goal is the mixture
with the lowest loss at the largest scale. "Buying" a run reveals its loss and costs its price:
the table's cost (ADMIRE's ``train_time``) or the scale's parameter count relative to the largest.
Nothing is known up front: every method starts with an empty pool and a budget, in units of one
run at the largest scale.

Strategies (each returns a :class:`SearchTrace`):

* :func:`search_random`: random mixtures at the largest scale.
* :func:`search_bo` with ``levels=None``: multi-fidelity BO. A Gaussian process over (mixture,
  log model scale) (:class:`ScaleGP`) and a cost-aware acquisition, the augmented expected
  improvement of Huang et al. (2006): buy the run (mixture ``x``, scale ``l``) that maximises

      EI_top(x) * corr(f_l(x), f_top(x)) * (1 - sigma_noise / sqrt(var_l(x) + sigma_noise^2)) * cost_top / cost_l

  i.e. the expected improvement at the largest scale, discounted by how much a run at scale ``l``
  says about the largest scale (posterior correlation) and by how much it would still reduce the
  uncertainty, per unit cost. It starts with ``n_init`` random runs at the largest scale and buys
  no low-scale run unless the acquisition asks for it.
* :func:`search_bo` with ``levels=[top]``: single-fidelity BO, the same GP and acquisition (which
  then reduces to expected improvement), only largest-scale runs.
* :func:`search_regmix`: RegMix at equal cost: random pool mixtures at the smallest scale for all
  but one largest-scale run of the budget, LightGBM on them, then largest-scale runs of the
  mixtures it predicts best, in order, while the budget lasts.

Every method recommends its best measured largest-scale run (the incumbent), so regret is always
a measured loss. :func:`trace_metrics` reads regret, cost and the cost of first finding a mixture
within 1% of the pool's best off a trace.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.optimize import minimize

from mixmin_core.errors import InputError
from mixmin_core.search.bayesopt import expected_improvement, pick_best
from mixmin_core.search.run_tables import RunTable, match_mixtures, scale_params
from mixmin_core.search.swarm import (
    FAITHFUL_MIN_RUNS,
    _check_positive_int,
    _check_rng,
    _check_seed,
    _check_weights_table,
    fit_regressor,
)
from mixmin_core.solver.validation import check_number, describe

log = logging.getLogger("mixmin.search")

# ----------------------------------------------------------------------------- pool


def check_fidelity_tables(pool: RunTable, tables: list[RunTable], targets=()) -> None:
    """Before any run: an InputError where multi-fidelity BO could not use ``tables`` (runs of ``pool``'s mixtures at
    smaller scales, smallest first): a table at ``pool``'s scale or above, two at one scale (it failed in the run,
    after the other methods), or one sharing none of ``pool``'s mixtures (weights rounded to 3 digits matched none,
    and BO silently bought none of its runs), counting for each of ``targets`` only runs that measured it; a warning
    where it shares under half of them."""
    sizes = [scale_params(t.scale) for t in tables]
    for table, size in zip(tables, sizes):
        if size >= scale_params(pool.scale):
            raise InputError(f"bo_fidelity_tables: {table.name!r} (scale {table.scale}) must be smaller-scale than "
                             f"train_table {pool.name!r} ({pool.scale}).")
        hits = match_mixtures(pool.weights, table.weights)
        hits = hits[hits >= 0]  # the table's rows that hold a pool mixture
        for target in targets or (None,):
            shared = hits.size if target is None else int(np.isfinite(table.target(target))[hits].sum())
            what = "" if target is None else f" with a measured {target!r}"
            if not shared:
                raise InputError(f"bo_fidelity_tables: {table.name!r} holds none of train_table {pool.name!r}'s "
                                 f"mixtures{what} (mixtures matched by their weights, within an L1 distance of 0.001), "
                                 "so BO could buy none of its runs. (If they are the same runs, their weights may be "
                                 "rounded to other digits: write both tables' weights alike.)")
            if shared < len(pool.weights) // 2:
                log.warning("bo_fidelity_tables: %r holds %d of train_table %r's %d mixtures%s; BO can buy cheaper "
                            "runs of those only", table.name, shared, pool.name, len(pool.weights), what)
    if any(b <= a for a, b in itertools.pairwise(sizes)):
        raise InputError("bo_fidelity_tables: each must be at a scale of its own (smallest first); got "
                         f"{[t.scale for t in tables]}.")


@dataclass(frozen=True)
class ScalePool:
    """Mixtures and their runs at ``L`` scales, smallest first; the last scale is the goal.

    ``weights`` ``(n, P)`` float32; ``losses`` and ``costs`` ``(L, n)`` float64 (lower is better;
    NaN where that mixture has no run at that scale); ``scales`` ``(L,)`` parameter counts.
    """

    weights: np.ndarray
    losses: np.ndarray
    costs: np.ndarray
    scales: np.ndarray
    level_names: tuple
    source_names: tuple
    run_ids: tuple = ()

    @property
    def n_levels(self) -> int:
        return int(self.losses.shape[0])

    @property
    def top_cost(self) -> float:
        """Mean cost of one run at the largest scale: the unit of budgets."""
        return float(np.nanmean(self.costs[-1]))

    @property
    def best(self) -> float:
        return float(np.nanmin(self.losses[-1]))

    @classmethod
    def from_tables(cls, tables: list[RunTable], metric: str, *, rows=None, low_cost: float | None = None) -> ScalePool:
        """The mixtures of the last table (its ``rows``, default all with a finite ``metric``) and
        their runs in the other tables (matched by mixture weights). Scales must increase.
        Costs: the tables' ``costs`` if every table has them, else parameters / largest parameters;
        ``low_cost`` (in largest-scale runs) overrides the cost of every smaller-scale run.

        Raises
        ------
        InputError
            If fewer than 2 tables are given, sources differ, or the scales do not increase.
        """
        listed = [] if isinstance(tables, (str, bytes)) or not hasattr(tables, "__len__") else list(tables)
        if len(listed) < 2 or not all(isinstance(t, RunTable) for t in listed):
            got = [t.name for t in listed] if all(isinstance(t, RunTable) for t in listed) else describe(tables)
            raise InputError(f"tables must list at least 2 run tables (load_run_table(name)), smallest scale first; "
                             f"got {got}.")
        low_cost = None if low_cost is None else check_number("low_cost", low_cost, minimum=0, strict=True)
        top = tables[-1]
        params = np.array([scale_params(t.scale) for t in tables])
        if np.any(np.diff(params) <= 0):
            raise InputError(f"tables must be ordered by increasing model scale; got {[t.scale for t in tables]}.")
        for t in tables:
            if t.source_names != top.source_names:
                raise InputError(f"table {t.name!r} has other sources than {top.name!r}; pick tables of one family.")
        y_top = top.loss(metric)
        rows = np.flatnonzero(np.isfinite(y_top)) if rows is None else _check_rows(rows, top)
        W = top.weights[rows]
        use_table_costs = all(t.costs is not None for t in tables)
        losses, costs = np.full((len(tables), len(W)), np.nan), np.full((len(tables), len(W)), np.nan)
        for level, t in enumerate(tables):
            match = np.arange(len(rows)) if t is top else match_mixtures(W, t.weights)
            src = rows if t is top else match
            ok = src >= 0
            losses[level, ok] = t.loss(metric)[src[ok]]
            costs[level, ok] = t.costs[src[ok]] if use_table_costs else params[level] / params[-1]
            if low_cost and t is not top:
                costs[level, ok] = low_cost * (np.nanmean(top.costs) if use_table_costs else 1.0)
        costs[~np.isfinite(losses)] = np.nan
        return cls(weights=W.astype(np.float32), losses=losses, costs=costs, scales=params,
                   level_names=tuple(t.scale for t in tables), source_names=top.source_names,
                   run_ids=tuple(np.asarray(top.run_ids, dtype=object)[rows].tolist()))


def _check_rows(rows, top: RunTable) -> np.ndarray:
    """``rows`` as distinct row indices of ``top`` (a negative index would wrap to the end)."""
    try:
        r = np.asarray(rows) if np.ndim(rows) == 1 else None
    except ValueError:  # ragged
        r = None
    if r is None or r.size == 0 or r.dtype.kind not in "iu" or (r < 0).any() or (r >= top.n_runs).any() \
            or len(np.unique(r)) != r.size:
        raise InputError(f"rows must be distinct row indices of table {top.name!r}, in [0, {top.n_runs}) (at least "
                         f"one); got {describe(rows)}.")
    return r


# ----------------------------------------------------------------------------- trace


@dataclass
class SearchTrace:
    """What one search bought, in order: ``levels``, ``indices`` (pool rows), ``costs``, ``losses``;
    ``incumbent`` after each purchase (pool row of the best measured largest-scale run, -1: none)."""

    method: str
    levels: list = field(default_factory=list)
    indices: list = field(default_factory=list)
    costs: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    incumbent: list = field(default_factory=list)
    transfer_pred: np.ndarray | None = None  # the final model's largest-scale predictions of other mixtures
    notes: dict = field(default_factory=dict)

    def buy(self, pool: ScalePool, level: int, index: int) -> float:
        loss = float(pool.losses[level, index])
        self.levels.append(int(level))
        self.indices.append(int(index))
        self.costs.append(float(pool.costs[level, index]))
        self.losses.append(loss)
        top = pool.n_levels - 1
        best = self.incumbent[-1] if self.incumbent else -1
        if level == top and (best < 0 or loss < pool.losses[top, best]):
            best = int(index)
        self.incumbent.append(best)
        return loss

    @property
    def spent(self) -> float:
        return float(np.sum(self.costs))

    @property
    def recommendation(self) -> int:
        return self.incumbent[-1] if self.incumbent else -1


def trace_metrics(trace: SearchTrace, pool: ScalePool, *, within: float = 0.01) -> dict:
    """Regret of the final recommendation (its largest-scale loss minus the pool's best), cost
    spent (in largest-scale runs), runs bought per scale, and the cost (same unit) at which the
    incumbent first came within ``within`` (relative) of the best and first was the best (NaN:
    never). ``regret`` is NaN if no largest-scale run was bought."""
    within = check_number("within", within, minimum=0)
    top, unit = pool.n_levels - 1, pool.top_cost
    best = pool.best
    cum = np.cumsum(trace.costs) / unit
    values = np.array([pool.losses[top, i] if i >= 0 else np.inf for i in trace.incumbent])
    close = np.flatnonzero(values <= best + within * abs(best))
    exact = np.flatnonzero(values <= best)
    rec = trace.recommendation
    out = {"regret": float(pool.losses[top, rec] - best) if rec >= 0 else float("nan"),
           "cost": float(cum[-1]) if len(cum) else 0.0,
           f"cost_to_{within:g}": float(cum[close[0]]) if close.size else float("nan"),
           "cost_to_best": float(cum[exact[0]]) if exact.size else float("nan")}
    for level, name in enumerate(pool.level_names):
        out[f"runs_{name}"] = int(np.sum(np.asarray(trace.levels) == level))
    return out


def _check_budget(pool: ScalePool, budget) -> float:
    if not isinstance(pool, ScalePool):
        raise InputError(f"pool must be a ScalePool (ScalePool.from_tables(tables, metric)); got {describe(pool)}.")
    try:
        check_number("budget", budget, minimum=0, strict=True)
    except InputError:
        raise InputError(f"budget must be a positive number of largest-scale runs; got {describe(budget)}.") from None
    cheapest = float(np.nanmin(np.where(np.isfinite(pool.losses[-1]), pool.costs[-1], np.nan)))
    if float(budget) * pool.top_cost < cheapest * (1 - 1e-9):  # no search could recommend a measured run
        raise InputError(f"budget {budget!r} (in largest-scale runs of mean cost {pool.top_cost:.4g}) buys no "
                         f"largest-scale run: the cheapest costs {cheapest:.4g}; raise the budget to at least "
                         f"{cheapest / pool.top_cost:.3g}.")
    return float(budget) * pool.top_cost


# ----------------------------------------------------------------------------- random search


def search_random(pool: ScalePool, *, budget: float, rng: np.random.Generator) -> SearchTrace:
    """Largest-scale runs of random pool mixtures, in a random order, each that still fits ``budget``
    (largest-scale runs)."""
    rng = _check_rng(rng)
    money = _check_budget(pool, budget)
    trace = SearchTrace("random_search")
    top = pool.n_levels - 1
    for i in rng.permutation(np.flatnonzero(np.isfinite(pool.losses[top]))):
        if trace.spent + pool.costs[top, i] <= money * (1 + 1e-9):  # a dearer run than is left is passed over
            trace.buy(pool, top, i)
    return trace


# ----------------------------------------------------------------------------- the GP


def _matern52(r: np.ndarray) -> np.ndarray:
    a = np.sqrt(5.0) * r
    return (1.0 + a + a * a / 3.0) * np.exp(-a)


class ScaleGP:
    """A GP over (mixture weights, log model scale) with a free offset per scale.

    ``k = amp * a_l * a_l' * M52(|sqrt(w) - sqrt(w')| / ls_w) * M52(|s - s'| / ls_s) + offset * [l = l'] + noise * [same run]``

    Mixtures enter through ``sqrt(w)`` (the Hellinger embedding of the simplex): a source going
    from 0.1% to 1% moves a mixture further than from 50% to 51%, as it moves the loss. With 30
    runs this ranked held-out runs better than raw weights (Spearman 0.93 vs 0.85 on RegMix 60M
    Pile-CC, 0.72 vs 0.35 on ADMIRE 7B average score). ``s`` is the log parameter count scaled to [0, 1]. Losses are centred per scale (the scales'
    losses differ by far more than mixtures do, e.g. 0.33 vs 0.59 mean score on ADMIRE) and divided
    by the pooled within-scale spread; the offset term carries the uncertainty of that centring and
    ``a_l`` (1 at the largest scale) lets a scale spread its losses more or less than another.
    Hyperparameters ``theta = log(amp, ls_w, ls_s, offset, noise, a_0, ..., a_{L-2})`` maximise the
    marginal likelihood times weak log-normal priors (:attr:`PRIOR`: with 5 runs the likelihood
    alone may call the scales unrelated), by L-BFGS-B from the previous value. Runs and candidates are rows of the
    fixed mixtures ``W`` given at construction, so the mixture distances are computed once.
    """

    #: (log mean, sd) of each hyperparameter's log-normal prior; the scale amplitudes a_l: (0, 0.5)
    PRIOR = ((0.0, 1.5), (np.log(0.5), 1.0), (np.log(2.0), 1.0), (0.0, 1.5), (np.log(1e-2), 2.0))
    BOUNDS = ((np.log(1e-2), np.log(1e2)), (np.log(1e-2), np.log(1e1)), (np.log(5e-2), np.log(1e2)),
              (np.log(1e-3), np.log(1e2)), (np.log(1e-6), np.log(1.0)))

    def __init__(self, W, log_scales):
        self.W = np.sqrt(np.maximum(np.asarray(W, dtype=np.float64), 0.0))
        self.D = _distances(self.W, self.W)
        lo, hi = float(np.min(log_scales)), float(np.max(log_scales))
        self.s = (np.asarray(log_scales, dtype=np.float64) - lo) / (hi - lo) if hi > lo else np.zeros(len(log_scales))
        self.n_levels = len(self.s)
        self.prior = np.array([*self.PRIOR, *[(0.0, 0.5)] * (self.n_levels - 1)])
        self.bounds = [*self.BOUNDS, *[(np.log(0.1), np.log(10.0))] * (self.n_levels - 1)]
        self.theta = self.prior[:, 0].copy()
        self._mw = None  # (ls_w, M52(D / ls_w)) for the current length scale

    def _shared(self, theta) -> np.ndarray:
        """``amp * a_l * a_l' * M52(|s_l - s_l'| / ls_s)``, shape ``(L, L)``."""
        a = np.r_[np.exp(theta[5:]), 1.0]
        return np.exp(theta[0]) * np.outer(a, a) * _matern52(np.abs(self.s[:, None] - self.s[None, :]) / np.exp(theta[2]))

    def _k(self, theta, Dw, la, lb) -> np.ndarray:
        """Kernel between runs at mixture distances ``Dw`` (or ``(rows, cols)`` of the cached
        Matern) and scale indices ``la``, ``lb``."""
        ls_w, offset = np.exp(theta[1]), np.exp(theta[3])
        mw = self._matern_rows(ls_w, *Dw) if isinstance(Dw, tuple) else _matern52(Dw / ls_w)
        return mw * self._shared(theta)[np.ix_(la, lb)] + offset * (la[:, None] == lb[None, :])

    def _matern_rows(self, ls_w, rows, cols):
        if self._mw is None or self._mw[0] != ls_w:
            self._mw = (ls_w, _matern52(self.D / ls_w))
        return self._mw[1][np.ix_(rows, cols)]

    def _standardise(self, levels, y):
        center = np.zeros(self.n_levels)
        resid, dof = 0.0, 0
        for level in range(self.n_levels):
            m = levels == level
            if m.any():
                center[level] = y[m].mean()
                resid += ((y[m] - center[level]) ** 2).sum()
                dof += m.sum() - 1
        scale = np.sqrt(resid / dof) if dof > 0 and resid > 0 else 1.0
        return (y - center[levels]) / scale, center, scale

    def _nll(self, theta, Dw, levels, z) -> float:
        K = self._k(theta, Dw, levels, levels) + (np.exp(theta[4]) + 1e-8) * np.eye(len(z))
        try:
            L = np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            return 1e10
        penalty = 0.5 * np.sum(((theta - self.prior[:, 0]) / self.prior[:, 1]) ** 2)
        return float(0.5 * z @ cho_solve((L, True), z) + np.log(np.diag(L)).sum() + penalty)

    def fit(self, rows, levels, y, *, learn: bool = True, max_rows: int = 100, rng=None) -> ScaleGP:
        """Condition on runs of mixtures ``rows`` (indices into ``W``) at ``levels`` with losses
        ``y``; with ``learn`` re-learn the hyperparameters first (on at most ``max_rows`` runs)."""
        self.rows = np.asarray(rows, dtype=np.int64)
        self.levels = np.asarray(levels, dtype=np.int64)
        self.z, self.center, self.scale = self._standardise(self.levels, np.asarray(y, dtype=np.float64))
        if learn and len(self.z) >= 5:
            sub = np.arange(len(self.z))
            if len(sub) > max_rows:
                sub = (rng or np.random.default_rng(0)).choice(len(sub), max_rows, replace=False)
            Dw = self.D[np.ix_(self.rows[sub], self.rows[sub])]
            res = minimize(self._nll, self.theta, args=(Dw, self.levels[sub], self.z[sub]),
                           method="L-BFGS-B", bounds=self.bounds, options={"maxiter": 60})
            self.theta = res.x
        K = self._k(self.theta, (self.rows, self.rows), self.levels, self.levels)
        self.L = np.linalg.cholesky(K + (np.exp(self.theta[4]) + 1e-8) * np.eye(len(self.z)))
        self.alpha = cho_solve((self.L, True), self.z)
        return self

    @property
    def noise(self) -> float:
        return float(np.sqrt(np.exp(self.theta[4])))

    def posterior(self, cand, top: int, levels) -> tuple[np.ndarray, np.ndarray, dict]:
        """Posterior at mixtures ``cand`` (rows of ``W``): the mean at scale ``top`` (loss units),
        the sd there of the mixture-dependent part (loss units), and for each of ``levels`` that
        part's sd (standardised units) and its correlation with scale ``top``.

        The per-scale offsets are left out of the sds and correlations: an offset moves every
        mixture of a scale alike, so it cancels when mixtures are compared (the incumbent and a
        candidate share it) and a small-scale run says nothing about the largest scale's offset.
        """
        cand = np.asarray(cand, dtype=np.int64)
        shared, offset = self._shared(self.theta), np.exp(self.theta[3])

        def cross(level):  # covariance of the data with the mixture-dependent part at (cand, level)
            k = self._k(self.theta, (self.rows, cand), self.levels, np.full(len(cand), level))
            return k, solve_triangular(self.L, k - offset * (self.levels == level)[:, None], lower=True)

        k_top, v_top = cross(top)
        var_top = np.maximum(shared[top, top] - (v_top * v_top).sum(0), 1e-12)
        out = {}
        for level in levels:
            if level == top:
                out[level] = (np.sqrt(var_top), np.ones(len(cand)))
                continue
            v = cross(level)[1]
            var = np.maximum(shared[level, level] - (v * v).sum(0), 1e-12)
            corr = (shared[level, top] - (v * v_top).sum(0)) / np.sqrt(var * var_top)
            out[level] = (np.sqrt(var), np.clip(corr, -1.0, 1.0))
        mean = self.center[top] + self.scale * (k_top.T @ self.alpha)
        return mean, self.scale * np.sqrt(var_top), out

    def predict(self, W, level: int) -> np.ndarray:
        """Posterior mean at other mixtures ``W`` ``(m, P)`` and scale ``level`` (loss units)."""
        Dw = _distances(self.W[self.rows], np.sqrt(np.maximum(np.asarray(W, dtype=np.float64), 0.0)))
        k = self._k(self.theta, Dw, self.levels, np.full(len(Dw[0]), level))
        return self.center[level] + self.scale * (k.T @ self.alpha)


def _distances(A, B) -> np.ndarray:
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.sqrt(np.maximum(d2, 0.0))


# ----------------------------------------------------------------------------- BO


def search_bo(pool: ScalePool, *, budget: float, rng: np.random.Generator, levels=None, n_init: int = 2,
              refit_growth: float = 1.25, transfer_W=None) -> SearchTrace:
    """Pool-based BO with the augmented expected improvement (module docstring).

    Parameters
    ----------
    budget : in largest-scale runs (of mean cost); the search stops when no run it may buy fits.
    levels : scales it may buy (indices into the pool's levels); None: all (multi-fidelity);
        ``[pool.n_levels - 1]``: single-fidelity BO.
    n_init : random largest-scale runs bought first (the GP's start; capped by the budget).
    refit_growth : hyperparameters are re-learnt when the number of runs has grown by this factor
        since the last time (and are kept fixed in between).
    transfer_W : optional mixtures outside the pool; the final GP's largest-scale predictions go
        to ``trace.transfer_pred``.

    Raises
    ------
    InputError
        For a bad budget, ``levels``, ``n_init``, ``refit_growth`` or ``transfer_W`` (all checked before the search).
    """
    rng = _check_rng(rng)
    money = _check_budget(pool, budget)
    n_init = _check_positive_int("n_init", n_init)
    top = pool.n_levels - 1
    allowed = list(range(pool.n_levels)) if levels is None else _check_levels(levels, top)
    refit_growth = check_number("refit_growth", refit_growth, minimum=1)  # below 1 it would re-learn every round
    transfer_W = _check_transfer(pool, transfer_W)
    trace = SearchTrace("bo_multi" if len(allowed) > 1 else "bo_single")
    fits = lambda level, i: trace.spent + pool.costs[level, i] <= money * (1 + 1e-9)
    for i in rng.permutation(np.flatnonzero(np.isfinite(pool.losses[top]))):
        if len(trace.levels) == n_init:
            break
        if fits(top, i):  # a first pick dearer than the budget (costs vary about their mean) must not end the search
            trace.buy(pool, top, i)
    gp = ScaleGP(pool.weights, np.log(pool.scales))
    level_cost = np.nanmean(pool.costs, axis=1)
    bought = np.zeros(pool.losses.shape, dtype=bool)
    bought[trace.levels, trace.indices] = True
    last_fit = 0
    while True:
        open_ = np.isfinite(pool.losses) & ~bought & ~bought[top][None, :]
        open_[[lv for lv in range(pool.n_levels) if lv not in allowed]] = False
        open_ &= pool.costs + trace.spent <= money * (1 + 1e-9)
        # a smaller-scale run only pays if a largest-scale run can still follow it
        open_[:top] &= pool.costs[:top] + trace.spent + level_cost[top] <= money * (1 + 1e-9)
        if not open_.any() or not trace.levels:
            break
        learn = len(trace.levels) >= refit_growth * max(last_fit, 4)
        gp.fit(trace.indices, trace.levels, trace.losses, learn=learn, rng=rng)
        last_fit = len(trace.levels) if learn else last_fit
        cand = np.flatnonzero(open_.any(axis=0))
        score = np.full(pool.losses.shape, -np.inf)
        best_top = min((loss for loss, lv in zip(trace.losses, trace.levels) if lv == top), default=None)
        mean, sd, per_level = gp.posterior(cand, top, allowed)
        ei = expected_improvement(mean, sd, best_top if best_top is not None else mean.min())
        for level in allowed:
            sd_level, corr = per_level[level]
            gain = ei * np.maximum(corr, 0.0) * (1.0 - gp.noise / np.sqrt(sd_level**2 + gp.noise**2))
            score[level, cand] = np.where(open_[level, cand], gain * level_cost[top] / level_cost[level], -np.inf)
        level, index = np.unravel_index(pick_best(score, rng), score.shape)
        trace.buy(pool, int(level), int(index))
        bought[level, index] = True
    if transfer_W is not None and trace.levels:
        gp.fit(trace.indices, trace.levels, trace.losses, learn=False)
        trace.transfer_pred = gp.predict(transfer_W, top)
    trace.notes["theta"] = np.exp(gp.theta).tolist()
    return trace


def _check_levels(levels, top: int) -> list:
    """``levels`` as sorted distinct scale indices in [0, top] that include ``top`` (1.7 is no index, not 1)."""
    try:
        values = list(levels)
    except TypeError:  # a single number
        values = None
    if isinstance(levels, (str, bytes)) or values is None or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values) \
            or not values or max(values) != top or min(values) < 0:
        raise InputError(f"levels must be scale indices in [0, {top}] including the largest ({top}); "
                         f"got {describe(levels)}.")
    return sorted({int(v) for v in values})


def _check_transfer(pool: ScalePool, transfer_W):
    """``transfer_W`` (None, or mixtures ``(m, P)`` over the pool's sources) checked before the search uses it."""
    if transfer_W is None:
        return None
    if np.shape(transfer_W) == (0, len(pool.source_names)):  # no held-out runs to predict (none finite at the target)
        return np.empty((0, len(pool.source_names)))
    return _check_weights_table("transfer_W", transfer_W, names=pool.source_names)


# ----------------------------------------------------------------------------- RegMix at equal cost


def search_regmix(pool: ScalePool, *, budget: float, rng: np.random.Generator, transfer_W=None,
                  seed: int = 42) -> SearchTrace:
    """RegMix at equal cost (module docstring). Its LightGBM uses RegMix's ``faithful`` settings
    from 47 runs up and the MixMin paper's small-swarm settings below (where the faithful trees
    cannot split)."""
    rng = _check_rng(rng)
    money = _check_budget(pool, budget)
    transfer_W = _check_transfer(pool, transfer_W)
    seed = _check_seed("seed", seed)
    trace = SearchTrace("regmix")
    top = pool.n_levels - 1
    low_money = money - pool.top_cost
    for i in rng.permutation(np.flatnonzero(np.isfinite(pool.losses[0]))):
        if trace.spent + pool.costs[0, i] <= low_money * (1 + 1e-9):  # as random search: a dearer run is passed over
            trace.buy(pool, 0, i)
    if len(trace.indices) >= 2:
        preset = "faithful" if len(trace.indices) >= FAITHFUL_MIN_RUNS else "mixmin-paper"
        model = fit_regressor(pool.weights[trace.indices], np.asarray(trace.losses), preset=preset, seed=seed)
        pred = model.predict(pool.weights)
        trace.notes["preset"] = preset
        if transfer_W is not None:  # LightGBM refuses zero rows
            trace.transfer_pred = model.predict(transfer_W) if len(transfer_W) else np.empty(0)
    else:  # too little budget for a swarm: the order is random
        pred = rng.random(len(pool.weights))
    for i in np.argsort(pred, kind="stable"):
        if np.isfinite(pool.losses[top, i]) and trace.spent + pool.costs[top, i] <= money * (1 + 1e-9):
            trace.buy(pool, top, i)
        elif trace.spent + np.nanmin(pool.costs[top]) > money * (1 + 1e-9):
            break
    return trace
