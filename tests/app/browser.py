"""Drive the app in a real browser: ``streamlit run app.py`` on a loopback port, Chromium through Playwright.

Shared by the browser test, ``benchmarks/app_browser.py`` and ``docs/make_screenshots.py``. Uses
Debian's chromium (/usr/bin/chromium); Playwright's own browser downloads are never used.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BUSY = ('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"], '
        '[data-testid="stSkeleton"], [data-testid="stAppSkeleton"]')

#: ``{title: [{name, x, y}]}`` of every drawn Plotly chart (titles without the theme's <b> tags; x and y
#: as JSON text: arrays may be typed-array objects), and ``{title: elements}`` of every inline SVG chart
#: (pages/common/svg.py): each element's tag, sorted attributes and text (the DOM's attribute order may vary).
CHARTS_JS = """() => Object.fromEntries(Array.from(document.querySelectorAll('.js-plotly-plot'))
  .filter(el => el.layout && el.layout.title)
  .map(el => [String(el.layout.title.text).replace(/<[^>]+>/g, ''), el.data.map(t => ({name: t.name, x: JSON.stringify(t.x),
                                                                 y: JSON.stringify(t.y)}))])
  .concat(Array.from(document.querySelectorAll('svg[data-chart]')).map(el => [el.dataset.chart,
    Array.from(el.querySelectorAll('*')).map(e => e.tagName + ' ' + Array.from(e.attributes)
      .map(a => a.name + '=' + a.value).sort().join(' ') + (e.children.length ? '' : ' ' + e.textContent))])))"""
#: The polylines of the inline SVG chart titled ``title`` (one ``points`` string each), or null before it is drawn.
SVG_LINES_JS = """(title) => {
  const chart = Array.from(document.querySelectorAll('svg[data-chart]')).find(el => el.dataset.chart === title);
  return chart ? Array.from(chart.querySelectorAll('polyline')).map(p => p.getAttribute('points')) : null;
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(home: Path, log_dir: Path | None = None):
    """``streamlit run app.py`` on a free 127.0.0.1 port with ``MIXMIN_HOME=home``; yields its URL."""
    home = Path(home)
    port = free_port()
    env = {**os.environ, "MIXMIN_HOME": str(home)}
    log_path = Path(log_dir or home.parent) / f"streamlit-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc, log_path)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def wait_healthy(url: str, proc, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                if resp.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit did not become healthy in {timeout:.0f} s")


@contextlib.contextmanager
def chromium():
    """A headless Chromium (Playwright's sync API); each caller opens its own fresh contexts."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_page(page, url: str, path: str, title: str | None) -> None:
    """Go to ``url/path`` and wait until the page with heading ``title`` is drawn and idle."""
    page.goto(f"{url}/{path}")
    heading = page.get_by_role("heading", name=title, exact=True) if title else page.get_by_role("heading")
    heading.first.wait_for(timeout=30_000)
    wait_idle(page)


def wait_idle(page, timeout: float = 45.0) -> None:
    """Wait until the script run has finished and every element is drawn (no status widget,
    no skeleton placeholders, Plotly charts rendered) for about a second."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 4:
        undrawn = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                                ".filter(el => !el.querySelector('.main-svg')).length")
        quiet = quiet + 1 if page.locator(BUSY).count() == 0 and undrawn == 0 else 0
        page.wait_for_timeout(300)


def charts(page) -> dict:
    return page.evaluate(CHARTS_JS)


def charts_titled(page, *prefixes: str, timeout: float = 90.0) -> dict:
    """The page's charts once one chart title starts with each of ``prefixes`` (a loaded machine
    can draw the page in several passes; waiting for what the test reads keeps it deterministic)."""
    deadline = time.monotonic() + timeout
    while True:
        drawn = charts(page)
        if all(any(t.startswith(p) for t in drawn) for p in prefixes) or time.monotonic() > deadline:
            wait_idle(page)
            return charts(page)
        page.wait_for_timeout(300)


def metric_value(page, label: str) -> str:
    """The value shown by the ``st.metric`` labelled ``label``."""
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def charts_settled(pages, *prefixes: str, timeout: float = 60.0) -> list[dict]:
    """Each page's charts whose titles start with ``prefixes``, once the pages show the same data or
    ``timeout`` passes (a loaded machine may still be redrawing one after its last widget change);
    the caller asserts that they agree."""
    deadline = time.monotonic() + timeout
    while True:
        drawn = [charts_titled(page, *prefixes) for page in pages]
        picked = [{t: v for t, v in d.items() if t.startswith(prefixes)} for d in drawn]
        if all(p == picked[0] for p in picked) or time.monotonic() > deadline:
            return picked
        time.sleep(0.5)


def select_option(page, label: str, option: str) -> None:
    """Pick ``option`` (its shown text) in the selectbox labelled ``label``, as a user does: a click that
    lands while the page below still settles (a table drawn after a rerun) leaves the list closed, so the
    user clicks again."""
    from playwright.sync_api import TimeoutError as Timeout

    box = page.get_by_role("combobox", name=label, exact=True)
    for _ in range(3):
        box.click()
        with contextlib.suppress(Timeout):
            page.wait_for_function("b => b.getAttribute('aria-expanded') === 'true'", arg=box.element_handle(),
                                   timeout=2_000)
            break
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def select_options(page, label: str) -> list[str]:
    """The options of the selectbox labelled ``label`` (opens and closes its list)."""
    page.get_by_role("combobox", name=label, exact=True).click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return [o.strip() for o in options]


def slide_to(page, label: str, value: str, key: str = "ArrowRight", max_presses: int = 200) -> None:
    """Move the slider labelled ``label`` with the keyboard until it shows ``value``."""
    slider = page.get_by_role("slider", name=label)
    slider.focus()
    for _ in range(max_presses):
        if slider.get_attribute("aria-valuetext") == value:
            break
        page.keyboard.press(key)
    assert slider.get_attribute("aria-valuetext") == value, (label, slider.get_attribute("aria-valuetext"))
    wait_idle(page)


def notices(page) -> list[str]:
    return [t for t in page.locator('[data-testid="stAlertContainer"]').all_inner_texts() if "link" in t]


def has_dialog(page) -> bool:
    return page.locator('[role="dialog"]').count() > 0


def dump(obj) -> str:
    return json.dumps(obj, sort_keys=True)
