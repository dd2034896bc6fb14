"""Multi-assay label tables (MoleculeNet layout) and assay metadata.

A table has one SMILES column and one column per assay holding 1 (active), 0 (inactive) or
empty (not tested). Each assay is one MixMin source: the molecules it labels. Loaders:

* :func:`load_assay_table` — any CSV / CSV.gz / Parquet in that layout (ToxCast, MUV, Tox21, user files);
* :func:`load_pcba128` — MoleculeNet ``pcba.csv.gz`` (``PCBA-<AID>`` columns, ``mol_id``, ``smiles``);
* :func:`load_pcba1328` — Graphium PCBA-1328 (``SMILES``, ``assayID-<AID>`` columns, ``CID``, ``SID``),
  by default its first 100,000 molecules as in the MixMin paper;
* :func:`load_assay_metadata` / :func:`join_metadata` — titles and categories for the app.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.runs.layout import check_target_names
from mixmin_core.solver.validation import (
    check_csv_header,
    check_new_names,
    check_number,
)

log = logging.getLogger("mixmin.chem")

MISSING = -1  # label code for "not tested"
TRAIN_SUFFIX = "@train"  # a source named <target>@train is that target's own fit + validation rows
PARQUET_SUFFIXES = (".parquet", ".pq")
_AID = re.compile(r"(?:PCBA-|assayID-|AID)?(\d+)$")


@dataclass(frozen=True, eq=False)
class AssayTable:
    """Molecules x assays labels.

    Attributes
    ----------
    smiles : (n_molecules,) object array of str.
    labels : (n_molecules, n_assays) int8: 1 active, 0 inactive, -1 not tested.
    assays : tuple of str, the assay (source) names in column order.
    path : the file it was read from.
    """

    smiles: np.ndarray
    labels: np.ndarray
    assays: tuple
    path: str = ""
    ignored: tuple = ()  # the table's columns left out by ignore_columns (a target named there is said to be)

    @property
    def n_molecules(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_assays(self) -> int:
        return int(self.labels.shape[1])

    def index(self, assay: str) -> int:
        try:
            return self.assays.index(assay)
        except ValueError:
            if str(assay).lower() in {str(c).lower() for c in self.ignored}:
                raise InputError(f"assay {assay!r} is a column of {self.path} listed in ignore_columns, so it is not "
                                 "read as an assay; remove it from ignore_columns to use it.") from None
            raise InputError(unknown_assay_message(assay, self.assays, self.path)) from None

    def select(self, assays: Sequence[str]) -> AssayTable:
        """The same molecules with only ``assays`` (in that order)."""
        idx = [self.index(a) for a in assays]
        return AssayTable(self.smiles, np.ascontiguousarray(self.labels[:, idx]), tuple(assays), self.path,
                          self.ignored)


def unknown_assay_message(assay, assays, path="") -> str:
    import difflib

    same = [a for a in assays if unicodedata.normalize("NFC", str(a)) == unicodedata.normalize("NFC", str(assay))]
    by_case = {str(a).casefold(): str(a) for a in assays}  # pcba-1030 finds PCBA-1030
    close = [by_case[c] for c in difflib.get_close_matches(str(assay).casefold(), list(by_case), n=5, cutoff=0.6)]
    hint = (f" The table's {same[0]!r} looks the same but encodes its accented letters otherwise (Unicode NFC and "
            "NFD, as some editors save them): copy the name from the table, or save both files the same way."
            if same else f" Similar names: {close}." if close else f" First assays: {list(assays[:5])}.")
    where = f" in {path}" if path else ""
    return f"assay {assay!r} does not exist{where} ({len(assays)} assays).{hint}"


# ---------------------------------------------------------------------------- reading

def _read_frame(path: Path, max_molecules: int = 0):
    """Read a CSV (optionally gzipped) or Parquet file into a DataFrame (first ``max_molecules`` rows)."""
    import pandas as pd

    if not path.exists():
        raise InputError(f"{path}: file not found; expected a CSV, CSV.gz or Parquet table in the MoleculeNet layout.")
    magic = b""
    try:
        with open(path, "rb") as f:  # by content, so a gzip or Parquet file under another name reads too
            magic = f.read(4)
        if path.suffix.lower() in PARQUET_SUFFIXES or magic == b"PAR1":
            frame = _read_parquet_head(path, max_molecules)
        else:
            compression = _compression(path, magic)
            frame = pd.read_csv(path, nrows=max_molecules or None, low_memory=False, compression=compression)
            check_csv_header(str(path), path, compression)
        return frame
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt or non-table files
        utf16 = " It is UTF-16 text (Excel's \"Unicode Text\"): save it as \"CSV UTF-8\"." if magic[:2] in (
            b"\xff\xfe", b"\xfe\xff") else ""
        raise InputError(
            f"{path}: cannot read the table ({type(exc).__name__}: {str(exc)[:200]}); expected a CSV, CSV.gz "
            f"or Parquet file with a 'smiles' column and one 0/1 column per assay.{utf16}"
        ) from None


def _compression(path: Path, magic: bytes) -> str | None:
    """How a CSV is compressed, by its first bytes where they tell: a plain CSV saved as ``tox21.csv.gz`` (the
    registry's name for chemprop's plain ``tox21.csv``) is read as it is, a gzip under any name unzipped."""
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    return None if path.suffix.lower() == ".gz" else "infer"


def sniff_format(path, ignore_columns=()) -> str:
    """The layout a table file's header says it has: ``pcba128`` (``PCBA-<AID>`` columns), ``pcba1328``
    (``assayID-<AID>``) or ``moleculenet``; a file that cannot be read is left to the reader's error.
    ``ignore_columns`` are ids of one's own beside the layout's (an ``inchikey``)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():  # a device such as /dev/zero reads forever (its reader refuses it)
        return "moleculenet"
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if path.suffix.lower() in PARQUET_SUFFIXES or magic == b"PAR1":
            import pyarrow.parquet as pq

            columns = pq.read_schema(path).names
        else:
            columns = pd.read_csv(path, nrows=0, compression=_compression(path, magic)).columns
    except Exception:  # noqa: BLE001 - reading it for real says what is wrong
        return "moleculenet"
    ids = _PCBA_IDS | {str(c).lower() for c in ignore_columns}
    for fmt, prefix in (("pcba1328", "assayID-"), ("pcba128", "PCBA-")):
        # every column the layout's (its assays, and ids such as a saved index): a table of one's own that holds
        # one PCBA-<AID> assay beside its own keeps them all
        if any(str(c).startswith(prefix) for c in columns) and all(
                str(c).startswith(prefix) or str(c).lower() in ids for c in columns):
            return fmt
    return "moleculenet"


