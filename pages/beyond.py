"""Beyond the paper: evolving source sets (chem_evolve runs) and the proxy-compute ladder (chem_ladder runs).

Evolving sources: per version, what the update trained vs reused, the proxy compute it saved, how
the mixture moved (weights before vs after) and the final model's AP. Ladder: the weights against the
proxy budget, with the rung where the mixture became stable marked.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from mixmin_core.solver.results import DEFAULT_TOL, stopped_short
from pages.common import data, notes, state
from pages.common import figures as figs

state.open_page("beyond")

PIPELINES = ("chem_evolve", "chem_ladder")
#: An L1 change of the weights below this shows as 0.000: the update left the mixture as it was.
NO_MOVE = 5e-4
#: Weights are shown to 4 decimals: a move below half the last digit shows as 0.0000.
SHOWN_MOVE = 5e-5


def _json(path):
    return data.load_json(str(path), data.mtime(path))


# ---- figures (module level: the tests build them too) --------------------------------------------
def before_after_figure(before: dict, after: dict, k: int = 15, title: str = "") -> go.Figure:
    """Grouped horizontal bars of the ``k`` sources with the largest weight before or after."""
    names = list(dict.fromkeys([*before, *after]))
    top = sorted(names, key=lambda n: -max(before.get(n, 0.0), after.get(n, 0.0)))[:k][::-1]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=top, x=[before.get(n, 0.0) for n in top], orientation="h", name="before",
                         marker_color="#aec7e8"))
    fig.add_trace(go.Bar(y=top, x=[after.get(n, 0.0) for n in top], orientation="h", name="after",
                         marker_color="#d62728"))
    fig.update_layout(barmode="group", title=title, xaxis_title="weight", height=max(300, 34 * len(top) + 100),
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.12))
    return fig


def compute_figure(versions: list) -> go.Figure:
    """Per version: proxy compute spent (trained) and reused, stacked (their sum = recomputing everything)."""
    labels = [v["variant"] for v in versions]
    spent = [v["compute"]["spent"] for v in versions]
    saved = [v["compute"]["saved"] for v in versions]
    fig = go.Figure([go.Bar(x=labels, y=spent, name="spent (new or changed proxies)", marker_color="#d62728"),
                     go.Bar(x=labels, y=saved, name="saved (reused from the cache)", marker_color="#2ca02c")])
    fig.update_layout(barmode="stack", title="Proxy compute per version (trees x rows)", yaxis_title="trees x rows",
                      height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def ladder_figure(info: dict, k: int = 8) -> go.Figure:
    """Weights against the proxy budget (% of the final model's compute, log axis), stable rung marked."""
    budgets = np.asarray(info["budgets"], dtype=np.float64) * 100
    names = info["source_names"]
    weights = np.array([[r["weights"][n] for n in names] for r in info["results"]], dtype=np.float64)
    top = np.argsort(-weights[-1], kind="stable")[:k]
    fig = go.Figure()
    rest = np.setdiff1d(np.arange(weights.shape[1]), top)
    if rest.size:
        x = np.tile(np.append(budgets, np.nan), rest.size)
        y = np.hstack([weights[:, rest].T, np.full((rest.size, 1), np.nan)]).ravel()
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=figs.GREY, width=1),
                                 name=f"other {rest.size} sources", hoverinfo="skip"))
    for rank, i in enumerate(top):
        fig.add_trace(go.Scatter(x=budgets.tolist(), y=weights[:, i].tolist(), mode="lines+markers", name=str(names[i]),
                                 line=dict(color=figs.HIGHLIGHT[rank % len(figs.HIGHLIGHT)], width=2.5)))
    if info.get("stable_at") is not None:  # on a log axis a shape takes data units, an annotation log10 of them
        fig.add_vline(x=info["stable_at"] * 100, line_dash="dash", line_color="#333")
        fig.add_annotation(x=math.log10(info["stable_at"] * 100), xref="x", y=1, yref="paper", showarrow=False,
                           xanchor="right", yanchor="bottom", text=f"stable ({rule_text(info)} < {info['threshold']:g})")
    fig.update_layout(title=f"Weights against proxy budget · {info['target']}", height=480,
                      xaxis=dict(title="proxy compute, % of the final model's (log)", type="log"),
                      yaxis_title="weight", margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.2, font=dict(size=11)))
    return fig


