"""Parse user-uploaded proxy outputs (the app's Upload page) without pickle and with a size limit.

Two formats are accepted:

- the saved ``ProxyOutputs`` pair ``<name>.npz`` + ``<name>.json`` (see :mod:`mixmin_core.solver.proxy_outputs`);
- a table (``.csv`` or ``.parquet``) with one row per target sample and one numeric column per
  source, plus optional columns ``label`` (binary / mse), ``token_count`` (loglik) and ``sample_id``.

Uploads come from whoever can open the app, so sizes are bounded before anything is expanded:
the bytes of each file and of the whole upload, and the uncompressed size of an ``.npz``'s
arrays (read from the zip and ``.npy`` headers, before any array is decompressed) or of a
Parquet file's columns (from its footer). The ``.npz`` must match its sidecar's checksum, as
``ProxyOutputs.load`` requires. Stored copies are compressed (:func:`save_compressed`).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import warnings
import zipfile
from pathlib import Path, PurePath

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver import proxy_outputs
from mixmin_core.solver.proxy_outputs import KINDS, ProxyOutputs
from mixmin_core.solver.validation import check_csv_header, check_new_names

#: Default upper bound on the bytes of one uploaded file (the app's ``maxUploadSize`` is the same 200 MB).
MAX_UPLOAD_BYTES = 200 << 20
#: Upper bound on the bytes of all files of one upload together.
MAX_TOTAL_BYTES = 200 << 20
#: Upper bound on the uncompressed arrays of one upload (an ``.npz``'s members, a Parquet's columns):
#: 256 MB holds 2,000 sources x 30,000 samples in float32.
MAX_EXPANDED_BYTES = 256 << 20
#: Most the stored uploads (``<store>/uploads``) may take on disk together.
MAX_STORED_UPLOADS_BYTES = 2 << 30
MAX_FILES = 2
MAX_SIDECAR_BYTES = 10 << 20
#: Most columns a table upload may have (5,000 sources took the Solver about 0.3 s; 100,000 names took 20 s to read).
MAX_COLUMNS = 20_000
LABEL_COLUMNS = ("label", "labels", "y")
TOKEN_COLUMNS = ("token_count", "token_counts", "n_tokens")
ID_COLUMNS = ("sample_id", "id")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def parse_upload(files: list[tuple[str, bytes]], *, kind: str = "auto", max_bytes: int = MAX_UPLOAD_BYTES,
                 max_expanded: int = MAX_EXPANDED_BYTES) -> ProxyOutputs:
    """Build ``ProxyOutputs`` from uploaded files given as ``(file_name, content)`` pairs.

    Parameters
    ----------
    files : one table (``.csv``/``.parquet``), or an ``.npz`` and its ``.json`` sidecar.
    kind : ``"auto"`` or one of ``binary``, ``loglik``, ``mse``. For tables, ``auto`` picks
        ``binary`` when the labels are 0/1 and every value is in [0, 1], ``mse`` for other labels (0/1 labels
        with other values are refused: logits or percentages?), and ``loglik`` without labels. Ignored for
        ``.npz`` (the sidecar says).
    max_bytes : largest accepted file size; all files together get at most :data:`MAX_TOTAL_BYTES`.
    max_expanded : largest accepted uncompressed size of the arrays (``.npz``) or columns (Parquet).

    Raises
    ------
    InputError
        For a missing, oversized or unreadable file, too many files, arrays that would expand
        past ``max_expanded``, an ``.npz`` that does not match its sidecar's checksum, an unknown
        format, or outputs that fail ``ProxyOutputs`` validation; the message names the file and
        says what was expected.
    """
    if kind != "auto" and kind not in KINDS:
        raise InputError(f"kind must be 'auto' or one of {KINDS}; got {kind!r}.")
    if not files:
        raise InputError("no file uploaded; upload a .csv/.parquet table, or an .npz with its .json sidecar.")
    names = [n for n, _ in files]
    if len(files) > MAX_FILES:
        raise InputError(f"{len(files)} files uploaded ({names[:5]}); upload one .csv or .parquet table, "
                         "or one .npz with its .json sidecar.")
    for name, data in files:
        if len(data) > max_bytes:
            raise InputError(f"{name}: {len(data) / 2**20:.1f} MB is over the {max_bytes / 2**20:.0f} MB upload limit; "
                             "save fewer samples or sources, or load the file with the library instead.")
    total = sum(len(data) for _, data in files)
    if total > MAX_TOTAL_BYTES:
        raise InputError(f"{names}: {total / 2**20:.1f} MB together is over the {MAX_TOTAL_BYTES / 2**20:.0f} MB "
                         "limit of one upload.")
    suffixes = [PurePath(n).suffix.lower() for n in names]
    if ".npz" in suffixes or ".json" in suffixes:
        if sorted(suffixes) not in ([".json", ".npz"], [".npz"], [".json"]):
            raise InputError(f"unsupported upload {names}; the .npz format is one .npz file with its .json sidecar.")
        outputs = _parse_npz_pair(dict(zip(suffixes, files)), max_expanded)
    else:
        tables = [(n, d) for n, d in files if PurePath(n).suffix.lower() in TABLE_SUFFIXES]
        if len(files) != 1 or not tables:
            raise InputError(f"unsupported upload {names}; expected one .csv or .parquet table, "
                             "or an .npz file together with its .json sidecar"
                             + (" (remove the others from the uploader: it keeps every file dropped on it)."
                                if len(files) > 1 else "."))
        outputs = parse_table(*tables[0], kind=kind, max_expanded=max_expanded)
    try:  # the Solver would show loss inf and stop: say why here
        proxy_outputs.check_mse_scale(outputs)
        check_new_names("source names", outputs.source_names)
        _check_unique_ids(outputs.sample_ids)
    except InputError as exc:
        raise InputError(f"{names[0]}: {exc}") from None
    return outputs


def _check_unique_ids(ids) -> None:
    """An upload names each sample once (one id, two samples: which would a result name?). Not a rule of
    ProxyOutputs itself: a bootstrap resample repeats samples, ids and all."""
    if ids is not None:
        values, counts = np.unique(np.asarray(ids), return_counts=True)
        if (counts > 1).any():
            raise InputError(f"sample ids must name each sample once; {str(values[counts > 1][0])[:60]!r} is repeated.")


def _parse_npz_pair(by_suffix: dict, max_expanded: int) -> ProxyOutputs:
    if ".npz" not in by_suffix or ".json" not in by_suffix:
        have = next(iter(by_suffix.values()))[0]
        raise InputError(f"{have}: the .npz format needs both files, the .npz arrays and the .json sidecar "
                         "written by ProxyOutputs.save; upload them together.")
    npz_name, npz_bytes = by_suffix[".npz"]
    json_name, json_bytes = by_suffix[".json"]
    if len(json_bytes) > MAX_SIDECAR_BYTES:
        raise InputError(f"{json_name}: {len(json_bytes) / 2**20:.1f} MB is too large for a sidecar "
                         f"(at most {MAX_SIDECAR_BYTES >> 20} MB).")
    try:
        sidecar = json.loads(json_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{json_name}: not valid JSON (not UTF-8 text).") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{json_name}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from None
    except (RecursionError, ValueError):  # nested thousands deep, or an integer of thousands of digits
        raise InputError(f"{json_name}: not a sidecar written by ProxyOutputs.save (nested too deeply, or a "
                         "number too long to read).") from None
    if not isinstance(sidecar, dict) or "kind" not in sidecar:
        raise InputError(f"{json_name}: expected a JSON object with at least 'kind' and 'source_names'; "
                         f"got {type(sidecar).__name__} without 'kind'.")
    expected = sidecar.get("sha256")
    if not isinstance(expected, str) or not expected:
        raise InputError(f"{json_name}: missing 'sha256' checksum field; upload the .json that ProxyOutputs.save "
                         f"wrote next to {npz_name}.")
    actual = hashlib.sha256(npz_bytes).hexdigest()
    if actual != expected:
        raise InputError(f"{npz_name}: checksum mismatch with {json_name} (the .npz is truncated or altered, or the "
                         f"sidecar belongs to another file); expected sha256 {expected[:12]}..., got {actual[:12]}....")
    check_npz_size(npz_name, npz_bytes, max_expanded)
    names = sidecar.get("source_names")
    if isinstance(names, list) and len(names) > MAX_COLUMNS:  # each Solver setting's solve is kept per source
        raise InputError(f"{npz_name}: {len(names):,} sources is over the {MAX_COLUMNS:,} the upload page takes; "
                         "solve larger problems with the Python API.")
    return ProxyOutputs.from_npz_bytes(npz_bytes, sidecar, source=npz_name)


def check_npz_size(name: str, data: bytes, max_expanded: int = MAX_EXPANDED_BYTES) -> int:
    """The uncompressed bytes of the ``.npz`` in ``data``, read from its zip and ``.npy`` headers only.

    Each member's declared size must match its ``.npy`` header (shape x item size), so neither
    header can understate what decompression or ``np.load`` would allocate; object arrays are
    refused (they would need pickle).

    Raises
    ------
    InputError
        If ``data`` is not a zip of ``.npy`` members, a header is inconsistent, or the total
        exceeds ``max_expanded``; before any array is decompressed.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > 16:
                raise InputError(f"{name}: {len(members)} arrays in the archive; a proxy-outputs .npz holds at most 5.")
            total = sum(m.file_size for m in members)
            if total > max_expanded:
                raise InputError(f"{name}: its arrays would take {total / 2**20:,.0f} MB uncompressed, over the "
                                 f"{max_expanded / 2**20:,.0f} MB limit; upload fewer sources or samples.")
            for member in members:
                _check_npy_header(name, archive, member)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{name}: cannot read arrays ({exc}).") from None
    return total


