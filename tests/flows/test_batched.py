"""Tests of electrodb.flows.batched: batched torch-sim NVT of boxes of different sizes (CPU, seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
import torch
from maggma.stores import MemoryStore

from electrodb.flows.batched import (
    BatchedProductionMaker,
    BatchedRunResult,
    run_batched_nvt,
    should_batch,
)
from electrodb.store.frames import TrajectoryWriter, load_trajectory
from electrodb.systems.boxes import box_counts, pack_box
from electrodb.systems.campaign import Campaign, MDSettings, SizeSpec, StabilitySettings
from tests.model_factory import build_toy_nequip
from tests.synthetic import trajectory_meta

# The random test model has no bonds: let H approach other atoms more closely than in real water.
STABILITY = StabilitySettings(min_distance_h_A=0.3)
TIMESTEP_FS, N_STEPS, SAMPLE_EVERY = 0.5, 100, 10
BOXES = (("NaCl", 16), ("LiCl", 24))  # 2 mol/kg: 50 and 74 atoms, box lengths 8.0 and 9.1 Å


@pytest.fixture(scope="module")
def boxes() -> list[Atoms]:
    return [pack_box(box_counts(salt, 2.0, "mol/kg", 300.0, n_waters=n)).atoms for salt, n in BOXES]


def _run(
    systems: list[Atoms], model_path: Path, temperatures: list[float]
) -> tuple[BatchedRunResult, list, MemoryStore]:
    store = MemoryStore()
    store.connect()
    writers = [TrajectoryWriter(store, f"traj-{k}", len(a), chunk_frames=4) for k, a in enumerate(systems)]
    result = run_batched_nvt(
        systems,
        torch.load(model_path, weights_only=False),
        temperatures,
        TIMESTEP_FS,
        N_STEPS,
        SAMPLE_EVERY,
        writers,
        friction_per_fs=0.01,
        seed=7,
        device="cpu",
        monitor=STABILITY,
    )
    return result, writers, store


def test_should_batch_only_on_cuda() -> None:
    assert should_batch("cpu") is False
    assert should_batch("cuda") is True
    assert should_batch("cuda:0") is True
    assert should_batch("auto") is torch.cuda.is_available()


@pytest.fixture(scope="module")
def batched_run(boxes: list[Atoms], model_path: Path) -> tuple[list[Atoms], BatchedRunResult, list, MemoryStore]:
    """One batched run of three systems: a broken copy of the NaCl box, the NaCl box, the shifted LiCl box."""
    broken = boxes[0].copy()
    oxygens = np.flatnonzero(np.array(broken.get_chemical_symbols()) == "O")
    broken.positions[oxygens[1]] = broken.positions[oxygens[0]] + [0.05, 0.0, 0.0]  # two O atoms fused
    shifted = boxes[1].copy()
    # Shifted by half a cell and not wrapped: torch-sim wraps every step, so only image tracking keeps the
    # stored positions continuous with (and partly outside) the cell.
    shifted.positions -= 0.5 * shifted.cell.lengths()
    systems = [broken, boxes[0].copy(), shifted]
    result, writers, store = _run(systems, model_path, [300.0, 300.0, 350.0])
    return systems, result, writers, store


def test_batched_trajectories_load_back_unwrapped(batched_run: tuple) -> None:
    systems, result, writers, store = batched_run
    assert result.device == "cpu"
    n_frames = N_STEPS // SAMPLE_EVERY + 1
    frame_ps = SAMPLE_EVERY * TIMESTEP_FS / 1000.0
    for k in (1, 2):
        atoms, writer, outcome = systems[k], writers[k], result.outcomes[k]
        assert outcome.status == "completed" and outcome.n_frames == n_frames
        assert outcome.last_good_frame == n_frames - 1 and outcome.n_steps == N_STEPS
        traj = load_trajectory(trajectory_meta(writer, atoms), MemoryStore(), store)
        assert traj.positions.shape == (n_frames, len(atoms), 3)
        assert traj.cells.shape == (n_frames, 3, 3)
        np.testing.assert_allclose(traj.cells, np.broadcast_to(atoms.cell.array, traj.cells.shape), atol=1e-4)
        np.testing.assert_allclose(traj.times_ps, np.arange(n_frames) * frame_ps, rtol=0, atol=1e-12)
        assert np.isfinite(traj.temperature_K).all() and np.isfinite(traj.potential_energy_eV).all()
        assert (traj.temperature_K > 50).all() and (traj.temperature_K < 1000).all()
        # frame 0 is the start as given (unwrapped); later frames move continuously (no jump of a box length)
        np.testing.assert_allclose(traj.positions[0], atoms.positions, atol=1e-4)
        assert np.linalg.norm(np.diff(traj.positions, axis=0), axis=-1).max() < 1.0
    last = load_trajectory(trajectory_meta(writers[2], systems[2]), MemoryStore(), store).positions[-1]
    assert (last < -0.5).any()  # still outside the cell: not wrapped back
    # each system stays near its own target temperature (300 K and 350 K; 50-74 atoms fluctuate by ~10 %)
    for outcome, target in zip(result.outcomes[1:], (300.0, 350.0), strict=True):
        assert abs(outcome.mean_temperature_K / target - 1) < 0.3


def test_failing_system_is_marked_and_others_continue(batched_run: tuple) -> None:
    systems, result, writers, store = batched_run
    bad = result.outcomes[0]
    assert bad.status == "unstable" and bad.failed_step == 0
    assert bad.n_frames == 0 and bad.last_good_frame is None
    assert "apart" in (bad.reason or "") or "force" in (bad.reason or "")
    assert [o.status for o in result.outcomes[1:]] == ["completed", "completed"]
    assert result.n_unstable == 1
    # the broken system was dropped from the batch at step 0: only the other two were integrated
    assert result.atom_steps == N_STEPS * (len(systems[1]) + len(systems[2]))
    assert store.count({"trajectory_id": writers[0].trajectory_id}) == 0


def test_batched_production_maker_writes_documents(stores, model_path: Path) -> None:
    from jobflow import run_locally

    from electrodb.documents.system import SystemDocument
    from electrodb.flows.md import atoms_to_dict

    md = MDSettings(
        production_ps=0.02,
        timestep_fs=0.5,
        sample_every_steps=10,
        stability=STABILITY,
        thermostat="langevin",
        nve_drift_steps=0,
    )
    campaign = Campaign(
        name="batched-test",
        salts=["NaCl", "LiCl"],
        concentrations=[2.0],
        size=SizeSpec(n_waters=16),
        model=str(model_path),
        model_cutoff_A=4.0,
        md=md,
    )
    specs = campaign.systems()
    systems = []
    for k, spec in enumerate(specs):
        atoms = pack_box(spec.counts).atoms
        if k == 0:  # fuse two O atoms: unstable at once, also in the half-time-step retry
            oxygens = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "O")
            atoms.positions[oxygens[1]] = atoms.positions[oxygens[0]] + [0.05, 0.0, 0.0]
        systems.append(
            SystemDocument(
                system_id=spec.system_id,
                stage="packed",
                salt=spec.salt,
                molality=spec.molality,
                temperature=spec.temperature,
                atoms=atoms_to_dict(atoms),
                density_kg_m3=spec.density_kg_m3,
                box_length_A=spec.box_length_A,
            )
        )
    job = BatchedProductionMaker(device="cpu").make(specs, systems)
    responses = run_locally(job, store=stores.job_store(), ensure_success=True)
    docs = responses[job.uuid][1].output
    assert [d.status for d in docs] == ["unstable", "completed"]
    bad = stores.trajectories.query_one({"trajectory_id": specs[0].system_id})
    assert bad["status"] == "unstable" and bad["retried_with_half_timestep"] is True
    assert bad["timestep_fs"] == 0.25 and bad["n_frames"] == 0
    assert "apart" in bad["status_reason"] or "force" in bad["status_reason"]
    good = stores.trajectories.query_one({"trajectory_id": specs[1].system_id})
    assert good["status"] == "completed" and good["batched"] is True and good["batch_size"] == 2
    assert good["n_frames"] == 5 and good["model"]["model_id"] == specs[1].model_id
    assert good["retried_with_half_timestep"] is False
    assert good["temperature_status"] is not None  # the verdict over the stored frames, as sequential runs get
    traj = load_trajectory(specs[1].system_id, stores.trajectories, stores.data)
    assert traj.positions.shape == (5, specs[1].n_atoms, 3)
    np.testing.assert_allclose(traj.times_ps, np.arange(5) * 0.005, atol=1e-12)
    assert np.isfinite(traj.temperature_K).all()
    # checkpoints were written during the run, in the sequential engine's format
    from electrodb.flows.md_records import load_checkpoint

    saved = load_checkpoint(stores, specs[1].system_id)
    assert saved is not None and saved.step == 40 and saved.n_frames == 5
    assert saved.rng_state["bit_generator"] == "torch" and saved.rng_state["batch"] == []


def test_autobatch_bins_with_a_given_memory_limit(boxes: list[Atoms], model_path: Path) -> None:
    """torch-sim's BinningAutoBatcher packs boxes by atoms × density; with a known limit it needs no GPU."""
    import torch_sim as ts
    from torch_sim.autobatching import calculate_memory_scaler

    from electrodb.flows.batched import autobatch_bins

    model = torch.load(model_path, weights_only=False)
    systems = [boxes[0], boxes[1], boxes[0].copy()]
    metric = [calculate_memory_scaler(ts.initialize_state(a, torch.device("cpu"), torch.float32)) for a in systems]
    bins = autobatch_bins(systems, model, "cpu", max_memory_scaler=1.01 * (metric[0] + metric[1]))
    assert sorted(i for b in bins for i in b) == [0, 1, 2] and len(bins) == 2
    assert all(sum(metric[i] for i in b) <= 1.01 * (metric[0] + metric[1]) for b in bins)
    assert autobatch_bins(systems, model, "cpu") == [[0, 1, 2]]  # nothing to measure on a CPU: one bin
    assert autobatch_bins(systems, model, "cpu", max_systems=2) == [[0, 1], [2]]


