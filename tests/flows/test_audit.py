"""Committee audits of stored trajectories: σ_F per audited frame, the verdict, incremental re-audits, refusals,
the audit job in a system's flow, and the verdict reaching the summary."""

from __future__ import annotations

import numpy as np
import pytest

from electrodb.documents.committee import audit_id
from electrodb.flows import audit as audit_module
from electrodb.flows.audit import AuditMaker, audit_stride, audit_trajectories, audit_trajectory
from electrodb.flows.committee import materialize_committee, store_committee
from electrodb.models.files import ModelError
from electrodb.store.frames import TrajectoryWriter
from electrodb.systems.committee import AuditSettings
from tests.committee_factory import train_smoke_committee
from tests.synthetic import write_brownian_trajectory


@pytest.fixture(scope="module")
def smoke_committee(tmp_path_factory):
    """Two tiny MACEs, shared with the other committee tests through the session's folder."""
    return train_smoke_committee(tmp_path_factory.getbasetemp() / "smoke_committee")


@pytest.fixture
def committee(stores, smoke_committee):
    return store_committee(stores, smoke_committee, "smoke")


def _run(stores, model_id: str, n_frames: int = 40, seed: int = 0):
    """A small NaCl box (16 waters, one ion pair) random-walking for ``n_frames`` frames, run by ``model_id``."""
    return write_brownian_trajectory(
        stores, molality=3.5, n_waters=16, n_frames=n_frames, frame_ps=0.1, model_id=model_id, seed=seed
    )


def test_stride_keeps_every_nth_frame_up_to_the_cap() -> None:
    settings = AuditSettings(committee="c", every_frames=10, max_frames=50)
    assert audit_stride(100, settings) == 10 and audit_stride(1000, settings) == 20


def test_audit_records_sigma_per_frame_and_a_verdict(stores, committee) -> None:
    run = _run(stores, committee.driver_id)
    settings = AuditSettings(committee="smoke", every_frames=4, min_frames=5)
    doc = audit_trajectory(stores, run.trajectory_id, committee, materialize_committee(stores, committee), settings)
    assert doc.frames == list(range(0, 40, 4)) and doc.n_frames_audited == 10 and doc.k == committee.k
    for series in (doc.sigma_F_max, doc.sigma_F_mean, doc.sigma_F_p95, doc.sigma_E_meV_per_atom):
        assert len(series) == 10 and all(np.isfinite(series))
    assert all(m >= p >= 0 for m, p in zip(doc.sigma_F_max, doc.sigma_F_p95, strict=True))
    assert np.allclose(doc.times_ps, 0.1 * np.arange(0, 40, 4))
    assert doc.verdict["status"] in ("trusted", "extrapolating")
    assert doc.worst and doc.worst[0].sigma_F_max == pytest.approx(max(doc.sigma_F_max))
    assert doc.worst[0].frame in doc.frames
    stored = stores.audits.query_one({"audit_id": audit_id(run.trajectory_id, committee.committee_id)})
    assert stored["n_flagged"] == doc.n_flagged


def test_verdict_follows_the_threshold(stores, committee) -> None:
    run = _run(stores, committee.driver_id)
    paths = materialize_committee(stores, committee)
    settings = AuditSettings(committee="smoke", every_frames=4, min_frames=5)
    low = committee.model_copy(update={"threshold_eV_per_A": 1e-9})
    doc = audit_trajectory(stores, run.trajectory_id, low, paths, settings, force=True)
    assert doc.verdict["status"] == "extrapolating" and doc.frac_flagged == 1.0
    assert "10 of 10" in doc.verdict["reason"]
    high = committee.model_copy(update={"threshold_eV_per_A": 1e9})
    assert audit_trajectory(stores, run.trajectory_id, high, paths, settings, force=True).verdict["status"] == "trusted"
    few = AuditSettings(committee="smoke", every_frames=20, min_frames=5)
    assert audit_trajectory(stores, run.trajectory_id, high, paths, few, force=True).verdict["status"] == (
        "insufficient"
    )


def test_a_grown_trajectory_gets_only_its_new_frames_evaluated(stores, committee, monkeypatch) -> None:
    run = _run(stores, committee.driver_id)
    paths = materialize_committee(stores, committee)
    settings = AuditSettings(committee="smoke", every_frames=4, min_frames=5)
    first = audit_trajectory(stores, run.trajectory_id, committee, paths, settings)
    evaluated: list[int] = []
    real = audit_module.evaluate_members

    def counting(members, frames, *args, **kwargs):
        evaluated.append(len(frames))
        return real(members, frames, *args, **kwargs)

    monkeypatch.setattr(audit_module, "evaluate_members", counting)
    assert audit_trajectory(stores, run.trajectory_id, committee, paths, settings).frames == first.frames
    assert evaluated == []  # unchanged: nothing evaluated again
    meta = stores.trajectories.query_one({"trajectory_id": run.trajectory_id})
    writer = TrajectoryWriter(
        stores.data, run.trajectory_id, meta["n_atoms"], chunk_frames=40, start_frame=40, start_chunk=meta["n_chunks"]
    )
    positions = np.asarray(run_positions(stores, run.trajectory_id))
    for f in range(20):
        writer.append(positions + 0.01 * f, np.eye(3) * meta["box_length_A"], 4.0 + 0.1 * f, 0.0, 298.15)
    writer.flush()
    meta.pop("_id", None)
    stores.trajectories.update([{**meta, "n_frames": 60, "n_chunks": writer.n_chunks}], key="trajectory_id")
    grown = audit_trajectory(stores, run.trajectory_id, committee, paths, settings)
    assert sum(evaluated) == 5 and grown.frames == list(range(0, 60, 4))
    assert grown.sigma_F_max[:10] == first.sigma_F_max