def _check_npy_header(name: str, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    if not member.filename.endswith(".npy"):
        raise InputError(f"{name}: unexpected member {member.filename[:60]!r}; an .npz holds .npy arrays only.")
    try:
        with archive.open(member) as fh:  # decompresses only the few bytes of the header
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            header_bytes = fh.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
        raise InputError(f"{name}: array {member.filename[:60]!r} has no valid .npy header ({exc}).") from None
    if dtype.hasobject:
        raise InputError(f"{name}: array {member.filename[:60]!r} holds Python objects; cannot read arrays that need "
                         "pickle. Save numeric arrays.")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
    if header_bytes + nbytes != member.file_size:
        raise InputError(f"{name}: array {member.filename[:60]!r} declares {nbytes:,} bytes of data but the archive "
                         f"says {member.file_size - header_bytes:,}; the file is corrupt or altered.")


def _check_room(used: int, size: int, limit: int | None = None) -> None:
    """Refuse an upload of ``size`` bytes that would take the store's uploads (``used`` bytes besides it) past
    :data:`MAX_STORED_UPLOADS_BYTES` (visitors could otherwise fill the disk, one 200 MB upload at a time)."""
    limit = MAX_STORED_UPLOADS_BYTES if limit is None else limit
    if used + size > limit:
        raise InputError(f"the run store's uploads take {used / 2**20:,.0f} MB and this one {size / 2**20:,.1f} MB, over "
                         f"the {limit / 2**20:,.0f} MB they may use; delete old uploads (on this page, under \"Uploads kept "
                         "in the run store\").")


def save_compressed(outputs: ProxyOutputs, path: str | Path) -> Path:
    """``outputs.save(path, compress=True)``, kept only if the store's uploads have room for it (else both files
    are removed and an InputError says so); returns the ``.npz`` path."""
    npz_path = outputs.save(path, compress=True)
    written = [npz_path, npz_path.with_suffix(".json")]
    try:
        others = [p for p in npz_path.parent.glob("*") if p.is_file() and p not in written]
        _check_room(sum(p.stat().st_size for p in others), sum(p.stat().st_size for p in written))
    except InputError:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return npz_path


def _special_column(name: str, frame, candidates: tuple, what: str):
    """The one column (named as in ``candidates``, any case) holding the ``what``, or None; two are an error."""
    found = [c for c in frame.columns if str(c).strip().lower() in candidates]
    if len(found) > 1:
        raise InputError(f"{name}: columns {[str(c) for c in found]} could each be the {what}; keep one of them.")
    return found[0] if found else None


def parse_table(name: str, data: bytes, *, kind: str = "auto", max_expanded: int = MAX_EXPANDED_BYTES) -> ProxyOutputs:
    """``ProxyOutputs`` from a CSV/Parquet table (one row per sample, one column per source)."""
    from pandas.api.types import is_numeric_dtype

    frame = _read_table(name, data, max_expanded)
    label_col = _special_column(name, frame, LABEL_COLUMNS, "labels")
    token_col = _special_column(name, frame, TOKEN_COLUMNS, "token counts")
    id_col = _special_column(name, frame, ID_COLUMNS, "sample ids")
    source_cols = [c for c in frame.columns if c not in (label_col, token_col, id_col)]
    non_numeric = [str(c)[:60] for c in source_cols if not is_numeric_dtype(frame[c].dtype)]
    if non_numeric:
        raise InputError(f"{name}: source columns must be numeric; non-numeric: {non_numeric[:5]}. "
                         f"Other columns may only be {LABEL_COLUMNS[0]!r}, {TOKEN_COLUMNS[0]!r} or {ID_COLUMNS[0]!r}."
                         + _separator_hint(frame.columns))
    first = frame.columns[0]  # pandas' to_csv writes the row index first, by default: it read as one more source
    rows = frame[first].to_numpy()
    unnamed = str(first).startswith("Unnamed:")
    if first in source_cols and (unnamed or (len(rows) >= 3 and (np.array_equal(rows, np.arange(len(rows)))
                                                                 or np.array_equal(rows, np.arange(1, len(rows) + 1))))):
        raise InputError(f"{name}: its first column {str(first)!r} " + ("has no name in the header" if unnamed else
                         "holds the row numbers") + " (a saved row index, as pandas' to_csv writes by default), not a "
                         f"source's outputs: drop it (to_csv(..., index=False)), or name it {ID_COLUMNS[0]!r}.")
    blank = [i for i, c in enumerate(frame.columns) if str(c).startswith("Unnamed:") and c != first]
    if blank:  # "a,,label": the empty header read as a source called "Unnamed: 1"
        raise InputError(f"{name}: column {blank[0] + 1} has no name in the header; name it (or drop it).")
    if len(source_cols) < 2:
        raise InputError(f"{name}: need at least two source columns besides label/token_count/sample_id; "
                         f"got {[str(c)[:60] for c in source_cols]}.")
    for col, what in ((label_col, "labels (0/1 for binary, numbers for mse)"), (token_col, "token counts")):
        if col is not None and not is_numeric_dtype(frame[col].dtype):
            examples = [str(v)[:20] for v in frame[col].dropna().unique()[:3]]
            raise InputError(f"{name}: column {str(col)!r} must hold numeric {what}; got values such as {examples}. "
                             "Write labels as 0 and 1.")
    block = frame[source_cols].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(block)
    if bad.any():  # here, where the column and the row can be named (the matrix only knows indices)
        row, col = np.argwhere(bad)[0]
        raise InputError(f"{name}: column {str(source_cols[col])!r} has {int(bad[:, col].sum())} empty or non-finite "
                         f"cell(s), the first in data row {row + 1} ({block[row, col]}); every source needs a number "
                         "for every sample.")
    values = block.T  # float64: ProxyOutputs says so if a value does not fit in float32 (cast, it read "inf")
    if id_col is not None and frame[id_col].isna().any():  # read as 'nan' (or a float that broke the checks below)
        row = int(np.flatnonzero(frame[id_col].isna().to_numpy())[0])
        raise InputError(f"{name}: column {str(id_col)!r} has {int(frame[id_col].isna().sum())} empty cell(s), the first "
                         f"in data row {row + 1}; give every sample an id, or drop the column"
                         + (" (a CSV reader takes ids such as NA, N/A, NULL, None or nan for empty cells: rename such "
                            "ids)." if name.lower().endswith(".csv") else "."))
    try:
        ids = None if id_col is None else frame[id_col].astype(str)
    except UnicodeDecodeError:  # bytes that are no text (raw UUID bytes): it was a traceback
        raise InputError(f"{name}: column {str(id_col)!r} holds binary values that are not text; write the sample "
                         "ids as text (a UUID as a UUID type or as its 36-character string).") from None
    longest = 0 if ids is None else int(ids.str.len().max())
    if len(frame) * longest * 4 > max_expanded:  # ids are kept as fixed-width text
        raise InputError(f"{name}: its {len(ids):,} sample ids, up to {longest:,} characters "
                         f"long, would take over the {max_expanded / 2**20:,.0f} MB limit; use short ids.")
    try:
        if kind == "auto":
            kind = _guess_kind(values, None if label_col is None else frame[label_col].to_numpy())
        if kind in ("binary", "mse") and label_col is None:  # "labels are required" named no column
            raise InputError(f"objective {kind} needs the labels in a column named one of "
                             f"{', '.join(repr(c) for c in LABEL_COLUMNS)}; the columns are "
                             f"{[str(c) for c in frame.columns][:8]}.")
        if kind == "loglik" and label_col is not None:  # the library's "drop labels" named no column
            raise InputError(f"objective loglik scores each sample's own log-likelihood and takes no labels, but the "
                             f"table has a label column, {str(label_col)!r}: pick binary or mse for labelled outputs, "
                             "or remove that column.")
        return ProxyOutputs(
            values, kind, source_names=[str(c) for c in source_cols],
            labels=None if label_col is None else frame[label_col].to_numpy(),
            token_counts=None if token_col is None else frame[token_col].to_numpy(),  # for loglik only: said
            sample_ids=None if ids is None else ids.to_numpy(),
            meta={"dataset": f"upload {name}"},
        )
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None


def upload_name(files: list[tuple[str, bytes]], kind: str) -> str:
    """The stored name of an upload read as objective ``kind``: the first file's name and a digest of the
    bytes and the kind (the same file read as another objective is another problem, not the first one reused)."""
    from mixmin_core.runs.layout import safe_name

    files = sorted(files)  # an .npz and its .json are one upload in either order
    digest = hashlib.sha256(kind.encode() + b"".join(b"\0" + hashlib.sha256(data).digest() for _, data in files))
    return f"{safe_name(files[0][0].rsplit('.', 1)[0])[:40]}-{digest.hexdigest()[:12]}"


def _read_table(name: str, data: bytes, max_expanded: int = MAX_EXPANDED_BYTES):
    import pandas as pd

    suffix = PurePath(name).suffix.lower()
    try:
        if suffix == ".csv":
            _check_csv_size(name, data, max_expanded)
            with warnings.catch_warnings():  # a row longer than the header: pandas would drop or shift a column
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(io.BytesIO(data), index_col=False)
        elif suffix in (".parquet", ".pq"):
            _check_parquet_size(name, data, max_expanded)
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            raise InputError(f"{name}: unsupported table format {suffix!r}; use .csv or .parquet.")
    except InputError:
        raise
    except pd.errors.ParserWarning:  # ";"-separated with decimal commas: "0,5;0,2" splits into more fields
        raise InputError(f"{name}: its data rows have more fields than its header has names; give every column a "
                         "name (one per source, plus label, token_count or sample_id)."
                         + _separator_hint(data.split(b"\n", 1)[0].decode("utf-8", "replace").split(","))) from None
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise InputError(f"{name}: cannot read it as {suffix.lstrip('.')} ({type(exc).__name__}: {str(exc)[:200]}).") from None
    if frame.empty:
        raise InputError(f"{name}: the table has no rows; expected one row per target sample.")
    if suffix == ".csv":
        check_csv_header(name, io.BytesIO(data))
    return frame


def _check_parquet_size(name: str, data: bytes, max_expanded: int) -> None:
    """Refuse a Parquet file whose columns would expand past ``max_expanded``, from its footer,
    before reading: 8 bytes per cell (dictionary/RLE encoding makes repeated values tiny on disk
    whatever the compression), plus the encoded pages; a column of lists (60 M zeros in one 1 KB cell), and
    text longer than a sample id (one 1 MB string in a dictionary, written out for each of 3,000 rows: 3 GB
    from a 1.4 KB file), are refused before they are expanded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(io.BytesIO(data))
    meta = file.metadata
    _check_columns(name, meta.num_columns)
    nested = [f.name for f in file.schema_arrow if pa.types.is_nested(f.type)]
    if nested:
        raise InputError(f"{name}: column {nested[0][:60]!r} holds lists or records; an upload's columns hold one "
                         "number (or one sample id) per row.")
    encoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    # a text column (sample ids) at the longest id ProxyOutputs takes: a dictionary holds one long id in a
    # few bytes on disk, and reading it writes it out for every row
    columns = [meta.schema.column(j) for j in range(meta.num_columns)]
    fixed = [c for c in columns if c.physical_type == "FIXED_LEN_BYTE_ARRAY"]  # a UUID id: 16 bytes a cell
    wide = next((c for c in fixed if c.length > 4 * proxy_outputs.MAX_ID_CHARS), None)
    if wide is not None:  # a fixed-size binary cell of any length (100 KB): longer than any sample id
        raise InputError(f"{name}: column {wide.path[:60]!r} holds binary values of {wide.length:,} bytes; an upload's "
                         "columns hold one number (or one sample id) per row.")
    texts = sum(c.physical_type == "BYTE_ARRAY" for c in columns)
    total = meta.num_rows * (meta.num_columns * 8 + texts * proxy_outputs.MAX_ID_CHARS + sum(c.length for c in fixed)) \
        + encoded
    if total > max_expanded:
        raise InputError(f"{name}: its {meta.num_rows:,} rows x {meta.num_columns} columns would take "
                         f"{total / 2**20:,.0f} MB in memory, over the {max_expanded / 2**20:,.0f} MB limit; "
                         "upload fewer sources or samples.")
    if texts:
        _check_parquet_texts(name, data, [c.path for c in columns if c.physical_type == "BYTE_ARRAY"])


def _check_parquet_texts(name: str, data: bytes, columns: list[str]) -> None:
    """Refuse text cells longer than a sample id, reading the text columns as dictionaries (each distinct value
    once: no larger in memory than the pages the footer counted)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data), columns=columns, read_dictionary=columns)
    for column in columns:
        for chunk in table.column(column).chunks:
            values = chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk
            longest = pc.max(pc.binary_length(values)).as_py() or 0
            if longest > 4 * proxy_outputs.MAX_ID_CHARS:  # UTF-8: up to 4 bytes a character
                raise InputError(f"{name}: column {column[:60]!r} holds a text of {longest:,} bytes; sample ids are at "
                                 f"most {proxy_outputs.MAX_ID_CHARS} characters, and other columns hold numbers.")


