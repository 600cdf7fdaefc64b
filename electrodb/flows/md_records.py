"""What the MD Makers store besides the frames: boxes (as JSON-safe dicts, in ``systems`` documents), trajectory
documents and production checkpoints.

Used by the sequential Makers (:mod:`electrodb.flows.md`), the batched production
(:mod:`electrodb.flows.batched`) and solvation TI (:mod:`electrodb.flows.solvation`), so all of them write the same
records: a box saved by one can be read by the others, and a batched checkpoint resumes like a sequential one.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from ase import Atoms

from electrodb.documents.system import SystemDocument
from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.md.dynamics import ProductionState
from electrodb.store.frames import decode_array, encode_array, truncate_chunks
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.boxes import BoxCounts, box_counts
from electrodb.systems.campaign import MDSettings, SystemSpec
from electrodb.systems.chemistry import parse_salt
from electrodb.utils.provenance import utcnow

__all__ = [
    "atoms_from_dict",
    "atoms_to_dict",
    "box_labels",
    "checkpoint_uuid",
    "discard",
    "load_checkpoint",
    "mark",
    "new_trajectory_doc",
    "produced_ps",
    "save_checkpoint",
    "stored_system",
]

_LABELS = ("mol_id", "role", "ion_center")  # per-atom arrays a box carries


def atoms_to_dict(atoms: Atoms) -> dict[str, Any]:
    """JSON-safe state of a box: positions, cell, labels and (when set) momenta, so MD continues at temperature.

    Parameters
    ----------
    atoms
        A periodic box; positions and cell in Å, momenta in ASE units (amu Å / ASE time).

    Returns
    -------
    dict
        ``symbols``, ``positions`` (encoded array), ``cell`` (3×3 list), the labels ``mol_id``, ``role`` and
        ``ion_center`` it carries, and ``momenta`` when set.
    """
    out = {
        "symbols": atoms.get_chemical_symbols(),
        "positions": encode_array(atoms.get_positions()),
        "cell": np.asarray(atoms.cell).tolist(),
        **{k: encode_array(atoms.arrays[k]) for k in _LABELS if k in atoms.arrays},
    }
    if atoms.has("momenta"):
        out["momenta"] = encode_array(atoms.get_momenta())
    return out


def atoms_from_dict(data: dict[str, Any]) -> Atoms:
    """The periodic box saved by :func:`atoms_to_dict`, with its labels and momenta."""
    atoms = Atoms(data["symbols"], positions=decode_array(data["positions"]), cell=data["cell"], pbc=True)
    for key in _LABELS:
        if key in data:
            atoms.arrays[key] = decode_array(data[key])
    if "momenta" in data:
        atoms.set_momenta(decode_array(data["momenta"]))
    return atoms


def box_labels(
    spec: SystemSpec, counts: BoxCounts | None = None, stored: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What a ``systems`` document says of its box beyond :class:`SystemDocument`.

    The box id, where its density came from and the campaigns it belongs to (those already ``stored`` plus this
    one). Recomputed from the spec, so a job whose store starts empty (a jobflow-remote worker) writes them as the
    packing job did.

    Parameters
    ----------
    spec
        The system.
    counts
        Its box composition (:func:`~electrodb.systems.boxes.box_counts`; recomputed when None).
    stored
        The system's stored ``systems`` document, if any.
    """
    if counts is None:
        counts = box_counts(spec.salt, spec.molality, "mol/kg", spec.temperature, n_waters=spec.n_waters)
    campaigns = sorted({*(stored or {}).get("campaign_ids", []), spec.campaign})
    return {"box_id": spec.box_id, "density_source": counts.density_source, "campaign_ids": campaigns}


def stored_system(stores: ElectroDBStores, system_id: str) -> SystemDocument | None:
    """The latest stored stage of a system (packed or equilibrated, status ok), or None."""
    doc = stores.systems.query_one({"system_id": system_id})
    if not doc or doc.get("status", "ok") != "ok" or "atoms" not in doc:
        return None
    fields = set(SystemDocument.model_fields)
    return SystemDocument(**{k: v for k, v in doc.items() if k in fields})


