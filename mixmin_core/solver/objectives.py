"""The MixMin objectives: mean target loss of the mixed proxy prediction, with its gradient.

Each objective precomputes what it needs from ``ProxyOutputs`` once, then evaluates the loss
and gradient for one weight vector ``(P,)`` or a batch ``(B, P)`` reading the ``(P, N)`` float32
matrix once. One weight vector (every solver iteration) goes through a numba kernel: with many
sources, :func:`~mixmin_core.solver.kernels.fused_rows` on a sample-major copy (one sample's outputs
at a time); with few, :func:`~mixmin_core.solver.kernels.fused_columns` (a cache-sized step of samples
at a time). Otherwise (many sources in a cache-sized matrix, a batch of weights) it goes per column
block (see :mod:`~mixmin_core.solver.blocks`): the mixed prediction ``w @ block``, the loss's
per-sample factor ``u`` and the gradient part ``u @ block.T`` while the block is still in cache.
Memory-mapped values are streamed block by block and never copied whole. Optional
``sample_weights`` ``(N,)`` or ``(B, N)`` (rows summing to one) replace the plain mean; the
bootstrap uses them to solve many resamples at once.
"""
from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver import blocks, kernels
from mixmin_core.solver.kernels import (  # the clip constants: the kernel uses them too
    EPS,
    TINY,
)
from mixmin_core.solver.proxy_outputs import ProxyOutputs

