"""Synthetic trajectories written straight into the stores (no MD): fast inputs for builder and API tests."""

from __future__ import annotations

import numpy as np

from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.store.frames import TrajectoryWriter
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.boxes import box_counts, pack_box
from electrodb.systems.chemistry import parse_salt
from electrodb.utils.provenance import stable_hash


def trajectory_meta(writer: TrajectoryWriter, atoms) -> dict:
    """The metadata ``load_trajectory`` needs for frames written by ``writer`` for ``atoms`` (a packed box)."""
    return {
        "trajectory_id": writer.trajectory_id,
        "n_frames": writer.n_frames,
        "n_atoms": len(atoms),
        "symbols": atoms.get_chemical_symbols(),
        "masses": atoms.get_masses().tolist(),
        "role": atoms.arrays["role"].tolist(),
        "mol_id": atoms.arrays["mol_id"].tolist(),
        "ion_center": atoms.arrays["ion_center"].tolist(),
    }


def write_brownian_trajectory(
    stores: ElectroDBStores,
    salt: str = "NaCl",
    molality: float = 1.0,
    n_waters: int = 64,
    n_frames: int = 100,
    frame_ps: float = 0.1,
    D_A2_ps: float = 0.2,
    seed: int = 0,
    status: str = "completed",
    model_id: str = "sha256:synthetic",
    temperature: float = 298.15,
) -> TrajectoryDocument:
    """Packed box whose molecules then random-walk rigidly (diffusion D_A2_ps Å²/ps per molecule)."""
    packed = pack_box(box_counts(salt, molality, n_waters=n_waters), seed=seed + 1)
    atoms = packed.atoms
    rng = np.random.default_rng(seed)
    mol = atoms.arrays["mol_id"]
    n_mol = int(mol.max()) + 1
    steps = rng.normal(0.0, np.sqrt(2 * D_A2_ps * frame_ps), size=(n_frames - 1, n_mol, 3))
    walk = np.concatenate([np.zeros((1, n_mol, 3)), np.cumsum(steps, axis=0)])
    s = parse_salt(salt)
    tid = stable_hash({"synthetic": salt, "m": molality, "seed": seed, "n": n_frames, "status": status})
    doc = TrajectoryDocument(
        trajectory_id=tid,
        system_id=tid,
        campaign_ids=["synthetic"],
        salt=s.formula,
        cation=s.cation.name,
        anion=s.anion.name,
        molality=packed.counts.molality,
        temperature=temperature,
        n_atoms=len(atoms),
        n_waters=packed.counts.n_waters,
        n_cations=packed.counts.n_cations,
        n_anions=packed.counts.n_anions,
        symbols=atoms.get_chemical_symbols(),
        masses=atoms.get_masses().tolist(),
        role=atoms.arrays["role"].tolist(),
        mol_id=mol.tolist(),
        ion_center=atoms.arrays["ion_center"].tolist(),
        model_id=model_id,
        model={"kind": "synthetic"},
        md={},
        timestep_fs=1.0,
        sample_interval_steps=int(frame_ps * 1000),
        frame_interval_ps=frame_ps,
        status="running",
        box_length_A=packed.counts.box_length_A,
        density_kg_m3=packed.counts.density_kg_m3,
    )
    stores.trajectories.update([doc.model_dump(mode="json")], key="trajectory_id")
    writer = TrajectoryWriter(stores.data, tid, len(atoms), chunk_frames=40)
    cell = np.asarray(atoms.cell)
    for f in range(n_frames):
        writer.append(atoms.positions + walk[f][mol], cell, f * frame_ps, 0.0, temperature)
    writer.flush()
    doc = doc.model_copy(
        update={
            "status": status,
            "n_frames": writer.n_frames,
            "n_chunks": writer.n_chunks,
            "duration_ps": (n_frames - 1) * frame_ps,
            "status_reason": None if status == "completed" else "synthetic blow-up",
        }
    )
    stores.trajectories.update([doc.model_dump(mode="json")], key="trajectory_id")
    return doc
