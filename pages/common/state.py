"""Session state, the URL and small widgets shared by the pages (not a page itself).

Widget values are dropped when the user changes page; ``keep``/``save``/``select_kept`` copy them
into the persistent, namespaced keys that app.py initialises, so choices survive page switches.

Each page also puts its selections in the query string (``read_url`` on load, ``write_url`` after
every run), so a reload or a shared link opens the same view. A value from a link that does not fit
(a run that no longer exists, a target not in the run, a step size off the slider) falls back to
the default with a one-line notice.
"""
from __future__ import annotations

import contextlib
import math
import re
import unicodedata
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st

from mixmin_core.errors import MixminError
from mixmin_core.runs.store import default_home
from mixmin_core.solver.validation import IGNORABLE
from pages.common import data

#: Every session-state key the pages use, namespaced by page, with its default (app.py sets them).
DEFAULTS = {
    "app.run_id": None,          # the run the pages show (sidebar)
    "app._url_written": {},      # the query string this session last wrote (see read_url)
    "app._from_url": {},         # keys set from the link this run, not yet checked against the options
    "solve.problem": None,       # problem id (see pages/common/data.py)
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
    "assays.trial": None,
    "assays.categories": None,
    "assays.k": 10,
    "jobs.config": None,
    "beyond.run": None,          # Beyond page: its run (follows the sidebar's when that is an evolve or ladder run)
    "beyond.version": None,      # the evolving-source update shown
    "beyond.target": None,       # the ladder target shown
    "jobs.last_launch": None,
    "jobs.follow_pid": None,       # the job started on the page: shown once it has written its row
    "upload.kind": "auto",
    "upload.message": None,
    "upload.saved_ids": None,    # the upload's files as last saved: a new upload of a stored file makes it the newest
    "targets.variant": None,     # Targets page (multi-target view)
    "targets.trial": None,
    "targets.targets": None,     # the targets picked (list of names)
    "targets.mode": "mean",
    "targets.scale": "raw",      # raw losses, or "normalised" by each target's natural-mixture loss
    "targets.point": None,       # index of the Pareto-front mixture picked (click or slider)
    "targets._point_for": None,  # the targets that index was picked for (a new set starts in the middle)
    "targets.front": True,       # trace the Pareto front (off by default where it is slow, see pages/targets.py)
    "targets._front_for": None,  # the targets and scale that toggle's default was last set for
    "export.budget": None,       # export panel (pages/common/export.py): None = one pass over the sources
    "export._budget_for": None,  # the (run, unit) that budget was set for (another run starts at its default)
    "export.max_epochs": 4.0,
    "export.format": "json",
    "export.data_prefix": "{source}",
    "export.within": {},         # {panel: settings} where "solve again within the limit" is on
}

#: Session-state key -> query-string key.
URL_KEYS = {
    "app.run_id": "run", "solve.problem": "problem", "solve.step_size": "step_size", "solve.max_iter": "max_iter",
    "solve.init": "init", "solve.max_weight": "max_weight", "solve.prior_strength": "prior_strength",
    "solve.top_k": "top_k", "compare.metric": "metric", "compare.variant": "setting",
    "compare.baseline": "baseline", "compare.problem": "problem", "assays.variant": "setting",
    "assays.target": "target", "assays.trial": "trial", "assays.k": "top_k", "assays.categories": "categories",
    "targets.variant": "setting", "targets.trial": "trial", "targets.targets": "targets", "targets.mode": "mode",
    "targets.scale": "scale", "targets.point": "point", "jobs.config": "config", "beyond.version": "update",
    "beyond.target": "target",
}
#: The keys each page (by URL path) reads from and writes to its URL, in the order they are applied.
PAGE_KEYS = {
    "runs": ("app.run_id",),
    "solver": ("app.run_id", "solve.problem", "solve.step_size", "solve.max_iter", "solve.init",
               "solve.max_weight", "solve.prior_strength", "solve.top_k"),
    "compare": ("app.run_id", "compare.metric", "compare.variant", "compare.baseline", "compare.problem"),
    "assays": ("app.run_id", "assays.variant", "assays.target", "assays.trial", "assays.k", "assays.categories"),
    "jobs": ("app.run_id", "jobs.config"),
    "beyond": ("app.run_id", "beyond.version", "beyond.target"),
    "upload": ("app.run_id",),
    "targets": ("app.run_id", "targets.variant", "targets.trial", "targets.targets", "targets.mode", "targets.scale",
                "targets.point"),
}
_FLOATS = {"solve.step_size", "solve.max_weight", "solve.prior_strength"}
_INTS = {"solve.max_iter", "solve.top_k", "assays.trial", "assays.k", "targets.trial", "targets.point"}
_LISTS = {"assays.categories", "targets.targets"}


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


