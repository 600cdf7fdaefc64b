"""Fixtures of the model tests: the tiny MACE trained on Lennard-Jones labels, once per session."""

from __future__ import annotations

import pytest

from electrodb.models.committee import CommitteeTraining
from electrodb.models.mace_train import TrainingResult
from tests.committee_factory import train_smoke_committee
from tests.model_factory import train_smoke_model


@pytest.fixture(scope="session")
def smoke_model(tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    """A tiny H/O/Na/Cl MACE trained once per session (:func:`tests.model_factory.train_smoke_model`)."""
    return train_smoke_model(tmp_path_factory.getbasetemp() / "smoke_mace")


@pytest.fixture(scope="session")
def smoke_committee(tmp_path_factory: pytest.TempPathFactory) -> CommitteeTraining:
    """A committee of two tiny MACEs trained once per session (:func:`tests.committee_factory.train_smoke_committee`);
    the flow and CLI tests share its folder, so it is trained once for all of them."""
    return train_smoke_committee(tmp_path_factory.getbasetemp() / "smoke_committee")
