"""Search baselines MixMin competes with: random search and RegMix, at matched proxy compute.

Both take an ``evaluate(W) -> losses`` callable supplied by the pipeline: it trains one proxy per
row of ``W`` (shape ``(k, n_sources)``) and returns each proxy's loss on the target's fit split
(lower is better). Each proxy costs ``compute_per_trial`` / ``compute_per_run``; MixMin costs one
proxy per source, so :func:`matched_trials` gives the number of search proxies at equal compute.

RegMix follows its authors' implementation (sail-sg/regmix ``mixture_config/synthesize_mixture.py``
and ``regression_fitting/regression.ipynb``):

* swarm: Dirichlet around the natural prior raised to temperature 0.5 (renormalised), at one of 15
  log-spaced concentrations in [0.1, 5] chosen at random per mixture; mixtures with a source above
  its upper bound (``min(15 * natural, 1)``: at most 15 epochs of a source) are rejected; weights
  below 2e-4 are set to zero, the rest renormalised and rounded to multiples of 2e-4; duplicates
  are removed and replaced by fresh draws;
* regressor: LightGBM ``gbdt``, 1000 iterations, learning rate 0.01, seed 42, metrics l1 and l2,
  early stopping (3 rounds) on a held-out part of the swarm;
* choice: 100,000 candidates from ``Dirichlet(natural)``; the mixture is the mean of the 128
  candidates with the lowest predicted loss.

LightGBM is imported only inside :func:`fit_regressor`.
"""
from __future__ import annotations

import contextlib
import logging
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver.constraints import project_capped
from mixmin_core.solver.results import MixtureResult
from mixmin_core.solver.validation import (
    as_float_array,
    by_source,
    check_finite,
    check_names,
    check_number,
    describe,
)

log = logging.getLogger("mixmin.search")

#: Regressor settings per preset. ``n_runs`` is the swarm size the preset was published with
#: (pipelines use it as a default; :func:`regmix` takes ``n_runs`` explicitly).
PRESETS: dict[str, dict] = {
    # RegMix as released: 512 1M-parameter proxies on The Pile, LightGBM defaults otherwise.
    "faithful": {"n_runs": 512, "n_estimators": 1000, "learning_rate": 0.01, "val_fraction": 0.125, "extra": {}},
    # The MixMin paper's RegMix baseline (7 proxies): tiny trees that can split on 7 rows.
    # Its script trains on the first 2/3 of the runs and early-stops on the rest.
    "mixmin-paper": {"n_runs": 7, "n_estimators": 10, "learning_rate": 0.01, "val_fraction": 1 / 3,
                     "extra": {"min_child_samples": 1, "min_data_in_bin": 1}},
}
EARLY_STOPPING_ROUNDS = 3
_CHUNK_VALUES = 4_000_000  # candidates are drawn and scored in chunks of about this many values
MAX_USAGE = 15.0  # RegMix: a source may be repeated at most 15 times -> weight <= 15 * natural
#: Most mixtures drawn at once (random search's trials, a swarm, BO's candidates), as the jobs' regmix_candidates
#: cap: they are held in memory, and 10**12 asked numpy for 36 TiB.
MAX_MIXTURES = 10_000_000


# ----------------------------------------------------------------------------- input checks

def _check_prior(name: str, prior, n_sources: int | None = None, *, names: tuple | None = None) -> np.ndarray:
    """``prior`` normalised; with ``names``, a dict or Series keyed by source name is put in their order."""
    if prior is None:  # a table of your own publishes no natural weights (RunTable.natural_weights is None)
        raise InputError(f"{name} is required: the weights RegMix draws its candidates around (for a run table, "
                         "prior_for(table): its natural weights, or the mean of its runs).")
    if names is not None:
        prior, n_sources = by_source(name, prior, names, mixture=True), len(names)
    p = as_float_array(name, prior)
    if p.ndim != 1 or p.size < 2 or (n_sources is not None and p.size != n_sources):
        want = f"({n_sources},)" if n_sources is not None else "(n_sources,) with n_sources >= 2"
        raise InputError(f"{name} must have shape {want}; got {describe(p)}.")
    check_finite(name, p)
    if (p <= 0).any():
        raise InputError(
            f"{name} must be positive (Dirichlet parameters); got minimum {p.min():.3g} at source "
            f"{int(np.argmin(p))}. Give empty sources a small positive weight or drop them."
        )
    return p / p.sum()


