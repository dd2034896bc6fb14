"""Per-assay train/test and fit/validation splits, seeded per trial (the MixMin paper's 64/16/20).

Each assay's labelled, valid molecules are split 80/20 into train/test and the train part 80/20
into fit/validation, stratified by label (positives and negatives are split separately, so a
rare-positive assay keeps positives in every part when it has at least a handful). The generator
is seeded with ``(seed, trial, crc32(assay))``: the same split for every method and every run.
"""
from __future__ import annotations

import io
import logging
import math
import zlib

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.runs.fileio import write_bytes

log = logging.getLogger("mixmin.chem")

FIT, VAL, TEST = 0, 1, 2
UNUSED = -1
PART_NAMES = {"fit": FIT, "val": VAL, "test": TEST}
MIN_ROWS = 20  # a row subset keeps at least this many rows of a source (or all of them)


def _check_fraction(name, value):
    if not (isinstance(value, (int, float)) and 0 < value < 1):
        raise InputError(f"{name} must be a fraction in (0, 1); got {value!r}.")


def _split_indices(idx: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``idx`` and cut ``round(fraction * n)`` off as the second part."""
    perm = rng.permutation(idx)
    n_second = int(round(fraction * perm.size))
    return perm[n_second:], perm[:n_second]


def assay_split(labels: np.ndarray, *, seed: int, trial: int, assay: str, test_fraction: float = 0.2,
                val_fraction: float = 0.2, valid: np.ndarray | None = None) -> np.ndarray:
    """Split code per molecule for one assay: ``FIT``, ``VAL``, ``TEST`` or ``UNUSED`` (not labelled or invalid).

    Parameters
    ----------
    labels : (n_molecules,) int8, 1 / 0 / -1 (not tested).
    valid : (n_molecules,) bool, molecules with a fingerprint (default all).

    Raises
    ------
    InputError
        For fractions outside (0, 1).
    """
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("val_fraction", val_fraction)
    rng = np.random.default_rng([int(seed), int(trial), zlib.crc32(str(assay).encode())])
    code = np.full(labels.shape[0], UNUSED, dtype=np.int8)
    usable = labels >= 0 if valid is None else (labels >= 0) & valid
    for cls in (0, 1):
        idx = np.flatnonzero(usable & (labels == cls))
        train, test = _split_indices(idx, test_fraction, rng)
        fit, val = _split_indices(train, val_fraction, rng)
        code[fit], code[val], code[test] = FIT, VAL, TEST
    return code


def usable_labels(table, valid=None) -> tuple[np.ndarray, str]:
    """The label rows of the molecules RDKit parses (``valid``; all when None: unparsable SMILES are left out of
    every split) and how to name them in a message."""
    labels = table.labels if valid is None else table.labels[np.asarray(valid, dtype=bool)]
    if labels.shape[0] < table.labels.shape[0]:
        return labels, f"the {labels.shape[0]:,} molecules RDKit parses (of {table.labels.shape[0]:,} read)"
    return labels, f"the {labels.shape[0]:,} molecules read"


#: Fewer test positives than this get a warning: an average precision over so few says little (on MUV, one of
#: five or six actives ranked first decided a method's mean).
FEW_TEST_POSITIVES = 10


def split_sizes(n: int, test_fraction: float = 0.2, val_fraction: float = 0.2) -> tuple[int, int, int]:
    """``(fit, val, test)`` sizes :func:`assay_split` gives ``n`` molecules of one class (the same rounding)."""
    test = round(test_fraction * n)
    val = round(val_fraction * (n - test))
    return n - test - val, val, test


def check_test_labels(table, targets: list, valid=None, test_fraction: float = 0.2, *,
                      fraction_field: bool = True, val_fraction: float = 0.2, one_trial: bool = False) -> None:
    """Every target of ``table`` (an ``AssayTable``) must get a positive and a negative in its test split
    (:func:`assay_split` splits per class, rounding), or its score is undefined: a MUV target with one active
    ran to 'done' with every score blank. Its fit split (what MixMin fits and bootstraps) needs both classes too:
    test_fraction 0.99 left one fit molecule, and the run failed after every proxy. ``fraction_field``: the config
    has ``test_fraction`` and ``val_fraction`` to lower; ``one_trial``: the pipeline runs one trial (no intervals
    across trials to weigh)."""
    labels, among = usable_labels(table, valid)
    for t in targets:
        column = labels[:, table.index(t)]
        fit = {cls: split_sizes(int((column == cls).sum()), test_fraction, val_fraction)[0] for cls in (0, 1)}
        if min(fit.values()) < 1:
            raise InputError(f"target {t!r}: with test_fraction {test_fraction:g} and val_fraction {val_fraction:g} "
                             f"its fit split holds {fit[1]} positive(s) and {fit[0]} negative(s) (of "
                             f"{int((column == 1).sum())} and {int((column == 0).sum())} among {among}); MixMin fits "
                             "the mixture on it and needs both classes. " + (
                                 "Lower test_fraction or val_fraction (the paper's: 0.2 and 0.2)." if fraction_field
                                 else "Pick another target or raise max_molecules if it caps the table (0 reads all)."))
        n_pos = round(test_fraction * int((column == 1).sum()))
        n_test = round(test_fraction * int((column >= 0).sum()))
        if 1 <= n_pos < FEW_TEST_POSITIVES:  # MUV: one active in 300 test molecules, and methods were still ranked
            log.warning("target %r: its test split holds about %d positive(s) among %d labelled test molecules (chance "
                        "average precision %.2g), so its average precision rests on them and gaps between methods are "
                        "mostly noise; raise max_molecules if it caps the table (0 reads all) or %s", t, n_pos, n_test,
                        n_pos / max(n_test, 1), "read its AP as indicative only: this pipeline runs one trial, so no "
                        "interval shows the noise (pick a target with more positives to compare)" if one_trial else
                        "weigh the intervals across trials")
        for cls, what in ((1, "positives"), (0, "negatives")):
            n = int((column == cls).sum())
            if int(round(test_fraction * n)) < 1:
                raise InputError(f"target {t!r} has {n} {what} among {among}; with test_fraction {test_fraction:g} "
                                 "its test split gets none, so its average precision is undefined. Pick another "
                                 "target" + (", raise max_molecules if it caps the table (0 reads all), or raise test_fraction." if
                                             fraction_field else " or raise max_molecules if it caps the table (0 reads all)."))


def split_table(labels: np.ndarray, assays, *, seed: int, trial: int, test_fraction: float = 0.2,
                val_fraction: float = 0.2, valid: np.ndarray | None = None) -> np.ndarray:
    """:func:`assay_split` for every assay: ``(n_molecules, n_assays)`` int8."""
    return np.stack([assay_split(labels[:, j], seed=seed, trial=trial, assay=a, test_fraction=test_fraction,
                                 val_fraction=val_fraction, valid=valid) for j, a in enumerate(assays)], axis=1)


def save_splits(path, codes: np.ndarray, assays) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, codes=codes, assays=np.asarray(list(assays), dtype=str))
    write_bytes(path, buf.getvalue())


def load_splits(path) -> tuple[np.ndarray, tuple]:
    with np.load(path, allow_pickle=False) as z:
        return z["codes"], tuple(z["assays"].tolist())


def part(codes: np.ndarray, which: str | tuple) -> np.ndarray:
    """Molecule indices in one part (``"fit"``, ``"val"``, ``"test"``) or a tuple of parts (``("fit", "val")``)."""
    names = (which,) if isinstance(which, str) else tuple(which)
    return np.flatnonzero(np.isin(codes, [PART_NAMES[n] for n in names]))


def row_subset(rows: np.ndarray, fraction: float, *, seed: int, assay: str) -> np.ndarray:
    """A seeded prefix of a fixed permutation of ``rows`` (so subsets of growing ``fraction`` are
    nested), at least ``MIN_ROWS`` rows, sorted: the rows a cheaper proxy of ``assay`` trains on."""
    if fraction >= 1:
        return np.asarray(rows)
    perm = np.random.default_rng([seed, 5, zlib.crc32(assay.encode())]).permutation(rows)
    n = min(rows.size, max(MIN_ROWS, math.ceil(fraction * rows.size)))
    return np.sort(perm[:n])
