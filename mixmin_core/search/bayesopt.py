"""Bayesian optimisation over mixtures: a Gaussian process on the weights, expected improvement.

Two settings:

* :func:`bo_table` searches a published table of runs. Only runs that exist can be "evaluated"
  (looked up), so BO is pool-based: after ``n_init`` random look-ups, it repeatedly fits a GP to the
  runs seen so far and looks up the unseen run with the highest expected improvement, until
  ``budget`` look-ups are spent; it returns the best measured run (as random search does, at the
  same number of look-ups). Multi-fidelity search, where the acquisition also chooses which model
  scale to buy, is :mod:`mixmin_core.search.multifidelity`.
* :func:`bayesopt` searches the simplex with an ``evaluate(W) -> losses`` callable (one proxy per
  mixture, as random search and RegMix in :mod:`mixmin_core.search.swarm`), maximising expected
  improvement over ``Dirichlet(prior)`` candidates each round.

The GP (scikit-learn) uses a constant x Matern(5/2) kernel with one length scale for the weights
(and one for the fidelity input) plus white noise, with ``normalize_y``; scikit-learn is imported
only here.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm

from mixmin_core.errors import InputError
from mixmin_core.search.swarm import (
    MAX_MIXTURES,
    _best_of,
    _best_run,
    _check_losses,
    _check_positive_int,
    _check_prior,
    _check_rng,
    _check_run_ids,
    _check_seed,
    _check_tests,
    _check_weights_table,
    spearman,
)
from mixmin_core.solver.results import MixtureResult
from mixmin_core.solver.validation import check_names, check_number


def expected_improvement(mu, sigma, best: float, xi: float = 0.0) -> np.ndarray:
    """Expected improvement below ``best`` (minimisation): ``E[max(best - xi - f, 0)]`` for
    ``f ~ N(mu, sigma^2)``; equals ``max(best - xi - mu, 0)`` where ``sigma == 0``."""
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    gain = best - xi - mu
    safe = np.where(sigma > 0, sigma, 1.0)
    z = gain / safe
    ei = gain * norm.cdf(z) + safe * norm.pdf(z)
    return np.where(sigma > 0, np.maximum(ei, 0.0), np.maximum(gain, 0.0))


def pick_best(scores: np.ndarray, rng: np.random.Generator, rtol: float = 1e-3) -> int:
    """The flat index of the highest score, a tie (within ``rtol`` of the best) broken at random.

    Expected improvement is often flat over a whole pool (a GP fitted to a few runs), and ``argmax``
    would then look up runs in the table's row order, making BO depend on how the file is sorted."""
    scores = np.where(np.isnan(np.ravel(scores)), -np.inf, np.ravel(scores))  # NaN: no score, never the best
    top = scores.max()
    ties = np.flatnonzero(scores >= top - rtol * abs(top)) if np.isfinite(top) else np.flatnonzero(scores == top)
    return int(ties[0] if ties.size == 1 else rng.choice(ties))


