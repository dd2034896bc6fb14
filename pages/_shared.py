"""Old name of the pages' shared helpers, kept for pages/jobs.py and pages/upload.py.

The helpers live in three modules by role: ``pages._state`` (session state, widgets, URL),
``pages._data`` (run store, cached loaders, run files) and ``pages._figures`` (Plotly figures,
colours, tables). New code imports from those.
"""
from __future__ import annotations

from pages._data import problem_stamp, solve, store
from pages._figures import weights_figure
from pages._state import keep, route_through_app, save, select_kept, shows_errors

__all__ = ["keep", "problem_stamp", "route_through_app", "save", "select_kept", "shows_errors", "solve", "store",
           "weights_figure"]
