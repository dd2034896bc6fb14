"""A well-specified mixture problem with known answer, for tests, demos and the app.

Sources are categorical distributions over ``n_categories`` symbols; the target is drawn from a
known mixture of them. With the true densities as proxies, MixMin's optimum converges to the
true weights as the number of target samples grows.
"""
from __future__ import annotations

import numpy as np

from mixmin_core.solver.proxy_outputs import ProxyOutputs


def categorical_sources(n_sources: int, n_categories: int, rng: np.random.Generator,
                        concentration: float = 0.3) -> np.ndarray:
    """Random, well-separated categorical distributions, shape (n_sources, n_categories)."""
    return rng.dirichlet(np.full(n_categories, concentration), size=n_sources)


def sample_mixture(dists: np.ndarray, weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` symbols from the mixture ``sum_p weights_p dists_p``."""
    return rng.choice(dists.shape[1], size=n, p=weights @ dists)


def estimate_density(samples: np.ndarray, n_categories: int, smoothing: float = 0.5) -> np.ndarray:
    """Add-``smoothing`` estimate of a categorical distribution from samples (a cheap proxy)."""
    counts = np.bincount(samples, minlength=n_categories).astype(np.float64) + smoothing
    return counts / counts.sum()


def categorical_outputs(densities: np.ndarray, target: np.ndarray, *, source_names=None,
                        natural_weights=None, meta=None) -> ProxyOutputs:
    """``loglik`` ProxyOutputs: log density of every target symbol under every source."""
    values = np.log(np.clip(densities[:, target], 1e-300, None))
    return ProxyOutputs(values, "loglik", source_names=source_names,
                        natural_weights=natural_weights, meta=meta)


def example_problem(n_sources: int = 6, n_categories: int = 40, n_samples: int = 3000,
                    seed: int = 0) -> tuple[ProxyOutputs, np.ndarray]:
    """A ready-made problem (true densities as proxies) and its true weights."""
    rng = np.random.default_rng(seed)
    dists = categorical_sources(n_sources, n_categories, rng)
    true_w = rng.dirichlet(np.ones(n_sources))
    target = sample_mixture(dists, true_w, n_samples, rng)
    names = [f"source_{chr(ord('A') + i)}" for i in range(n_sources)]
    natural = rng.integers(1_000, 10_000, n_sources)
    outputs = categorical_outputs(dists, target, source_names=names, natural_weights=natural,
                                  meta={"dataset": "synthetic categorical", "true_weights": true_w.tolist()})
    return outputs, true_w.astype(np.float32)
