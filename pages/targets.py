"""Targets: one mixture for several targets, each target's loss against its own optimum, and the
Pareto front of mixtures trading one target's loss for another's (a click on the front picks one)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from mixmin_core.runs import layout
from mixmin_core.solver.multi_target import MODES
from mixmin_core.solver.pareto import dominated
from pages.common import data, multi, state
from pages.common import export as export_panel
from pages.common import figures as figs

state.open_page("targets")

WHAT = ("What you are looking at: MixMin for several targets at once, on the sources they share. The joint "
        "mixture minimises the mean (or the worst) of the targets' losses; the bars compare each target's loss "
        "under it with the target's own MixMin optimum and with the natural mixture. For two or three targets "
        "the Pareto front shows every best trade-off between them: click a point to see its mixture.")
SCALES = {"raw": "raw loss", "normalised": "relative to natural"}
MODE_HELP = ("mean: minimise the average of the target losses; worst: minimise the largest one (no target is "
             "left far behind).")
FRONT_CHART = "targets.front_chart"
JOINT_COLOUR, OWN_COLOUR, NATURAL_COLOUR = figs.METHOD_COLOURS["mixmin"], "#2ca02c", figs.METHOD_COLOURS["natural"]


# ---- choosing the targets -------------------------------------------------------------------------
def choose(run_id: str) -> tuple[tuple, str, bool] | None:
    """Setting, trial, targets, mode and scale; returns ``(problem ids, mode, normalise)`` or None."""
    problems = data.layout_problems(run_id)
    if not problems:
        st.info(data.no_outputs_note(run_id))
        return None
    c1, c2, c3, c4, c5 = st.columns([2, 1, 5, 2, 2], vertical_alignment="bottom")
    variants = sorted({p.variant for p in problems}, key=data.main_first)
    variant = state.select_kept("Setting", variants, "targets.variant", container=c1, format_func=data.setting_label)
    trials = sorted({p.trial for p in problems if p.variant == variant})
    trial = state.select_kept("Trial", trials, "targets.trial", container=c2)
    names = sorted({p.target for p in problems if p.variant == variant and p.trial == trial})
    if len(names) < 2:
        st.info(f"This run has one target ({names[0]}) in this setting; the multi-target view needs two or more. "
                "Pick another run in the sidebar (a chemistry run with `n_targets` of 2 or more, or an LM run).")
        return None
    picked = st.session_state["targets.targets"]
    state.ensure("targets.targets", isinstance(picked, list) and set(picked) <= set(names)
                 and len(set(picked)) == len(picked), default=names[:3])  # a link may repeat a target
    picked = c3.multiselect("Targets", names, key=state.keep("targets.targets"), on_change=state.save,
                            args=("targets.targets",), help="Two or more targets of this setting and trial.")
    state.ensure("targets.mode", st.session_state["targets.mode"] in MODES)
    mode = c4.radio("Joint mixture", MODES, key=state.keep("targets.mode"), on_change=state.save,
                    args=("targets.mode",), horizontal=True, help=MODE_HELP)
    state.ensure("targets.scale", st.session_state["targets.scale"] in SCALES)
    scale = c5.radio("Losses", list(SCALES), key=state.keep("targets.scale"), on_change=state.save,
                     args=("targets.scale",), horizontal=True, format_func=SCALES.get,
                     help="relative to natural: each target's loss divided by its loss at the natural mixture, "
                          "so targets on different scales weigh alike.")
    if len(picked) < 2:
        st.info("Pick at least two targets.")
        return None
    ids = tuple(data.run_problem_id(run_id, layout.Problem(t, trial, variant).key) for t in sorted(picked))
    return ids, mode, scale == "normalised"


# ---- the joint mixture ------------------------------------------------------------------------------
def loss_label(normalise: bool) -> str:
    """The proxies' mixed loss on each target's fit split (what MixMin minimises), not a final model's test score."""
    return "proxy loss / natural's" if normalise else "proxy loss"


