"""Column blocks of a ``(n_sources, n_samples)`` matrix, and streaming them from a memory map.

The objectives read the proxy matrix one column block (a range of samples, all sources) at a
time and finish each block (mixed prediction, per-sample factor, gradient part) while it is still
in cache, so every evaluation reads the matrix from memory once.

A memory-mapped matrix (``ProxyOutputs.load(path, mmap=True)`` or any ``numpy.memmap``) is
streamed the same way; after each stretch of blocks its pages are dropped from the process
(``MADV_DONTNEED``), so resident memory stays near one block while the file's data lives only
in the kernel's page cache.
"""
from __future__ import annotations

import mmap

import numpy as np

#: Bytes of one column block: it stays in cache between the block's two products, the ~1 us of
#: numpy call overhead per block is small next to reading it, and OpenBLAS keeps such a product on
#: one thread (from ~1.8 MB it splits each one over its threads, and the hand-offs between blocks
#: cost more than they save); the objective's own threads share the blocks instead.
BLOCK_BYTES = 1 << 20
#: A matrix up to this size is one block: it stays in the 32 MB L3 cache between the two products,
#: so blocking buys nothing there and only adds per-block calls.
SINGLE_BLOCK_BYTES = 24 << 20
#: Mapped bytes touched before their pages are released from the process.
RELEASE_BYTES = 64 << 20
#: ``madvise`` advice that maps a whole range in one call (Linux >= 5.14); missing elsewhere.
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)


def column_blocks(n_sources: int, n_samples: int, *, block_bytes: int | None = None,
                  itemsize: int = 4) -> list[slice]:
    """Consecutive column ranges of about ``block_bytes`` each (all columns if the matrix is small).

    ``block_bytes=None`` uses :data:`BLOCK_BYTES`, or one block up to :data:`SINGLE_BLOCK_BYTES`.
    """
    total = n_sources * n_samples * itemsize
    if block_bytes is None:
        if total <= SINGLE_BLOCK_BYTES:
            return [slice(0, n_samples)]
        block_bytes = BLOCK_BYTES
    width = max(1, int(block_bytes) // (itemsize * n_sources))
    if width >= 64:
        width -= width % 16  # whole 64-byte cache lines per row
    return [slice(j, min(j + width, n_samples)) for j in range(0, n_samples, width)]


def find_mmap(arr: np.ndarray) -> mmap.mmap | None:
    """The ``mmap`` behind ``arr`` (a ``numpy.memmap`` or a view of one), else None."""
    base = arr
    while base is not None:
        if isinstance(base, mmap.mmap):
            return base
        base = getattr(base, "base", None)
    return None


def is_mapped(arr) -> bool:
    return isinstance(arr, np.ndarray) and find_mmap(arr) is not None


class PageReleaser:
    """Drops the pages of finished column ranges of a memory-mapped 2-D array from the process.

    Pages are released once ``release_bytes`` of columns have been read (one ``madvise`` per
    stretch for a sample-major file, one per row and stretch for a source-major one). The data
    stays in the page cache; touching a released page again maps it back without disk I/O.
    Does nothing for an array that is not mapped.
    """

    def __init__(self, arr: np.ndarray, release_bytes: int = RELEASE_BYTES):
        self._mm = find_mmap(arr)
        self._pending = None
        if self._mm is None:
            return
        start = np.frombuffer(self._mm, dtype=np.uint8, count=1).ctypes.data
        self._offset = arr.ctypes.data - start
        self._row_stride, self._col_stride = arr.strides
        self._sample_major = arr.flags.f_contiguous
        if not (self._sample_major or self._col_stride == arr.itemsize):
            self._mm = None  # an unusual view: leave its pages to the kernel
            return
        self._rows = 1 if self._sample_major else arr.shape[0]
        self._step = max(1, release_bytes // max(1, arr.shape[0] * arr.itemsize))
        self._size = len(self._mm)

    def populate(self, cols: slice) -> None:
        """Map the pages of ``cols`` in one call (cheaper than a fault per 64 KB); best effort."""
        if self._mm is None or not self._sample_major:
            return
        self._advise(_MADV_POPULATE_READ, cols.start, cols.stop)

    def done(self, cols: slice) -> None:
        """Record that ``cols`` was read; release pages every :data:`RELEASE_BYTES`."""
        if self._mm is None:
            return
        if self._pending is None:
            self._pending = [cols.start, cols.stop]
        else:
            self._pending[1] = cols.stop
        if self._pending[1] - self._pending[0] >= self._step:
            self.flush()

    def flush(self) -> None:
        """Release everything recorded so far."""
        if self._mm is None or self._pending is None:
            return
        j0, j1 = self._pending
        self._pending = None
        self._advise(mmap.MADV_DONTNEED, j0, j1)

    def _advise(self, option: int, j0: int, j1: int) -> None:
        """``madvise`` the pages under columns ``[j0, j1)``: one range, or one per row."""
        for p in range(self._rows):
            a = self._offset + p * self._row_stride + j0 * self._col_stride
            b = self._offset + p * self._row_stride + j1 * self._col_stride
            lo = a - a % mmap.PAGESIZE
            hi = min(self._size, -(-b // mmap.PAGESIZE) * mmap.PAGESIZE)
            try:
                self._mm.madvise(option, lo, hi - lo)
            except (OSError, ValueError):  # advice unknown to this kernel: only a speed hint
                return
