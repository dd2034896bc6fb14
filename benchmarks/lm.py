"""Language-model speed against this machine's float32 matmul rate measured in the same run.

Prints, per CPU preset: training tokens/s, the FLOP/s the training loop achieved (counting the
matrix multiplies it does, see ``matmul_flops_per_token``) as a fraction of a dense 1024^3
matmul where training runs (float32 on the CPU, goal: at least 30%; bfloat16 on CUDA, where these
small models are bound by kernel launches, not by the matrix units), and scoring sequences/s on real
PIQA examples. ``--demo``
also times the full offline demo (configs/lm_demo.yaml) in a fresh run store (goal: < 30 min).

    python -m benchmarks.lm               # training and scoring (about a minute)
    python -m benchmarks.lm --demo        # plus the demo's wall time (many minutes)
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


def matmul_flops(n: int = 1024, repeats: int = 10) -> float:
    """Best-of FLOP/s of an ``n x n @ n x n`` torch matmul (2 n^3 FLOPs) where training runs: float32 on the
    CPU; bfloat16 (training's autocast) on CUDA, waiting for the GPU to finish each product."""
    import torch

    from mixmin_core.lm.training import pick_device

    device = pick_device("auto")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def product():
        a @ b
        sync()

    product()
    best = min(_timed(product) for _ in range(repeats))
    return 2.0 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _data(vocab_size: int):
    from mixmin_core.lm import data
    from mixmin_core.lm import tokenizer as T
    from mixmin_core.runs.datasets import data_dir

    folder = (data_dir() or ROOT.parent / "shared" / "data") / "text" / "source"
    files = data.find_source_files(folder)
    texts = {n: data.read_texts(p, limit=200) for n, p in files.items()}
    tok_path = Path(tempfile.mkdtemp()) / "bpe.json"
    T.train_bpe((t[:20_000] for docs in texts.values() for t in docs[:50]), vocab_size=vocab_size, output=tok_path)
    tok = T.load_tokenizer(tok_path)
    streams = [T.token_stream(tok, [t[:50_000] for t in docs], max_tokens=200_000) for docs in texts.values()]
    piqa = data.load_target("piqa", folder.parent / "target" / "piqa_validation.jsonl.gz", limit=400)
    return tok, streams, piqa


def bench_preset(name: str, tok, streams, piqa, steps: int) -> dict:
    from mixmin_core.lm.models import get_preset, model_vocab_size
    from mixmin_core.lm.scoring import choice_accuracy, score_examples
    from mixmin_core.lm.training import train_lm

    preset = get_preset(name)
    vocab = model_vocab_size(preset, tok.get_vocab_size())
    n_tokens = steps * preset.batch_size * preset.context
    weights = np.full(len(streams), 1.0 / len(streams))
    train_lm(preset=preset, vocab_size=vocab, streams=streams, weights=weights, n_tokens=2 * preset.batch_size * preset.context, seed=1)
    result = train_lm(preset=preset, vocab_size=vocab, streams=streams, weights=weights, n_tokens=n_tokens, seed=0)
    info = result.info
    seconds = _timed(lambda: score_examples(result.model, tok, piqa, context=preset.context))
    mc_seconds = _timed(lambda: choice_accuracy(result.model, tok, piqa, context=preset.context))
    return {"preset": name, "params": info["params"], "tokens_per_second": info["tokens_per_second"],
            "achieved_flops": info["matmul_flops"] / info["train_seconds"],
            "six_nd_flops": info["flops"] / info["train_seconds"],
            "score_seq_per_second": len(piqa) / seconds, "choice_seq_per_second": 2 * len(piqa) / mc_seconds}


def bench_demo() -> float:
    env = {**os.environ, "MIXMIN_HOME": tempfile.mkdtemp(prefix="lm_demo_bench_")}
    env.setdefault("MIXMIN_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jobs", "run", str(ROOT / "configs" / "lm_demo.yaml"), "--quiet"],
                   cwd=ROOT, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40, help="training steps per preset")
    parser.add_argument("--demo", action="store_true", help="also time the full offline demo")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    peak = matmul_flops()
    where = f"{torch.cuda.get_device_name()} (bf16)" if torch.cuda.is_available() else f"{torch.get_num_threads()} threads"
    print(f"matmul 1024^3: {peak / 1e9:.1f} GFLOP/s ({where})")
    tok, streams, piqa = _data(4096)
    print(f"{'preset':<7} {'params':>9} {'train tok/s':>12} {'GFLOP/s':>8} {'of matmul':>10} "
          f"{'6ND GFLOP/s':>12} {'score seq/s':>12} {'choice seq/s':>13}")
    for name in ("tiny", "small"):
        r = bench_preset(name, tok, streams, piqa, args.steps)
        local = max(peak, matmul_flops())  # re-measured beside each preset: a shared machine's load drifts
        print(f"{name:<7} {r['params']:>9,} {r['tokens_per_second']:>12,.0f} {r['achieved_flops'] / 1e9:>8.1f} "
              f"{r['achieved_flops'] / local:>9.0%} {r['six_nd_flops'] / 1e9:>12.1f} "
              f"{r['score_seq_per_second']:>12,.0f} {r['choice_seq_per_second']:>13,.0f}")
    print("goal: training at >= 30% of the matmul rate")
    if args.demo:
        seconds = bench_demo()
        print(f"demo (configs/lm_demo.yaml) wall time: {seconds / 60:.1f} min (goal < 30 min)")


if __name__ == "__main__":
    main()