def _check_positive_int(name: str, value, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {describe(value)}.")
    if maximum is not None and value > maximum:
        raise InputError(f"{name} must be at most {maximum:,}; got {int(value):,}.")
    return int(value)


def _check_seed(name: str, value) -> int:
    """A seed numpy, scikit-learn (``random_state``) and LightGBM all take: an integer in [0, 2**32)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or not 0 <= value < 2**32:
        raise InputError(f"{name} must be an integer seed in [0, 2**32); got {describe(value)}.")
    return int(value)


def _check_choice(n_candidates, top_k) -> tuple[int, int]:
    """RegMix's choice: ``top_k`` of ``n_candidates`` draws, both positive and ``top_k <= n_candidates``."""
    n_candidates = _check_positive_int("n_candidates", n_candidates)
    top_k = _check_positive_int("top_k", top_k)
    if top_k > n_candidates:
        raise InputError(f"top_k must be at most n_candidates ({n_candidates}); got {top_k}.")
    return n_candidates, top_k


def _check_run_ids(run_ids, n: int) -> list | None:
    """``run_ids`` as a list, one per run of the table (None stays None: rows are named by index)."""
    if run_ids is None:
        return None
    try:
        ndim = np.ndim(run_ids)
    except ValueError:  # ragged
        ndim = -1
    if ndim != 1 or len(run_ids) != n:  # a string has ndim 0
        shown = f"{len(run_ids)}" if ndim == 1 else describe(run_ids)
        raise InputError(f"run_ids must name every run of the table ({n}); got {shown}. Pass one id per row of W.")
    return list(run_ids)  # by position (a Series' [] looks up labels)


def _check_rng(rng) -> np.random.Generator:
    """``rng`` as a Generator: one as it is, an integer as its seed (``np.random.default_rng(rng)``)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy Generator (np.random.default_rng(seed)) or a non-negative integer seed; "
                     f"got {describe(rng)}.")


def _check_preset(preset: str) -> dict:
    if preset not in PRESETS:
        raise InputError(f"preset must be one of {sorted(PRESETS)}; got {preset!r}.")
    return PRESETS[preset]


def _check_losses(name: str, losses, n: int) -> np.ndarray:
    verb = "return" if name == "evaluate" else "hold"  # a function returns them, a table holds them
    try:
        y = np.asarray(losses, dtype=np.float64)
    except (TypeError, ValueError):  # text, ragged lists
        raise InputError(f"{name} must {verb} one loss (a number) per mixture; got {describe(losses)}.") from None
    if y.ndim == 2 and y.shape[1] == 1:  # a 1-column table; a wider one is not flattened into more losses
        y = y[:, 0]
    if y.reshape(-1).shape != (n,) or y.ndim > 1:
        raise InputError(f"{name} must {verb} one loss per mixture, shape ({n},) (1-D, or a 1-column table); "
                         f"got {describe(y)}.")
    return y.reshape(-1)


#: How far a run's mixture (a row of a run table) may sum from 1: published rows are rounded to a few digits.
ROW_SUM_TOL = 0.01


def _check_weights_table(name: str, W, n_sources: int | None = None, *, names: tuple | None = None) -> np.ndarray:
    """``W`` ``(n, P)`` as float64. With ``names``, a DataFrame whose columns are names (not 0, 1, ...) is put
    in their order: read by position, a reordered table gave the sources each other's weights."""
    columns = getattr(W, "columns", None) if hasattr(W, "iloc") else None  # a pandas DataFrame's
    if names is not None:
        n_sources = len(names)
        positional = columns is None or (columns.dtype.kind in "iu" and np.array_equal(columns, range(len(columns))))
        if not positional:  # columns 0, 1, ... (a DataFrame of an array) are read by position
            have = [str(c) for c in columns]  # as check_names makes the names text
            missing, extra = [n for n in names if n not in have], [c for c in have if c not in names]
            if missing or extra or len(set(have)) != len(have):
                raise InputError(f"{name}'s columns must be the sources in any order; missing {missing[:5]}, extra "
                                 f"{extra[:5]}" + ("" if len(set(have)) == len(have) else ", some repeated")
                                 + ". Name its columns as source_names, or pass an array in source order.")
            W = W.iloc[:, [have.index(n) for n in names]]
    W = as_float_array(name, W)
    if W.ndim != 2 or W.shape[0] < 1 or (n_sources is not None and W.shape[1] != n_sources):
        raise InputError(f"{name} must have shape (n_mixtures, {n_sources or 'n_sources'}); got {describe(W)}.")
    check_finite(name, W)
    if (W < 0).any():
        raise InputError(f"{name} must be non-negative; got minimum {W.min():.3g}.")
    sums = W.sum(axis=1)
    empty = np.flatnonzero(sums <= 0)
    if empty.size:  # normalising would make it uniform, a mixture the run never had
        raise InputError(f"{name} row(s) {empty[:5].tolist()} are all zero: each row is a run's mixture; drop them.")
    off = np.flatnonzero(np.abs(sums - 1) > ROW_SUM_TOL)
    if off.size:  # percentages or token counts: a regressor fitted on them predicts nonsense for mixtures
        raise InputError(f"{name} row {off[0]} sums to {sums[off[0]]:.6g} ({off.size} of {len(W)} rows are off); each "
                         f"row is a run's mixture, summing to 1 (+-{ROW_SUM_TOL:g}). If the rows hold percentages or "
                         "token counts, divide each row by its sum.")
    # rows rounded as published (1 +- 0.003) sum to 1 again; rows at 1 up to float32 noise stay as they are (a change
    # of 3e-8 moved RegMix's LightGBM pick)
    off = np.abs(sums - 1) > 1e-6
    return np.where(off[:, None], W / sums[:, None], W) if off.any() else W


def _check_runs(name: str, runs, n_sources: int | None = None, *, names: tuple | None = None):
    """Measured runs ``(W (m, P), y (m,))`` as checked arrays (``names``: as :func:`_check_weights_table`)."""
    if isinstance(runs, (str, bytes, Mapping, np.ndarray)) or not hasattr(runs, "__len__") or len(runs) != 2:
        raise InputError(f"{name} must be a pair (W, y): mixtures (m, {len(names) if names else n_sources or 'P'}) "
                         f"and their m losses; got {describe(runs)}.")
    W = _check_weights_table(f"{name}[0]", runs[0], n_sources, names=names)
    return W, _check_losses(f"{name}[1]", runs[1], len(W))


def _check_tests(tests, names: tuple) -> dict:
    """``tests`` ``{name: (W_test, y_test)}`` of held-out runs, checked (None: none)."""
    if tests is None:
        return {}
    if not isinstance(tests, Mapping):
        raise InputError(f"tests must be a dict of name -> (W_test, y_test) held-out runs; "
                         f"got a {type(tests).__name__}.")
    return {key: _check_runs(f"tests[{key!r}]", runs, names=names) for key, runs in tests.items()}


def mixture_groups(W) -> np.ndarray:
    """The group of each row of ``W`` ``(n, P)``: rows holding the same mixture (a run repeated, e.g. with
    another seed) share one. Groups are numbered by first appearance, so without repeats row ``i`` is group ``i``."""
    W = np.asarray(W)
    _, first, inverse = np.unique(W, axis=0, return_index=True, return_inverse=True)
    number = np.empty(len(first), dtype=np.int64)
    number[np.argsort(first, kind="stable")] = np.arange(len(first))
    return number[inverse.reshape(-1)]


# ----------------------------------------------------------------------------- sampling

def dirichlet_prior(natural: np.ndarray, temperature: float = 0.5) -> np.ndarray:
    """RegMix prior: ``natural ** temperature``, renormalised (float64, shape ``(n_sources,)``).

    Raises
    ------
    InputError
        If ``natural`` is not a positive vector or ``temperature`` is not positive.
    """
    p = _check_prior("natural", natural)
    q = p ** check_number("temperature", temperature, minimum=0, strict=True)
    return q / q.sum()


def sample_random_mixtures(n: int, n_sources: int, rng: np.random.Generator, *,
                           prior: np.ndarray | None = None, concentration: float = 1.0) -> np.ndarray:
    """``n`` random mixtures, shape ``(n, n_sources)`` float32, rows on the simplex.

    Uniform on the simplex when ``prior`` is None, else ``Dirichlet(concentration * n_sources * prior)``
    (mean ``prior``; ``concentration=1`` has the spread of the uniform distribution).

    Raises
    ------
    InputError
        If ``n`` or ``n_sources`` is not a positive integer (``n_sources >= 2``), ``prior`` is not a
        positive vector of length ``n_sources``, or ``concentration`` is not positive.
    """
    n = _check_positive_int("n", n, maximum=MAX_MIXTURES)
    n_sources = _check_positive_int("n_sources", n_sources, 2)
    concentration = check_number("concentration", concentration, minimum=0, strict=True)
    rng = _check_rng(rng)
    alpha = np.ones(n_sources) if prior is None else concentration * n_sources * _check_prior("prior", prior, n_sources)
    return _normalise_rows(rng.dirichlet(alpha, size=n)).astype(np.float32)


def _normalise_rows(W: np.ndarray) -> np.ndarray:
    W = np.where(np.isfinite(W), W, 0.0)
    total = W.sum(axis=1, keepdims=True)
    bad = total[:, 0] <= 0  # a row that underflowed to all zeros becomes uniform
    if bad.any():
        W[bad] = 1.0
        total = W.sum(axis=1, keepdims=True)
    return W / total


def _draw_at_concentrations(p: np.ndarray, concentrations: np.ndarray, m: int, rng) -> np.ndarray:
    """``m`` draws, each from ``Dirichlet(c * p)`` with ``c`` picked uniformly from ``concentrations``
    (numpy's Dirichlet sampler, which stays accurate for tiny parameters)."""
    which = rng.integers(0, len(concentrations), size=m)
    W = np.empty((m, p.size))
    for i, c in enumerate(concentrations):
        rows = np.flatnonzero(which == i)
        if rows.size:
            W[rows] = rng.dirichlet(c * p, size=rows.size)
    return _normalise_rows(W)


def regmix_swarm(n_runs: int, prior: np.ndarray, rng: np.random.Generator, *,
                 n_concentrations: int = 15, min_conc: float = 0.1, max_conc: float = 5.0,
                 min_weight: float = 2e-4, upper_bounds: np.ndarray | None = None,
                 max_draws: int = 100, bounds_mode: str = "reject") -> np.ndarray:
    """RegMix swarm design: ``n_runs`` distinct mixtures, shape ``(n_runs, n_sources)`` float32.

    Each mixture is drawn from ``Dirichlet(c * prior)`` with ``c`` picked uniformly from
    ``n_concentrations`` log-spaced values in ``[min_conc, max_conc]``. Draws with any weight above
    ``upper_bounds`` are rejected. Weights below ``min_weight`` are set to zero, the rest renormalised
    and rounded to multiples of ``min_weight`` (then renormalised so rows sum to one exactly; with
    ``bounds_mode="project"`` the final projection may shrink weights slightly below ``min_weight``).
    Duplicates are dropped and replaced by fresh draws. ``prior`` is used as given: pass
    :func:`dirichlet_prior` of the natural weights for RegMix's temperature 0.5.

    Parameters
    ----------
    max_draws : give up after ``max_draws * n_runs`` draws (RegMix draws 100 times the swarm size).
    bounds_mode : ``"reject"`` (RegMix) drops draws above the bounds; ``"project"`` moves them onto
        the capped simplex instead (KL projection, ``constraints.project_capped``). Rejection rarely
        succeeds with many sources (over ~100, most draws exceed some bound): use ``"project"`` there.

    Raises
    ------
    InputError
        For bad arguments, or if fewer than ``n_runs`` distinct mixtures satisfy the bounds within
        ``max_draws * n_runs`` draws (loosen ``upper_bounds`` or lower ``n_runs``).
    """
    n_runs = _check_positive_int("n_runs", n_runs, maximum=MAX_MIXTURES)
    p = _check_prior("prior", prior)
    n_sources = p.size
    n_concentrations = _check_positive_int("n_concentrations", n_concentrations)
    rng = _check_rng(rng)
    min_conc = check_number("min_conc", min_conc, minimum=0, strict=True)
    max_conc = check_number("max_conc", max_conc, minimum=0, strict=True)
    min_weight = check_number("min_weight", min_weight, minimum=0)
    if not min_conc <= max_conc:
        raise InputError(f"need 0 < min_conc <= max_conc; got min_conc={min_conc!r}, max_conc={max_conc!r}.")
    if not (0 <= min_weight < 1.0 / n_sources):
        raise InputError(f"min_weight must be in [0, 1/n_sources) = [0, {1.0 / n_sources:.3g}); got {min_weight!r}.")
    bounds = np.ones(n_sources) if upper_bounds is None else np.asarray(upper_bounds, dtype=np.float64)
    if bounds.shape != (n_sources,) or not np.isfinite(bounds).all() or (bounds <= 0).any() or bounds.sum() < 1:
        raise InputError(
            f"upper_bounds must be {n_sources} positive values summing to at least 1 (else no mixture fits); "
            f"got {describe(bounds)}" + (f" with sum {bounds.sum():.3g}." if bounds.shape == (n_sources,) else ".")
        )
    if bounds_mode not in ("reject", "project"):
        raise InputError(f"bounds_mode must be 'reject' or 'project'; got {bounds_mode!r}.")
    concentrations = np.logspace(np.log10(min_conc), np.log10(max_conc), n_concentrations)
    grid = min_weight if min_weight > 0 else 1e-6  # dedup resolution (RegMix: L1 distance 1e-5)
    kept: dict[bytes, np.ndarray] = {}
    budget = max_draws * n_runs
    batch = max(256, 4 * n_runs)
    while len(kept) < n_runs and budget > 0:
        m = min(batch, budget)
        budget -= m
        W = _draw_at_concentrations(p, concentrations, m, rng)
        project = bounds_mode == "project" and upper_bounds is not None
        if project:
            W = np.stack([project_capped(row + 1e-12, bounds) for row in W])
        W = W[(W <= bounds * (1 + 1e-9)).all(axis=1)]
        W = np.where(W < min_weight, 0.0, W)
        W = _normalise_rows(W[W.sum(axis=1) > 0])
        if min_weight > 0:
            W = _normalise_rows(np.round(W / min_weight) * min_weight)
        if project and len(W):  # renormalising may have crossed a bound: project again (zeros stay zero)
            with np.errstate(divide="ignore", invalid="ignore"):
                W = np.stack([project_capped(row, bounds) for row in W])
            W = W[np.isfinite(W).all(axis=1) & (W <= bounds * (1 + 1e-9)).all(axis=1)]
        for row in W:
            key = np.rint(row / grid).astype(np.int64).tobytes()
            kept.setdefault(key, row)
    if len(kept) < n_runs:
        raise InputError(
            f"regmix_swarm found only {len(kept)} distinct mixtures within the bounds after "
            f"{max_draws * n_runs} draws; n_runs={n_runs} requested. Loosen upper_bounds, lower n_runs, "
            f"raise max_draws or use bounds_mode='project'."
        )
    pool = np.stack(list(kept.values()))
    pick = rng.choice(len(pool), size=n_runs, replace=False)
    return pool[pick].astype(np.float32)


def matched_trials(total_compute: float, compute_per_trial: float) -> int:
    """Number of search proxies that fit in ``total_compute`` (at least 1).

    Compute matching with MixMin, whose cost is one proxy per source: with equal-cost proxies,
    ``matched_trials(n_sources * c, c) == n_sources``.

    Raises
    ------
    InputError
        If either argument is not a positive finite number, or they allow more than :data:`MAX_MIXTURES` trials.
    """
    total_compute = check_number("total_compute", total_compute, minimum=0, strict=True)
    compute_per_trial = check_number("compute_per_trial", compute_per_trial, minimum=0, strict=True)
    trials = total_compute / compute_per_trial * (1 + 1e-9)
    if not trials <= MAX_MIXTURES:  # inf for 1e300 / 1e-300: int() overflowed
        raise InputError(f"total_compute / compute_per_trial must be at most {MAX_MIXTURES:,} trials; got "
                         f"{total_compute:.3g} / {compute_per_trial:.3g}. Give both in the same compute unit.")
    return max(1, int(np.floor(trials)))


# ----------------------------------------------------------------------------- random search

def random_search(evaluate, *, source_names, n_trials: int, rng: np.random.Generator,
                  prior=None, concentration: float = 1.0, compute_per_trial: float = 1.0) -> MixtureResult:
    """Sample ``n_trials`` mixtures, evaluate them all, keep the one with the lowest loss.

    Parameters
    ----------
    evaluate : ``evaluate(W) -> losses``; ``W`` is ``(n_trials, n_sources)`` float32. It trains one
        proxy per mixture and scores it on the target's fit split (lower is better).
    prior, concentration : see :func:`sample_random_mixtures` (None: uniform on the simplex).
    compute_per_trial : cost of one proxy; ``meta["compute"] = n_trials * compute_per_trial``.

    Returns
    -------
    MixtureResult with ``method="random_search"``, ``loss`` the best measured loss and ``meta``
    ``{"n_trials", "compute", "candidates", "candidate_losses", "best_index"}``. ``success`` is
    False if no candidate had a finite loss.

    Raises
    ------
    InputError
        For bad arguments or if ``evaluate`` returns the wrong number of losses.
    """
    names = check_names("source_names", source_names)
    compute_per_trial = check_number("compute_per_trial", compute_per_trial, minimum=0, strict=True)
    n_trials = _check_positive_int("n_trials", n_trials, maximum=MAX_MIXTURES)
    prior = None if prior is None else by_source("prior", prior, names, mixture=True)  # checked by sample_random_mixtures
    W = sample_random_mixtures(n_trials, len(names), rng, prior=prior, concentration=concentration)
    losses = _check_losses("evaluate", evaluate(W), len(W))
    return _best_of(W, losses, names, method="random_search", compute=n_trials * compute_per_trial,
                    meta={"n_trials": int(n_trials)})


def random_search_table(W, losses, *, source_names, n_trials: int, rng: np.random.Generator,
                        compute_per_trial: float = 1.0, run_ids=None) -> MixtureResult:
    """Random search on a published table of runs (mixture -> measured loss).

    "Evaluating" a mixture here means looking up a run that exists in the table: ``n_trials``
    distinct runs are sampled uniformly and the one with the lowest measured loss is kept. This is
    exactly random search with the table's own sampling distribution (e.g. the RegMix swarm).

    Returns
    -------
    MixtureResult (``method="random_search"``) with ``meta["run_indices"]`` (rows sampled),
    ``meta["best_run"]`` (row index, or the run id if ``run_ids`` is given) and the keys of
    :func:`random_search`.

    Raises
    ------
    InputError
        If shapes disagree or ``n_trials`` exceeds the number of runs.
    """
    names = check_names("source_names", source_names)
    W = _check_weights_table("W", W, names=names)
    y = _check_losses("losses", losses, len(W))
    n_trials = _check_positive_int("n_trials", n_trials)
    if n_trials > len(W):
        raise InputError(f"n_trials must be at most the number of runs in the table ({len(W)}); got {n_trials}.")
    compute_per_trial = check_number("compute_per_trial", compute_per_trial, minimum=0, strict=True)
    run_ids = _check_run_ids(run_ids, len(W))
    idx = np.sort(_check_rng(rng).choice(len(W), size=n_trials, replace=False))
    result = _best_of(_normalise_rows(W[idx].copy()).astype(np.float32), y[idx], names, method="random_search",
                      compute=n_trials * compute_per_trial,
                      meta={"n_trials": n_trials, "run_indices": idx.tolist(), "source": "table lookup"})
    result.meta["best_run"] = _best_run(idx, result.meta["best_index"], run_ids)
    return result


def _best_run(rows: np.ndarray, best_index: int | None, run_ids: list | None):
    """The table row (or run id) of the best looked-up run; None when none had a finite loss (non_finite)."""
    if best_index is None:
        return None
    return int(rows[best_index]) if run_ids is None else run_ids[rows[best_index]]


def _best_of(W: np.ndarray, losses: np.ndarray, names: tuple, *, method: str, compute: float, meta: dict) -> MixtureResult:
    finite = np.isfinite(losses)
    meta = {**meta, "compute": float(compute), "candidates": W.tolist(),
            "candidate_losses": [float(v) if np.isfinite(v) else None for v in losses]}
    if not finite.any():
        return MixtureResult(weights=np.full(len(names), 1.0 / len(names), dtype=np.float32), source_names=names,
                             success=False, status="non_finite", method=method, meta={**meta, "best_index": None},
                             message=f"{method}: no candidate had a finite loss; returning uniform weights")
    best = int(np.flatnonzero(finite)[np.argmin(losses[finite])])
    return MixtureResult(weights=W[best].astype(np.float32), source_names=names, loss=float(losses[best]),
                         method=method, meta={**meta, "best_index": best},
                         message=f"{method}: best of {len(W)} evaluated mixtures ({int(finite.sum())} finite)")


# ----------------------------------------------------------------------------- RegMix regressor

@dataclass
class RegMixModel:
    """A fitted RegMix regressor (weights -> target loss) and how well it ranks held-out runs."""

    regressor: object
    preset: str
    n_train: int
    n_val: int
    best_iteration: int
    spearman: float  # on the early-stopping hold-out (NaN if none or undefined)
    constant: bool  # every tree is a single leaf: the model predicts one value everywhere
    warnings: list = field(default_factory=list)

    def predict(self, W: np.ndarray) -> np.ndarray:
        """Predicted loss per mixture, shape ``(n,)`` float64."""
        return np.asarray(self.regressor.predict(np.asarray(W, dtype=np.float64)), dtype=np.float64)


def spearman(pred, y) -> float:
    """Spearman rank correlation, NaN when undefined (fewer than 3 pairs or a constant input)."""
    pred = np.asarray(pred, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(pred[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(pred[ok], y[ok]).statistic)


#: A held-out Spearman below this is warned about: the regressor barely ranks mixtures.
WEAK_SPEARMAN = 0.3
WEAK_NOTE = "RegMix regressor ranks its"


def weak_ranking(result) -> str | None:
    """A RegMix result's note that its regressor barely ranked its held-out runs (:data:`WEAK_SPEARMAN`), if any."""
    return next((w for w in result.meta.get("warnings", []) if str(w).startswith(WEAK_NOTE)), None)


def _split_order(W: np.ndarray, n_val: int, seed: int) -> tuple[np.ndarray, int]:
    """A seeded order of the rows whose first ``n_val`` (returned: at most the one asked for) hold early stopping's
    runs. Repeats of one mixture (seeds) stay on one side: with copies on both, the held-out loss is a copy's, so
    early stopping never stopped (held-out Spearman 0.994 against 0.964 on the real test table)."""
    order = np.random.default_rng(seed).permutation(len(W))
    groups = np.unique(W, axis=0, return_inverse=True)[1].ravel()
    counts = np.bincount(groups)
    if len(counts) == len(W) or not n_val:  # every mixture once: the rows' own order, as before
        return order, n_val
    held, total = [], 0
    for g in np.random.default_rng(seed).permutation(len(counts)):  # whole mixtures, none past n_val (a
        if total + counts[g] <= n_val:                               # baseline's 40 seeds would take the table)
            held.append(g)
            total += counts[g]
    if not held and counts.min() <= len(W) - 2:  # every mixture has more repeats than n_val: hold out the smallest
        held, total = [int(np.argmin(counts))], int(counts.min())  # rather than stop early on nothing
    val = np.isin(groups, held)
    return np.concatenate([np.flatnonzero(val), np.flatnonzero(~val)]), total


def fit_regressor(W: np.ndarray, y: np.ndarray, *, preset: str = "faithful", seed: int = 42,
                  val: tuple | None = None, val_fraction: float | None = None) -> RegMixModel:
    """Fit RegMix's LightGBM regressor from mixture weights ``W`` ``(n, P)`` to losses ``y`` ``(n,)``.

    Early stopping (3 rounds on l1/l2) uses ``val = (W_val, y_val)`` if given, else a seeded random
    ``val_fraction`` of the rows (default: the preset's, 1/8 for ``faithful`` as RegMix held out 128
    of 1,000 runs, 1/3 for ``mixmin-paper``; at least one row; none when ``val_fraction=0`` or fewer
    than 4 rows, and then all boosting iterations are used). Repeats of a mixture are held out whole: as
    many whole mixtures as fit in that many rows, else the one with fewest repeats. Rows with a
    non-finite loss are dropped. If LightGBM cannot split (too few rows for its minimum leaf size,
    or constant losses), every tree is one leaf and the model predicts a constant: this is logged
    with ``logging.warning`` and listed in ``model.warnings``.

    Raises
    ------
    InputError
        For an unknown preset, mismatched shapes, or fewer than 2 finite rows.
    """
    import lightgbm as lgb

    settings = _check_preset(preset)
    seed = _check_seed("seed", seed)
    W = _check_weights_table("W", W)
    y = _check_losses("y", y, len(W))
    keep = np.isfinite(y)
    W, y = W[keep], y[keep]
    if len(W) < 2:
        raise InputError(f"fit_regressor needs at least 2 runs with a finite loss; got {len(W)}.")
    if val is None:
        vf = settings["val_fraction"] if val_fraction is None else check_number("val_fraction", val_fraction, minimum=0)
        if vf >= 1:
            raise InputError(f"val_fraction must be below 1 (the rest fits the model); got {val_fraction!r}.")
        n_val = 0 if len(W) < 4 or vf <= 0 else min(max(len(W) - int(np.floor((1 - vf) * len(W) + 1e-9)), 1), len(W) - 2)
        order, n_val = _split_order(W, n_val, seed)
        W_val, y_val = W[order[:n_val]], y[order[:n_val]]
        W, y = W[order[n_val:]], y[order[n_val:]]
    else:
        W_val, y_val = _check_runs("val", val, W.shape[1])
        ok = np.isfinite(y_val)
        W_val, y_val = W_val[ok], y_val[ok]
    params = {"boosting_type": "gbdt", "objective": "regression", "n_estimators": settings["n_estimators"],
              "learning_rate": settings["learning_rate"], "random_state": seed, "verbosity": -1,
              "n_jobs": 1, "deterministic": True, **settings["extra"]}
    reg = lgb.LGBMRegressor(**params)
    fit_kw = {}
    if len(W_val) > 0:
        fit_kw = {"eval_X": (W_val,), "eval_y": (y_val,), "eval_metric": ["l1", "l2"],
                  "callbacks": [lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)]}
    reg.fit(W, y, **fit_kw)
    constant = all(t["num_leaves"] <= 1 for t in reg.booster_.dump_model()["tree_info"])
    warnings = []
    if constant:
        min_leaf = settings["extra"].get("min_child_samples", 20)
        warnings.append(
            f"RegMix regressor cannot split: {len(W)} training runs (LightGBM needs more than 2 x "
            f"min_data_in_leaf = {2 * min_leaf} and non-constant losses); it predicts a constant, so the "
            f"chosen mixture is the mean of arbitrary candidates. Use more runs or preset 'mixmin-paper'."
        )
        log.warning(warnings[-1])
    rho = spearman(reg.predict(W_val), y_val) if len(W_val) else float("nan")
    if not constant and np.isfinite(rho) and rho < WEAK_SPEARMAN:  # MUV: 7 of 12 problems at <= 0.03, unremarked
        warnings.append(f"{WEAK_NOTE} {len(W_val)} held-out runs at Spearman {rho:.2f} (fitted on {len(W)}): its pick "
                        "is little better than a draw from the prior. Use more runs.")  # logged by the caller, who
        # knows the problem (weak_ranking)
    return RegMixModel(regressor=reg, preset=preset, n_train=len(W), n_val=len(W_val),
                       best_iteration=int(reg.best_iteration_ or settings["n_estimators"]),
                       spearman=rho, constant=constant, warnings=warnings)


def regmix_choose(model, prior, rng: np.random.Generator, *, n_candidates: int = 100_000,
                  top_k: int = 128, return_candidates: bool = False):
    """Mean of the ``top_k`` lowest-predicted of ``n_candidates`` draws from ``Dirichlet(prior)``.

    ``model`` is anything with ``predict(W) -> (n,)`` (a :class:`RegMixModel`). Returns the mixture,
    shape ``(n_sources,)`` float32 on the simplex (and the top-k candidates if ``return_candidates``).

    Raises
    ------
    InputError
        If ``prior`` is not a positive vector or ``top_k`` is not in ``[1, n_candidates]``.
    """
    p = _check_prior("prior", prior)
    n_candidates, top_k = _check_choice(n_candidates, top_k)
    rng = _check_rng(rng)
    top, top_pred = np.empty((0, p.size)), np.empty(0)
    chunk = max(1000, _CHUNK_VALUES // p.size)  # bounded memory with many sources
    for start in range(0, n_candidates, chunk):
        cands = np.r_[top, _normalise_rows(rng.dirichlet(p, size=min(chunk, n_candidates - start)))]
        pred = np.r_[top_pred, np.asarray(model.predict(cands[len(top):]), dtype=np.float64)]
        pred = np.where(np.isfinite(pred), pred, np.inf)
        keep = np.argpartition(pred, top_k - 1)[:top_k] if top_k < len(pred) else np.arange(len(pred))
        top, top_pred = cands[keep], pred[keep]
    w = top.mean(axis=0)
    w = (w / w.sum()).astype(np.float32)
    return (w, top.astype(np.float32)) if return_candidates else w


# ----------------------------------------------------------------------------- RegMix end to end

#: Runs RegMix's faithful LightGBM needs to split at all: more than 2 x min_data_in_leaf = 40 in its training rows,
#: after its early stopping holds out 1/8 (measured: constant up to 46 runs, splits from 47).
FAITHFUL_MIN_RUNS = 47


def _fit_auto(W, y, *, preset: str, seed: int, val) -> tuple[RegMixModel, str]:
    """``preset="auto"``: RegMix's own regressor where it can learn (47+ runs and it splits), else the
    MixMin paper's small one (a faithful regressor that predicts a constant chooses arbitrarily)."""
    if preset != "auto":
        return fit_regressor(W, y, preset=preset, seed=seed, val=val), preset
    if len(W) >= FAITHFUL_MIN_RUNS:
        with _quiet("mixmin.search"):
            model = fit_regressor(W, y, preset="faithful", seed=seed, val=val)
        if not model.constant:
            return model, "faithful"
    return fit_regressor(W, y, preset="mixmin-paper", seed=seed, val=val), "mixmin-paper"


@contextlib.contextmanager
def _quiet(name: str):
    """Silence logger ``name`` below ERROR (a trial fit whose failure is handled is no warning)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def regmix_fit_choose(W, y, *, source_names, prior, rng: np.random.Generator, preset: str = "faithful",
                      n_candidates: int = 100_000, top_k: int = 128, compute: float | None = None,
                      seed: int = 42, val: tuple | None = None, tests: dict | None = None,
                      meta: dict | None = None) -> MixtureResult:
    """RegMix from already measured runs (a swarm or a published table): fit, then choose.

    Parameters
    ----------
    W, y : measured runs, ``(n, P)`` weights and ``(n,)`` target losses.
    prior : natural weights; candidates are drawn from ``Dirichlet(prior)``.
    val : optional ``(W_val, y_val)`` for early stopping (default: a hold-out part of ``W``).
    tests : optional ``{name: (W_test, y_test)}`` of held-out runs; their Spearman correlations
        with the predictions go to ``meta["spearman_tests"]``, and the measured loss of the test run
        predicted best (with the best measured) to ``meta["tests_top1"][name] = {"top1", "best"}``.
    compute : proxy compute spent (default ``len(W)`` runs).

    Returns
    -------
    MixtureResult, ``method="regmix"``, ``loss`` the regressor's predicted loss at the mixture,
    ``meta`` with ``n_runs``, ``compute``, ``preset``, ``spearman`` (early-stopping hold-out),
    ``spearman_tests``, ``best_iteration``, ``warnings``, ``top_k``, ``n_candidates``.
    """
    names = check_names("source_names", source_names)
    W = _check_weights_table("W", W, names=names)
    y = _check_losses("y", y, len(W))
    # everything is checked before the regressor is fitted
    if preset != "auto":
        _check_preset(preset)
    p = _check_prior("prior", prior, names=names)
    rng = _check_rng(rng)
    n_candidates, top_k = _check_choice(n_candidates, top_k)
    seed = _check_seed("seed", seed)
    compute = None if compute is None else check_number("compute", compute, minimum=0)
    val = None if val is None else _check_runs("val", val, names=names)
    tests = _check_tests(tests, names)
    if meta is not None and not isinstance(meta, Mapping):
        raise InputError(f"meta must be a dict (copied into the result's meta) or None; got {describe(meta)}.")
    model, preset = _fit_auto(W, y, preset=preset, seed=seed, val=val)
    w = regmix_choose(model, p, rng, n_candidates=n_candidates, top_k=top_k)
    rho_tests, top1 = {}, {}
    for name, (W_t, y_t) in tests.items():
        pred = model.predict(W_t)
        rho_tests[name] = spearman(pred, y_t)
        ok = np.isfinite(y_t)
        if ok.any():  # measured loss of the test run the regressor ranks first, and the best one
            top1[name] = {"top1": float(y_t[ok][np.argmin(pred[ok])]), "best": float(y_t[ok].min())}
    predicted = float(model.predict(w[None, :])[0])
    info = {**(meta or {}), "n_runs": len(W), "compute": float(len(W) if compute is None else compute),
            "preset": preset, "spearman": None if np.isnan(model.spearman) else model.spearman,
            "spearman_tests": {k: (None if np.isnan(v) else v) for k, v in rho_tests.items()},
            "tests_top1": top1,
            "n_train": model.n_train, "n_val": model.n_val, "best_iteration": model.best_iteration,
            "predicted_loss": predicted, "warnings": list(model.warnings), "top_k": int(top_k),
            "n_candidates": int(n_candidates)}
    return MixtureResult(weights=w, source_names=names, loss=predicted, method="regmix", success=not model.constant,
                         meta=info, message=(f"RegMix: mean of the top-{top_k} of {n_candidates} candidates by predicted loss; loss is "
                                             "the regressor's prediction")
                         + ("; WARNING: regressor predicts a constant" if model.constant else ""))


def regmix(evaluate, *, source_names, prior, n_runs: int, rng: np.random.Generator,
           preset: str = "faithful", n_candidates: int = 100_000, top_k: int = 128,
           compute_per_run: float = 1.0, temperature: float = 0.5, max_usage: float | None = MAX_USAGE,
           min_weight: float = 2e-4, seed: int = 42) -> MixtureResult:
    """RegMix: swarm of ``n_runs`` mixtures, evaluate them, fit LightGBM, choose the top-k mean.

    Parameters
    ----------
    evaluate : ``evaluate(W) -> losses``, as in :func:`random_search` (one proxy per mixture).
    prior : natural weights (source sizes, normalised). The swarm is drawn around
        ``dirichlet_prior(prior, temperature)``; candidates from ``Dirichlet(prior)``.
    preset : ``"faithful"`` (RegMix's regressor), ``"mixmin-paper"`` (10 trees, leaves of 1 row) or
        ``"auto"`` (faithful where it can split: 47+ runs and not a constant; else mixmin-paper).
    max_usage : per-source upper bound ``min(max_usage * prior, 1)`` on swarm weights (None: none).
        Draws above the bounds are rejected as in RegMix; when too few distinct mixtures survive
        (typically over ~100 sources) they are projected onto the bounds instead, with a warning in
        ``meta["warnings"]``.
    min_weight : RegMix's 2e-4, lowered to ``0.5 / n_sources`` when that is smaller.
    compute_per_run : cost of one proxy; ``meta["compute"] = n_runs * compute_per_run``.

    Returns
    -------
    MixtureResult as in :func:`regmix_fit_choose`, with ``meta["swarm"]`` and ``meta["swarm_losses"]``.

    Raises
    ------
    InputError
        For bad arguments or if ``evaluate`` returns the wrong number of losses.
    """
    names = check_names("source_names", source_names)
    if preset != "auto":
        _check_preset(preset)
    p = _check_prior("prior", prior, names=names)
    if max_usage is not None:  # each source up to max_usage x its prior weight: below 1, no mixture sums to 1
        check_number("max_usage", max_usage, minimum=1)
    # what is used after the runs is checked before them: each run is a trained proxy
    n_candidates, top_k = _check_choice(n_candidates, top_k)
    seed = _check_seed("seed", seed)
    compute_per_run = check_number("compute_per_run", compute_per_run, minimum=0)
    min_weight = check_number("min_weight", min_weight, minimum=0)
    bounds = None if max_usage is None else np.minimum(float(max_usage) * p, 1.0)
    swarm_prior = dirichlet_prior(p, temperature)
    notes = []
    try:
        W = regmix_swarm(n_runs, swarm_prior, rng, min_weight=min(min_weight, 0.5 / len(names)), upper_bounds=bounds)
    except InputError as exc:
        if bounds is None or "distinct mixtures" not in str(exc):
            raise
        notes.append(f"{exc} Projected the draws onto the bounds instead of rejecting them (bounds_mode='project').")
        log.warning(notes[-1])
        W = regmix_swarm(n_runs, swarm_prior, rng, min_weight=min(min_weight, 0.5 / len(names)), upper_bounds=bounds,
                         bounds_mode="project")
    y = _check_losses("evaluate", evaluate(W), len(W))
    result = regmix_fit_choose(W, y, source_names=names, prior=p, rng=rng, preset=preset, n_candidates=n_candidates,
                               top_k=top_k, compute=n_runs * compute_per_run, seed=seed)
    result.meta.update(swarm=W.tolist(), swarm_losses=[float(v) if np.isfinite(v) else None for v in y])
    result.meta["warnings"] = notes + result.meta["warnings"]
    return result
