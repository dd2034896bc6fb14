"""Tokenizers: the GPT-NeoX / Pythia tokenizer (GPU presets) or a small byte-level BPE trained
on the sources (CPU presets, where a 50k vocabulary would dominate the compute).

Both are ``tokenizers.Tokenizer`` objects with ``<|endoftext|>`` as token 0, used as the document
separator when packing and as the start token when scoring.
"""
from __future__ import annotations

import os
import re
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


#: Longest piece of a document the tokenizer sees at once, and most characters it encodes per call: its Encoding
#: objects take about 165 bytes a character (a one-line 30 MB document took a job to 5.9 GB, and aborted it under a
#: memory limit).
PIECE_CHARS = 100_000
BATCH_CHARS = 2_000_000
_BETWEEN_WORDS = re.compile(r"\S\s\S")


def _pieces(text: str) -> list[str]:
    """``text`` cut into pieces of at most :data:`PIECE_CHARS`, each cut before a single space between two words:
    a byte-level BPE splits words there anyway, so the pieces' tokens are the whole text's (but where one "word"
    runs past 100,000 characters, a URL or a base64 blob, cut inside it: a token or two there differ)."""
    pieces, start = [], 0
    while len(text) - start > PIECE_CHARS:
        end = start + PIECE_CHARS
        cut = None
        for m in _BETWEEN_WORDS.finditer(text, max(start, end - 10_000), end + 1):
            cut = m.start() + 1
        cut = cut if cut and cut > start else end  # one word of 100,000 characters: cut it
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def _batches(texts: list[str]):
    """``(index, piece)`` lists of about :data:`BATCH_CHARS` characters, every text's pieces in order."""
    batch, size = [], 0
    for i, text in enumerate(texts):
        for piece in _pieces(text):
            if batch and size + len(piece) > BATCH_CHARS:
                yield batch
                batch, size = [], 0
            batch.append((i, piece))
            size += len(piece)
    if batch:
        yield batch


def encode(tok, texts: list[str]) -> list[np.ndarray]:
    """Token ids of each text (no special tokens added), as int32 arrays; long texts in pieces (:func:`_pieces`)."""
    texts = list(texts)  # (a generator, read once)
    parts: list[list[np.ndarray]] = [[] for _ in texts]
    for batch in _batches(texts):
        encoded = tok.encode_batch([piece for _, piece in batch], add_special_tokens=False)
        for (i, _), e in zip(batch, encoded):
            parts[i].append(np.asarray(e.ids, dtype=np.int32))
    return [np.concatenate(p) if len(p) > 1 else p[0] if p else np.zeros(0, np.int32) for p in parts]


def token_stream(tok, texts: list[str], *, max_tokens: int | None = None) -> np.ndarray:
    """Documents encoded and packed into one stream, each followed by ``<|endoftext|>``.

    Returned as uint16 when the vocabulary fits (it does for Pythia's 50,277), else int32. Documents are encoded
    about :data:`BATCH_CHARS` characters at a time, so memory does not grow with a document's length.
    """
    eos = eos_id(tok)
    dtype = np.uint16 if tok.get_vocab_size() <= np.iinfo(np.uint16).max else np.int32
    parts, total, start = [], 0, 0
    while start < len(texts) and (max_tokens is None or total < max_tokens):
        end, chars = start, 0  # the next documents up to BATCH_CHARS (at least one)
        while end < len(texts) and (end == start or chars + len(texts[end]) <= BATCH_CHARS):
            chars += len(texts[end])
            end += 1
        for ids in encode(tok, texts[start:end]):
            parts.append(np.append(ids, eos).astype(dtype))
            total += parts[-1].size
        start = end
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    return stream[:max_tokens] if max_tokens is not None else stream
