"""ECFP (Morgan) fingerprints with RDKit's fingerprint generator, as sparse CSR matrices.

About 30 of 2,048 bits are set per molecule, so fingerprints are kept as ``scipy.sparse.csr_matrix``
(uint8 on disk, float32 for XGBoost) with a validity mask: an unparsable SMILES gives an empty
row and ``valid[i] = False`` (never ``None``). :func:`cached_fingerprints` computes them once per
dataset and keeps them under ``$MIXMIN_CACHE/fingerprints``.
"""
from __future__ import annotations

import functools
import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mixmin_core.errors import InputError
from mixmin_core.runs.fileio import write_bytes

log = logging.getLogger("mixmin.chem")


@dataclass(frozen=True, eq=False)
class Fingerprints:
    """``matrix`` (n, n_bits) CSR uint8, ``valid`` (n,) bool, ``invalid_examples`` (a few bad SMILES)."""

    matrix: sp.csr_matrix
    valid: np.ndarray
    invalid_examples: tuple = ()

    @property
    def n_invalid(self) -> int:
        return int((~self.valid).sum())


def _check_params(radius, n_bits):
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise InputError(f"radius must be a non-negative integer; got {radius!r}.")
    if isinstance(n_bits, bool) or not isinstance(n_bits, (int, np.integer)) or n_bits < 8:
        raise InputError(f"n_bits must be an integer >= 8; got {n_bits!r}.")


def featurize_smiles(smiles: Sequence[str], *, radius: int = 2, n_bits: int = 2048) -> Fingerprints:
    """Morgan fingerprints (ECFP4 for ``radius=2``) of ``smiles``.

    Returns
    -------
    Fingerprints with ``matrix`` of shape ``(len(smiles), n_bits)`` and the validity mask; invalid
    SMILES are counted and logged with up to five examples.

    Raises
    ------
    InputError
        For a negative ``radius`` or ``n_bits < 8``.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdFingerprintGenerator

    _check_params(radius, n_bits)
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=int(radius), fpSize=int(n_bits))
    indptr = np.zeros(len(smiles) + 1, dtype=np.int64)
    indices: list[np.ndarray] = []
    valid = np.zeros(len(smiles), dtype=bool)
    bad: list[str] = []
    with rdBase.BlockLogs():
        for i, s in enumerate(smiles):
            mol = Chem.MolFromSmiles(str(s)) if s else None
            if mol is None:
                bad.append(str(s))
                on = np.empty(0, dtype=np.int32)
            else:
                valid[i] = True
                on = np.asarray(list(gen.GetFingerprint(mol).GetOnBits()), dtype=np.int32)
            indices.append(on)
            indptr[i + 1] = indptr[i] + on.size
    idx = np.concatenate(indices) if indices else np.empty(0, dtype=np.int32)
    matrix = sp.csr_matrix((np.ones(idx.size, dtype=np.uint8), idx, indptr), shape=(len(smiles), int(n_bits)))
    if bad:
        log.warning("%d of %d SMILES could not be parsed by RDKit (empty fingerprints, excluded), e.g. %s",
                    len(bad), len(smiles), bad[:5])
    return Fingerprints(matrix, valid, tuple(bad[:5]))


def check_smiles(smiles: Sequence[str], *, where: str, sample: int = 500) -> None:
    """Fail early when none of the first ``sample`` SMILES parses (a wrong SMILES column or file).

    Raises
    ------
    InputError
        Naming ``where`` (the file and column) and showing a few of the values found.
    """
    from rdkit import Chem, rdBase

    head = [str(s) for s in list(smiles)[:sample]]
    with rdBase.BlockLogs():
        if head and not any(s and Chem.MolFromSmiles(s) is not None for s in head):
            raise InputError(f"{where}: none of the first {len(head)} SMILES could be parsed by RDKit, e.g. "
                             f"{head[:3]}; point smiles_column at the column of SMILES strings.")


def same_molecule_rows(smiles: Sequence[str], matrix: sp.csr_matrix, valid: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of rows holding one molecule written two ways (``OCC`` and ``CCO``; exact repeats are refused when
    a table is read). Rows with equal fingerprints are the candidates; RDKit's canonical SMILES (stereochemistry
    included) decides."""
    return _fingerprint_pairs(smiles, matrix, valid)[0]


