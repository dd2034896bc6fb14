"""Plotly figures, colours, weights tables and solver diagnostics shared by the pages (not a page itself)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

#: The paper's Table 1 colours: cytotoxicity red, phenotypic green, protein binding/inhibition blue, other orange.
CATEGORY_COLOURS = {"cytotoxicity": "#d62728", "phenotypic": "#2ca02c", "protein": "#1f77b4", "other": "#ff7f0e"}
GREY = "rgba(150,150,150,0.35)"
HIGHLIGHT = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
METHOD_ORDER = ["mixmin", "natural", "balanced", "target_only", "ensemble", "random_search", "regmix"]
METHOD_COLOURS = {"mixmin": "#d62728", "natural": "#1f77b4", "balanced": "#aec7e8", "target_only": "#7f7f7f",
                  "ensemble": "#9467bd", "random_search": "#2ca02c", "regmix": "#ff7f0e"}


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


def step_warning(losses: np.ndarray) -> str | None:
    """A warning when the loss rises or oscillates over the iterations (step size too large)."""
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


def _grey_lines(traj: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Lines (one per row) for the sources in ``rest``: those that rise visibly above the plot's floor
    (up to MAX_GREY_LINES, largest first), plus the upper envelope of all the others, which lie below it.

    Hundreds of near-zero lines cost the browser a second to draw and show as one smear at the bottom;
    the envelope draws that smear with one line.
    """
    peak = traj[:, rest].max(axis=0)
    order = np.argsort(-peak, kind="stable")
    shown = order[: MAX_GREY_LINES][peak[order[:MAX_GREY_LINES]] >= 0.01 * float(traj.max())]
    hidden = np.setdiff1d(np.arange(rest.size), shown)
    lines = [traj[:, rest[shown]].T]
    if hidden.size:
        lines.append(traj[:, rest[hidden]].max(axis=1)[None, :])
    return np.vstack(lines)


def trajectory_figure(result, k: int = 8) -> go.Figure:
    """Weights per iteration: the ``k`` largest final weights in colour, the rest as one grey trace
    (see :func:`_grey_lines`)."""
    traj = np.asarray(result.trajectory, dtype=np.float32)
    n_steps, n_sources = traj.shape
    steps = _thin(n_steps)
    traj = traj[steps]
    top = top_indices(result.weights, k)
    rest = np.setdiff1d(np.arange(n_sources), top)
    fig = go.Figure()
    if rest.size:
        lines = _grey_lines(traj, rest)
        x = np.tile(np.append(steps.astype(np.float32), np.nan), len(lines))
        y = np.hstack([lines, np.full((len(lines), 1), np.nan, np.float32)]).ravel()
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=GREY, width=1),
                                 name=f"other {rest.size} sources", hoverinfo="skip"))
    for rank, i in enumerate(top):
        fig.add_trace(go.Scatter(x=steps, y=traj[:, i], mode="lines",
                                 line=dict(color=HIGHLIGHT[rank % len(HIGHLIGHT)], width=2.5),
                                 name=str(result.source_names[i])))
    fig.update_layout(title="Weight trajectories", xaxis_title="iteration", yaxis_title="weight",
                      height=460, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.18, font=dict(size=11)))
    return fig


def loss_gap_figure(result) -> go.Figure:
    """Loss (left axis) and Frank-Wolfe gap (right axis, log scale) per iteration."""
    it = np.arange(len(result.losses))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=it, y=result.losses, mode="lines", name="loss", line=dict(color="#1f77b4")))
    if result.gaps is not None:
        gaps = np.maximum(np.asarray(result.gaps, dtype=np.float64), 1e-12)
        fig.add_trace(go.Scatter(x=it, y=gaps, mode="lines", name="Frank–Wolfe gap", yaxis="y2",
                                 line=dict(color="#d62728", dash="dot")))
    fig.update_layout(title="Loss and Frank–Wolfe gap", xaxis_title="iteration", yaxis=dict(title="loss"),
                      yaxis2=dict(title="gap (log)", overlaying="y", side="right", type="log", showgrid=False,
                                  exponentformat="e", dtick=1),
                      height=460, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def weights_figure(names, weights, lower=None, upper=None, k: int = 20, colours=None,
                   title: str = "Final weights", true_weights=None) -> go.Figure:
    """Horizontal bars of the ``k`` largest weights, with interval whiskers and true-weight markers when given."""
    weights = np.asarray(weights, dtype=np.float64)
    top = top_indices(weights, k)[::-1]
    error = None
    if lower is not None and upper is not None:
        error = dict(type="data", symmetric=False, array=np.maximum(np.asarray(upper)[top] - weights[top], 0),
                     arrayminus=np.maximum(weights[top] - np.asarray(lower)[top], 0), color="#444")
    fig = go.Figure(go.Bar(x=weights[top], y=[str(names[i]) for i in top], orientation="h", error_x=error,
                           marker_color=None if colours is None else [colours[i] for i in top], name="weight"))
    if true_weights is not None:
        fig.add_trace(go.Scatter(x=np.asarray(true_weights)[top], y=[str(names[i]) for i in top], mode="markers",
                                 marker=dict(symbol="diamond", size=11, color="#d62728"), name="true weight"))
    fig.update_layout(showlegend=true_weights is not None, legend=dict(orientation="h", y=-0.25))
    fig.update_layout(title=title + (" (95% bootstrap intervals)" if error else ""), xaxis_title="weight",
                      height=max(260, 24 * len(top) + 90), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def solver_figures(result, k: int = 8):
    """The Solver page's figures for ``result`` (the app benchmark times this too)."""
    return trajectory_figure(result, k), loss_gap_figure(result)


def weights_table(result, lower=None, upper=None, true_weights=None) -> pd.DataFrame:
    frame = pd.DataFrame({"source": list(result.source_names), "weight": np.asarray(result.weights, np.float64)})
    if lower is not None:
        frame["ci_low"], frame["ci_high"] = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    if true_weights is not None:
        frame["true_weight"] = np.asarray(true_weights, np.float64)
    return frame.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)
