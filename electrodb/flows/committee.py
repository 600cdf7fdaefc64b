"""Registering model committees: calibrate, store the members and the ``committees`` document, find them again.

A committee trained by :func:`electrodb.models.committee.train_committee` becomes usable in three steps, in this
order, so that a failure at any point leaves no committee document behind and the previous committee in use:

1. :func:`calibrate_committee` evaluates every member on the calibration configurations (held out from every
   member), computes the per-atom force disagreement σ_F and the driver's true error ``||F_driver − F_ref||``, and
   calibrates the σ_F threshold (:func:`electrodb.analysis.committee.calibrate_threshold`);
2. :func:`register_committee` stores the training data (blob ``committee-data:<committee_id>``), every member file
   and its ``models`` document (:func:`~electrodb.flows.training.store_model`), and last the
   :class:`~electrodb.documents.committee.CommitteeDocument`; a refined committee then marks its parent
   ``superseded_by`` itself.

:func:`store_committee` does both. :func:`resolve_committee` finds a committee by id or by name (the newest
current one of that name or lineage) and :func:`materialize_committee` writes its member files from the blob store.
:class:`CommitteeMaker` trains and registers a committee from a
:class:`~electrodb.flows.training.LabelledDataset` as one jobflow job (a ``train`` stage: GPU workers).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from jobflow import Maker

from electrodb.analysis.committee import atom_disagreement, calibrate_threshold
from electrodb.documents.committee import CommitteeDocument, committee_id
from electrodb.flows.job_io import job_stores, output_document, store_job
from electrodb.flows.training import LabelledDataset, decode_configurations, materialize_model, store_model
from electrodb.models.committee import (
    CommitteeSettings,
    CommitteeTraining,
    decode_extxyz,
    encode_extxyz,
    evaluate_configurations,
    train_committee,
)
from electrodb.models.files import ModelError, file_sha256
from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY
from electrodb.settings import get_settings
from electrodb.store.stores import ElectroDBStores
from electrodb.utils.provenance import utcnow

__all__ = [
    "CommitteeMaker",
    "Driver",
    "calibrate_committee",
    "committee_data_uuid",
    "current_committees",
    "driver_prediction",
    "load_committee_data",
    "materialize_committee",
    "parse_driver",
    "prediction_errors",
    "register_committee",
    "resolve_committee",
    "store_committee",
]

Driver = int | Literal["mean"]


def parse_driver(value: str | int, k: int) -> Driver:
    """``'mean'`` or a member index in ``0..k-1`` from text such as ``'0'`` or ``'mean'``; ValueError otherwise."""
    text = str(value).strip().lower()
    if text == "mean":
        return "mean"
    if not text.lstrip("-").isdigit() or not 0 <= int(text) < k:
        raise ValueError(f"driver must be 'mean' or a member index 0..{k - 1}, got {value!r}")
    return int(text)


def committee_data_uuid(cid: str) -> str:
    """``blob_uuid`` of a committee's labelled training data in the ``data`` store."""
    return f"committee-data:{cid}"


def driver_prediction(energies: np.ndarray, forces: Sequence[np.ndarray], driver: Driver) -> tuple:
    """The driving model's energies (C,) (eV) and forces (list of (N_c, 3), eV/Å) from every member's prediction
    (``energies`` (K, C), ``forces[c]`` (K, N_c, 3)): one member's, or the committee mean."""
    if driver == "mean":
        return energies.mean(axis=0), [f.mean(axis=0) for f in forces]
    return energies[int(driver)], [f[int(driver)] for f in forces]


