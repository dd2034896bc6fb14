"""Target examples a source's text already holds (contamination), found by word n-grams; and documents
that several sources hold.

An example counts as in a source when a run of :data:`N_WORDS` words of it (the whole example when it is
shorter, down to :data:`MIN_WORDS`) appears in the source's text as the run trains on it, words compared
lower-cased, punctuation ignored (the rule of GPT-3's and OLMo's decontamination). A method that weights
such a source is scored partly on text its final model trained on; chemistry's counterpart is
``test_molecules_in_sources``.

A document counts as in two sources when its text is the same in both, case and spacing ignored (a 64-bit
hash of it). Sources that share most of their documents train near-identical proxies, so MixMin can put
their weight on either, and a mixture of both repeats the shared documents.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np

from mixmin_core.runs.fileio import atomic_path, write_json

#: Words of a matching run (13, as GPT-3's decontamination).
N_WORDS = 13
#: Examples shorter than this are not checked: a few common words say nothing about where a text came from.
MIN_WORDS = 8
#: Two sources' shared documents are recorded from this share of the smaller source's documents, and warned
#: about from :data:`SHARED_WARNED` of either source's.
SHARED_NOTED, SHARED_WARNED = 0.01, 0.5
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


def document_hashes(*, path: str, max_chars: int, output: str) -> dict:
    """Unit: the sorted distinct 64-bit hashes of the documents of the source at ``path`` as the run trains on
    them (its first ``max_chars`` characters), case and spacing ignored -> ``output`` (``.npy``)."""
    from mixmin_core.lm.experiment import capped_texts

    texts = (" ".join(t.lower().split()) for t in capped_texts(path, max_chars))
    hashes = np.unique(np.fromiter((int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
                                    for t in texts if t), dtype=np.uint64))  # blank documents share nothing
    with atomic_path(output) as tmp, open(tmp, "wb") as fh:
        np.save(fh, hashes)
    return {"documents": int(hashes.size), "compute": 0.0}


def shared_documents(hashes: dict[str, np.ndarray]) -> list[dict]:
    """Pairs of sources that hold the same documents (at least :data:`SHARED_NOTED` of the smaller source's), most
    shared first: ``[{"sources": [a, b], "shared": k, "documents": [n_a, n_b]}]`` (``hashes``: each source's distinct
    document hashes). One sort of all the hashes, so hundreds of sources cost what their documents do, not the
    square of their number."""
    names = list(hashes)
    values = np.concatenate([hashes[n] for n in names]) if names else np.empty(0, np.uint64)
    owner = np.repeat(np.arange(len(names)), [hashes[n].size for n in names])
    order = np.argsort(values, kind="stable")
    values, owner = values[order], owner[order]
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    counts = np.diff(np.r_[starts, values.size])
    pairs: Counter = Counter()
    for start, count in zip(starts[counts > 1], counts[counts > 1], strict=True):
        held = owner[start:start + count]
        pairs.update((int(a), int(b)) for i, a in enumerate(held) for b in held[i + 1:])
    sizes = [int(hashes[n].size) for n in names]
    return [{"sources": [names[a], names[b]], "shared": k, "documents": [sizes[a], sizes[b]]}
            for (a, b), k in sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
            if k >= SHARED_NOTED * min(sizes[a], sizes[b])]


def warned(pair) -> bool:
    """Whether an entry of :func:`shared_documents` (as ``dataset.json`` records it) is warned about: the shared
    documents are at least :data:`SHARED_WARNED` of either source's. False for an entry that is no such record."""
    try:
        (_, _), (n_a, n_b), k = pair["sources"], pair["documents"], pair["shared"]
        return k >= SHARED_WARNED * min(n_a, n_b) > 0
    except (TypeError, KeyError, ValueError):
        return False
