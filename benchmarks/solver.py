"""Solver speed against a memory-bandwidth floor measured in the same run.

For each size, times 100 MixMin iterations and 100 passes each of ``w @ values`` and
``u @ values.T`` in float32 -- the two matrix passes an iteration needed before the one-pass
objective -- and prints the solver's ratio to that floor: ``one-pass`` is the solver as it is,
``two-pass`` the same solver with the whole matrix as one block and numpy's two products (the
previous solver), measured in the same run, interleaved, best of ``--repeats``. ``path`` says what
the solver used: ``kernel`` (numba, each sample's outputs read once; many sources, a matrix larger
than cache) or ``numpy`` (two products per column block; few sources, or a matrix that fits in cache,
where two BLAS passes from cache beat one single-stream pass).
Goal: one-pass at most 0.6x at both binary sizes and 1.2x for loglik at 7 x 20,000.
``float16`` is the same solve with ``storage="float16"`` (the row kernel's copy of the matrix in float16,
float32 arithmetic), where it applies, with the L1 distance of its weights to float32's (goal < 1e-3).
The objective's one-off setup per ProxyOutputs (cached with it, e.g. ``1 - f`` for negative
labels) is printed separately: it is paid once, not per solve or iteration.
Then the batched bootstrap (and, with few sources, each resample's compiled solve against a batch), and a
memory-mapped (larger than memory) solve with its peak resident memory (see ``benchmarks/solver_mmap.py``;
``--mmap-samples 0`` skips it).

    python -m benchmarks.solver            # all sizes (needs ~2 GB for 1,328 x 100,000)
    python -m benchmarks.solver --quick    # smaller sizes, for a smoke run
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from mixmin_core import ProxyOutputs, bootstrap_weights, mixmin
from mixmin_core.solver.objectives import make_objective

SIZES = [("binary", 128, 30_000), ("binary", 1_328, 100_000), ("loglik", 7, 20_000)]
QUICK = [("binary", 128, 30_000), ("binary", 400, 20_000), ("loglik", 7, 20_000)]


def make_outputs(kind: str, n_sources: int, n_samples: int, rng: np.random.Generator) -> ProxyOutputs:
    if kind == "binary":
        values = rng.uniform(0.02, 0.98, (n_sources, n_samples)).astype(np.float32)
        labels = (rng.random(n_samples) < 0.2).astype(np.float32)
        return ProxyOutputs(values, "binary", labels=labels)
    values = -rng.uniform(50, 5000, (n_sources, n_samples)).astype(np.float32)
    return ProxyOutputs(values, "loglik", token_counts=rng.integers(10, 1000, n_samples))


class TwoPass:
    """The previous objective: whole-matrix ``w @ Q`` then ``u @ Q.T``, loss always computed."""

    def __init__(self, outputs: ProxyOutputs):
        self.objective = make_objective(outputs, block_bytes=1 << 62)
        self.objective.columns = False  # numpy's two products, never a kernel
        self.streamed = False
        self.compiled = False  # the bootstrap batches its resamples through loss_grad

    def loss_grad(self, weights, sample_weights=None, need_grad=True, need_loss=True):
        return self.objective.loss_grad(weights, sample_weights, need_grad)

    def descend(self, *args):
        return None  # the previous solver's loop, in Python


def use(outputs: ProxyOutputs, objective) -> None:
    """Make ``mixmin``/``bootstrap_weights`` use ``objective`` for ``outputs`` (they reuse the cached one)."""
    object.__setattr__(outputs, "_objective", objective)


#: Seconds to wait before each timing: after a BLAS product OpenBLAS's threads spin for a while (about
#: 0.1 s) before they sleep, and on 2 cores that takes a core from whatever is timed next (the one-pass
#: solve, timed right after the floor, measured up to 1.4x slower without the pause).
SETTLE_SECONDS = 0.3


def timed(fn) -> float:
    time.sleep(SETTLE_SECONDS)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def floor_passes(values: np.ndarray, n_iter: int):
    w = np.full(values.shape[0], 1.0 / values.shape[0], dtype=np.float32)
    u = np.ones(values.shape[1], dtype=np.float32)

    def passes():
        for _ in range(n_iter):
            w @ values
            u @ values.T

    return passes


def path(objective) -> str:
    """Which evaluation a single weight vector gets: a numba kernel (sample-major rows or source-major
    columns) or numpy's two products per column block."""
    return "rows" if objective.fused else "columns" if objective.columns else "numpy"


