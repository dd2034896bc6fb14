"""End to end in a real browser: ``streamlit run app.py`` on a fixture store, driven by Chromium.

Uses Debian's chromium (/usr/bin/chromium) through Playwright's Python API; Playwright's own
browser downloads are never used. Screenshots of every page go to artifacts/screenshots/.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.app.fixtures import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "artifacts" / "screenshots"
PAGES = [("", "Runs"), ("solver", "Solver"), ("compare", "Compare"), ("assays", "Assays"),
         ("jobs", "Jobs"), ("upload", "Upload"), ("beyond", None)]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)

TRAJECTORY_JS = """() => {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const p = plots.find(el => el.layout && el.layout.title && String(el.layout.title.text).includes('Weight trajectories'));
  if (!p) return null;
  // y may be a plain array or Plotly's base64 typed-array object: compare the serialised form
  return p.data.map(t => JSON.stringify(t.y));
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(home: Path):
    """``streamlit run app.py`` on a free localhost port with ``MIXMIN_HOME=home``; yields its URL."""
    port = free_port()
    env = {**os.environ, "MIXMIN_HOME": str(home)}
    log_path = home.parent / f"streamlit-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc, log_path)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server(template_home, tmp_path_factory):
    home = tmp_path_factory.mktemp("browser_home") / "home"
    shutil.copytree(template_home, home)  # the session's fixture store (tests/app/conftest.py)
    with serve(home) as url:
        yield url


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("browser_empty") / "home") as url:
        yield url


def _wait_healthy(url: str, proc, log_path: Path, timeout: float = 60.0) -> None:
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


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2400})
    page = context.new_page()
    yield page
    context.close()


def open_page(page, url: str, path: str, title: str | None) -> None:
    page.goto(f"{url}/{path}")
    heading = page.get_by_role("heading", name=title, exact=True) if title else page.get_by_role("heading")
    heading.first.wait_for(timeout=30_000)
    _wait_idle(page)


def _wait_idle(page, timeout: float = 45.0) -> None:
    """Wait until the script run has finished and every element is drawn (no status widget,
    no skeleton placeholders, Plotly charts rendered) for about a second."""
    busy = ('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"], '
            '[data-testid="stSkeleton"], [data-testid="stAppSkeleton"]')
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 4:
        undrawn = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                                ".filter(el => !el.querySelector('.main-svg')).length")
        quiet = quiet + 1 if page.locator(busy).count() == 0 and undrawn == 0 else 0
        page.wait_for_timeout(300)


def _trajectory(page, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = page.evaluate(TRAJECTORY_JS)
        if data:
            return data
        page.wait_for_timeout(200)
    raise AssertionError("no 'Weight trajectories' plot on the Solver page")


def test_solver_step_size_changes_trajectory(server, page):
    open_page(page, server, "solver", "Solver")
    before = _trajectory(page)
    assert len(before) == 9 and all(len(y) > 20 for y in before)  # 8 highlighted sources + the grey rest
    slider = page.get_by_role("slider", name="Step size η")
    assert slider.get_attribute("aria-valuetext") in ("1.0", "1")
    slider.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # 1.0 -> 2.0 -> 3.0 -> 5.0
    deadline = time.monotonic() + 30
    after = before
    while after == before and time.monotonic() < deadline:
        page.wait_for_timeout(300)
        after = page.evaluate(TRAJECTORY_JS) or before
    assert after != before, "the trajectory plot did not change after the step size changed"
    assert slider.get_attribute("aria-valuetext") in ("5.0", "5")
    _wait_idle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "solver_step5.png"), full_page=True)


@pytest.mark.parametrize("path,title", PAGES)
def test_screenshot_every_page(server, page, path, title):
    open_page(page, server, path, title)
    assert page.locator('[data-testid="stException"]').count() == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{path or 'runs'}.png"), full_page=True)


def test_newcomer_on_an_empty_store_opens_the_example(empty_server, page):
    open_page(page, empty_server, "", "Runs")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "runs_empty_store.png"), full_page=True)
    assert page.get_by_role("button", name="Start the ToxCast demo").is_enabled()
    page.get_by_role("button", name="Open the example in the Solver").click()
    page.get_by_role("heading", name="Solver", exact=True).first.wait_for(timeout=30_000)
    page.get_by_text("Known true weights").wait_for(timeout=30_000)
    _wait_idle(page)
    _trajectory(page)
    page.screenshot(path=str(SHOTS / "solver_example.png"), full_page=True)
