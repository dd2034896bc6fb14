"""Mixture sampling, the learning-rate schedule and real (micro) GPT-NeoX training."""
import math

import numpy as np
import pytest

from mixmin_core.errors import ConfigError, InputError
from mixmin_core.lm.models import PRESETS, get_preset, model_vocab_size
from mixmin_core.lm.training import (
    MixtureSampler,
    load_model,
    lr_at,
    save_model,
    train_lm,
)

from .conftest import MICRO


def test_sampler_draws_sources_by_weight(rng):
    streams = [np.full(1000, 10, np.uint16), np.full(1000, 20, np.uint16), np.full(1000, 30, np.uint16)]
    batch = MixtureSampler(streams, [0.7, 0.3, 0.0], context=16, rng=rng).batch(4000)
    assert batch.shape == (4000, 16) and batch.dtype == np.int64
    first = batch[:, 0]
    assert not (first == 30).any()  # zero weight: never drawn
    assert abs((first == 10).mean() - 0.7) < 0.03


def test_sampler_windows_are_contiguous(rng):
    stream = np.arange(500, dtype=np.int32)
    rows = MixtureSampler([stream, stream], [1.0, 0.0], context=8, rng=rng).batch(50)
    assert (np.diff(rows, axis=1) == 1).all() and rows.max() < 500


def test_sampler_errors():
    with pytest.raises(InputError, match=r"weights must be non-negative with one entry per stream \(2\)"):
        MixtureSampler([np.zeros(10), np.zeros(10)], [1.0], context=4, rng=np.random.default_rng(0))
    with pytest.raises(InputError, match=r"streams \[1\] hold fewer than 2 tokens"):
        MixtureSampler([np.zeros(10), np.zeros(1)], [0.5, 0.5], context=4, rng=np.random.default_rng(0))


def test_lr_schedule_warmup_then_cosine():
    p = get_preset("tiny")
    lrs = [lr_at(s, 200, p) for s in range(200)]
    warm = int(round(p.warmup_fraction * 200))
    assert lrs[0] < lrs[warm - 1] == pytest.approx(p.learning_rate)
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1:]))
    assert lrs[-1] == pytest.approx(p.learning_rate * p.min_lr_ratio, rel=0.01)


def test_presets_follow_the_paper():
    for name in ("pythia-160m", "pythia-410m"):
        p = PRESETS[name]
        assert p.context == 1024 and p.betas == (0.9, 0.95) and p.weight_decay == 0.1 and p.tokenizer == "pythia"
    assert model_vocab_size(PRESETS["pythia-160m"], 50277) == 50304
    assert model_vocab_size(PRESETS["tiny"], 4000) == 4032
    with pytest.raises(ConfigError, match=r"preset must be one of"):
        get_preset("gpt-5")


def test_pythia_160m_has_160m_parameters():
    from mixmin_core.lm.models import build_model, count_params

    counts = count_params(build_model(PRESETS["pythia-160m"], 50304))
    assert 160e6 < counts["params"] < 165e6  # Pythia-160M: 162,322,944


def test_training_learns_and_records_compute(micro_model):
    info = micro_model.info
    assert info["steps"] == 30 and info["tokens"] == 30 * 8 * 64
    assert info["flops"] == pytest.approx(6 * info["params"] * info["tokens"])
    assert info["final_loss"] < info["first_loss"] - 0.5  # log(320) = 5.77 at the start
    assert abs(info["first_loss"] - math.log(320)) < 0.5


def test_training_is_seeded(bpe, streams):
    a = train_lm(preset=MICRO, vocab_size=320, streams=streams, weights=[1, 0], n_tokens=512, seed=3, n_threads=1)
    b = train_lm(preset=MICRO, vocab_size=320, streams=streams, weights=[1, 0], n_tokens=512, seed=3, n_threads=1)
    assert a.info["final_loss"] == b.info["final_loss"]


def test_save_load_round_trip(micro_model, tmp_path):
    import torch

    save_model(micro_model.model, tmp_path / "m.pt", meta={"vocab_size": 320, **micro_model.info})
    model, meta = load_model(tmp_path / "m.pt", device="cpu")
    x = torch.randint(0, 320, (2, 16))
    with torch.no_grad():
        assert torch.allclose(model(input_ids=x).logits, micro_model.model(input_ids=x).logits)
    assert meta["preset"] == "micro"


def test_a_budget_rounded_up_to_whole_steps_is_said():
    """proxy_budgets [0.01] spent most of a final model (one whole step per source) with no word in the log."""
    from mixmin_core.lm.experiment import proxy_budget_note, whole_steps

    one_step = whole_steps(1, "tiny")
    note = proxy_budget_note(0.01, final_tokens=16384, preset="tiny", n_sources=8)
    assert note is not None and f"{8 * one_step / 16384 / 0.01:.3g}x the label" in note and "whole training steps" in note
    assert proxy_budget_note(1.0, final_tokens=16384, preset="tiny", n_sources=8) is None


@pytest.mark.parametrize("n,fit_fraction,said", [
    (5, 0.8, ("split into 4 to fit MixMin on and 1 held out (fit_fraction 0.8), so its held-out scores rest on 1 "
              "example(s) (an accuracy of 0 or 1 per trial) and gaps between methods are mostly noise; raise "
              "max_target_samples (or the target's max_samples), or lower fit_fraction to hold out more")),
    (60, 0.01, ("split into 1 to fit MixMin on and 59 held out (fit_fraction 0.01), so its mixture is fitted on those "
                "few; raise max_target_samples (or the target's max_samples), or raise fit_fraction (up to 0.8) to "
                "fit on more")),
    (4, 0.5, "raise max_target_samples (or the target's max_samples)"),  # no fraction helps: none advised
    (60, 0.8, None),
])
def test_a_target_split_of_a_handful_of_examples_is_said(n, fit_fraction, said):
    """max_target_samples 5 (one held-out example: accuracy 0 or 1 per trial) or fit_fraction 0.01 ran silently."""
    from mixmin_core.lm.experiment import small_split_note

    note = small_split_note("piqa", n, fit_fraction)
    assert note is None if said is None else (note.startswith(f"target 'piqa': its {n} examples ") and said in note)
    assert note is None or "nearer 0.8" not in note  # advised the fit_fraction already set
    if n == 4:
        assert note.endswith("(or the target's max_samples)")
