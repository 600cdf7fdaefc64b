"""Campaigns with batched production (``md.batch``): settings, per-box stability, checkpoints and resume (CPU)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from electrodb.store.frames import load_trajectory
from electrodb.systems.campaign import Campaign, MDSettings, SizeSpec, StabilitySettings
from electrodb.utils.safe_yaml import SpecError

# The random test model has no bonds: let H approach other atoms more closely than in real water.
MD = {
    "timestep_fs": 0.5,
    "minimize_steps": 5,
    "nvt_warmup_ps": 0.005,
    "npt": False,
    "production_ps": 0.05,  # 100 steps
    "sample_every_steps": 10,  # 11 frames
    "checkpoint_every_steps": 20,  # at least 10 per run: every 10 steps
    "thermostat": "langevin",
    "friction_per_fs": 0.01,
    "nve_drift_steps": 0,
    "stability": StabilitySettings(min_distance_h_A=0.3),
}
N_FRAMES = 11


def _campaign(model: Path, batch: Any = 2, **md: Any) -> Campaign:
    return Campaign(
        name="batched-campaign",
        salts=["NaCl", "LiCl"],
        concentrations=[2.0],
        size=SizeSpec(n_waters=32),
        model=str(model),
        model_cutoff_A=4.0,
        md=MDSettings(**{**MD, "batch": batch, **md}),
    )


def _trajectory(stores: Any, tid: str) -> Any:
    return load_trajectory(tid, stores.trajectories, stores.data)


def test_batch_values_are_validated(tmp_path: Path) -> None:
    for bad in (0, -2, True, "two", 2.5, "1.5"):
        with pytest.raises(ValueError, match="md.batch must be auto, off or a whole number"):
            MDSettings(batch=bad, thermostat="langevin")
    assert MDSettings(batch=False).batch == "off"  # YAML reads a bare `off` as false
    assert MDSettings(batch=" Auto ").batch == "auto"
    assert MDSettings(batch=4, thermostat="langevin").batch == 4
    with pytest.raises(ValueError, match="Langevin only"):
        MDSettings(batch=4)  # the default thermostat is bussi
    spec = tmp_path / "c.yaml"
    spec.write_text("name: c\nsalts: [NaCl]\nconcentrations: [1.0]\nmodel: x\nmd: {batch: lots}\n")
    with pytest.raises(SpecError, match=r"md\.batch: md\.batch must be auto, off"):
        Campaign.from_yaml(spec)
    spec.write_text("name: c\nsalts: [NaCl]\nconcentrations: [1.0]\nmodel: x\nmd: {batch: off}\n")
    assert Campaign.from_yaml(spec).md.batch == "off"


def test_batch_is_not_part_of_the_system_id(random_mace: Path) -> None:
    ids = {tuple(s.system_id for s in _campaign(random_mace, batch=b).systems()) for b in ("off", "auto", 2, 7)}
    assert len(ids) == 1
    assert _campaign(random_mace, batch=3).campaign_id == _campaign(random_mace, batch="off").campaign_id


def test_resolve_batch() -> None:
    from electrodb.flows.batched_campaign import resolve_batch

    assert resolve_batch("off", "cuda") is None
    assert resolve_batch("auto", "cpu") is None
    assert resolve_batch("auto", "cuda") == "auto"
    assert resolve_batch(3, "cpu") == 3
    with pytest.raises(ValueError, match="md.batch must be"):
        resolve_batch(0)


@pytest.mark.parametrize("batch", ["off", "auto"])
def test_off_and_auto_on_cpu_keep_the_sequential_path(
    batch: str, random_mace: Path, stores: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import electrodb.flows.batched_campaign as bc

    calls: list[tuple] = []
    monkeypatch.setattr(bc, "run_campaign", lambda *a, **k: calls.append((a, k)) or "sequential")
    monkeypatch.setattr(bc, "batched_campaign_flow", lambda *a, **k: pytest.fail("the batched flow was built"))
    assert bc.run_campaign_batched(_campaign(random_mace, batch=batch), stores, device="cpu") == "sequential"
    assert len(calls) == 1


def test_explicit_batch_refuses_what_it_cannot_batch(random_mace: Path, stores: Any) -> None:
    from electrodb.flows.batched_campaign import run_campaign_batched

    campaign = _campaign(random_mace, batch="off", thermostat="bussi")
    with pytest.raises(ValueError, match="md.batch: 2 cannot be used: batched MD is Langevin only"):
        run_campaign_batched(campaign, stores, batch=2, device="cpu")


def test_batched_flow_groups_systems_of_one_model(random_mace: Path) -> None:
    from electrodb.flows.batched_campaign import batched_campaign_flow

    specs = Campaign(
        name="g", salts=["NaCl", "LiCl"], concentrations=[1.0, 2.0], size=SizeSpec(n_waters=32),
        model=str(random_mace), model_cutoff_A=4.0, md=MDSettings(**MD),
    ).systems()  # fmt: skip
    flow = batched_campaign_flow(specs, 3)
    prod = [j for j in flow.jobs if "electrodb_batch" in j.metadata]
    assert [len(j.metadata["electrodb_batch"]) for j in prod] == [3, 1]
    assert sorted(i for j in prod for i in j.metadata["electrodb_batch"]) == sorted(s.system_id for s in specs)
    assert len(flow.jobs) == 2 * len(specs) + 2


def _store_broken_box(stores: Any, spec: Any) -> None:
    """An 'equilibrated' box of ``spec`` with two O atoms fused: the batched production finds it unstable."""
    from electrodb.documents.system import SystemDocument
    from electrodb.flows.md import atoms_to_dict
    from electrodb.systems.boxes import pack_box

    atoms = pack_box(spec.counts).atoms
    oxygens = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "O")
    atoms.positions[oxygens[1]] = atoms.positions[oxygens[0]] + [0.05, 0.0, 0.0]
    doc = SystemDocument(
        system_id=spec.system_id,
        stage="equilibrated",
        salt=spec.salt,
        molality=spec.molality,
        temperature=spec.temperature,
        atoms=atoms_to_dict(atoms),
        density_kg_m3=spec.density_kg_m3,
        box_length_A=spec.box_length_A,
    )
    stores.systems.update([doc.model_dump(mode="json")], key="system_id")


def test_unstable_box_is_marked_and_the_other_completes(random_mace: Path, stores: Any) -> None:
    from electrodb.flows.batched_campaign import run_campaign_batched

    campaign = _campaign(random_mace)
    bad, good = campaign.systems()
    _store_broken_box(stores, bad)
    seen: list[str] = []
    summary = run_campaign_batched(campaign, stores, on_system=lambda k, n, s: seen.append(s.system_id))
    assert seen == [bad.system_id, good.system_id]
    assert summary.completed == [good.system_id] and summary.unstable == [bad.system_id]
    assert "apart" in summary.reasons[bad.system_id] or "force" in summary.reasons[bad.system_id]
    doc = stores.trajectories.query_one({"trajectory_id": bad.system_id})
    assert doc["status"] == "unstable" and doc["retried_with_half_timestep"] is True
    assert doc["last_good_frame"] is None and doc["n_frames"] == 0
    doc = stores.trajectories.query_one({"trajectory_id": good.system_id})
    assert doc["status"] == "completed" and doc["batched"] is True and doc["n_frames"] == N_FRAMES
    traj = _trajectory(stores, good.system_id)
    np.testing.assert_allclose(traj.times_ps, np.arange(N_FRAMES) * 0.005, atol=1e-12)
    assert np.isfinite(traj.positions).all()
    again = run_campaign_batched(campaign, stores)  # a rerun skips the completed system, keeps the unstable one
    assert again.skipped == [good.system_id] and again.unstable == [bad.system_id]


class _Killed(RuntimeError):
    pass


def _kill_after(monkeypatch: pytest.MonkeyPatch, n_checkpoints: int) -> list[tuple[str, int]]:
    """Make the n-th checkpoint of the run the last: it is saved, then the job dies (as a killed worker)."""
    import electrodb.flows.batched as batched

    real, saved = batched.save_checkpoint, []

    def save_then_die(stores: Any, tid: str, state: Any) -> None:
        real(stores, tid, state)
        saved.append((tid, state.step))
        if len(saved) == n_checkpoints:
            raise _Killed("killed after a checkpoint")

    monkeypatch.setattr(batched, "save_checkpoint", save_then_die)
    return saved


@pytest.mark.parametrize("n_checkpoints", [3, pytest.param(4, marks=pytest.mark.slow)])  # 4: ~25 s
def test_killed_batched_job_resumes_every_box(
    n_checkpoints: int, random_mace: Path, stores: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3: the boxes die at different steps (20 and 10); 4: both at step 20, so the noise generator is restored
    and the resumed run is the uninterrupted one."""
    from electrodb.flows.batched_campaign import run_campaign_batched

    campaign = _campaign(random_mace, checkpoint_every_steps=20)
    specs = campaign.systems()
    saved = _kill_after(monkeypatch, n_checkpoints)
    first = run_campaign_batched(campaign, stores)
    assert sorted(first.failed) == sorted(s.system_id for s in specs)
    assert "killed after a checkpoint" in first.reasons[specs[0].system_id]
    steps = {tid: step for tid, step in saved}
    assert sorted(steps.values()) == ([10, 20] if n_checkpoints == 3 else [20, 20])
    before = {}  # frames 0-2 of the boxes checkpointed at step 20 (the running document does not count them yet)
    for spec in specs:
        if steps[spec.system_id] == 20:
            meta = stores.trajectories.query_one({"trajectory_id": spec.system_id}) | {"n_frames": 3}
            before[spec.system_id] = load_trajectory(meta, stores.trajectories, stores.data).positions

    monkeypatch.undo()
    second = run_campaign_batched(campaign, stores)
    assert sorted(second.completed) == sorted(s.system_id for s in specs)
    for spec in specs:
        doc = stores.trajectories.query_one({"trajectory_id": spec.system_id})
        assert doc["n_frames"] == N_FRAMES and doc["status"] == "completed"
        traj = _trajectory(stores, spec.system_id)  # chunks tile frames 0..10 exactly: no gap, no duplicate
        np.testing.assert_allclose(traj.times_ps, np.arange(N_FRAMES) * 0.005, atol=1e-12)
        chunks = stores.data.query({"trajectory_id": spec.system_id, "kind": "trajectory_chunk"})
        starts = sorted((c["frame_start"], c["n_frames"]) for c in chunks)
        assert sum(n for _, n in starts) == N_FRAMES
        assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(starts))
        if spec.system_id in before:  # the frames written before the kill are kept as they were
            np.testing.assert_array_equal(traj.positions[:3], before[spec.system_id])
        # the resumed frames continue the stored ones: no jump at the resume point
        assert np.linalg.norm(np.diff(traj.positions, axis=0), axis=-1).max() < 1.0

    if n_checkpoints == 4:  # same boxes, same checkpoint: the uninterrupted run, up to float32 round-off
        from electrodb.settings import ElectroDBSettings
        from electrodb.store.stores import get_stores

        other = ElectroDBSettings(data_dir=str(Path(stores.settings.data_dir).parent / "reference"))
        with get_stores(other) as ref:
            assert sorted(run_campaign_batched(campaign, ref).completed) == sorted(s.system_id for s in specs)
            for spec in specs:
                np.testing.assert_allclose(
                    _trajectory(stores, spec.system_id).positions,
                    _trajectory(ref, spec.system_id).positions,
                    atol=2e-3,
                )


