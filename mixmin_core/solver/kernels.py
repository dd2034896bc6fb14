"""The solver's compiled kernels (numba): each evaluation reads the proxy matrix from memory once.

:func:`fused_rows` (many sources; a sample-major matrix, one row of ``n_sources`` values per sample)
takes a row, forms the mixed prediction ``m = w . x``, turns it into the loss's per-sample factor ``u``
and adds ``u x`` to the gradient while the row is still in L1 cache. Two numpy products (``w @ Q``,
then ``u @ Q.T``) read the matrix twice, and blocking them by columns still pays a library call per
block; here the whole thread's range of rows is one call. Rows go eight at a time, so each load of ``w``
and of the gradient serves eight samples. :func:`fused_rows_half` is the same kernel on float16 rows.

:func:`fused_columns` (few sources; a source-major matrix) takes a step of columns that fits in L2,
mixes four sources per pass over the step, then forms the gradient from cache.

:func:`log` is a vectorised float32 logarithm for the losses (numpy's is scalar without AVX-512).

``fastmath`` allows only reassociation and contraction (so the sums vectorise); NaN and
infinity keep their meaning, so a non-finite proxy output still shows up in the loss.
"""
from __future__ import annotations

import platform

import llvmlite.binding
import numba
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

from mixmin_core.solver.simplex import _entropic_rows

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
    ``a`` is the sample's label constant (1 - y for binary, y for mse) and ``s`` its factor scale.
    Where the clip holds, the loss is flat, so the factor is 0 (``s / EPS`` there, added for a sample that
    every proxy gets wrong, buried the other samples' gradient in float32)."""
    if kind == BINARY:
        q = abs(m - a)  # the mixed probability of the observed label
        clipped = max(q, EPS)
        return clipped, (s / clipped) * np.float32(q > EPS)  # branch-free, like the rest of the row loop
    if kind == MSE:
        r = m - a  # residual
        return r, s * r
    d = max(m, TINY)  # mixture density relative to the per-sample best proxy
    return d, (s / d) * np.float32(m > TINY)


#: float16 rows (``storage="float16"``) convert to float32 in hardware: x86's F16C (every x86-64 CPU
#: since 2012-13) or ARM64. Elsewhere LLVM would need a library routine numba cannot link.
HALF_SUPPORTED = (platform.machine().lower() in ("aarch64", "arm64")
                  or "+f16c" in llvmlite.binding.get_host_cpu_features().flatten().split(","))


@intrinsic
def _as_float32(typingctx, x):
    """A float32 value as it is; a uint16 holding float16 bits, converted (exactly) to float32."""
    if x == numba.float32:
        return numba.float32(x), lambda context, builder, sig, args: args[0]
    if x == numba.uint16:
        def codegen(context, builder, sig, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
        return numba.float32(x), codegen
    return None


def _fused_rows(rows, w, kind, a, scale, mixed, grad, lo, hi):
    """For samples ``lo..hi-1`` (rows of ``rows``, shape ``(n, P)``, C-contiguous): write the mixed
    value to ``mixed[i]`` and add ``u_i rows[i]`` to ``grad`` (shape ``(P,)``, accumulated)."""
    n_sources = rows.shape[1]
    i = lo
    while i + 8 <= hi:  # eight samples per pass: each load of w and of the gradient serves eight rows
        x0, x1, x2, x3 = rows[i], rows[i + 1], rows[i + 2], rows[i + 3]
        x4, x5, x6, x7 = rows[i + 4], rows[i + 5], rows[i + 6], rows[i + 7]
        m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = np.float32(0.0)
        for p in range(n_sources):
            wp = w[p]
            m0 += _as_float32(x0[p]) * wp
            m1 += _as_float32(x1[p]) * wp
            m2 += _as_float32(x2[p]) * wp
            m3 += _as_float32(x3[p]) * wp
            m4 += _as_float32(x4[p]) * wp
            m5 += _as_float32(x5[p]) * wp
            m6 += _as_float32(x6[p]) * wp
            m7 += _as_float32(x7[p]) * wp
        mixed[i], u0 = _finish(kind, m0, a[i], scale[i])
        mixed[i + 1], u1 = _finish(kind, m1, a[i + 1], scale[i + 1])
        mixed[i + 2], u2 = _finish(kind, m2, a[i + 2], scale[i + 2])
        mixed[i + 3], u3 = _finish(kind, m3, a[i + 3], scale[i + 3])
        mixed[i + 4], u4 = _finish(kind, m4, a[i + 4], scale[i + 4])
        mixed[i + 5], u5 = _finish(kind, m5, a[i + 5], scale[i + 5])
        mixed[i + 6], u6 = _finish(kind, m6, a[i + 6], scale[i + 6])
        mixed[i + 7], u7 = _finish(kind, m7, a[i + 7], scale[i + 7])
        for p in range(n_sources):
            grad[p] += (((u0 * _as_float32(x0[p]) + u1 * _as_float32(x1[p]))
                         + (u2 * _as_float32(x2[p]) + u3 * _as_float32(x3[p])))
                        + ((u4 * _as_float32(x4[p]) + u5 * _as_float32(x5[p]))
                           + (u6 * _as_float32(x6[p]) + u7 * _as_float32(x7[p]))))
        i += 8
    while i < hi:  # the last few samples, one at a time
        x0 = rows[i]
        m0 = np.float32(0.0)
        for p in range(n_sources):
            m0 += _as_float32(x0[p]) * w[p]
        mixed[i], u0 = _finish(kind, m0, a[i], scale[i])
        for p in range(n_sources):
            grad[p] += u0 * _as_float32(x0[p])
        i += 1


#: Compiled once, at import, for exactly these types (from numba's on-disk cache after the first time):
#: anything else (a float64 array, a strided view) is a TypeError, never a silent slow copy. Inputs
#: may be read-only (ProxyOutputs' arrays are; a writable array converts).
_IN1, _IN2 = (numba.types.Array(numba.float32, n, "C", readonly=True) for n in (1, 2))
_OUT1 = numba.float32[::1]
_SIGNATURE = numba.void(_IN2, _IN1, numba.int64, _IN1, _IN1, _OUT1, _OUT1, numba.int64, numba.int64)
fused_rows = numba.njit(_SIGNATURE, nogil=True, fastmath=FASTMATH, cache=True)(_fused_rows)
#: The same kernel on float16 rows (their bits as uint16: numba has no float16 type), read at half the
#: bytes; compiled on first use, so a CPU without HALF_SUPPORTED never compiles it.
fused_rows_half = numba.njit(nogil=True, fastmath=FASTMATH, cache=True)(_fused_rows)


#: Cephes' single-precision log: ``log(1 + t) = t - t^2/2 + t^3 P(t)`` for the mantissa ``1 + t`` in
#: [sqrt(1/2), sqrt(2)), and the exponent's ``e ln 2`` split in two parts so it adds exactly.
_LOG_POLY = tuple(np.float32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                                          1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                                          3.3333331174e-1))
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)
_SQRT_HALF = np.float32(0.70710678)
_LOG_CHUNK = 2048  # values per step: the exponents' buffer stays in L1


