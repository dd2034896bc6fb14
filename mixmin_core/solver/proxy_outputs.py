"""``ProxyOutputs``: every proxy model's output on every target sample, cached once.

On disk: ``<name>.npz`` (arrays, never pickled) plus ``<name>.json`` (kind, source names,
metadata, the SHA-256 of the ``.npz`` and of the sidecar's own content), so a truncated or altered file
is caught on load.
Large outputs are stored uncompressed and sample-major, so ``ProxyOutputs.load(path, mmap=True)``
can memory-map ``values`` and the solver can stream them block by block (larger than memory).
"""
from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.runs import fileio
from mixmin_core.solver import blocks
from mixmin_core.solver.validation import (
    as_float_array,
    by_source,
    check_finite,
    check_names,
    check_shape,
    check_unmasked,
    describe,
    to_float32,
)

KINDS = ("binary", "loglik", "mse")
FORMAT_VERSION = 1
_OPTIONAL_ARRAYS = ("labels", "token_counts", "natural_weights", "sample_ids")


@dataclass(frozen=True, eq=False)
class ProxyOutputs:
    """Cached outputs of ``n_sources`` proxy models on ``n_samples`` target samples.

    Parameters
    ----------
    values : array (n_sources, n_samples)
        ``binary``: P(y=1|x) in [0, 1]; ``loglik``: total log-probability of each sample (<= 0);
        ``mse``: real-valued predictions. Stored as float32.
    kind : {"binary", "loglik", "mse"}
    source_names : sequence of str, optional
        Unique names; defaults to ``source_0 ... source_{P-1}``.
    labels : array (n_samples,), required for ``binary`` (values in {0, 1}) and ``mse``.
    token_counts : array (n_samples,), optional, ``loglik`` only: per-token normalisation.
    natural_weights : array (n_sources,), optional: source sizes (normalised to sum to 1).
    sample_ids : sequence of str, optional.
    meta : dict, optional: JSON-serialisable (dataset, target, split, proxy config, compute).

    Raises
    ------
    InputError
        Naming the field, what was received and what was expected.
    """

    values: np.ndarray
    kind: str
    source_names: tuple = None
    labels: np.ndarray | None = None
    token_counts: np.ndarray | None = None
    natural_weights: np.ndarray | None = None
    sample_ids: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __init__(self, values, kind, *, source_names=None, labels=None, token_counts=None,
                 natural_weights=None, sample_ids=None, meta=None):
        if not isinstance(kind, str) or kind not in KINDS:  # ProxyOutputs(values, labels) passes an array here
            hint = "" if isinstance(kind, str) else " (the second argument is the kind; pass labels as labels=...)"
            raise InputError(f"kind must be one of {KINDS}; got {describe(kind)}{hint}.")
        frame_names = _frame_sources(values, named=source_names is not None)
        if source_names is None:
            source_names = frame_names
        elif frame_names is not None and list(check_names("source_names", source_names)) != frame_names:
            raise InputError(f"source_names ({', '.join(map(str, list(source_names)[:3]))}, ...) disagree with the rows of "
                             f"the values DataFrame ({', '.join(frame_names[:3])}, ...), which name its sources; drop "
                             "source_names, or pass df.loc[names] to pick and order rows by name.")
        labels, token_counts = (_by_sample(name, given, values) for name, given in
                                (("labels", labels), ("token_counts", token_counts)))
        values = _as_matrix(values)
        n_sources, n_samples = values.shape
        for name, given in (("labels", labels), ("token_counts", token_counts)):
            if given is not None and np.shape(given)[:1] == (n_sources,) and n_sources != n_samples:
                raise InputError(f"{name} has {n_sources} entries, one per row of values, but values is sources x samples "
                                 f"({n_sources} x {n_samples}) and {name} needs one per column; if your values are "
                                 "samples x sources, pass values.T.")
        names = _check_names(source_names, n_sources)
        labels = _check_labels(labels, kind, n_samples)
        token_counts = _check_token_counts(token_counts, kind, n_samples)
        natural = _check_natural(by_source("natural_weights", natural_weights, names), n_sources)
        ids = _check_ids(sample_ids, n_samples)
        _check_values(values, kind)
        if meta is not None and not isinstance(meta, dict):
            raise InputError(f"meta must be a dict (JSON-serialisable); got {describe(meta)}.")
        try:  # as saved: NumPy numbers as Python ones, a copy of the caller's (NaN would be JSON others refuse)
            meta = json.loads(json.dumps(meta or {}, allow_nan=False, default=fileio.json_default))
        except (TypeError, ValueError) as exc:
            raise InputError(f"meta must be JSON-serialisable (finite numbers); {exc}.") from None
        for arr in (labels, token_counts, natural, ids):  # fresh copies, read-only as values are: solvers cache
            if arr is not None:                          # what they derive from them
                arr.flags.writeable = False
        for name, val in [("values", values), ("kind", kind), ("source_names", names),
                          ("labels", labels), ("token_counts", token_counts),
                          ("natural_weights", natural), ("sample_ids", ids), ("meta", meta)]:
            object.__setattr__(self, name, val)

    def __getstate__(self) -> dict:
        """For pickle and copy: the fields, without what solvers cached on the object (an objective holds a
        derived copy of the matrix, rebuilt on the next solve)."""
        return {name: value for name, value in self.__dict__.items() if not name.startswith("_")}

    def __setstate__(self, state: dict) -> None:
        for value in state.values():  # unpickled arrays are fresh and writable: read-only again, as made
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        self.__dict__.update(state)

    def __repr__(self) -> str:  # the arrays are large: their shapes, a few names and the meta's keys
        names = ", ".join(self.source_names[:5]) + (", ..." if self.n_sources > 5 else "")
        return (f"ProxyOutputs(kind={self.kind!r}, n_sources={self.n_sources}, n_samples={self.n_samples}, "
                f"source_names=[{names}], meta keys {sorted(self.meta)})")

    @property
    def n_sources(self) -> int:
        return self.values.shape[0]

    @property
    def n_samples(self) -> int:
        return self.values.shape[1]

    def select(self, sources: Sequence | None = None, samples: Sequence | None = None) -> ProxyOutputs:
        """A subset by source (names, integer positions or a boolean mask) and/or sample (positions, which
        may repeat, as in a bootstrap resample, or a boolean mask).

        Natural weights are renormalised over the kept sources.
        """
        src = _positions("sources", sources, self.n_sources, self.source_names)
        if len(set(src.tolist())) != src.size:
            raise InputError(f"sources must not repeat a source; got {describe(sources)}.")
        if src.size < 2:
            raise InputError(f"sources must keep at least two sources; got {src.size}.")
        smp = slice(None) if samples is None else _positions("samples", samples, self.n_samples)
        if isinstance(smp, np.ndarray) and smp.size == 0:
            raise InputError("samples must keep at least one sample; got none.")
        pick = lambda a: None if a is None else a[smp]
        natural = None if self.natural_weights is None else self.natural_weights[src]
        if natural is not None and natural.sum() <= 0:
            kept = [self.source_names[i] for i in src[:3]]
            raise InputError(f"select keeps only sources of natural weight 0 ({', '.join(kept)}"
                             f"{', ...' if src.size > 3 else ''}): their natural mixture is undefined. Keep a source "
                             "of positive natural weight, or select from ProxyOutputs made without natural_weights.")
        if natural is not None:
            natural = natural / natural.sum()
        values = self.values[src][:, smp]
        values.flags.writeable = False  # a fresh copy, shared with no one: ProxyOutputs need not copy it again
        return ProxyOutputs(
            values, self.kind, source_names=[self.source_names[i] for i in src],
            labels=pick(self.labels), token_counts=pick(self.token_counts),
            natural_weights=natural, sample_ids=pick(self.sample_ids), meta=self.meta,
        )

    # ---- persistence -------------------------------------------------------------------
    def save(self, path: str | Path, *, compress: bool | str = "auto") -> Path:
        """Write ``<path>.npz`` and ``<path>.json`` atomically; return the ``.npz`` path.

        Parameters
        ----------
        compress : True, False or "auto" (default)
            True deflates the arrays (smallest file). False stores them as they are, with
            ``values`` sample-major, so :meth:`load` with ``mmap=True`` can memory-map them and
            the solver can stream them. "auto" compresses below :data:`MAP_MIN_BYTES` of values
            and stores larger ones uncompressed. Values are written block by block, so saving
            memory-mapped outputs never holds the whole matrix in memory.
        """
        if not (isinstance(compress, bool) or compress == "auto"):
            raise InputError(f"compress must be True, False or 'auto'; got {compress!r}.")
        if compress == "auto":
            compress = self.values.nbytes < MAP_MIN_BYTES
        npz_path, json_path = _paths(path)
        try:
            with fileio.atomic_path(npz_path) as tmp:
                _write_npz(tmp, self, compress)
            sidecar = {
                "format_version": FORMAT_VERSION, "kind": self.kind,
                "source_names": list(self.source_names), "n_sources": self.n_sources,
                "n_samples": self.n_samples, "meta": self.meta,
                "sha256": fileio.sha256_file(npz_path),
            }
            sidecar["sidecar_sha256"] = _sidecar_hash(sidecar)
            fileio.write_json(json_path, sidecar)
        except OSError as exc:  # a folder of that name, a name too long, no permission, a full disk
            raise InputError(f"cannot write {npz_path}: {exc.strerror or exc}.") from None
        return npz_path

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = False) -> ProxyOutputs:
        """Load and validate a saved ``ProxyOutputs`` (never unpickles).

        ``mmap=True`` memory-maps ``values`` when the file stores them uncompressed (as
        :meth:`save` does for large outputs): nothing is read whole into memory, validation
        streams the matrix block by block, and the solver streams it per iteration. Compressed
        (small) files are read into memory as usual. Other uses of the mapped ``values``
        (``select``, arithmetic) read what they touch into memory.

        Raises
        ------
        InputError
            If either file is missing, the checksum does not match (truncated or altered), or
            the arrays fail validation; the message names the file.
        """
        if not isinstance(mmap, bool):
            raise InputError(f"mmap must be True or False; got {mmap!r}.")
        npz_path, json_path = _paths(path)
        legacy = Path(os.fspath(path))  # "x.NPZ" was saved as x.NPZ.npz before its suffix was read in any case
        if not npz_path.is_file() and legacy.suffix in (".NPZ", ".JSON") and (
                legacy.with_name(legacy.name + ".npz").is_file()):
            npz_path, json_path = legacy.with_name(legacy.name + ".npz"), legacy.with_name(legacy.name + ".json")
        for p in (npz_path, json_path):
            if not p.is_file():
                what = "not a file" if p.exists() else "file not found"
                raise InputError(f"{p}: {what}; a proxy-outputs file needs both {npz_path.name} and {json_path.name}.")
        try:
            sidecar = fileio.read_json(json_path)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{json_path}: not valid JSON ({exc}).") from None
        except (RecursionError, ValueError):  # nested thousands deep, or an integer of thousands of digits
            raise InputError(f"{json_path}: not a sidecar written by ProxyOutputs.save (nested too deeply, or a "
                             "number too long to read).") from None
        expected = sidecar.get("sha256") if isinstance(sidecar, dict) else None
        if not expected or not isinstance(expected, str):
            raise InputError(f"{json_path}: missing 'sha256' checksum field (a hex string); got {describe(expected)}.")
        actual = fileio.sha256_file(npz_path)
        if actual != expected:
            raise InputError(
                f"{npz_path}: checksum mismatch (file is truncated or altered); "
                f"expected sha256 {expected[:12]}..., got {actual[:12]}...."
            )
        mapped = _map_values(npz_path) if mmap else None
        return cls._from_npz(npz_path, sidecar, str(npz_path), values=mapped)

    @classmethod
    def from_npz_bytes(cls, data: bytes, sidecar: dict, source: str = "<upload>") -> ProxyOutputs:
        """Build from the bytes of an ``.npz`` and its parsed sidecar (uploads use this)."""
        return cls._from_npz(io.BytesIO(data), sidecar, source)

    @classmethod
    def _from_npz(cls, file, sidecar: dict, source: str, values: np.ndarray | None = None) -> ProxyOutputs:
        """Read the arrays of an ``.npz`` (path or file object); ``values`` given: skip that member."""
        if not isinstance(sidecar, dict):
            raise InputError(f"{source}: the sidecar must be a JSON object as `save` writes it; got "
                             f"{type(sidecar).__name__}.")
        own = sidecar.get("sidecar_sha256")
        if own is not None and own != _sidecar_hash(sidecar):  # files saved before it (and most uploads) carry none
            raise InputError(f"{source}: its sidecar (.json) was altered since it was saved (its kind, source names or "
                             "meta no longer match its sidecar_sha256), so the weights could be read against the wrong "
                             "sources; save the outputs again.")
        try:
            loaded = np.load(file, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy array under the .npz name
                raise InputError(f"{source}: holds a single .npy array, not an .npz archive of named arrays; save "
                                 "with ProxyOutputs.save (or np.savez(path, values=...)).")
            with loaded as npz:
                arrays = {k: npz[k] for k in npz.files if not (k == "values" and values is not None)}
                for arr in arrays.values():
                    arr.flags.writeable = False  # read here, shared with no one: no copy needed
                if values is not None:
                    arrays["values"] = values
        except InputError:
            raise
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise InputError(f"{source}: cannot read arrays ({exc}).") from None
        if "values" not in arrays:
            raise InputError(f"{source}: no 'values' array; found {sorted(arrays)}.")
        _check_sidecar(sidecar, arrays["values"].shape, source)
        try:
            return cls(
                arrays["values"], sidecar.get("kind"), source_names=sidecar.get("source_names"),
                meta=sidecar.get("meta"), **{k: arrays.get(k) for k in _OPTIONAL_ARRAYS},
            )
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None


def _sidecar_hash(sidecar: dict) -> str:
    """SHA-256 of the sidecar's content (every field but this hash), as canonical JSON: the ``.npz``'s checksum
    cannot see a swapped source name or kind in the sidecar."""
    import hashlib

    body = {k: v for k, v in sidecar.items() if k != "sidecar_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=fileio.json_default).encode()).hexdigest()


def _check_sidecar(sidecar: dict, shape: tuple, source: str) -> None:
    """What ``save`` writes beside the arrays must describe them: a known format, the source names, and
    counts that match (a hand-edited sidecar was read with made-up names, or against other arrays)."""
    if len(shape) != 2:
        raise InputError(f"{source}: 'values' must be a 2-D array (sources x samples); got shape {tuple(shape)}.")
    version = sidecar.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise InputError(f"{source}: sidecar format_version {describe(version)} is not one this version reads "
                         f"({FORMAT_VERSION}); save the outputs again with ProxyOutputs.save.")
    if not isinstance(sidecar.get("source_names"), list):
        raise InputError(f"{source}: the sidecar's 'source_names' must be a list of the {shape[0]} source names; "
                         f"got {describe(sidecar.get('source_names'))}.")
    for key, n in (("n_sources", shape[0]), ("n_samples", shape[1] if len(shape) > 1 else None)):
        if key in sidecar and (isinstance(sidecar[key], bool) or sidecar[key] != n):
            raise InputError(f"{source}: the sidecar says {key}={describe(sidecar[key])}, but the values array "
                             f"has shape {tuple(shape)}; the two files do not belong together.")


#: Values at least this large are saved uncompressed by ``save(compress="auto")``, so they can be
#: memory-mapped; deflating them would cost seconds per save for ~10% on continuous values.
MAP_MIN_BYTES = 64 << 20
#: Where the ``values`` member's ``.npy`` starts in a file written by ``save``: page-aligned, so
#: the mapped matrix starts on a 64-byte boundary (the ``.npy`` header is padded to 64 bytes).
_VALUES_AT = 4096
#: Extra-field id of the zip padding record that aligns ``values`` (the one Android's zipalign uses).
_PAD_ID = 0xD935


def _write_npz(path: Path, outputs: ProxyOutputs, compress: bool) -> None:
    """An ``.npz`` as ``numpy.savez`` writes it, but streamed, with ``values`` first and aligned.

    Uncompressed values are written sample-major (Fortran order), so a block of samples is one
    contiguous stretch of the file.
    """
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method, allowZip64=True) as zf:
        info = zipfile.ZipInfo("values.npy", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = method
        if not compress:  # only a stored matrix is mapped (the padding, in both zip headers, would double a small file)
            # local header: 30 bytes + name + zip64 extra (20 bytes, force_zip64) + our padding record
            pad = _VALUES_AT - (30 + len(info.filename) + 20 + 4)
            info.extra = struct.pack("<HH", _PAD_ID, pad) + bytes(pad)
        with zf.open(info, "w", force_zip64=True) as fh:
            _write_values(fh, outputs.values, sample_major=not compress)
        for name in _OPTIONAL_ARRAYS:
            arr = getattr(outputs, name)
            if arr is not None:
                with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asarray(arr), allow_pickle=False)


def _write_values(fh, values: np.ndarray, sample_major: bool) -> None:
    """``values`` as a ``.npy`` stream, written in column blocks (never copied whole)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": sample_major,
              "shape": values.shape}
    np.lib.format.write_array_header_1_0(fh, header)
    if not sample_major:
        step = max(1, (16 << 20) // (4 * values.shape[1]))
        for row in range(0, values.shape[0], step):
            fh.write(np.ascontiguousarray(values[row: row + step], dtype="<f4").data)
        return
    pages = blocks.PageReleaser(values)
    for cols in blocks.column_blocks(*values.shape, block_bytes=16 << 20):
        fh.write(np.ascontiguousarray(values[:, cols].T, dtype="<f4").data)
        pages.done(cols)
    pages.flush()


def _map_values(npz_path: Path) -> np.ndarray | None:
    """``values`` of an ``.npz`` memory-mapped read-only, or None when stored compressed.

    Finds the stored ``values.npy`` member's bytes in the zip (local header, then the ``.npy``
    header) and maps the array data there; reads no array data.
    """
    try:
        with zipfile.ZipFile(npz_path) as zf:
            info = zf.getinfo("values.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with open(npz_path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError("bad local header for values.npy")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                return None
            offset = fh.tell()
    except KeyError:
        raise InputError(f"{npz_path}: no 'values' array.") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{npz_path}: cannot read arrays ({exc}).") from None
    if dtype != np.dtype("<f4") or len(shape) != 2 or offset % 4 or 0 in shape:
        return None  # not a plain float32 matrix: load it the ordinary way
    return np.memmap(npz_path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _positions(name: str, chosen, n: int, names: tuple | None = None) -> np.ndarray:
    """``chosen`` (names, when ``names`` are given; integer positions in ``0..n-1``; or a boolean mask of
    length ``n``) as an array of positions, or an InputError naming ``name``."""
    if chosen is None:
        return np.arange(n)
    if isinstance(chosen, (str, bytes)) or np.ndim(chosen) != 1:
        raise InputError(f"{name} must be a list (of {'names or ' if names else ''}positions) or a boolean mask; "
                         f"got {describe(chosen)}.")
    items = list(chosen)
    if names is not None and items and all(isinstance(s, str) for s in items):
        lookup = {label: i for i, label in enumerate(names)}
        missing = [s for s in items if s not in lookup]
        if missing:
            raise InputError(f"{name} not found: {missing[:5]}; known: {list(names)[:5]}...")
        return np.array([lookup[s] for s in items], dtype=np.int64)
    idx = np.asarray(items)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise InputError(f"{name}: a boolean mask must have one entry per {name[:-1]} ({n}); got {idx.size}.")
        return np.flatnonzero(idx)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise InputError(f"{name} must be {'names or ' if names else ''}integer positions; got {describe(chosen)}.")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InputError(f"{name} positions must lie in 0..{n - 1}; got {int(idx.min())}..{int(idx.max())}.")
    return idx


def _paths(path) -> tuple[Path, Path]:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InputError(f"path must be a file path such as 'outputs/target' (.npz and .json beside it); got {path!r}.")
    raw = str(os.fspath(path))
    folder = raw.endswith(("/", os.sep))  # Path() drops the slash: "out/" wrote out.npz beside out/
    path = Path(path)
    base = path.with_suffix("") if path.suffix.lower() in (".npz", ".json") else path
    if folder or base.name in ("", ".", ".."):  # a folder, not a file name
        raise InputError(f"path must name a file such as 'outputs/target' (.npz and .json beside it), not a folder; "
                         f"got {raw!r}.")
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")


def _frame_sources(values, named: bool = False) -> list | None:
    """A pandas DataFrame's source names (its row labels), or None for other values or numbered rows.

    Named columns over numbered rows read as samples x sources (a table's usual layout): without source names
    (``named``) that is an error naming ``df.T``, not 300 sources called ``source_0``..."""
    index, columns = getattr(values, "index", None), getattr(values, "columns", None)
    if index is None or columns is None:
        return None
    import pandas as pd

    numbered = isinstance(index, pd.RangeIndex)
    if numbered and not named and not isinstance(columns, pd.RangeIndex):
        raise InputError(f"values is a DataFrame with named columns ({', '.join(map(str, columns[:3]))}, ...) and numbered "
                         "rows; ProxyOutputs takes one row per source (sources x samples). Pass df.T if its columns "
                         "are your sources, or source_names=... if its rows are.")
    return None if numbered else [str(i) for i in index]


def _by_sample(name: str, given, values):
    """``given`` per sample in the order of a values DataFrame's named columns, where it is a Series keyed by those
    ids (in any order); a Series numbered 0, 1, ... otherwise, or anything else, as it is. Ids that differ are an
    error, not a silent shuffle."""
    import pandas as pd

    columns = getattr(values, "columns", None)
    if columns is None or not isinstance(given, pd.Series) or isinstance(columns, pd.RangeIndex):
        return given
    ids, keys = [str(c) for c in columns], [str(k) for k in given.index]
    if len(set(ids)) < len(ids):
        return given  # repeated column ids name no one sample: in column order, as before
    if len(set(keys)) == len(keys) and set(keys) == set(ids):  # integer ids too: [2, 1, 4, 0, 3, 5] is no position
        return pd.Series(given.to_numpy(), index=keys)[ids].to_numpy()
    if given.index.dtype.kind in "iu" and np.array_equal(given.index, np.arange(len(given))):
        return given  # numbered 0, 1, ...: in column order, as by_source reads such a Series
    if len(set(keys)) < len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})[:3]
        raise InputError(f"{name} is a Series keyed by sample id, but it repeats ids {twice}; give one per column of "
                         f"the values DataFrame, or pass {name}.to_numpy() to take them in column order.")
    unmatched = sorted(set(ids) - set(keys))[:3] or sorted(set(keys) - set(ids))[:3]
    which = "no entry for column(s)" if set(ids) - set(keys) else "entries for no column, e.g."
    raise InputError(f"{name} is a Series keyed by sample id, but its ids differ from the values DataFrame's "
                     f"columns ({which} {unmatched}); give one per column, or pass {name}.to_numpy() to take "
                     "them in column order.")


def _as_matrix(values) -> np.ndarray:
    """``values`` as a read-only float32 matrix that no one else can change: a writable array the caller
    passed is copied (a later edit of theirs would otherwise change these outputs under the solver's caches);
    a read-only array (such as a map opened with mode 'r') is used as it is."""
    check_unmasked("values", values)
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged input and the like
        raise InputError(f"values must be a 2-D numeric array; {exc}.") from None
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"values must be a 2-D numeric array (n_sources, n_samples) of real numbers; got {describe(arr)}.")
    if arr.shape[0] < 2:
        raise InputError(f"values must hold at least two sources (rows); got {arr.shape[0]}.")
    if arr.shape[1] < 1:
        raise InputError("values must hold at least one sample (column); got 0.")
    if blocks.is_mapped(arr):
        if arr.dtype != np.float32:
            raise InputError(f"memory-mapped values must be float32 (the solver streams them as they are); "
                             f"got {describe(arr)}. Convert the file to float32, or load it into memory.")
        if arr.flags.writeable or _writable_base(arr):
            raise InputError("memory-mapped values must be opened read-only (np.memmap or np.load with mode 'r'): "
                             "the solver keeps what it derives from them, so they must not change.")
        arr = arr.view()  # keep the map: copying it is what mapping avoids
    else:
        single = to_float32("values", arr)
        if (arr.flags.writeable or _writable_base(arr)) and np.may_share_memory(single, arr):
            single = single.copy()  # a read-only view of a writable array changes when that array does
        arr = single.view()
    arr.flags.writeable = False  # outputs are immutable: solvers cache what they derive from them
    return arr


def _writable_base(arr: np.ndarray) -> bool:
    """Whether an array ``arr`` views (directly or through other views) can still be written."""
    base = arr.base
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return True
        base = base.base
    return False


def _check_names(names, n_sources) -> tuple:
    if names is None:
        return tuple(f"source_{i}" for i in range(n_sources))
    names = check_names("source_names", names)
    if len(names) != n_sources:
        raise InputError(f"source_names must have {n_sources} entries (one per row of values); got {len(names)}.")
    return names


def _check_labels(labels, kind, n_samples):
    if labels is None:
        if kind in ("binary", "mse"):
            raise InputError(f"labels are required for kind {kind!r}; got None.")
        return None
    if kind == "loglik":  # a loglik objective has no labels: given ones would be silently unused
        raise InputError("labels apply only to kinds 'binary' and 'mse'; kind 'loglik' scores each sample's own "
                         "log-probability. Drop labels (or pick the kind your outputs are).")
    arr = as_float_array("labels", labels, np.float32)
    if arr.ndim != 1:
        raise InputError(f"labels must be a 1-D array (one per sample); got {describe(labels)}.")
    check_shape("labels", arr, (n_samples,))
    check_finite("labels", arr)
    if kind == "binary" and not np.isin(arr, (0.0, 1.0)).all():
        bad = arr[~np.isin(arr, (0.0, 1.0))][:3].tolist()
        raise InputError(f"labels must be 0 or 1 for kind 'binary'; got values such as {bad}.")
    return arr


def _check_token_counts(counts, kind, n_samples):
    if counts is None:
        return None
    if kind != "loglik":
        raise InputError(f"token_counts apply only to kind 'loglik'; got kind {kind!r}.")
    arr = as_float_array("token_counts", counts, np.float32)
    check_shape("token_counts", arr, (n_samples,))
    check_finite("token_counts", arr)
    if (arr <= 0).any():
        raise InputError(f"token_counts must be positive; got minimum {arr.min():g}.")
    if (arr != np.round(arr)).any():  # a per-token loss divides by counts; 0.5 is a rate or a column mix-up
        at = int(np.flatnonzero(arr != np.round(arr))[0])
        raise InputError(f"token_counts must be whole numbers (tokens per sample); got {arr[at]:g} at sample {at}.")
    return arr


def _check_natural(natural, n_sources):
    if natural is None:
        return None
    arr = as_float_array("natural_weights", natural, booleans=False)
    check_shape("natural_weights", arr, (n_sources,))
    check_finite("natural_weights", arr)
    with np.errstate(over="ignore"):
        total = arr.sum()
    if (arr < 0).any() or not 0 < total < np.inf:
        raise InputError(f"natural_weights must be non-negative with a positive, finite sum; got minimum "
                         f"{arr.min():g} and sum {total:g}. "
                         "Only their proportions matter: divide them by their sum.")
    return (arr / arr.sum()).astype(np.float32)


#: Longest sample id: ids are kept (and saved) as fixed-width text, so one long id widens them all.
MAX_ID_CHARS = 256


def _check_ids(ids, n_samples):
    if ids is None:
        return None
    if isinstance(ids, (str, bytes)) or np.ndim(ids) != 1:
        raise InputError(f"sample_ids must be a list of ids, one per sample; got {describe(ids)}.")
    texts = [str(i) for i in ids]
    longest = max(map(len, texts), default=0)
    if longest > MAX_ID_CHARS:  # a fixed-width text array takes every id's room at the longest one's width
        raise InputError(f"sample_ids must be at most {MAX_ID_CHARS} characters each; the longest has {longest:,}. "
                         "Use short ids (a row number, a document id).")
    arr = np.asarray(texts)
    check_shape("sample_ids", arr, (n_samples,))
    return arr


def _check_values(values, kind):
    """Finiteness and the kind's value range, each error with what to do."""
    try:
        low, high = _value_range(values)
    except InputError as exc:
        if kind != "loglik" or "(-inf)" not in str(exc):
            raise
        raise InputError(f"{exc} A log-probability of -inf (a proxy that gives a sample probability 0) has no "
                         "finite loss; floor them first, e.g. np.maximum(values, -1e4).") from None
    noise = " (rounding noise? np.clip them first)"
    if kind == "binary" and (low < 0 or high > 1):
        raise InputError(f"values must be probabilities in [0, 1] for kind 'binary'; got range [{low:.9g}, {high:.9g}]"
                         f"{noise if low > -1e-3 and high < 1 + 1e-3 else ''}.")
    if kind == "loglik" and high > 0:
        raise InputError(f"values must be log-probabilities <= 0 for kind 'loglik'; got maximum {high:.9g}"
                         f"{noise if high < 1e-3 else ''}.")


def _value_range(values) -> tuple[float, float]:
    """The smallest and largest value, or an InputError naming a non-finite one; a map is read block by block."""
    if blocks.is_mapped(values):
        low, high = np.inf, -np.inf
        pages = blocks.PageReleaser(values)
        for cols in blocks.column_blocks(*values.shape, block_bytes=16 << 20):
            block = values[:, cols]
            if not np.isfinite(block).all():
                bad = np.argwhere(~np.isfinite(block))
                row, col = bad[0].tolist()
                raise InputError(f"values must be finite; found non-finite value(s), first at index "
                                 f"{(row, cols.start + col)} ({block[row, col].item()!r}).")
            low, high = min(low, float(block.min())), max(high, float(block.max()))
            pages.done(cols)
        pages.flush()
        return low, high
    check_finite("values", values)
    return float(values.min()), float(values.max())


#: Largest magnitude of an ``mse`` value or label whose squared errors are sure to fit in float32 (3.4e38): a
#: residual of two such is squared, and multiplied by a value for the gradient.
MSE_MAX_MAGNITUDE = 9e18


def check_mse_scale(outputs) -> None:
    """An InputError where an ``mse`` problem's squared errors could overflow float32. The solver itself takes
    such outputs and stops with status ``non_finite`` where the loss overflows; the Upload page refuses them."""
    if outputs.kind != "mse":
        return
    values, labels = float(np.abs(outputs.values).max(initial=0.0)), float(np.abs(outputs.labels).max(initial=0.0))
    if max(values, labels) > MSE_MAX_MAGNITUDE:
        which = "values" if values >= labels else "labels"
        raise InputError(f"{which} reach {max(values, labels):.3g} in magnitude; for kind 'mse' values and labels must "
                         f"be within ±{MSE_MAX_MAGNITUDE:.0e}, as squared errors are float32. Rescale both (e.g. "
                         "divide by the labels' standard deviation, after centring them).")
