"""Registering committees: calibration, members and data stored before the committee, lineage, look-up, the Maker."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from jobflow import run_locally

from electrodb.documents.committee import CommitteeDocument
from electrodb.flows.committee import (
    CommitteeMaker,
    committee_data_uuid,
    load_committee_data,
    materialize_committee,
    parse_driver,
    prediction_errors,
    resolve_committee,
    store_committee,
)
from electrodb.flows.training import LabelledDataset, encode_configurations
from electrodb.models.committee import CommitteeTraining
from electrodb.models.files import ModelError, file_sha256
from tests.committee_factory import smoke_committee_settings, smoke_labels


def test_store_committee_registers_members_data_and_calibration(
    stores, smoke_committee: CommitteeTraining, tmp_path: Path
) -> None:
    doc = store_committee(stores, smoke_committee, "smoke")
    assert doc.member_ids == smoke_committee.model_ids and doc.k == 2 and doc.driver == 0
    assert doc.refine_round == 0 and doc.parent_id is None and doc.superseded_by is None
    assert set(doc.elements) == {"H", "O", "Na", "Cl"} and doc.r_max == pytest.approx(3.5)
    assert doc.threshold_eV_per_A > 0 and math.isfinite(doc.threshold_eV_per_A)
    cal = doc.calibration
    assert cal["n_configurations"] == len(smoke_committee.splits.calibration) >= 5
    assert cal["spearman"] == cal["spearman_atom"] and cal["target_error_eV_per_A"] == 0.5
    assert doc.held_out["driver_calibration"]["rmse_forces_eV_per_A"] > 0
    assert [m["model_id"] for m in doc.held_out["members"]] == doc.member_ids
    for i, mid in enumerate(doc.member_ids):  # every member is a stored model of its own
        model = stores.models.query_one({"model_id": mid})
        assert model["name"] == f"smoke-m{i}" and model["dataset"]["committee"] == "smoke"
    stored = stores.committees.query_one({"committee_id": doc.committee_id})
    assert stored["name"] == "smoke" and stored["lineage"] == "smoke"
    assert len(load_committee_data(stores, doc)) == smoke_committee.n_configurations
    assert stores.data.query_one({"blob_uuid": committee_data_uuid(doc.committee_id)})["kind"] == "committee_data"

    assert resolve_committee(stores, "smoke").committee_id == doc.committee_id
    assert resolve_committee(stores, doc.committee_id).name == "smoke"
    paths = materialize_committee(stores, doc, tmp_path / "members")
    assert [file_sha256(p) for p in paths] == doc.member_ids
    assert store_committee(stores, smoke_committee, "smoke").committee_id == doc.committee_id  # idempotent
    assert stores.committees.count({}) == 1


def test_unknown_committee_lists_the_known_names(stores, smoke_committee: CommitteeTraining) -> None:
    with pytest.raises(ModelError, match=r"no committee 'nope' .* none yet"):
        resolve_committee(stores, "nope")
    store_committee(stores, smoke_committee, "smoke")
    with pytest.raises(ModelError, match=r"^no committee 'nope' in this database; known committees: smoke$"):
        resolve_committee(stores, "nope")


def test_a_refined_child_supersedes_its_parent(stores, smoke_committee: CommitteeTraining) -> None:
    parent = store_committee(stores, smoke_committee, "smoke")
    with pytest.raises(ValueError, match="same members and driver as its parent 'smoke'"):
        store_committee(stores, smoke_committee, "smoke-r1", parent=parent)  # nothing was fine-tuned
    assert stores.committees.count({}) == 1 and resolve_committee(stores, "smoke").superseded_by is None
    # same members with the other driver: a different committee id, standing in for a refined one
    child = store_committee(
        stores, smoke_committee, "smoke-r1", driver=1, parent=parent, added=smoke_labels(2), refine={"round": 1}
    )
    assert child.parent_id == parent.committee_id and child.refine_round == 1
    assert child.added_configurations == 2 and child.added_sha256.startswith("sha256:")
    assert stores.committees.query_one({"committee_id": parent.committee_id})["superseded_by"] == child.committee_id
    assert stores.committees.query_one({"committee_id": child.committee_id})["lineage"] == "smoke"
    assert resolve_committee(stores, "smoke").committee_id == child.committee_id  # the lineage's current one
    assert resolve_committee(stores, "smoke-r1").committee_id == child.committee_id
    assert resolve_committee(stores, parent.committee_id).superseded_by == child.committee_id  # still queryable
    mean = store_committee(stores, smoke_committee, "smoke-mean", driver="mean")
    assert mean.driver == "mean" and mean.driver_id == smoke_committee.model_ids[0]


@pytest.mark.parametrize("where", ["calibrate_threshold", "store_model"])
def test_failure_registers_no_committee_and_keeps_the_parent_current(
    stores, smoke_committee: CommitteeTraining, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    parent = store_committee(stores, smoke_committee, "smoke")

    def broken(*args, **kwargs):
        raise ValueError("broken on purpose")

    monkeypatch.setattr(f"electrodb.flows.committee.{where}", broken)
    with pytest.raises(ValueError, match="broken on purpose"):
        store_committee(stores, smoke_committee, "smoke-r1", driver=1, parent=parent)
    assert stores.committees.count({}) == 1
    assert stores.committees.query_one({"committee_id": parent.committee_id}).get("superseded_by") is None
    assert resolve_committee(stores, "smoke").committee_id == parent.committee_id


def test_parse_driver_and_prediction_errors() -> None:
    assert parse_driver("mean", 2) == "mean" and parse_driver("1", 2) == 1
    with pytest.raises(ValueError, match=r"0\.\.1"):
        parse_driver("2", 2)
    configs = smoke_labels(2)
    exact = prediction_errors(
        np.array([a.info["REF_energy"] for a in configs]), [a.arrays["REF_forces"] for a in configs], configs
    )
    assert exact["rmse_forces_eV_per_A"] == 0 and exact["rmse_energy_meV_per_atom"] == 0
    shifted = prediction_errors(
        np.array([a.info["REF_energy"] + 1.4 for a in configs]),
        [a.arrays["REF_forces"] + 0.1 for a in configs],
        configs,
    )
    assert shifted["rmse_forces_eV_per_A"] == pytest.approx(0.1) and shifted[
        "rmse_energy_meV_per_atom"
    ] == pytest.approx(100.0)


def test_committee_maker_trains_and_registers_through_the_job_store(
    stores, smoke_committee: CommitteeTraining, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {}

    def cached(configurations, settings, workdir):  # the session's committee stands in for the training
        seen.update(n=len(configurations), k=settings.k)
        return smoke_committee

    monkeypatch.setattr("electrodb.flows.committee.train_committee", cached)
    configs = smoke_labels(6)
    dataset = LabelledDataset(
        n_configurations=6, n_skipped=0, labeller={}, sampling={}, extxyz_zb64=encode_configurations(configs),
        wall_time_s=0.0,
    )  # fmt: skip
    maker = CommitteeMaker(settings=smoke_committee_settings(k=2), committee_name="made", driver="mean")
    job = maker.make(dataset)
    assert job.name == "train committee"
    responses = run_locally(job, store=stores.job_store(), create_folders=False, log=False, ensure_success=True)
    out = responses[job.uuid][1].output
    assert seen == {"n": 6, "k": 2}
    doc = CommitteeDocument(**{k: v for k, v in out.items() if k != "blob_uuid"})
    assert doc.name == "made" and doc.driver == "mean"
    assert resolve_committee(stores, "made").committee_id == doc.committee_id
    assert stores.models.count({"model_id": {"$in": doc.member_ids}}) == 2
