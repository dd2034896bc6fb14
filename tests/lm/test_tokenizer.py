"""Tokenizers: the real Pythia tokenizer and a BPE trained here."""
import numpy as np
import pytest

from mixmin_core.errors import InputError
from mixmin_core.lm import tokenizer as T


def test_pythia_tokenizer_from_registry():
    tok = T.load_tokenizer(T.pythia_tokenizer_path())
    assert tok.get_vocab_size() == 50277 and T.eos_id(tok) == 0 and T.pad_id(tok) == 1
    assert T.encode(tok, ["Hello world"])[0].tolist() == [12092, 1533]


def test_bpe_trained_on_texts_round_trips(tmp_path):
    texts = ["the cat sat on the mat. " * 20, "def add(a, b):\n    return a + b\n" * 20, "caf\u00e9 \u2028 na\u00efve"]
    path = T.train_bpe(iter(texts), vocab_size=320, output=tmp_path / "bpe.json")
    tok = T.load_tokenizer(path)
    assert tok.token_to_id(T.EOS) == 0 and tok.token_to_id(T.PAD) == 1 and tok.get_vocab_size() <= 320
    ids = T.encode(tok, [texts[2]])[0]
    assert tok.decode(ids.tolist()) == texts[2]  # byte-level: any text round-trips
    stream = T.token_stream(tok, texts)
    assert stream.dtype == np.uint16 and (stream == 0).sum() == 3 and stream[-1] == 0


def test_token_stream_respects_max_tokens(tmp_path):
    tok = T.load_tokenizer(T.train_bpe(iter(["abc abd abe " * 50]), vocab_size=300, output=tmp_path / "t.json"))
    assert T.token_stream(tok, ["abc abd " * 100] * 10, max_tokens=123).size == 123


def test_a_long_document_is_encoded_in_pieces_to_the_same_tokens(monkeypatch):
    """A one-line 30 MB document took a job to 5.9 GB (the tokenizer's Encodings take about 165 bytes a character):
    long documents go to the tokenizer in pieces cut between words, a few MB at a time, and give the same tokens."""
    from mixmin_core.lm import data as lmdata
    from mixmin_core.runs.datasets import resolve

    tok = T.load_tokenizer(T.pythia_tokenizer_path())
    texts = [t for _, t in zip(range(40), lmdata.iter_texts(resolve("text/wikipedia")))]
    words = "  ".join(texts)  # double spaces too
    long = words + " " + "x" * 3000  # and one word longer than a piece, at the end
    whole = np.asarray(tok.encode(words, add_special_tokens=False).ids)
    monkeypatch.setattr(T, "PIECE_CHARS", 1000)
    monkeypatch.setattr(T, "BATCH_CHARS", 5000)
    pieces = T._pieces(long)
    assert len(pieces) > 100 and max(map(len, pieces)) <= 1000 and "".join(pieces) == long
    (ids,) = T.encode(tok, [long])
    np.testing.assert_array_equal(ids[:whole.size], whole)  # cut between words: the same tokens
    assert [a.tolist() for a in T.encode(tok, (t for t in ["hello world", "abc"]))] == [  # a generator: it gave
        a.tolist() for a in T.encode(tok, ["hello world", "abc"])]                    # empty arrays
    stream = T.token_stream(tok, ["short one", long, "short two"])
    sizes = [a.size for a in T.encode(tok, ["short one", long, "short two"])]
    assert stream.size == sum(sizes) + 3 and (stream == T.eos_id(tok)).sum() == 3


def test_error_tokenizer_path_missing(tmp_path):
    with pytest.raises(InputError, match=r"tokenizer_path .*missing.json: file not found"):
        T.pythia_tokenizer_path(tmp_path / "missing.json")
    with pytest.raises(InputError, match=r"tokenizer file .*missing.json not found"):
        T.load_tokenizer(tmp_path / "missing.json")


def test_error_not_a_tokenizer(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match=r"tokenizer.json: not a tokenizers JSON file"):
        T.load_tokenizer(bad)


def test_error_vocab_too_small(tmp_path):
    with pytest.raises(InputError, match=r"vocab_size must be at least 300"):
        T.train_bpe(iter(["x"]), vocab_size=100, output=tmp_path / "t.json")
