"""Read-only mode for demos: ``MIXMIN_READ_ONLY=1``, or ``read_only = true`` under ``[mixmin]`` in
``.streamlit/secrets.toml`` (Streamlit's place for an app's own settings, also on hosted apps).

Read-only, the app still browses every run and runs the solver live, but starts, cancels and
stores nothing: the Jobs page shows no start or cancel controls and the Upload page solves an
upload in memory without saving it. ``jobs.control`` refuses to start or cancel as well.
"""
from __future__ import annotations

import os

import streamlit as st

from jobs import control

NOTE = ("Read-only mode: browse runs and solve live; starting jobs, cancelling them and saving uploads "
        f"are off ({control.READ_ONLY_ENV}=1).")


def read_only() -> bool:
    """True when the environment or the app's secrets turn read-only mode on.

    A secrets setting is copied into the environment, so :mod:`jobs.control` enforces it too.
    """
    if control.read_only():
        return True
    try:
        section = st.secrets.get("mixmin", {})
        on = bool(section.get("read_only", False)) if hasattr(section, "get") else False
    except Exception:  # noqa: BLE001 - no secrets file (the usual case) or an unreadable one: not read-only
        on = False
    if on:
        os.environ[control.READ_ONLY_ENV] = "1"
    return on