def prediction_errors(
    energies: np.ndarray, forces: Sequence[np.ndarray], configurations: Sequence[Atoms]
) -> dict[str, float | int]:
    """Errors of one model's predictions against the ``REF_energy`` / ``REF_forces`` labels.

    Returns ``rmse_forces_eV_per_A`` and ``mae_forces_eV_per_A`` (over force components, eV/Å),
    ``rmse_energy_meV_per_atom`` (of (E − E_ref)/N, meV/atom) and ``n_configurations``.
    """
    if not configurations:
        raise ValueError("no labelled configurations to measure errors on")
    de = np.array([(e - float(a.info[ENERGY_KEY])) / len(a) for e, a in zip(energies, configurations, strict=True)])
    df = np.concatenate(
        [
            (np.asarray(f) - np.asarray(a.arrays[FORCES_KEY])).ravel()
            for f, a in zip(forces, configurations, strict=True)
        ]
    )
    return {
        "rmse_forces_eV_per_A": float(np.sqrt(np.mean(df**2))),
        "mae_forces_eV_per_A": float(np.mean(np.abs(df))),
        "rmse_energy_meV_per_atom": float(1e3 * np.sqrt(np.mean(de**2))),
        "n_configurations": len(configurations),
    }


def calibrate_committee(training: CommitteeTraining, *, driver: Driver = 0, device: str = "cpu") -> dict[str, Any]:
    """Evaluate the members on the calibration configurations and calibrate the σ_F threshold.

    Returns
    -------
    dict
        ``calibration`` (:func:`~electrodb.analysis.committee.calibrate_threshold`'s dict, plus ``spearman``: the
        per-atom rank correlation of σ_F with the driver's true force error) and ``driver_errors``
        (:func:`prediction_errors` of the driver on the calibration configurations).

    Raises
    ------
    ModelError
        A member cannot be loaded (untrusted, changed since training) or the members differ.
    ValueError
        Too few calibration configurations, or σ_F / errors that cannot be calibrated.
    """
    configurations = training.calibration_configurations()
    energies, forces = evaluate_configurations(
        training.model_paths, configurations, device, expected_ids=training.model_ids
    )
    sigma = [atom_disagreement(f) for f in forces]
    drive_e, drive_f = driver_prediction(energies, forces, driver)
    error = [
        np.linalg.norm(f - np.asarray(a.arrays[FORCES_KEY]), axis=1)
        for f, a in zip(drive_f, configurations, strict=True)
    ]
    target = float(training.settings.get("target_error_eV_per_A", CommitteeSettings().target_error_eV_per_A))
    quantile = training.settings.get("domain_quantile", CommitteeSettings().domain_quantile)
    calibration = calibrate_threshold(sigma, error, target, domain_quantile=quantile)
    calibration["spearman"] = calibration.get("spearman_atom")
    return {"calibration": calibration, "driver_errors": prediction_errors(drive_e, drive_f, configurations)}


def _added_record(added: Sequence[Atoms] | None) -> tuple[int, str | None]:
    if not added:
        return 0, None
    text = zlib.decompress(base64.b64decode(encode_extxyz(added)))
    return len(added), f"sha256:{hashlib.sha256(text).hexdigest()}"


