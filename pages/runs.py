"""Runs (home): every run in the store with its status, live progress and key results."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from jobs import control as jobs_control
from mixmin_core.errors import MixminError
from mixmin_core.runs import layout
from mixmin_core.solver.results import OVERALL, lower_is_better
from pages.common import data, state
from pages.common import figures as figs
from pages.common.access import read_only, shown

state.open_page("runs")

DEMO_CONFIG = Path("configs/chem_demo.yaml")


def get_started() -> None:
    st.markdown(
        "**MixMin** picks how much of each data source to train on: train one cheap proxy model per "
        "source, cache their outputs on the target data, then solve a small convex problem in milliseconds."
    )
    left, right = st.columns(2, border=True)
    with left:
        st.header("Explore an example now")
        st.write("A small built-in problem with six sources and known true weights: watch the solver "
                 "recover them and play with the step size.")
        if st.button("Open the example in the Solver", type="primary", key="runs.open_example"):
            state.choose("solve.problem", data.EXAMPLE)
            st.switch_page("pages/solver.py")
    with right:
        st.header("Run the ToxCast demo")
        st.write("Offline chemistry experiment: 617 ToxCast assays as sources, XGBoost proxies, "
                 "MixMin against the baselines on 10 target assays. Runs in the background; "
                 "progress shows up here.")
        with state.shows_errors():
            why_not = ("read-only mode: jobs cannot be started" if read_only()
                       else None if DEMO_CONFIG.is_file() else f"{DEMO_CONFIG} not found")
            if st.button("Start the ToxCast demo", key="runs.start_demo", disabled=why_not is not None, help=why_not):
                launch = jobs_control.start_job(DEMO_CONFIG, home=data.store().root)
                st.session_state["jobs.last_launch"] = str(launch.record_path)
                st.success(f"Started (process {launch.pid}). It appears below within seconds; "
                           "the Jobs page shows its log.")


def latest_jobs(store) -> dict[str, dict]:
    jobs = {}
    for job in store.list_jobs():  # newest first
        jobs.setdefault(job["run_id"], job)
    return jobs


def run_key_result(run_id: str, headline: str | None = None) -> str:
    """:func:`key_result` of the run's summary, or what is wrong with that file: one bad file must not
    hide every other run."""
    path = layout.summary_path(data.store().run_dir(run_id))
    return _key_result(run_id, data.mtime(path), headline)


@st.cache_data(max_entries=100_000, show_spinner=False)  # a line of text per run and summary version
def _key_result(run_id: str, modified: float, headline: str | None) -> str:
    """Cached on the summary's modification time: with 300 runs the table reread every summary.csv (the file
    cache keeps 32) and redid this on each refresh, most of a core every 2 s while a job ran."""
    try:
        return key_result(data.summary(run_id), headline)
    except MixminError as exc:
        return f"unreadable summary.csv: {shown(str(exc))}"


def key_result(summary: pd.DataFrame, headline: str | None = None) -> str:
    """The Compare page's opening numbers: MixMin and the first baselines on the default metric in the
    run's main setting, mean over targets, e.g. "ap: mixmin 0.31, natural 0.27, balanced 0.26 (sources-all)"."""
    if summary.empty:
        return "no results yet"
    metric = data.metrics_by_default(summary, headline)[0]
    rows = summary[summary["metric"] == metric]
    variant = data.settings_by_default(rows)[0]
    rows = rows[rows["variant"] == variant]
    targets = set(rows["target"])
    rows = rows[rows["target"] == (OVERALL if OVERALL in targets or len(targets) != 1 else targets.pop())]
    means = rows.set_index("method")["mean"]
    ordered = sorted(means.index, key=figs.method_sort_key)  # the first three, and a method of the run's own (BO)
    shown = ordered[:3] + [m for m in ordered[3:] if m not in figs.METHOD_ORDER]
    finite = means.dropna()
    if len(finite) and finite.index.isin(shown).any():  # a method that beat them all is named (target_only was not)
        sign = -1 if lower_is_better(metric) else 1
        best, lead = (sign * finite).idxmax(), (sign * finite[finite.index.isin(shown)]).max()
        if sign * finite[best] > lead and f"{finite[best]:#.3g}" != f"{sign * lead:#.3g}":  # not a tie, as shown
            shown.append(best)
    far = ({m for m, _ in data.extrapolations(summary[summary["variant"] == variant], "mean").index}
           if "yardstick" in metric else set())  # the Compare page says where
    parts = [f"{m} {means[m]:#.3g}" + (" (extrapolated)" if m in far else "") for m in shown]  # 5.40 beside 5.55
    setting = f" ({data.setting_label(variant)})" if variant else ""
    transfer = sorted(v for v in summary["variant"].unique() if str(v).startswith("transfer:"))
    if transfer and not variant.startswith("transfer:"):  # an lm_transfer run's question is its larger models'
        setting = f" (proxy-size models; {', '.join(transfer)} on the Compare page)"
    return f"{data.metric_label(metric)}: " + ", ".join(parts) + setting