def target_bars(table: pd.DataFrame, names: list, mode: str, normalise: bool) -> go.Figure:
    """Each target's loss under the joint mixture, its own optimum and the natural mixture."""
    rows = [(f"joint ({mode})", [f"joint ({mode})"] * len(names), JOINT_COLOUR),
            ("own optimum", [f"{t} (own)" for t in names], OWN_COLOUR)]
    if "natural" in table.index:
        rows.append(("natural", ["natural"] * len(names), NATURAL_COLOUR))
    fig = go.Figure()
    for label, index, colour in rows:
        values = [float(table.loc[i, t]) for i, t in zip(index, names)]
        fig.add_trace(go.Bar(x=names, y=values, name=label, marker_color=colour,  # 6 digits ran into the next bar's
                             text=[f"{v:.4g}" for v in values], textposition="outside",
                             hovertemplate="%{x}: %{y:.6g}<extra>" + label + "</extra>"))
    low = float(np.nanmin(table[names].to_numpy()))
    high = float(np.nanmax(table[names].to_numpy()))
    pad = 0.15 * (high - low) or 0.05 * abs(high) or 0.1
    bottom = max(0.0, low - 3 * pad)
    fig.update_layout(title="Each target's loss: joint mixture vs its own optimum", barmode="group",
                      yaxis=dict(title=loss_label(normalise) + (f" (axis from {bottom:.4g})" if bottom > 0 else ""),
                                 range=[bottom, high + 2 * pad]),
                      height=400, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.15))
    return fig


def joint_view(view: dict, names: list, mode: str, normalise: bool, solver: dict) -> None:
    joint, table = view["joint"], view["table"]
    n_all = sorted(set(view["n_sources"].values()))
    shared = f"{view['n_shared']} sources shared by every target"
    if n_all != [view["n_shared"]]:
        st.info(f"Each target is scored on {', '.join(map(str, n_all))} sources (a chemistry target's own assay is "
                f"not among its sources); the targets are compared on the {shared}.", icon=":material/join_inner:")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(f"Joint loss ({mode})", f"{joint.loss:.5g}", help=f"The {mode} of the targets' {loss_label(normalise)}.")
    c2.metric("Duality gap" if mode == "worst" else "Frank–Wolfe gap", f"{joint.gap:.2g}",
              help="An upper bound on how far the joint loss is from its optimum.")
    c3.metric("Sources", view["n_shared"])
    c4.metric("Status", joint.status.replace("_", " "))
    st.caption(f"Solved here, live, on the run's cached proxy outputs ({solver['max_iter']:,} iterations at most, "
               f"stopping at gap {solver['tol']:g}; each target's own mixture likewise). Losses are the proxies' mixed "
               "loss on each target's fit split, which MixMin minimises, not a final model's test score (Compare). A "
               "run with `joint_modes` also recorded joint mixtures of its own, with its own settings: those are the "
               "ones its final models trained on (Compare, and `jobs export --method mixmin_joint_<mode>`).")
    short = {t: view["results"][f"{t} (own)"] for t in names if view["results"][f"{t} (own)"].status != "converged"}
    if short:
        st.warning("Not every target's own optimum converged here: "
                   + "; ".join(f"{state.code(t, 40)} stopped with gap {r.gap:.2g} ({r.status.replace('_', ' ')})"
                               for t, r in short.items())
                   + ". Its `own` loss may be that far above the true optimum, so another mixture can score below it "
                     "on that target.", icon=":material/timer:")
    if mode == "worst" and joint.meta.get("multipliers"):
        binding = [t for t, m in joint.meta["multipliers"].items() if m > 0.05]
        st.caption(f"The worst case is set by {', '.join(binding)} (the targets with the largest multipliers).")
    left, right = st.columns([2, 3])
    left.plotly_chart(figs.weights_figure(joint.source_names, joint.weights, k=15, title=f"Joint weights ({mode})"),
                      key="targets.joint_weights")
    right.plotly_chart(figs.safe(target_bars(table, names, mode, normalise)), key="targets.bars")
    st.markdown(f"**How each target fares under each mixture** ({loss_label(normalise)}; rows: mixtures, "
                "columns: targets; `own` is the target's own MixMin optimum on the shared sources)")
    st.dataframe(table.reset_index(), hide_index=True, placeholder="—", width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns})