def register_committee(
    stores: ElectroDBStores,
    training: CommitteeTraining,
    name: str,
    calibrated: dict[str, Any],
    *,
    driver: Driver = 0,
    parent: CommitteeDocument | None = None,
    added: Sequence[Atoms] | None = None,
    refine: dict[str, Any] | None = None,
) -> CommitteeDocument:
    """Store the data, the members and last the committee document; then mark the parent superseded.

    ``calibrated`` is :func:`calibrate_committee`'s result. The member files are read from
    ``training.members[i].model_path``, or written from the blob store when that file is not there (a job on
    another worker trained them: the train job stored their bytes). Returns the stored document.
    """
    if isinstance(driver, int) and not 0 <= driver < training.k:
        raise ValueError(f"driver must be 'mean' or a member index 0..{training.k - 1}, got {driver}")
    cid = committee_id(training.model_ids, driver)
    if parent is not None and cid == parent.committee_id:
        raise ValueError(
            f"the refined committee has the same members and driver as its parent {parent.name!r}; fine-tune the "
            "members (train_committee with foundation_paths) before registering a refinement"
        )
    stores.data.update(
        [
            {
                "blob_uuid": committee_data_uuid(cid),
                "kind": "committee_data",
                "committee_id": cid,
                "n_configurations": training.n_configurations,
                "zb64": training.data_zb64,
                "last_updated": utcnow(),
            }
        ],
        key="blob_uuid",
    )
    members = []
    for i, member in enumerate(training.members):
        path = Path(member.model_path)
        if not (path.is_file() and file_sha256(path) == member.model_id):
            path = materialize_model(member.model_id, stores)
        dataset = {
            "committee": name,
            "member": i,
            "seed": training.seeds[i],
            "split": training.split,
            "n_configurations": training.n_configurations,
        }
        # a model registered before (the demo model as a committee's driver) keeps its name and its dataset record
        known = stores.models.query_one({"model_id": member.model_id}, properties=["name", "dataset"]) or {}
        stores_doc = store_model(
            stores,
            member.model_copy(update={"model_path": str(path)}),
            known.get("name") or f"{name}-m{i}",
            {**dataset, **(known.get("dataset") or {})} if known else dataset,
        )
        members.append(
            {
                "model_id": stores_doc.model_id,
                "seed": training.seeds[i],
                "n_train": member.n_train,
                "n_valid": member.n_valid,
                "rmse_forces_eV_per_A": member.rmse_forces_eV_per_A,
                "rmse_energy_meV_per_atom": member.rmse_energy_meV_per_atom,
            }
        )
    n_added, added_sha = _added_record(added)
    lineage = (parent.model_extra or {}).get("lineage", parent.name) if parent is not None else name
    existing = stores.committees.query_one({"committee_id": cid}, properties=["superseded_by"]) or {}
    doc = CommitteeDocument(
        committee_id=cid,
        name=name,
        member_ids=training.model_ids,
        driver=driver,
        elements=training.elements,
        r_max=training.r_max,
        threshold_eV_per_A=calibrated["calibration"]["threshold_eV_per_A"],
        calibration=calibrated["calibration"],
        held_out={
            "members": members,
            "mean_rmse_forces_eV_per_A": float(np.mean([m["rmse_forces_eV_per_A"] for m in members])),
            "driver_calibration": calibrated["driver_errors"],
        },
        training={
            "settings": training.settings,
            "seeds": training.seeds,
            "split": training.split,
            "splits": training.splits.model_dump(),
            "foundation_paths": training.foundation_paths,
            "n_configurations": training.n_configurations,
            "data_blob": committee_data_uuid(cid),
            "wall_time_s": training.wall_time_s,
        },
        parent_id=parent.committee_id if parent is not None else None,
        refine_round=parent.refine_round + 1 if parent is not None else 0,
        added_configurations=n_added,
        added_sha256=added_sha,
        refine=refine or {},
        superseded_by=existing.get("superseded_by"),
        lineage=lineage,
    )
    stores.committees.update([doc.model_dump(mode="json")], key="committee_id")
    if parent is not None:
        stored = stores.committees.query_one({"committee_id": parent.committee_id})
        if stored is not None:
            stored.pop("_id", None)
            stores.committees.update([{**stored, "superseded_by": cid}], key="committee_id")
    return doc


def store_committee(
    stores: ElectroDBStores,
    training: CommitteeTraining,
    name: str,
    *,
    driver: Driver = 0,
    parent: CommitteeDocument | None = None,
    added: Sequence[Atoms] | None = None,
    refine: dict[str, Any] | None = None,
    device: str = "cpu",
) -> CommitteeDocument:
    """Calibrate (:func:`calibrate_committee`) and register (:func:`register_committee`) a trained committee.

    Parameters
    ----------
    stores
        Where the member files, their ``models`` documents, the training data and the committee go.
    training
        :func:`~electrodb.models.committee.train_committee`'s result.
    name
        Readable name (refine rounds: ``<lineage>-r<round>``).
    driver
        Member index that drives MD, or ``'mean'``.
    parent
        The committee this one refines: its ``refine_round`` + 1, and it gets ``superseded_by`` once this one is
        stored.
    added
        The configurations a refine round added to the parent's training data (counted and hashed).
    refine
        The refine round's record (errors before/after, selection, teacher).
    device
        Where the calibration evaluates the members.

    Raises
    ------
    ModelError, ValueError
        The calibration failed; nothing was stored and the parent stays current.
    """
    calibrated = calibrate_committee(training, driver=driver, device=device)
    return register_committee(
        stores, training, name, calibrated, driver=driver, parent=parent, added=added, refine=refine
    )


