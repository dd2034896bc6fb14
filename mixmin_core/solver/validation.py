"""Small ``check_*`` helpers used once at public entry points."""
from __future__ import annotations

import numbers
import unicodedata
from collections.abc import Mapping

import numpy as np

from mixmin_core.errors import InputError


def describe(x) -> str:
    """A short description of a received value for error messages."""
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def as_float_array(name: str, values, dtype=np.float64, *, booleans: bool = True) -> np.ndarray:
    """``values`` as a ``dtype`` array, or an InputError naming ``name`` (text, ragged lists, objects:
    ``"1"`` is text, not a number; with ``booleans=False`` also True/False, which read as 1/0: ``caps=True``)."""
    check_unmasked(name, values)
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):  # ragged input and the like
        raise InputError(f"{name} must be an array of numbers; got {describe(values)}.") from None
    if arr.dtype == np.bool_ and not booleans:
        raise InputError(f"{name} must be numbers, not True/False (they would read as 1 and 0); got {describe(values)}.")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        of = f"a {type(values).__name__}; pass its .weights" if hasattr(values, "weights") else describe(arr)
        raise InputError(f"{name} must be an array of numbers; got {of}.")
    if np.iscomplexobj(arr):  # numpy would drop the imaginary parts with a warning
        raise InputError(f"{name} must be real numbers; got {describe(arr)}.")
    return to_float32(name, arr).copy() if np.dtype(dtype) == np.float32 else arr.astype(dtype)


def check_unmasked(name: str, values) -> None:
    """Refuse a numpy masked array with masked entries: ``np.asarray`` drops the mask and keeps what lies under it."""
    if np.ma.isMaskedArray(values) and np.ma.getmaskarray(values).any():
        raise InputError(f"{name} has {int(np.ma.getmaskarray(values).sum())} masked value(s), which would be read as "
                         f"they are; fill them ({name}.filled(...)) or leave those samples out first.")