# ---- the Pareto front --------------------------------------------------------------------------------
def front_frame(front: list, names: list) -> pd.DataFrame:
    """Per front mixture: each target's loss on the shown scale and its target weights."""
    scales = np.asarray(front[0].meta.get("target_scales") or np.ones(len(names)), dtype=np.float64)
    rows = []
    for r in front:
        losses = {t: r.target_losses[t] / s for t, s in zip(names, scales)}
        rows.append({**losses, **{f"a:{t}": float(a) for t, a in zip(names, r.meta["target_weights"])},
                     "converged": bool(r.success)})
    frame = pd.DataFrame(rows)
    frame["dominated"] = dominated(frame[names].to_numpy())  # stopped early: another point beats it
    return frame


def weights_text(row: pd.Series, names: list) -> str:
    return " / ".join(f"{row[f'a:{t}']:.2g}" for t in names)


def front_figure(frame: pd.DataFrame, names: list, table: pd.DataFrame, picked: int, normalise: bool) -> go.Figure:
    """Front mixtures (clickable: their customdata is the index), the reference mixtures and the picked one."""
    x, y = names[0], names[1]
    hover = [f"target weights {weights_text(row, names)}<br>" + "<br>".join(f"{figs.escaped(t)}: {row[t]:.4g}" for t in names)
             for _, row in frame.iterrows()]
    marker = dict(size=12, color=JOINT_COLOUR, line=dict(width=1, color="white"))
    if len(names) == 3:
        marker.update(color=frame[names[2]], colorscale="Viridis", showscale=True,
                      colorbar=dict(title=dict(text=figs.escaped(names[2]), side="right"), thickness=12))
    on, off = np.flatnonzero(~frame["dominated"].to_numpy()), np.flatnonzero(frame["dominated"].to_numpy())
    if len(names) == 3:
        marker["color"] = frame[names[2]].iloc[on]
    fig = go.Figure(go.Scatter(x=frame[x].iloc[on], y=frame[y].iloc[on], mode="lines+markers" if len(names) == 2 else "markers",
                               line=dict(color=JOINT_COLOUR, width=1.5), marker=marker, customdata=[[i] for i in on],
                               hovertext=[hover[i] for i in on], hoverinfo="text", name="Pareto front (click a point)"))
    if len(off):  # still clickable, but not drawn as part of the front
        fig.add_trace(go.Scatter(x=frame[x].iloc[off], y=frame[y].iloc[off], mode="markers", customdata=[[i] for i in off],
                                 marker={"symbol": "circle-open", "size": 11, "color": JOINT_COLOUR},
                                 hovertext=[hover[i] + "<br>beaten by another point: " + (
                                     "by less than the solver's tolerance" if frame["converged"].iloc[i]
                                     else "its solve stopped early") for i in off],
                                 hoverinfo="text", name="beaten by another point"))
    own = ("diamond", "triangle-up", "triangle-down")
    refs = [(f"{t} (own)", own[i], OWN_COLOUR) for i, t in enumerate(names)]
    refs += [("joint (mean)", "square", "#9467bd"), ("joint (worst)", "x", "#9467bd"),
             ("natural", "circle-open", NATURAL_COLOUR)]
    for label, symbol, colour in refs:
        if label in table.index:
            fig.add_trace(go.Scatter(x=[table.loc[label, x]], y=[table.loc[label, y]], mode="markers",
                                     marker=dict(symbol=symbol, size=11, color=colour), name=label,
                                     hoverinfo="skip"))  # clicks go to the front point beneath
    row = frame.iloc[picked]
    fig.add_trace(go.Scatter(x=[row[x]], y=[row[y]], mode="markers", customdata=[[picked]],
                             marker=dict(symbol="star", size=22, color="gold", line=dict(width=1.5, color="black")),
                             name="picked", hovertext=[hover[picked]], hoverinfo="text"))
    unit = " / natural" if normalise else ""
    fig.update_layout(title="Pareto front: click a point to pick its mixture", xaxis_title=f"{x} loss{unit}",
                      yaxis_title=f"{y} loss{unit}", height=480, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.2), clickmode="event+select")
    return fig