def _some_columns(columns) -> str:
    """The first 8 column names for a message, each cut to 40 characters (a header of semicolons is one long name)."""
    names = [c if len(c) <= 40 else c[:37] + "..." for c in map(str, columns[:8])]
    return f"{names}{'...' if len(columns) > 8 else ''}"


#: Columns of PCBA files that are no assay (lower case): MoleculeNet's and Graphium's ids, a saved pandas index.
_PCBA_IDS = {"smiles", "mol_id", "cid", "sid", "unnamed: 0", "__index_level_0__", "index"}


def _read_parquet_head(path: Path, max_molecules: int):
    """Only the first ``max_molecules`` rows of a Parquet file (PCBA-1328 has 1.56M rows x 1,332 columns)."""
    import pandas as pd
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if not max_molecules:
        return pf.read().to_pandas()
    frames, n = [], 0
    for batch in pf.iter_batches(batch_size=min(max_molecules, 65536)):
        frames.append(batch.to_pandas())
        n += batch.num_rows
        if n >= max_molecules:
            break
    return pd.concat(frames, ignore_index=True).iloc[:max_molecules] if frames else pf.schema_arrow.empty_table().to_pandas()


def _label_matrix(frame, columns: list[str], path: Path, ignored=()) -> np.ndarray:
    """The 0/1/missing labels of ``columns``; one error names every column that holds other values (``ignored``: the
    ignore_columns already given, kept in the list it suggests)."""
    import pandas as pd

    out = np.full((len(frame), len(columns)), MISSING, dtype=np.int8)
    wrong = []  # every such column, in one error (compound_id, then plate, then mw_est were refused one at a time)
    for j, col in enumerate(columns):
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        present = raw.notna().to_numpy() & (raw.astype(str).str.strip() != "").to_numpy()
        bad = present & ~np.isin(values, (0.0, 1.0))
        if bad.any():
            wrong.append((col, raw[bad].astype(str).unique()[:3].tolist(), int(bad.sum())))
            continue
        out[present, j] = values[present].astype(np.int8)
    if len(wrong) == 1:
        col, examples, n = wrong[0]
        raise InputError(
            f"{path}: column {col!r} has label values other than 0, 1 or empty, e.g. {examples} "
            f"({n} cells). Every assay column must hold 1 (active), 0 (inactive) or nothing "
            "(not tested); if this is not an assay, list it in ignore_columns."
        )
    if wrong:
        listed = "; ".join(f"{c!r}: e.g. {ex} ({n} cells)" for c, ex, n in wrong[:8])
        more = f"; and {len(wrong) - 8} more" if len(wrong) > 8 else ""
        names = [c for c, _, _ in wrong]
        raise InputError(
            f"{path}: {len(wrong)} column(s) have label values other than 0, 1 or empty: {listed}{more}. Every assay "
            "column must hold 1 (active), 0 (inactive) or nothing (not tested); if these are not assays, list them "
            f"in ignore_columns (e.g. ignore_columns: {[*ignored, *names[:8]]})."
        )
    return out