def solver_row(kind: str, n_sources: int, n_samples: int, rng: np.random.Generator, repeats: int) -> None:
    outputs = make_outputs(kind, n_sources, n_samples, rng)
    matrix = outputs.values if kind != "loglik" else np.exp(outputs.values - outputs.values.max(0))
    floor = floor_passes(np.ascontiguousarray(matrix, dtype=np.float32), 100)
    setup = timed(lambda: make_objective(outputs))
    one, two = make_objective(outputs), TwoPass(outputs)
    half = make_objective(outputs, storage="float16")  # float16 only where the row kernel keeps a copy
    variants = {"one": one, "two": two} | ({"half": half} if half.storage == "float16" else {})
    best = dict.fromkeys(["floor", *variants], np.inf)
    weights = {}
    for _ in range(repeats):  # interleaved, so a busy moment hits all of them alike
        best["floor"] = min(best["floor"], timed(floor))
        for name, objective in variants.items():
            use(outputs, objective)

            def solve(name=name):
                weights[name] = mixmin(outputs, max_iter=100, tol=0.0).weights

            best[name] = min(best[name], timed(solve))
    use(outputs, one)
    f = best["floor"]
    half_cols = (f"{best['half']:>9.4f} {best['half'] / f:>9.2f} {np.abs(weights['half'] - weights['one']).sum():>8.1e}"
                 if "half" in best else f"{'-':>9} {'-':>9} {'-':>8}")
    print(f"{kind:<7} {n_sources:>7} {n_samples:>8} {path(one):>7} {setup:>9.4f} {f:>9.4f} "
          f"{best['two']:>9.4f} {best['one']:>9.4f} {best['two'] / f:>9.2f} {best['one'] / f:>9.2f} "
          f"{2 * 100 * matrix.nbytes / f / 1e9:>6.1f} {half_cols}", flush=True)


def bootstrap_row(rng: np.random.Generator, n_boot: int = 200, repeats: int = 2) -> None:
    """Batched bootstrap (600 x 5,000, 200 resamples): one-pass and two-pass, and 200 separate solves."""
    outputs = make_outputs("binary", 600, 5_000, rng)
    single = min(timed(lambda: mixmin(outputs.select(samples=rng.integers(0, 5_000, 5_000)), tol=0.0))
                 for _ in range(3))
    one, two = make_objective(outputs), TwoPass(outputs)
    best = {"one": np.inf, "two": np.inf}
    for _ in range(repeats):
        for name, objective in (("one", one), ("two", two)):
            use(outputs, objective)
            best[name] = min(best[name], timed(lambda: bootstrap_weights(outputs, n_boot=n_boot)))
    print(f"\nbootstrap {n_boot} x (600 x 5,000): one-pass {best['one']:.2f} s, two-pass {best['two']:.2f} s; "
          f"{n_boot} separate solves ~{single * n_boot:.2f} s; ratio {best['one'] / (single * n_boot):.2f}", flush=True)


def few_sources_bootstrap_row(rng: np.random.Generator, n_boot: int = 200, repeats: int = 2) -> None:
    """Few sources (20 x 20,000): each resample through the compiled descent against one batched solve."""
    from mixmin_core.solver import objectives

    outputs = make_outputs("binary", 20, 20_000, rng)
    compiled = objectives.Objective.compiled
    best = {"each": np.inf, "batched": np.inf}
    try:
        for _ in range(repeats):
            for name, prop in (("each", compiled), ("batched", property(lambda self: False))):
                objectives.Objective.compiled = prop
                best[name] = min(best[name], timed(lambda: bootstrap_weights(outputs, n_boot=n_boot)))
    finally:
        objectives.Objective.compiled = compiled
    print(f"bootstrap {n_boot} x (20 x 20,000): each resample compiled {best['each']:.2f} s, batched "
          f"{best['batched']:.2f} s; ratio {best['each'] / best['batched']:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mmap-samples", type=int, default=2_000_000,
                        help="samples of the 1,000-source memory-mapped solve (0 skips it)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("times of 100 iterations (s); ratios to the two-pass float32 floor measured alongside")
    print(f"{'kind':<7} {'sources':>7} {'samples':>8} {'path':>7} {'setup':>9} {'floor':>9} "
          f"{'two-pass':>9} {'one-pass':>9} {'two/floor':>9} {'one/floor':>9} {'GB/s':>6} "
          f"{'float16':>9} {'f16/floor':>9} {'L1 to f32':>8}")
    for kind, n_sources, n_samples in (QUICK if args.quick else SIZES):
        solver_row(kind, n_sources, n_samples, rng, args.repeats)
    bootstrap_row(rng)
    few_sources_bootstrap_row(rng)
    if args.mmap_samples and not args.quick:
        print("\nmemory-mapped solve (python -m benchmarks.solver_mmap):", flush=True)
        subprocess.run([sys.executable, "-m", "benchmarks.solver_mmap", "--samples", str(args.mmap_samples)],
                       check=False)


if __name__ == "__main__":
    main()