# (Indices below always count up from 0 within a slice: numba wraps a possibly negative index such as
# ``lo + k`` element by element, which stops the loop vectorising.)
@numba.njit(nogil=True, cache=True)
def _split(bits, mantissa, exponent):
    """Float bits -> mantissa bits (scaled into [0.5, 1)) and exponent; returns how many inputs are
    zero, negative, subnormal or non-finite."""
    special = 0
    for k in range(bits.shape[0]):
        b = bits[k]
        e = (b >> 23) & 0xFF
        special += (b <= 0) | (e == 0) | (e == 0xFF)
        exponent[k] = np.float32(e - 126)
        mantissa[k] = (b & 0x807FFFFF) | 0x3F000000
    return special


@numba.njit(nogil=True, fastmath=FASTMATH, cache=True)
def _log_mantissa(mantissa, exponent, out):
    """``out[k] = log(mantissa[k] 2^exponent[k])``."""
    c0, c1, c2, c3, c4, c5, c6, c7, c8 = _LOG_POLY
    for k in range(out.shape[0]):
        m = mantissa[k]
        low = np.float32(1.0) if m < _SQRT_HALF else np.float32(0.0)  # m -> 2m, e -> e - 1
        e = exponent[k] - low
        t = m + m * low - np.float32(1.0)
        z = t * t
        p = ((((((((c0 * t + c1) * t + c2) * t + c3) * t + c4) * t + c5) * t + c6) * t + c7) * t + c8) * t * z
        out[k] = t + (p + e * _LN2_LO - np.float32(0.5) * z) + e * _LN2_HI


