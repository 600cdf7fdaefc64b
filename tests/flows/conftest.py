"""Fixtures of the flow tests: a tiny random MACE saved once per test module; a tiny committee once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from electrodb.models.committee import CommitteeTraining
from tests.committee_factory import train_smoke_committee
from tests.model_factory import build_random_mace


@pytest.fixture(scope="module")
def model_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tests.model_factory.build_random_mace` (seed 0) in a folder of the requesting module's own."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    return build_random_mace(tmp_path_factory.mktemp(f"model-{module}") / "random.model")


@pytest.fixture(scope="session")
def smoke_committee(tmp_path_factory: pytest.TempPathFactory) -> CommitteeTraining:
    """Two tiny MACEs trained once per session (:func:`tests.committee_factory.train_smoke_committee`; the same
    folder as the model tests' fixture, so the session trains it once)."""
    return train_smoke_committee(tmp_path_factory.getbasetemp() / "smoke_committee")
