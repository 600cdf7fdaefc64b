"""Shared fixtures: isolated embedded databases and tiny MACE models built in the tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")


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
