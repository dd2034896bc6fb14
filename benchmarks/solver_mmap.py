"""Larger than memory: solve from memory-mapped proxy outputs and report time and resident memory.

Writes a ``binary`` ProxyOutputs of ``--sources x --samples`` float32 (default 1,000 x 2,000,000:
8 GB) with ``save(compress=False)``, loads it with ``ProxyOutputs.load(path, mmap=True)`` in a
fresh process and runs MixMin on it, streaming the matrix from the map every iteration. Prints
the time per iteration against the two-pass float32 floor (bandwidth measured in this run on an
in-memory matrix, scaled to the mapped one's size) and the process's resident memory: before
loading, after loading (checksum and validation stream the file) and the peak while solving.
The file is deleted afterwards. If the disk cannot hold the file (plus a temporary copy while
it is written), the largest size that fits is used and the output says so.

    python -m benchmarks.solver_mmap                        # 1,000 x 2,000,000 (8 GB)
    python -m benchmarks.solver_mmap --samples 200000       # 0.8 GB, a quick run
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GB = 1e9


def status() -> dict:
    """Resident memory from ``/proc/self/status`` in bytes: current, peak, anonymous, file-backed."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) for this process (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def write_outputs(path: Path, n_sources: int, n_samples: int, seed: int = 0) -> float:
    """Write the problem chunk by chunk (never the whole matrix in memory); return seconds."""
    from mixmin_core import ProxyOutputs

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    raw_path = path.with_name(path.name + ".raw.npy")
    step = max(1, (64 << 20) // (4 * n_sources))
    truth = rng.uniform(0.02, 0.98, n_sources).astype(np.float32)
    labels = np.empty(n_samples, dtype=np.float32)
    with open(raw_path, "wb") as fh:  # a sample-major .npy, written with plain writes (no dirty map)
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": True,
                                                  "shape": (n_sources, n_samples)})
        for j in range(0, n_samples, step):
            n = min(step, n_samples - j)
            y = (rng.random(n) < 0.3).astype(np.float32)
            # proxies that agree with the labels to different degrees, so the optimum is not uniform
            chunk = 0.5 * rng.random((n, n_sources), dtype=np.float32)
            chunk += 0.5 * np.where(y[:, None] > 0, truth, 1 - truth)
            fh.write(chunk.data)
            labels[j: j + n] = y
    mapped = np.load(raw_path, mmap_mode="r")
    ProxyOutputs(mapped, "binary", labels=labels).save(path, compress=False)
    del mapped
    raw_path.unlink()
    return time.perf_counter() - start


def solve_child(path: str, max_iter: int) -> None:
    """In a fresh process: load mapped, solve, print one JSON line of timings and memory."""
    from mixmin_core import ProxyOutputs, mixmin
    from mixmin_core.solver.objectives import make_objective

    before = status()
    start = time.perf_counter()
    outputs = ProxyOutputs.load(path, mmap=True)
    load_s = time.perf_counter() - start
    after_load = status()
    start = time.perf_counter()
    objective = make_objective(outputs)
    setup_s = time.perf_counter() - start
    peak_reset = reset_peak()
    start = time.perf_counter()
    result = mixmin(outputs, max_iter=max_iter, tol=0.0)
    solve_s = time.perf_counter() - start
    after = status()
    print(json.dumps({
        "rss_before_load": before["VmRSS"], "rss_after_load": after_load["VmRSS"],
        "peak_load": after_load["VmHWM"], "peak_solve": after["VmHWM"], "rss_after": after["VmRSS"],
        "anon_after": after["RssAnon"], "file_after": after["RssFile"], "peak_reset": peak_reset,
        "load_s": load_s, "setup_s": setup_s, "solve_s": solve_s, "n_iter": result.n_iter,
        "streamed": objective.streamed, "n_blocks": len(objective.blocks), "kernel": objective.fused,
        "top": result.top(3),
    }))


def floor_bandwidth(repeats: int = 3) -> float:
    """Bytes/s of the two float32 passes (``w @ F``, ``u @ F.T``) over an in-memory 1,000 x 100,000."""
    rng = np.random.default_rng(1)
    values = rng.random((1_000, 100_000), dtype=np.float32)
    w = np.full(values.shape[0], 1e-3, dtype=np.float32)
    u = np.ones(values.shape[1], dtype=np.float32)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(5):
            w @ values
            u @ values.T
        best = min(best, (time.perf_counter() - start) / 5)
    return 2 * values.nbytes / best


def fitting_samples(directory: Path, n_sources: int, n_samples: int) -> int:
    """The most samples (up to ``n_samples``) whose file and temporary copy fit on the disk with 2 GB spare."""
    free = shutil.disk_usage(directory).free - 2 * GB
    fit = int(free / (2 * 4 * n_sources))
    return max(0, min(n_samples, fit))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=1_000)
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--iters", type=int, default=10, help="MixMin iterations (each streams the whole file)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write the temporary file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        solve_child(args.child, args.iters)
        return
    directory = Path(tempfile.mkdtemp(prefix="mixmin-mmap-", dir=args.dir))
    try:
        n_samples = fitting_samples(directory, args.sources, args.samples)
        if n_samples < args.samples:
            print(f"disk has room for {n_samples:,} samples, not {args.samples:,}: using {n_samples:,}")
        if n_samples < 1_000:
            print("not enough disk for a meaningful run; free some space or pass --dir")
            return
        nbytes = 4 * args.sources * n_samples
        path = directory / "outputs"
        write_s = write_outputs(path, args.sources, n_samples)
        print(f"wrote {args.sources:,} x {n_samples:,} float32 ({nbytes / GB:.2f} GB) uncompressed in {write_s:.1f} s")
        bandwidth = floor_bandwidth()
        child = subprocess.run([sys.executable, "-m", "benchmarks.solver_mmap", "--child", str(path),
                                "--iters", str(args.iters)], capture_output=True, text=True, check=False)
        if child.returncode:
            print(child.stdout, child.stderr)
            raise SystemExit(child.returncode)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        per_iter = r["solve_s"] / (r["n_iter"] + 1)  # mixmin evaluates n_iter + 1 times
        floor = 2 * nbytes / bandwidth
        mb = 1 << 20
        print(f"load (checksum + streamed validation) {r['load_s']:.1f} s; objective setup {r['setup_s']:.2f} s; "
              f"streamed in {r['n_blocks']} blocks: {r['streamed']}; one-read kernel: {r['kernel']}")
        print(f"solve {r['n_iter']} iterations: {r['solve_s']:.1f} s, {per_iter:.3f} s per evaluation; "
              f"two-pass float32 floor {floor:.3f} s ({bandwidth / GB:.1f} GB/s in memory); ratio {per_iter / floor:.2f}")
        print(f"resident memory: {r['rss_before_load'] / mb:.0f} MB before loading, {r['rss_after_load'] / mb:.0f} MB "
              f"after (peak {r['peak_load'] / mb:.0f} MB while loading); peak while solving {r['peak_solve'] / mb:.0f} MB "
              f"(+{(r['peak_solve'] - r['rss_after_load']) / mb:.0f} MB over the loaded process"
              f"{'' if r['peak_reset'] else '; peak not resettable here: includes loading'}); "
              f"after solving {r['anon_after'] / mb:.0f} MB anonymous + {r['file_after'] / mb:.0f} MB file-backed")
        print(f"top weights: {r['top']}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
