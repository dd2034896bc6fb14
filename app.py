"""mixmin's Streamlit app: ``streamlit run app.py``.

The router: lists the pages explicitly (``st.navigation`` also turns off the legacy automatic
``pages/`` discovery), draws the shared sidebar and initialises every session-state key.
"""
from __future__ import annotations

import streamlit as st

from pages import _data as data
from pages import _state as state
from pages._access import NOTE as READ_ONLY_NOTE
from pages._access import read_only

#: Every session-state key the pages use, namespaced by page, with its default.
DEFAULTS = {
    "app.run_id": None,          # the run the pages show (sidebar)
    "solve.problem": None,       # problem id (see pages/_data.py)
    "solve.step_size": 1.0,
    "solve.max_iter": 100,
    "solve.init": "uniform",
    "solve.max_weight": 1.0,     # per-source cap (1 = no cap)
    "solve.prior_strength": 0.0, # KL-to-prior pull (0 = none)
    "solve.top_k": 8,
    "solve.bootstrap": False,
    "solve.n_boot": 100,
    "solve._boot_for": None,     # problem the bootstrap toggle default was last set for
    "compare.metric": None,
    "compare.baseline": None,
    "compare.variant": None,
    "compare.problem": None,
    "assays.variant": None,
    "assays.target": None,
    "assays.categories": None,
    "assays.k": 10,
    "jobs.config": None,
    "jobs.last_launch": None,
    "upload.kind": "auto",
    "upload.message": None,
}

PAGES = [
    st.Page("pages/runs.py", title="Runs", icon=":material/home:", url_path="runs", default=True),
    st.Page("pages/solver.py", title="Solver", icon=":material/tune:", url_path="solver"),
    st.Page("pages/compare.py", title="Compare", icon=":material/bar_chart:", url_path="compare"),
    st.Page("pages/assays.py", title="Assays", icon=":material/science:", url_path="assays"),
    st.Page("pages/jobs.py", title="Jobs", icon=":material/play_circle:", url_path="jobs"),
    st.Page("pages/upload.py", title="Upload", icon=":material/upload:", url_path="upload"),
    st.Page("pages/beyond.py", title="Beyond the paper", icon=":material/explore:", url_path="beyond"),
]


def init_state() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def sidebar() -> None:
    store = data.store()
    runs = store.list_runs()
    with st.sidebar:
        if runs:
            labels = {r["run_id"]: f"{r['name']} · {r['status']}" for r in runs}
            state.select_kept("Run", list(labels), "app.run_id", format_func=labels.get,
                                help="The run the Solver, Compare and Assays pages show.")
        else:
            st.session_state["app.run_id"] = None
            st.caption("No runs yet: start one from the Runs page.")
        st.caption(f"Run store: `{store.root}`")
        if read_only():
            st.info(READ_ONLY_NOTE, icon=":material/lock:")


st.set_page_config(page_title="mixmin", page_icon=":material/blender:", layout="wide")
init_state()
page = st.navigation(PAGES)
sidebar()
page.run()
