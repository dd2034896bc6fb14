"""App test fixtures: one fixture run store built per session, copied into each test's MIXMIN_HOME."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.fixtures import ROOT, build_home


@pytest.fixture(scope="session")
def template_home(tmp_path_factory) -> Path:
    return build_home(tmp_path_factory.mktemp("template_home"))


@pytest.fixture
def home(template_home, tmp_path, monkeypatch) -> Path:
    """A private copy of the fixture store (synthetic demo run + chemistry-like run) as MIXMIN_HOME."""
    path = tmp_path / "home"
    shutil.copytree(template_home, path)
    monkeypatch.setenv("MIXMIN_HOME", str(path))
    monkeypatch.chdir(ROOT)
    return path


@pytest.fixture
def empty_home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "empty_home"
    monkeypatch.setenv("MIXMIN_HOME", str(path))
    monkeypatch.chdir(ROOT)
    return path


def open_app(page: str | None = None) -> AppTest:
    """Run app.py (and switch to ``pages/<page>.py``), failing on any uncaught exception."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(element) -> str:
    """An element's Markdown as the reader sees it: pages escape the text of errors (see pages.common.state.plain)."""
    return re.sub(r"\\(.)", r"\1", element.value)
