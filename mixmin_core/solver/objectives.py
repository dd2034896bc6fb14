"""The MixMin objectives: mean target loss of the mixed proxy prediction, with its gradient.

Each objective precomputes what it needs from ``ProxyOutputs`` once, then evaluates the loss
and gradient for one weight vector ``(P,)`` or a batch ``(B, P)`` in one float32 pass over the
``(P, N)`` matrix: per column block (see :mod:`~mixmin_core.solver.blocks`) it forms the mixed
prediction ``w @ block``, the loss's per-sample factor ``u`` and the gradient part
``u @ block.T`` while the block is still in cache. Memory-mapped values are streamed block by
block and never copied whole. Optional ``sample_weights`` ``(N,)`` or ``(B, N)`` (rows summing
to one) replace the plain mean; the bootstrap uses them to solve many resamples at once.
"""
from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mixmin_core.solver import blocks
from mixmin_core.solver.proxy_outputs import ProxyOutputs

#: Mixed probabilities are clipped to [EPS, 1 - EPS] before the log in the ``binary`` loss.
#: 1e-6 keeps the loss finite (at most -log(1e-6) ~ 13.8) and is far below any probability
#: a calibrated proxy reports.
EPS = 1e-6
#: Smallest mixed density (relative to the per-sample best proxy) in the ``loglik`` loss.
TINY = np.float32(1e-30)


class Objective:
    """Base: ``loss_grad(weights, sample_weights=None) -> (loss, grad)``.

    Subclasses say how a block of ``values`` becomes a block of the matrix the weights multiply
    (:meth:`_derive`), how the mixed prediction becomes the gradient's per-sample factor
    (:meth:`_factor`) and how the loss sums over samples (:meth:`_loss`). The matrix is derived
    once and kept in memory, except for memory-mapped values, whose blocks are derived as they
    stream past. A matrix of several blocks is kept sample-major (Fortran order), so that each
    block is one contiguous stretch of memory that the prefetcher streams at full speed.
    """

    matrix: np.ndarray | None  # (P, N) float32, what the weights multiply (None when streamed)
    identity = False  # True when that matrix is ``values`` unchanged
    _uniform_scale = None  # the factor's scale for uniform sample weights, made on first use

    def __init__(self, outputs: ProxyOutputs, block_bytes: int | None = None):
        values = outputs.values
        self.n_sources, self.n_samples = values.shape
        self.uniform_weight = np.float32(1.0 / self.n_samples)
        self.streamed = blocks.is_mapped(values)
        if self.streamed and not values.flags.f_contiguous and len(blocks.column_blocks(*values.shape)) > 1:
            # a source-major file: each block's row pieces should be whole pages (4 KB = 1,024 columns)
            block_bytes = max(block_bytes or blocks.BLOCK_BYTES, self.n_sources * 4096)
        self.blocks = blocks.column_blocks(self.n_sources, self.n_samples, block_bytes=block_bytes)
        self._setup(outputs)
        if self.streamed:
            self.values, self.matrix = values, None
        elif len(self.blocks) == 1:
            self.matrix = values if self.identity else self._derive(values, slice(None), None)
            self._tiles = [self.matrix]
        else:
            self.matrix = self._derive(values, slice(None), np.empty(values.shape, np.float32, order="F"))
            self._tiles = [self.matrix[:, cols] for cols in self.blocks]

    # ---- per kind ------------------------------------------------------------------------
    def _setup(self, outputs: ProxyOutputs) -> None:
        """Per-sample constants (labels, shifts); runs before any block is derived."""

    def _derive(self, values: np.ndarray, cols: slice, out: np.ndarray | None) -> np.ndarray:
        """The matrix block for ``values`` (columns ``cols``), written to ``out`` (new if None).

        Here (``identity`` kinds): a copy, e.g. into the sample-major layout."""
        if out is None:
            return values.copy()
        np.copyto(out, values)
        return out

    def _clip(self, mixed: np.ndarray, cols: slice) -> None:
        """In place: the mixed prediction of samples ``cols`` -> what the loss and factor use."""
        raise NotImplementedError

    def _factor_scale(self, s):
        """What :meth:`_factor` multiplies by, from the per-sample weights ``s`` (once per call)."""
        return -s

    def _factor(self, mixed: np.ndarray, scale, out: np.ndarray) -> None:
        """``out`` = per-sample factor ``u`` (``scale`` cut to the block) so the gradient is ``u @ block.T``."""
        raise NotImplementedError

    def _loss(self, mixed: np.ndarray, s):
        raise NotImplementedError

    def _scale(self, sample_weights):
        """Per-sample weights of the mean: a scalar, ``(N,)`` or ``(B, N)``."""
        return self.uniform_weight if sample_weights is None else sample_weights

    # ---- evaluation ----------------------------------------------------------------------
    def loss(self, weights, sample_weights=None):
        return self.loss_grad(weights, sample_weights, need_grad=False)[0]

    def loss_grad(self, weights, sample_weights=None, need_grad=True, need_loss=True):
        """Loss (scalar or ``(B,)``) and gradient (``(P,)`` or ``(B, P)``), both float32.

        ``need_grad=False`` returns ``(loss, None)``; ``need_loss=False`` returns ``(None, grad)``
        and skips the per-sample logarithms (the bootstrap never looks at the loss).
        """
        w = np.asarray(weights, dtype=np.float32)
        s = self._scale(sample_weights)
        batch = w.shape[:-1]
        mixed = np.empty(batch + (self.n_samples,), dtype=np.float32)
        if not need_grad:
            scale = None
        elif sample_weights is None:  # the usual case: the factor's scale is fixed, make it once
            if self._uniform_scale is None:
                self._uniform_scale = self._factor_scale(s)
            scale = self._uniform_scale
        else:
            scale = self._factor_scale(s)
        parts = np.empty((len(self.blocks),) + batch + (self.n_sources,), dtype=np.float32) if need_grad else None
        ranges = _split(len(self.blocks), THREADS) if len(self.blocks) > 1 else _ONE
        if len(ranges) == 1:
            self._sweep(ranges[0], w, scale, mixed, parts)
        else:  # numpy drops the GIL inside matmul and ufuncs, so block ranges run in parallel
            pending = [_pool().submit(self._sweep, r, w, scale, mixed, parts) for r in ranges[1:]]
            self._sweep(ranges[0], w, scale, mixed, parts)
            for job in pending:
                job.result()
        loss = self._loss(mixed, s) if need_loss else None
        grad = (parts[0] if len(parts) == 1 else parts.sum(axis=0)) if need_grad else None
        return loss, grad

    def _sweep(self, block_range: range, w, scale, mixed, parts) -> None:
        """One pass over blocks ``block_range``: fill ``mixed`` and, with ``parts``, the gradient parts."""
        width = self.blocks[0].stop
        u = np.empty(w.shape[:-1] + (width,), dtype=np.float32) if parts is not None else None
        pages = scratch = None
        if self.streamed:  # per sweep, so concurrent evaluations never share a buffer
            pages = blocks.PageReleaser(self.values)
            order = "F" if self.values.flags.f_contiguous else "C"
            scratch = None if self.identity else np.empty((self.n_sources, width), np.float32, order=order)
        for b in block_range:
            cols = self.blocks[b]
            block = self._block(b, cols, pages, scratch)
            m = mixed[..., cols]
            np.matmul(w, block, out=m)
            self._clip(m, cols)
            if parts is not None:
                ub = u[..., : m.shape[-1]]
                self._factor(m, _sub(scale, cols), ub)
                np.matmul(ub, block.T, out=parts[b])
            if pages is not None:
                pages.done(cols)
        if pages is not None:
            pages.flush()

    def _block(self, b: int, cols: slice, pages, scratch) -> np.ndarray:
        """Block ``b`` of the matrix: kept in memory, or read from the map (and derived into ``scratch``)."""
        if not self.streamed:
            return self._tiles[b]
        pages.populate(cols)
        raw = self.values[:, cols]
        return raw if self.identity else self._derive(raw, cols, scratch[:, : raw.shape[1]])


