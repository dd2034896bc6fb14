"""Multi-fidelity BO against single-fidelity BO, random search and RegMix at equal cost, on real
multi-scale run tables (issue 14). Every method starts with nothing bought; costs are real
(ADMIRE: each run's ``train_time``; RegMix: parameters, a 1M run = 1/60 of a 60M run); budgets are
in runs of the largest scale. Prints, per table and target, mean regret and cost with 95%
t-intervals over seeds, how often and at what cost each method first held a mixture within 1% of
the pool's best (and the best itself), runs bought per scale, and (RegMix tables) the 1B loss of
the 1B mixture each method's final model ranks first (transfer).

    python -m benchmarks.bo                  # 10 seeds, budget 10: 160 searches, 2 workers
    python -m benchmarks.bo --budgets 5 10   # also at half the budget
    python -m benchmarks.bo --quick    # 2 seeds, budget 5, one target per table

ADMIRE's data (CC BY-NC-SA) is read from MIXMIN_DATA_DIR, never copied. Multi-fidelity BO on the
RegMix pool dominates the run time (about 130 runs bought per search, a GP step each); measured
wall time: 13 min for the full run and 73 s for --quick on the shared 2-core machine at load ~15.
"""
from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import stats

TASKS = {  # name: (tables smallest scale first, targets, transfer table)
    "admire": (["admire_0.5b", "admire_3b", "admire_7b"], ["avg_id+ood", "gsm8k::tulu"], None),
    "regmix": (["regmix_1m_test", "regmix_60m_test"], ["pile_cc", "github"], "regmix_1b_test"),
}
METHODS = ("random_search", "bo_single", "bo_multi", "regmix")


def _one(args):
    """One (task, target, budget, method, seed): the trace's metrics (run in a worker process)."""
    task, target, budget, method, seed = args
    from mixmin_core.search.multifidelity import (
        ScalePool,
        search_bo,
        search_random,
        search_regmix,
        trace_metrics,
    )
    from mixmin_core.search.run_tables import load_run_table

    names, _, transfer = TASKS[task]
    pool = ScalePool.from_tables([load_run_table(n) for n in names], target)
    rng = np.random.default_rng([seed, METHODS.index(method)])
    far = load_run_table(transfer) if transfer else None
    kw = {"transfer_W": far.weights} if far is not None and method != "random_search" else {}
    t0 = time.perf_counter()
    if method == "random_search":
        trace = search_random(pool, budget=budget, rng=rng)
    elif method == "regmix":
        trace = search_regmix(pool, budget=budget, rng=rng, **kw)
    else:
        trace = search_bo(pool, budget=budget, rng=rng, levels=[pool.n_levels - 1] if method == "bo_single" else None, **kw)
    out = trace_metrics(trace, pool)
    out["seconds"] = time.perf_counter() - t0
    out["best"] = pool.best
    if trace.transfer_pred is not None:
        y_far = far.loss(target)
        ok = np.isfinite(y_far)
        out["transfer_regret"] = float(y_far[ok][np.argmin(trace.transfer_pred[ok])] - y_far[ok].min())
    return (task, target, budget, method, seed), out


def _ci(values) -> str:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.4f}"
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():.4f} ± {half:.4f}"


def _reached(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    hit = v[np.isfinite(v)]
    return f"{len(hit)}/{len(v)}" + (f" @ {hit.mean():.2f}" if len(hit) else "")


def report(results: dict, tasks: dict, budgets, seeds: int) -> None:
    for task, (names, targets, transfer) in tasks.items():
        for target in targets:
            for budget in budgets:
                rows = {m: [results[(task, target, budget, m, s)] for s in range(seeds)] for m in METHODS}
                best = rows[METHODS[0]][0]["best"]
                print(f"\n## {task}: {target} at {names[-1]} (best in pool {abs(best):.4f}), budget {budget} "
                      f"{names[-1]} runs, {seeds} seeds")
                levels = [k for k in rows[METHODS[0]][0] if k.startswith("runs_")]
                head = "| method | regret | cost | within 1%: seeds @ mean cost | best: seeds @ mean cost | " \
                       + " | ".join(levels) + (" | 1B transfer regret |" if transfer else " |")
                print(head)
                print("|" + "---|" * (head.count("|") - 1))
                for m in METHODS:
                    r = rows[m]
                    cells = [_ci([x["regret"] for x in r]), _ci([x["cost"] for x in r]),
                             _reached([x["cost_to_0.01"] for x in r]), _reached([x["cost_to_best"] for x in r])]
                    cells += [f"{np.mean([x[k] for x in r]):.1f}" for k in levels]
                    if transfer:
                        cells.append(_ci([x.get("transfer_regret", np.nan) for x in r]))
                    print(f"| {m} | " + " | ".join(cells) + " |")
                secs = {m: sum(x["seconds"] for x in rows[m]) for m in METHODS}
                print("seconds: " + ", ".join(f"{m} {s:.1f}" for m, s in secs.items()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, budget 5, one target per table")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", type=float, nargs="+", default=[10.0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    tasks = dict(TASKS)
    if args.quick:
        args.seeds, args.budgets = 2, [5.0]
        tasks = {k: (v[0], v[1][:1], v[2]) for k, v in TASKS.items()}
    jobs = [(task, target, budget, m, seed) for task, (_, targets, _) in tasks.items() for target in targets
            for budget in args.budgets for m in METHODS for seed in range(args.seeds)]
    jobs.sort(key=lambda j: j[3] != "bo_multi")  # the slow ones first
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one BLAS thread per worker: 2 cores, 2 workers
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        results = dict(pool.map(_one, jobs, chunksize=1))
    print(f"# multi-fidelity BO benchmark ({len(jobs)} searches, {time.perf_counter() - t0:.0f} s wall)")
    print("regret: the recommended mixture's largest-scale loss minus the pool's best (scores: best minus"
          " recommended); cost: in largest-scale runs; mean ± 95% t-interval over seeds.")
    report(results, tasks, args.budgets, args.seeds)


if __name__ == "__main__":
    main()
