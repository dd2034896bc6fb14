"""Helpers for weights on the probability simplex."""
from __future__ import annotations

import numba
import numpy as np


def uniform(n_sources: int) -> np.ndarray:
    """Uniform weights, shape ``(n_sources,)``, float32."""
    return np.full(n_sources, 1.0 / n_sources, dtype=np.float32)


def normalise(weights: np.ndarray) -> np.ndarray:
    """Rescale non-negative weights (last axis) to sum to one."""
    w = np.asarray(weights, dtype=np.float32)
    return w / w.sum(axis=-1, keepdims=True)


def frank_wolfe_gap(weights: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """``max_p (w . g - g_p)``: an upper bound on ``f(w) - min f`` for convex ``f`` on the simplex.

    Works on one weight vector ``(P,)`` or a batch ``(B, P)``; zero exactly at an optimum.
    Rounding can push it a hair below zero; it is clamped at 0.
    """
    return np.maximum((weights * grad).sum(axis=-1) - grad.min(axis=-1), 0.0)


def entropic_step(weights: np.ndarray, grad: np.ndarray, step_size: float) -> np.ndarray:
    """One exponentiated-gradient step ``w_p <- w_p exp(-eta g_p) / Z`` (last axis).

    Done in log space and shifted by the maximum, so a large step cannot underflow every weight
    to zero (which would leave 0/0). Float32 in, float32 out (float64 if either input is); one
    compiled call, since a solver takes this step every iteration and numpy's six small calls
    cost more than a small problem's whole evaluation.
    """
    w, g = np.asarray(weights), np.asarray(grad)
    if w.shape != g.shape:
        w, g = (np.array(x) for x in np.broadcast_arrays(w, g))  # copies: the kernel takes plain arrays
    dtype = np.float64 if np.float64 in (w.dtype, g.dtype) else np.float32
    w, g = np.ascontiguousarray(w, dtype), np.ascontiguousarray(g, dtype)
    out = np.empty_like(w)
    rows = (-1, w.shape[-1])
    _entropic_rows(w.reshape(rows), g.reshape(rows), float(step_size), out.reshape(rows))
    return out


@numba.njit(nogil=True, cache=True)
def _entropic_rows(w, g, step_size, out):
    # The logits are formed twice, in float64, rather than kept in ``out``: rounded to float32 there, at a
    # large step (|logit| ~ 1e10) every one of them could fall below the unrounded maximum by hundreds and
    # underflow to zero (0/0). Formed the same way both times, the largest gives exp(0) = 1 exactly.
    for b in range(w.shape[0]):
        top = -np.inf
        for p in range(w.shape[1]):
            top = max(top, _logit(w[b, p], g[b, p], step_size))
        total = 0.0
        for p in range(w.shape[1]):
            e = np.exp(_logit(w[b, p], g[b, p], step_size) - top)
            out[b, p] = e
            total += e
        for p in range(w.shape[1]):
            out[b, p] /= total


@numba.njit(nogil=True, cache=True, inline="always")
def _logit(w, g, step_size):
    """``log w - step_size g`` in float64 (log 0 = -inf: a zero weight stays zero)."""
    return np.log(np.float64(w)) - step_size * np.float64(g)
