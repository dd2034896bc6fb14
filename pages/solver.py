"""Solver: run MixMin live on a run's proxy outputs, an upload or the built-in example.

The controls, the solve and its figures are one fragment: moving a slider reruns only that part of
the page (not the sidebar, the problem list or the store), and the big arrays stay in a shared cache.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import streamlit as st

from mixmin_core import mixture_loss
from pages.common import data, state
from pages.common import export as export_panel
from pages.common import figures as figs

state.open_page("solver")

STEP_SIZES = [0.01, 0.03, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0]
#: The Iterations slider's end.
MOST_ITERATIONS = 1000
#: Bootstrap by default only when it is quick: sources x samples x resamples x iterations below this.
AUTO_BOOTSTRAP_WORK = 2e9


def problem_options() -> list[str]:
    run_id = st.session_state["app.run_id"]
    options = data.list_problem_ids(run_id) if run_id else []
    return options + data.list_uploads() + [data.EXAMPLE]


WHAT = ("What you are looking at: MixMin solving for the mixture weights of the sources live, by entropic mirror "
        "descent on the cached proxy outputs. *Weight trajectories*: how each source's weight moves over the "
        "iterations (the largest in colour); *Loss and Frank–Wolfe gap*: the target loss and the gap, which "
        "certifies how close to optimal the weights are; then the final weights.")


def run_settings_note(problem_id: str, step: float, iters: int) -> None:
    """Where the page's step size or iterations differ from those the run solved this problem with, say so (its
    stored mixture, on Compare and Assays, is that solve's) and offer them."""
    own = data.run_settings(problem_id)
    if own is None or (own["step_size"], own["max_iter"]) == (step, iters):
        return
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.caption(f"The run solved this problem with step size {own['step_size']:g} and {own['max_iter']} iterations"
               + (", warm from the previous version's weights" if own["warm_start"] else "")
               + ": its stored mixture (Compare, Assays) is that solve's, and this page's differs from it.")
    if own["step_size"] in STEP_SIZES and 10 <= own["max_iter"] <= MOST_ITERATIONS and own["max_iter"] % 10 == 0:
        c2.button("Use the run's settings", on_click=use_settings, args=(own["step_size"], own["max_iter"]),
                  key="solve.use_run_settings")


def use_settings(step: float, iters: int) -> None:
    for key, value in (("solve.step_size", step), ("solve.max_iter", iters)):
        st.session_state[key] = value
        st.session_state.pop("w:" + key, None)


def check_link_values() -> None:
    """Values a link may have put in the session that the widgets below cannot show: back to defaults."""
    ss = st.session_state
    state.ensure("solve.step_size", ss["solve.step_size"] in STEP_SIZES)
    state.ensure("solve.max_iter", 10 <= ss["solve.max_iter"] <= MOST_ITERATIONS and ss["solve.max_iter"] % 10 == 0)
    state.ensure("solve.max_weight", 0.01 <= ss["solve.max_weight"] <= 1.0)
    state.ensure("solve.prior_strength", 0.0 <= ss["solve.prior_strength"] <= 10.0)
    state.ensure("solve.top_k", 1 <= ss["solve.top_k"] <= len(figs.HIGHLIGHT))


def controls(outputs) -> tuple[float, int, str]:
    c1, c2, c3, c4, c5 = st.columns([3, 2, 2, 1, 2], vertical_alignment="bottom")
    step = c1.select_slider("Step size η", STEP_SIZES, key=state.keep("solve.step_size"), on_change=state.save,
                            args=("solve.step_size",), help="Entropic mirror descent step; the paper uses 1.")
    iters = c2.slider("Iterations", 10, MOST_ITERATIONS, step=10, key=state.keep("solve.max_iter"), on_change=state.save,
                      args=("solve.max_iter",))
    inits = ["uniform", "natural"] if outputs.natural_weights is not None else ["uniform"]
    state.ensure("solve.init", st.session_state["solve.init"] in inits, "uniform")
    init = c3.radio("Starting weights", inits, key=state.keep("solve.init"), on_change=state.save, args=("solve.init",),
                    horizontal=True, help="natural: in proportion to source size")
    c4.number_input("In colour", 1, len(figs.HIGHLIGHT), key=state.keep("solve.top_k"), on_change=state.save,
                    args=("solve.top_k",), help="How many of the largest weights the trajectory plot colours.")
    state.share_link("solver", c5)
    return float(step), int(iters), str(init)


