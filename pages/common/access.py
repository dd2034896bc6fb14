"""Read-only mode for demos: ``MIXMIN_READ_ONLY=1``, or ``read_only = true`` under ``[mixmin]`` in
``.streamlit/secrets.toml`` (Streamlit's place for an app's own settings, also on hosted apps).

Read-only, the app still browses every run and runs the solver live, but starts, cancels and
stores nothing: the Jobs page shows no start or cancel controls and the Upload page solves an
upload in memory without saving it. ``jobs.control`` refuses to start or cancel as well.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import streamlit as st

from jobs import control
from mixmin_core.errors import ConfigError
from mixmin_core.runs import datasets


def note() -> str:
    """The sidebar's line on read-only mode, naming the switch that turned it on (the secrets file's setting is
    copied into the environment, which then no longer tells)."""
    switch = "read_only = true in .streamlit/secrets.toml" if _in_secrets() else f"{control.READ_ONLY_ENV}=1"
    return f"Read-only mode: browse runs and solve live; starting jobs, cancelling them and saving uploads are off ({switch})."


def read_only() -> bool:
    """True when the environment or the app's secrets turn read-only mode on.

    A secrets setting is copied into the environment, so :mod:`jobs.control` enforces it too.
    """
    if control.read_only():
        return True
    on = _in_secrets()
    if on:
        os.environ[control.READ_ONLY_ENV] = "1"
    return on


def _in_secrets() -> bool:
    """Whether ``read_only = true`` under ``[mixmin]`` in the app's secrets (a ConfigError for a value that is no
    boolean, or a secrets file Streamlit could not read)."""
    try:
        section = st.secrets.get("mixmin", {})
    except Exception as exc:  # noqa: BLE001 - no secrets file (the usual case), or one Streamlit could not read
        from streamlit import config

        if any(Path(p).expanduser().is_file() for p in config.get_option("secrets.files")):  # it may say read_only
            raise ConfigError("the app's .streamlit/secrets.toml could not be read "
                              f"({str(exc).rsplit(': ', 1)[-1][:200]}); fix it, or remove it.") from None
        return False
    on = section.get("read_only", False) if hasattr(section, "get") else False
    if not isinstance(on, bool):  # "yes" or 1 read as true by bool(), "false" as true too
        raise ConfigError(f"read_only under [mixmin] in .streamlit/secrets.toml must be true or false; got {on!r:.40}.")
    return on


def check_settings() -> None:
    """The app's settings (read-only mode, the running-jobs limit), read once before any page: one bad value is
    one error, never a shared app left writable.

    Raises
    ------
    ConfigError
        Naming the setting and what it must be.
    """
    read_only()
    control.max_running_jobs()


def shown(text: str, store_root=None) -> str:
    """Text from the store (a job's log or error, a run's dataset, an error message) as a read-only visitor may see
    it: the paths of the owner's machine read as ``<run store>``, ``<data>`` and ``~``; the checkout's files by their
    names in it (``configs/lm_ci.yaml``); a store's runs wherever the store was when the job ran (it may have been
    moved or copied) as ``<run store>/runs/...``; any other absolute path by its file name (``.../assays.csv``); and
    a traceback without its frames (its error line stays). As it is when the app is not read-only."""
    if not read_only() or not text:
        return text
    # a traceback (a command-line job stores its own; a log may hold a worker's): its frames go, its error line stays
    text = re.sub(r"Traceback \(most recent call last\):\n(?:[ \t]+.*(?:\n|$))*",
                  "(traceback frames shown to the owner only)\n", str(text))
    if store_root is None:
        from mixmin_core.runs.store import default_home

        store_root = default_home()
    for root, name in ((store_root, "<run store>"), (datasets.data_dir(), "<data>"), (control.ROOT, "."),
                       (Path.home(), "~")):
        if root is not None:
            for form in dict.fromkeys((str(Path(root).resolve()), str(root))):
                if len(form) > 1:  # the folder itself or a path in it, not /work/main2 for /work/main
                    text = re.sub(re.escape(form) + r"(?:/|(?![\w-]|\.\w))",
                                  lambda m, name=name: ("" if name == "." else name + "/") if m.group().endswith("/")
                                  else name, text)
    text = re.sub(r"(?<![:/\w])(?:/[^\s'\"/]+)+/(?=runs/[\w.-]+-[0-9a-f]{8}(?:/|\b))", "<run store>/", text)  # a run folder
    text = re.sub(r"\bfile://(?=/)", "", text)  # a file URL's path is a path
    # any other absolute path (a config's own file, a library's, after "host:"): its name only; a URL's "//" and what
    # follows a word ("http://x/y") stay. A folder's name may hold a few spaces ("/Users/Alice Smith/") where the path
    # ends in a file name with an extension: else "read /srv/assays.csv and wrote 3/4 units" lost its file name.
    start, name = r"(?:(?<![\w.:/<>~-])|(?<=\w:))/", r"[^\s'\"/:]+"
    spaced = rf"{name}(?: {{1,2}}{name}){{0,2}}"
    text = re.sub(rf"{start}(?:{spaced}/)+(?={name}\.\w)", ".../", text)
    return re.sub(rf"{start}(?:{name}/)+(?={name})", ".../", text)
