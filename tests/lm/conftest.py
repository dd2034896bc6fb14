"""Small real models for the LM tests: a BPE trained on real source text, a two-layer GPT-NeoX."""
import numpy as np
import pytest

from mixmin_core.lm import data
from mixmin_core.lm import tokenizer as T
from mixmin_core.lm.models import ModelPreset

MICRO = ModelPreset("micro", hidden_size=32, n_layers=2, n_heads=2, context=64, tokenizer="bpe",
                    bpe_vocab_size=320, batch_size=8, learning_rate=3e-3)


@pytest.fixture(scope="session")
def source_texts():
    import os
    from pathlib import Path

    folder = Path(os.environ["MIXMIN_DATA_DIR"]) / "text" / "source"
    return {name: data.read_texts(folder / f"{name}.jsonl.gz", limit=20) for name in ("c4", "github")}


@pytest.fixture(scope="session")
def bpe(tmp_path_factory, source_texts):
    texts = [t[:5000] for docs in source_texts.values() for t in docs]
    return T.load_tokenizer(T.train_bpe(iter(texts), vocab_size=320, output=tmp_path_factory.mktemp("tok") / "bpe.json"))


@pytest.fixture(scope="session")
def streams(bpe, source_texts):
    return [T.token_stream(bpe, [t[:5000] for t in docs], max_tokens=4000) for docs in source_texts.values()]


@pytest.fixture(scope="session")
def micro_model(bpe, streams):
    from mixmin_core.lm.training import train_lm

    return train_lm(preset=MICRO, vocab_size=320, streams=streams, weights=[0.5, 0.5], n_tokens=8 * 64 * 30,
                    seed=0, n_threads=1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
