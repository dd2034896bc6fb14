"""RegMix's regressor on its own published runs: rank correlation on held-out runs and transfer.

For every Pile validation domain of RegMix's tables, fits the ``faithful`` LightGBM on the 512
training 1M runs and prints the Spearman correlation of its predictions with the measured losses
of the 256 held-out 1M runs and of the 60M and 1B runs (same regressor, bigger models). Two
protocols: ``ours`` early-stops on a hold-out of the training runs (the test runs are never seen);
``notebook`` early-stops on the 1M test runs, as RegMix's ``regression.ipynb`` does with its
validation runs (so its 1M number is optimistic). Also prints the chosen Pile-CC mixture and,
at equal look-ups, random search and BO on the 60M runs (measured regret over the best run).

    MIXMIN_DATA_DIR=../shared/data python -m benchmarks.search
    MIXMIN_DATA_DIR=../shared/data python -m benchmarks.search --quick   # Pile-CC only
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from mixmin_core.search.bayesopt import bo_table
from mixmin_core.search.run_tables import load_run_table, prior_for
from mixmin_core.search.swarm import (
    fit_regressor,
    random_search_table,
    regmix_choose,
    spearman,
)

TESTS = ("regmix_1m_test", "regmix_60m_test", "regmix_1b_test")


def correlations(train, tests, target: str, protocol: str) -> dict[str, float]:
    val = None
    if protocol == "notebook":
        val = (tests["regmix_1m_test"].weights, tests["regmix_1m_test"].target(target))
    model = fit_regressor(train.weights, train.target(target), val=val)
    return {name: spearman(model.predict(t.weights), t.target(target)) for name, t in tests.items()}


def lookup_comparison(budget: int, seeds: int) -> None:
    table = load_run_table("regmix_60m_test")  # multi-fidelity BO, which buys 1M runs too: python -m benchmarks.bo
    y = table.target("pile_cc")
    regrets = {"random_search": [], "bo": []}
    for seed in range(seeds):
        args = {"source_names": table.source_names, "rng": np.random.default_rng(seed)}
        regrets["random_search"].append(random_search_table(table.weights, y, n_trials=budget, **args).loss - y.min())
        args["rng"] = np.random.default_rng(seed)
        regrets["bo"].append(bo_table(table.weights, y, budget=budget, n_init=5, **args).loss - y.min())
    print(f"\n60M Pile-CC, {budget} look-ups of 256 runs, regret over the best run ({y.min():.4f}), {seeds} seeds:")
    for method, values in regrets.items():
        print(f"  {method:18s} mean {np.mean(values):.4f}  max {np.max(values):.4f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Pile-CC only, fewer seeds")
    args = parser.parse_args(argv)
    train = load_run_table("regmix_1m_train")
    tests = {name: load_run_table(name) for name in TESTS}
    targets = ["pile_cc"] if args.quick else list(train.metric_names)
    print(f"{'target':22s} {'protocol':9s} " + " ".join(f"{n:>16s}" for n in TESTS) + "  seconds")
    for target in targets:
        for protocol in ("ours", "notebook"):
            start = time.perf_counter()
            rho = correlations(train, tests, target, protocol)
            print(f"{target:22s} {protocol:9s} " + " ".join(f"{rho[n]:16.4f}" for n in TESTS)
                  + f"  {time.perf_counter() - start:7.2f}")
    model = fit_regressor(train.weights, train.target("pile_cc"))
    w = regmix_choose(model, prior_for(train), np.random.default_rng(0))
    top = np.argsort(-w)[:6]
    print("\nRegMix mixture for Pile-CC (faithful, 512 runs):",
          ", ".join(f"{train.source_names[i]} {w[i]:.3f}" for i in top))
    lookup_comparison(17, 3 if args.quick else 10)


if __name__ == "__main__":
    main()