#: Id columns the loaders skip by default; a table without them is fine (any other ignored name must exist).
LOADER_IGNORED = frozenset({"mol_id", "cid", "sid"})


def load_assay_table(path, *, smiles_column: str = "smiles", ignore_columns: Sequence[str] = ("mol_id",),
                     assay_prefix: str = "", max_molecules: int = 0) -> AssayTable:
    """Read a multi-assay table in the MoleculeNet layout.

    Parameters
    ----------
    path : CSV, CSV.gz or Parquet file.
    smiles_column : name of the SMILES column (case-insensitive match if not exact).
    ignore_columns : non-assay columns to skip (ids and the like).
    assay_prefix : if given, only columns starting with it are assays; others are ignored.
    max_molecules : keep the first ``max_molecules`` rows (0: all).

    Raises
    ------
    InputError
        If the file cannot be read, has no SMILES column, has no assay columns, or an assay
        column holds anything but 1, 0 or empty; the message names the file and the column.
    """
    path = Path(path).expanduser()
    if isinstance(ignore_columns, str):
        ignore_columns = (ignore_columns,)  # one name, not its characters
    max_molecules = check_number("max_molecules", max_molecules, minimum=0, integer=True)
    frame = _read_frame(path, max_molecules=max_molecules)
    if frame.empty:
        raise InputError(f"{path}: the table has a header but no molecules; expected one row per molecule.")
    smiles_col = _find_column(frame.columns, smiles_column)
    if smiles_col is None:
        header = ",".join(map(str, frame.columns))
        separator = next((name for sep, name in ((";", "semicolons"), ("\t", "tabs")) if sep in header), None)
        padded = next((c for c in map(str, frame.columns) if c.strip() == smiles_column and c != smiles_column), None)
        hint = (f" The header holds {separator}: save the table with commas between columns." if separator and
                len(frame.columns) == 1 else f" The header has {padded!r}: remove the spaces around its name."
                if padded else " (Set smiles_column if it has another name.)")
        raise InputError(
            f"{path}: no {smiles_column!r} column; found columns {_some_columns(frame.columns)}. A table needs a SMILES column plus one 0/1 column per assay."
            + hint
        )
    have = {str(c).lower() for c in frame.columns}
    absent = [c for c in ignore_columns if c.lower() not in have and c.lower() not in LOADER_IGNORED]
    if absent:  # a misspelt name leaves its column in, read as an assay (a 0/1 in_stock column became a source)
        raise InputError(f"{path}: ignore_columns names {absent[:5]}, which the table does not have (its columns: "
                         f"{_some_columns(frame.columns)}); check the "
                         "spelling: a column that is not ignored is read as an assay.")
    skip = {c.lower() for c in ignore_columns} | {smiles_col.lower(), "unnamed: 0"}
    columns = [str(c) for c in frame.columns if str(c).lower() not in skip
               and (not assay_prefix or str(c).startswith(assay_prefix))]
    if not columns:
        raise InputError(f"{path}: no assay columns besides {smiles_col!r}"
                         + (f" starting with {assay_prefix!r}" if assay_prefix else "") + ".")
    check_new_names(f"{path}: assay columns", columns)  # they become source names, in exports and downloads too
    check_target_names(columns, f"{path}: assay columns")  # any of them may be a target, named in file names
    padded = [c for c in columns if c != c.strip()]
    if padded:  # ' ATG_X' is another assay than a config's ATG_X, and its splits are seeded by that name
        raise InputError(f"{path}: assay column name(s) {padded[:3]} begin or end with spaces; remove the spaces "
                         "from the header (assays are named, and their splits seeded, by the exact name).")
    suffixed = [c for c in columns if c.endswith(TRAIN_SUFFIX)]
    if suffixed:  # the suffix names a target's own training rows as a source
        raise InputError(f"{path}: assay column {suffixed[0]!r} ends in {TRAIN_SUFFIX!r}, which names a target's own "
                         "training rows; rename it.")
    labels = _label_matrix(frame, columns, path, [c for c in ignore_columns if c.lower() in have])
    smiles = frame[smiles_col].fillna("").astype(str).to_numpy(dtype=object)
    _check_one_row_per_molecule(path, smiles)
    log.info("%s: %d molecules x %d assays", path, len(smiles), len(columns))
    ignored = tuple(str(c) for c in frame.columns if str(c).lower() in {i.lower() for i in ignore_columns})
    return AssayTable(smiles, labels, tuple(columns), str(path), ignored)