def test_batched_segments_extend_only_unconverged_boxes(random_mace: Path, stores: Any, monkeypatch) -> None:
    """until with md.batch: each round extends only the boxes whose check asked for more, in one batch."""
    from electrodb.flows import segments
    from electrodb.flows.batched_campaign import run_campaign_batched
    from electrodb.flows.segments import PropertyState
    from electrodb.systems.budget import Budget

    campaign = _campaign(random_mace).model_copy(
        update={"until": ["D_water"], "budget": Budget(segment_ps=0.05, max_production_ps=0.15)}
    )
    nacl, licl = campaign.systems()
    judged: list[tuple[str, int]] = []

    def judge(meta: dict, stores: Any, settings: Any = None) -> dict:
        judged.append((meta["trajectory_id"], meta["n_frames"]))
        done = meta["trajectory_id"] == nacl.system_id  # NaCl converges after its first segment; LiCl never
        return {"D_water": PropertyState(status="converged" if done else "unconverged", needs_ps=None)}

    monkeypatch.setattr(segments, "judge_trajectory", judge)
    summary = run_campaign_batched(campaign, stores, batch=2, device="cpu")
    assert sorted(summary.completed) == sorted([nacl.system_id, licl.system_id])
    assert judged[:2] == [(nacl.system_id, N_FRAMES), (licl.system_id, N_FRAMES)]  # one batch, both judged
    assert [n for tid, n in judged[2:]] == [21, 31] and {tid for tid, _ in judged[2:]} == {licl.system_id}
    assert stores.trajectories.query_one({"trajectory_id": nacl.system_id})["n_frames"] == N_FRAMES
    doc = stores.trajectories.query_one({"trajectory_id": licl.system_id})
    assert doc["convergence"]["decision"] == "budget" and doc["batched"] is True
    traj = _trajectory(stores, licl.system_id)
    np.testing.assert_allclose(traj.times_ps, np.arange(31) * 0.005, atol=1e-9)  # no gap, no duplicate
    assert np.linalg.norm(np.diff(traj.positions, axis=0), axis=2).max() < 1.0
