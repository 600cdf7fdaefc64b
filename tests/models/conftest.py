"""Fixtures of the model tests: the tiny MACE trained on Lennard-Jones labels, once per session."""

from __future__ import annotations

import pytest

from electrodb.models.mace_train import TrainingResult
from tests.model_factory import train_smoke_model


@pytest.fixture(scope="session")
def smoke_model(tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    """A tiny H/O/Na/Cl MACE trained once per session (:func:`tests.model_factory.train_smoke_model`)."""
    return train_smoke_model(tmp_path_factory.getbasetemp() / "smoke_mace")
