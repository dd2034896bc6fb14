"""The Targets page in a real browser on a real chemistry run (``configs/chem_ci.yaml``, two targets):
clicking a point of the Pareto front picks its mixture, and the export panel's download is the
weighted training table. Screenshot: artifacts/screenshots/targets_front.png."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mixmin_core import ProxyOutputs
from mixmin_core.engine.export import training_mixture
from mixmin_core.runs import layout
from mixmin_core.runs.store import RunStore
from mixmin_core.solver.multi_target import common_sources, mixmin_multi
from pages.common import multi
from tests.app.browser import (
    CHROMIUM,
    charts,
    chromium,
    open_page,
    select_option,
    serve,
    wait_idle,
)
from tests.app.fixtures import ROOT, data_dir

SHOTS = ROOT / "artifacts" / "screenshots"
TARGETS = ("ATG_ERE_CIS_up", "ATG_ERa_TRANS_up")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
playwright_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def chem_home(tmp_path_factory) -> Path:
    """A store holding one real chem_ci run (about a minute on two busy cores)."""
    home = tmp_path_factory.mktemp("targets_browser") / "home"
    env = {**os.environ, "MIXMIN_HOME": str(home), "MIXMIN_DATA_DIR": str(data_dir())}
    subprocess.run([sys.executable, "-m", "jobs", "run", "configs/chem_ci.yaml", "--quiet"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    return home


@pytest.fixture(scope="module")
def server(chem_home):
    with serve(chem_home) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2400}, accept_downloads=True)
    yield context.new_page()
    context.close()


def joint_mixture(home: Path):
    """The joint (mean) mixture of the two targets, computed by the library from the run's files."""
    run_dir = RunStore(home).run_dir(RunStore(home).list_runs()[0]["run_id"])
    outputs = {t: ProxyOutputs.load(layout.outputs_path(run_dir, layout.Problem(t, 0, "sources-all"))) for t in TARGETS}
    return mixmin_multi(common_sources(outputs), mode="mean", **multi.solver_for(outputs.values()))


def picked_title(page, timeout: float = 30.0, other_than: str | None = None) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        title = next((t for t in charts(page) if "Picked mixture" in t), None)
        if title and title != other_than:
            return title
        page.wait_for_timeout(300)
    raise AssertionError(f"the picked mixture stayed {other_than!r}")


def front_points(page):
    """The drawn points of the front trace (the chart's first trace)."""
    plot = page.locator(".js-plotly-plot").filter(has=page.get_by_text("Pareto front: click")).first
    return plot.locator(".scatterlayer .trace").first.locator("path.point")


def click_front_point(page, index: int) -> None:
    """Click the ``index``-th point of the front, as a user does."""
    point = front_points(page).nth(index)
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_clicking_the_front_picks_its_mixture_and_the_table_downloads(server, chem_home, page):
    open_page(page, server, "targets", "Targets")
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "4 sources shared by every target" in page.locator('[data-testid="stAlertContainer"]').first.inner_text()
    assert front_points(page).count() == 11  # 11 mixtures from one target's optimum to the other's
    first = picked_title(page)
    assert "target weights 0.5 / 0.5" in first

    click_front_point(page, 0)
    second = picked_title(page, other_than=first)
    assert "target weights 1 / 0" in second
    wait_idle(page)
    assert "point=0" in page.url
    slider = page.get_by_role("slider", name="Target weights of the picked mixture")
    assert slider.get_attribute("aria-valuetext") == "1 / 0"
    weights_0 = next(v for k, v in charts(page).items() if "Picked mixture" in k)

    click_front_point(page, 8)  # the chart was redrawn with the new star: a second click works too
    third = picked_title(page, other_than=second)
    assert "target weights 0.2 / 0.8" in third
    wait_idle(page)
    assert next(v for k, v in charts(page).items() if "Picked mixture" in k) != weights_0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "targets_front.png"), full_page=True)

    # export the joint mixture as the chemistry training table: each assay's rows sum to its weight x rows
    select_option(page, "Format", "Chemistry training table (molecule, assay, label, weight)")
    assert "molecule,assay,label,weight" in page.locator('[data-testid="stCode"]').last.inner_text()
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="Download training_table.csv").click()
    table = pd.read_csv(io.StringIO(Path(info.value.path()).read_text()))
    joint = training_mixture(joint_mixture(chem_home))  # rounded as the final models train (and `jobs export` writes)
    expected = pd.Series(joint.weights.astype(float), index=joint.source_names)
    sums = table.groupby("assay")["weight"].sum() / len(table)  # sample weights of mean 1
    assert set(sums.index) == set(expected[expected > 0].index)
    pd.testing.assert_series_equal(sums.sort_index(), expected[sums.index].sort_index(), check_names=False, atol=2e-6)
    assert set(table["label"].unique()) <= {0, 1}
    assert not set(table["assay"]) & set(TARGETS)  # a target's own labels never train its mixture