# ---- text a visitor controls ---------------------------------------------------------------------
#: Markdown's and Streamlit's active characters: links, images, emphasis, code, math, colour and icon directives.
_ACTIVE = re.compile(r"([\\`*_\[\]()<>#!|~{}$:+\-.=&])")


#: What GitHub-flavoured Markdown turns into a link even when escaped: a web address or an e-mail address.
_AUTOLINK = re.compile(r"(?i)(?<=h)(?=ttps?)|(?<=w)(?=ww\.)|(?=@)")


def plain(text) -> str:
    """``text`` as written, for a Markdown element: every active character escaped, so a value from a link,
    an upload or a job (carried by an error message) cannot become a link, an image or formatting. A web or
    e-mail address gets an invisible word joiner (U+2060), which stops it from being linked."""
    return _ACTIVE.sub(r"\\\1", unlinked(visible(text)))


def visible(text) -> str:
    """``text`` with invisible, control and direction-changing characters written as escapes (``\\u202e``): a
    link's "\\u202egnp.exe" must not mirror the rest of the notice that quotes it, nor its NUL show as "\ufffd"."""
    return "".join(f"\\u{ord(c):04x}" if (unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") and c not in "\t\n\r")
                   or c in IGNORABLE else c for c in str(text))


def unlinked(text) -> str:
    """``text`` with an invisible word joiner (U+2060) where Markdown would start a web or e-mail link."""
    return _AUTOLINK.sub("\u2060", str(text))


def code(text, limit: int | None = None) -> str:
    """``text`` as inline code (on one line, cut to ``limit`` characters): nothing in a code span becomes a
    link or formatting, once the text's own backticks, which would close the span, are replaced."""
    text = " ".join(visible(text).replace("`", "'").split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`"


# ---- errors and widgets ----------------------------------------------------------------------
@contextlib.contextmanager
def shows_errors():
    """Show a ``MixminError`` raised inside as ``st.error`` (other exceptions surface), as plain text: messages
    quote values from links, uploads and configs."""
    try:
        yield
    except MixminError as exc:
        from pages.common.access import (
            shown,  # read-only: no paths of the owner's machine
        )

        st.error(plain(shown(str(exc))))


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
    choose(key, st.session_state["w:" + key])


def choose(key: str, value) -> None:
    """Set ``key`` as a choice of the user's (a widget, a button, a link), which :func:`select_kept` keeps."""
    st.session_state[key] = value
    st.session_state.get(_AUTO, {}).pop(key, None)


#: ``{key: value}`` a page chose itself (:func:`fallback`) and the user has not changed since.
_AUTO = "app._auto"


def select_kept(label: str, options: list, key: str, container=st, notices=st, follow: bool = True, **kwargs):
    """A selectbox whose value persists across pages (falls back to the first option, with a
    notice in ``notices`` when the value came from a link). A value the page chose itself (no user did)
    ``follow``s the first option when the options change."""
    if not options:
        return None
    current = st.session_state.get(key)
    # only the user's choice sticks: the example, picked for a run without outputs, stayed for every run after
    if current not in options or (follow and chosen_by_page(key) and current != options[0]):
        fallback(key, options[0], notices, shown=kwargs.get("format_func", str)(options[0]))
    else:
        _checked(key)
    wkey = keep(key)
    if st.session_state.get(wkey) not in options:
        st.session_state[wkey] = st.session_state[key]
    on_change = kwargs.pop("on_change", save)  # another callback saves the value itself: save(key)
    return container.selectbox(label, options, key=wkey, on_change=on_change, args=(key,), **kwargs)


def chosen_by_page(key: str) -> bool:
    """Whether ``key``'s value is one a page chose itself (:func:`fallback`), not the user."""
    auto = st.session_state.get(_AUTO, {})
    return key in auto and auto[key] == st.session_state.get(key)


def run_labels(runs: list[dict], *fields: str) -> dict[str, str]:
    """``{run id: "name · <fields> · status"}``, with the id (its part after the name) beside the name where runs
    share one (runs of one config do): a selectbox with two equal labels cannot tell its options apart, and the
    sidebar cuts a label's end."""
    names = run_names(runs)
    return {r["run_id"]: " · ".join([names[r["run_id"]], *(str(r[f]) for f in fields), r["status"]]) for r in runs}


def run_names(runs: list[dict]) -> dict[str, str]:
    """``{run id: name}``, with the id's part after the name beside a name runs share ("chem_ci · b577023c")."""
    from collections import Counter

    names = Counter(r["name"] for r in runs)
    return {r["run_id"]: r["name"] if names[r["name"]] < 2 else
            f"{r['name']} · {r['run_id'].removeprefix(r['name'] + '-') or r['run_id']}" for r in runs}


def explain(text: str) -> None:
    """A page's "what you are looking at" line under its title (small grey text)."""
    st.markdown(f":small[:gray[{text}]]")


def current_run() -> str | None:
    """The run picked in the sidebar, or None after saying how to get one."""
    run_id = st.session_state["app.run_id"]
    if not run_id:
        st.info("No runs yet. Start the ToxCast demo on the Runs page, or any experiment on the Jobs page.")
    return run_id


# ---- the URL ---------------------------------------------------------------------------------------
def fallback(key: str, value, notices=st, shown=None) -> None:
    """Set ``key`` to ``value`` because its value does not fit; say so if the value came from the link."""
    raw = _checked(key)
    if raw is not None:
        notices.info(f"The link's {_link_value(URL_KEYS[key], raw)} does not fit here; showing "
                     f"{shown if shown is not None else value} instead.", icon=":material/link_off:")
    st.session_state[key] = value
    st.session_state.pop("w:" + key, None)
    st.session_state.setdefault(_AUTO, {})[key] = value


def ensure(key: str, valid: bool, default=None, notices=st) -> None:
    """Fall back to ``default`` (app.py's default if None) unless ``valid``; checks a value from a link."""
    if valid:
        _checked(key)
    else:
        fallback(key, DEFAULTS[key] if default is None else default, notices)


def _checked(key: str):
    """Forget that ``key`` came from the link (it has been checked); return its raw link value."""
    return st.session_state.get("app._from_url", {}).pop(key, None)


def _link_value(name: str, raw) -> str:
    """``name=value`` from a link as the notices show it: inline code, the value cut to 80 characters (a link
    may carry thousands)."""
    return code(f"{name}={','.join(raw) if isinstance(raw, list) else raw}", limit=len(name) + 1 + 80)


def _to_url(key: str, value):
    if key in _LISTS:  # an empty selection as `name=` (a list with no value would drop out of the link)
        return [str(v) for v in value] or [""]
    if key in _FLOATS:
        return f"{float(value):.6g}"
    if key == "solve.problem":
        ref = data.parse_problem(value)
        if ref.kind == "run":  # the run is in its own key
            return ref.key
        return data.upload_problem_id(Path(ref.path).name) if ref.kind == "upload" else str(value)
    return str(value)


def _from_url(key: str, raw):
    """The session-state value of a query-string value (ValueError if it does not parse)."""
    if key in _LISTS:
        return [str(v) for v in raw if str(v)]
    if key in _FLOATS:
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
        return value
    if key in _INTS:
        return int(raw)
    if key == "solve.problem":
        ref = data.parse_problem(raw)
        if ref.kind == "upload":
            return data.upload_problem_id(default_home() / "uploads" / Path(ref.path).name)
        if raw != data.EXAMPLE:
            return data.run_problem_id(st.session_state["app.run_id"], raw)
    return raw


def page_name(page) -> str:
    """The URL path of a ``st.Page`` (the default page is served at ``/`` but named ``runs``)."""
    return page.url_path or "runs"


def read_url(page: str) -> list[str]:
    """Apply the query string's selections for ``page`` to the session; return notices for values
    that do not parse or name a run that does not exist.

    A value equal to what this session last wrote is left alone (the user has moved on from it);
    anything else is a link being opened (a fresh session, a reload, back/forward). Applied values
    count as written, so a second call in the same run (app.py, then the page) changes nothing.
    """
    # (the session always has app.py's defaults; a bare import of a page, as in a test, has none)
    params, written = st.query_params, st.session_state.get("app._url_written", {})
    from_url, notices = st.session_state.get("app._from_url", {}), []
    for key in PAGE_KEYS.get(page, ()):
        name = URL_KEYS[key]
        if name not in params:
            continue
        raw = params.get_all(name) if key in _LISTS else params[name]
        if raw == written.get(name):
            continue
        written[name] = raw
        try:
            value = _from_url(key, raw)
        except ValueError:
            notices.append(f"The link's {_link_value(name, raw)} is not a valid {name.replace('_', ' ')}; "
                           "showing the default instead.")
            continue
        if key == "app.run_id" and value not in _run_ids():
            fit = _newest_shown(page)
            if fit is not None:  # the newest run would do on most pages: the Solver cannot show a run-table run
                st.session_state[key] = fit
                st.session_state.pop("w:" + key, None)
                st.session_state.setdefault(_AUTO, {})[key] = fit
            other = (f"the newest run this page can show, {code(fit, 60)}," if fit is not None else "another run"
                     if _run_ids() else "no run (the store is empty)")
            notices.append(f"The link's {_link_value('run', raw)} is not in this run store (deleted, or from another "
                           f"machine); showing {other} instead.")
            continue
        choose(key, value)
        st.session_state.pop("w:" + key, None)
        from_url[key] = raw
    st.session_state["app._from_url"] = from_url
    return notices


#: Per page, which runs it can show (others: any run): a link to a missing run falls back to the newest of them.
_SHOWS = {"solver": lambda run: bool(data.list_problem_ids(run["run_id"])),  # proxy outputs to solve on
          "beyond": lambda run: run["pipeline"] in ("chem_evolve", "chem_ladder")}


def _newest_shown(page: str) -> str | None:
    """The newest run ``page`` can show (None: the page shows any run, or none fits)."""
    from pages.common.data import store

    shows = _SHOWS.get(page)
    return None if shows is None else next((r["run_id"] for r in store().list_runs() if shows(r)), None)


def _run_ids() -> set[str]:
    from pages.common.data import store

    return {r["run_id"] for r in store().list_runs()}


def open_page(page: str) -> None:
    """First call of every page: run under app.py's router and apply the link's selections (app.py
    has already done so in the browser; AppTest runs a switched-to page on its own)."""
    route_through_app()
    for text in read_url(page):
        st.info(text, icon=":material/link_off:")


def url_params(page: str) -> dict:
    """The query string of ``page``'s current view."""
    values = {URL_KEYS[k]: st.session_state.get(k) for k in PAGE_KEYS.get(page, ())}
    return {name: _to_url(k, v) for (name, v), k in zip(values.items(), PAGE_KEYS.get(page, ())) if v is not None}


def write_url(page: str) -> None:
    """Put ``page``'s selections in the query string (only when they changed)."""
    want = url_params(page)
    have = {k: (st.query_params.get_all(k) if isinstance(v, list) else st.query_params.get(k)) for k, v in want.items()}
    if want != have or set(st.query_params) - set(want):
        st.query_params.from_dict(want)
    st.session_state["app._url_written"] = dict(want)
    st.session_state["app._from_url"] = {}


def share_link(page: str, container=st) -> None:
    """A "Copy link to this view" control: the page's URL with its selections (copy icon on hover)."""
    base = st.context.url or f"http://localhost:8501/{page}"
    link = f"{base.split('?')[0]}?{urlencode(url_params(page), doseq=True)}"
    with container.popover("Copy link to this view", icon=":material/link:"):
        st.code(link, language=None, wrap_lines=True)
        explain("Opens this page with the same run and selections; copy it with the icon at the right.")
