"""Compare: MixMin against the baselines a run has, per target and overall (from the run's results.csv)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from mixmin_core.engine.report import MAX_ITER_ADVICE
from mixmin_core.lm.overlap import warned
from mixmin_core.runs import layout
from mixmin_core.solver.results import (
    OVERALL,
    lower_is_better,
    mean_over_targets,
    metric_ci,
    metric_range,
    summarize,
)
from pages.common import data, notes, state
from pages.common import figures as figs

state.open_page("compare")

def bars(summary: pd.DataFrame, x: str, title: str) -> go.Figure:
    summary = summary.assign(err_plus=summary["ci_high"] - summary["mean"], err_minus=summary["mean"] - summary["ci_low"])
    methods = sorted(summary["method"].unique(), key=figs.method_sort_key)
    patterns = {"pattern_shape": "method", "pattern_shape_map": figs.METHOD_PATTERNS} if x != "method" else {}
    fig = px.bar(summary, x=x, y="mean", color="method", barmode="group" if x != "method" else "relative",
                 error_y="err_plus", error_y_minus="err_minus", category_orders={"method": methods}, title=title,
                 color_discrete_map=figs.METHOD_COLOURS, **patterns)  # grouped bars: a pattern per method too
    metric = summary["metric"].iloc[0]
    fig.update_layout(height=420, showlegend=x != "method", margin=dict(l=10, r=10, t=40, b=10),
                      yaxis_title=data.metric_label(metric))
    ends = summary[["mean", "ci_low", "ci_high"]].to_numpy(dtype=float)
    lo, hi = (np.nanmin(ends), np.nanmax(ends)) if np.isfinite(ends).any() else (0.0, 0.0)
    if metric_range(metric) != (0, 1) and lo > 0 and hi - lo < 0.5 * hi:  # losses of 5.41 and 5.55 drew as equal
        start = lo - 0.1 * (hi - lo or hi)  # bars from 0: the differences between methods hid in their heights
        fig.update_yaxes(range=[start, hi + 0.05 * (hi - lo or hi)],
                         title=f"{data.metric_label(metric)} (axis from {start:.3g})")
    return fig


WHAT = ("What you are looking at: each method's score on each target's held-out data, mean and 95% confidence "
        "interval over trials. A mixing method's score is a final model's, trained on that method's mixture; "
        "`target_only` trains on the target's own data, `ensemble` averages the proxies' predictions with MixMin's "
        "weights (no final model), a synthetic run scores the mixture itself, and on published run tables a yardstick "
        "predicts the score. The improvement over the "
        "chosen baseline is computed trial by trial, positive where the method did better (a lower loss or a "
        "higher score).")
SEARCH_METHODS = ("random_search", "regmix")


def summary_table(summary: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    cols = ["target", "method", "mean", "ci_low", "ci_high", "n_trials"]
    cols += [c for c in ("improvement", "improvement_low", "improvement_high", "p_vs_mixmin", "proxy_compute",
                         "final_compute", "compute") if c in summary]
    table = summary[cols].copy()
    if baseline and "improvement" in table:
        table = table.rename(columns={"improvement": f"vs {baseline}", "improvement_low": "vs low",
                                      "improvement_high": "vs high"})
    order = {"target": lambda s: s.map(lambda t: (t != OVERALL, t)), "method": lambda s: s.map(figs.method_sort_key)}
    return table.sort_values(["target", "method"], key=lambda s: order[s.name](s))


def method_lines(table: pd.DataFrame, x: str) -> go.Figure:
    """One line per method of ``mean`` against column ``x``, with ``lo``/``hi`` error bars (MixMin bold)."""
    fig = go.Figure()
    for method in sorted(table["method"].unique(), key=figs.method_sort_key):
        t = table[table["method"] == method]
        fig.add_trace(go.Scatter(x=t[x], y=t["mean"], mode="lines+markers", name=method,  # dash and symbol: not colour alone
                                 line=dict(width=3 if method == "mixmin" else 1.5, color=figs.METHOD_COLOURS.get(method),
                                           dash=figs.METHOD_DASHES.get(method, "dot")),
                                 marker={"symbol": figs.METHOD_SYMBOLS.get(method, "star"), "size": 8},
                                 error_y=dict(type="data", symmetric=False, array=t["hi"] - t["mean"],
                                              arrayminus=t["mean"] - t["lo"])))
    return fig


def missing_methods(frame: pd.DataFrame, variant: str, config: dict) -> str | None:
    """Which methods of the metric's other settings, or search methods the config asked for, have no results in
    ``variant``, and why (PCBA-128's 127 sources exceed search_max_sources in its only setting: no other setting had
    them, and nothing was said)."""
    point = layout.sweep_point(variant)
    limit = config.get("search_max_sources")
    over = bool(limit and point and point[0] == "sources" and point[1] > limit)
    # searches the config asked for, where its limit left them out (no setting may have them: PCBA-128 at [all])
    asked = set(config.get("methods") or ()) & set(SEARCH_METHODS) if over else set()
    missing = sorted((set(frame["method"]) | asked) - set(frame.loc[frame["variant"] == variant, "method"]),
                     key=figs.method_sort_key)
    if not missing:
        return None
    if variant.startswith("cross:"):  # by design, not by a limit of the config
        return (f"`{variant}` scores the MixMin model of `{variant.removeprefix('cross:')}` (trained on its mixture) on "
                "the run's other targets: how far one target's mixture carries. Only MixMin is scored here; the other "
                "methods are in each target's own setting.")
    names = ", ".join(missing)
    if set(missing) <= set(SEARCH_METHODS) and over:
        pool = "every assay of the table" if point[1] == float("inf") else f"{point[1]:g} assays"
        elsewhere = ("Pick another setting to compare them." if set(missing) & set(frame["method"]) else
                     "No setting of this run is that small: set search_max_sources higher (or 0) to run them.")
        return (f"Not run in this setting: {names}. The run's config limits random search and RegMix to problems "
                f"with at most `search_max_sources={limit}` sources (this setting's pool holds {pool}; a target is not "
                f"its own source); the paper ran them at every source count. {elsewhere}")
    return (f"Not run in this setting: {names} (the run has results for {'them' if len(missing) > 1 else 'it'} in "
            "other settings only). Its config may limit them; see the run's config and log on the Jobs page.")


def overlap_note(info: dict, sample_chars=None) -> None:
    """Say how many of the targets' test molecules (chemistry) or examples (language models) the sources hold;
    ``sample_chars``: the characters the run read per source (``max_source_chars``), where the counts come from."""
    within = (f" (counted in the first {sample_chars:,} characters of each source, what the run read)"
              if isinstance(sample_chars, int) and not isinstance(sample_chars, bool) and sample_chars > 0 else "")
    examples = info.get("target_examples_in_sources")
    if isinstance(examples, dict) and any(float(v) > 0 for v in examples.values()):
        by_source = info.get("target_examples_by_source") or {}
        held = "; ".join(f"{state.code(t, 40)} {float(v):.0%}" + (" (" + ", ".join(
            f"{state.code(n, 40)} {c}" for n, c in list(by_source.get(t, {}).items())[:5]) + ")" if by_source.get(t)
            else "") for t, v in examples.items() if float(v) > 0)
        st.warning(f"Some targets' examples appear word for word (runs of 13 words) in the sources' text{within}: {held}. A "
                   "method that weights those sources is scored partly on text its final model trained on; remove "
                   "them from the sources to compare cleanly.", icon=":material/content_copy:")
    shared = [p for p in info.get("documents_shared_by_sources") or [] if warned(p)]
    if shared:
        pairs = "; ".join(f"{state.code(a, 40)} and {state.code(b, 40)} share {k:,} documents ({k / n_a:.0%} of "
                          f"{state.code(a, 40)}'s, {k / n_b:.0%} of {state.code(b, 40)}'s)"
                          for p in shared[:5] for (a, b), (n_a, n_b), k in [(p["sources"], p["documents"], p["shared"])])
        st.warning(f"Some sources hold the same documents{within}: {pairs}. Their proxies are near-identical, so MixMin can put "
                   "their weight on either: read their weights together. A mixture of both repeats those documents; "
                   "deduplicate the sources to compare cleanly.", icon=":material/content_copy:")
    shares = info.get("test_molecules_in_sources")
    if not isinstance(shares, dict) or not shares:
        return
    share = sum(float(v) for v in shares.values()) / len(shares)
    if share > 0:
        st.info(f"{share:.0%} of the targets' test molecules (mean over targets) are in some source's training rows, "
                "labelled for that source's own assay: assays are split one by one, as in the paper. A method that "
                "weights a source sharing those molecules with a correlated assay gains through them. Run with "
                "`drop_target_test_molecules: true` to remove them from every source.", icon=":material/info:")
    else:
        st.caption("The targets' test molecules were removed from every source (`drop_target_test_molecules`).")


def few_positives(frame: pd.DataFrame) -> None:
    """For chemistry finals that recorded their test split's positives: the targets whose average precision rests on
    a handful of molecules (the fewest over trials)."""
    if "test_positives" not in frame:
        return
    counts = pd.to_numeric(frame["test_positives"], errors="coerce").groupby(frame["target"]).min().dropna()
    notes.few_positives(counts.to_dict(), one_trial=frame["trial"].nunique() == 1)


def yardstick_note(frame: pd.DataFrame, metric: str) -> None:
    """For a run-table yardstick's predictions: its cross-validated error, and which methods' mixtures it
    predicts beyond the best run it was fitted on by more than that (extrapolations)."""
    if not (data.is_surrogate(metric) and "yardstick" in metric):
        return
    rmse = frame[frame["metric"] == "yardstick_rmse"].groupby("target")["value"].mean()
    rmse = rmse[rmse > 0]
    if rmse.empty:
        return
    # per method and target, against that target's own error: a mean over targets hid one target's extrapolation
    far = data.extrapolations(frame)
    errors = (f"error is {rmse.iloc[0]:.3g}" if len(rmse) == 1 else "errors are " + ", ".join(
        f"{state.code(t, 40)} {v:.3g}" for t, v in rmse.head(6).items()) + ("..." if len(rmse) > 6 else ""))
    text = (f"The yardstick's cross-validated {errors} (RMSE): differences between methods smaller than "
            + ("that are within its error." if len(rmse) == 1 else
               f"a target's error are within it (for the overall rows, the largest: {rmse.max():.3g})."))
    # per target, as the extrapolations: a mean over targets (0.50 and 0.70) hid the weak one
    by_target = frame[frame["metric"] == "yardstick_spearman"].groupby("target")["value"].mean()
    weak = by_target[by_target < 0.5].sort_values()
    rho = weak.min() if len(weak) else 1.0
    if len(weak):  # on 16 held-out runs of 44 features a reviewer's ranked at 0.24
        where = ", ".join(f"{state.code(t, 40)} {v:.3g}" for t, v in weak.head(6).items())  # 0.4968, not 0.50
        text += (f" It ranks its own runs at a Spearman of only {where} (cross-validated, mean over trials): its "
                 "scores say little about which method is better there.")
    if far.empty:
        (st.warning if rho < 0.5 else st.caption)(text)
        return
    st.warning(text + " It predicts " + ", ".join(f"`{m}` on {state.code(t, 40)} {v:.3g}" for (m, t), v in
                                                  far.head(6).items())
               + " beyond the best run it was fitted on: an extrapolation, not a measurement; read those improvements "
                 "with care.", icon=":material/warning:")


def compute_unit(pipeline: str) -> tuple[str, str]:
    """What a pipeline's compute ledger counts (see the README's "Compute is measured"): a short unit for an axis
    and the whole of it for a title."""
    if pipeline.startswith("chem"):
        return "trees x rows", "XGBoost trees x training rows"
    return {"lm": ("FLOPs", "FLOPs: 6 x parameters x tokens"),
            "run_table": ("runs or cost", "runs looked up, or the table's published costs"),
            "synthetic": ("samples", "source samples the proxies fit")}.get(pipeline, ("", ""))


def capped_rows(frame: pd.DataFrame) -> tuple[int, int, int]:
    """``(cap, capped, finals)``: the ``max_final_rows`` the final models ran under (0 when none or not recorded),
    how many of the ``finals`` (trial, target, setting, method) reached it (all of them in a run that did not
    record its models' rows)."""
    if "max_final_rows" not in frame:
        return 0, 0, 0
    caps = pd.to_numeric(frame["max_final_rows"], errors="coerce").fillna(0)
    if not (caps > 0).any():
        return 0, 0, 0
    keys = [c for c in ("trial", "target", "variant", "method") if c in frame]
    finals = frame.assign(cap=caps).drop_duplicates(keys)
    if "rows" not in finals:
        return int(caps.max()), len(finals), len(finals)
    rows = pd.to_numeric(finals["rows"], errors="coerce")  # none for a method without a final model (ensemble)
    return int(caps.max()), int(((finals["cap"] > 0) & (rows >= finals["cap"])).sum()), int(rows.notna().sum())


def sweep_table(frame: pd.DataFrame, kind: str) -> pd.DataFrame | None:
    """Per method and sweep point (``kind``: sources or compute), the mean over targets and its 95% CI over trials;
    None without two points of that kind."""
    points = frame.assign(point=frame["variant"].map(layout.sweep_point)).dropna(subset=["point"])
    if points.empty:
        return None
    points = points[points["point"].map(lambda p: p[0] == kind).astype(bool)]
    if points["variant"].nunique() < 2:
        return None
    x_of = dict(zip(points["variant"], points["point"].map(lambda p: p[1])))
    rows = []
    for (method, variant), grp in mean_over_targets(points, keep=("variant",)).groupby(["method", "variant"]):
        mean, lo, hi = metric_ci(grp["value"], grp["metric"].iloc[0] if "metric" in grp else None)
        rows.append({"method": method, "variant": variant, "x": x_of[variant], "mean": mean, "lo": lo, "hi": hi})
    return pd.DataFrame(rows).sort_values("x")


def measured_budgets(frame: pd.DataFrame) -> dict[float, float]:
    """Compute-sweep budgets whose MixMin proxies measured a share of the final run's compute more than 20% away
    from the budget (an LM's 0.01 trains whole steps: 0.024): budget -> measured share."""
    if not {"proxy_compute", "final_compute"} <= set(frame):
        return {}
    out = {}
    for variant, grp in frame[frame["method"] == "mixmin"].groupby("variant"):
        point = layout.sweep_point(variant)
        final = pd.to_numeric(grp["final_compute"], errors="coerce").mean()
        if point and point[0] == "compute" and final > 0:
            share = pd.to_numeric(grp["proxy_compute"], errors="coerce").mean() / final
            if abs(share / point[1] - 1) > 0.2:
                out[float(point[1])] = float(share)
    return dict(sorted(out.items()))


def sweep_figure(table: pd.DataFrame, kind: str, metric: str) -> go.Figure:
    if kind == "compute":  # budgets are numbers: a log axis
        fig = method_lines(table, "x")
        label = "proxy compute budget"
        budgets = sorted(table["x"].unique())  # ticks at the budgets (a log axis labelled its minor ticks "2" ... "9")
        xaxis = {"title": "proxy compute budget (fraction of one final run)", "type": "log", "tickvals": budgets,
                 "ticktext": [f"{b:g}" for b in budgets]}
    else:  # source counts end in "all"
        fig = method_lines(table, "variant")
        label = "source pool size"  # sources-3 is the first 3 assays; a target among them is not its own source
        xaxis = {"title": "assays in the source pool (a target in the pool is not its own source)",
                 "categoryorder": "array", "categoryarray": list(dict.fromkeys(table["variant"]))}
    fig.update_layout(title=f"Sweep over the {label} (mean over targets, 95% CI over trials)", xaxis=xaxis,
                      yaxis_title=data.metric_label(metric), height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def weights_side_by_side(run_id: str, variant: str) -> None:
    """The mixtures each method found for one problem of the chosen setting (of any, if it saved none)."""
    withmix = sorted(data.mixture_problems(run_id), key=lambda p: (data.main_first(p.variant), p.target, p.trial))
    own = variant.removeprefix("cross:") if variant.startswith("cross:") else None  # a model trained on that target's
    trained = [p for p in withmix if own and p.target == own and not p.variant.startswith("cross:")]
    withmix = ([p for p in withmix if p.variant == variant]  # mixture (it showed the scored targets' own): the main
               or [p for p in trained if p.variant == trained[0].variant] or withmix)  # setting's, sorted first
    if not withmix:
        st.caption("This run saved no mixtures.")
        return
    keys = [p.key for p in withmix]
    key = state.select_kept("Weights of", keys, "compare.problem",
                              format_func=lambda k: data.problem_label(data.run_problem_id(run_id, k)))
    mixtures = data.read_mixtures(run_id, layout.Problem.from_key(key))
    frame = pd.DataFrame({m: pd.Series(d["weights"]) for m, d in mixtures.items()}).fillna(0.0)
    frame = frame[sorted(frame.columns, key=figs.method_sort_key)]
    order = frame.max(axis=1).sort_values(ascending=False).index[:15]
    top = frame.loc[order]
    fig = px.imshow(top.to_numpy(), x=list(top.columns), y=[str(i) for i in top.index], color_continuous_scale="Blues",
                    aspect="auto", text_auto=".2f", title="Weights each method found (15 largest sources)")
    fig.update_layout(height=max(320, 26 * len(top) + 120), margin=dict(l=10, r=10, t=70, b=10))
    fig.update_xaxes(side="top", title="method")
    st.plotly_chart(figs.safe(fig), key="compare.weights_heatmap")
    st.dataframe(top.reset_index(names="source"), hide_index=True, placeholder="—", width="stretch",  # 0.00000000000000004
                 column_config={m: st.column_config.NumberColumn(format="%.4g") for m in top.columns})


def page() -> None:
    st.title("Compare")
    state.explain(WHAT)
    run_id = state.current_run()
    if not run_id:
        return
    frame = data.results(run_id)
    if frame.empty:
        status = (data.store().get_run(run_id) or {}).get("status")
        ended = status in ("failed", "cancelled", "died")  # "when its job finishes" read as if it still ran
        st.info(data.gone_note(run_id) if data.folder_gone(run_id) else
                f"No results: this run's job {status} before it wrote results.csv; the Jobs page says why, and "
                f"`python -m jobs resume {run_id}` goes on from its finished units." if ended else
                "No results yet: this run has not written its results.csv (it does when its job finishes).")
        return
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
    metric = state.select_kept("Metric", data.metrics_by_default(frame, data.headline_metric(run_id)), "compare.metric", container=c1,
                               format_func=data.metric_label)
    sub = frame[frame["metric"] == metric]
    variant = state.select_kept("Setting", data.settings_by_default(sub), "compare.variant", container=c2,
                                format_func=data.setting_label)
    methods = sorted(sub["method"].unique(), key=figs.method_sort_key)
    baselines = [m for m in methods if m != "mixmin"] or methods
    if len(methods) > 1:
        default = [b for b in ("natural", "target_only", "balanced") if b in baselines] or baselines
        current = st.session_state["compare.baseline"]  # the page's own default follows the run, a user's stays
        if current not in baselines or (state.chosen_by_page("compare.baseline") and current != default[0]):
            state.fallback("compare.baseline", default[0])
        baseline = state.select_kept("Improvement over", baselines, "compare.baseline", container=c3,
                                     follow=False)  # its default is natural's, not the first
    else:  # an improvement of a method over itself is 0 by construction: show none
        baseline = None
        c3.caption(f"Only `{methods[0]}` ran for this metric: no improvement to show.")
    shown = sub[sub["variant"] == variant]
    direction = "lower is better" if lower_is_better(metric) else "higher is better"
    n_targets, n_trials = shown["target"].nunique(), shown["trial"].nunique()
    bounded = " (kept within [0, 1])" if metric_range(metric) == (0, 1) else ""  # said only of a proportion
    spread = (f"95% CIs over trials{bounded}" + (
        " · p-values: paired t-test against MixMin over trials (none where the difference is the same in every "
        "trial, 1 where both score the same in every trial)" if "mixmin" in methods else "") if n_trials > 1 else
        "one trial: no intervals or p-values " + ("(set `trials` to 3 or more)" if data.max_trials(run_id) is None else
                                                   "(this pipeline runs one trial)"))
    st.caption(f"`{metric}` ({direction}) · {n_targets} target{'s' * (n_targets != 1)} · "
               f"{n_trials} trial{'s' * (n_trials != 1)} · {spread}"
               + (" · overall: per trial, the mean over the targets every method has" if n_targets > 1 else ""))
    if data.is_surrogate(metric):
        st.warning("This metric is a surrogate estimate (a regression model's prediction of the target metric), "
                   "not measured on a trained final model.", icon=":material/model_training:")
    overlap_note(data.dataset_info(run_id), data.run_config(run_id).get("max_source_chars"))
    stopped = data.unconverged(run_id, variant)
    if stopped:
        worst = max(stopped, key=lambda kv: kv[1])
        st.warning(f"MixMin stopped at its iteration limit, not converged, on {len(stopped)} of this setting's problems "
                   f"(largest Frank–Wolfe gap {worst[1]:.2g}, {state.code(worst[0])}): its weights are where the "
                   f"iterations ran out. See how they converge on the Solver page: {MAX_ITER_ADVICE}."
                   + (" Joint mixtures have their own `joint_max_iter`." if any("joint" in w for w, _ in stopped)
                      else ""),
                   icon=":material/hourglass_bottom:")
    flat = data.clipped(run_id, variant)
    if flat:
        st.warning(f"On {len(flat)} of this setting's problems (e.g. {state.code(flat[0])}) MixMin's Frank–Wolfe gap "
                   "certifies nothing: where it stopped, some samples' mixed probability was clipped (the loss is flat "
                   "there) and other sources would give them more. A smaller `step_size` usually avoids it; the Solver "
                   "page shows the descent.", icon=":material/warning:")
    failed = data.failed_searches(run_id, variant)
    if failed:
        methods = sorted({m for _, m, _ in failed})
        st.warning(f"{', '.join(methods)} did not succeed on {len(failed)} of this setting's problems (e.g. "
                   f"{state.code(failed[0][0])}: {state.plain(failed[0][2][-160:])}): those mixtures were chosen "
                   "arbitrarily, and their scores say little about the method. For RegMix on few runs, use "
                   "`preset: auto` (or mixmin-paper).", icon=":material/warning:")
    weak, checked = data.weak_regressors(run_id, variant)
    if weak:  # MUV: 7 of 12 at <= 0.03, and RegMix still put 0.55 on one source
        st.caption(f"RegMix's regressor ranked its held-out runs at a Spearman below {data.WEAK_SPEARMAN:g} on {weak} of "
                   f"the {checked} problems where it was checked: there its pick is little better than a draw from the "
                   "prior (few runs for many sources).")
    short = data.underspent(run_id, variant)
    if short:
        st.caption("Measured below the proxy compute planned for them (MixMin's): " + ", ".join(
            f"`{m}` {share:.0%}" for m, share in short.items()) + ". Compute is what the runs measured: a search run "
            "whose rows hold one label class trains no trees, and records none.")
    yardstick_note(frame[frame["variant"] == variant], metric)
    note = missing_methods(sub, variant, data.run_config(run_id))
    if note:
        st.info(note, icon=":material/info:")
    cap, capped, finals = capped_rows(shown)
    if capped:
        st.caption(f"Final models were capped at {cap:,} training rows (`max_final_rows`; {capped} of {finals} "
                   "reached it), drawn from the weighted union of the sources in proportion to each method's weights.")
    elif cap:
        st.caption(f"A cap of {cap:,} training rows was set (`max_final_rows`), and no final model reached it: each "
                   "trained on every row of its sources, weighted by its method's mixture.")
    few_positives(shown)
    per_target = summarize(shown, reference=baseline, focus="mixmin")
    overall = mean_over_targets(shown)
    total = summarize(overall, reference=baseline, focus="mixmin")
    if n_targets > 1:
        left, right = st.columns([1, 2])
        left.plotly_chart(figs.safe(bars(total, "method", "Overall (mean over targets)")), key="compare.overall")
        right.plotly_chart(figs.safe(bars(per_target, "target", "Per target")), key="compare.per_target")
        counted = dict(overall[["trial", "n_targets"]].drop_duplicates().itertuples(index=False))
        fewer = {int(t): int(counted.get(t, 0)) for t in sorted(shown["trial"].unique()) if counted.get(t, 0) < n_targets}
        if fewer:
            st.caption("Overall covers fewer targets in some trials: " + "; ".join(
                f"trial {t}: {f'{n} of the {n_targets}' if n else 'none (that trial is left out)'}"
                for t, n in fewer.items()) + ". A target counts in a trial only where every method has a value "
                "there (e.g. no AP without a test positive).")
    else:  # one target: the overall rows would repeat it
        st.plotly_chart(figs.safe(bars(per_target, "target", "Per target")), key="compare.per_target")
    st.header("Summary")
    st.dataframe(summary_table(per_target if n_targets == 1 else pd.concat([total, per_target]), baseline),
                 hide_index=True, placeholder="—", width="stretch",
                 column_config={"p_vs_mixmin": st.column_config.NumberColumn(
                     format="%.3g", help="Paired t-test p-value of this method against MixMin over trials (the "
                                         "trials share their splits; none for MixMin itself)"),
                                # 4 significant digits: a difference of 1.85e-17 read as "000000000001"
                                **{c: st.column_config.NumberColumn(format="%.4g") for c in (
                                    "mean", "ci_low", "ci_high", f"vs {baseline}", "vs low", "vs high")},
                                # compute in full (4 digits read 123456 and 123499 both as 123500)
                                **{c: st.column_config.NumberColumn(format="localized") for c in (
                                    "proxy_compute", "final_compute", "compute")}})
    compute = next((c for c in ("proxy_compute", "compute") if c in total and total[c].notna().any()), None)
    unequal = compute and data.unmatched(total, compute)
    if unequal:
        st.warning(f"Not an equal-compute comparison: {unequal}. Read their differences with that in mind (on a "
                   "run table, `regmix_runs` with `preset: auto` matches RegMix to the others).", icon=":material/balance:")
    if compute:
        unit, whole = compute_unit(str(data.run_config(run_id).get("pipeline", "")))
        fig = px.bar(total, x="method", y=compute, color="method", color_discrete_map=figs.METHOD_COLOURS,
                     title="Proxy compute per method" + (f" ({whole})" if whole else ""),
                     category_orders={"method": sorted(total["method"], key=figs.method_sort_key)})
        fig.update_layout(height=300, showlegend=False, margin=dict(l=10, r=10, t=40, b=10),
                          yaxis_title=f"proxy compute ({unit})" if unit else "proxy compute")
        st.plotly_chart(figs.safe(fig), key="compare.compute")
    for kind in ("sources", "compute"):
        table = sweep_table(sub, kind)
        if table is not None:
            st.plotly_chart(figs.safe(sweep_figure(table, kind, metric)), key=f"compare.sweep_{kind}")
            measured = measured_budgets(sub) if kind == "compute" else {}
            if measured:
                st.caption("MixMin's proxies measured other shares of its final model's compute than their budgets "
                           "say: " + ", ".join(f"{b:g} → {m:.3g}" for b, m in measured.items()) + " (proxies train "
                           "whole steps or rows, a target's own proxy is left out, and final models may be capped). "
                           "The axis shows the budgets.")
            with st.expander("The sweep's numbers"):  # what the lines show, for a reader who cannot see them
                st.dataframe(table.drop(columns="x").rename(columns={"variant": "setting", "lo": "ci_low",
                                                                     "hi": "ci_high"}),
                             hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.4g")
                                                             for c in ("mean", "ci_low", "ci_high")})
    st.header("Weights side by side")
    weights_side_by_side(run_id, variant)
    state.share_link("compare", c4)


with state.shows_errors():
    page()
state.write_url("compare")
