"""Plotly figures, colours, weights tables and solver diagnostics shared by the pages (not a page itself)."""
from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pages.common import svg

#: The paper's Table 1 colours: cytotoxicity red, phenotypic green, protein binding/inhibition blue, other orange.
CATEGORY_COLOURS = {"cytotoxicity": "#d62728", "phenotypic": "#2ca02c", "protein": "#1f77b4", "other": "#ff7f0e"}
GREY = "rgba(150,150,150,0.35)"


def text_on(colour: str) -> str:
    """Black or white, whichever reads better on ``colour`` (``#rrggbb``): white on the paper's orange and green
    was 2.5:1 and 3.4:1, below the 4.5:1 text needs (WCAG relative luminance, threshold 0.179)."""
    if not (isinstance(colour, str) and len(colour) == 7 and colour.startswith("#")):  # no category: no colour
        return "inherit"
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return "black" if 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2] > 0.179 else "white"
SVG_GREY = "#c8c8c8"  # GREY on white, opaque (SVG lines crossing each other should not darken)
HIGHLIGHT = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
METHOD_ORDER = ["mixmin", "natural", "balanced", "target_only", "ensemble", "random_search", "regmix"]
METHOD_COLOURS = {"mixmin": "#d62728", "natural": "#1f77b4", "balanced": "#aec7e8", "target_only": "#7f7f7f",
                  "ensemble": "#9467bd", "random_search": "#2ca02c", "regmix": "#ff7f0e"}
#: What tells methods apart besides colour (for readers who do not see the colours apart): bar fill patterns,
#: line dashes and marker symbols, one per method in METHOD_ORDER, and the last for any other method.
METHOD_PATTERNS = dict(zip(METHOD_ORDER, ["", "/", "\\", "x", "-", "|", "+"]))
METHOD_DASHES = dict(zip(METHOD_ORDER, ["solid", "dot", "dash", "longdash", "dashdot", "longdashdot", "dot"]))
METHOD_SYMBOLS = dict(zip(METHOD_ORDER, ["circle", "square", "diamond", "triangle-up", "cross", "x", "star"]))


def category_group(category: str) -> str:
    """The paper's Table 1 colour group of an assay category."""
    text = str(category).lower()
    if "cytotox" in text or "viability" in text:
        return "cytotoxicity"
    if "phenotypic" in text:
        return "phenotypic"
    if "protein" in text or "binding" in text or "inhibition" in text:
        return "protein"
    return "other"


def method_sort_key(method: str):
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def step_warning(losses: np.ndarray, converged: bool = False) -> str | None:
    """A warning when the loss rises or oscillates over the iterations (step size too large); for a solve that
    converged all the same, a note that the step is large but got there (no advice to shrink it)."""
    losses = np.asarray(losses, dtype=np.float64)
    losses = losses[np.isfinite(losses)]
    if losses.size < 3:
        return None
    diffs = np.diff(losses)
    tol = 1e-6 * max(1.0, float(np.abs(losses).max()))
    rises = int((diffs > tol).sum())
    if rises == 0:
        return None
    signs = np.sign(diffs[np.abs(diffs) > tol])
    flips = int((signs[1:] != signs[:-1]).sum())
    shape = "oscillates" if flips >= 3 else "rises"
    if converged:
        return (f"The loss went up at {rises} of {diffs.size} iterations on the way: a large step, which converged "
                "all the same")
    return (f"The loss {shape}: it went up at {rises} of {diffs.size} iterations. "
            "The step size is too large for this problem; try a smaller one.")


def top_indices(weights: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-np.asarray(weights), kind="stable")[:k]


#: At most this many points per line (long runs are thinned; the browser draws every point as SVG).
MAX_POINTS = 300
#: At most this many grey lines for the sources outside the top k; the rest are drawn as one envelope.
MAX_GREY_LINES = 60


def _thin(n_steps: int) -> np.ndarray:
    """Iterations to draw: all of them up to MAX_POINTS, else evenly spaced ones (first and last kept)."""
    return np.unique(np.linspace(0, n_steps - 1, min(n_steps, MAX_POINTS)).round().astype(np.int64))