#: Threads that share the column blocks of one evaluation (each block is still read once).
THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
#: Fewest blocks per thread worth a hand-off (a thread switch costs tens of microseconds).
_MIN_BLOCKS_PER_THREAD = 8
_POOL: dict[int, ThreadPoolExecutor] = {}  # by process id: a forked child must not reuse its parent's
_ONE = [range(1)]


def _pool() -> ThreadPoolExecutor:
    pid = os.getpid()
    if pid not in _POOL:
        _POOL.clear()
        _POOL[pid] = ThreadPoolExecutor(max_workers=max(1, THREADS - 1), thread_name_prefix="mixmin-blocks")
    return _POOL[pid]


def _split(n_blocks: int, threads: int) -> list[range]:
    """Contiguous block ranges, one per thread (one range when there are too few blocks to share)."""
    threads = max(1, min(threads, n_blocks // _MIN_BLOCKS_PER_THREAD))
    edges = [round(i * n_blocks / threads) for i in range(threads + 1)]
    return [range(a, b) for a, b in itertools.pairwise(edges)]


def _weighted_sum(values: np.ndarray, s) -> np.ndarray:
    """``sum_x s_x values_x`` over the last axis (``s`` a scalar, ``(N,)`` or ``(B, N)``)."""
    if np.ndim(s) == 0:
        return values.sum(axis=-1) * s
    if values.ndim == 1:
        return s @ values
    if s.ndim == 1:
        return values @ s
    return np.einsum("...n,...n->...", values, s)


def _sub(vec, cols: slice):
    """``vec`` cut to the samples ``cols`` (a scalar stays as it is)."""
    return vec[..., cols] if isinstance(vec, np.ndarray) and vec.ndim else vec


class BinaryObjective(Objective):
    """Binary cross-entropy of the mixed probability ``p(x) = sum_p w_p f_p(x)``.

    The mixed probability of the *observed* label is ``q(x) = |p(x) - (1 - y)|`` (``p`` where
    y = 1, ``1 - p`` where y = 0), so the loss is ``-mean log q`` and, with ``a = 2y - 1 = dq/dp``,
    the gradient is ``-mean(a f / q)``: the proxies' probabilities are used as they are (no derived
    (P, N) matrix to build or stream), and the label arithmetic is on (N,) vectors only.
    """

    identity = True

    def _setup(self, outputs):
        self.negatives = (1.0 - outputs.labels).astype(np.float32)  # 1 - y
        self.signs = (2.0 * outputs.labels - 1.0).astype(np.float32)  # a = 2y - 1

    def _clip(self, mixed, cols):
        q = np.subtract(mixed, self.negatives[cols], out=mixed)
        np.abs(q, out=q)
        # probabilities clipped to [EPS, 1 - EPS]: for the observed label that is q >= EPS (q <= 1
        # holds on the simplex; the upper clip would change log q by at most 1e-6)
        np.maximum(q, EPS, out=q)

    def _factor_scale(self, s):
        return -s * self.signs

    def _factor(self, mixed, scale, out):
        np.divide(scale, mixed, out=out)  # -s a / q

    def _loss(self, mixed, s):
        return -_weighted_sum(np.log(mixed, out=mixed), s)


class MSEObjective(Objective):
    """Squared error of the mixed prediction ``sum_p w_p f_p(x)``."""

    def _setup(self, outputs):
        self.labels = outputs.labels

    identity = True  # the matrix is the proxies' predictions themselves

    def _clip(self, mixed, cols):
        np.subtract(mixed, self.labels[cols], out=mixed)  # residual

    def _factor_scale(self, s):
        return np.float32(2.0) * s

    def _factor(self, mixed, scale, out):
        np.multiply(mixed, scale, out=out)  # 2 s (w @ F - y)

    def _loss(self, mixed, s):
        return _weighted_sum(np.square(mixed, out=mixed), s)


class LoglikObjective(Objective):
    """Negative log-likelihood of the mixture density, per token when token counts are given.

    ``log p_w(x) = logsumexp_p(log w_p + log p_p(x))``. Log-probs of whole sequences (e.g.
    -5000) would underflow ``exp``; we factor out the per-sample maximum ``m(x)`` once:
    ``p_w(x) = exp(m(x)) * sum_p w_p exp(l_p(x) - m(x))``, so every exponent is <= 0.
    """

    def _setup(self, outputs):
        vals = outputs.values
        if blocks.is_mapped(vals):  # one streamed pass instead of a (P, N) temporary
            self.shift = np.empty(self.n_samples, dtype=np.float32)
            pages = blocks.PageReleaser(vals)
            for cols in self.blocks:
                vals[:, cols].max(axis=0, out=self.shift[cols])
                pages.done(cols)
            pages.flush()
        else:
            self.shift = vals.max(axis=0)
        counts = outputs.token_counts
        self.inv_tokens = None if counts is None else (1.0 / counts).astype(np.float32)
        # with uniform sample weights the per-sample scale and the shift's share of the loss are fixed
        self._uniform_s = self.uniform_weight if counts is None else self.uniform_weight * self.inv_tokens
        self._uniform_shift = _weighted_sum(self.shift, self._uniform_s)

    def _derive(self, values, cols, out):
        out = np.subtract(values, _sub(self.shift, cols), out=out)
        return np.exp(out, out=out)  # in [0, 1]

    def _scale(self, sample_weights):
        if sample_weights is None:
            return self._uniform_s
        return sample_weights if self.inv_tokens is None else sample_weights * self.inv_tokens

    def _clip(self, mixed, cols):
        np.maximum(mixed, TINY, out=mixed)

    def _factor(self, mixed, scale, out):
        np.divide(scale, mixed, out=out)  # -s / p_w

    def _loss(self, mixed, s):
        shift = self._uniform_shift if s is self._uniform_s else _weighted_sum(self.shift, s)
        return -(_weighted_sum(np.log(mixed, out=mixed), s) + shift)


_OBJECTIVES = {"binary": BinaryObjective, "mse": MSEObjective, "loglik": LoglikObjective}


def make_objective(outputs: ProxyOutputs, *, block_bytes: int | None = None) -> Objective:
    """The objective for ``outputs.kind``, built once per (immutable) ``outputs`` and kept with it,
    so re-solving the same outputs (the app's sliders, bootstrap, leave-one-out) skips the setup.

    ``block_bytes`` overrides the column-block size (tests, tuning); such objectives are not cached.
    """
    if block_bytes is not None:
        return _OBJECTIVES[outputs.kind](outputs, block_bytes=block_bytes)
    cached = outputs.__dict__.get("_objective")
    if cached is None:
        cached = _OBJECTIVES[outputs.kind](outputs)
        object.__setattr__(outputs, "_objective", cached)
    return cached