def fingerprint_twins(smiles: Sequence[str], matrix: sp.csr_matrix, valid: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of rows holding different molecules with one fingerprint (stereoisomers, or molecules too small or
    inorganic to set any bit): the models cannot tell them apart."""
    return _fingerprint_pairs(smiles, matrix, valid)[1]


def _fingerprint_pairs(smiles, matrix, valid) -> tuple[list, list]:
    """``(same molecule, different molecules)`` pairs among rows of equal fingerprints, each against the first row
    of its canonical SMILES (or of its fingerprint)."""
    from rdkit import Chem, rdBase

    groups: dict[bytes, list[int]] = {}
    for i in np.flatnonzero(valid):
        groups.setdefault(matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]].tobytes(), []).append(int(i))
    seen: dict[str, int] = {}
    same, twins = [], []
    with rdBase.BlockLogs():
        for rows in (g for g in groups.values() if len(g) > 1):
            for i in rows:
                first = seen.setdefault(Chem.MolToSmiles(Chem.MolFromSmiles(str(smiles[i]))), i)
                if first != i:
                    same.append((first, i))
                elif i != rows[0]:
                    twins.append((rows[0], i))
    return same, twins


def fingerprint_key(smiles: Sequence[str], radius: int, n_bits: int) -> str:
    """Content hash of the SMILES list and parameters (the cache key)."""
    h = hashlib.sha256(f"morgan:{radius}:{n_bits}\n".encode())
    for s in smiles:
        h.update(str(s).encode())
        h.update(b"\n")
    return h.hexdigest()[:20]


def save_fingerprints(path, fps: Fingerprints) -> None:
    """Write ``fps`` to ``path`` (.npz, atomic)."""
    m = fps.matrix
    buf = io.BytesIO()
    np.savez_compressed(buf, indices=m.indices.astype(np.int32), indptr=m.indptr.astype(np.int64),
                        shape=np.asarray(m.shape, dtype=np.int64), valid=fps.valid,
                        invalid_examples=np.asarray(fps.invalid_examples, dtype=str))
    write_bytes(path, buf.getvalue())


def load_fingerprints(path) -> Fingerprints:
    """Read a file written by :func:`save_fingerprints`.

    Raises
    ------
    InputError
        If the file is missing or not a fingerprint file.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            shape = tuple(int(v) for v in z["shape"])
            matrix = sp.csr_matrix((np.ones(z["indices"].size, dtype=np.uint8), z["indices"], z["indptr"]), shape=shape)
            return Fingerprints(matrix, z["valid"].astype(bool), tuple(z["invalid_examples"].tolist()))
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: not a readable fingerprint file ({exc}); delete it to recompute.") from None


def cached_fingerprints(smiles: Sequence[str], *, radius: int = 2, n_bits: int = 2048,
                        cache_dir: str | Path | None = None) -> tuple[Fingerprints, bool]:
    """Fingerprints of ``smiles`` from the cache, computing and storing them on a miss.

    Returns ``(fingerprints, from_cache)``. ``cache_dir`` defaults to ``$MIXMIN_CACHE/fingerprints``.
    """
    from mixmin_core.runs.datasets import cache_dir as default_cache

    folder = Path(cache_dir) if cache_dir is not None else default_cache() / "fingerprints"
    path = folder / f"morgan-r{radius}-{n_bits}-{fingerprint_key(smiles, radius, n_bits)}.npz"
    if path.exists():
        try:
            fps = load_fingerprints(path)
            if fps.matrix.shape == (len(smiles), n_bits):
                return fps, True
        except InputError:
            log.warning("%s: unreadable cached fingerprints; recomputing", path)
    fps = featurize_smiles(smiles, radius=radius, n_bits=n_bits)
    try:
        save_fingerprints(path, fps)
    except OSError as exc:  # a cache folder it cannot write: computed again next time
        log.warning("fingerprints not cached (%s: %s)", folder, exc.strerror or exc)
    return fps, False


@functools.lru_cache(maxsize=2)
def load_feature_matrix(path: str):
    """``(float32 CSR matrix, validity mask)`` of a fingerprint file, cached per worker process."""
    fps = load_fingerprints(path)
    return fps.matrix.astype(np.float32).tocsr(), fps.valid


@functools.lru_cache(maxsize=2)
def load_label_matrix(path: str):
    """``(labels, assay names)`` of a pipeline's label file, cached per worker process."""
    with np.load(path, allow_pickle=False) as z:
        return z["labels"], tuple(z["assays"].tolist())
