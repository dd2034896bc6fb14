"""Shared test setup: real data from ../shared/data, a fresh run store per test."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MIXMIN_DATA_DIR", str((ROOT.parent / "shared" / "data").resolve()))
os.environ.setdefault("MIXMIN_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """Every test gets its own MIXMIN_HOME so runs never leak between tests or into ./data."""
    monkeypatch.setenv("MIXMIN_HOME", str(tmp_path / "mixmin_home"))
    monkeypatch.setenv("MIXMIN_CACHE", str(tmp_path / "cache"))
    yield
    runner = sys.modules.get("mixmin_core.runs.runner")
    if runner is not None:  # a test that ran units itself leaves no worker processes behind
        runner.close_pools()


@pytest.fixture
def data_dir() -> Path:
    return Path(os.environ["MIXMIN_DATA_DIR"])
