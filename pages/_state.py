"""Session state and small widgets shared by the pages (not a page itself).

Widget values are dropped when the user changes page; ``keep``/``save``/``select_kept`` copy them
into the persistent, namespaced keys that app.py initialises, so choices survive page switches.
"""
from __future__ import annotations

import contextlib

import streamlit as st

from mixmin_core.errors import MixminError


def route_through_app() -> None:
    """Make sure this page runs under app.py's router; call first in every page.

    A fresh server whose first request is a page URL (say a reload of /solver) runs that file
    directly, in Streamlit's legacy ``pages/`` mode, until some run calls ``st.navigation``. Then
    app.py has not initialised the session: switch the legacy mode off and rerun through app.py,
    which routes back to the same page.
    """
    if "app.run_id" not in st.session_state:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
        st.rerun()


# ---- errors and widgets ----------------------------------------------------------------------
@contextlib.contextmanager
def shows_errors():
    """Show a ``MixminError`` raised inside as ``st.error`` (other exceptions surface)."""
    try:
        yield
    except MixminError as exc:
        st.error(str(exc))


def keep(key: str) -> str:
    """Widget key for the persistent session-state value ``key`` (initialised in app.py).

    Widget values are dropped when the user changes page; the value is copied to ``key`` in a
    callback and restored from it, so choices survive page switches. Use as
    ``st.slider(..., key=keep("solve.step_size"), on_change=save, args=("solve.step_size",))``.
    """
    wkey = "w:" + key
    if wkey not in st.session_state and key in st.session_state:
        st.session_state[wkey] = st.session_state[key]
    return wkey


def save(key: str) -> None:
    st.session_state[key] = st.session_state["w:" + key]


def select_kept(label: str, options: list, key: str, container=st, **kwargs):
    """A selectbox whose value persists across pages (falls back to the first option)."""
    if not options:
        return None
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]
        st.session_state.pop("w:" + key, None)
    wkey = keep(key)
    if st.session_state.get(wkey) not in options:
        st.session_state[wkey] = st.session_state[key]
    return container.selectbox(label, options, key=wkey, on_change=save, args=(key,), **kwargs)


def current_run() -> str | None:
    """The run picked in the sidebar, or None after saying how to get one."""
    run_id = st.session_state["app.run_id"]
    if not run_id:
        st.info("No runs yet. Start the ToxCast demo on the Runs page, or any experiment on the Jobs page.")
    return run_id