def _grey_lines(traj: np.ndarray, rest: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """Lines (one per row) for the sources in ``rest`` (and those whose envelope is ``others``): those that rise
    visibly above the plot's floor (up to MAX_GREY_LINES, largest first), plus the upper envelope of all the
    others, which lie below it.

    Hundreds of near-zero lines cost the browser a second to draw and show as one smear at the bottom;
    the envelope draws that smear with one line.
    """
    floor = 0.01 * max(float(traj.max()), float(others.max()) if others is not None else 0.0)
    peak = traj[:, rest].max(axis=0)
    order = np.argsort(-peak, kind="stable")
    shown = order[: MAX_GREY_LINES][peak[order[:MAX_GREY_LINES]] >= floor]
    hidden = np.setdiff1d(np.arange(rest.size), shown)
    lines = [traj[:, rest[shown]].T]
    envelope = [traj[:, rest[hidden]].max(axis=1)] if hidden.size else []
    if others is not None:
        envelope.append(others)
    if envelope:
        lines.append(np.max(envelope, axis=0)[None, :])
    return np.vstack(lines)


@dataclass(frozen=True)
class Trajectory:
    """What the trajectory figure can draw of a solve, whatever ``k`` (up to ``len(HIGHLIGHT)``): the thinned
    iterations, the sources it may colour or draw in grey, and the envelope of all the others. A few hundred KB
    however many sources (the whole trajectory of a 100,000-source upload at 1,000 iterations is 400 MB, and the
    Solver caches every setting's solve)."""

    steps: np.ndarray  # (n_kept_steps,) iterations
    columns: np.ndarray  # (n_kept,) source indices, ascending
    lines: np.ndarray  # (n_kept_steps, n_kept) their weights
    others: np.ndarray | None  # (n_kept_steps,) the largest weight of the sources not kept; None if all are kept
    n_sources: int

    @classmethod
    def of(cls, result) -> Trajectory:
        traj = np.asarray(result.trajectory, dtype=np.float32)
        steps = _thin(traj.shape[0])
        traj = traj[steps]
        n_sources = traj.shape[1]
        # the colours' candidates (largest final weights) and the grey lines' (largest peaks beyond the coloured)
        by_peak = np.argsort(-traj.max(axis=0), kind="stable")[: len(HIGHLIGHT) + MAX_GREY_LINES]
        columns = np.union1d(top_indices(result.weights, len(HIGHLIGHT)), by_peak)
        rest = np.setdiff1d(np.arange(n_sources), columns)
        others = traj[:, rest].max(axis=1) if rest.size else None
        return cls(steps, columns, np.ascontiguousarray(traj[:, columns]), others, n_sources)


def trajectory_figure(result, k: int = 8, trajectory: Trajectory | None = None) -> str:
    """Weights per iteration (SVG, see :mod:`pages.common.svg`): the ``k`` largest final weights in colour, the
    rest in grey with one legend entry (see :func:`_grey_lines`). ``trajectory``: :meth:`Trajectory.of` the
    result, when the result no longer holds its own."""
    t = trajectory or Trajectory.of(result)
    top = top_indices(result.weights, min(k, len(HIGHLIGHT)))
    where = {int(c): j for j, c in enumerate(t.columns)}
    rest = np.setdiff1d(np.arange(len(t.columns)), [where[int(i)] for i in top])  # kept columns not coloured
    grey = _grey_lines(t.lines, rest, t.others) if rest.size or t.others is not None else []
    n_rest = t.n_sources - top.size
    lines = [svg.Line(f"other {n_rest} sources", y, SVG_GREY, width=1, legend=not i) for i, y in enumerate(grey)]
    lines += [svg.Line(str(result.source_names[i]), t.lines[:, where[int(i)]], HIGHLIGHT[rank % len(HIGHLIGHT)],
                       width=2.5) for rank, i in enumerate(top)]
    return svg.line_chart("Weight trajectories", t.steps, lines, x_label="iteration", y_label="weight", height=460)


def loss_gap_figure(result) -> str:
    """Loss (left axis) and Frank-Wolfe gap (right axis, log scale) per iteration (SVG)."""
    label = "loss + KL pull" if result.meta.get("prior_strength") else "loss"  # what the solver minimised
    lines = [svg.Line(label, np.asarray(result.losses, dtype=np.float64), "#1f77b4", width=2)]
    if result.gaps is not None:
        gaps = np.maximum(np.asarray(result.gaps, dtype=np.float64), 1e-12)
        lines.append(svg.Line("Frank–Wolfe gap", gaps, "#d62728", width=2, dash=True, right=True))
    return svg.line_chart("Loss and Frank–Wolfe gap", np.arange(len(result.losses)), lines, x_label="iteration",
                          y_label="loss", right_label="gap (log)" if result.gaps is not None else None,
                          right_log=True, height=460)


def _top_bars(names, weights, k, *arrays):
    """The ``k`` largest weights, largest first: their indices, names, weights and ``arrays`` cut alike (None stays)."""
    weights = np.asarray(weights, dtype=np.float64)
    top = top_indices(weights, k)
    return top, [str(names[i]) for i in top], weights[top], *(None if a is None else np.asarray(a)[top] for a in arrays)


def weights_chart(names, weights, lower=None, upper=None, k: int = 20, true_weights=None) -> str:
    """:func:`weights_figure` as SVG, for the Solver page (redrawn on every move of its controls)."""
    _, labels, values, lower, upper, true_weights = _top_bars(names, weights, k, lower, upper, true_weights)
    intervals = lower is not None and upper is not None
    return svg.bar_chart("Final weights" + (" (95% bootstrap intervals)" if intervals else ""), labels, values,
                         lower=lower if intervals else None, upper=upper if intervals else None,
                         markers=true_weights, marker_name="true weight")


def escaped(value):
    """``value`` (a text, or a list of texts and numbers) with ``&``, ``<`` and ``>`` as character references:
    Plotly renders a subset of HTML in a chart's texts (``<a href>`` as a live link, ``<b>``), and names come
    from users' files."""
    if isinstance(value, str):
        return html.escape(value, quote=False)
    if isinstance(value, (list, tuple, np.ndarray, pd.Series, pd.Index)) and any(isinstance(v, str) for v in value):
        return [html.escape(v, quote=False) if isinstance(v, str) else v for v in value]
    return value


def safe(fig: go.Figure) -> go.Figure:
    """``fig`` with its data's texts :func:`escaped` (category values and orders, trace names and texts) and its
    titles; every Plotly chart goes through it, once (``layout.meta`` marks it). A hover text built with ``<br>``
    escapes its names where it is built, and so must a figure that puts a user's name in a hover template (Plotly
    Express's ``color=`` does: the pages give it method names only)."""
    if fig.layout.meta == "escaped":
        return fig
    fig.layout.meta = "escaped"
    for trace in fig.data:
        for attr in ("x", "y", "name", "text", "legendgroup"):
            if attr in trace and trace[attr] is not None:
                trace[attr] = escaped(trace[attr])
    layout = fig.layout
    for title in (layout.title, layout.legend.title, layout.coloraxis.colorbar.title,
                  *(axis.title for axis in (layout.xaxis, layout.yaxis))):
        if title.text:
            title.text = escaped(title.text)
    for axis in (layout.xaxis, layout.yaxis):  # category orders name the (now escaped) values
        if axis.categoryarray is not None:
            axis.categoryarray = escaped(list(axis.categoryarray))
    return fig


def weights_figure(names, weights, lower=None, upper=None, k: int = 20, colours=None,
                   title: str = "Final weights", true_weights=None) -> go.Figure:
    """Horizontal bars of the ``k`` largest weights, with interval whiskers and true-weight markers when given."""
    top, labels, values, lower, upper, true_weights = (x[::-1] if x is not None else None for x in
                                                       _top_bars(names, weights, k, lower, upper, true_weights))
    error = None
    if lower is not None and upper is not None:
        error = dict(type="data", symmetric=False, array=np.maximum(upper - values, 0),
                     arrayminus=np.maximum(values - lower, 0), color="#444")
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", error_x=error,
                           marker_color=None if colours is None else [colours[i] for i in top], name="weight"))
    if true_weights is not None:
        fig.add_trace(go.Scatter(x=true_weights, y=labels, mode="markers",
                                 marker=dict(symbol="diamond", size=11, color="#d62728"), name="true weight"))
    fig.update_layout(showlegend=true_weights is not None, legend=dict(orientation="h", y=-0.25),
                      yaxis={"type": "category"})  # names such as "1" and "1.0" are names, not one number
    fig.update_layout(title=title + (" (95% bootstrap intervals)" if error else ""), xaxis_title="weight",
                      height=max(260, 24 * len(top) + 90), margin=dict(l=10, r=10, t=40, b=10))
    return safe(fig)


def solver_figures(result, k: int = 8, trajectory: Trajectory | None = None):
    """The Solver page's figures for ``result`` (the app benchmark times this too)."""
    return trajectory_figure(result, k, trajectory), loss_gap_figure(result)


def weights_table(result, lower=None, upper=None, true_weights=None) -> pd.DataFrame:
    frame = pd.DataFrame({"source": list(result.source_names), "weight": np.asarray(result.weights, np.float64)})
    if lower is not None:
        frame["ci_low"], frame["ci_high"] = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    if true_weights is not None:
        frame["true_weight"] = np.asarray(true_weights, np.float64)
    return frame.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)
