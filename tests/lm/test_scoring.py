"""Log-prob scoring against an unbatched reference; multiple-choice accuracy."""
import numpy as np
import pytest

from mixmin_core.lm.data import TargetExample
from mixmin_core.lm.scoring import (
    _windows,
    choice_accuracy,
    score_examples,
    score_pairs,
)
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


def test_windows_score_every_continuation_token_once_and_keep_the_questions_end():
    """A document was scored on its first `context - 1` tokens (a reviewer's 390-token documents: 127), and a long
    answer dropped its whole question."""
    fits = _windows(np.arange(10), np.arange(3), 8)  # question trimmed at its start, answer whole
    assert [(p.tolist(), c.tolist()) for p, c in fits] == [([5, 6, 7, 8, 9], [0, 1, 2])]
    fits = _windows(np.arange(10), np.arange(5), 8)  # a long answer: the question keeps half, the rest follows
    assert [(p.tolist(), c.tolist()) for p, c in fits] == [([6, 7, 8, 9], [0, 1, 2, 3]), ([0, 1, 2, 3], [4])]
    doc = _windows(np.arange(0), np.arange(20), 8)
    assert np.concatenate([c for _, c in doc]).tolist() == list(range(20))
    assert all(p.size + c.size <= 8 for p, c in doc) and doc[1][0].tolist() == [4, 5, 6, 7]  # half a window before
    long_answer = _windows(np.arange(100, 110), np.arange(30), 8)
    assert long_answer[0][0].tolist() == [106, 107, 108, 109]  # half the window for the question's end
    assert np.concatenate([c for _, c in long_answer]).tolist() == list(range(30))


def test_a_document_longer_than_the_context_is_scored_in_windows(micro_model, bpe):
    model = micro_model.model
    doc = encode(bpe, ["The quick brown fox jumps over the lazy dog. " * 12])[0]
    s = score_pairs(model, [np.zeros(0, np.int64)], [doc], bos=0, pad=1, context=33, batch_size=3)
    assert doc.size > 60 and s.n_cont[0] == doc.size and s.n_prefix[0] == 0
    expected = 0.0
    for context, scored in _windows(np.zeros(0, np.int64), doc, 32):
        ref = _reference_logprob(model, [0, *context, *scored])
        expected += ref[context.size:].sum()
    assert s.cont_logprob[0] == pytest.approx(expected, abs=1e-3)


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


def test_every_choice_of_a_question_sees_the_same_end_of_it(micro_model, bpe, monkeypatch):
    """A long choice dropped the whole question (PIQA: 210 of 1,838 examples with the reviewer's BPE), so choices
    were compared on different amounts of it, and the longest on none."""
    from mixmin_core.lm import scoring

    seen = []

    def spy(model, prefixes, conts, **kw):
        seen.append([p.tolist() for p in prefixes])
        return score_pairs(model, prefixes, conts, **kw)

    monkeypatch.setattr(scoring, "score_pairs", spy)
    question = "Which of these would a careful cook do first before boiling the eggs for breakfast today? " * 2
    choices = ("Wash them.", "Put them into a large pot of cold water and bring it slowly to a rolling boil.")
    acc = choice_accuracy(micro_model.model, bpe, [TargetExample(question, choices[0], choices, 0)], context=17)
    q = encode(bpe, [question])[0]
    assert q.size > 16 and len(seen[0]) == 2 and seen[0][0] == seen[0][1]
    assert seen[0][0] == q[q.size - 8:].tolist()  # half the 16-token window: the longer choice needs the rest
    assert acc["acc"][0] in (0.0, 1.0)
