"""The one-read kernel (numba): each sample's proxy outputs are read from memory once per evaluation.

For a sample-major matrix (one row of ``n_sources`` values per sample), :func:`fused_rows` takes a
row, forms the mixed prediction ``m = w . x``, turns it into the loss's per-sample factor ``u`` and
adds ``u x`` to the gradient while the row is still in L1 cache. Two numpy products (``w @ Q``,
then ``u @ Q.T``) read the matrix twice, and blocking them by columns still pays a library call
per block; here the whole thread's range of rows is one call. Rows go two at a time, so each
load of ``w`` and of the gradient serves two samples.

``fastmath`` allows only reassociation and contraction (so the sums vectorise); NaN and
infinity keep their meaning, so a non-finite proxy output still shows up in the loss.
"""
from __future__ import annotations

import numba
import numpy as np

FASTMATH = {"reassoc", "contract", "arcp", "nsz"}
#: The loss kinds the kernel knows, as the integer it is passed.
BINARY, MSE, LOGLIK = 0, 1, 2
#: Mixed probabilities are clipped to [EPS, 1 - EPS] before the log in the ``binary`` loss.
#: 1e-6 keeps the loss finite (at most -log(1e-6) ~ 13.8) and is far below any probability
#: a calibrated proxy reports.
EPS = np.float32(1e-6)
#: Smallest mixed density (relative to the per-sample best proxy) in the ``loglik`` loss.
TINY = np.float32(1e-30)


@numba.njit(nogil=True, fastmath=FASTMATH, cache=True, inline="always")
def _finish(kind, m, a, s):
    """``(mixed value kept for the loss, per-sample factor u)`` from the mixed prediction ``m``;
    ``a`` is the sample's label constant (1 - y for binary, y for mse) and ``s`` its factor scale."""
    if kind == BINARY:
        q = max(abs(m - a), EPS)  # the mixed probability of the observed label
        return q, s / q
    if kind == MSE:
        r = m - a  # residual
        return r, s * r
    d = max(m, TINY)  # mixture density relative to the per-sample best proxy
    return d, s / d


#: Compiled once, at import, for exactly these types (from numba's on-disk cache after the first time):
#: anything else (a float64 array, a strided view) is a TypeError, never a silent slow copy. Inputs
#: may be read-only (ProxyOutputs' arrays are; a writable array converts).
_IN1, _IN2 = (numba.types.Array(numba.float32, n, "C", readonly=True) for n in (1, 2))
_OUT1 = numba.float32[::1]
_SIGNATURE = numba.void(_IN2, _IN1, numba.int64, _IN1, _IN1, _OUT1, _OUT1, numba.int64, numba.int64)


@numba.njit(_SIGNATURE, nogil=True, fastmath=FASTMATH, cache=True)
def fused_rows(rows, w, kind, a, scale, mixed, grad, lo, hi):
    """For samples ``lo..hi-1`` (rows of ``rows``, shape ``(n, P)``, C-contiguous): write the mixed
    value to ``mixed[i]`` and add ``u_i rows[i]`` to ``grad`` (shape ``(P,)``, accumulated)."""
    n_sources = rows.shape[1]
    i = lo
    while i + 2 <= hi:
        x0, x1 = rows[i], rows[i + 1]
        m0 = np.float32(0.0)
        m1 = np.float32(0.0)
        for p in range(n_sources):
            m0 += x0[p] * w[p]
            m1 += x1[p] * w[p]
        mixed[i], u0 = _finish(kind, m0, a[i], scale[i])
        mixed[i + 1], u1 = _finish(kind, m1, a[i + 1], scale[i + 1])
        for p in range(n_sources):
            grad[p] += u0 * x0[p] + u1 * x1[p]
        i += 2
    if i < hi:
        x0 = rows[i]
        m0 = np.float32(0.0)
        for p in range(n_sources):
            m0 += x0[p] * w[p]
        mixed[i], u0 = _finish(kind, m0, a[i], scale[i])
        for p in range(n_sources):
            grad[p] += u0 * x0[p]
