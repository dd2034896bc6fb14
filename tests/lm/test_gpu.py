"""The LM path on CUDA (marker ``gpu``; skipped without a GPU): training runs on the device under bf16
autocast and learns, a saved model scores the same on the GPU as on the CPU, and ``auto`` picks CUDA.

Self-contained (synthetic text, a BPE trained here), so it also runs on a GPU machine without the data folder.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

from mixmin_core.lm import tokenizer as T
from mixmin_core.lm.data import TargetExample
from mixmin_core.lm.models import model_vocab_size
from mixmin_core.lm.scoring import score_examples
from mixmin_core.lm.training import load_model, pick_device, save_model, train_lm

from .conftest import MICRO

ANIMALS, NUMBERS = ["cat", "dog", "cow", "hen", "fox", "owl"], ["one", "two", "three", "four", "five", "six"]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    rng = np.random.default_rng(0)
    texts = {"animals": [" ".join(rng.choice(ANIMALS, 80)) for _ in range(60)],
             "numbers": [" ".join(rng.choice(NUMBERS, 80)) for _ in range(60)]}
    tok = T.load_tokenizer(T.train_bpe(iter(t for docs in texts.values() for t in docs), vocab_size=320,
                                       output=tmp_path_factory.mktemp("tok") / "bpe.json"))
    streams = [T.token_stream(tok, docs, max_tokens=20_000) for docs in texts.values()]
    examples = [TargetExample("count:", " ".join(rng.choice(NUMBERS, 6)), (), -1, str(i)) for i in range(40)]
    return tok, streams, examples, model_vocab_size(MICRO, tok.get_vocab_size())


def test_auto_picks_cuda_and_a_model_learns_there(setting):
    _, streams, _, vocab = setting
    assert pick_device("auto") == "cuda"
    result = train_lm(preset=MICRO, vocab_size=vocab, streams=streams, weights=[0.5, 0.5], n_tokens=60_000, seed=0)
    assert result.info["device"] == "cuda" and next(result.model.parameters()).device.type == "cuda"
    assert np.isfinite(result.info["final_loss"]) and result.info["final_loss"] < 0.5 * result.info["first_loss"]


def test_a_saved_model_scores_the_same_on_the_gpu_as_on_the_cpu(setting, tmp_path):
    tok, streams, examples, vocab = setting
    result = train_lm(preset=MICRO, vocab_size=vocab, streams=streams, weights=[0.2, 0.8], n_tokens=30_000, seed=1,
                      device="cuda")
    save_model(result.model, tmp_path / "m.pt", meta={"preset": "micro", "vocab_size": vocab, **result.info})
    scores = {}
    for device in ("cpu", "cuda"):
        model, _ = load_model(tmp_path / "m.pt", device=device)
        scores[device] = score_examples(model, tok, examples, context=MICRO.context, device=device)
    np.testing.assert_array_equal(scores["cuda"].n_cont, scores["cpu"].n_cont)
    np.testing.assert_allclose(scores["cuda"].cont_logprob, scores["cpu"].cont_logprob, rtol=1e-3, atol=1e-3)


def test_scoring_runs_where_the_model_is_by_default(setting):
    """score_examples defaulted to device='cpu': a model on the GPU (as benchmarks/lm.py trains it there) failed
    with "Expected all tensors to be on the same device"."""
    tok, streams, examples, vocab = setting
    result = train_lm(preset=MICRO, vocab_size=vocab, streams=streams, weights=[0.5, 0.5], n_tokens=8_000, seed=2)
    scores = score_examples(result.model, tok, examples, context=MICRO.context)
    assert np.isfinite(scores.cont_logprob).all()