def test_nequip_deployment_runs_batched(tmp_path: Path) -> None:
    """A deployed (TorchScript) NequIP model through torch-sim: per-box energies and forces are the ASE
    calculator's, and a batch of two boxes integrates with frames for each."""
    import torch_sim as ts
    from ase.build import bulk

    from electrodb.md.torchsim_models import NequIPTorchSimModel
    from electrodb.models.loader import load_model

    loaded = load_model(str(build_toy_nequip(tmp_path, metadata=True)), dtype="float64", device="cpu")
    model = NequIPTorchSimModel.from_loaded(loaded)
    small = bulk("NaCl", "rocksalt", a=5.0, cubic=True).repeat((2, 2, 2))
    small.rattle(0.05, seed=1)
    large = bulk("NaCl", "rocksalt", a=5.2, cubic=True).repeat((2, 2, 3))
    large.rattle(0.05, seed=2)
    out = model(ts.initialize_state([small, large], torch.device("cpu"), torch.float64))
    for k, atoms in enumerate((small, large)):
        atoms.calc = loaded.calculator()
        assert float(out["energy"][k]) == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
        lo = 0 if k == 0 else len(small)
        np.testing.assert_allclose(out["forces"][lo : lo + len(atoms)].numpy(), atoms.get_forces(), atol=1e-10)
    store = MemoryStore()
    store.connect()
    writers = [TrajectoryWriter(store, f"nequip-{k}", len(a), chunk_frames=3) for k, a in enumerate((small, large))]
    loose = StabilitySettings(min_distance_h_A=0.3, min_distance_heavy_A=0.5, max_temperature_factor=10.0)
    result = run_batched_nvt(
        [small, large], model, [300.0, 300.0], 1.0, 20, 5, writers, device="cpu", dtype="float64", monitor=loose
    )
    assert [o.status for o in result.outcomes] == ["completed", "completed"]
    assert [o.n_frames for o in result.outcomes] == [5, 5]