#: Fewest sources for the row kernel: with fewer, a sample's row is too short to vectorise, and the
#: column kernel takes the matrix instead. A many-source matrix that fits in cache (one block, see
#: :data:`~mixmin_core.solver.blocks.SINGLE_BLOCK_BYTES`) stays with numpy's two products too: read
#: from cache, two multi-stream BLAS passes beat one single-stream pass (measured: 5.4 against
#: 1.2-2.8 G values/s at 128 x 30,000), and the kernel only wins where memory bandwidth is the limit.
FUSED_MIN_SOURCES = 32
#: How the kernel's copy of the matrix may be stored (see :func:`make_objective`).
STORAGES = ("float32", "float16")
_HALF_MAX = float(np.finfo(np.float16).max)
#: Smallest in-memory matrix whose :func:`~mixmin_core.solver.kernels.fused_columns` evaluation is
#: split between threads: below it a hand-off (tens of microseconds) costs more than it saves.
COLUMNS_THREAD_BYTES = 4 << 20


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
    kind_code: int  # the loss kind, as :mod:`~mixmin_core.solver.kernels` numbers it
    constant: np.ndarray  # (N,) float32 per-sample label constant the kernel needs (see kernels._finish)
    _uniform_scale = None  # the factor's scale for uniform sample weights, made on first use
    _uniform_scale_vector = None  # the same as an (N,) array, for the kernel

    def __init__(self, outputs: ProxyOutputs, block_bytes: int | None = None, storage: str = "float32"):
        values = outputs.values
        self.n_sources, self.n_samples = values.shape
        self.uniform_weight = np.float32(1.0 / self.n_samples)
        self.streamed = blocks.is_mapped(values)
        if self.streamed and not values.flags.f_contiguous and len(blocks.column_blocks(*values.shape)) > 1:
            # a source-major file: each block's row pieces should be whole pages (4 KB = 1,024 columns)
            block_bytes = max(block_bytes or blocks.BLOCK_BYTES, self.n_sources * 4096)
        self.blocks = blocks.column_blocks(self.n_sources, self.n_samples, block_bytes=block_bytes)
        # the kernel reads sample-major rows: in memory a sample-major matrix (copied once at setup unless
        # the values already are), streamed only from a sample-major file
        self.fused = (self.n_sources >= FUSED_MIN_SOURCES and len(self.blocks) > 1
                      and (not self.streamed or values.flags.f_contiguous))
        # few sources in memory: the source-major kernel (each step of columns read once, from cache twice)
        self.columns = not self.streamed and self.n_sources < FUSED_MIN_SOURCES
        if self.fused and not self.streamed:
            chunks = min(FUSED_CHUNKS, self.n_samples)
            edges = [round(k * self.n_samples / chunks) for k in range(chunks + 1)]
            self.blocks = [slice(a, b) for a, b in itertools.pairwise(edges)]
        self._width = max(cols.stop - cols.start for cols in self.blocks)  # the widest block, for buffers
        self._setup(outputs)
        # float16 only where the row kernel keeps its own sample-major copy (the copy is made anyway)
        self.storage = "float16" if storage == "float16" and self.fused and not self.streamed else "float32"
        if self.streamed:
            self.values, self.matrix = values, None
            return
        if self.storage == "float16":
            self.matrix = self._half_copy(values)
            self._tiles = [self.matrix[:, cols] for cols in self.blocks]
            return
        if (len(self.blocks) == 1 or self.columns) and not self.fused:
            self.matrix = values if self.identity else self._derive(values, slice(None), None)
            self.matrix = np.ascontiguousarray(self.matrix)  # values may be a Fortran-order array
        elif self.identity and values.flags.f_contiguous:
            self.matrix = values
        else:
            self.matrix = self._derive(values, slice(None), np.empty(values.shape, np.float32, order="F"))
        self._tiles = [self.matrix[:, cols] for cols in self.blocks]

    def _half_copy(self, values: np.ndarray) -> np.ndarray:
        """The sample-major matrix in float16, as uint16 bits (what the kernel reads), a block at a time."""
        if not kernels.HALF_SUPPORTED:
            raise InputError("storage='float16' needs a CPU that converts float16 in hardware (x86 with F16C, "
                             "or ARM64); use storage='float32' on this machine.")
        half = np.empty(values.shape, np.float16, order="F")
        for cols in blocks.column_blocks(self.n_sources, self.n_samples):
            block = self._derive(values[:, cols], cols, None)
            peak = float(np.abs(block).max()) if block.size else 0.0
            if not np.isfinite(peak) or peak > _HALF_MAX:
                raise InputError(f"storage='float16' holds values up to {_HALF_MAX:g} in magnitude; these proxy "
                                 f"outputs reach {peak:g}. Use storage='float32'.")
            half[:, cols] = block
        return half.view(np.uint16)

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

    #: The floor the mixed value is clipped up to (None: no clip), where the loss turns flat.
    floor = None

    def clipped_gradient(self, weights, sample_weights=None):
        """``(n, g)``: how many samples' mixed value sits at :attr:`floor` at ``weights``, and the gradient they
        would add were the loss not flat there (its tangent at the floor, continued below it: the convex loss the
        clip stands in for). The flat clip hides that pull, so a descent can stop where the gradient says it is
        optimal while moving weight to sources that give those samples more would lower the loss a lot. One pass
        over the matrix (and the clipped samples' columns once more).

        ``weights`` ``(B, P)`` with ``sample_weights`` ``(B, N)`` (the bootstrap's resamples) gives ``n`` ``(B,)``
        and ``g`` ``(B, P)``. ``g`` is float64 and shifted to a minimum of 0: no gap over the simplex sees a
        constant, and a pull that is nearly one (every proxy certain and wrong on a sample: ~1e4 per source)
        would otherwise swamp the gradient's float32 digits and leave a gap of rounding noise."""
        w = np.ascontiguousarray(weights, dtype=np.float32)
        extra = np.zeros(w.shape[:-1] + (self.n_sources,))
        n = np.zeros(w.shape[:-1], dtype=np.int64)
        if self.floor is None:
            return (n if w.ndim > 1 else 0), extra
        scale = (self._uniform_scales()[1] if sample_weights is None
                 else self._factor_scale(self._scale(np.asarray(sample_weights, dtype=np.float32))))
        pages = blocks.PageReleaser(self.values) if self.streamed else None
        order = "F" if self.streamed and self.values.flags.f_contiguous else "C"
        scratch = None if self.identity or not self.streamed else np.empty((self.n_sources, self._width), np.float32,
                                                                            order=order)
        for b, cols in enumerate(self.blocks):
            block = self._block(b, cols, pages, scratch, decode=True)
            mixed = w @ block
            self._clip(mixed, cols)
            at = mixed <= self.floor
            some = np.flatnonzero(at.any(axis=tuple(range(at.ndim - 1))))  # columns clipped for any weights
            if some.size:
                n += at.sum(axis=-1)
                pull = np.where(at[..., some], np.broadcast_to(scale[..., cols], at.shape)[..., some], 0)
                extra += (pull / self.floor).astype(np.float64) @ block[:, some].T
            if pages is not None:
                pages.done(cols)
        if pages is not None:
            pages.flush()
        return (n if w.ndim > 1 else int(n)), extra - extra.min(axis=-1, keepdims=True)

    # ---- evaluation ----------------------------------------------------------------------
    def loss(self, weights, sample_weights=None):
        return self.loss_grad(weights, sample_weights, need_grad=False)[0]

    def loss_grad(self, weights, sample_weights=None, need_grad=True, need_loss=True):
        """Loss (scalar or ``(B,)``) and gradient (``(P,)`` or ``(B, P)``), both float32.

        ``need_grad=False`` returns ``(loss, None)``; ``need_loss=False`` returns ``(None, grad)``
        and skips the per-sample logarithms (the bootstrap never looks at the loss).
        """
        w = np.ascontiguousarray(weights, dtype=np.float32)
        s = self._scale(sample_weights)
        batch = w.shape[:-1]
        mixed = np.empty(batch + (self.n_samples,), dtype=np.float32)
        # one weight vector, with its gradient, is a kernel's case; the source-major kernel also gives the
        # loss alone, so it is the same number as the compiled descent's (the mixed values are the kernel's)
        single = not batch and (need_grad or self.columns)
        fused = self.fused and single
        if not (need_grad or single):
            scale = None
        elif sample_weights is None:  # the usual case: the factor's scale is fixed, made once
            scale = self._uniform_scales()[1 if single else 0]
        else:
            scale = self._factor_scale(s)
            scale = _vector(scale, self.n_samples) if single else scale
        if self.columns and single:
            loss, grad = self._columns(w, scale, mixed, s, need_loss)
            return loss, grad if need_grad else None
        per_thread = 1 if fused and not self.streamed else _MIN_BLOCKS_PER_THREAD
        ranges = _split(len(self.blocks), THREADS, per_thread) if len(self.blocks) > 1 else _ONE
        # the kernel adds into one gradient part per thread; the products write one per block
        n_parts = len(ranges) if fused else len(self.blocks)
        parts = (np.zeros if fused else np.empty)((n_parts,) + batch + (self.n_sources,), dtype=np.float32) \
            if need_grad else None
        if len(ranges) == 1:
            self._sweep(ranges[0], w, scale, mixed, parts, fused, 0)
        else:  # numba and numpy drop the GIL in the kernel, matmul and ufuncs: block ranges run in parallel
            pending = [_pool().submit(self._sweep, r, w, scale, mixed, parts, fused, k)
                       for k, r in enumerate(ranges) if k]
            self._sweep(ranges[0], w, scale, mixed, parts, fused, 0)
            for job in pending:
                job.result()
        loss = self._loss(mixed, s) if need_loss else None
        grad = (parts[0] if len(parts) == 1 else parts.sum(axis=0)) if need_grad else None
        return loss, grad

    def _uniform_scales(self):
        """The factor's scale for uniform sample weights, as it is and as an ``(N,)`` vector (made on first use)."""
        if self._uniform_scale is None:
            self._uniform_scale = self._factor_scale(self._scale(None))
            self._uniform_scale_vector = _vector(self._uniform_scale, self.n_samples)
        return self._uniform_scale, self._uniform_scale_vector

    def _columns(self, w, scale, mixed, s, need_loss):
        """One weight vector on the source-major kernel: one call per thread's range of columns."""
        n = self.n_samples
        threads = THREADS if self.matrix.nbytes >= COLUMNS_THREAD_BYTES else 1
        edges = [round(k * n / threads) for k in range(threads + 1)]
        parts = np.zeros((threads, self.n_sources), dtype=np.float32)

        def run(k):
            cols = slice(edges[k], edges[k + 1])
            kernels.fused_columns(self.matrix, cols.start, w, self.kind_code, self.constant[cols], scale[cols],
                                  mixed[cols], parts[k])

        pending = [_pool().submit(run, k) for k in range(1, threads)]
        run(0)
        for job in pending:
            job.result()
        return (self._loss(mixed, s) if need_loss else None), (parts[0] if threads == 1 else parts.sum(axis=0))

    @property
    def compiled(self) -> bool:
        """Whether :meth:`descend` applies: few sources, in memory, small enough for one thread."""
        return self.columns and self.matrix.nbytes < COLUMNS_THREAD_BYTES

    def descend(self, w: np.ndarray, step_size: float, max_iter: int, tol: float, sample_weights=None):
        """Mirror descent from ``w`` compiled whole (:func:`~mixmin_core.solver.kernels.descend_columns`)
        where it applies (:attr:`compiled`), with ``sample_weights`` ``(N,)`` as :meth:`loss_grad` (a bootstrap
        resample). Returns ``(trajectory, losses, gaps, how)``, cut to the iterates made, or None where it does not
        apply (``solvers.descend`` runs instead)."""
        if not self.compiled:
            return None
        traj = np.empty((max_iter + 1, self.n_sources), np.float32)
        traj[0] = w
        losses, gaps = np.empty(max_iter + 1), np.empty(max_iter + 1)
        s = self._scale(sample_weights)
        scale = (self._uniform_scales()[1] if sample_weights is None
                 else _vector(self._factor_scale(s), self.n_samples))
        n, how = kernels.descend_columns(self.matrix, self.kind_code, self.constant, scale,
                                         _vector(s, self.n_samples), *self._loss_terms(s), float(step_size),
                                         float(tol), traj, losses, gaps)
        return traj[:n], losses[:n], gaps[:n], how

    def _loss_terms(self, s) -> tuple[float, float]:
        """``(sign, offset)`` with the loss ``sign * sum_x s_x g(x) + offset`` (``g`` as in the kernel)."""
        return -1.0, 0.0

    def _sweep(self, block_range: range, w, scale, mixed, parts, fused: bool, thread: int) -> None:
        """One pass over blocks ``block_range``: fill ``mixed`` and, with ``parts``, the gradient parts
        (``parts[thread]`` on the kernel's path, ``parts[b]`` per block otherwise)."""
        width = self._width
        u = np.empty(w.shape[:-1] + (width,), dtype=np.float32) if parts is not None and not fused else None
        pages = scratch = None
        if self.streamed:  # per sweep, so concurrent evaluations never share a buffer
            # the threads together hold about RELEASE_BYTES of mapped pages (16 threads held ~1 GB)
            pages = blocks.PageReleaser(self.values, blocks.RELEASE_BYTES // THREADS)
            order = "F" if self.values.flags.f_contiguous else "C"
            scratch = None if self.identity else np.empty((self.n_sources, width), np.float32, order=order)
        for b in block_range:
            cols = self.blocks[b]
            block = self._block(b, cols, pages, scratch, decode=not fused)
            m = mixed[..., cols]
            if fused:
                kernel = kernels.fused_rows_half if self.storage == "float16" else kernels.fused_rows
                kernel(block.T, w, self.kind_code, self.constant[cols], scale[cols], m, parts[thread], 0, m.shape[-1])
                if pages is not None:
                    pages.done(cols)
                continue
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

    def _block(self, b: int, cols: slice, pages, scratch, decode: bool) -> np.ndarray:
        """Block ``b`` of the matrix: kept in memory, or read from the map (and derived into ``scratch``).
        With ``decode``, float16 storage comes back as float32 (for numpy's products; the kernel reads it as is)."""
        if not self.streamed:
            tile = self._tiles[b]
            return tile.view(np.float16).astype(np.float32) if decode and self.storage == "float16" else tile
        pages.populate(cols)
        raw = self.values[:, cols]
        return raw if self.identity else self._derive(raw, cols, scratch[:, : raw.shape[1]])


#: Threads that share the column blocks of one evaluation (each block is still read once): one per core, up to
#: 16. A cap of 4 left a 16-core machine's memory bandwidth half used: the one-pass solve at 1,328 x 100,000 ran
#: at 1.9x the two-pass floor there (numpy's BLAS used all 16 cores), against 0.6-0.8x on 2 cores.
THREADS = max(1, min(16, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
#: Column chunks of an in-memory matrix on the kernel's path: the threads share them (at least one each), and
#: each is one kernel call (the matrix is larger than cache there, so a call's overhead is negligible).
FUSED_CHUNKS = max(8, THREADS)
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


def _split(n_blocks: int, threads: int, per_thread: int = _MIN_BLOCKS_PER_THREAD) -> list[range]:
    """Contiguous block ranges, one per thread (one range when there are too few blocks to share:
    fewer than ``per_thread`` each)."""
    threads = max(1, min(threads, n_blocks // per_thread))
    edges = [round(i * n_blocks / threads) for i in range(threads + 1)]
    return [range(a, b) for a, b in itertools.pairwise(edges)]


def _weighted_sum(values: np.ndarray, s) -> np.ndarray:
    """``sum_x s_x values_x`` over the last axis (``s`` a scalar, ``(N,)`` or ``(B, N)``); for one vector
    of ``values`` by the kernel that :meth:`Objective.descend` reports its losses with."""
    if values.ndim == 1 and np.ndim(s) <= 1:
        return kernels.weighted_total(values, np.broadcast_to(np.asarray(s, dtype=np.float32), values.shape))
    if np.ndim(s) == 0:
        return values.sum(axis=-1) * s
    if s.ndim == 1:
        return values @ s
    return np.einsum("...n,...n->...", values, s)


def _vector(scale, n: int) -> np.ndarray:
    """``scale`` (a scalar or ``(N,)``) as a contiguous float32 ``(N,)`` array, for the kernel."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(scale, dtype=np.float32), (n,)))


def _log(mixed: np.ndarray) -> np.ndarray:
    """``log(mixed)`` in place (a fresh C-contiguous array), by the vectorised kernel."""
    flat = mixed.reshape(-1)
    kernels.log(flat, flat)
    return mixed


def _clipped_factor(scale, mixed: np.ndarray, floor, out: np.ndarray) -> None:
    """``out = scale / mixed``, and 0 where ``mixed`` was clipped up to ``floor``: the loss is flat there
    (see :func:`~mixmin_core.solver.kernels._finish`)."""
    np.divide(scale, mixed, out=out)
    np.copyto(out, 0.0, where=mixed <= floor)


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
    kind_code = kernels.BINARY

    def _setup(self, outputs):
        self.negatives = self.constant = (1.0 - outputs.labels).astype(np.float32)  # 1 - y
        self.signs = (2.0 * outputs.labels - 1.0).astype(np.float32)  # a = 2y - 1

    floor = EPS

    def _clip(self, mixed, cols):
        q = np.subtract(mixed, self.negatives[cols], out=mixed)
        np.abs(q, out=q)
        # probabilities clipped to [EPS, 1 - EPS]: for the observed label that is q >= EPS (q <= 1
        # holds on the simplex; the upper clip would change log q by at most 1e-6)
        np.maximum(q, EPS, out=q)

    def _factor_scale(self, s):
        return -s * self.signs

    def _factor(self, mixed, scale, out):
        _clipped_factor(scale, mixed, EPS, out)  # -s a / q

    def _loss(self, mixed, s):
        return -_weighted_sum(_log(mixed), s)


class MSEObjective(Objective):
    """Squared error of the mixed prediction ``sum_p w_p f_p(x)``."""

    def _setup(self, outputs):
        self.labels = self.constant = np.ascontiguousarray(outputs.labels, dtype=np.float32)

    identity = True  # the matrix is the proxies' predictions themselves
    kind_code = kernels.MSE

    def _clip(self, mixed, cols):
        np.subtract(mixed, self.labels[cols], out=mixed)  # residual

    def _factor_scale(self, s):
        return np.float32(2.0) * s

    def _factor(self, mixed, scale, out):
        np.multiply(mixed, scale, out=out)  # 2 s (w @ F - y)

    def _loss(self, mixed, s):
        return _weighted_sum(np.square(mixed, out=mixed), s)

    def _loss_terms(self, s):
        return 1.0, 0.0


class LoglikObjective(Objective):
    """Negative log-likelihood of the mixture density, per token when token counts are given.

    ``log p_w(x) = logsumexp_p(log w_p + log p_p(x))``. Log-probs of whole sequences (e.g.
    -5000) would underflow ``exp``; we factor out the per-sample maximum ``m(x)`` once:
    ``p_w(x) = exp(m(x)) * sum_p w_p exp(l_p(x) - m(x))``, so every exponent is <= 0.
    """

    kind_code = kernels.LOGLIK

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
        self.constant = self.shift  # unused by the kernel for this kind, but it takes an (N,) array
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

    floor = TINY

    def _clip(self, mixed, cols):
        np.maximum(mixed, TINY, out=mixed)

    def _factor(self, mixed, scale, out):
        _clipped_factor(scale, mixed, TINY, out)  # -s / p_w

    def _loss(self, mixed, s):
        shift = self._uniform_shift if s is self._uniform_s else _weighted_sum(self.shift, s)
        return -(_weighted_sum(_log(mixed), s) + shift)

    def _loss_terms(self, s):
        return -1.0, -float(self._uniform_shift if s is self._uniform_s else _weighted_sum(self.shift, s))


_OBJECTIVES = {"binary": BinaryObjective, "mse": MSEObjective, "loglik": LoglikObjective}


def make_objective(outputs: ProxyOutputs, *, block_bytes: int | None = None, storage: str = "float32") -> Objective:
    """The objective for ``outputs.kind``, built once per (immutable) ``outputs`` and storage and kept
    with it, so re-solving the same outputs (the app's sliders, bootstrap, leave-one-out) skips the setup.

    ``storage="float16"`` keeps the row kernel's copy of the matrix in float16 (half the memory and the
    bytes read per iteration; float32 arithmetic): it applies where that kernel runs (many sources, a
    matrix larger than cache, in memory) and ``objective.storage`` says what was used.
    ``block_bytes`` overrides the column-block size (tests, tuning); such objectives are not cached.
    """
    if storage not in STORAGES:
        raise InputError(f"storage must be one of {', '.join(map(repr, STORAGES))}; got {storage!r}.")
    if block_bytes is not None:
        return _OBJECTIVES[outputs.kind](outputs, block_bytes=block_bytes, storage=storage)
    name = "_objective" if storage == "float32" else f"_objective_{storage}"
    cached = outputs.__dict__.get(name)
    if cached is None:
        cached = _OBJECTIVES[outputs.kind](outputs, storage=storage)
        object.__setattr__(outputs, name, cached)
    return cached
