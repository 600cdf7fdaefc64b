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


def write_ideal_gas_trajectory(
    stores: ElectroDBStores,
    salt: str = "NaCl",
    n_formula: int = 12,
    n_waters: int = 512,
    box_length_A: float = 25.0,
    n_frames: int = 200,
    frame_ps: float = 0.1,
    seed: int = 0,
    model_id: str = "sha256:ideal-gas",
    temperature: float = 298.15,
) -> TrajectoryDocument:
    """Ideal gas in a cubic box: every ion centre and water O uniform and independent in every frame.

    Monatomic ions only. Each water's two H sit 0.96 Å from their O at 104.5° in a random orientation, so only
    O–H pairs of one molecule are correlated. The exact Kirkwood–Buff answer is G_ab = 0 for every pair of ion
    centres and water O (with g normalised as in ``electrodb.analysis.structure``) and a_cc = 1.
    """
    s = parse_salt(salt)
    if len(s.cation.symbols) != 1 or len(s.anion.symbols) != 1:
        raise ValueError("write_ideal_gas_trajectory handles monatomic ions only")
    from electrodb.systems.boxes import ROLE_CODES

    n_cat, n_an = n_formula * s.nu_cation, n_formula * s.nu_anion
    symbols = [s.cation.symbols[0]] * n_cat + [s.anion.symbols[0]] * n_an + ["O", "H", "H"] * n_waters
    role = [ROLE_CODES["cation"]] * n_cat + [ROLE_CODES["anion"]] * n_an
    role += [ROLE_CODES["water_O"], ROLE_CODES["water_H"], ROLE_CODES["water_H"]] * n_waters
    n_ions = n_cat + n_an
    mol_id = list(range(n_ions)) + [n_ions + k // 3 for k in range(3 * n_waters)]
    ion_center = [True] * n_ions + [False] * (3 * n_waters)
    from ase.data import atomic_masses, atomic_numbers

    masses = [float(atomic_masses[atomic_numbers[x]]) for x in symbols]
    n_atoms = len(symbols)
    m_kg = n_waters * 0.018015
    tid = stable_hash({"ideal_gas": salt, "n": n_formula, "w": n_waters, "L": box_length_A, "f": n_frames, "s": seed})
    doc = TrajectoryDocument(
        trajectory_id=tid,
        system_id=tid,
        campaign_ids=["synthetic"],
        salt=s.formula,
        cation=s.cation.name,
        anion=s.anion.name,
        molality=n_formula / m_kg,
        temperature=temperature,
        n_atoms=n_atoms,
        n_waters=n_waters,
        n_cations=n_cat,
        n_anions=n_an,
        symbols=symbols,
        masses=masses,
        role=role,
        mol_id=mol_id,
        ion_center=ion_center,
        model_id=model_id,
        model={"kind": "synthetic-ideal-gas"},
        md={},
        timestep_fs=1.0,
        sample_interval_steps=int(frame_ps * 1000),
        frame_interval_ps=frame_ps,
        status="running",
        box_length_A=box_length_A,
    )
    stores.trajectories.update([doc.model_dump(mode="json")], key="trajectory_id")
    rng = np.random.default_rng(seed)
    theta = np.deg2rad(104.5) / 2
    cell = np.eye(3) * box_length_A
    writer = TrajectoryWriter(stores.data, tid, n_atoms, chunk_frames=100)
    for f in range(n_frames):
        pos = np.empty((n_atoms, 3))
        pos[:n_ions] = rng.uniform(0.0, box_length_A, (n_ions, 3))
        o = rng.uniform(0.0, box_length_A, (n_waters, 3))
        rot = _random_rotations(rng, n_waters)  # (n, 3, 3): columns are the molecule's axes
        h1 = 0.96 * (np.cos(theta) * rot[:, :, 0] + np.sin(theta) * rot[:, :, 1])
        h2 = 0.96 * (np.cos(theta) * rot[:, :, 0] - np.sin(theta) * rot[:, :, 1])
        pos[n_ions:] = np.stack([o, o + h1, o + h2], axis=1).reshape(-1, 3)
        writer.append(pos, cell, f * frame_ps, 0.0, temperature)
    writer.flush()
    doc = doc.model_copy(
        update={
            "status": "completed",
            "n_frames": writer.n_frames,
            "n_chunks": writer.n_chunks,
            "duration_ps": (n_frames - 1) * frame_ps,
        }
    )
    stores.trajectories.update([doc.model_dump(mode="json")], key="trajectory_id")
    return doc


def _random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniformly random rotation matrices (QR of Gaussian matrices, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return q
