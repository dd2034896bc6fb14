"""The benchmarks' own code paths run (small sizes; their timings are for `python -m benchmarks.*`, not tests)."""
import numpy as np


def test_the_solver_benchmarks_bootstrap_rows_run_both_paths(capsys):
    """The two-pass objective the benchmark compares with lacked what the bootstrap now asks (`compiled`): the
    benchmark's bootstrap row raised AttributeError, and no test ran it."""
    from benchmarks.solver import bootstrap_row, few_sources_bootstrap_row
    from mixmin_core.solver import objectives

    compiled = objectives.Objective.compiled
    rng = np.random.default_rng(0)
    bootstrap_row(rng, n_boot=4, repeats=1)
    few_sources_bootstrap_row(rng, n_boot=4, repeats=1)
    out = capsys.readouterr().out
    assert "bootstrap 4 x (600 x 5,000): one-pass" in out and "two-pass" in out
    assert "bootstrap 4 x (20 x 20,000): each resample compiled" in out and "batched" in out
    assert objectives.Objective.compiled is compiled  # put back