def points_table(frame: pd.DataFrame, names: list, picked: int, normalise: bool) -> None:
    """The front's points as numbers: what the chart shows on hover, to read, sort or download (the picked one
    first: a 28-point table showed rows 0-7 and no pick)."""
    unit = " / natural" if normalise else ""
    table = pd.DataFrame({"point": range(len(frame)), "picked": np.arange(len(frame)) == picked}
                         | {f"weight of {t}": frame[f"a:{t}"] for t in names}
                         | {f"{t} loss{unit}": frame[t] for t in names}
                         | {"on the front": ~frame["dominated"], "converged": frame["converged"]})
    table = pd.concat([table.iloc[[picked]], table.drop(index=picked)])  # the picked point first: always in view
    st.dataframe(table, hide_index=True, width="stretch", height=min(36 * (len(table) + 1) + 2, 260),
                 column_config={f"{t} loss{unit}": st.column_config.NumberColumn(format="%.6g") for t in names}
                 | {f"weight of {t}": st.column_config.NumberColumn(format="%.3g") for t in names})


def pick_from_chart() -> None:
    """The chart's selection callback: the clicked front point (its customdata) becomes the picked mixture."""
    event = st.session_state.get(FRONT_CHART)
    points = event["selection"]["points"] if event else []
    for point in points:
        index = point.get("customdata")
        if index is None:
            continue  # a reference marker: not on the front
        st.session_state["targets.point"] = int(index[0] if isinstance(index, (list, tuple)) else index)
        st.session_state.pop("w:targets.point", None)
        return


def front_view(ids: tuple, names: list, table: pd.DataFrame, normalise: bool, solver: dict):
    """The front, a click or the slider picks a mixture on it; returns ``(picked result, its target weights)``."""
    front = multi.front(ids, multi.stamps(ids), normalise, tuple(solver.items()))
    frame = front_frame(front, names)
    ss = st.session_state
    point, linked = ss["targets.point"], "targets.point" in ss["app._from_url"]
    fits = isinstance(point, int) and 0 <= point < len(front) and (linked or ss["targets._point_for"] == ids)
    state.ensure("targets.point", fits, default=multi.middle_point(len(names)))
    ss["targets._point_for"] = ids
    picked = st.session_state["targets.point"]
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(figs.safe(front_figure(frame, names, table, picked, normalise)), key=FRONT_CHART, on_select=pick_from_chart,
                        selection_mode="points")
        stopped, beaten = int((~frame["converged"]).sum()), int(frame["dominated"].sum())
        notes = [(f"{stopped} of {len(frame)} front mixtures stopped at the iteration limit before converging: the "
                  "front is close to, not exactly, the best trade-offs.")] if stopped else []
        if beaten:
            notes.append(f"{beaten} point{'s are' if beaten > 1 else ' is'} beaten by another point (drawn open, off the "
                         "front line): by less than the solver's tolerance, or where a solve stopped early.")
        if notes:
            st.caption(" ".join(notes))
        st.select_slider(f"Target weights of the picked mixture ({' / '.join(names)})", list(range(len(front))),
                         format_func=lambda i: weights_text(frame.iloc[i], names), key=state.keep("targets.point"),
                         on_change=state.save, args=("targets.point",),
                         help="Moves along the front, as clicking its points does.")
    result = front[picked]
    with right:
        row = frame.iloc[picked]
        cols = [c for _ in range(0, len(names), 2) for c in st.columns(2)]  # two a row: three cut their numbers short
        for col, t in zip(cols, names):
            own = float(table.loc[f"{t} (own)", t])
            near = abs(row[t] - own) <= solver["tol"]  # solver noise either way: a joint solve "beat" the own optimum by 8e-6
            col.metric(t, f"{row[t]:.6g}", delta="= own, within tol" if near else f"{row[t] - own:+.2g} vs own",
                       delta_color="off" if near else "inverse",
                       help=f"{t}'s {loss_label(normalise)} under the picked mixture, and how far above its own optimum.")
        st.plotly_chart(figs.weights_figure(result.source_names, result.weights, k=12,
                                            title=f"Picked mixture (target weights {weights_text(row, names)})"),
                        key="targets.picked_weights")
    points_table(frame, names, picked, normalise)
    return result, tuple(float(a) for a in result.meta["target_weights"])


