"""Small ``check_*`` helpers used once at public entry points."""
from __future__ import annotations

import numpy as np

from mixmin_core.errors import InputError


def describe(x) -> str:
    """A short description of a received value for error messages."""
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def check_finite(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = np.argwhere(bad)[0].tolist()
        raise InputError(
            f"{name} must be finite; found {int(bad.sum())} non-finite value(s), "
            f"first at index {tuple(idx)} ({arr[tuple(idx)]!r})."
        )


def check_shape(name: str, arr: np.ndarray, shape: tuple) -> None:
    if arr.shape != shape:
        raise InputError(f"{name} must have shape {shape}; got {describe(arr)}.")


def check_simplex(name: str, weights, n_sources: int, atol: float = 1e-4) -> np.ndarray:
    """Return ``weights`` as float32 after checking it lies on the simplex."""
    w = np.asarray(weights, dtype=np.float64)
    check_shape(name, w, (n_sources,))
    check_finite(name, w)
    if (w < 0).any():
        raise InputError(f"{name} must be non-negative; got minimum {w.min():.3g}.")
    total = w.sum()
    if abs(total - 1.0) > atol:
        raise InputError(
            f"{name} must sum to 1; got sum {total:.4g} for {n_sources} sources. "
            "Divide by the sum to normalise."
        )
    return (w / total).astype(np.float32)
