"""Helpers for weights on the probability simplex."""
from __future__ import annotations

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
    to zero (which would leave 0/0).
    """
    with np.errstate(divide="ignore"):
        logits = np.log(weights)
    logits -= step_size * grad
    logits -= logits.max(axis=-1, keepdims=True)
    w = np.exp(logits, out=logits)
    w /= w.sum(axis=-1, keepdims=True)
    return w