@numba.njit(numba.void(_IN1, _OUT1), nogil=True, cache=True)
def log(x, out):
    """``out = log(x)`` (float32; ``out`` may be ``x``), within 2 ulp of the exact value.

    numpy's float32 log is scalar on CPUs without AVX-512 (2-5 ns a value, more than the two matrix
    passes of a small problem); this one vectorises: exponent and mantissa come from the bits, the
    mantissa's log from a polynomial. Zero, negative, subnormal and non-finite inputs (which the
    clipped losses never produce) are redone by the C library, so they keep its meaning.
    """
    bits = x.view(np.int32)
    mantissa = np.empty(_LOG_CHUNK, np.float32)
    exponent = np.empty(_LOG_CHUNK, np.float32)
    mantissa_bits = mantissa.view(np.int32)
    for lo in range(0, x.shape[0], _LOG_CHUNK):
        hi = min(lo + _LOG_CHUNK, x.shape[0])
        n = hi - lo
        special = _split(bits[lo:hi], mantissa_bits[:n], exponent[:n])
        saved = x[lo:hi].copy() if special else x[:0]  # rare: keep the inputs, as ``out`` may be ``x``
        _log_mantissa(mantissa[:n], exponent[:n], out[lo:hi])
        saved_bits = saved.view(np.int32)
        for k in range(saved.shape[0]):
            e = (saved_bits[k] >> 23) & 0xFF
            if saved_bits[k] <= 0 or e == 0 or e == 0xFF:
                out[lo + k] = np.log(saved[k])


#: Columns per step of :func:`fused_columns`: a step's slice of the matrix (``P x width`` floats,
#: about 256 KB) is still in L2 cache when the gradient pass reads it again.
_COLUMN_STEP_BYTES = 256 << 10

_SIGNATURE_COLUMNS = numba.void(_IN2, numba.int64, _IN1, numba.int64, _IN1, _IN1, _OUT1, _OUT1)


