"""The methods every experiment compares, and the planning rules they share.

``mixmin``, ``natural`` and ``balanced`` come from the cached proxy outputs; ``random_search``,
``regmix`` and ``bo`` train one proxy per candidate mixture (search runs), planned to fit MixMin's
measured proxy compute; ``target_only`` and ``ensemble`` need no mixture of their own (a domain
offers them when it can).
"""
from __future__ import annotations

import zlib

import numpy as np

SEARCH_METHODS = ("random_search", "regmix", "bo")
MIXTURE_METHODS = ("mixmin", "natural", "balanced") + SEARCH_METHODS
METHODS = MIXTURE_METHODS + ("target_only", "ensemble")
REGMIX_PRESETS = ("auto", "faithful", "mixmin-paper")
#: RegMix's faithful LightGBM needs 2 x min_data_in_leaf = 40 runs to split at all; below that it
#: predicts a constant, so ``auto`` falls back to the MixMin paper's small regressor.
FAITHFUL_MIN_RUNS = 40


def regmix_preset(preset: str, n_runs: int) -> str:
    """The RegMix regressor for a swarm of ``n_runs``: ``auto`` is ``faithful`` at 40+ runs."""
    if preset != "auto":
        return preset
    return "faithful" if n_runs >= FAITHFUL_MIN_RUNS else "mixmin-paper"


def search_rng(seed: int, trial: int, method: str, sources) -> np.random.Generator:
    """Candidates of a search method in one trial: fresh per trial, the same for every target that
    mixes the same sources (so their search runs are trained once and shared)."""
    key = zlib.crc32(("\x1f".join(map(str, sources))).encode())
    return np.random.default_rng([int(seed), int(trial), METHODS.index(method), key])