def lowest_cap(outputs) -> float:
    """The smallest per-source cap the sources can meet (cap x sources >= 1), on the slider's 0.01 grid."""
    return min(1.0, math.ceil(100 / outputs.n_sources) / 100)


def constraints(outputs) -> tuple[float, float]:
    """Per-source cap and KL-to-prior strength (beyond the paper; off by default)."""
    ss = st.session_state
    with st.expander("Constraints: availability caps and a pull towards the prior",
                     expanded=ss["solve.max_weight"] < 1 or ss["solve.prior_strength"] > 0):  # a link's constraints show
        c1, c2 = st.columns(2)
        cap = c1.slider("Max weight per source", 0.01, 1.0, step=0.01, key=state.keep("solve.max_weight"),
                        on_change=state.save, args=("solve.max_weight",),
                        help="w_p <= cap for every source (1 = no cap), e.g. when a source has little data. "
                             "Needs cap x sources >= 1.")
        lowest = lowest_cap(outputs)
        if cap < lowest:  # (a fixed slider: one whose range changed with the problem would reset to its lowest)
            c1.caption(f"{outputs.n_sources} sources cannot all stay under {cap:g} (cap x sources < 1): solved at the "
                       f"lowest cap they can meet, {lowest:g}.")
            cap = lowest
        prior = c2.number_input("KL pull towards the natural weights", 0.0, 10.0, step=0.01,
                                key=state.keep("solve.prior_strength"), on_change=state.save, args=("solve.prior_strength",),
                                help="Adds strength x KL(w || natural) to the objective (uniform if sizes are unknown). "
                                     "Its scale is the loss's: at 1 the weights usually sit near the natural ones, at "
                                     "0.01 to 0.1 they lean towards them; the caption under the metrics gives the "
                                     "target loss without the pull, to see what it costs.")
    return float(cap), float(prior)


def outcome(result, outputs) -> None:
    c1, c2, c3, c4 = st.columns(4)
    if result.meta.get("prior_strength"):  # what the solver minimised is no longer the target loss alone
        c1.metric("Final loss + KL pull", f"{result.loss:.5g}",
                  help="What the solver minimised: the target loss plus strength × KL(w ‖ prior).")
        st.caption(f"Target loss at these weights, without the pull: **{mixture_loss(outputs, result.weights):.5g}**.")
    else:
        c1.metric("Final loss", f"{result.loss:.5g}")
    c2.metric("Frank–Wolfe gap", f"{result.gap:.2g}")
    c3.metric("Iterations", result.n_iter)
    c4.metric("Status", result.status.replace("_", " "))
    warning = figs.step_warning(result.losses, converged=result.success)
    if warning and not result.success:
        st.warning(warning, icon=":material/warning:")
    else:
        st.caption(f"{result.message}{further(result)}" + (f". {warning}." if warning else "."))
    data.storage_note(result)


def further(result) -> str:
    """What gets a solve that ran out of iterations further (after "; "): more of them; at the most the slider
    allows, a larger step (it then converges in fewer), unless the loss rises at this one or it is the largest."""
    if result.status != "max_iter":
        return ""
    if result.n_iter < MOST_ITERATIONS:
        return "; more iterations take it further"
    if figs.step_warning(result.losses) is not None:  # the warning above says to take a smaller step
        return "; at the most iterations, a smaller step size (the loss rises at this one)"
    if result.meta.get("step_size", 0) >= STEP_SIZES[-1]:
        return ""
    return ("; at the most iterations, a larger step size gets there in fewer (as long as the loss does not rise: "
            "the chart shows it)")


def intervals(problem_id, outputs, step, iters, init, cap, prior, result):
    if outputs.n_samples < 2:  # every resample would be that sample: no spread to show
        st.caption("No bootstrap intervals: the target has one sample, and resampling it changes nothing.")
        return None, None
    work = outputs.n_sources * outputs.n_samples * st.session_state["solve.n_boot"] * iters
    if st.session_state["solve.problem"] != st.session_state.get("solve._boot_for"):
        st.session_state["solve._boot_for"] = st.session_state["solve.problem"]
        st.session_state["solve.bootstrap"] = work < AUTO_BOOTSTRAP_WORK
        st.session_state.pop("w:solve.bootstrap", None)
    on = st.toggle("95% bootstrap intervals", key=state.keep("solve.bootstrap"), on_change=state.save,
                   args=("solve.bootstrap",),
                   help=f"Re-solves {st.session_state['solve.n_boot']} resamples of the target samples, live, under "
                        "the same caps and pull (the Assays page shows the intervals the run stored, from its own "
                        "resamples).")
    if not on:
        return None, None
    lower, upper, converged = data.bootstrap(problem_id, data.problem_stamp(problem_id), step, iters, init,
                                             st.session_state["solve.n_boot"], cap, prior)
    if converged < 0.9:  # the intervals then show where 100 steps from the start stopped, not the optimum's spread
        more = further(result).removeprefix("; ")  # as for the solve itself
        st.caption(f"{1 - converged:.0%} of the resamples stopped at the iteration limit before converging: the "
                   "intervals show where their iterations stopped more than where the weights would settle"
                   + (f"; {more}." if more else "."))
    return lower, upper