def new_trajectory_doc(
    spec: SystemSpec,
    atoms: Atoms,
    model: dict[str, Any],
    md: MDSettings,
    timestep_fs: float,
    sample_every: int,
) -> TrajectoryDocument:
    """The ``trajectories`` document of a production that starts now (status ``running``, no frames yet).

    Parameters
    ----------
    spec
        The system.
    atoms
        Its box, with the labels ``role``, ``mol_id`` and ``ion_center``.
    model
        The model's identity (:class:`~electrodb.models.loaded.ModelIdentity` fields, plus any long-range term).
    md
        The MD settings as run.
    timestep_fs, sample_every
        Time step (fs) and steps between stored frames, as run (a retry halves the one and doubles the other).
    """
    salt = parse_salt(spec.salt)
    return TrajectoryDocument(
        trajectory_id=spec.system_id,
        system_id=spec.system_id,
        campaign_ids=[spec.campaign],
        salt=spec.salt,
        cation=salt.cation.name,
        anion=salt.anion.name,
        molality=spec.molality,
        temperature=spec.temperature,
        n_atoms=len(atoms),
        n_waters=spec.n_waters,
        n_cations=spec.n_cations,
        n_anions=spec.n_anions,
        symbols=atoms.get_chemical_symbols(),
        masses=atoms.get_masses().tolist(),
        role=atoms.arrays["role"].tolist(),
        mol_id=atoms.arrays["mol_id"].tolist(),
        ion_center=atoms.arrays["ion_center"].astype(bool).tolist(),
        model_id=spec.model_id,
        model=model,
        md=md.model_dump(mode="json"),
        targets=spec.targets,
        timestep_fs=timestep_fs,
        sample_interval_steps=sample_every,
        frame_interval_ps=sample_every * timestep_fs / 1000.0,
    )


def mark(stores: ElectroDBStores, doc: TrajectoryDocument, **changes: Any) -> TrajectoryDocument:
    """Store ``doc`` with ``changes`` applied (and a new ``last_updated``) in ``trajectories``; return the update."""
    updated = doc.model_copy(update={**changes, "last_updated": utcnow()})
    stores.trajectories.update([updated.model_dump(mode="json")], key="trajectory_id")
    return updated


def produced_ps(trajectory: dict[str, Any]) -> float:
    """Production a stored trajectory holds (ps): its frames × frame interval (0 before its second frame)."""
    return max(int(trajectory.get("n_frames") or 0) - 1, 0) * float(trajectory.get("frame_interval_ps") or 0.0)


def checkpoint_uuid(trajectory_id: str) -> str:
    """Key (``blob_uuid`` in the ``data`` store) of a trajectory's production checkpoint."""
    return f"{trajectory_id}:checkpoint"


def save_checkpoint(stores: ElectroDBStores, tid: str, state: ProductionState) -> None:
    """Store (replace) the checkpoint of trajectory ``tid`` in the ``data`` store.

    Parameters
    ----------
    stores
        The job's stores.
    tid
        Trajectory id.
    state
        Step, frames and chunks written, unwrapped positions (Å), momenta, cell (Å), noise generator state (saved
        as JSON: a PCG64 state holds 128-bit integers, which BSON cannot) and time step (fs).
    """
    stores.data.update(
        [
            {
                "blob_uuid": checkpoint_uuid(tid),
                "kind": "checkpoint",
                "trajectory_id": tid,
                "step": state.step,
                "n_frames": state.n_frames,
                "n_chunks": state.n_chunks,
                "positions": encode_array(state.positions),
                "momenta": encode_array(state.momenta),
                "cell": encode_array(state.cell),
                "rng_state": json.dumps(state.rng_state),  # PCG64 state has 128-bit ints, which BSON cannot hold
                "timestep_fs": state.timestep_fs,
                "last_updated": utcnow(),
            }
        ],
        key="blob_uuid",
    )


def load_checkpoint(stores: ElectroDBStores, tid: str) -> ProductionState | None:
    """The checkpoint :func:`save_checkpoint` stored for trajectory ``tid``, or None."""
    doc = stores.data.query_one({"blob_uuid": checkpoint_uuid(tid)})
    if doc is None:
        return None
    return ProductionState(
        step=doc["step"],
        n_frames=doc["n_frames"],
        n_chunks=doc["n_chunks"],
        positions=decode_array(doc["positions"]),
        momenta=decode_array(doc["momenta"]),
        cell=decode_array(doc["cell"]),
        rng_state=json.loads(doc["rng_state"]),
        timestep_fs=doc["timestep_fs"],
    )


def discard(stores: ElectroDBStores, tid: str) -> None:
    """Remove a trajectory's stored frames and checkpoint (a fresh start)."""
    truncate_chunks(stores.data, tid, 0)
    stores.data.remove_docs({"blob_uuid": checkpoint_uuid(tid)})
