"""Chemistry speed on ToxCast, measured in one run.

Prints: RDKit Morgan fingerprints per second (all 8,576 ToxCast molecules, r=2, 2048 bits);
proxy training seconds per assay (XGBoost on one assay's fit split, at the demo's 20 trees and at
50); a final model (100 trees, depth 6) on the weighted union of all other assays at the demo's
row cap and without it, and the ratio between them; and the compute-matched search cost of one
100-source problem relative to MixMin's proxies. ``--demo`` also times the full offline demo
(configs/chem_demo.yaml) in a fresh run store (goal: under 20 minutes on 2 cores).

    MIXMIN_DATA_DIR=../shared/data python -m benchmarks.chem          # about a minute
    MIXMIN_DATA_DIR=../shared/data python -m benchmarks.chem --demo   # plus the demo (many minutes)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="also time the offline demo in a fresh run store")
    parser.add_argument("--threads", type=int, default=1, help="XGBoost threads per model (the demo uses 1 per worker)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MIXMIN_DATA_DIR", str((ROOT.parent / "shared" / "data").resolve()))

    from mixmin_core.chem import data, fingerprints, proxies, splits
    from mixmin_core.runs.datasets import resolve

    table, secs = _timed(lambda: data.load_assay_table(resolve("toxcast")))
    print(f"load ToxCast table: {table.n_molecules} molecules x {table.n_assays} assays in {secs:.2f} s")
    fps, secs = _timed(lambda: fingerprints.featurize_smiles(table.smiles))
    print(f"fingerprints: {table.n_molecules / secs:,.0f} molecules/s ({secs:.2f} s, {fps.matrix.nnz / table.n_molecules:.1f} bits set per molecule)")
    X = fps.matrix.astype(np.float32).tocsr()
    codes = splits.split_table(table.labels, table.assays, seed=0, trial=0, valid=fps.valid)
    fit_rows = [splits.part(codes[:, j], "fit") for j in range(table.n_assays)]
    sample = np.linspace(0, table.n_assays - 1, 40).astype(int)
    per_assay = {}
    for trees in (20, 50):
        start = time.perf_counter()
        for j in sample:
            proxies.train_classifier(X[fit_rows[j]], table.labels[fit_rows[j], j], n_estimators=trees,
                                     n_jobs=args.threads).predict(X)
        per_assay[trees] = (time.perf_counter() - start) / sample.size
        print(f"proxy ({trees} trees, depth 6, {np.mean([fit_rows[j].size for j in sample]):.0f} fit rows on average, "
              f"+ predicting all molecules): {per_assay[trees]:.3f} s per assay -> all {table.n_assays} assays "
              f"{per_assay[trees] * table.n_assays:.0f} s per trial on one core")
    rng = np.random.default_rng(0)
    total = sum(r.size for r in fit_rows[1:])
    finals = {}
    for cap in (50_000, 0):
        r, s, sw = proxies.mixture_rows(fit_rows[1:], np.full(table.n_assays - 1, 1.0), max_rows=cap, rng=rng)
        _, finals[cap] = _timed(lambda: proxies.train_classifier(X[r], table.labels[r, s + 1], sample_weight=sw,
                                                                 n_estimators=100, n_jobs=args.threads))
        print(f"final model (100 trees, depth 6) on {r.size:,} of {total:,} union rows: {finals[cap]:.2f} s")
    print(f"row cap 50,000 vs all rows: {finals[0] / finals[50_000]:.1f}x faster")
    n_src = 99
    mean_rows = int(np.mean([r.size for r in fit_rows[1:100]]))
    start = time.perf_counter()
    for _ in range(10):
        rr, ss, sw = proxies.mixture_rows(fit_rows[1:100], rng.dirichlet(np.ones(n_src)), max_rows=mean_rows, rng=rng)
        proxies.train_classifier(X[rr], table.labels[rr, ss + 1], sample_weight=sw, n_estimators=20,
                                 n_jobs=args.threads).predict(X[fit_rows[0]])
    search = (time.perf_counter() - start) / 10
    print(f"search proxy (20 trees, {mean_rows} rows from a 99-source mixture): {search:.3f} s; compute-matched random "
          f"search on 99 sources = {n_src * search:.1f} s per target and trial, RegMix the same plus its regressor "
          f"(MixMin's 99 proxies are shared by all targets: {n_src * per_assay[20]:.1f} s once per trial)")
    if args.demo:
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "MIXMIN_HOME": home, "MIXMIN_CACHE": str(Path(home) / "cache")}
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "jobs", "run", str(ROOT / "configs" / "chem_demo.yaml"), "--quiet"],
                           cwd=ROOT, env=env, check=True)
            wall = time.perf_counter() - start
        print(f"demo wall time: {wall / 60:.1f} min (goal < 20 min on 2 cores): {wall / 1200:.2f} of the goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
