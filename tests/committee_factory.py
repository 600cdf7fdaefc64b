"""Tiny committees trained inside the tests: K throw-away MACEs on Lennard-Jones labels of 14-atom smoke boxes.

:func:`smoke_labels` labels perturbed :func:`tests.model_factory.smoke_box` copies with the Lennard-Jones teacher of
:func:`tests.model_factory.train_smoke_model`; :func:`smoke_committee_settings` are its tiny MACE settings as a
:class:`~electrodb.models.committee.CommitteeSettings`; :func:`train_smoke_committee` trains (or reuses, from its
folder) a committee of them, every member trusted for the test session.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.lj import LennardJones

from electrodb.analysis.committee import atom_disagreement, frame_disagreement
from electrodb.documents.committee import AuditDocument, CommitteeDocument, audit_id
from electrodb.models.committee import (
    CommitteeSettings,
    CommitteeTraining,
    committee_splits,
    encode_extxyz,
    evaluate_members,
    train_committee,
)
from electrodb.models.files import file_sha256
from electrodb.models.labelling import label_configurations, perturb_configurations
from electrodb.store.frames import TrajectoryWriter
from tests.model_factory import smoke_box, smoke_training_settings, trust_test_model

SAVED = "committee_training.json"


def lj_teacher() -> LennardJones:
    """The Lennard-Jones labels of :func:`tests.model_factory.train_smoke_model` (σ 0.86 Å, ε 0.05 eV, r_c 3 Å)."""
    return LennardJones(sigma=0.86, epsilon=0.05, rc=3.0, smooth=True)


def smoke_configurations(n: int, seed: int = 0, displacement_A: tuple[float, float] = (0.03, 0.08)) -> list[Atoms]:
    """``n`` perturbed copies of the smoke box (unlabelled)."""
    return perturb_configurations([smoke_box(seed)], n, displacement_A, 0.02, seed)


def smoke_labels(n: int, seed: int = 0, displacement_A: tuple[float, float] = (0.03, 0.08)) -> list[Atoms]:
    """``n`` perturbed smoke boxes labelled by :func:`lj_teacher`."""
    return list(label_configurations(smoke_configurations(n, seed, displacement_A), lj_teacher()))


def smoke_committee_settings(k: int = 2, epochs: int = 2, seed: int = 0, **updates) -> CommitteeSettings:
    """The tiny MACE of ``train_smoke_model`` (r_max 3.5 Å, 8 channels) as K committee members."""
    training = smoke_training_settings(epochs, seed)
    # the refine tests flag displaced boxes by the error target alone: a few held-out boxes would set the domain
    # quantile above most of them
    return CommitteeSettings(k=k, training=training, calibration_fraction=0.2, domain_quantile=None, **updates)


def train_smoke_committee(
    workdir: str | os.PathLike[str], *, k: int = 2, n_configurations: int = 16, epochs: int = 2, reuse: bool = True
) -> CommitteeTraining:
    """A committee of K tiny MACEs (~15 s each on 2 cores); reused from ``workdir`` while its files are intact."""
    work = Path(workdir).expanduser().resolve()
    saved = work / SAVED
    if reuse and saved.is_file():
        previous = CommitteeTraining.model_validate_json(saved.read_text(encoding="utf-8"))
        if all(
            Path(p).is_file() and file_sha256(p) == i
            for p, i in zip(previous.model_paths, previous.model_ids, strict=True)
        ):
            for path in previous.model_paths:
                trust_test_model(path)
            return previous
    training = train_committee(smoke_labels(n_configurations), smoke_committee_settings(k, epochs), work)
    for path in training.model_paths:
        trust_test_model(path)
    saved.write_text(training.model_dump_json(), encoding="utf-8")
    return training


def store_frames(stores, frames: list[Atoms], model_id: str, tid: str = "traj-smoke") -> str:
    """The frames as a stored trajectory (the metadata ``load_trajectory`` needs, and the driving model)."""
    writer = TrajectoryWriter(stores.data, tid, len(frames[0]), chunk_frames=5)
    for i, atoms in enumerate(frames):
        writer.append(atoms.get_positions(), np.asarray(atoms.cell), 0.01 * i)
    writer.flush()
    first = frames[0]
    meta = {
        "trajectory_id": tid,
        "n_frames": writer.n_frames,
        "n_atoms": len(first),
        "symbols": first.get_chemical_symbols(),
        "masses": first.get_masses().tolist(),
        "role": [0] * len(first),
        "mol_id": list(range(len(first))),
        "ion_center": [False] * len(first),
        "model_id": model_id,
        "status": "completed",
    }
    stores.trajectories.update([meta], key="trajectory_id")
    return tid


def store_audit(stores, committee: CommitteeDocument, tid: str, sigma_max: list[float]) -> None:
    """An audit of every frame of ``tid`` by ``committee`` with the given per-frame max σ_F (eV/Å)."""
    threshold = committee.threshold_eV_per_A
    flagged = sum(1 for s in sigma_max if not s <= threshold)
    doc = AuditDocument(
        audit_id=audit_id(tid, committee.committee_id),
        trajectory_id=tid,
        committee_id=committee.committee_id,
        model_id=committee.driver_id,
        k=committee.k,
        frame_stride=1,
        frames=list(range(len(sigma_max))),
        sigma_F_max=sigma_max,
        threshold_eV_per_A=threshold,
        n_frames_audited=len(sigma_max),
        n_flagged=flagged,
        frac_flagged=flagged / len(sigma_max),
    )
    stores.audits.update([doc.model_dump(mode="json")], key="audit_id")


def audit_displaced_boxes(stores, committee: CommitteeDocument, training: CommitteeTraining, n_frames: int = 12) -> str:
    """A trajectory of smoke boxes displaced 0.08–0.14 Å (the training data: 0.03–0.08 Å) and its audit with the
    committee's real max σ_F, except that the first half of the frames is recorded as agreed (σ_F = 0)."""
    frames = smoke_configurations(n_frames, seed=11, displacement_A=(0.08, 0.14))
    tid = store_frames(stores, frames, committee.driver_id)
    _, forces = evaluate_members(training.model_paths, frames, expected_ids=committee.member_ids)
    sigma = frame_disagreement(atom_disagreement(forces))["max"]
    sigma[: n_frames // 2] = 0.0
    store_audit(stores, committee, tid, [float(s) for s in sigma])
    return tid


def reversed_committee(
    trained: CommitteeTraining, configurations, settings: CommitteeSettings, foundation_paths, calibration
) -> CommitteeTraining:
    """A stand-in for a refine round's fine-tuning: ``trained``'s members in reverse order (a different committee,
    no training) over the round's configurations, splits and foundations."""
    return CommitteeTraining(
        members=list(reversed(trained.members)),
        seeds=settings.member_seeds(),
        split=settings.split,
        splits=committee_splits(len(configurations), settings, calibration),
        settings=settings.model_dump(mode="json"),
        foundation_paths=[str(p) for p in foundation_paths],
        elements=trained.elements,
        r_max=trained.r_max,
        n_configurations=len(configurations),
        data_zb64=encode_extxyz(configurations),
    )
