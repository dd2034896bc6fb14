"""Jobs: start a configured experiment as a background process, watch it, read its log, cancel it.

Only what a user should set is offered: configs from ``configs/`` and the experiment fields in
``jobs.control.PAGE_FIELDS`` (never data paths); ``jobs.control`` checks every request again.
Read-only mode shows jobs and their logs but no start or cancel controls.
"""
from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pandas as pd
import streamlit as st
import yaml

from jobs import control as jobs_control
from jobs.config import read_config_file
from mixmin_core.errors import InputError
from pages.common import data, state
from pages.common.access import read_only, shown

state.open_page("jobs")

CONFIG_DIR = jobs_control.CONFIG_DIR


#: A command line in a config's comment ("(python -m jobs run configs/x.yaml)", with environment variables).
_COMMAND = re.compile(r"\s*\(?(?:[A-Z_]+=\S+\s+)*python -m jobs run [^\s)]+\)?")


def header_comment(path: Path) -> str:
    """A config's opening comment as prose, without the command lines it shows (the page shows the command: read
    into the prose, it ran on from the last sentence)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = _COMMAND.sub("", line.lstrip("# "))
        if text.strip():
            lines.append(text)
        elif lines and lines[-1].endswith(":"):  # "...as follows:" and then only the command
            lines[-1] = lines[-1][:-1] + "."
    return " ".join(lines)


def as_text(value) -> str:
    """A field value as the text ``--set key=value`` parses back (YAML flow style)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def parse_extra(text: str, fields=()) -> dict:
    """``key=value`` lines as a dict. A key given twice, or one that has its own field in the form
    (``fields``), is an error: which value would win is a guess the user should not have to make."""
    extra = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if "=" not in line:
            raise InputError(f"extra overrides are one key=value per line; got {line!r}.")
        key, value = (part.strip() for part in line.split("=", 1))
        if key in extra:
            raise InputError(f"extra overrides set {key!r} twice ({extra[key]!r} and {value!r}); keep one line.")
        if key in fields:
            raise InputError(f"extra overrides set {key!r}, which has its own field above; change it there.")
        extra[key] = value
    return extra


def start_form(configs: list[Path]) -> None:
    choice = state.select_kept("Config", [f"configs/{c.name}" for c in configs], "jobs.config")
    path = jobs_control.page_config_path(choice)
    note = header_comment(path)
    if note:
        st.caption(note)
    config = read_config_file(path)
    allowed = jobs_control.PAGE_FIELDS.get(config["pipeline"], frozenset())
    fields = {k: v for k, v in config.items() if k in allowed}
    fixed = {k: v for k, v in config.items() if k not in allowed and k != "pipeline"}
    with st.form("jobs.start_form", enter_to_submit=False):  # Enter in a field started a 40-minute job
        st.markdown(f"Pipeline **{config['pipeline']}** · edit a field to override it (`--set key=value`)")
        cols = st.columns(3)
        edited = {}
        for i, (key, value) in enumerate(fields.items()):
            edited[key] = cols[i % 3].text_input(key, as_text(value), key=f"jobs.field.{path.stem}.{key}")
        extra = st.text_area("Extra overrides (key=value per line)", key=f"jobs.extra.{path.stem}",
                             placeholder="n_workers=1",
                             help="Fields you can set for this pipeline: " + ", ".join(sorted(allowed)))
        submitted = st.form_submit_button("Start job", type="primary")
    if fixed:
        with st.expander("Fields set by the config file only (data paths and the like)"):
            st.code(yaml.safe_dump(fixed, sort_keys=False), language="yaml")
    if submitted:
        overrides = {k: v for k, v in edited.items() if v != as_text(fields[k])}
        overrides.update(parse_extra(extra, fields))
        launch = jobs_control.start_job(path, overrides, home=data.store().root)
        st.session_state["jobs.last_launch"] = str(launch.record_path)
        st.session_state["jobs.follow_pid"] = launch.pid  # show its job below once it has written its row
        st.success(f"Started process {launch.pid}, the same as this command line:")
        st.code(shlex.join(["python", *launch.argv[1:]]), language="bash", wrap_lines=True)  # quoted, as a shell reads it


