"""``MixtureResult`` (what every solver and baseline returns) and summary statistics."""
from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from mixmin_core.errors import InputError

#: The target name of the mean over targets in results and summaries.
OVERALL = "overall"


class Status(str, enum.Enum):
    CONVERGED = "converged"
    MAX_ITER = "max_iter"
    STOPPED_BY_CALLBACK = "stopped_by_callback"
    NON_FINITE = "non_finite"
    CLIPPED = "clipped"  # the gap fell to tol where clipped probabilities made the loss flat: no certificate
    NOT_ITERATIVE = "not_iterative"  # closed-form baselines (natural, balanced, search methods)


@dataclass(frozen=True, eq=False)
class MixtureResult:
    """A mixture over sources and how it was found (fields follow scipy's ``OptimizeResult``).

    Attributes
    ----------
    weights : (n_sources,) float32 on the simplex.
    source_names : tuple of str.
    loss : objective value at ``weights`` (NaN when the method has no objective).
    n_iter : iterations taken (0 for non-iterative methods).
    success, status, message : outcome; ``success`` implies ``gap <= tol`` for iterative solvers.
    trajectory : (n_iter + 1, n_sources) weights per iteration, the first row the start.
    losses : (n_iter + 1,) objective per iteration.
    gaps : (n_iter + 1,) Frank-Wolfe gap per iteration.
    gap : Frank-Wolfe gap at ``weights`` (an upper bound on the suboptimality).
    method : name of the method that produced it.
    meta : extra JSON-serialisable facts (compute spent, step size, ...).
    target_losses : ``{target name: loss at weights}`` for multi-target solvers, else None.
    """

    weights: np.ndarray
    source_names: tuple
    loss: float = float("nan")
    n_iter: int = 0
    success: bool = True
    status: str = Status.NOT_ITERATIVE.value
    message: str = ""
    # left out of the repr: hundreds of rows each (the weights and the summary numbers say what happened)
    trajectory: np.ndarray | None = field(default=None, repr=False)
    losses: np.ndarray | None = field(default=None, repr=False)
    gaps: np.ndarray | None = field(default=None, repr=False)
    gap: float = float("nan")
    method: str = "mixmin"
    meta: dict = field(default_factory=dict, repr=False)
    target_losses: dict | None = None

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` largest weights as ``(source_name, weight)``, largest first."""
        from mixmin_core.solver.validation import check_number

        k = check_number("k", k, minimum=0, integer=True)  # [:-1] would silently drop the last
        order = np.argsort(-self.weights, kind="stable")[:k]
        return [(self.source_names[i], float(self.weights[i])) for i in order]

    def to_dict(self) -> dict:
        """JSON-ready summary (weights by name; no trajectory). A loss or gap that is not finite (status
        ``non_finite``) is None: strict JSON has no NaN or Infinity."""
        out = {
            "method": self.method, "weights": dict(zip(self.source_names, map(_finite_or_none, self.weights))),
            "loss": _finite_or_none(self.loss), "n_iter": int(self.n_iter), "success": bool(self.success),
            "status": str(self.status), "message": self.message, "gap": _finite_or_none(self.gap), "meta": self.meta,
        }
        if self.target_losses is not None:
            out["target_losses"] = {str(k): _finite_or_none(v) for k, v in self.target_losses.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict) -> MixtureResult:
        """The result :meth:`to_dict` wrote (a mixture JSON). Raises InputError without a ``weights`` mapping."""
        if not isinstance(d, dict) or not isinstance(d.get("weights"), dict):
            raise InputError("not a mixture: expected MixtureResult.to_dict() output, with a 'weights' object "
                             "{source: weight}.")
        names = tuple(d["weights"])
        nan = float("nan")
        bad = [n for n in names if d["weights"][n] is not None and not _is_number(d["weights"][n])]
        if bad:
            raise InputError(f"not a mixture: weights must be numbers; got {d['weights'][bad[0]]!r} for {bad[0]!r}.")
        negative = [n for n in names if d["weights"][n] is not None and d["weights"][n] < 0]
        if negative:
            raise InputError(f"not a mixture: weights must be non-negative; got {d['weights'][negative[0]]!r} for "
                             f"{negative[0]!r}.")
        for key in ("loss", "gap"):
            if d.get(key) is not None and not _is_number(d[key]):
                raise InputError(f"not a mixture: {key} must be a number or null; got {str(d[key])[:40]!r}.")
        return cls(
            weights=np.array([nan if d["weights"][n] is None else d["weights"][n] for n in names], dtype=np.float32),
            source_names=names, loss=nan if d.get("loss") is None else d["loss"], n_iter=d.get("n_iter", 0),
            success=d.get("success", True), status=d.get("status", Status.NOT_ITERATIVE.value),
            message=d.get("message", ""), gap=nan if d.get("gap") is None else d["gap"],
            method=d.get("method", "mixmin"), meta=d.get("meta", {}),
            target_losses=None if d.get("target_losses") is None else
            {k: nan if v is None else v for k, v in d["target_losses"].items()},
        )


#: A solve that ran out of iterations with a Frank-Wolfe gap within this many times its ``tol`` has converged for
#: reading its weights (a gap of 2.6e-6 at tol 1e-6 is no reason to distrust them); above it, it stopped short.
MATERIAL_GAP = 10
#: :func:`~mixmin_core.solver.solvers.mixmin`'s ``tol``, for a result saved before it recorded its own.
DEFAULT_TOL = 1e-6


def stopped_short(status: str, gap, tol: float) -> bool:
    """Whether a solve (its ``status``, ``gap`` and ``tol``) stopped short of its optimum by enough to matter: one
    that did not converge (clipped, non-finite), or ran out of iterations with a gap above ``MATERIAL_GAP x tol``.
    The views that compare weights between solves (evolving versions, ladder rungs) flag only these."""
    if status in (Status.CONVERGED.value, Status.NOT_ITERATIVE.value):
        return False
    if status != Status.MAX_ITER.value:
        return True
    return gap is None or not gap <= MATERIAL_GAP * tol


#: Compute columns a results frame may carry; summaries report their mean per group.
COMPUTE_COLUMNS = ("proxy_compute", "final_compute", "compute")


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _finite_or_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval ``(mean, low, high)`` of independent trials.

    NaN and infinite values (a trial not measured, a diverged one) are left out; with one value left the
    interval is ``(mean, nan, nan)``.
    """
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise InputError(f"level must be a fraction in (0, 1), e.g. 0.95 for a 95% interval; got {level!r}.")
    x = _numbers("values", values)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, df=x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return mean, mean - float(half), mean + float(half)


def _numbers(name: str, values) -> np.ndarray:
    """``values`` as a flat float64 array, or an InputError naming ``name`` (text, None, nested lists)."""
    if values is None or isinstance(values, (str, bytes)):  # None read as one NaN; "12" as the number 12
        raise InputError(f"{name} must be numbers (one per trial); got {values!r}.")
    try:
        return np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numbers (one per trial); got {str(values)[:80]}.") from None


def welch_pvalue(a, b) -> float:
    """Two-sided Welch t-test p-value of ``mean(a) != mean(b)``.

    NaN where the test is undefined: fewer than two values on a side, or no spread on either side
    beyond float32 rounding (1e-6 of the means; e.g. the same accuracy on a small test set in every
    trial), where the t statistic is infinite; two such sides with equal means give 1.
    """
    a, b = _numbers("a", a), _numbers("b", b)
    if a.size < 2 or b.size < 2:
        return float("nan")
    noise = 1e-6 * max(abs(a.mean()), abs(b.mean()), 1e-30)
    if a.std(ddof=1) <= noise and b.std(ddof=1) <= noise:
        return 1.0 if abs(a.mean() - b.mean()) <= noise else float("nan")
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def paired_pvalue(a, b) -> float:
    """Two-sided paired t-test p-value of ``mean(a - b) != 0`` over the pairs where both are finite (trial ``i`` of
    ``a`` and of ``b`` share their splits, as every method of a run does).

    Agrees with the paired interval of the difference (:func:`mean_ci` of ``a - b``): where the differences vary,
    p < 0.05 exactly when the 95% interval leaves out 0. Differences within float32 rounding of the scores (1e-6 of
    the means) count as not varying: then NaN where their mean is beyond that too (the same gain in every trial, e.g.
    one test example on a small test set: the t statistic is infinite, and 3 such trials are no evidence of a
    spread), 1 where it is not; NaN with fewer than two pairs.
    """
    a, b = _numbers("a", a), _numbers("b", b)
    if a.size != b.size:
        raise InputError(f"a and b must pair up trial by trial; got {a.size} and {b.size} values.")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    if d.size < 2:
        return float("nan")
    noise = 1e-6 * max(abs(a[keep].mean()), abs(b[keep].mean()), 1e-30)
    if d.std(ddof=1) <= noise:
        return 1.0 if abs(d.mean()) <= noise else float("nan")
    return float(stats.ttest_1samp(d, 0.0).pvalue)


#: Columns that tell a run's settings apart: trials of two settings are no repeats of one experiment.
SETTING_COLUMNS = ("variant",)


def _check_one_setting(frame, grouped, name: str) -> None:
    """An InputError where ``frame`` holds several settings that ``grouped`` would pool as extra trials (a run's
    results.csv through ``summarize`` with its defaults: 6 "trials" of two settings, intervals too narrow)."""
    for col in SETTING_COLUMNS:
        if col in frame and col not in grouped and frame[col].nunique(dropna=False) > 1:
            values = sorted(map(str, frame[col].unique()))  # an empty (NaN) setting is one too
            raise InputError(f"frame holds {len(values)} settings in its {col!r} column ({', '.join(values[:4])}"
                             f"{', ...' if len(values) > 4 else ''}), which {name} would pool as extra trials; "
                             f"group by it too (e.g. {name}(..., {'keep' if name == 'mean_over_targets' else 'by'}="
                             f"(\"{col}\", ...))) or select one setting first.")


def mean_over_targets(frame, keep=()):
    """Per ``(*keep, method, metric, trial)``, the mean value and compute over targets: one ``"overall"``
    pseudo-target whose trials can go through :func:`summarize` (e.g. a compute-budget sweep table).

    Only targets that every method of the ``(*keep, metric, trial)`` has a value for count, so all methods
    average over the same targets (a method run on the easy targets only would otherwise look better).
    ``n_targets`` says how many counted: fewer than the run's targets in some trial means that trial's mean
    covers fewer targets than the others' (a target's AP is undefined without a test positive).
    """
    keep = [keep] if isinstance(keep, str) else list(keep)
    _check_one_setting(frame, keep, "mean_over_targets")
    keys = [*keep, "method", "metric", "trial"]
    cols = ["value"] + [c for c in COMPUTE_COLUMNS if c in frame]
    scored = frame[frame["value"].notna()]
    group = [*keep, "metric", "trial"]
    methods = scored.groupby(group, dropna=False)["method"].transform("nunique")
    per_target = scored.groupby([*group, "target"], dropna=False)["method"].transform("nunique")
    out = scored[per_target == methods].groupby(keys, as_index=False, dropna=False).agg(
        **{c: (c, "mean") for c in cols}, n_targets=("target", "nunique"))
    out["target"] = OVERALL
    return out


#: Parts of a metric's name that make lower values better (losses, errors, a prediction's distance beyond the
#: runs it was fitted on, compute spent); every other metric is higher-better (``summarize(lower_is_better=)``
#: says otherwise for a name these miss).
LOWER_IS_BETTER = ("nll", "loss", "error", "mse", "perplexity", "beyond", "spent", "cross_entropy", "brier",
                   "bits_per", "regret")
#: Parts of a name that make it higher-is-better whatever else it holds (``brier_skill_score``).
HIGHER_IS_BETTER = ("score", "skill")
#: The same, as whole words only (short: ``l1`` is in ``model1``, ``wer`` in ``power``).
LOWER_IS_BETTER_WORDS = ("l1", "mae", "bpb", "ppl", "wer", "cer", "kl")


#: Words in a metric's name that make it a proportion in [0, 1] (its confidence interval is clipped there).
PROPORTIONS = ("ap", "auc", "accuracy", "precision", "recall", "f1")  # average_precision too
#: Words in a metric's name that make it a correlation in [-1, 1].
CORRELATIONS = ("spearman", "pearson", "correlation")
#: Words in a metric's name that make it a size, never negative (an error's root mean square, a distance).
NON_NEGATIVE = ("rmse", "mse", "l1", "beyond", "perplexity", "error", "bought")  # runs_bought/1M: a count


#: Prefixes of metrics that describe the yardstick or the run table, not a method's mixture (``yardstick_rmse``,
#: ``best_run_loss``: the best run of the pool searched): no improvement or p-value is computed for them.
DIAGNOSTIC_PREFIXES = ("yardstick_", "best_")


def is_diagnostic(metric: str) -> bool:
    """Whether ``metric`` describes the yardstick or the table rather than scores a method (see
    :data:`DIAGNOSTIC_PREFIXES`)."""
    return str(metric).startswith(DIAGNOSTIC_PREFIXES)


def metric_range(metric: str) -> tuple[float, float]:
    """The values ``metric`` can take: ``(0, 1)`` for proportions (:data:`PROPORTIONS`), ``(-1, 1)`` for
    correlations (:data:`CORRELATIONS`), ``(0, inf)`` for sizes (:data:`NON_NEGATIVE`), else unbounded."""
    import re

    words = re.split(r"[^a-z0-9]+", str(metric).lower().split("/", 1)[0])  # after a "/": a table's name
    if any(w in CORRELATIONS for w in words):
        return (-1.0, 1.0)
    if any(w in PROPORTIONS for w in words):
        return (0.0, 1.0)
    return (0.0, np.inf) if any(w in NON_NEGATIVE for w in words) else (-np.inf, np.inf)


def metric_ci(values, metric: str | None, level: float = 0.95) -> tuple[float, float, float]:
    """:func:`mean_ci` of ``metric``'s values, the interval clipped to the values the metric can take (a
    t-interval from 2 or 3 trials can reach past 0 or 1 for AP or accuracy)."""
    mean, lo, hi = mean_ci(values, level)
    low, high = metric_range(metric) if metric is not None else (-np.inf, np.inf)
    return mean, float(np.clip(lo, low, high)), float(np.clip(hi, low, high))


def lower_is_better(metric: str) -> bool:
    """Whether lower values of ``metric`` are better (by its name: see :data:`LOWER_IS_BETTER` and
    :data:`LOWER_IS_BETTER_WORDS`; a name with a part of :data:`HIGHER_IS_BETTER` is higher-is-better). Only the
    part before a ``/`` counts (after it a run-table metric names a
    table: ``spearman/heldout_loss`` is a Spearman)."""
    import re

    name = str(metric).lower().split("/", 1)[0]
    words = set(re.split(r"[^a-z0-9]+", name))
    if any(w in name for w in HIGHER_IS_BETTER):
        return False
    return any(w in name for w in LOWER_IS_BETTER) or not words.isdisjoint(LOWER_IS_BETTER_WORDS)


def summarize(frame, *, by=("target", "method", "metric"), reference: str | None = None,
              focus: str = "mixmin", level: float = 0.95, lower_is_better=None):
    """Per-group mean and CI over trials, improvement over ``reference`` and paired p-values.

    Intervals are clipped to the values the metric can take (:func:`metric_range`): [0, 1] for AP, AUC and
    accuracy, [-1, 1] for correlations, [0, inf) for sizes; improvements to the values a difference of two can take ([-1, 1], [-2, 2]).

    Parameters
    ----------
    frame : pandas.DataFrame with columns ``by + ("trial", "value")`` (extra columns ignored).
    reference : method compared with trial by trial (e.g. ``"target_only"``); adds
        ``improvement``/``improvement_low``/``improvement_high``: positive is better, so ``value - reference``,
        or ``reference - value`` for a metric where lower is better (:func:`lower_is_better`).
    focus : method whose p-value against every other method (same target and metric) is reported
        in ``p_vs_<focus>``: a paired t-test over the trials both have (:func:`paired_pvalue`; trials pair the
        methods), so it agrees with the improvement's paired interval. The MixMin paper's Appendix B used Welch's
        test (:func:`welch_pvalue`), which ignores the pairing and can call a gap significant whose paired
        interval holds 0.

    lower_is_better : None (the default: by the metric's name, :func:`lower_is_better`), True or False for every
        metric, or a dict ``{metric: bool}`` (metrics it leaves out: by name). It sets the improvement's sign.

    Each group holds one row per trial: a frame with several settings (``variant``) or targets must group by them
    (or average over targets first, :func:`mean_over_targets`), and a repeated row is an error, never an extra
    trial. A ``reference`` or ``focus`` the frame lacks adds nothing, but one that differs from a method of the
    frame only in case or by a typo is an error.

    Diagnostic metrics (:func:`is_diagnostic`) get neither: they are facts about the yardstick or the table.
    """
    import pandas as pd

    by = [by] if isinstance(by, str) else list(by)  # by="target": one column, not its letters
    missing = [c for c in (*by, "trial", "value") if c not in getattr(frame, "columns", ())]
    if missing:
        raise InputError(f"frame must be a DataFrame with columns {[*by, 'trial', 'value']} (one row per trial); "
                         f"missing {missing}.")
    values = pd.to_numeric(frame["value"], errors="coerce")
    if (values.isna() & frame["value"].notna()).any():  # "0.5x": a t-test on text was a pandas TypeError
        bad = frame["value"][values.isna() & frame["value"].notna()].iloc[0]
        raise InputError(f"frame's 'value' column must hold numbers (empty: not measured); got {bad!r}.")
    _check_one_setting(frame, by, "summarize")
    _check_one_row_per_trial(frame, by)
    lower = _lower_is_better_of(lower_is_better, list(frame["metric"].dropna().unique()) if "metric" in frame else [])
    if "method" in by:
        methods = list(frame["method"].dropna().unique())
        for name, method in (("reference", reference), ("focus", focus)):
            _check_method_named(name, method, methods)
    frame = frame.assign(value=values)
    rows = []
    for key, grp in frame.groupby(by, sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        mean, lo, hi = metric_ci(grp["value"], row.get("metric"), level)
        # the trials the mean is over: a diverged (infinite) trial is left out of both, and counted in neither
        row.update(mean=mean, ci_low=lo, ci_high=hi, n_trials=int(np.isfinite(grp["value"]).sum()))
        for col in COMPUTE_COLUMNS:
            if col in grp:
                row[col] = float(grp[col].mean())
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty or "method" not in by:  # no methods to compare: means and intervals only
        return out
    group_cols = [c for c in by if c != "method"]
    pivot = frame.pivot_table(index=group_cols + ["trial"], columns="method", values="value", aggfunc="mean")
    if reference is not None and reference in pivot.columns:
        diffs = pivot.sub(pivot[reference], axis=0)
        for i, row in out.iterrows():
            sel = None if is_diagnostic(row.get("metric", "")) else _trials_of(diffs, row, group_cols)
            if sel is None:  # no finite value in any trial (pivot_table drops such groups): nothing to compare
                continue
            sign = -1.0 if lower(row.get("metric", "")) else 1.0
            m, lo, hi = mean_ci(sign * sel[row["method"]], level)
            low, high = metric_range(row.get("metric", ""))  # a difference of two such values
            width = high - low
            out.loc[i, ["improvement", "improvement_low", "improvement_high"]] = [m, max(lo, -width), min(hi, width)]
    if focus in pivot.columns:
        for i, row in out.iterrows():
            sel = None if is_diagnostic(row.get("metric", "")) else _trials_of(pivot, row, group_cols)
            out.loc[i, f"p_vs_{focus}"] = (
                float("nan") if row["method"] == focus or sel is None
                else paired_pvalue(sel[focus], sel[row["method"]])
            )
    return out


def _check_one_row_per_trial(frame, by: list) -> None:
    """An InputError where a group repeats a trial: a target left out of ``by`` or a duplicated row would be
    counted as more trials (narrower intervals) by the means, and averaged by the paired comparisons."""
    keys = [*by, "trial"]
    repeated = frame.duplicated(keys, keep=False)
    if not repeated.any():
        return
    if "target" not in by and "target" in frame and frame["target"].nunique(dropna=False) > 1:
        raise InputError(f"frame holds {frame['target'].nunique(dropna=False)} targets, which summarize would pool "
                         "as extra trials; group by target too (by=(\"target\", ...)), or average over targets first "
                         "(mean_over_targets(frame)).")
    first = frame[repeated].iloc[0]
    raise InputError(f"frame repeats {int(repeated.sum())} rows of one group and trial, e.g. "
                     f"{', '.join(f'{k}={first[k]}' for k in keys)}: each group holds one row per trial (a repeat would count as "
                     f"one more trial). Drop the repeats (frame.drop_duplicates({keys}), if they are copies) or add "
                     "the column that tells them apart to by.")


def _lower_is_better_of(given, metrics: list):
    """``metric -> bool`` for :func:`summarize`'s ``lower_is_better`` argument (a dict's keys must be ``metrics``)."""
    is_bool = lambda v: isinstance(v, (bool, np.bool_))
    if given is None:
        return lower_is_better
    if is_bool(given):
        return lambda metric: bool(given)
    if isinstance(given, dict) and all(is_bool(v) for v in given.values()):
        unknown = [k for k in given if k not in metrics]
        if unknown:  # a misspelt key would leave its metric to the name rule, silently
            raise InputError(f"lower_is_better names {unknown[:3]}, which are not metrics of the frame; its metrics: "
                             f"{', '.join(map(str, metrics[:10]))}.")
        return lambda metric: bool(given[metric]) if metric in given else lower_is_better(metric)
    raise InputError(f"lower_is_better must be None, True, False or a dict {{metric: True/False}}; got {given!r}.")


def _check_method_named(name: str, method, methods: list) -> None:
    """An InputError where ``method`` is absent but one of ``methods`` differs from it only in case or by a typo of
    a letter or two (``"natral"``, ``"MixMin"``): it would silently add no improvement or p-value columns. A method
    that extends another (``random_search_bo`` beside ``random_search``) is no typo."""
    if method is None or method in methods or not isinstance(method, str):
        return
    text = [m for m in methods if isinstance(m, str)]
    close = [m for m in text if m.lower() == method.lower()] or [
        m for m in text if len(method) > 3 and not (m.startswith(method) or method.startswith(m))
        and _edits(m, method) <= 2]
    if close:
        raise InputError(f"{name}={method!r} is not a method of the frame; did you mean {close[0]!r}? Its methods: "
                         f"{', '.join(sorted(map(str, methods))[:10])}.")


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (method names are short)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _trials_of(pivot, row, group_cols: list):
    """``pivot``'s rows (trials x methods) for ``row``'s group, or None where the group or the method has no value
    (a constant target's yardstick Spearman is NaN in every trial)."""
    key = tuple(row[c] for c in group_cols)
    if not key:  # by="method" alone: every trial is the group's
        return pivot if row["method"] in pivot.columns else None
    try:
        sel = pivot.xs(key if len(key) > 1 else key[0], level=group_cols if len(key) > 1 else group_cols[0])
    except KeyError:
        return None
    return sel if row["method"] in sel.columns else None
