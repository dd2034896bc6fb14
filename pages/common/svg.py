"""Static SVG charts for the Solver page, whose figures are redrawn on every move of a control.

Streamlit remounts a Plotly chart whenever its figure changes (the element's id hashes the figure), so each
slider move rebuilt the page's Plotly charts from scratch: 0.1-0.2 s of the browser's main thread each on a
2-core machine (``python -m benchmarks.app_browser``). These charts are a few kilobytes of inline SVG that the
browser draws in milliseconds; hovering a line, bar or marker shows its name and value (an SVG ``<title>``).
Every text is written as character references, so a name from an upload or a run config can neither inject
markup nor be read as Markdown.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WIDTH = 560
_CHAR = 7.8  # px a character may take at the 12 px font (capitals and underscores: most)
_FONT = 'font-family="sans-serif" font-size="12" fill="#31333f"'
_AXIS = "#9a9a9a"
_LEGEND_COLUMNS = 2


@dataclass(frozen=True)
class Line:
    """One line of :func:`line_chart`: ``y`` per x value (non-finite values break the line)."""

    name: str
    y: np.ndarray
    colour: str
    width: float = 1.5
    dash: bool = False
    right: bool = False  # on the right-hand axis
    legend: bool = True  # listed in the legend (e.g. only the first of many grey lines)


def text(value) -> str:
    """``value`` as character references except letters, digits and spaces: safe inside SVG and Markdown.
    Markdown decodes the references and then links what reads as a web or e-mail address, so an address
    gets an invisible word joiner first (as :func:`pages.common.state.plain` does)."""
    from pages.common.state import unlinked

    return "".join(c if c.isascii() and (c.isalnum() or c == " ") else f"&#{ord(c)};" for c in unlinked(str(value)))


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (1, 2 or 5 times a power of ten apart) covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0 if math.isfinite(lo) else 1.0
        lo = hi - 1.0
    raw = (hi - lo) / max(1, n)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) * step
    count = math.ceil((hi - first) / step - 1e-9)
    return [round(first + i * step, 12) for i in range(count + 1)]


def _shorten(name: str, room: float) -> str:
    """``name`` cut to about ``room`` characters (the full name stays in the tooltip)."""
    room = max(4, int(room))
    return name if len(name) <= room else name[: room - 1] + "…"


def tick_labels(ticks: list[float]) -> list[str]:
    """Labels for evenly spaced ``ticks`` with the decimals their spacing needs, so that neighbours never
    read the same (6.045 and 6.05 are both "6.05" to three significant figures)."""
    if len(ticks) < 2:
        return [f"{t:.3g}" if t else "0" for t in ticks]
    step = abs(ticks[1] - ticks[0])
    span = max(abs(t) for t in ticks)
    power = math.floor(math.log10(step) + 1e-9)
    if span < 1e5 and power >= -4:
        return [f"{t:.{max(0, -power)}f}" if t else "0" for t in ticks]
    mantissa = max(0, math.floor(math.log10(span) + 1e-9) - power)  # decimals of the mantissa, down to the step
    return [f"{t:.{mantissa}e}" if t else "0" for t in ticks]


def _svg(title: str, height: int, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
            f'aria-label="{text(title)}" data-chart="{text(title)}" {_FONT}>'
            f'<text x="4" y="16" font-size="15" font-weight="600">{text(title)}</text>{"".join(body)}</svg>')


class _Scale:
    """Data to pixels along one axis (``log``: base 10; values <= 0 are dropped)."""

    def __init__(self, lo: float, hi: float, start: float, stop: float, log: bool = False):
        self.log = log
        if log:
            lo, hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
            hi = max(hi, lo + 1)
            self.ticks = [10.0 ** e for e in range(int(lo), int(hi) + 1)]
        else:
            self.ticks = nice_ticks(lo, hi)
            lo, hi = self.ticks[0], self.ticks[-1]
        self.lo, self.hi, self.start, self.stop = lo, hi, start, stop

    def __call__(self, values) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(v > 0, np.log10(v), np.nan)
        return self.start + (v - self.lo) / (self.hi - self.lo) * (self.stop - self.start)


def _finite_range(arrays, log: bool = False) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays] or [np.zeros(1)])
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if not values.size:
        return (1e-12, 1.0) if log else (0.0, 1.0)
    return float(values.min()), float(values.max())


def _polylines(xs: np.ndarray, ys: np.ndarray, attrs: str, tooltip: str) -> str:
    """One ``<polyline>`` per run of finite points."""
    ok = np.isfinite(xs) & np.isfinite(ys)
    runs, start = [], None
    for i, good in enumerate(np.append(ok, False)):
        if good and start is None:
            start = i
        elif not good and start is not None:
            runs.append((start, i))
            start = None
    return "".join(f'<polyline fill="none" {attrs} points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs[a:b], ys[a:b])) + f'"><title>{tooltip}</title></polyline>'
                   for a, b in runs)


def _legend(entries: list[tuple[str, str, bool]], top: float) -> list[str]:
    """Swatches and names, ``_LEGEND_COLUMNS`` a row, from ``top`` down."""
    column = (WIDTH - 20) / _LEGEND_COLUMNS
    out = []
    for i, (name, colour, dash) in enumerate(entries):
        x, y = 10 + (i % _LEGEND_COLUMNS) * column, top + (i // _LEGEND_COLUMNS) * 18
        short = _shorten(name, (column - 34) / _CHAR)
        pattern = ' stroke-dasharray="4 3"' if dash else ""
        out.append(f'<line x1="{x:.0f}" y1="{y - 4:.0f}" x2="{x + 22:.0f}" y2="{y - 4:.0f}" stroke="{colour}" '
                   f'stroke-width="2.5"{pattern}/>'
                   f'<text x="{x + 28:.0f}" y="{y:.0f}"><title>{text(name)}</title>{text(short)}</text>')
    return out


def line_chart(title: str, x, lines: list[Line], *, x_label: str, y_label: str, right_label: str | None = None,
               right_log: bool = False, height: int = 420) -> str:
    """Lines over a shared ``x``; lines with ``right=True`` on a second axis (``right_log``: log scale)."""
    x = np.asarray(x, dtype=np.float64)
    entries = [(line.name, line.colour, line.dash) for line in lines if line.legend]
    rows = math.ceil(len(entries) / _LEGEND_COLUMNS)
    left, right = 62.0, WIDTH - (62.0 if right_label else 16.0)
    top, bottom = 30.0, height - 42.0 - 18 * rows
    xs = _Scale(*_finite_range([x]), left, right)
    scales = {False: _Scale(*_finite_range([ln.y for ln in lines if not ln.right]), bottom, top)}
    if right_label:
        scales[True] = _Scale(*_finite_range([ln.y for ln in lines if ln.right], right_log), bottom, top, log=right_log)
    body = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" stroke="{_AXIS}"/>']
    for label, px in zip(tick_labels(xs.ticks), xs(xs.ticks)):
        body.append(f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" stroke="{_AXIS}"/>'
                    f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{text(label)}</text>')
    for side, scale in scales.items():
        edge, anchor, shift = (right, "start", 6) if side else (left, "end", -6)
        labels = [f"1e{round(math.log10(tick))}" for tick in scale.ticks] if scale.log else tick_labels(scale.ticks)
        for label, py in zip(labels, scale(scale.ticks)):
            if not side:
                body.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" stroke="#ececec"/>')
            body.append(f'<text x="{edge + shift}" y="{py + 4:.1f}" text-anchor="{anchor}">{text(label)}</text>')
    mid = (top + bottom) / 2
    body.append(f'<text x="14" y="{mid}" transform="rotate(-90 14 {mid})" text-anchor="middle">{text(y_label)}</text>')
    if right_label:
        body.append(f'<text x="{WIDTH - 8}" y="{mid}" transform="rotate(90 {WIDTH - 8} {mid})" '
                    f'text-anchor="middle">{text(right_label)}</text>')
    body.append(f'<text x="{(left + right) / 2}" y="{bottom + 32}" text-anchor="middle">{text(x_label)}</text>')
    for line in lines:
        attrs = (f'stroke="{line.colour}" stroke-width="{line.width}"'
                 + (' stroke-dasharray="4 3"' if line.dash else ""))
        y = np.asarray(line.y, dtype=np.float64)
        last = y[np.isfinite(y)][-1:] if np.isfinite(y).any() else []
        tooltip = text(line.name + (f" (last: {last[0]:.4g})" if len(last) else ""))
        body.append(_polylines(xs(x), scales[line.right](y), attrs, tooltip))
    body += _legend(entries, bottom + 52)
    return _svg(title, int(height), body)


def bar_chart(title: str, labels: list[str], values, *, lower=None, upper=None, markers=None,
              marker_name: str = "", colours=None, x_label: str = "weight") -> str:
    """Horizontal bars, top to bottom in the order given, with optional interval whiskers
    (``lower``/``upper``) and diamond markers (e.g. known true values)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    height = max(200, 24 * n + 80 + (18 if markers is not None else 0))
    room = min(30, max((len(label) for label in labels), default=4))
    left, right, top = 12 + room * _CHAR, WIDTH - 16.0, 30.0
    bottom = top + 24 * n
    arrays = [values, np.zeros(1)] + [np.asarray(a, dtype=np.float64) for a in (lower, upper, markers) if a is not None]
    xs = _Scale(*_finite_range(arrays), left, right)
    body = []
    for label, px in zip(tick_labels(xs.ticks), xs(xs.ticks)):
        body.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" stroke="#ececec"/>'
                    f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{text(label)}</text>')
    zero = float(xs([0.0])[0])
    for i, (label, value) in enumerate(zip(labels, values)):
        y = top + 24 * i
        short = _shorten(label, room)
        x0, x1 = sorted((zero, float(xs([value])[0])))
        colour = colours[i] if colours is not None else "#1f77b4"
        tip = f"{label}: {value:.4f}"
        if lower is not None and upper is not None:
            lo, hi = (float(v) for v in xs([lower[i], upper[i]]))
            tip += f" (95% interval {lower[i]:.4f} to {upper[i]:.4f})"
        body.append(f'<text x="{left - 6}" y="{y + 16}" text-anchor="end"><title>{text(label)}</title>{text(short)}</text>'
                    f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 0.5):.1f}" height="16" fill="{colour}">'
                    f'<title>{text(tip)}</title></rect>')
        if lower is not None and upper is not None:
            body.append(f'<path d="M{lo:.1f} {y + 12}H{hi:.1f}M{lo:.1f} {y + 7}V{y + 17}M{hi:.1f} {y + 7}V{y + 17}" '
                        f'stroke="#444" fill="none"/>')
        if markers is not None:
            mx = float(xs([markers[i]])[0])
            body.append(f'<path d="M{mx:.1f} {y + 5}l6 7l-6 7l-6 -7z" fill="#d62728">'
                        f'<title>{text(f"{marker_name}: {markers[i]:.4f}")}</title></path>')
    body.append(f'<line x1="{zero:.1f}" y1="{top}" x2="{zero:.1f}" y2="{bottom}" stroke="{_AXIS}"/>')
    body.append(f'<text x="{(left + right) / 2}" y="{bottom + 32}" text-anchor="middle">{text(x_label)}</text>')
    if markers is not None:
        body.append(f'<path d="M{left} {bottom + 40}l6 7l-6 7l-6 -7z" fill="#d62728"/>'
                    f'<text x="{left + 12}" y="{bottom + 51}">{text(marker_name)}</text>')
    return _svg(title, height, body)
