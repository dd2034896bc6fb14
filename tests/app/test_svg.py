"""The Solver page's inline SVG charts (pages/common/svg.py): escaped text, axes that cover the data, one line per series."""
import html
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from mixmin_core import mixmin
from pages.common import figures as figs
from pages.common import svg
from tests.app.fixtures import binary_outputs

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script> *bold* _it_ [link](javascript:x) & ü'


def parse(markup: str) -> ET.Element:
    """The chart as XML: well-formed, one <svg> root."""
    root = ET.fromstring(markup)
    assert root.tag == NS + "svg"
    return root


def points(element) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in element.get("points").split()])


def test_text_breaks_web_addresses_so_markdown_does_not_link_them():
    """A source named "[click me](https://evil.example/)" became a link in the Solver's SVG legend: Markdown
    decodes the references, then links the address."""
    escaped = svg.text("see https://evil.example/ or www.evil.example or me@evil.example")
    decoded = html.unescape(escaped)
    assert "https://" not in decoded and "www.evil" not in decoded and "me@" not in decoded  # a joiner in each
    assert decoded.replace("\u2060", "") == "see https://evil.example/ or www.evil.example or me@evil.example"


def test_text_is_character_references_that_read_back_as_the_name():
    escaped = svg.text(HOSTILE)
    assert not set(escaped) & set('<>"&*_[]()') - {"&"} and "<" not in escaped
    assert re.fullmatch(r"([A-Za-z0-9 ]|&#\d+;)*", escaped)
    assert html.unescape(escaped) == HOSTILE


@pytest.mark.parametrize("lo,hi", [(0, 1), (0.13, 0.57), (-3.2, 41), (1e-7, 3e-7), (5, 5), (0.2, 0.2000001)])
def test_nice_ticks_are_round_and_cover_the_range(lo, hi):
    ticks = svg.nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and 2 <= len(ticks) <= 12
    steps = np.diff(ticks)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-6)
    mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
    assert any(np.isclose(mantissa, m) for m in (1, 2, 5, 10))


@pytest.mark.parametrize(("lo", "hi"), [(6.048, 6.063), (0, 1), (0, 12_000), (1e-6, 5e-6), (0, 3e7), (99.5, 100.5),
                                      (1.2e6, 1.25e6), (-0.5, 0.5)])
def test_tick_labels_tell_neighbouring_ticks_apart(lo, hi):
    """A loss axis spanning 6.048-6.063 once read 6.04, 6.05, 6.05, 6.06, 6.07."""
    ticks = svg.nice_ticks(lo, hi)
    labels = svg.tick_labels(ticks)
    assert len(set(labels)) == len(labels), labels
    np.testing.assert_allclose([float(x) for x in labels], ticks, rtol=1e-9, atol=1e-12)  # and read as their values
    assert max(map(len, labels)) <= 9, labels


def test_line_chart_draws_each_finite_run_inside_the_plot_with_a_hostile_name_escaped():
    x = np.arange(6)
    lines = [svg.Line(HOSTILE, np.array([0.1, 0.2, np.nan, 0.4, 0.5, 0.6]), "#1f77b4"),
             svg.Line("gap", np.array([1.0, 1e-2, 1e-4, 0.0, 1e-6, 1e-8]), "#d62728", dash=True, right=True)]
    markup = svg.line_chart("Loss & <gap>", x, lines, x_label="iteration", y_label="loss", right_label="gap (log)",
                            right_log=True)
    root = parse(markup)
    assert html.unescape(root.get("data-chart")) == "Loss & <gap>" and "<script" not in markup
    polylines = root.findall(f"{NS}polyline")
    assert len(polylines) == 4  # the NaN splits the first line in two; the log axis drops the gap's 0
    assert [len(points(p)) for p in polylines] == [2, 3, 3, 2]
    width, height = (float(v) for v in root.get("viewBox").split()[2:])
    for p in polylines:
        xy = points(p)
        assert (xy[:, 0] >= 0).all() and (xy[:, 0] <= width).all() and (xy[:, 1] >= 0).all() and (xy[:, 1] <= height).all()
    assert polylines[0].find(f"{NS}title").text == HOSTILE + " (last: 0.6)"
    # higher values are drawn higher up (smaller y), on both axes
    assert points(polylines[1])[-1, 1] < points(polylines[1])[0, 1]
    assert points(polylines[2])[-1, 1] > points(polylines[2])[0, 1]


def test_bar_chart_orders_bars_and_draws_intervals_and_markers():
    values, lower, upper = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.2, 0.1]), np.array([0.6, 0.35, 0.3])
    root = parse(svg.bar_chart("Final weights", ["a", "b", HOSTILE], values, lower=lower, upper=upper,
                               markers=np.array([0.45, 0.35, 0.2]), marker_name="true weight"))
    bars = root.findall(f"{NS}rect")
    widths = [float(b.get("width")) for b in bars]
    assert len(bars) == 3 and widths[0] > widths[1] > widths[2] > 0
    np.testing.assert_allclose(np.array(widths) / widths[0], values / values[0], rtol=0.02)
    assert bars[2].find(f"{NS}title").text.startswith(HOSTILE + ": 0.2000 (95% interval 0.1000 to 0.3000)")
    assert len(root.findall(f"{NS}path")) == 3 + 3 + 1  # whiskers, markers, the legend's marker


def test_solver_figures_colour_the_top_sources_and_grey_the_rest_under_one_legend_entry():
    outputs = binary_outputs(40, 300, np.random.default_rng(0), n_informative=6)
    result = mixmin(outputs, max_iter=50)
    trajectory, loss = (parse(f) for f in figs.solver_figures(result, k=5))
    lines = trajectory.findall(f"{NS}polyline")
    coloured = [p for p in lines if p.get("stroke") != figs.SVG_GREY]
    assert len(coloured) == 5 and len(lines) > 5
    top = [outputs.source_names[i] for i in np.argsort(-result.weights)[:5]]
    assert [p.find(f"{NS}title").text.split(" (last")[0] for p in coloured] == top
    legend = [t.find(f"{NS}title").text for t in trajectory.findall(f"{NS}text") if t.find(f"{NS}title") is not None]
    assert legend == ["other 35 sources", *top]
    assert all(len(points(p)) == 51 for p in coloured)
    assert len(loss.findall(f"{NS}polyline")) == 2


def test_the_solvers_cached_trajectory_is_small_and_draws_the_same_figure():
    """The Solver cached each setting's whole trajectory: 400 MB for a 100,000-source upload at 1,000 iterations
    (a visitor's six links held 2.4 GB). What it keeps now is what the figure draws, for any colour count."""
    outputs = binary_outputs(3000, 200, np.random.default_rng(1), n_informative=8)
    result = mixmin(outputs, max_iter=400, step_size=3.0)
    kept = figs.Trajectory.of(result)
    assert kept.lines.shape == (len(kept.steps), kept.columns.size) and kept.columns.size <= 2 * len(figs.HIGHLIGHT) + 60
    assert kept.lines.nbytes + kept.others.nbytes < 0.03 * result.trajectory.nbytes  # (100,000 sources: 0.1%)
    steps = figs._thin(result.trajectory.shape[0])
    whole = figs.Trajectory(steps, np.arange(3000), result.trajectory[steps], None, 3000)  # nothing left out
    for k in (1, 5, len(figs.HIGHLIGHT)):
        assert figs.trajectory_figure(result, k, kept) == figs.trajectory_figure(result, k, whole)
