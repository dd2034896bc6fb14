"""Statistics and files of a finished run: ``results.csv`` and ``summary.csv``, written once for every pipeline.

A result row is ``trial, target, variant, method, metric, value, proxy_compute, final_compute`` (extra
scalar columns are kept). The summary has one row per (target, variant, method, metric) with the mean
and 95% CI over trials, the paired p-value against MixMin and the mean compute, plus an ``overall``
target: per trial the mean over targets, then the same statistics (how sweeps and the app compare
methods). ``reference`` (e.g. ``natural``) adds the improvement over that method, trial by trial.
"""
from __future__ import annotations

import warnings

from mixmin_core.runs import layout
from mixmin_core.solver.results import mean_over_targets, summarize

#: What to do about a MixMin solve that ran out of iterations: the job log and the Compare page say it alike.
MAX_ITER_ADVICE = ("a larger `max_iter` helps where the gap falls steadily; where it swings or rises, a smaller "
                   "`step_size`")


def convergence_warning(result, *, max_iter_field: str = "max_iter") -> str | None:
    """What a job's log says of a MixMin ``result`` that did not converge (None where it did), after "MixMin ":
    its own message, which says when the loss rose and an earlier iterate is returned (try a smaller step_size),
    and for one that ran out of iterations otherwise, :data:`MAX_ITER_ADVICE` (naming ``max_iter_field``)."""
    if result.status == "max_iter":
        rose = result.meta.get("iterate", result.n_iter) < result.n_iter  # an earlier iterate: the loss rose after it
        advice = "" if rose else "; " + MAX_ITER_ADVICE.replace("`max_iter`", max_iter_field).replace("`", "")
        # the gap bounds how far the loss is from its optimum, not how far the weights are: say both (a newcomer's
        # first run warned of gaps of 1.6e-6 as if the run had failed)
        return (f"stopped at its iteration limit, not converged (gap {result.gap:.2g}: its loss is at most that much "
                f"above the optimum's, while its weights may still move): {result.message}{advice}")
    if result.status in ("clipped", "non_finite"):  # the message says why and what to try
        return f"did not converge: {result.message}"
    return None


def results_frame(rows: list[dict]):
    """Result rows as a DataFrame with the contract's columns (missing compute is 0)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for col in ("proxy_compute", "final_compute"):
        if col not in frame:
            frame[col] = 0.0
    if "variant" not in frame:
        frame["variant"] = ""
    frame = frame.fillna({"variant": "", "proxy_compute": 0.0, "final_compute": 0.0})
    return frame


def summary_frame(frame, *, reference: str | None = None):
    """Per-target and ``overall`` statistics of a results frame (see the module docstring)."""
    import pandas as pd

    by = ("target", "variant", "method", "metric")
    ref = reference if reference is not None and (frame["method"] == reference).any() else None
    with warnings.catch_warnings():  # identical trial values (equal accuracies) make scipy warn
        warnings.simplefilter("ignore", RuntimeWarning)
        per_target = summarize(frame, by=by, reference=ref, focus="mixmin")
        overall = summarize(mean_over_targets(frame, keep=("variant",)), by=by, reference=ref, focus="mixmin")
    table = pd.concat([per_target, overall], ignore_index=True) if frame["target"].nunique() > 1 else per_target
    if "p_vs_mixmin" not in table:
        table["p_vs_mixmin"] = float("nan")
    return table


def write_report(run_dir, rows: list[dict], *, reference: str | None = None):
    """Write ``results.csv`` and ``summary.csv`` for ``rows``; return the summary DataFrame."""
    frame = results_frame(rows)
    layout.write_results(run_dir, frame)
    table = summary_frame(frame, reference=reference)
    layout.write_summary(run_dir, table)
    return table
