"""Log-probabilities of target sequences under a causal language model.

Every sequence is ``<|endoftext|> + prefix + continuation`` (the start token lets the first text
token be scored). Prefix and continuation are tokenized separately, so the total log-prob splits
exactly into ``log p(prefix) + log p(continuation | prefix)``:

- total log-prob of question + answer and its token count (the MixMin ``loglik`` outputs);
- answer-only log-prob given the question (predictive loss);
- multiple-choice accuracy: the choice with the highest log p(choice | question) divided by the
  choice's length in characters (``acc_norm`` as in common evaluation harnesses).

A sequence longer than the model's context is scored in windows (:func:`_windows`): every continuation token
once, the prefix (question) by its end.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import TargetExample
from .tokenizer import encode, eos_id, pad_id

#: How text longer than the context is scored, in every score unit's id: a run resumed after a change of scheme
#: scores its models again, rather than comparing models scored one way with models scored another.
SCHEME = "windows"


@dataclass
class SequenceScores:
    """Per-sequence sums: ``prefix_logprob``/``n_prefix`` and ``cont_logprob``/``n_cont`` (float32/int32)."""

    prefix_logprob: np.ndarray
    n_prefix: np.ndarray
    cont_logprob: np.ndarray
    n_cont: np.ndarray

    @property
    def total_logprob(self) -> np.ndarray:
        return self.prefix_logprob + self.cont_logprob

    @property
    def n_tokens(self) -> np.ndarray:
        return self.n_prefix + self.n_cont


def _prefix_kept(n_prefix: int, n_cont: int, limit: int) -> int:
    """How many of a prefix's last tokens a window of ``limit`` keeps beside a continuation of ``n_cont``: all that
    fit, and at least half the window (a long answer kept none of its question: it was scored, and its choice
    picked, on no question at all)."""
    return min(n_prefix, max(limit - n_cont, limit // 2))


def _windows(prefix: np.ndarray, cont: np.ndarray, limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(context, scored)`` token pairs that score every continuation token once, each in a window of at most
    ``limit`` tokens: the first holds the prefix's end (:func:`_prefix_kept`) and the continuation's start; the
    rest score the next half window each, after the half before it (a document was scored on its first 127
    tokens only)."""
    kept = _prefix_kept(prefix.size, cont.size, limit)
    first = limit - kept
    out = [(prefix[prefix.size - kept:], cont[:first])]
    stride = max(1, limit // 2)
    for start in range(first, cont.size, stride):
        out.append((cont[max(0, start - (limit - stride)):start], cont[start:start + stride]))
    return out


def score_pairs(model, prefixes: list[np.ndarray], conts: list[np.ndarray], *, bos: int, pad: int,
                context: int, batch_size: int = 32, device: str | None = None) -> SequenceScores:
    """Log-probabilities of each ``(prefix, continuation)`` pair of token arrays, computed on ``device``
    (default: where the model is; a CUDA model given CPU inputs was an error). Every continuation token is
    scored (longer than the context, in windows: :func:`_windows`); a prefix keeps its end."""
    import torch

    device = device or next(model.parameters()).device

    n = len(prefixes)
    out = SequenceScores(*(np.zeros(n, dtype=t) for t in (np.float32, np.int32, np.float32, np.int32)))
    pairs, owner = [], []
    for i, (p, c) in enumerate(zip(prefixes, conts)):
        found = _windows(np.asarray(p), np.asarray(c), context - 1)
        pairs += found
        owner += [i] + [-1 - i] * (len(found) - 1)  # -1 - i: a later window of pair i (its context is no prefix)
    order = np.argsort([p.size + c.size for p, c in pairs], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            idx = order[start:start + batch_size]
            seqs = [np.concatenate([[bos], pairs[i][0], pairs[i][1]]).astype(np.int64) for i in idx]
            width = max(s.size for s in seqs)
            ids = np.full((len(seqs), width), pad, dtype=np.int64)
            mask = np.zeros((len(seqs), width), dtype=np.int64)
            for r, s in enumerate(seqs):
                ids[r, : s.size], mask[r, : s.size] = s, 1
            ids_t = torch.from_numpy(ids).to(device)
            logits = model(input_ids=ids_t, attention_mask=torch.from_numpy(mask).to(device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids_t[:, 1:, None])[..., 0].cpu().numpy()
            for r, j in enumerate(idx):
                n_p, n_c = pairs[j][0].size, pairs[j][1].size
                i = owner[j] if owner[j] >= 0 else -1 - owner[j]
                if owner[j] >= 0:
                    out.prefix_logprob[i], out.n_prefix[i] = logp[r, :n_p].sum(), n_p
                out.cont_logprob[i] += logp[r, n_p:n_p + n_c].sum()
                out.n_cont[i] += n_c
    return out


def _encode_pairs(tok, examples: list[TargetExample], conts: list[str]):
    prefixes = encode(tok, [e.prefix for e in examples])
    return prefixes, encode(tok, conts)


def score_examples(model, tok, examples: list[TargetExample], *, context: int, batch_size: int = 32,
                   device: str | None = None) -> SequenceScores:
    """Question + correct answer (or the whole document) of every example."""
    conts = [(" " + e.answer) if e.prefix else e.answer for e in examples]
    prefixes, cont_ids = _encode_pairs(tok, examples, conts)
    return score_pairs(model, prefixes, cont_ids, bos=eos_id(tok), pad=pad_id(tok), context=context,
                       batch_size=batch_size, device=device)


def choice_accuracy(model, tok, examples: list[TargetExample], *, context: int, batch_size: int = 32,
                    device: str | None = None) -> dict[str, np.ndarray]:
    """Per-example correctness of multiple-choice predictions.

    Returns ``{"acc_norm": (n,) float32, "acc": (n,) float32}``: 1.0 where the choice with the highest
    conditional log-prob (divided by its length in characters for ``acc_norm``) is the labelled one.
    Examples without choices get NaN.
    """
    flat_ex, conts, owner = [], [], []
    for k, e in enumerate(examples):
        for c in e.choices if e.is_choice else ():
            flat_ex.append(e)
            conts.append(" " + c)
            owner.append(k)
    acc = np.full(len(examples), np.nan, dtype=np.float32)
    acc_norm = acc.copy()
    if not flat_ex:
        return {"acc_norm": acc_norm, "acc": acc}
    prefixes, cont_ids = _encode_pairs(tok, flat_ex, conts)
    owner = np.asarray(owner)
    for k in np.unique(owner):  # every choice of a question sees as much of it as its longest choice leaves
        sel = np.flatnonzero(owner == k)
        keep = min(_prefix_kept(prefixes[j].size, cont_ids[j].size, context - 1) for j in sel)
        for j in sel:
            prefixes[j] = prefixes[j][prefixes[j].size - keep:]
    scores = score_pairs(model, prefixes, cont_ids, bos=eos_id(tok), pad=pad_id(tok), context=context,
                         batch_size=batch_size, device=device)
    lengths = np.array([len(c) for c in conts], dtype=np.float32)
    for k, e in enumerate(examples):
        if not e.is_choice:
            continue
        sel = np.flatnonzero(owner == k)
        raw = scores.cont_logprob[sel]
        acc[k] = float(np.argmax(raw) == e.label)
        acc_norm[k] = float(np.argmax(raw / lengths[sel]) == e.label)
    return {"acc_norm": acc_norm, "acc": acc}