def _fused_columns(matrix, col0, w, kind, a, scale, mixed, grad):
    """For a source-major ``matrix`` (``(P, N)``, C-contiguous) and its columns ``col0 ..
    col0 + len(mixed) - 1``: write the mixed values to ``mixed`` and add ``u @ columns.T`` to ``grad``
    (``a`` and ``scale`` cut to the same columns). Each step's columns are read from memory once:
    the mixed prediction four sources at a time, then the factor, then the gradient from cache.

    Column indices are unsigned and nothing is sliced in the loops: numba wraps a signed index
    element by element (which stops vectorisation) and counts references to every slice.
    """
    n_sources = matrix.shape[0]
    last = n_sources - 1
    n = mixed.shape[0]
    width = max(64, _COLUMN_STEP_BYTES // (4 * n_sources))
    u = np.empty(min(width, n), np.float32)
    zero = np.float32(0.0)
    base = np.uint64(col0)
    for lo in range(0, n, width):
        start, stop = np.uint64(lo), np.uint64(min(lo + width, n))
        for k in range(start, stop):
            mixed[k] = zero
        for p in range(0, n_sources, 4):  # past the last source: a repeated row with weight 0
            q1, q2, q3 = min(p + 1, last), min(p + 2, last), min(p + 3, last)
            w0 = w[p]
            w1 = w[q1] if p + 1 <= last else zero
            w2 = w[q2] if p + 2 <= last else zero
            w3 = w[q3] if p + 3 <= last else zero
            for k in range(start, stop):
                j = base + k
                mixed[k] += (w0 * matrix[p, j] + w1 * matrix[q1, j]) + (w2 * matrix[q2, j] + w3 * matrix[q3, j])
        for k in range(start, stop):
            mixed[k], u[k - start] = _finish(kind, mixed[k], a[k], scale[k])
        for p in range(0, n_sources, 4):
            q1, q2, q3 = min(p + 1, last), min(p + 2, last), min(p + 3, last)
            s0 = s1 = s2 = s3 = zero
            for k in range(start, stop):
                j = base + k
                uk = u[k - start]
                s0 += matrix[p, j] * uk
                s1 += matrix[q1, j] * uk
                s2 += matrix[q2, j] * uk
                s3 += matrix[q3, j] * uk
            grad[p] += s0
            if p + 1 <= last:
                grad[p + 1] += s1
            if p + 2 <= last:
                grad[p + 2] += s2
            if p + 3 <= last:
                grad[p + 3] += s3


fused_columns = numba.njit(_SIGNATURE_COLUMNS, nogil=True, fastmath=FASTMATH, cache=True)(_fused_columns)
_columns = numba.njit(nogil=True, fastmath=FASTMATH, cache=True)(_fused_columns)  # for descend_columns' arrays

#: How :func:`descend_columns` stopped (``solvers.descend`` names them as ``Status``).
MAX_ITER, CONVERGED, NON_FINITE = 0, 1, 2


@numba.njit(nogil=True, fastmath=FASTMATH, cache=True)
def _loss_sum(kind, mixed, weight):
    """``sum_k weight_k g(mixed_k)`` in float64, with ``g`` the loss's per-sample function: the log of the
    clipped mixed value (binary, loglik; ``mixed`` is overwritten) or the squared residual (mse)."""
    if kind == MSE:
        for k in range(mixed.shape[0]):
            mixed[k] = mixed[k] * mixed[k]
    else:
        log(mixed, mixed)
    return weighted_total(mixed, weight)


@numba.njit(nogil=True, fastmath=FASTMATH, cache=True)
def weighted_total(values, weight):
    """``sum_k weight_k values_k``: float32 products added in float64. The one reduction behind every
    reported loss (the compiled descent's and ``Objective.loss``), so both give the same number."""
    total = 0.0
    for k in range(values.shape[0]):
        total += weight[k] * values[k]
    return total


# numba's on-disk cache checks only this file's timestamp: after a change to a function compiled into one of
# these kernels from another module (``simplex._entropic_rows``), edit this file too, or a stale kernel stays.
@numba.njit(nogil=True, cache=True)
def descend_columns(matrix, kind, a, scale, weight, sign, offset, step_size, tol, traj, losses, gaps):
    """``solvers.descend`` for a source-major ``matrix`` small enough for one thread, compiled whole: there
    the kernel takes tens of microseconds and Python's per-iteration work (the gap, the step, the bookkeeping)
    as long again. The loss is ``sign * sum_k weight_k g(mixed_k) + offset`` (see :func:`_loss_sum`).

    ``traj[0]`` is the start; iterate ``it`` fills ``traj[it]``, ``losses[it]`` and ``gaps[it]`` (the
    Frank-Wolfe gap over the simplex, in float64), up to ``traj.shape[0] - 1`` steps. Returns ``(n, how)``:
    the number of iterates recorded and :data:`MAX_ITER`, :data:`CONVERGED` or :data:`NON_FINITE` (a
    non-finite loss or gradient: that iterate is not recorded, except the start's, with a NaN gap).
    """
    max_iter = traj.shape[0] - 1
    mixed = np.empty(a.shape[0], np.float32)
    grad = np.empty(matrix.shape[0], np.float32)
    for it in range(max_iter + 1):
        w = traj[it]
        grad[:] = 0.0
        _columns(matrix, 0, w, kind, a, scale, mixed, grad)
        loss = sign * _loss_sum(kind, mixed, weight) + offset
        finite = np.isfinite(loss)
        for p in range(grad.shape[0]):
            finite &= np.isfinite(grad[p])
        if not finite:
            if it == 0:
                losses[0], gaps[0] = loss, np.nan
                return 1, NON_FINITE
            return it, NON_FINITE
        dot, low = 0.0, np.inf
        for p in range(grad.shape[0]):
            dot += np.float64(w[p]) * np.float64(grad[p])
            low = min(low, np.float64(grad[p]))
        losses[it], gaps[it] = loss, max(0.0, dot - low)
        if gaps[it] <= tol:
            return it + 1, CONVERGED
        if it < max_iter:
            _entropic_rows(traj[it:it + 1], grad.reshape((1, grad.shape[0])), step_size, traj[it + 1:it + 2])
    return max_iter + 1, MAX_ITER