def to_float32(name: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` as a C-contiguous float32 array (``arr`` itself when it is one already), or an InputError
    naming ``name`` when a finite number is too large for float32 (it would become inf)."""
    with np.errstate(over="ignore"):
        single = np.ascontiguousarray(arr, dtype=np.float32)
    if single.dtype != arr.dtype and np.isinf(single).any() and (np.isinf(single) & np.isfinite(arr)).any():
        big = np.abs(arr[np.isinf(single) & np.isfinite(arr)]).max()
        raise InputError(f"{name} must fit in float32 (magnitude at most 3.4e38), the solver's precision; "
                         f"got {float(big):g}. Rescale them (e.g. to log-probabilities).")
    return single


def is_keyed(values) -> bool:
    """Whether per-source ``values`` are keyed by name: a dict, or a pandas Series unless its index is just its
    positions 0, 1, ... (numeric names such as PubChem AIDs key it: ``{588: 7e4, 743: 2e4}`` as a Series)."""
    if isinstance(values, Mapping):
        return True
    index = getattr(values, "index", None)
    if getattr(index, "dtype", None) is None or not hasattr(values, "items"):  # a list's index is a method
        return False
    return not (index.dtype.kind in "iu" and np.array_equal(index, np.arange(len(index))))


def by_source(name: str, values, source_names, *, of: str = "source",
              fix: str = "give one value per source (or an array in source order)", missing=None,
              mixture: bool = False):
    """Per-source ``values`` in ``source_names`` order: keyed values (:func:`is_keyed`) are matched by
    name (extra names ignored, as sizes of a larger set); anything else is taken in order as it is. ``of``
    and ``fix`` word the error for a missing name (what the names name, and what to give). With ``missing``,
    a source not named gets that value (caps: uncapped); values that leave sources out must then name no
    other (a typo would cap nothing), while values for every source still ignore extra names. A
    ``mixture`` (weights) may name other sources only at weight 0: weight on a source that is not there
    would silently leave the mixture."""
    if not is_keyed(values):
        return values  # an array, a list, or a Series by position
    keyed = dict(values.items())
    if all(isinstance(n, str) for n in source_names):  # names are text: {1: w} names source '1'
        keyed = {str(k) if isinstance(k, (int, np.integer)) and not isinstance(k, bool) else k: v
                 for k, v in keyed.items()}
    if mixture:
        known = set(source_names)
        weighted = [k for k, v in keyed.items() if k not in known and not _is_zero(v)]
        if weighted:
            raise InputError(f"{name} gives weight to {len(weighted)} {of}(s) that are not among these {of}s, e.g. "
                             f"{weighted[:5]!r}; the {of}s are e.g. {list(source_names)[:5]}. Drop them (or give them "
                             "weight 0) and renormalise.")
    absent = [n for n in source_names if n not in keyed]
    if absent and missing is not None:
        known = set(source_names)
        unknown = [k for k in keyed if k not in known]
        if unknown:
            raise InputError(f"{name} names no {of} {unknown[:5]!r}; the {of}s are e.g. {list(source_names)[:5]}.")
        return [keyed.get(n, missing) for n in source_names]
    missing = absent
    if missing:
        raise InputError(f"{name} is keyed by {of} name but has no entry for {len(missing)} {of}(s), e.g. "
                         f"{missing[:5]}; {fix}.")
    return [keyed[n] for n in source_names]


def _is_zero(value) -> bool:
    try:
        return float(value) == 0.0
    except (TypeError, ValueError):
        return False  # not a number: the weights' own check says so


def check_csv_header(name: str, source, compression: str = "infer") -> None:
    """An InputError if the CSV ``source`` (a path or a buffer) repeats a column name: pandas would rename
    the second ``a`` to ``a.1``, and no one could tell which column is which source or assay."""
    from collections import Counter

    import pandas as pd

    header = [str(c) for c in pd.read_csv(source, header=None, nrows=1, dtype=str, keep_default_na=False,
                                                compression=compression).iloc[0]]
    repeated = sorted(c or "(empty)" for c, n in Counter(header).items() if n > 1)  # linear: a header may be wide
    if repeated:
        raise InputError(f"{name}: column names must be unique; repeated: {repeated[:5]}.")


#: First characters that make a spreadsheet read a cell as a formula (``=HYPERLINK(...)``, ``@SUM(...)``).
FORMULA_STARTS = ("=", "+", "-", "@")


#: Longest new source name (an assay id, a file name, a column header).
MAX_NAME_CHARS = 256


def starts_as_formula(text: str) -> bool:
    """Whether a spreadsheet would read ``text`` as a formula: leading spaces skipped, a full-width ＝ an equals sign."""
    return unicodedata.normalize("NFKC", text).lstrip()[:1] in FORMULA_STARTS


def check_new_names(name: str, values) -> tuple:
    """:func:`check_names`, and none starting as a spreadsheet formula does (:data:`FORMULA_STARTS`): for names
    entering the tool (an upload's columns, a table's assays, text file names), which end up in downloaded tables.
    Saved outputs and runs are not checked again, so what was stored before this rule still opens."""
    names = check_names(name, values)
    long = [n for n in names if len(n) > MAX_NAME_CHARS]
    if long:  # a 1 MB column name froze the browser tab that drew it
        raise InputError(f"{name}: names must be at most {MAX_NAME_CHARS} characters; got one of {len(long[0]):,} "
                         f"({long[0][:40]!r}...). Rename the source.")
    bad = [n for n in names if starts_as_formula(n)]
    if bad:  # a spreadsheet opening a downloaded table would run the name as a formula
        raise InputError(f"{name}: names must not start with {', '.join(FORMULA_STARTS)} (a spreadsheet reads such a "
                         f"name as a formula); got {bad[0]!r}. Rename the source.")
    blank = [n for n in names if not n.strip()]
    if blank:  # a source called " " is no name a table, a chart or an export can show
        raise InputError(f"{name}: every name must have a visible character; got {blank[0]!r}. Name the source.")
    alike = {}
    for n in names:  # "Ö" as one character and as O plus a combining mark: two sources that look like one
        other = alike.setdefault(unicodedata.normalize("NFC", n), n)
        if other != n:
            raise InputError(f"{name}: {other!r} and {n!r} look the same but encode their letters otherwise (Unicode "
                             "NFC and NFD); rename one of them.")
    hidden = [n for n in names if any(unicodedata.category(c) == "Cf" or c in IGNORABLE for c in n)]
    if hidden:  # right-to-left overrides and zero-width characters: "\u202egnp.exe" reads as "exe.png"
        raise InputError(f"{name}: names must not hold invisible or direction-changing characters (such as U+202E "
                         f"or U+200B); got {hidden[0]!r}. Rename the source.")
    return names


#: Characters drawn as nothing that are not format characters (Cf): Hangul fillers, a combining grapheme joiner,
#: variation selectors. "web" and "web\u3164" would look like one source.
IGNORABLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0" + "".join(map(chr, range(0x180B, 0x1810)))
                       + "".join(map(chr, range(0xFE00, 0xFE10))) + "".join(map(chr, range(0xE0100, 0xE01F0))))


def check_names(name: str, values) -> tuple:
    """``values`` as a tuple of distinct names, or an InputError naming ``name``. One string is refused, not
    split into its letters; a repeated name would make two sources one."""
    try:
        ndim = np.ndim(values)
    except ValueError:  # a ragged list such as ["a", ["b", "c"]]
        ndim = -1
    if isinstance(values, (str, bytes)) or ndim != 1:
        raise InputError(f"{name} must be a list of names, one per source; got {describe(values)}.")
    listed = list(values)  # by position (a Series' [] looks up labels)
    gaps = [i for i, v in enumerate(listed) if _no_name(v)]
    if gaps:  # it would be a source called 'None' or 'nan'
        gap = "None" if listed[gaps[0]] is None else "NaN" if type(listed[gaps[0]]).__name__ != "NAType" else "NA"
        raise InputError(f"{name}: every name must be given; found {gap} at position {gaps[0]}.")
    raw = [v for v in listed if isinstance(v, (bytes, bytearray))]
    if raw:  # str() made b'web' the name "b'web'"
        raise InputError(f"{name}: names must be text; got the bytes {raw[0][:40]!r}. Decode them first "
                         "(e.g. name.decode('utf-8')).")
    names = tuple(str(v) for v in values)
    if "" in names:  # no table, chart or export can show a source without a name
        raise InputError(f"{name}: every name must have a visible character; got '' at position {names.index('')}. "
                         "Name the source.")
    bad = [n for n in names if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in n)]
    if bad:  # a line break in a name would end a comment in an exported Python or shell snippet
        raise InputError(f"{name}: names must not hold line breaks or control characters; got {bad[0]!r}.")
    broken = [n for n in names if any(unicodedata.category(c) == "Cs" for c in n)]
    if broken:  # half of a UTF-16 pair: no file, table or page can encode it
        raise InputError(f"{name}: names must be valid Unicode text; got {broken[0]!r} (a lone surrogate).")
    if len(set(names)) != len(names):
        raise InputError(f"{name} must be unique; duplicated: {sorted({n for n in names if names.count(n) > 1})[:5]}.")
    return names


def _no_name(v) -> bool:
    """None, NaN or pandas' NA, where a name should be."""
    if v is None or (isinstance(v, (float, np.floating)) and np.isnan(v)):
        return True
    return type(v).__name__ == "NAType"  # pandas' NA, without importing pandas


def check_finite(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = np.argwhere(bad)[0].tolist()
        raise InputError(
            f"{name} must be finite; found {int(bad.sum())} non-finite value(s), "
            f"first at index {tuple(idx)} ({arr[tuple(idx)].item()!r})."
        )


def check_shape(name: str, arr: np.ndarray, shape: tuple) -> None:
    if arr.shape != shape:
        raise InputError(f"{name} must have shape {shape}; got {describe(arr)}.")


def check_simplex(name: str, weights, n_sources: int, atol: float = 1e-4) -> np.ndarray:
    """Return ``weights`` as float32 after checking it lies on the simplex."""
    w = as_float_array(name, weights)
    check_shape(name, w, (n_sources,))
    check_finite(name, w)
    if (w < 0).any():
        raise InputError(f"{name} must be non-negative; got minimum {w.min():.3g}.")
    total = w.sum()
    if abs(total - 1.0) > atol:
        raise InputError(
            f"{name} must sum to 1; got sum {total:.4g} for {n_sources} sources. "
            "Divide by the sum to normalise."
        )
    return (w / total).astype(np.float32)


_INT64_MAX = 2**63 - 1


def check_number(name: str, value, *, minimum: float | None = None, strict: bool = False,
                 integer: bool = False) -> float | int:
    """Return ``value`` as a Python int/float after checking it is a finite real number in range.

    Accepts Python and NumPy scalars (``np.float32(0.5)``, ``np.int64(3)``); rejects bools (``True``
    is not a step size), strings, arrays, NaN and infinity. ``minimum`` is exclusive when
    ``strict``; ``integer=True`` also requires an integer type (``2.0`` is refused).
    """
    noun = "integer" if integer else "finite number"
    if minimum == 0:  # wording kept from the first messages: "a positive finite number", "a non-negative number"
        want = f"a positive {noun}" if strict else f"a non-negative {'integer' if integer else 'number'}"
    elif minimum is not None:
        want = f"{'an' if integer else 'a'} {noun} {'>' if strict else '>='} {minimum:g}"
    else:
        want = f"{'an' if integer else 'a'} {noun}"
    ok_type = numbers.Integral if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, ok_type):
        kind = "" if isinstance(value, np.ndarray) else f" of type {type(value).__name__}"
        raise InputError(f"{name} must be {want}; got {describe(value)}{kind}.")
    try:  # a Python int past float range (10**400) overflows float(); past int64, numpy refuses it
        number = int(value) if integer else float(value)
        too_large = integer and abs(number) > _INT64_MAX
    except OverflowError:
        number, too_large = float("inf"), True
    if too_large or not np.isfinite(number) or (
            minimum is not None and (number <= minimum if strict else number < minimum)):
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:20]}... ({len(repr(value))} digits)"
        raise InputError(f"{name} must be {want}; got {shown}{' (too large)' if too_large else ''}.")
    return number


def check_outputs(outputs, name: str = "outputs"):
    """Check ``outputs`` is a ``ProxyOutputs`` (a bare matrix lacks kind and labels)."""
    from mixmin_core.solver.proxy_outputs import ProxyOutputs

    if isinstance(outputs, ProxyOutputs):
        return outputs
    hint = ""
    if isinstance(outputs, (np.ndarray, list, tuple)):
        hint = (" Wrap the matrix first: ProxyOutputs(values, kind, labels=labels) with values of shape "
                "(n_sources, n_samples) and kind 'binary', 'loglik' or 'mse' (labels for binary/mse), "
                "or load a saved one with ProxyOutputs.load(path).")
    raise InputError(f"{name} must be a ProxyOutputs; got {describe(outputs)} of type {type(outputs).__name__}.{hint}")


def check_callback(name: str, callback) -> None:
    if callback is not None and not callable(callback):
        raise InputError(f"{name} must be None or a function taking an Iterate; got {describe(callback)}.")