def _check_columns(name: str, columns: int) -> None:
    if columns > MAX_COLUMNS:  # reading and checking every name takes time however few the rows
        raise InputError(f"{name}: {columns:,} columns is over the {MAX_COLUMNS:,} the upload page takes (one per source, "
                         "plus label, token_count and sample_id); solve larger problems with the Python API.")


def _check_csv_size(name: str, data: bytes, max_expanded: int) -> None:
    """Refuse a CSV whose cells would take more than ``max_expanded`` as numbers (8 bytes each), counted from
    its lines and header before pandas reads it (the .npz and Parquet limit; a CSV escaped it)."""
    # lines end in \n, \r\n or a lone \r (pandas reads all three); a quoted line break overcounts: on the safe side
    rows = max(data.count(b"\n"), data.count(b"\r")) + (not data.endswith((b"\n", b"\r")))
    try:  # the header as the CSV reader sees it: a quoted line break in a name must not hide columns
        columns = len(next(csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace",
                                                       newline="")), []))
    except csv.Error:
        columns = data.count(b",") + 1  # unreadable: the most it could hold
    columns = max(columns, 1)
    _check_columns(name, columns)
    total = rows * columns * 8 + len(data)
    if total > max_expanded:
        raise InputError(f"{name}: its {rows:,} lines x {columns} columns would take {total / 2**20:,.0f} MB in "
                         f"memory, over the {max_expanded / 2**20:,.0f} MB limit; upload fewer sources or samples.")