def fit_gp(X: np.ndarray, y: np.ndarray, *, seed: int = 0, n_fidelity_dims: int = 0, kernel=None):
    """A GP regressor fitted to ``X`` ``(n, d)`` -> ``y`` ``(n,)``. The last ``n_fidelity_dims``
    columns of ``X`` get their own length scale (the fidelity input). With ``kernel`` (a fitted
    ``gp.kernel_``) the hyperparameters are kept fixed: one Cholesky factorisation, no optimiser."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    if kernel is not None:
        return GaussianProcessRegressor(kernel, normalize_y=True, optimizer=None).fit(X, y)
    if n_fidelity_dims:
        shape = _grouped_matern(X.shape[1] - n_fidelity_dims, np.r_[0.3, np.ones(n_fidelity_dims)])
    else:
        shape = Matern(0.3, (1e-2, 1e2), nu=2.5)
    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * shape + WhiteKernel(1e-2, (1e-6, 1.0))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed, n_restarts_optimizer=1)
    with warnings.catch_warnings():  # hyperparameters at their bounds are fine here (e.g. no noise)
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(X, y)
    return gp


def _grouped_matern(n_weights: int, scales: np.ndarray):
    """Matern(5/2) with one length scale shared by the first ``n_weights`` columns (the mixture
    weights: isotropic in mixture space) and one per remaining (fidelity) column. Its gradient in
    the log length scales is taken by finite differences."""
    from sklearn.gaussian_process.kernels import Matern

    def expand(ls):
        return np.r_[np.full(n_weights, ls[0]), ls[1:]]

    class GroupedMatern(Matern):
        def __init__(self, length_scale=scales, length_scale_bounds=(1e-2, 1e2), nu=2.5):
            super().__init__(length_scale, length_scale_bounds, nu)

        def __call__(self, X, Y=None, eval_gradient=False):
            ls = np.atleast_1d(self.length_scale).astype(np.float64)
            K = Matern(expand(ls), "fixed", self.nu)(X, Y)
            if not eval_gradient:
                return K
            eps = 1e-6
            grads = []
            for j in range(ls.size):
                bumped = ls.copy()
                bumped[j] *= np.exp(eps)
                grads.append((Matern(expand(bumped), "fixed", self.nu)(X) - K) / eps)
            return K, np.stack(grads, axis=-1)

    return GroupedMatern()

#: Seen runs below which :func:`bo_table` re-learns the GP's hyperparameters every round (cheap there).
RELEARN_BELOW = 20


def _standardise(y: np.ndarray) -> tuple[np.ndarray, float, float]:
    mean, std = float(np.mean(y)), float(np.std(y))
    std = std if std > 0 else 1.0
    return (y - mean) / std, mean, std


def bo_table(W, y, *, source_names, budget: int, rng: np.random.Generator, n_init: int | None = None,
             run_ids=None, tests: dict | None = None, xi: float = 0.0, seed: int = 0, refit_every: int = 5,
             max_fit_rows: int = 200) -> MixtureResult:
    """Pool-based BO on a run table: look up ``budget`` runs, chosen by expected improvement.

    Parameters
    ----------
    W, y : the table's runs, ``(n, P)`` weights and ``(n,)`` measured losses (lower is better).
    budget : number of runs looked up (the compute, in runs of this table).
    n_init : random look-ups before the GP is used (default: half the budget, at least 2).
    tests : optional ``{name: (W_test, y_test)}``: the final GP's Spearman correlation with them
        goes to ``meta["spearman_tests"]`` (and ``meta["metrics"]``).
    refit_every, max_fit_rows : the GP hyperparameters are re-learnt every ``refit_every`` rounds (every
        round while fewer than ``RELEARN_BELOW`` runs are seen: a few runs say little about them) on at
        most ``max_fit_rows`` rows, and kept fixed in between (exact GP on all rows each round).
        Ties in expected improvement are broken at random (:func:`pick_best`).

    Returns
    -------
    MixtureResult, ``method="bo"``: the best measured run among those looked up; ``meta`` with
    ``compute``, ``evaluated`` (row order of look-ups), ``best_so_far``, ``best_run`` and ``metrics``.

    Raises
    ------
    InputError
        If shapes disagree, ``budget`` exceeds the number of runs, ``n_init`` exceeds ``budget``, or another
        argument is bad (all checked before the search).
    """
    names = check_names("source_names", source_names)
    W = _check_weights_table("W", W, names=names)
    y = _check_losses("y", y, len(W))
    budget = _check_positive_int("budget", budget)
    finite = np.flatnonzero(np.isfinite(y))
    if budget > finite.size:
        raise InputError(f"budget must be at most the number of runs with a finite loss ({finite.size}); got {budget}.")
    n_init = _check_n_init(n_init, budget)
    rng = _check_rng(rng)
    run_ids = _check_run_ids(run_ids, len(W))
    tests = _check_tests(tests, names)
    xi = check_number("xi", xi, minimum=0)
    seed = _check_seed("seed", seed)
    refit_every = _check_positive_int("refit_every", refit_every)
    max_fit_rows = _check_positive_int("max_fit_rows", max_fit_rows, 2)  # a GP's hyperparameters need two runs
    seen = list(rng.choice(finite, size=n_init, replace=False))
    gp, kernel = None, None
    for step in range(budget - n_init):
        if step % refit_every == 0 or len(seen) < RELEARN_BELOW:
            kernel = None  # re-learn the hyperparameters (on at most max_fit_rows rows)
        gp, X_pool, pool, best_z = _fit_and_pool(W, y, seen, finite, seed, kernel, rng, max_fit_rows)
        kernel = gp.kernel_
        mu, sd = gp.predict(X_pool, return_std=True)
        seen.append(int(pool[pick_best(expected_improvement(mu, sd, best_z, xi), rng)]))
    seen = np.array(seen)
    result = _best_of(W[seen].astype(np.float32), y[seen], names, method="bo",
                      compute=float(budget),
                      meta={"budget": budget, "n_init": n_init, "evaluated": seen.tolist(),
                            "best_so_far": np.minimum.accumulate(y[seen]).tolist()})
    result.meta.pop("candidates")
    result.meta["best_run"] = _best_run(seen, result.meta["best_index"], run_ids)
    if tests and len(seen) >= 2:  # a GP needs two runs (a budget of one has none to fit)
        gp = _fit_and_pool(W, y, list(seen), finite, seed, kernel, rng, max_fit_rows)[0]
    rho = {name: spearman(gp.predict(Wt), yt) if gp is not None else float("nan") for name, (Wt, yt) in tests.items()}
    result.meta["spearman_tests"] = {k: (None if np.isnan(v) else v) for k, v in rho.items()}
    result.meta["metrics"] = {"measured_loss": result.loss, "best_run_loss": float(y[finite].min()),
                              **{f"spearman/{k}": v for k, v in rho.items() if not np.isnan(v)}}
    return result


def _check_n_init(n_init, budget: int) -> int:
    """``n_init`` random runs before the GP (None: half the budget, at least 2, at most the budget)."""
    n_init = min(budget, max(2, budget // 2)) if n_init is None else _check_positive_int("n_init", n_init)
    if n_init > budget:
        raise InputError(f"n_init must be at most budget ({budget}); got {n_init}.")
    return n_init


def _fit_and_pool(W, y, seen, finite, seed, kernel, rng, max_fit_rows):
    """Fit the GP to the seen runs on standardised losses; return it, the weights of the unseen
    runs, their row indices and the best seen loss on the GP's scale. Without ``kernel``, the
    hyperparameters are learnt first on at most ``max_fit_rows`` seen runs (the marginal-likelihood
    gradient costs O(n^3) per hyperparameter and step)."""
    z, mean, std = _standardise(y[seen])
    X = W[seen]
    if kernel is None:
        rows = np.arange(len(X))
        if len(X) > max_fit_rows:
            rows = rng.choice(len(X), max_fit_rows, replace=False)
        kernel = fit_gp(X[rows], z[rows], seed=seed).kernel_
    gp = fit_gp(X, z, kernel=kernel)
    pool = np.setdiff1d(finite, seen)
    return gp, W[pool], pool, (y[seen].min() - mean) / std


def bayesopt(evaluate, *, source_names, prior, budget: int, rng: np.random.Generator, n_init: int | None = None,
             n_candidates: int = 10_000, compute_per_run: float = 1.0, xi: float = 0.0, seed: int = 0) -> MixtureResult:
    """BO on the simplex with a proxy-training ``evaluate(W) -> losses`` (one proxy per mixture).

    ``n_init`` mixtures from ``Dirichlet(prior)`` (default half the budget, at least 2), then one
    mixture per round: the ``Dirichlet(prior)`` candidate (of ``n_candidates``) with the highest
    expected improvement. Returns the best evaluated mixture (``method="bo"``, ``meta["compute"] =
    budget * compute_per_run``).

    Raises
    ------
    InputError
        For bad arguments (all checked before the first run) or if ``evaluate`` returns the wrong number of losses.
    """
    names = check_names("source_names", source_names)
    p = _check_prior("prior", prior, names=names)
    budget = _check_positive_int("budget", budget)
    n_init = _check_n_init(n_init, budget)
    rng = _check_rng(rng)
    n_candidates = _check_positive_int("n_candidates", n_candidates, maximum=MAX_MIXTURES)
    compute_per_run = check_number("compute_per_run", compute_per_run, minimum=0)
    xi = check_number("xi", xi, minimum=0)
    seed = _check_seed("seed", seed)
    W = rng.dirichlet(p, size=n_init)
    y = _check_losses("evaluate", evaluate(W.astype(np.float32)), n_init)
    while len(W) < budget:
        ok = np.isfinite(y)
        if ok.sum() < 2:  # nothing for a GP to fit yet (failed runs): explore with a fresh draw
            pick = rng.dirichlet(p, size=1)
        else:
            z, mean, std = _standardise(y[ok])
            gp = fit_gp(W[ok], z, seed=seed)
            cands = rng.dirichlet(p, size=n_candidates)
            mu, sd = gp.predict(cands, return_std=True)
            pick = cands[np.argmax(expected_improvement(mu, sd, (y[ok].min() - mean) / std, xi))][None, :]
        W = np.r_[W, pick]
        y = np.r_[y, _check_losses("evaluate", evaluate(pick.astype(np.float32)), 1)]
    result = _best_of((W / W.sum(axis=1, keepdims=True)).astype(np.float32), y, names, method="bo",
                      compute=budget * compute_per_run, meta={"budget": budget, "n_init": n_init})
    result.meta["best_so_far"] = np.minimum.accumulate(np.where(np.isfinite(y), y, np.inf)).tolist()
    return result
