"""Fixtures of the flow tests: a tiny random MACE saved once per test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.model_factory import build_random_mace


@pytest.fixture(scope="module")
def model_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tests.model_factory.build_random_mace` (seed 0) in a folder of the requesting module's own."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    return build_random_mace(tmp_path_factory.mktemp(f"model-{module}") / "random.model")
