"""Tokenizers: the GPT-NeoX / Pythia tokenizer (GPU presets) or a small byte-level BPE trained
on the sources (CPU presets, where a 50k vocabulary would dominate the compute).

Both are ``tokenizers.Tokenizer`` objects with ``<|endoftext|>`` as token 0, used as the document
separator when packing and as the start token when scoring.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.runs.fileio import atomic_path

EOS = "<|endoftext|>"
PAD = "<|padding|>"


def load_tokenizer(path: str | os.PathLike):
    """A ``tokenizers.Tokenizer`` from a ``tokenizer.json`` file.

    Raises
    ------
    InputError
        If the file does not exist or is not a tokenizer file, or it has no ``<|endoftext|>`` token.
    """
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise InputError(f"tokenizer file {path} not found; give the path of a tokenizer.json "
                         "(e.g. ../shared/data/text/tokenizer/gpt-neox-20b/tokenizer.json).")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises a bare Exception on malformed JSON
        raise InputError(f"{path}: not a tokenizers JSON file ({exc}).") from None
    if tok.token_to_id(EOS) is None:
        raise InputError(f"{path}: tokenizer has no {EOS!r} token; it is needed as the document separator.")
    return tok


def pythia_tokenizer_path(path: str | os.PathLike | None = None) -> Path:
    """The Pythia tokenizer.json: ``path`` if given, else the registry (local copy, cache or download)."""
    from mixmin_core.runs.datasets import resolve

    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"tokenizer_path {p}: file not found; expected a tokenizer.json file "
                             "(e.g. ../shared/data/text/tokenizer/gpt-neox-20b/tokenizer.json).")
        return p
    return resolve("pythia_tokenizer")


#: The smallest BPE vocabulary: 256 bytes, the two special tokens and some merges.
MIN_BPE_VOCAB = 300


def train_bpe(texts: Iterable[str], *, vocab_size: int, output: str | os.PathLike) -> Path:
    """Train a byte-level BPE tokenizer (GPT-2/NeoX style) on ``texts``; write it to ``output``.

    Token 0 is ``<|endoftext|>`` and token 1 ``<|padding|>``, as in the Pythia tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_BPE_VOCAB:
        raise InputError(f"vocab_size must be at least {MIN_BPE_VOCAB} (256 bytes + merges); got {vocab_size}.")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    with atomic_path(output) as tmp:
        tok.save(str(tmp))
    return Path(output)


def eos_id(tok) -> int:
    return int(tok.token_to_id(EOS))


def pad_id(tok) -> int:
    found = tok.token_to_id(PAD)
    return eos_id(tok) if found is None else int(found)


def encode(tok, texts: list[str]) -> list[np.ndarray]:
    """Token ids of each text (no special tokens added), as int32 arrays."""
    if not texts:
        return []
    return [np.asarray(e.ids, dtype=np.int32) for e in tok.encode_batch(list(texts), add_special_tokens=False)]


def token_stream(tok, texts: list[str], *, max_tokens: int | None = None, batch: int = 256) -> np.ndarray:
    """Documents encoded and packed into one stream, each followed by ``<|endoftext|>``.

    Returned as uint16 when the vocabulary fits (it does for Pythia's 50,277), else int32.
    """
    eos = eos_id(tok)
    dtype = np.uint16 if tok.get_vocab_size() <= np.iinfo(np.uint16).max else np.int32
    parts, total = [], 0
    for start in range(0, len(texts), batch):
        for ids in encode(tok, texts[start:start + batch]):
            parts.append(np.append(ids, eos).astype(dtype))
            total += parts[-1].size
        if max_tokens is not None and total >= max_tokens:
            break
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    return stream[:max_tokens] if max_tokens is not None else stream