def current_committees(stores: ElectroDBStores) -> list[CommitteeDocument]:
    """Every stored committee, newest first (superseded ones included)."""
    docs = [CommitteeDocument(**output_document(d)) for d in stores.committees.query({})]
    return sorted(docs, key=lambda d: d.last_updated, reverse=True)


def resolve_committee(stores: ElectroDBStores, ref: str) -> CommitteeDocument:
    """The committee ``ref`` names: a ``committee_id``, or a name (the newest committee of that name, or whose
    refine lineage started with that name, that nothing supersedes).

    Raises
    ------
    ModelError
        No such committee (one line listing the known names).
    """
    docs = current_committees(stores)
    if ref.startswith("committee:"):
        hits = [d for d in docs if d.committee_id == ref or d.committee_id.startswith(ref)]
    else:
        hits = [d for d in docs if ref in (d.name, (d.model_extra or {}).get("lineage"))]
    if not hits:
        known = sorted({d.name for d in docs if d.superseded_by is None})
        listed = ", ".join(known) if known else "none yet (electrodb model committee --data FILE trains one)"
        raise ModelError(f"no committee {ref!r} in this database; known committees: {listed}")
    current = [d for d in hits if d.superseded_by is None]
    return (current or hits)[0]


def materialize_committee(stores: ElectroDBStores, doc: CommitteeDocument, folder: Path | None = None) -> list[Path]:
    """The member files of ``doc``, written from the blob store where absent (each checked against its sha256)."""
    try:
        return [materialize_model(mid, stores, folder) for mid in doc.member_ids]
    except FileNotFoundError as exc:
        raise ModelError(f"committee {doc.name!r}: {exc}") from exc


def load_committee_data(stores: ElectroDBStores, doc: CommitteeDocument) -> list[Atoms]:
    """The labelled configurations ``doc`` was trained on (its ``committee-data`` blob), in index order."""
    blob = stores.data.query_one({"blob_uuid": committee_data_uuid(doc.committee_id)})
    if blob is None:
        raise ModelError(
            f"committee {doc.name!r} has no stored training data ({committee_data_uuid(doc.committee_id)}); "
            "train it again with electrodb model committee"
        )
    return decode_extxyz(blob["zb64"])


@dataclass
class CommitteeMaker(Maker):
    """Train K MACE members on a labelled dataset and register them as one committee (one ``train`` job: GPU).

    Attributes
    ----------
    name
        Job name; its first word ``train`` routes it to GPU workers (:mod:`electrodb.managers.stages`).
    settings
        :class:`~electrodb.models.committee.CommitteeSettings`: K, seeds, splits, base training settings,
        foundation, calibration target and fraction.
    committee_name
        Name the committee is registered under (``electrodb model list``, ``audit: committee:``).
    driver
        Member index that drives MD, or ``'mean'``.
    workdir
        Parent folder of the members' training folders (default ``<work_dir>/committee-<committee_name>``).
    device
        Device of the calibration evaluation (training uses ``settings.training.device``).
    """

    name: str = "train committee"
    settings: CommitteeSettings = field(default_factory=CommitteeSettings)
    committee_name: str = "electrodb-committee"
    driver: int | str = 0
    workdir: str | None = None
    device: str = "cpu"

    @store_job
    def make(self, dataset: LabelledDataset) -> dict[str, Any]:
        """Train, calibrate and register; returns the committee document (as JSON)."""
        configurations = decode_configurations(dataset.extxyz_zb64)
        workdir = Path(self.workdir) if self.workdir else get_settings().work_dir / f"committee-{self.committee_name}"
        driver = parse_driver(self.driver, self.settings.k)
        training = train_committee(configurations, self.settings, workdir)
        calibrated = calibrate_committee(training, driver=driver, device=self.device)
        with job_stores("models", "committees", "data") as stores:
            doc = register_committee(stores, training, self.committee_name, calibrated, driver=driver)
        return doc.model_dump(mode="json")