def downloads(table, result, problem_id) -> None:
    mixture = {**data.problem_meta(problem_id), **result.to_dict()}
    c1, c2 = st.columns(2)
    c1.download_button("CSV", table.to_csv(index=False), "mixture.csv", "text/csv", key="solve.download_csv",
                       icon=":material/download:", help="Download the mixture as a table (mixture.csv).")
    c2.download_button("JSON", json.dumps(mixture, indent=2), "mixture.json", "application/json",
                       key="solve.download_json", icon=":material/download:",
                       help="Download the mixture with its solver record (mixture.json).")


def page() -> None:
    st.title("Solver")
    state.explain(WHAT)
    options = problem_options()
    run_id = st.session_state["app.run_id"]
    if run_id and not any(o.startswith("run:") for o in options):  # the list holds only uploads and the example
        name = state.run_names(data.store().list_runs()).get(run_id, run_id)
        st.info(f"The sidebar's run, {state.code(name, 60)}: " + data.no_outputs_note(run_id)
                + " Pick an upload or the built-in example below.")
    problem_id = state.select_kept("Problem", options, "solve.problem", format_func=data.problem_label,
                                   help="A target of the run picked in the sidebar, an upload, or the example.")
    outputs = data.load_problem(problem_id)
    st.caption(f"{data.shape_text(outputs, 'target sample')} · objective `{outputs.kind}`")
    check_link_values()
    st.fragment(solve_view)(problem_id)


def solve_view(problem_id: str) -> None:
    """Controls, solve, figures and weights: the part of the page a control change reruns."""
    with state.shows_errors():
        outputs = data.load_problem(problem_id)
        step, iters, init = controls(outputs)
        run_settings_note(problem_id, step, iters)
        cap, prior = constraints(outputs)
        result, trajectory = data.solve(problem_id, data.problem_stamp(problem_id), step, iters, init, cap, prior)
        outcome(result, outputs)
        show_result(problem_id, outputs, result, trajectory, step, iters, init, cap, prior)
        export_panel.panel(result, problem_ids=(problem_id,), mount="solver", max_weight=cap, solver=dict(
            step_size=step, max_iter=iters, init=init, prior_strength=prior), meta=data.problem_meta(problem_id))
    state.write_url("solver")


def show_result(problem_id, outputs, result, trajectory, step, iters, init, cap, prior) -> None:
    k = min(st.session_state["solve.top_k"], outputs.n_sources)
    json_record = result  # downloads keep the sources' real names; the page names the target's own data as such
    result = dataclasses.replace(result, source_names=data.shown_names(problem_id, result.source_names))
    traj_fig, loss_fig = figs.solver_figures(result, k, trajectory)
    c1, c2 = st.columns(2)
    # inline SVG, not Plotly: a changed Plotly figure is remounted from scratch on every move (see pages/common/svg.py)
    c1.markdown(traj_fig, unsafe_allow_html=True)
    c2.markdown(loss_fig, unsafe_allow_html=True)
    lower, upper = intervals(problem_id, outputs, step, iters, init, cap, prior, result)
    true_w = data.true_weights(problem_id, outputs)  # the example's, or a synthetic run's
    c1, c2 = st.columns([3, 2])
    c1.markdown(figs.weights_chart(result.source_names, result.weights, lower, upper, true_weights=true_w),
                unsafe_allow_html=True)
    table = figs.weights_table(json_record, lower, upper, true_w)
    shown = table.assign(source=list(data.shown_names(problem_id, table["source"])))
    with c2:
        if true_w is not None:
            err = float(np.abs(np.asarray(true_w) - result.weights).sum())
            st.markdown(f"**Known true weights**: L1 distance to the solution **{err:.3f}**")
        st.dataframe(shown, hide_index=True, placeholder="—", height=min(320, 35 * (len(table) + 1) + 3), width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.4f")
                                    for c in table.columns if c != "source"})
        downloads(table, json_record, problem_id)


with state.shows_errors():
    page()
state.write_url("solver")