def _number(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def l1_figure(info: dict) -> go.Figure:
    budgets = np.asarray(info["budgets"], dtype=np.float64) * 100
    changes = [_number(c) for c in info["l1_changes"]]
    fig = go.Figure(go.Scatter(x=budgets, y=changes, mode="lines+markers", name="L1 change", line=dict(color="#1f77b4")))
    if info.get("rule", "l1") == "l1":  # (the loss-regret rule's threshold is on another scale)
        fig.add_hline(y=info["threshold"], line_dash="dot", line_color="#d62728", annotation_text="threshold")
    fig.update_layout(title="L1 change of the weights from the previous rung", height=300,
                      xaxis=dict(title="proxy compute, % of the final model's (log)", type="log"),
                      yaxis_title="L1 change", margin=dict(l=10, r=10, t=40, b=10))
    return fig


# ---- evolving sources ----------------------------------------------------------------------
def _update_text(update) -> str:
    if not update:
        return "initial set"
    kind, value = next(iter(update.items()))
    if isinstance(value, int):
        return f"{kind} {value} assays"
    items = [value] if isinstance(value, str) else list(value)
    return f"{kind} " + ", ".join(items[:3]) + (f" (+{len(items) - 3})" if len(items) > 3 else "")


def versions_table(versions: list) -> pd.DataFrame:
    rows = []
    for v in versions:
        change = v.get("mixture_change") or {}
        rows.append({"version": v["variant"], "update": _update_text(v.get("update")),  # the result first: in view
                     "AP": v.get("ap"), "test positives": v.get("test_positives"), "sources": v["n_sources"],
                     "trained": len(v["trained"]), "reused": len(v["reused"]),
                     "compute spent": v["compute"]["spent"], "compute saved": v["compute"]["saved_fraction"],
                     "L1 change": change.get("l1"), "L1 per assay": change.get("l1_by_assay"),
                     "iterations warm / cold": f"{v.get('iters_to_loss_warm', '')} / {v.get('iters_to_loss_cold', '')}"})
    return pd.DataFrame(rows)


def l1_moved(change: dict | None) -> float | None:
    """The L1 change of an update (per assay where a split renamed one: the halves summed), or None for v0."""
    if not change:
        return None
    return change["l1_by_assay"] if change.get("l1_by_assay") is not None else change["l1"]


def short(version: dict, tol: float) -> bool:
    """The version's solve stopped short of its optimum by enough to matter (a gap of a few times tol is converged
    for the page's purpose: 2.6e-6 at tol 1e-6 warned on nearly every update), as a ladder's rungs are judged."""
    return stopped_short(str(version.get("status")), version.get("gap"), tol)


def caps_text(caps) -> str:
    """The run's ``caps`` as a sentence fragment."""
    if isinstance(caps, dict):
        return ", ".join(f"{state.code(n, 40)} {c:g}" for n, c in caps.items())
    return f"{caps:g} on every source"


def weights_table(version: dict) -> pd.DataFrame:
    """A capped version's weights, its caps and whether each weight sits at its cap, largest first."""
    caps = {n: c for n, c in (version.get("caps") or {}).items() if c < 1}  # 1: no cap (a source the config left out)
    rows = [{"source": n, "weight": w, "cap": caps.get(n), "at cap": n in caps and w >= caps[n] - 1e-6}
            for n, w in version["weights"].items()]
    return pd.DataFrame(rows).sort_values("weight", ascending=False, kind="stable")


def not_ready(run_dir, what: str) -> None:
    """Why the run has no ``what`` to show: its last job failed (its error, as `jobs status` gives it), still runs, or
    stopped (resume it)."""
    jobs = data.store().list_jobs(run_dir.name)
    job = jobs[0] if jobs else {}
    if job.get("status") == "failed":
        st.error(f"This run failed before writing {what}: {state.plain(data.step_text(job, data.store().root))}. "
                 f"Once the cause is fixed, `python -m jobs resume {run_dir.name}` continues it (an error in its config "
                 "comes back: fix the config and run that instead).", icon=":material/error:")
    elif job.get("status") == "running":
        st.info(f"This run is still running: {what} is written once it has finished (the Jobs page shows its progress).")
    else:
        st.info(f"This run has not written {what}. If it stopped, `python -m jobs resume {run_dir.name}` continues it.")


def show_evolve(run_dir) -> None:
    path = run_dir / "evolve.json"
    if not path.exists():
        not_ready(run_dir, "evolve.json (once every version's final model is trained)")
        return
    info = _json(path)
    versions = info["versions"]
    st.header(f"Evolving sources · target {info['target']}")
    st.caption("Proxies are cached by content: an update trains only new or changed sources. Compute saved is "
               "against recomputing every proxy of the version; each solve starts warm from the previous weights "
               "('iterations warm / cold': iterations to reach the final loss).")
    st.dataframe(versions_table(versions), hide_index=True, placeholder="—", width="stretch", column_config={
        "compute saved": st.column_config.ProgressColumn("compute saved", min_value=0.0, max_value=1.0,
                                                         format="percent"),
        "compute spent": st.column_config.NumberColumn(format="%d"),  # exact, as results.csv (%.3g showed 30700)
        "L1 change": st.column_config.NumberColumn(format="%.3f"),
        "L1 per assay": st.column_config.NumberColumn(format="%.3f"),
        "AP": st.column_config.NumberColumn(format="%.3f"),
        "test positives": st.column_config.NumberColumn(format="%d", help="positives in the target's test split: "
                                                        "the molecules the AP rests on (the same in every version)")})
    positives = [v.get("test_positives") for v in versions if v.get("test_positives") is not None]
    if positives:
        notes.few_positives({info["target"]: min(positives)}, one_trial=True,
                            compared="AP changes between versions")
    if info.get("caps") is not None:
        st.caption(f"Caps (max weight per source): {caps_text(info['caps'])}. A split assay's halves each get its "
                   "cap (together they may reach twice it; cap a half by its name, `ASSAY#1`).")
    st.plotly_chart(figs.safe(compute_figure(versions)), key="beyond.compute")
    if len(versions) < 2:
        return
    labels = [v["variant"] for v in versions[1:]]
    picked = state.select_kept("Update", labels, "beyond.version", format_func=lambda x: f"{x}: " + _update_text(
        versions[labels.index(x) + 1].get("update")))
    k = labels.index(picked) + 1
    before, after = versions[k - 1], versions[k]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Proxies trained", len(after["trained"]), help=", ".join(after["trained"]) or "none")
    c2.metric("Compute saved", f"{after['compute']['saved_fraction']:.1%}")
    change = after["mixture_change"]
    if change.get("l1_by_assay") is not None and abs(change["l1_by_assay"] - change["l1"]) > 1e-9:  # a split
        # renames an assay's weight to its halves: the per-assay L1 is the move
        c3.metric("L1 change per assay", f"{change['l1_by_assay']:.3f}",
                  help=f"split halves summed; per source (a split's renaming counted as a move): {change['l1']:.3f}")
    else:
        c3.metric("L1 change", f"{change['l1']:.3f}")
    moved = l1_moved(change)
    still = moved is not None and moved < NO_MOVE  # no move: the AP change is the final model's own noise
    n_pos = after.get("test_positives")
    c4.metric("AP", f"{after['ap']:.3f}", delta=f"{after['ap'] - before['ap']:+.3f}",
              delta_color="off" if still else "normal",
              help=None if n_pos is None else f"over {n_pos} positives in the target's test split (one trial)")
    if still:
        st.caption(f"The update left the weights as they were (L1 change {moved:.3f}): the AP change "
                   f"({after['ap'] - before['ap']:+.3f}) is final-model noise (its own training draw), not the update's "
                   "effect.")
    in_job = after.get("trained_in_this_job")
    if in_job is not None and len(in_job) < len(after["trained"]):  # an earlier job or run (release) trained them
        st.caption(f"{len(after['trained']) - len(in_job)} of the {len(after['trained'])} proxies this version needed "
                   f"trained were already in the store's proxy cache (an earlier job of this run, or another run, "
                   f"trained them): the last job trained {len(in_job)}. Compute saved counts within this run.")
    short_ones = [v for v in (before, after) if short(v, info.get("tol", DEFAULT_TOL))]
    if short_ones:  # the warm start carried on converging: the update did not move those weights
        st.warning("The solve of " + " and ".join(f"{v['variant']} stopped short ({v['status']}, gap "
                                                  f"{'unknown' if v.get('gap') is None else format(v['gap'], '.2g')})"
                                                  for v in short_ones)
                   + ": part of this move is the solve converging further from its warm start, not the update. "
                   "Raise `max_iter` to tell them apart.", icon=":material/warning:")
    st.plotly_chart(figs.safe(before_after_figure(before["weights"], after["weights"],
                                                  title=f"Weights before ({before['variant']}) and after "
                                                        f"({after['variant']})")), key="beyond.before_after")
    if after.get("caps"):
        table = weights_table(after)
        st.caption(f"Weights of {after['variant']} and their caps: {int(table['at cap'].sum())} of {len(table)} "
                   "sit at their cap (a split assay's halves each get its cap).")
        st.dataframe(table, hide_index=True, placeholder="—", width="stretch", key="beyond.weights",
                     column_config={"weight": st.column_config.NumberColumn(format="%.4f"),
                                    "cap": st.column_config.NumberColumn(format="%.4g")})
    moves = pd.DataFrame(after["mixture_change"]["largest_moves"], columns=["source", "before", "after", "delta"])
    moves = moves[moves["delta"].abs() >= SHOWN_MOVE]  # below it the move shows as 0.0000 (1e-22 was listed)
    if not moves.empty:
        st.caption("Largest moves")
        st.dataframe(moves, hide_index=True, placeholder="—", width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.4f") for c in ("before", "after", "delta")})


# ---- ladder ------------------------------------------------------------------------------------
def ladder_files(run_dir) -> dict:
    """``{target: its ladder file}``, by the target's own name (the file's is a file-safe form: ß read as -), in the
    config's order of targets (others after, by name)."""
    folder = run_dir / "ladder"
    files = {_ladder_target(p): p for p in sorted(folder.glob("*.json"))} if folder.exists() else {}
    order = [str(t) for t in data.run_config(run_dir.name).get("targets") or []]
    return dict(sorted(files.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def _ladder_target(path) -> str:
    try:
        info = _json(path)
    except (OSError, ValueError):  # a damaged file is said where it is opened
        return path.stem
    return str(info.get("target") or path.stem) if isinstance(info, dict) else path.stem


def rule_text(info: dict) -> str:
    """What the ladder's stopping rule measures."""
    return "relative loss regret" if info.get("rule") == "loss_regret" else "L1 change"


def rung_stable(info: dict, k: int) -> bool:
    """Whether rung ``k`` moved less than the threshold from the previous one (by the run's rule)."""
    measures = info.get("measures") or []
    if k < len(measures):
        m = measures[k]
        return m is not None and not (isinstance(m, float) and math.isnan(m)) and m < info["threshold"]
    return info["stable_at"] is not None and info["rungs"][k]["budget"] >= info["stable_at"]  # a run from before


def rungs_table(info: dict) -> pd.DataFrame:
    """One row per rung; under the loss-regret rule also the relative regret the rule compares with its threshold."""
    rows, measures = [], info.get("measures") or []
    for k, rung in enumerate(info["rungs"][: len(info["results"])]):
        row = {"rung": k, "row fraction": rung["row_fraction"], "trees": rung["trees"],
               "budget (% of final)": 100 * rung["budget"], "L1 change": _number(info["l1_changes"][k]),
               "loss regret": (info.get("loss_regret") or [None] * (k + 1))[k]}
        if info.get("rule") == "loss_regret":
            row["relative loss regret"] = _number(measures[k]) if k < len(measures) else None
        rows.append({**row, "AP": info["ap"][k] if info.get("ap") else None, "stable": rung_stable(info, k)})
    return pd.DataFrame(rows)


def show_ladder(run_dir) -> None:
    files = ladder_files(run_dir)
    if not files:
        not_ready(run_dir, "a ladder")
        return
    target = state.select_kept("Target", list(files), "beyond.target")
    info = _json(files[target])
    stop = info["stable_at"]
    st.header(f"Proxy-compute ladder · target {info['target']}")
    st.caption("Budgets are shares of one final model's compute on every source's fit rows (`final_trees` x rows, "
               "as in the paper's compute sweeps, with `max_final_rows` if set). The final models a mixture trains "
               "use only its weighted sources' rows, so they cost less (`final_compute` on the Compare page).")
    if stop is None:
        st.warning(f"The mixture never moved less than {info['threshold']:g} ({rule_text(info)}) between rungs: more "
                   "proxy compute might still change it.")
    elif info.get("stable_unconverged"):
        st.warning(f"Stable at {100 * stop:.3g}% of the final model's compute ({rule_text(info)} < "
                   f"{info['threshold']:g}), but between solves that did not converge: their weights are where the "
                   "iterations ran out, so the small change may be the solver's stop, not the proxies' agreement. "
                   "Raise `max_iter` (where the loss rose instead, lower `step_size`) before trusting it.")
    else:
        st.success(f"Stable at {100 * stop:.3g}% of the final model's compute ({rule_text(info)} < "
                   f"{info['threshold']:g}).")
    if info.get("unconverged"):
        st.caption("MixMin stopped short of converging (out of iterations with a gap above ten times its `tol`, or "
                   "it did not converge) at " + ", ".join(
            f"{100 * b:.3g}%" for b in info["unconverged"]) + " of the final model's compute: the Solver page shows "
            "how far those solves got.")
    if info.get("moved_again"):
        st.warning(f"Climbing on, the mixture moved again ({rule_text(info)} at or above {info['threshold']:g}) at "
                   + ", ".join(f"{100 * b:.3g}%" for b in info["moved_again"])
                   + " of the final model's compute: the stopping rule stopped early for this target.")
    if info.get("test_positives") is not None and any(a is not None for a in info.get("ap") or []):
        notes.few_positives({info["target"]: info["test_positives"]}, one_trial=True,
                            compared="AP changes between rungs")
    st.plotly_chart(figs.safe(ladder_figure(info)), key="beyond.ladder")
    st.plotly_chart(figs.safe(l1_figure(info)), key="beyond.l1")
    st.dataframe(rungs_table(info), hide_index=True, placeholder="—", width="stretch", column_config={
        "budget (% of final)": st.column_config.NumberColumn(format="%.3g%%"),
        "L1 change": st.column_config.NumberColumn(format="%.3f"), "AP": st.column_config.NumberColumn(format="%.3f"),
        "loss regret": st.column_config.NumberColumn(
            format="%.2e", help="target loss of the previous rung's mixture under this rung's proxies, minus this "
                                "rung's optimum: small means the cheaper mixture was already about as good"),
        "relative loss regret": st.column_config.NumberColumn(
            format="%.3g", help=f"the loss regret relative to this rung's loss: what the stopping rule compares with "
                                f"its threshold ({info['threshold']:g})")})


def pick_run(key: str) -> None:
    """The run picked here becomes the sidebar's too (and the link's)."""
    state.save(key)
    st.session_state["app.run_id"] = st.session_state[key]
    st.session_state.pop("w:app.run_id", None)


# ---- page ----------------------------------------------------------------------------------------
st.title("Beyond the paper")
store = data.store()
runs = [r for r in store.list_runs() if r["pipeline"] in PIPELINES]
if not runs:
    st.info("No evolving-sources or ladder runs yet. Start one with "
            "`python -m jobs run configs/chem_evolve.yaml` or `configs/chem_ladder.yaml`.")
else:
    ids = [r["run_id"] for r in runs]
    by_id = {r["run_id"]: r for r in runs}
    sidebar = st.session_state.get("app.run_id")
    if sidebar in ids and st.session_state.get("beyond.run") != sidebar:  # the sidebar's (or the link's) run
        state.choose("beyond.run", sidebar)
        st.session_state.pop("w:beyond.run", None)
    labels = state.run_labels(runs, "pipeline")
    run_id = state.select_kept("Run", ids, "beyond.run", on_change=pick_run, format_func=labels.get, follow=False)
    if sidebar is not None and sidebar not in ids:
        st.info(f"The run picked in the sidebar ({state.code(sidebar)}) is no evolving-sources or ladder run: this "
                "page shows the run picked above.", icon=":material/info:")
    run_dir = store.run_dir(run_id)
    with state.shows_errors():
        if by_id[run_id]["pipeline"] == "chem_evolve":
            show_evolve(run_dir)
        else:
            show_ladder(run_dir)
state.write_url("beyond")
