"""Training GPT-NeoX models from scratch on a mixture of token streams.

Each source is one packed token stream (documents separated by ``<|endoftext|>``). A training
batch draws, for every row, a source by mixture weight and then a uniformly random window of
``context`` tokens from that source's stream. AdamW (betas 0.9/0.95, weight decay 0.1 on matrices),
linear warm-up then cosine decay. Compute is recorded as ``6 x parameters x tokens``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixmin_core.errors import InputError
from mixmin_core.runs.fileio import atomic_path

from .models import ModelPreset, build_model, count_params, matmul_flops_per_token


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class MixtureSampler:
    """Batches of ``context``-token windows; each row's source is drawn by mixture weight.

    Parameters
    ----------
    streams : list of 1-D integer arrays, one packed token stream per source.
    weights : (n_sources,) mixture weights on the simplex (zero-weight sources are never drawn).
    context : tokens per row.
    rng : numpy Generator.
    """

    def __init__(self, streams: list[np.ndarray], weights, context: int, rng: np.random.Generator):
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(streams),) or (w < 0).any() or w.sum() <= 0:
            raise InputError(f"weights must be non-negative with one entry per stream ({len(streams)}); got {w!r}.")
        self.weights = w / w.sum()
        short = [i for i, s in enumerate(streams) if w[i] > 0 and s.size < 2]
        if short:
            raise InputError(f"streams {short} hold fewer than 2 tokens; every weighted source needs text.")
        # a stream shorter than one window is repeated (only happens with toy inputs)
        self.streams = [s if s.size > context else np.resize(s, context + 1) for s in streams]
        self.context = context
        self.rng = rng

    def batch(self, batch_size: int) -> np.ndarray:
        src = self.rng.choice(len(self.streams), size=batch_size, p=self.weights)
        rows = np.empty((batch_size, self.context), dtype=np.int64)
        for r, s in enumerate(src):
            stream = self.streams[s]
            start = int(self.rng.integers(0, stream.size - self.context + 1))
            rows[r] = stream[start:start + self.context]
        return rows


def lr_at(step: int, n_steps: int, preset: ModelPreset) -> float:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine to ``min_lr_ratio``."""
    warmup = max(1, int(round(preset.warmup_fraction * n_steps)))
    if step < warmup:
        return preset.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, n_steps - warmup)
    floor = preset.min_lr_ratio
    return preset.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _optimizer(model, preset: ModelPreset):
    import torch

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": preset.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=preset.learning_rate, betas=tuple(preset.betas))


@dataclass
class TrainResult:
    model: object
    info: dict


def train_lm(*, preset: ModelPreset, vocab_size: int, streams: list[np.ndarray], weights, n_tokens: int,
             seed: int, device: str = "auto", n_threads: int | None = None, progress=None) -> TrainResult:
    """Train a fresh ``preset`` model for about ``n_tokens`` tokens sampled from the mixture.

    Returns the model (in eval mode) and ``info``: steps, tokens, params, ``flops`` (6·N·D),
    ``matmul_flops`` (the multiplies actually done), seconds, tokens/s and the final training loss.
    ``progress``: optional callable ``(step, n_steps, loss)``.
    """
    import torch

    device = pick_device(device)
    if n_threads:
        torch.set_num_threads(int(n_threads))
    tokens_per_step = preset.batch_size * preset.context
    n_steps = max(1, math.ceil(n_tokens / tokens_per_step))
    rng = np.random.default_rng([seed, 11])
    sampler = MixtureSampler(streams, weights, preset.context, rng)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        model = build_model(preset, vocab_size).to(device)
    model.train()
    opt = _optimizer(model, preset)
    losses = []
    start = time.perf_counter()
    for step in range(n_steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, n_steps, preset)
        batch = torch.from_numpy(sampler.batch(preset.batch_size)).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, n_steps, losses[-1])
    seconds = time.perf_counter() - start
    model.eval()
    counts = count_params(model)
    tokens = n_steps * tokens_per_step
    info = {
        "preset": preset.name, "preset_config": preset.to_dict(), "steps": n_steps, "tokens": tokens, **counts,
        "flops": 6.0 * counts["params"] * tokens,
        "matmul_flops": matmul_flops_per_token(preset, counts["params"], counts["embedding"]) * tokens,
        "train_seconds": seconds, "tokens_per_second": tokens / max(seconds, 1e-9),
        "final_loss": float(np.mean(losses[-max(1, n_steps // 20):])), "first_loss": losses[0], "device": device,
    }
    return TrainResult(model, info)


def save_model(model, path: str | Path, *, meta: dict) -> None:
    """Write the state dict and ``meta`` (preset, vocabulary size) atomically with ``torch.save``."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)


def load_model(path: str | Path, *, device: str = "auto"):
    """Rebuild a model saved by :func:`save_model` (``weights_only`` loading, no pickled code)."""
    import torch

    from .models import PRESETS

    blob = torch.load(path, map_location="cpu", weights_only=True)
    meta = blob["meta"]
    cfg = meta.get("preset_config")
    preset = ModelPreset(**{**cfg, "betas": tuple(cfg["betas"])}) if cfg else PRESETS[meta["preset"]]
    model = build_model(preset, int(meta["vocab_size"]))
    model.load_state_dict(blob["state_dict"])
    return model.to(pick_device(device)).eval(), meta
