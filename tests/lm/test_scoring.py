"""Log-prob scoring against an unbatched reference; multiple-choice accuracy."""
import numpy as np
import pytest

from mixmin_core.lm.data import TargetExample
from mixmin_core.lm.scoring import _fit, choice_accuracy, score_examples, score_pairs
from mixmin_core.lm.tokenizer import encode


def _reference_logprob(model, ids):
    """Sum of log p(token_t | tokens_<t) for t >= 1 of one unpadded sequence."""
    import torch

    x = torch.tensor([ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
    return logp[torch.arange(len(ids) - 1), x[0, 1:]].numpy()


def test_batched_padded_scores_match_unbatched(micro_model, bpe):
    model = micro_model.model
    texts = [("How do I boil an egg?", " Put it in hot water."), ("2+2 is", " 4"), ("", "A whole document here.")]
    prefixes = encode(bpe, [p for p, _ in texts])
    conts = encode(bpe, [c for _, c in texts])
    s = score_pairs(model, prefixes, conts, bos=0, pad=1, context=64, batch_size=2)
    for i, (p, c) in enumerate(zip(prefixes, conts)):
        ref = _reference_logprob(model, [0, *p, *c])
        assert s.n_prefix[i] == p.size and s.n_cont[i] == c.size
        assert s.prefix_logprob[i] == pytest.approx(ref[: p.size].sum(), abs=1e-3)
        assert s.cont_logprob[i] == pytest.approx(ref[p.size:].sum(), abs=1e-3)
    assert (s.total_logprob < 0).all()


def test_fit_truncates_prefix_first_then_document_tail():
    p, c = _fit(np.arange(10), np.arange(5), 8)
    assert p.tolist() == [7, 8, 9] and c.size == 5
    p, c = _fit(np.arange(0), np.arange(20), 8)
    assert p.size == 0 and c.tolist() == list(range(8))


def test_score_examples_question_plus_answer(micro_model, bpe):
    ex = [TargetExample("Which is hot?", "the sun", ("ice", "the sun"), 1)]
    s = score_examples(micro_model.model, bpe, ex, context=64)
    direct = score_pairs(micro_model.model, encode(bpe, ["Which is hot?"]), encode(bpe, [" the sun"]), bos=0, pad=1, context=64)
    assert s.total_logprob[0] == pytest.approx(direct.total_logprob[0])


def test_choice_accuracy_picks_length_normalised_best(micro_model, bpe):
    # a choice repeating the stream's most common text is far more likely per character
    examples = [TargetExample("def f(a, b):", "return a + b", ("return a + b", "\u2603\u2603\u2603 \u00df\u00df"), 0),
                TargetExample("x", "y", (), -1)]
    acc = choice_accuracy(micro_model.model, bpe, examples, context=64)
    assert acc["acc_norm"][0] == 1.0 and np.isnan(acc["acc_norm"][1]) and np.isnan(acc["acc"][1])