def _guess_kind(values: np.ndarray, labels) -> str:
    """``auto``: binary for probabilities with 0/1 labels, mse for other labels (0/1 labels with other values are
    refused), loglik without labels."""
    if labels is None:
        if np.nanmax(values, initial=0.0) > 0:
            nll = ("" if np.nanmin(values) < 0 else " The values are in [0, 1]: probabilities? Name the label column "
                   "one of those." if np.nanmax(values) <= 1 else " Every value is >= 0: negative log-likelihoods? "
                   "Negate them.")
            raise InputError(f"no label column ({', '.join(repr(c) for c in LABEL_COLUMNS)}) was found, so the table "
                             "reads as log-likelihoods (loglik, values <= 0), but some values are above 0." + nll
                             + " Add the labels as a column for binary or mse outputs, or pick the objective.")
        return "loglik"
    finite = values[np.isfinite(values)]
    in_unit = finite.size > 0 and finite.min() >= 0 and finite.max() <= 1
    zero_one = bool(np.isin(np.asarray(labels, dtype=np.float64), (0.0, 1.0)).all())
    fits = finite.size == 0 or np.abs(finite).max() <= np.finfo(np.float32).max  # else ProxyOutputs says so
    if zero_one and not in_unit and fits:  # logits or percentages were solved as a regression, unremarked
        raise InputError(f"the labels are 0 and 1 but the values are not probabilities (they range from "
                         f"{finite.min():.8g} to {finite.max():.8g}): logits or percentages? Give P(y=1) (a sigmoid "
                         "of logits, percentages / 100), or pick the objective mse to fit them as numbers.")
    return "binary" if in_unit and zero_one else "mse"


def _separator_hint(columns) -> str:
    """For a header read as one or a few names holding ';' or tabs: say how the file is separated."""
    for sep, shown in ((";", "';'"), ("\t", "tab")):
        if any(sep in str(c) for c in columns):
            return f" The header holds {shown} characters: the file looks {shown}-separated; save it with commas."
    return ""
