"""Shared fixtures: isolated embedded databases, tiny MACE models built in the tests, an API test client."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
# The suite's output does not depend on the terminal that runs it. A COLUMNS exported by the caller (60 in a narrow
# terminal) would fix the width of the CLI's console when it is imported (electrodb.cli.common) and of every worker
# process a test starts, and rich would cut the tables that tests read. Without it the CLI writes 160 columns to a
# pipe (electrodb.cli.reporting); a test of a narrow width sets COLUMNS for the process it starts.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings pointing at a fresh embedded database; also the process-wide settings during the test."""
    from electrodb.settings import ElectroDBSettings, get_settings

    monkeypatch.setenv("ELECTRODB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ELECTRODB_DB_URI", raising=False)
    monkeypatch.delenv("ELECTRODB_CONFIG", raising=False)
    get_settings.cache_clear()
    yield ElectroDBSettings()
    get_settings.cache_clear()


@pytest.fixture
def stores(settings):
    from electrodb.store.stores import get_stores

    with get_stores(settings) as s:
        yield s


@pytest.fixture(scope="session")
def random_mace(tmp_path_factory) -> Path:
    """A randomly initialised tiny MACE (H, Li, O, Na, Cl) with ZBL repulsion: stable, cheap, no training."""
    from tests.model_factory import build_random_mace

    return build_random_mace(tmp_path_factory.mktemp("models") / "random-tiny.model")


@pytest.fixture(scope="module")
def http(db: dict[str, Any]) -> Any:
    """A FastAPI TestClient of the API serving the ``db`` fixture's database (``db["settings"]``), one per module.

    ``db`` is the requesting folder's or module's own (tests/api/conftest.py, tests/io/test_trajectories_out.py).
    """
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    with TestClient(create_app(db["settings"])) as c:
        yield c
