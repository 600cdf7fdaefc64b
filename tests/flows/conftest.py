"""Fixtures of the flow tests: a tiny random MACE saved once per test module; a tiny committee once per session, and
that committee registered with an audited trajectory per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from electrodb.documents.committee import CommitteeDocument
from electrodb.flows.committee import store_committee
from electrodb.models.committee import CommitteeTraining
from tests.committee_factory import audit_displaced_boxes, train_smoke_committee
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


#: Frames of the trajectory the ``audited`` fixture stores (the first half agreed, the rest audited for real).
AUDITED_FRAMES = 12


@pytest.fixture
def audited(stores, smoke_committee: CommitteeTraining) -> CommitteeDocument:
    """The session committee registered as ``smoke``, and a trajectory of displaced smoke boxes it audited
    (:func:`tests.committee_factory.audit_displaced_boxes`, stored as ``traj-smoke``)."""
    committee = store_committee(stores, smoke_committee, "smoke")
    audit_displaced_boxes(stores, committee, smoke_committee, AUDITED_FRAMES)
    return committee