def _check_one_row_per_molecule(path, smiles) -> None:
    """Splits are drawn per row: a molecule on two rows could sit in a source's training rows and in a
    target's test rows at once (tables merged from several assays often repeat molecules)."""
    import pandas as pd

    seen = pd.Series(smiles)
    repeated = seen[seen.duplicated() & (seen != "")].unique()
    if repeated.size:
        raise InputError(f"{path}: {repeated.size:,} SMILES appear on more than one row (e.g. {list(repeated[:3])}); "
                         "the table needs one row per molecule with one column per assay. Merge each molecule's "
                         "rows into one (its label for each assay), or the per-assay splits could put a molecule "
                         "in a source's training rows and a target's test rows at once.")


def _find_column(columns, wanted: str):
    cols = [str(c) for c in columns]
    if wanted in cols:
        return wanted
    lower = {c.lower(): c for c in cols}
    return lower.get(wanted.lower())


def load_pcba128(path=None, *, max_molecules: int = 0) -> AssayTable:
    """MoleculeNet PCBA-128 (``pcba.csv.gz``: ``PCBA-<AID>`` x 128, ``mol_id``, ``smiles``).

    ``path`` None resolves the registered dataset (``$MIXMIN_DATA_DIR/chem/pcba.csv.gz``, the cache,
    or a download from DeepChem's public bucket).

    Raises
    ------
    InputError
        If the file is unavailable or not in that format.
    """
    from mixmin_core.runs.datasets import resolve

    p = resolve("pcba128", path)
    return load_assay_table(p, smiles_column="smiles", ignore_columns=("mol_id",), assay_prefix="PCBA-",
                            max_molecules=max_molecules)


def load_pcba1328(path=None, *, max_molecules: int = 100_000) -> AssayTable:
    """Graphium PCBA-1328 (Parquet or CSV: ``SMILES``, ``assayID-<AID>`` x 1,328, ``CID``, ``SID``).

    Only the first ``max_molecules`` molecules are read (the MixMin paper used 100,000; 0: all).

    Raises
    ------
    InputError
        If the file is unavailable (there is no public direct download: get it from the Polaris hub)
        or not in that format.
    """
    from mixmin_core.runs.datasets import resolve

    p = resolve("pcba1328", path)
    return load_assay_table(p, smiles_column="SMILES", ignore_columns=("CID", "SID"), assay_prefix="assayID-",
                            max_molecules=max_molecules)


