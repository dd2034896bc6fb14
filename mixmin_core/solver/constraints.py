"""Per-source caps ``w_p <= u_p`` and a KL-to-prior term for MixMin (Olmix-style availability).

With caps the feasible set is the capped simplex ``{w >= 0, sum w = 1, w <= u}``. Mirror descent
stays exact on it because the KL (Bregman) projection of a positive vector ``v`` onto that set has
the closed form ``w_p = min(u_p, c v_p)`` with the scalar ``c`` chosen so the weights sum to one.
"""
from __future__ import annotations

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver.validation import (
    as_float_array,
    by_source,
    check_finite,
    check_number,
)


def check_caps(caps, n_sources: int, source_names=None, *, what: str = "caps",
               fix: str = "raise some caps (availability caps: allow more repetitions)") -> np.ndarray:
    """Validate caps ``(n_sources,)`` (or one number for every source) in (0, 1] summing to at least 1; return
    float64. With
    ``source_names``, caps keyed by name (a dict or pandas Series) are matched by name, and a source they do
    not name is not capped. ``what`` names the caps
    and ``fix`` says how to make them feasible, in the message when they sum below one.

    Raises
    ------
    InputError
        For a wrong shape, a cap outside (0, 1], or caps summing below 1 (infeasible).
    """
    u = as_float_array("caps", caps if source_names is None else by_source("caps", caps, source_names, missing=1.0),
                       booleans=False)
    if u.shape == ():  # one cap for every source, as the Solver page's "max weight per source"
        u = np.full(n_sources, float(u))
    if u.shape != (n_sources,):
        raise InputError(f"caps must have shape ({n_sources},), one per source; got shape {u.shape}.")
    check_finite("caps", u)
    if (u <= 0).any() or (u > 1).any():
        zero = ("; a cap of 0 (a source with no data, as availability_caps gives it) cannot be met on the simplex's "
                "interior: leave that source out first with outputs.select(sources=[...])" if (u == 0).any() else "")
        raise InputError(f"caps must lie in (0, 1]; got range [{u.min():.3g}, {u.max():.3g}]{zero}.")
    if u.sum() < 1 - 1e-9:
        raise InputError(f"{what} sum to {u.sum():.4g} < 1, so no mixture satisfies them (the weights must sum to 1); "
                         f"{fix}.")
    return u


def availability_caps(tokens_available, tokens_needed: float, repetitions: float = 1.0) -> np.ndarray:
    """Caps from data availability: ``min(1, tokens_available * repetitions / tokens_needed)``."""
    avail = as_float_array("tokens_available", tokens_available)
    for name, value in (("tokens_needed", tokens_needed), ("repetitions", repetitions)):
        try:
            check_number(name, value, minimum=0, strict=True)
        except InputError:
            raise InputError(f"tokens_needed and repetitions must be positive finite numbers; got {name}={value!r}.") from None
    check_finite("tokens_available", avail)
    if (avail < 0).any():
        raise InputError(f"tokens_available must be non-negative; got minimum {avail.min():.4g}.")
    return np.minimum(1.0, avail * repetitions / tokens_needed)


def project_capped(v: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """KL projection of positive ``v`` onto the capped simplex: ``min(caps, c v)``, sum one; ``v`` one vector or
    ``(rows, n_sources)``, each row projected (the batched bootstrap).

    Caps are fixed in order of ``caps_p / v_p`` (the sources that hit their cap first); the rest
    share what is left in proportion to ``v``. Exact in at most ``n_sources`` rounds.
    """
    v = np.asarray(v, dtype=np.float64)
    rows = np.atleast_2d(v)
    capped = np.zeros(rows.shape, dtype=bool)
    c = np.ones(len(rows))
    for _ in range(rows.shape[1]):
        free = ~capped
        with np.errstate(divide="ignore", invalid="ignore"):
            c = (1.0 - (caps * capped).sum(axis=1)) / (rows * free).sum(axis=1)
        over = free & (c[:, None] * rows > caps)
        if not over.any():
            break
        capped |= over
    w = np.where(capped, caps, c[:, None] * rows)
    full = capped.all(axis=1)  # caps summing to 1 (within rounding) leave one mixture: the caps themselves
    w[full] = caps / caps.sum()
    return w if v.ndim > 1 else w[0]


def linear_min_capped(grad: np.ndarray, caps: np.ndarray):
    """``min_{s in capped simplex} s . grad``: fill the smallest gradients first, up to their caps (a float; an
    array for ``(rows, n_sources)`` gradients, one minimum per row)."""
    g = np.atleast_2d(grad)
    order = np.argsort(g, axis=1, kind="stable")
    sorted_caps = caps[order]
    before = np.cumsum(sorted_caps, axis=1) - sorted_caps  # what the smaller gradients took
    filled = np.minimum(sorted_caps, np.maximum(0.0, 1.0 - before))
    mins = np.sum(filled * np.take_along_axis(g, order, axis=1), axis=1)
    return mins if np.ndim(grad) > 1 else float(mins[0])


def kl_to_prior(weights: np.ndarray, prior: np.ndarray) -> float:
    """``sum_p w_p log(w_p / prior_p)`` (0 log 0 = 0)."""
    w = np.asarray(weights, dtype=np.float64)
    nz = w > 0
    return float(np.sum(w[nz] * np.log(w[nz] / prior[nz])))
