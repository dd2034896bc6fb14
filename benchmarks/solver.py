"""Solver speed against a memory-bandwidth floor measured in the same run.

For each size, times 100 MixMin iterations and 100 passes each of ``w @ values`` and
``values.T``-products (``u @ values.T``) in float32 -- the two matrix passes every iteration
needs -- and prints their ratio. Goal: at most 1.5x the floor at both binary sizes.
The objective's one-off setup per ProxyOutputs (cached with it, e.g. ``1 - f`` for negative
labels) is printed separately: it is paid once, not per solve or iteration.

    python -m benchmarks.solver            # all sizes (needs ~1 GB for 1,328 x 100,000)
    python -m benchmarks.solver --quick    # smaller sizes, for a smoke run
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from mixmin_core import ProxyOutputs, bootstrap_weights, mixmin
from mixmin_core.solver.objectives import make_objective

SIZES = [("binary", 128, 30_000), ("binary", 1_328, 100_000), ("loglik", 7, 20_000)]
QUICK = [("binary", 128, 30_000), ("binary", 600, 5_000), ("loglik", 7, 20_000)]


def make_outputs(kind: str, n_sources: int, n_samples: int, rng: np.random.Generator) -> ProxyOutputs:
    if kind == "binary":
        values = rng.uniform(0.02, 0.98, (n_sources, n_samples)).astype(np.float32)
        labels = (rng.random(n_samples) < 0.2).astype(np.float32)
        return ProxyOutputs(values, "binary", labels=labels)
    values = -rng.uniform(50, 5000, (n_sources, n_samples)).astype(np.float32)
    return ProxyOutputs(values, "loglik", token_counts=rng.integers(10, 1000, n_samples))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def floor_time(values: np.ndarray, n_iter: int) -> float:
    w = np.full(values.shape[0], 1.0 / values.shape[0], dtype=np.float32)
    u = np.ones(values.shape[1], dtype=np.float32)

    def passes():
        for _ in range(n_iter):
            w @ values
            u @ values.T

    return passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'kind':<7} {'sources':>8} {'samples':>8} {'setup (s)':>10} {'solver 100 it (s)':>18} {'floor (s)':>10} {'ratio':>6} {'GB/s':>6}")
    for kind, n_sources, n_samples in (QUICK if args.quick else SIZES):
        outputs = make_outputs(kind, n_sources, n_samples, rng)
        matrix = outputs.values if kind != "loglik" else np.exp(outputs.values - outputs.values.max(0))
        floor = best_of(floor_time(matrix.astype(np.float32), 100), args.repeats)
        start = time.perf_counter()
        make_objective(outputs)
        setup = time.perf_counter() - start
        solve = best_of(lambda: mixmin(outputs, max_iter=100, tol=0.0), args.repeats)
        gbps = 2 * 100 * matrix.nbytes / floor / 1e9
        print(f"{kind:<7} {n_sources:>8} {n_samples:>8} {setup:>10.4f} {solve:>18.4f} {floor:>10.4f} {solve / floor:>6.2f} {gbps:>6.1f}")
    bootstrap_row(rng)


def bootstrap_row(rng: np.random.Generator, n_boot: int = 200) -> None:
    """Batched bootstrap (600 x 5,000, 200 resamples) against 200 separate solves (extrapolated)."""
    outputs = make_outputs("binary", 600, 5_000, rng)
    one = best_of(lambda: mixmin(outputs.select(samples=rng.integers(0, 5_000, 5_000)), tol=0.0), 3)
    start = time.perf_counter()
    bootstrap_weights(outputs, n_boot=n_boot)
    batched = time.perf_counter() - start
    print(f"\nbootstrap {n_boot} x (600 x 5,000): {batched:.2f} s; {n_boot} separate solves ~{one * n_boot:.2f} s; "
          f"ratio {batched / (one * n_boot):.2f}")


if __name__ == "__main__":
    main()