def trace_front(ids: tuple, normalise: bool, solver: dict) -> bool:
    """The "trace the front" toggle: on by default unless the front would take long (see multi.AUTO_FRONT_WORK)."""
    ss = st.session_state
    work = multi.front_work(ids)
    if ss["targets._front_for"] != (ids, normalise):
        ss["targets._front_for"] = (ids, normalise)
        ss["targets.front"] = work < multi.AUTO_FRONT_WORK
        ss.pop("w:targets.front", None)
    n_solves = len(multi.target_weight_grid(len(ids), multi.FRONT_POINTS[len(ids)]))
    on = st.toggle("Trace the Pareto front", key=state.keep("targets.front"), on_change=state.save,
                   args=("targets.front",),
                   help=f"{n_solves} joint solves, one per weighting of the targets (cached once traced).")
    if not on and work >= multi.AUTO_FRONT_WORK:
        st.caption(f"Off by default for these targets: {n_solves} solves over their "
                   f"{work / n_solves / solver['max_iter']:,.0f} source × sample values may take a minute. "
                   "Switch it on to trace the front.")
    return on


def export_view(ids, names, mode, normalise, joint, picked, solver: dict) -> None:
    st.header("Export for training")
    options = ["joint"] + (["picked"] if picked else [])
    which = st.radio("Mixture", options, horizontal=True, key="targets.export_of",
                     format_func={"joint": f"joint ({mode})", "picked": "picked on the Pareto front"}.get)
    meta = {"targets": ", ".join(names), "mode": mode}
    if which == "picked":
        result, weights = picked
        solver = {"mode": "mean", "target_weights": weights, "normalise": normalise, **solver}
        meta.update(mode="mean", target_weights=" / ".join(f"{a:g}" for a in weights))
    else:
        result, solver = joint, {"mode": mode, "normalise": normalise, **solver}
    export_panel.panel(result, problem_ids=ids, mount="targets", solver=solver, meta=meta, expander=None)


def page() -> None:
    st.title("Targets")
    state.explain(WHAT)
    run_id = state.current_run()
    if not run_id:
        return
    chosen = choose(run_id)
    if chosen is None:
        return
    ids, mode, normalise = chosen
    names = [multi.target_name(i) for i in ids]
    shared = multi.shared_sources(ids)
    if len(shared) < 2:
        st.info(f"These targets share {len(shared)} source{'' if len(shared) == 1 else 's'}"
                + (f" ({', '.join(state.code(n, 40) for n in shared)})" if shared else "")
                + ": a joint mixture needs two. A chemistry target is not among its own sources, so targets share the "
                  "other assays only: pick a setting with more sources, or other targets.", icon=":material/join_inner:")
        return
    solver = multi.solver(ids)
    view = multi.solve_targets(ids, multi.stamps(ids), mode, normalise, tuple(solver.items()))
    joint_view(view, names, mode, normalise, solver)
    picked = None
    st.header("Pareto front")
    if len(names) in multi.FRONT_POINTS:
        if trace_front(ids, normalise, solver):
            picked = front_view(ids, names, view["table"], normalise, solver)
    else:
        st.caption(f"The front is drawn for two or three targets; the table above compares all {len(names)}. "
                   "Pick fewer targets to see it.")
    export_view(ids, names, mode, normalise, view["joint"], picked, solver)


with state.shows_errors():
    page()
state.write_url("targets")
