"""Parse user-uploaded proxy outputs (the app's Upload page) without pickle and with a size limit.

Two formats are accepted:

- the saved ``ProxyOutputs`` pair ``<name>.npz`` + ``<name>.json`` (see :mod:`mixmin_core.solver.proxy_outputs`);
- a table (``.csv`` or ``.parquet``) with one row per target sample and one numeric column per
  source, plus optional columns ``label`` (binary / mse), ``token_count`` (loglik) and ``sample_id``.
"""
from __future__ import annotations

import io
import json
from pathlib import PurePath

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.solver.proxy_outputs import KINDS, ProxyOutputs

#: Default upper bound on the bytes of one upload (the app's ``maxUploadSize`` is the same 200 MB).
MAX_UPLOAD_BYTES = 200 << 20
LABEL_COLUMNS = ("label", "labels", "y")
TOKEN_COLUMNS = ("token_count", "token_counts", "n_tokens")
ID_COLUMNS = ("sample_id", "id")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def parse_upload(files: list[tuple[str, bytes]], *, kind: str = "auto",
                 max_bytes: int = MAX_UPLOAD_BYTES) -> ProxyOutputs:
    """Build ``ProxyOutputs`` from uploaded files given as ``(file_name, content)`` pairs.

    Parameters
    ----------
    files : one table (``.csv``/``.parquet``), or an ``.npz`` and its ``.json`` sidecar.
    kind : ``"auto"`` or one of ``binary``, ``loglik``, ``mse``. For tables, ``auto`` picks
        ``binary`` when a label column is present and every value is in [0, 1], ``mse`` with a
        label column otherwise, and ``loglik`` without one. Ignored for ``.npz`` (the sidecar says).
    max_bytes : largest accepted file size.

    Raises
    ------
    InputError
        For a missing, oversized or unreadable file, an unknown format, or outputs that fail
        ``ProxyOutputs`` validation; the message names the file and says what was expected.
    """
    if kind != "auto" and kind not in KINDS:
        raise InputError(f"kind must be 'auto' or one of {KINDS}; got {kind!r}.")
    if not files:
        raise InputError("no file uploaded; upload a .csv/.parquet table, or an .npz with its .json sidecar.")
    for name, data in files:
        if len(data) > max_bytes:
            raise InputError(f"{name}: {len(data) / 2**20:.1f} MB is over the {max_bytes / 2**20:.0f} MB upload limit; "
                             "save fewer samples or sources, or load the file with the library instead.")
    by_suffix = {PurePath(name).suffix.lower(): (name, data) for name, data in files}
    if ".npz" in by_suffix or ".json" in by_suffix:
        return _parse_npz_pair(by_suffix)
    tables = [(n, d) for n, d in files if PurePath(n).suffix.lower() in TABLE_SUFFIXES]
    if len(files) != 1 or not tables:
        names = [n for n, _ in files]
        raise InputError(f"unsupported upload {names}; expected one .csv or .parquet table, "
                         "or an .npz file together with its .json sidecar.")
    return parse_table(*tables[0], kind=kind)


def _parse_npz_pair(by_suffix: dict) -> ProxyOutputs:
    if ".npz" not in by_suffix or ".json" not in by_suffix:
        have = next(iter(by_suffix.values()))[0]
        raise InputError(f"{have}: the .npz format needs both files, the .npz arrays and the .json sidecar "
                         "written by ProxyOutputs.save; upload them together.")
    npz_name, npz_bytes = by_suffix[".npz"]
    json_name, json_bytes = by_suffix[".json"]
    try:
        sidecar = json.loads(json_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{json_name}: not valid JSON ({exc}).") from None
    if not isinstance(sidecar, dict) or "kind" not in sidecar:
        raise InputError(f"{json_name}: expected a JSON object with at least 'kind' and 'source_names'; "
                         f"got {type(sidecar).__name__} without 'kind'.")
    return ProxyOutputs.from_npz_bytes(npz_bytes, sidecar, source=npz_name)


def parse_table(name: str, data: bytes, *, kind: str = "auto") -> ProxyOutputs:
    """``ProxyOutputs`` from a CSV/Parquet table (one row per sample, one column per source)."""
    from pandas.api.types import is_numeric_dtype

    frame = _read_table(name, data)
    lower = {str(c).strip().lower(): c for c in frame.columns}
    label_col = next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
    token_col = next((lower[c] for c in TOKEN_COLUMNS if c in lower), None)
    id_col = next((lower[c] for c in ID_COLUMNS if c in lower), None)
    source_cols = [c for c in frame.columns if c not in (label_col, token_col, id_col)]
    non_numeric = [str(c) for c in source_cols if not is_numeric_dtype(frame[c].dtype)]
    if non_numeric:
        raise InputError(f"{name}: source columns must be numeric; non-numeric: {non_numeric[:5]}. "
                         f"Other columns may only be {LABEL_COLUMNS[0]!r}, {TOKEN_COLUMNS[0]!r} or {ID_COLUMNS[0]!r}.")
    if len(source_cols) < 2:
        raise InputError(f"{name}: need at least two source columns besides label/token_count/sample_id; "
                         f"got {[str(c) for c in source_cols]}.")
    values = frame[source_cols].to_numpy(dtype=np.float32).T
    if kind == "auto":
        kind = _guess_kind(values, label_col is not None)
    try:
        return ProxyOutputs(
            values, kind, source_names=[str(c) for c in source_cols],
            labels=None if label_col is None else frame[label_col].to_numpy(),
            token_counts=None if token_col is None or kind != "loglik" else frame[token_col].to_numpy(),
            sample_ids=None if id_col is None else frame[id_col].astype(str).to_numpy(),
            meta={"dataset": f"upload {name}"},
        )
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None


def _read_table(name: str, data: bytes):
    import pandas as pd

    suffix = PurePath(name).suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(io.BytesIO(data))
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            raise InputError(f"{name}: unsupported table format {suffix!r}; use .csv or .parquet.")
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise InputError(f"{name}: cannot read it as {suffix.lstrip('.')} ({type(exc).__name__}: {exc}).") from None
    if frame.empty:
        raise InputError(f"{name}: the table has no rows; expected one row per target sample.")
    return frame


def _guess_kind(values: np.ndarray, has_labels: bool) -> str:
    if not has_labels:
        return "loglik"
    finite = values[np.isfinite(values)]
    in_unit = finite.size > 0 and finite.min() >= 0 and finite.max() <= 1
    return "binary" if in_unit else "mse"
