"""Fixtures of the API tests: one synthetic database per test module (:mod:`tests.api.sample_database`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.sample_database import build_database


@pytest.fixture(scope="module")
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The sample database in a folder of its own for each test module (``{"settings", "summaries", ...}``)."""
    return build_database(tmp_path_factory.mktemp(f"electrodb-{request.module.__name__.rsplit('.', 1)[-1]}"))
