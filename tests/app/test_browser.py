"""End to end in a real browser: ``streamlit run app.py`` on a fixture store, driven by Chromium.

Uses Debian's chromium (/usr/bin/chromium) through Playwright's Python API; Playwright's own
browser downloads are never used. Screenshots of every page go to artifacts/screenshots/.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.app.browser import (
    CHROMIUM,
    SVG_LINES_JS,
    charts,
    charts_settled,
    chromium,
    has_dialog,
    metric_value,
    notices,
    open_page,
    select_option,
    select_options,
    serve,
    slide_to,
)
from tests.app.browser import wait_idle as _wait_idle
from tests.app.fixtures import CHEM_RUN, ROOT

SHOTS = ROOT / "artifacts" / "screenshots"
PAGES = [("", "Runs"), ("runs", "Runs"), ("solver", "Solver"), ("compare", "Compare"), ("assays", "Assays"),
         ("jobs", "Jobs"), ("upload", "Upload"), ("beyond", None)]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)

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


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2400})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def fresh(browser):
    """Opens a page in a new browser context each call (a link opened by someone else)."""
    contexts = []

    def new_page():
        context = browser.new_context(viewport={"width": 1400, "height": 2400}, accept_downloads=True)
        contexts.append(context)
        return context.new_page()

    yield new_page
    for context in contexts:
        context.close()


def _trajectory(page, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = page.evaluate(SVG_LINES_JS, "Weight trajectories")
        if data:
            return data
        page.wait_for_timeout(200)
    raise AssertionError("no 'Weight trajectories' plot on the Solver page")


def test_solver_step_size_changes_trajectory(server, page):
    open_page(page, server, "solver", "Solver")
    before = _trajectory(page)
    # 8 highlighted sources over the grey rest (its larger sources, then one envelope line for the others)
    assert len(before) >= 9 and all(len(points.split()) > 20 for points in before)
    slider = page.get_by_role("slider", name="Step size η")
    assert slider.get_attribute("aria-valuetext") in ("1.0", "1")
    slider.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # 1.0 -> 2.0 -> 3.0 -> 5.0
    deadline = time.monotonic() + 30
    after = before
    while after == before and time.monotonic() < deadline:
        page.wait_for_timeout(300)
        after = page.evaluate(SVG_LINES_JS, "Weight trajectories") or before
    assert after != before, "the trajectory plot did not change after the step size changed"
    assert slider.get_attribute("aria-valuetext") in ("5.0", "5")
    _wait_idle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "solver_step5.png"), full_page=True)


@pytest.mark.parametrize("path,title", PAGES)
def test_screenshot_every_page(server, page, path, title):
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    open_page(page, server, path, title)
    # works offline: nothing is fetched from beyond this server (the favicon was a CDN's Material icon)
    assert [url for url in requests if not url.startswith((server, "data:", "blob:"))] == []
    assert any("/media/" in url for url in requests)  # the app's own favicon
    assert page.locator('[data-testid="stException"]').count() == 0
    assert not has_dialog(page)  # e.g. "Page not found"
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


# ---- shareable views (issue 15) ------------------------------------------------------------------------
def _solver_view(page) -> dict:
    figs = charts(page)
    weights = next(v for k, v in figs.items() if k.startswith("Final weights"))
    return {"loss": metric_value(page, "Final loss"), "iterations": metric_value(page, "Iterations"),
            "weights": weights, "trajectory": next(v for k, v in figs.items() if k == "Weight trajectories")}


def test_a_solver_link_opens_the_same_view_as_setting_the_controls_by_hand(server, fresh):
    hand = fresh()
    open_page(hand, server, "solver", "Solver")
    target = hand.evaluate("() => new URL(location.href).searchParams.get('problem')").split("__")[0]
    select_option(hand, "Problem", f"{target} [sources-10] · trial 1")
    slide_to(hand, "Step size η", "3.0")
    slide_to(hand, "Iterations", "200")
    hand.get_by_text("Constraints: availability caps").click()
    slide_to(hand, "Max weight per source", "0.30", key="PageDown")  # 0.1 a press
    by_hand = _solver_view(hand)
    assert by_hand["iterations"] == "200"

    link = (f"solver?run={CHEM_RUN}&problem={target}__sources-10__trial1&step_size=3&max_iter=200"
            "&max_weight=0.3")
    shared = fresh()
    open_page(shared, server, link, "Solver")
    assert not notices(shared)
    assert _solver_view(shared) == by_hand
    # the hand-set page wrote the same selections into its own URL
    url = hand.evaluate("() => Object.fromEntries(new URL(location.href).searchParams)")
    assert {k: url[k] for k in ("run", "step_size", "max_iter", "max_weight")} == {
        "run": CHEM_RUN, "step_size": "3", "max_iter": "200", "max_weight": "0.3"}


def test_a_compare_link_opens_the_same_view(server, fresh):
    hand = fresh()
    open_page(hand, server, "compare", "Compare")
    select_option(hand, "Setting", "sources-10")
    select_option(hand, "Improvement over", "target_only")
    shared = fresh()
    open_page(shared, server, f"compare?run={CHEM_RUN}&metric=average_precision&setting=sources-10"
                              "&baseline=target_only", "Compare")
    assert not notices(shared)
    keys = ("Overall (mean over targets)", "Per target")
    drawn = charts_settled([shared, hand], *keys)
    assert set(drawn[0]) == set(keys)
    assert drawn[0] == drawn[1]


def test_an_assays_link_opens_the_same_view(server, fresh):
    hand = fresh()
    open_page(hand, server, "assays", "Assays")
    target = select_options(hand, "Target")[-1]
    select_option(hand, "Target", target)
    select_option(hand, "Trial", "2")
    top_k = hand.get_by_label("Top k")
    top_k.fill("5")
    top_k.press("Enter")
    _wait_idle(hand)
    shared = fresh()
    open_page(shared, server, f"assays?run={CHEM_RUN}&setting=sources-all&target={target}&trial=2&top_k=5", "Assays")
    assert not notices(shared)
    prefix = f"Top source assays for {target}"
    drawn = charts_settled([shared, hand], prefix)
    title = next(t for t in drawn[1] if t.startswith(prefix))
    assert drawn[0][title] == drawn[1][title]
    assert drawn[0][title][0]["y"].count(",") == 4  # five sources
    # the export of every target's top sources carries how far to trust them: the solve's status and gap, and the
    # share of the stored resamples that converged (the CSV lost the page's warnings)
    with hand.expect_download(timeout=60_000) as info:
        hand.get_by_role("button", name="Export top source assays of every target (CSV)").click()
    exported = pd.read_csv(info.value.path())
    assert {"mixmin_status", "mixmin_gap", "boot_converged"} <= set(exported.columns)
    assert (exported.groupby("target")["rank"].max() == 5).all()
    assert set(exported["mixmin_status"]) <= {"converged", "max_iter"} and exported["mixmin_gap"].ge(0).all()
    assert exported["boot_converged"].isna().all()  # this store's topk files record no share (older runs): blank


def test_runs_has_its_own_path_and_a_stale_run_link_gets_a_notice(server, fresh):
    page = fresh()
    open_page(page, server, "runs", "Runs")
    assert not has_dialog(page)
    stale = fresh()
    open_page(stale, server, "solver?run=deleted-run-0001&step_size=3", "Solver")
    assert not has_dialog(stale)
    assert any("run=deleted-run-0001" in n for n in notices(stale))
    assert stale.get_by_role("slider", name="Step size η").get_attribute("aria-valuetext") in ("3.0", "3")


def test_copy_link_shows_this_views_url(server, fresh):
    page = fresh()
    open_page(page, server, f"compare?run={CHEM_RUN}&setting=sources-10", "Compare")
    page.get_by_role("button", name="Copy link to this view").click()
    code = page.locator('[data-testid="stCode"]').first
    code.wait_for(timeout=10_000)
    link = code.inner_text()
    assert link.startswith(server + "/compare?") and "setting=sources-10" in link and f"run={CHEM_RUN}" in link


EVIL = "x` [Session expired: sign in](http://127.0.0.2:9/login) ![t](http://127.0.0.2:9/t.png) http://127.0.0.2:9/bare"
INJECTED_JS = """() => ({links: Array.from(document.querySelectorAll('a')).filter(a => a.href.includes('127.0.0.2')).length,
                       images: Array.from(document.querySelectorAll('img')).filter(i => i.src.includes('127.0.0.2')).length})"""


def test_text_from_a_link_or_a_form_cannot_become_a_link_or_an_image(server, fresh):
    """Notices and errors quote what a visitor typed; rendered as Markdown, a crafted value became a clickable
    'sign in' link to another site, or an image the browser fetched from it."""
    from urllib.parse import quote, urlparse

    page = fresh()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    open_page(page, server, f"solver?problem={quote(EVIL)}&step_size={quote(EVIL)}", "Solver")
    assert any("Session expired" in n for n in notices(page)), notices(page)
    assert page.evaluate(INJECTED_JS) == {"links": 0, "images": 0}
    page.goto(f"{server}/jobs")
    page.get_by_role("heading", name="Jobs", exact=True).first.wait_for(timeout=30_000)
    _wait_idle(page)
    page.get_by_role("textbox", name="Extra overrides (key=value per line)").fill(EVIL)
    page.get_by_role("button", name="Start job").click()
    page.locator('[data-testid="stAlertContainer"]').filter(has_text="key=value per line").first.wait_for(timeout=30_000)
    _wait_idle(page)
    alert = page.locator('[data-testid="stAlertContainer"]').filter(has_text="key=value per line").first.inner_text()
    assert "[Session expired: sign in](http://127.0.0.2:9/login)" in alert.replace("\u2060", "")  # shown as typed
    assert page.evaluate(INJECTED_JS) == {"links": 0, "images": 0}
    assert not [url for url in requests if urlparse(url).hostname == "127.0.0.2"]
