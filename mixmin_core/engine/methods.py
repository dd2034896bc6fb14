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
#: RegMix regressors; ``auto``: faithful where it can split, else mixmin-paper (see search.swarm)
REGMIX_PRESETS = ("auto", "faithful", "mixmin-paper")
def search_rng(seed: int, trial: int, method: str, sources) -> np.random.Generator:
    """Candidates of a search method in one trial: fresh per trial, the same for every target that
    mixes the same sources (so their search runs are trained once and shared)."""
    key = zlib.crc32(("\x1f".join(map(str, sources))).encode())
    return np.random.default_rng([int(seed), int(trial), METHODS.index(method), key])
