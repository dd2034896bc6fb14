"""Text sources and target tasks for the language-model experiment (no torch needed here).

Sources are a folder of domains, one ``<source>.jsonl`` or ``<source>.jsonl.gz`` per domain with
a ``text`` field (or SlimPajama shards grouped by ``meta.redpajama_set_name``). Targets are
multiple-choice tasks (PIQA, ARC-Easy, SciQ) kept as question + correct answer with their choices,
OpenWebMath documents, or a user ``jsonl`` with a ``text`` field.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.runs.fileio import not_a_file
from mixmin_core.solver.validation import check_names, check_new_names, check_number

log = logging.getLogger("mixmin.lm.data")

TARGET_KINDS = ("piqa", "arc_easy", "sciq", "openwebmath", "jsonl")
SUFFIXES = (".jsonl.gz", ".jsonl")


def _open_lines(path: Path):
    """The file's lines as bytes, split on ``\n`` only (decoded one by one, so an error names its line)."""
    with open(path, "rb") as fh:  # by name, or by content: a gzip file under another name reads too
        gzipped = path.name.lower().endswith(".gz") or fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` from a ``.jsonl`` or ``.jsonl.gz`` file (blank lines skipped).

    Lines are split on ``"\\n"`` only (texts may hold U+2028, which ``splitlines`` would split on).

    Raises
    ------
    InputError
        If the file does not exist, is not valid gzip/UTF-8, or a line is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file {not_a_file(path)}; expected a .jsonl or .jsonl.gz file.")
    if path.suffix == ".zst":
        raise InputError(f"{path}: zstd-compressed (as SlimPajama ships its shards); decompress it first "
                         f"(zstd -d {path.name}) or recompress with gzip.")
    i = 0
    try:
        with _open_lines(path) as fh:
            for i, raw in enumerate(fh, 1):
                # a byte-order mark (some editors write one) is skipped, not read as part of the first record
                line = raw.decode("utf-8-sig" if i == 1 else "utf-8")
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: line {i} is not valid JSON ({exc.msg} column {exc.colno}); "
                                     "expected one JSON object per line.") from None
                if not isinstance(rec, dict):
                    raise InputError(f"{path}: line {i} is a {type(rec).__name__}, expected a JSON object.")
                if "\\ud" in line.lower():  # an escaped UTF-16 surrogate: fine in a pair, not alone
                    _check_surrogates(rec, path, i)
                yield i, rec
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: line {i} is not UTF-8 ({exc.reason}: byte {exc.object[exc.start:exc.start + 1]!r} "
                         f"at byte {exc.start + 1} of the line); save the file as UTF-8.") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read as {'gzip ' if path.name.endswith('.gz') else ''}"
                         f"UTF-8 JSON Lines ({exc}).") from None


def _check_surrogates(value, path: Path, line: int) -> None:
    """An InputError for a string holding a lone UTF-16 surrogate (``"\\ud83d"`` alone: half of an emoji, cut
    off when the text was scraped): no tokenizer can encode it."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            _check_surrogates(item, path, line)
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(f"{path}: line {line} holds a lone UTF-16 surrogate ({value[exc.start]!r}, e.g. half of "
                             "an emoji cut off); remove it or write the whole character.") from None


def read_jsonl(path: str | os.PathLike, *, limit: int | None = None) -> list[dict]:
    """All records of a JSON Lines file (at most ``limit``). See :func:`iter_jsonl`."""
    limit = _check_limit(limit)
    out = []
    for _, rec in iter_jsonl(path):
        if limit is not None and len(out) >= limit:
            break
        out.append(rec)
    return out


def read_texts(path: str | os.PathLike, *, field: str = "text", limit: int | None = None) -> list[str]:
    """The non-empty ``field`` strings of a JSON Lines file (at most ``limit``). See :func:`iter_texts`."""
    limit = _check_limit(limit)
    if limit == 0:
        return []
    texts = []
    for text in iter_texts(path, field=field):
        texts.append(text)
        if limit is not None and len(texts) >= limit:
            break
    return texts


def iter_texts(path: str | os.PathLike, *, field: str = "text") -> Iterator[str]:
    """Yield the non-empty ``field`` strings of a JSON Lines file one at a time (a large source is
    never held whole).

    Raises
    ------
    InputError
        If a record has no ``field`` (or it is not a string), or the file holds no non-empty text.
    """
    found = False
    for i, rec in iter_jsonl(path):
        value = rec.get(field)
        if not isinstance(value, str):
            what = (f"holds {type(value).__name__ if value is not None else 'null'} as {field!r}, not text" if field in rec
                    else f"has no field {field!r} (fields: {sorted(rec)[:8]})")
            raise InputError(f"{path}: line {i} {what}; every record needs a {field!r} string.")
        if value.strip():
            found = True
            yield value
    if not found:
        raise InputError(f"{path}: no non-empty {field!r} records; a source or target file needs at least one.")


def source_name(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):  # web.JSONL too
            return name[: -len(suffix)]
    return path.stem


def find_source_files(folder: str | os.PathLike, *, names: list[str] | None = None) -> dict[str, Path]:
    """``{source: file}`` for every ``*.jsonl``/``*.jsonl.gz`` in ``folder`` (sorted by name).

    Raises
    ------
    InputError
        If the folder does not exist, holds fewer than two source files, or a requested name is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"sources folder {folder} {'is a file' if folder.exists() else 'not found'}; expected a folder of "
                         "<source>.jsonl(.gz) files.")
    files: dict[str, Path] = {}
    skipped = []
    for p in sorted(folder.iterdir()):
        if p.name.lower().endswith(SUFFIXES) and p.is_file():
            if source_name(p) in files:  # a.jsonl and a.jsonl.gz: one would silently shadow the other
                raise InputError(f"sources folder {folder}: {files[source_name(p)].name} and {p.name} are both source "
                                 f"{source_name(p)!r}; keep one of them.")
            files[source_name(p)] = p
        elif not p.name.startswith("."):  # a domain saved as .json or .txt was dropped without a word
            skipped.append(p.name)
    if skipped:
        log.warning("sources folder %s: %d entr%s not a <source>.jsonl(.gz) file and left out: %s", folder,
                    len(skipped), "y is" if len(skipped) == 1 else "ies are", ", ".join(skipped[:10]))
    check_new_names(f"sources folder {folder}: file names", list(files))  # they become source names, in exports too
    names = None if names is None else check_names("names", names)
    if names:
        missing = [n for n in names if n not in files]
        if missing:
            raise InputError(f"sources {missing} not found in {folder}; available: {sorted(files)}.")
        if len(names) < 2:
            raise InputError(f"sources {list(names)} picks {len(names)} of the {len(files)} source files in {folder}; "
                             "mixing needs at least two.")
        files = {n: files[n] for n in names}
    if len(files) < 2:
        raise InputError(f"sources folder {folder} holds {len(files)} source file(s); mixing needs at least two "
                         "<source>.jsonl(.gz) files" + (f" (left out: {', '.join(skipped[:10])})." if skipped else "."))
    return files


def read_slimpajama(paths: list[str | os.PathLike], *, max_docs_per_source: int | None = None) -> dict[str, list[str]]:
    """Group SlimPajama records (``text`` + ``meta.redpajama_set_name``) by source.

    Raises
    ------
    InputError
        If a record lacks ``text`` or ``meta.redpajama_set_name`` (naming the file and line).
    """
    groups: dict[str, list[str]] = {}
    for path in paths:
        for i, rec in iter_jsonl(path):
            meta = rec.get("meta")
            name = meta.get("redpajama_set_name") if isinstance(meta, dict) else None
            if not isinstance(rec.get("text"), str) or not isinstance(name, str):
                raise InputError(f"{path}: line {i} is not a SlimPajama record; expected 'text' and "
                                 f"'meta.redpajama_set_name', got fields {sorted(rec)[:8]}.")
            docs = groups.setdefault(name, [])
            if rec["text"].strip() and (max_docs_per_source is None or len(docs) < max_docs_per_source):
                docs.append(rec["text"])
    return dict(sorted(groups.items()))


def write_slimpajama_folder(groups: dict[str, list[str]], folder: str | os.PathLike) -> dict[str, Path]:
    """Write grouped SlimPajama texts as a source folder (one ``<source>.jsonl.gz`` each)."""
    from mixmin_core.runs.fileio import atomic_path

    out = {}
    for name, texts in groups.items():
        path = Path(folder) / f"{name}.jsonl.gz"
        with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as fh:
            for text in texts:
                fh.write(json.dumps({"text": text}) + "\n")
        out[name] = path
    return out


@dataclass(frozen=True)
class TargetExample:
    """One target sample: ``prefix`` (the question; empty for documents) and ``answer`` (the
    correct answer, or the whole document), with the answer ``choices`` and ``label`` (index of
    the correct choice) for multiple-choice tasks."""

    prefix: str
    answer: str
    choices: tuple = ()
    label: int = -1
    sample_id: str = ""

    @property
    def text(self) -> str:
        return f"{self.prefix} {self.answer}" if self.prefix else self.answer

    @property
    def is_choice(self) -> bool:
        return len(self.choices) >= 2


def _shuffled_choices(correct: str, distractors: list[str], key: str) -> tuple[tuple, int]:
    """Deterministic order (keyed by the sample) so the correct answer is not always first. A distractor that
    repeats the answer or another distractor is dropped (two SciQ test items listed the answer twice, so every
    method scored them wrong: the first copy wins a tie)."""
    choices = list(dict.fromkeys([correct, *distractors]))
    order = np.random.default_rng(zlib.crc32(key.encode())).permutation(len(choices))
    shuffled = tuple(choices[i] for i in order)
    return shuffled, int(np.flatnonzero(order == 0)[0])


def _parse_record(kind: str, rec: dict, i: int, where: str) -> TargetExample | None:
    """A ``TargetExample`` or None when the record carries no answer (unlabelled); ``i`` is its line
    number and ``where`` (``"path: line i"``) starts the errors: a field of the wrong type is one, never
    a silent guess."""
    def text(name, optional=False):
        value = rec.get(name)
        if optional and value in (None, ""):
            return None
        if not isinstance(value, str):
            raise InputError(f"{where}: field {name!r} must be a string for target kind {kind!r}; got {value!r}.")
        return value

    def choices(value):
        if isinstance(value, dict) and isinstance(value.get("text"), list):  # Hugging Face's layout
            value = value["text"]
        if not isinstance(value, list) or len(value) < 2 or not all(isinstance(c, str) for c in value):
            raise InputError(f"{where}: field 'choices' must be a list of at least two answer strings (or "
                             f"{{'text': [...], 'label': [...]}}) for target kind {kind!r}; got {value!r}.")
        blank = [k for k, c in enumerate(value) if not c.strip()]
        repeated = sorted({c for c in value if value.count(c) > 1})
        if blank or repeated:  # an answer that is also another choice (or nothing) is never scored as it should be
            what = f"choice {blank[0]} is blank" if blank else f"{repeated[0]!r} is two of the choices"
            raise InputError(f"{where}: {what}; each choice must be a different, non-empty answer.")
        return tuple(value)

    def label(n_choices):
        """The correct choice's index; None when unlabelled (absent, null or -1)."""
        value = rec.get("label")
        if value is None and rec.get("answerKey") not in (None, "") and isinstance(rec.get("choices"), dict):
            keys = [str(k) for k in rec["choices"].get("label") or []]  # Hugging Face's ARC: "B" among labels A-D
            if str(rec["answerKey"]) not in keys:  # an answer given that names no choice: not an unlabelled record
                raise InputError(f"{where}: 'answerKey' {rec['answerKey']!r} is not one of the choices' labels "
                                 f"{keys!r}; it must name the correct choice.")
            value = keys.index(str(rec["answerKey"]))  # ARC's numbered questions: answerKey "1" (or 1), labels "1"-"4"
        if value is None or value == -1:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n_choices:
            raise InputError(f"{where}: field 'label' must be the correct choice's index, an integer in "
                             f"0..{n_choices - 1} (or null or -1 for an unlabelled record); got {value!r}.")
        return value

    if kind == "piqa":
        options = (text("sol1"), text("sol2"))
        question, correct = text("goal"), label(2)
        return None if correct is None else TargetExample(question, options[correct], options, correct,
                                                           str(rec.get("idx", i)))
    if kind == "arc_easy" or (kind == "jsonl" and rec.get("choices") is not None and rec.get("label") is not None):
        question, options = text("question"), choices(rec.get("choices"))
        correct = label(len(options))
        return None if correct is None else TargetExample(question, options[correct], options, correct,
                                                           str(rec.get("id", i)))
    if kind == "sciq":
        question, correct = text("question"), text("correct_answer", optional=True)
        if correct is None:
            return None
        distractors = [d for d in (text(f"distractor{k}", optional=True) for k in (1, 2, 3)) if d]
        options, index = _shuffled_choices(correct, distractors, question)
        return TargetExample(question, correct, options, index, str(rec.get("idx", i)))
    # openwebmath and user jsonl: documents
    document = text("text", optional=True)
    if document is None or not document.strip():
        return None
    return TargetExample("", document, (), -1, str(rec.get("url") or rec.get("id") or i))


_REQUIRED = {"piqa": ("goal", "sol1", "sol2"), "arc_easy": ("question", "choices"), "sciq": ("question",),
             "openwebmath": ("text",), "jsonl": ()}


def load_target(kind: str, path: str | os.PathLike, *, limit: int | None = None) -> list[TargetExample]:
    """Read a target file of ``kind`` (one of ``TARGET_KINDS``) into ``TargetExample`` objects.

    Records without an answer (e.g. PIQA's unlabelled test split) are dropped; at most ``limit`` kept.
    ARC may also come in Hugging Face's layout (``choices: {text, label}`` with ``answerKey``).

    Raises
    ------
    InputError
        If ``kind`` is unknown, a record lacks the fields of its kind or has one of the wrong type, a user
        record has no ``text`` (nor question/choices/label), or no record carries an answer.
    """
    if kind not in TARGET_KINDS:
        raise InputError(f"target kind must be one of {TARGET_KINDS}; got {kind!r}.")
    limit = _check_limit(limit)
    out, dropped = [], 0
    for i, rec in iter_jsonl(path):
        if limit is not None and len(out) >= limit:
            break
        missing = [f for f in _REQUIRED[kind] if f not in rec]
        if kind == "jsonl" and "text" not in rec and not {"question", "choices", "label"} <= set(rec):
            missing = ["text"]
        if missing == ["text"] and {"question", "choices"} & set(rec):  # a question, not a document
            hint = " (this is Hugging Face's ARC layout: use kind: arc_easy)" if "answerKey" in rec else ""
            raise InputError(f"{path}: line {i} reads as a multiple-choice question, which needs 'question', "
                             f"'choices' and 'label' (the correct choice's index){hint}; it has {sorted(rec)[:8]}.")
        if missing:
            raise InputError(f"{path}: line {i} lacks field(s) {missing} required for target kind {kind!r} "
                             f"(fields: {sorted(rec)[:8]}).")
        example = _parse_record(kind, rec, i, f"{path}: line {i}")
        if example is None:
            dropped += 1
            continue
        if out and example.is_choice != out[0].is_choice:  # scored one way or the other: the first record decided
            what = {True: "multiple-choice question", False: "document"}
            raise InputError(f"{path}: line {i} is a {what[example.is_choice]}, but the records before it are "
                             f"{what[out[0].is_choice]}s; a target is all documents or all questions: split the file.")
        out.append(example)
    if not out and limit != 0:
        if not dropped:
            raise InputError(f"{path}: the file holds no records; a target needs at least one.")
        raise InputError(f"{path}: no record of target kind {kind!r} can be scored ({dropped} without an answer, or "
                         "documents with empty text); use a labelled split (e.g. validation instead of test_unlabeled), "
                         "or documents with text.")
    if dropped:
        log.warning("%s: dropped %d record(s) without an answer (or documents with empty text)", path, dropped)
    return out


def _check_limit(limit) -> int | None:
    """``limit`` (None: no limit; 0 is allowed and reads nothing) or an InputError."""
    return None if limit is None else check_number("limit", limit, minimum=0, integer=True)


def split_indices(n: int, *, seed: int, trial: int, fit_fraction: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(n)`` into fit (``fit_fraction``) and held-out positions."""
    if check_number("n", n, integer=True) < 2:
        raise InputError(f"need at least 2 examples to split into fit and held-out; got {n}.")
    if not 0 < check_number("fit_fraction", fit_fraction) < 1:
        raise InputError(f"fit_fraction must lie strictly between 0 and 1; got {fit_fraction!r}.")
    order = np.random.default_rng([seed, 7, trial]).permutation(n)
    n_fit = min(max(1, int(round(fit_fraction * n))), n - 1)
    return np.sort(order[:n_fit]), np.sort(order[n_fit:])