def runs_table(store, runs: list[dict]) -> pd.DataFrame:
    jobs = latest_jobs(store)
    names = state.run_names(runs)  # two runs of one config told apart
    rows = []
    for run in runs:
        job = jobs.get(run["run_id"], {})
        total = job.get("n_total") or 0
        gone = data.folder_gone(run["run_id"])  # deleted by hand: it read "done", "no results yet"
        rows.append({
            "name": names[run["run_id"]], "pipeline": run["pipeline"], "dataset": shown(run.get("dataset") or ""),
            "status": "folder gone" if gone else
            job.get("status", run["status"]) if job.get("status") == "died" else run["status"],
            "progress": (job.get("n_done", 0) / total) if total else None,
            "step": data.step_text(job, store.root),
            "key result": "its folder was deleted" if gone else
            run_key_result(run["run_id"], (run.get("summary") or {}).get("metric")),
            "created": pd.Timestamp(run["created_at"], unit="s").strftime("%Y-%m-%d %H:%M"),
            "run id": run["run_id"],
        })
    order = ["name", "status", "progress", "key result", "dataset", "step", "pipeline", "created", "run id"]
    return pd.DataFrame(rows, columns=order)


#: Seconds between refreshes of the runs table while jobs run, and while none does (a job started from the
#: command line or another browser appeared only on a reload).
REFRESH_BUSY, REFRESH_IDLE = 2.0, 10.0


def show_runs(store, fast: bool) -> None:
    runs = store.list_runs()
    table = runs_table(store, runs)
    running = int((table["status"] == "running").sum())
    if bool(running) != fast and jobs_control.busy(store) != fast:  # a job started or ended: refresh at its pace
        st.rerun()
    c1, c2, c3 = st.columns(3)
    c1.metric("Runs", len(table))
    c2.metric("Running", running)
    c3.metric("Done", int((table["status"] == "done").sum()))
    st.dataframe(table, hide_index=True, placeholder="—", width="stretch", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        "key result": st.column_config.TextColumn(
            "key result", help="The numbers the Compare page opens on: mean over targets in the run's main "
                               "setting (in parentheses), on its default metric: higher is better for AP and accuracy, "
                               "lower for losses."),
    })
    if running:
        st.caption(f"Refreshing every 2 s while jobs run · last update {time.strftime('%H:%M:%S')}")


def first_run(store) -> None:
    if store.list_runs():
        st.rerun()


store = data.store()
st.title("Runs")
if not store.list_runs():
    st.info("The run store is empty. Start here:")
    get_started()
    if st.session_state["jobs.last_launch"]:
        st.page_link("pages/jobs.py", label="Watch the job on the Jobs page", icon=":material/play_circle:")
    # the demo started here (or a job started elsewhere) is shown once it writes its run (it took a reload)
    st.fragment(first_run, run_every=REFRESH_BUSY if jobs_control.busy(store) else REFRESH_IDLE)(store)
else:
    fast = jobs_control.busy(store)
    st.fragment(show_runs, run_every=REFRESH_BUSY if fast else REFRESH_IDLE)(store, fast)
    st.caption("Pick a run in the sidebar; the Solver, Compare, Targets and Assays pages show it.")
    with st.expander("Get started: the built-in example and the ToxCast demo"):
        get_started()
state.write_url("runs")