# ---------------------------------------------------------------------------- metadata

def load_assay_metadata(path) -> object:
    """Assay metadata as a DataFrame with at least ``source``, ``title``, ``category`` and ``aid``.

    Understands the files in ``shared/data/chem`` (``task`` plus ``title``/``short_name`` for PCBA,
    ``target``/``mode`` for Tox21 and MUV, ``description`` for ToxCast) and any CSV with a
    ``task`` or ``source`` column.

    Raises
    ------
    InputError
        If the file cannot be read or has neither a ``task`` nor a ``source`` column.
    """
    import pandas as pd

    path = Path(path)
    try:
        meta = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise InputError(f"{path}: cannot read assay metadata ({type(exc).__name__}: {str(exc)[:200]}).") from None
    key = _find_column(meta.columns, "task") or _find_column(meta.columns, "source")
    if key is None:
        raise InputError(f"{path}: assay metadata needs a 'task' (or 'source') column; found {len(meta.columns)} "
                         f"columns, {_some_columns(meta.columns)}.")
    meta = meta.rename(columns={key: "source"})
    for col in meta.columns:  # one line per cell: some descriptions carry Excel line-break escapes
        meta[col] = meta[col].str.replace("_x000D_", " ", regex=False).str.replace(r"\s+", " ", regex=True).str.strip()
    meta["title"] = [_title(row) for row in meta.to_dict("records")]
    if "category" not in meta:
        meta["category"] = ""
    meta["aid"] = [_aid(s) if not row.get("aid") else str(row["aid"]) for s, row in zip(meta["source"], meta.to_dict("records"))]
    return meta


def _title(row: dict) -> str:
    for key in ("title", "short_name"):
        if row.get(key):
            return str(row[key])
    if row.get("target"):
        return f"{row['target']} ({row['mode']})" if row.get("mode") else str(row["target"])
    if row.get("provider"):
        return f"{row['source']} ({row['provider']})"
    return str(row["source"])


def _aid(name: str) -> str:
    m = _AID.search(str(name))
    return m.group(1) if m and (str(name)[:1].isdigit() or str(name).startswith(("PCBA-", "assayID-", "AID"))) else ""


def join_metadata(assays: Sequence[str], meta=None):
    """One row per assay: ``source``, ``title``, ``category`` plus the metadata's other columns.

    Rows match by exact name, else by PubChem AID (``PCBA-<AID>``, ``assayID-<AID>``); assays
    without metadata get their own name as title and an empty category.
    """
    import pandas as pd

    base = pd.DataFrame({"source": list(assays)})
    if meta is None or len(meta) == 0:
        base["title"] = base["source"]
        base["category"] = ""
        return base
    by_name = meta.drop_duplicates("source").set_index("source")
    by_aid = meta[meta["aid"] != ""].drop_duplicates("aid").set_index("aid")
    rows = []
    for a in assays:
        if a in by_name.index:
            row = by_name.loc[a].to_dict()
        elif _aid(a) and _aid(a) in by_aid.index:
            row = by_aid.loc[_aid(a)].drop(labels=["source"], errors="ignore").to_dict()
        else:
            row = {"title": a, "category": ""}
        rows.append({"source": a, **row})
    out = pd.DataFrame(rows)
    cols = ["source", "title", "category"] + [c for c in out.columns if c not in ("source", "title", "category")]
    return out[cols].fillna("")


# ---------------------------------------------------------------------------- filtering

def informative_assays(table: AssayTable, molecules: np.ndarray | None = None) -> tuple[list[str], list[dict]]:
    """Split assays into those with both positives and negatives among ``molecules`` (a boolean
    mask or indices; default all) and the dropped ones (``{"assay", "n_pos", "n_neg"}``)."""
    labels = table.labels if molecules is None else table.labels[molecules]
    n_pos = (labels == 1).sum(axis=0)
    n_neg = (labels == 0).sum(axis=0)
    keep, dropped = [], []
    for a, p, n in zip(table.assays, n_pos, n_neg):
        if p > 0 and n > 0:
            keep.append(a)
        else:
            dropped.append({"assay": a, "n_pos": int(p), "n_neg": int(n)})
    return keep, dropped
