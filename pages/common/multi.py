"""Cached multi-target solves shared by the Targets page and the export panel (not a page itself).

A set of targets is named by the ids of their problems (``run:<run_id>:<problem key>``, see
``pages/common/data.py``) and keyed on those files' modification times, so a rewritten problem is solved
again and an unchanged one never is.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from mixmin_core.solver.multi_target import common_sources
from mixmin_core.solver.pareto import (
    cross_target_table,
    default_mixtures,
    pareto_front,
    target_weight_grid,
)
from pages.common import data

#: Grid points per edge of the target-weight simplex: 11 mixtures for two targets, 28 for three (steps of 1/6, so
#: equal weights are one of them).
FRONT_POINTS = {2: 11, 3: 7}
#: Multiply-adds (sources x samples x iterations) one solve of the page may spend. On a 617-source ToxCast problem
#: a single-target solve to the library's tol=1e-5 ran all 1000 iterations (about 16 s on a busy core) for a 0.25%
#: lower loss than 300 iterations, so large problems get FEWEST_ITER and a coarser certificate; a language-model
#: run's 7 sources get thousands and tol 1e-5: at 300 iterations a target's own optimum was 2.5e-4 above the true
#: one (about 2,000 reach it), and a joint mixture appeared to beat it.
SOLVE_WORK, FEWEST_ITER, MOST_ITER = 2e7, 300, 5000


def solver(problem_ids: tuple) -> dict:
    """The solver settings of every solve of these targets on the page (see :data:`SOLVE_WORK`)."""
    return solver_for([data.load_problem(i) for i in problem_ids])


def solver_for(outputs) -> dict:
    """:func:`solver` for the targets' ProxyOutputs."""
    size = max(o.n_sources * o.n_samples for o in outputs)
    max_iter = int(np.clip(SOLVE_WORK / size, FEWEST_ITER, MOST_ITER))
    return {"max_iter": max_iter, "tol": 1e-4 if max_iter == FEWEST_ITER else 1e-5}


def target_name(problem_id: str) -> str:
    ref = data.parse_problem(problem_id)
    return data.run_problem(ref.run_id, ref.key).target


def target_outputs(problem_ids: tuple) -> dict:
    """``{target: ProxyOutputs}`` over the sources every target shares (chemistry targets are each
    scored on the other assays, so none shares all its sources with another).

    Raises InputError (from ``common_sources``) when fewer than two sources are shared.
    """
    named = {target_name(i): data.load_problem(i) for i in problem_ids}
    sources = [set(o.source_names) for o in named.values()]
    if all(s == sources[0] for s in sources):
        return named
    return common_sources(named)


def shared_sources(problem_ids: tuple) -> list:
    """The sources every one of these targets is scored on, in the first target's order."""
    sources = [data.load_problem(i).source_names for i in problem_ids]
    return [n for n in sources[0] if all(n in other for other in sources[1:])]


def stamps(problem_ids: tuple) -> tuple:
    return tuple(data.problem_stamp(i) for i in problem_ids)


@st.cache_data(max_entries=32, show_spinner="Solving for each target and for all of them...")
def solve_targets(problem_ids: tuple, stamp: tuple, mode: str, normalise: bool, solver: tuple) -> dict:
    """The joint mixture and the cross-target table of ``problem_ids``' targets, solved with ``solver`` (the pairs of
    :func:`solver`'s settings).

    Returns ``{"joint": MixtureResult, "table": DataFrame (rows mixtures, columns targets, mean,
    worst), "results": {row: MixtureResult}, "n_shared": int, "n_sources": {target: int}}``.
    """
    named = target_outputs(problem_ids)
    results = default_mixtures(named, normalise=normalise, **dict(solver))
    joint = results[f"joint ({mode})"]
    return {
        "joint": joint,
        "table": cross_target_table(named, results, normalise=normalise),
        "results": results,
        "n_shared": len(joint.source_names),
        "n_sources": {target_name(i): data.load_problem(i).n_sources for i in problem_ids},
    }


@st.cache_data(max_entries=16, show_spinner="Tracing the Pareto front...")
def front(problem_ids: tuple, stamp: tuple, normalise: bool, solver: tuple) -> list:
    """The Pareto front of two or three targets (:func:`~mixmin_core.solver.pareto.pareto_front`)."""
    named = target_outputs(problem_ids)
    return pareto_front(named, n_points=FRONT_POINTS[len(named)], normalise=normalise, **dict(solver))


#: Trace the front by default only below this many sources x samples x solves x iterations (about 2e9
#: multiply-adds: a few seconds; a 617-source, two-target ToxCast front took about 30 s on a busy core).
AUTO_FRONT_WORK = 2e9


def front_work(problem_ids: tuple) -> float:
    """Upper estimate of the front's cost: sources x samples (all targets) x solves x iterations."""
    outputs = [data.load_problem(i) for i in problem_ids]
    n_solves = len(target_weight_grid(len(outputs), FRONT_POINTS.get(len(outputs), 2)))
    iters = solver(problem_ids)["max_iter"]
    return float(max(o.n_sources for o in outputs) * sum(o.n_samples for o in outputs) * n_solves * iters)


def middle_point(n_targets: int) -> int:
    """Index of the front's grid point closest to equal target weights."""
    grid = target_weight_grid(n_targets, FRONT_POINTS[n_targets])
    return int(np.argmin(np.abs(grid - 1.0 / n_targets).sum(axis=1)))


@st.cache_data(max_entries=16, show_spinner="Solving again within the repeat limit...")
def solve_within_limit(problem_ids: tuple, stamp: tuple, plan, max_weight: float, solver: tuple):
    """:func:`mixmin_core.engine.export.solve_within_limit` on one problem or several targets; ``solver`` holds
    the solver's keyword arguments as pairs."""
    from mixmin_core.engine.export import solve_within_limit

    outputs = data.load_problem(problem_ids[0]) if len(problem_ids) == 1 else target_outputs(problem_ids)
    return solve_within_limit(outputs, plan, max_weight=max_weight, **dict(solver))