def jobs_table(store) -> pd.DataFrame:
    names = state.run_names(store.list_runs())  # two runs of one config told apart
    rows = [{"job": j["job_id"], "run": names.get(j["run_id"], j["run_id"]), "status": j["status"],
             "progress": j["n_done"] / j["n_total"] if j["n_total"] else None,
             "done": f"{j['n_done']}/{j['n_total']}", "message": _shown(store, j["message"]),
             "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j["started_at"]))}
            for j in store.list_jobs()]
    return pd.DataFrame(rows)


def job_details(store, jobs: list[dict]) -> None:
    ids = [j["job_id"] for j in jobs]
    started = next((j for j in jobs if j["pid"] == st.session_state.get("jobs.follow_pid")), None)
    if started is not None:  # the job just started here: the list kept showing the one picked before
        st.session_state["jobs.job_widget"] = started["job_id"]
        st.session_state["jobs.follow_pid"] = None
    names = state.run_names(store.list_runs())
    labels = {j["job_id"]: f"job {j['job_id']} · {names.get(j['run_id'], j['run_id'])} · {j['status']}" for j in jobs}
    job_id = st.selectbox("Job", ids, key="jobs.job_widget", format_func=labels.get)
    job = next(j for j in jobs if j["job_id"] == job_id)
    if job["status"] == "died":
        st.warning(f"Job {job_id} (pid {job['pid']}) died; last progress: {state.plain(_shown(store, job['message']) or 'started')}. Finished units are kept; "
                   f"resume with `python -m jobs resume {job['run_id']}`.")
    if job["status"] == "running" and not read_only():
        c1, c2 = st.columns(2)
        if c1.button("Cancel after the current unit", key="jobs.cancel"):
            st.info(jobs_control.cancel_job(store, job_id))
        if c2.button("Stop now (SIGTERM)", key="jobs.kill"):
            st.info(jobs_control.cancel_job(store, job_id, force=True))
    resume = f"`python -m jobs resume {job['run_id']}`"
    if job.get("error") and job["status"] == "cancelled":  # a stop asked for, not a failure
        st.info(f"Cancelled: {state.plain(_shown(store, job['error']).strip().splitlines()[-1])}. Finished units are "
                f"kept; {resume} continues the run.")
    elif job.get("error"):
        st.error("The job failed:")
        st.code(_shown(store, job["error"]), language=None)
        st.caption(f"Finished units are kept: once the cause is fixed, {resume} continues the run.")
    log = jobs_control.read_log_tail(job.get("log_path"))
    st.caption(f"Log: {state.code(_shown(store, _in_store(store, job.get('log_path'))))}")
    lines = _shown(store, log).splitlines()
    # the newest lines in full view: a scrolling box opened on its oldest, half a line cut at its top
    st.code("\n".join(lines[-LOG_LINES:]) or "(empty log)", language=None)
    if len(lines) > LOG_LINES:
        with st.expander(f"Earlier lines ({len(lines) - LOG_LINES} more, from the log's last 20 KB)"):
            st.code("\n".join(lines[:-LOG_LINES]), language=None, height=300)


#: Log lines shown in full under a job; the rest of its tail is in an expander.
LOG_LINES = 15


def _shown(store, text: str) -> str:
    """A log or error as a visitor may see it (:func:`pages.common.access.shown`)."""
    return shown(text, store.root)


def _in_store(store, path) -> str:
    """``path`` relative to the run store (a visitor sees no paths of the owner's machine), else as it is."""
    try:
        return str(Path(path).resolve().relative_to(store.root.resolve()))
    except (TypeError, ValueError, OSError):
        return str(path or "")


def show_jobs(store) -> None:
    table = jobs_table(store)
    if table.empty:
        st.caption("No jobs yet.")
        return
    st.dataframe(table, hide_index=True, placeholder="—", width="stretch", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent")})
    job_details(store, store.list_jobs())


def launches() -> None:
    recs = jobs_control.list_launches(data.store().root, limit=10)
    if not recs:
        return
    with st.expander("Recent launches (process output, including errors before a job starts)"):
        for rec in recs:
            status = "running" if rec["alive"] else ("exit " + str(rec["returncode"]) if rec["returncode"] is not None else "ended")
            st.markdown(f"pid {rec['pid']} · {status}")
            st.code(_shown(data.store(), shlex.join(rec["argv"][2:])), language="bash", wrap_lines=True)
            st.code(_shown(data.store(), jobs_control.read_log_tail(rec["log_path"], 4000)) or "(no output yet)",
                    language=None)


def page() -> None:
    st.title("Jobs")
    configs = sorted([*CONFIG_DIR.glob("*.yaml"), *CONFIG_DIR.glob("*.toml")],
                     key=lambda p: (not p.stem.endswith("_demo"), p.name))  # the demos first
    st.header("Start an experiment")
    if read_only():  # the sidebar says what read-only mode is; here, what it means for this page
        st.info("Read-only mode: no job can be started or cancelled here.")
    elif configs:
        with state.shows_errors():
            start_form(configs)
    else:
        st.info(f"No configs found in {CONFIG_DIR}.")
    st.header("Jobs")
    store = data.store()
    st.fragment(show_jobs, run_every=2.0 if jobs_control.busy(store) else None)(store)
    launches()


page()
state.write_url("jobs")
