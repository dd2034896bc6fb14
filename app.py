"""mixmin's Streamlit app: ``streamlit run app.py``.

The router: lists the pages explicitly (``st.navigation`` also turns off the legacy automatic
``pages/`` discovery), applies a link's query string, draws the shared sidebar and initialises every
session-state key (``pages.common.state.DEFAULTS``).
"""
from __future__ import annotations

import copy

import numpy as np
import streamlit as st
from PIL import Image

from mixmin_core.errors import ConfigError
from pages.common import access, data, state

PAGES = [
    # The default page is served at "/"; its url_path only has to be unique. The hidden twin serves
    # the same page at /runs, so every page has its own path.
    st.Page("pages/runs.py", title="Runs", icon=":material/home:", url_path="home", default=True),
    st.Page("pages/runs.py", title="Runs", icon=":material/home:", url_path="runs", visibility="hidden"),
    st.Page("pages/solver.py", title="Solver", icon=":material/tune:", url_path="solver"),
    st.Page("pages/compare.py", title="Compare", icon=":material/bar_chart:", url_path="compare"),
    st.Page("pages/targets.py", title="Targets", icon=":material/join_inner:", url_path="targets"),
    st.Page("pages/assays.py", title="Assays", icon=":material/science:", url_path="assays"),
    st.Page("pages/jobs.py", title="Jobs", icon=":material/play_circle:", url_path="jobs"),
    st.Page("pages/upload.py", title="Upload", icon=":material/upload:", url_path="upload"),
    st.Page("pages/beyond.py", title="Beyond the paper", icon=":material/explore:", url_path="beyond"),
]


def favicon() -> Image.Image:
    """A 32 x 32 mixture (three colours in bands of 1/2, 3/10 and 1/5), drawn here: an emoji or Material
    icon would be fetched from a CDN, which an offline browser cannot reach."""
    icon = np.empty((32, 32, 3), np.uint8)
    icon[:, :16], icon[:, 16:26], icon[:, 26:] = (31, 119, 180), (255, 127, 14), (44, 160, 44)
    return Image.fromarray(icon)  # an image, not the array: Streamlit compares page_icon with "random"


def init_state() -> None:
    for key, value in state.DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = copy.deepcopy(value)


def sidebar() -> None:
    store = data.store()
    runs = store.list_runs()
    with st.sidebar:
        shown = st.session_state.get("app.run_id")
        if shown and shown not in {r["run_id"] for r in runs} and "app.run_id" not in st.session_state["app._from_url"]:
            # deleted (`jobs delete`) while a page showed it: the pages moved to another run without a word
            st.info(f"Run `{shown}` is no longer in the run store (deleted?)"
                    + (": the pages show another run." if runs else "."), icon=":material/delete:")
        if runs:
            labels = state.run_labels(runs)
            # follow=False: a run that appears (a job started elsewhere) must not take the reader's view
            state.select_kept("Run", list(labels), "app.run_id", format_func=labels.get, follow=False,
                              help="The run the Solver, Compare, Targets and Assays pages show (and Beyond the paper, for its runs).")
        else:
            st.session_state["app.run_id"] = None
            st.caption("No runs yet: start one from the Runs page.")
        if access.read_only():  # visitors see no paths of the owner's machine
            st.info(access.note(), icon=":material/lock:")
        else:
            st.caption(f"Run store: `{store.root}`")


st.set_page_config(page_title="mixmin", page_icon=favicon(), layout="wide")
try:
    access.check_settings()
except ConfigError as exc:  # a shared app with a broken read-only switch stays closed
    st.navigation(PAGES[:1], position="hidden")  # else Streamlit would list every file in pages/ as a page
    st.error(f"mixmin does not start: {exc}", icon=":material/block:")
    st.stop()
init_state()
page = st.navigation(PAGES)
top = st.container()  # notices about the link, above the page
for text in state.read_url(state.page_name(page)):
    top.info(text, icon=":material/link_off:")
sidebar()
page.run()
