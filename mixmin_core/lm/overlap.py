"""Target examples a source's text already holds (contamination), found by word n-grams.

An example counts as in a source when a run of :data:`N_WORDS` words of it (the whole example when it is
shorter, down to :data:`MIN_WORDS`) appears in the source's text as the run trains on it, words compared
lower-cased, punctuation ignored (the rule of GPT-3's and OLMo's decontamination). A method that weights
such a source is scored partly on text its final model trained on; chemistry's counterpart is
``test_molecules_in_sources``.
"""
from __future__ import annotations

import re

from mixmin_core.runs.fileio import write_json

#: Words of a matching run (13, as GPT-3's decontamination).
N_WORDS = 13
#: Examples shorter than this are not checked: a few common words say nothing about where a text came from.
MIN_WORDS = 8
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def example_grams(texts: list[str]) -> dict[int, dict[tuple, list[int]]]:
    """``{length: {word run: [example index, ...]}}`` of every run a source could share with ``texts``."""
    grams: dict[int, dict[tuple, list[int]]] = {}
    for i, text in enumerate(texts):
        w = words(text)
        if len(w) < MIN_WORDS:
            continue
        n = min(N_WORDS, len(w))
        runs = grams.setdefault(n, {})
        for j in range(len(w) - n + 1):
            runs.setdefault(tuple(w[j:j + n]), []).append(i)
    return grams


def examples_in(texts_of_source, targets: dict[str, list[str]]) -> dict[str, list[int]]:
    """``{target: sorted indices of its examples}`` that the source's documents (``texts_of_source``) hold."""
    grams = {t: example_grams(texts) for t, texts in targets.items()}
    lengths = sorted({n for g in grams.values() for n in g})
    firsts = {n: {run[0] for g in grams.values() for run in g.get(n, ())} for n in lengths}  # a cheap filter
    found: dict[str, set[int]] = {t: set() for t in targets}
    for text in texts_of_source:
        w = words(text)
        for n in lengths:
            first = firsts[n]
            for j in range(len(w) - n + 1):
                if w[j] in first:
                    run = tuple(w[j:j + n])
                    for t, g in grams.items():
                        found[t].update(g.get(n, {}).get(run, ()))
    return {t: sorted(found[t]) for t in targets}


def source_overlap(*, path: str, max_chars: int, targets: dict, output: str) -> dict:
    """Unit: which examples of each target the source at ``path`` holds (in its first ``max_chars`` characters,
    as the run trains on it) -> ``output`` (JSON ``{target: [index, ...]}``)."""
    from mixmin_core.lm.experiment import capped_texts

    found = examples_in(capped_texts(path, max_chars), targets)
    write_json(output, found)
    return {"n_found": sum(len(v) for v in found.values()), "compute": 0.0}