def run_positions(stores, trajectory_id: str) -> np.ndarray:
    from electrodb.store.frames import load_trajectory

    traj = load_trajectory(trajectory_id, stores.trajectories, stores.data, fields=("positions",))
    return traj.positions[-1]


def test_runs_of_other_models_are_refused_with_the_fix(stores, committee) -> None:
    run = _run(stores, "sha256:" + "0" * 64, seed=3)
    settings = AuditSettings(committee="smoke")
    with pytest.raises(ModelError, match="not a member of committee 'smoke'"):
        audit_trajectory(stores, run.trajectory_id, committee, materialize_committee(stores, committee), settings)
    out = audit_trajectories(stores, "smoke", settings, [run.trajectory_id])
    assert "not a member" in out[run.trajectory_id]


def test_the_audit_job_follows_production_in_a_system_flow(committee) -> None:
    from electrodb.flows.system import ElectrolyteFlowMaker
    from tests.campaigns import small_campaign

    spec = small_campaign("model.model").systems(model_id=committee.driver_id)[0]
    plain = ElectrolyteFlowMaker().make(spec)
    audited = ElectrolyteFlowMaker(audit_maker=AuditMaker(settings=AuditSettings(committee="smoke"))).make(spec)
    assert len(audited.jobs) == len(plain.jobs) + 1 and audited.jobs[-1].name.startswith("committee audit")


def test_the_verdict_reaches_the_summary(stores, committee) -> None:
    from electrodb.builders.run import make_builders, run_builder

    run = _run(stores, committee.driver_id)
    low = committee.model_copy(update={"threshold_eV_per_A": 1e-9})
    settings = AuditSettings(committee="smoke", every_frames=4, min_frames=5)
    audit_trajectory(stores, run.trajectory_id, low, materialize_committee(stores, committee), settings)
    for builder in make_builders(stores).values():
        run_builder(builder)
    summary = stores.electrolytes.query_one({"trajectory_ids": run.trajectory_id})
    assert summary["model_trust"] == "extrapolating" and summary["committee_name"] == "smoke"
    assert summary["frac_flagged"] == 1.0 and summary["n_frames_audited"] == 10 and summary["refine_round"] == 0
    assert (
        summary["provenance"]["committee_id"] == committee.committee_id and summary["provenance"]["refine_round"] == 0
    )


def test_a_campaign_on_committee_name_runs_the_current_driver_and_is_audited(stores, committee, smoke_committee):
    from electrodb.flows.audit import committee_campaign
    from electrodb.flows.committee import calibrate_committee, register_committee
    from electrodb.models.files import file_sha256
    from tests.campaigns import small_campaign

    campaign = committee_campaign(small_campaign("committee:smoke"), stores)
    assert file_sha256(campaign.model) == committee.driver_id and campaign.audit.committee == "smoke"
    assert committee_campaign(small_campaign("other.model"), stores).audit is None  # unchanged
    with pytest.raises(ModelError, match="no committee 'nonesuch'"):
        committee_campaign(small_campaign("committee:nonesuch"), stores)
    # a refined committee (here: the same members, the other one driving) takes over the name's lineage
    swapped = smoke_committee.model_copy(update={"members": smoke_committee.members[::-1]})
    child = register_committee(stores, swapped, "smoke-r1", calibrate_committee(swapped), parent=committee)
    rerun = committee_campaign(small_campaign("committee:smoke"), stores)
    assert file_sha256(rerun.model) == child.driver_id != committee.driver_id


def test_a_recalibrated_committee_rejudges_stored_frames_without_evaluating_them(stores, committee, monkeypatch):
    run = _run(stores, committee.driver_id)
    paths = materialize_committee(stores, committee)
    settings = AuditSettings(committee="smoke", every_frames=4, min_frames=5)
    first = audit_trajectory(
        stores, run.trajectory_id, committee.model_copy(update={"threshold_eV_per_A": 1e9}), paths, settings
    )
    assert first.verdict["status"] == "trusted"
    monkeypatch.setattr(audit_module, "evaluate_members", lambda *a, **k: pytest.fail("evaluated again"))
    low = committee.model_copy(update={"threshold_eV_per_A": 1e-9})
    again = audit_trajectory(stores, run.trajectory_id, low, paths, settings)
    assert again.verdict["status"] == "extrapolating" and again.sigma_F_max == first.sigma_F_max
