"""Audit stored trajectories with a model committee: σ_F per audited frame and the model-trust verdict.

:func:`audit_trajectory` evaluates every member of a committee (``electrodb model committee``) on every n-th stored
frame of one trajectory, reduces the forces with :mod:`electrodb.analysis.committee` (per-atom disagreement σ_F, its
max / mean / 95th percentile per frame, the energy spread) and stores an
:class:`~electrodb.documents.committee.AuditDocument` in ``audits`` with the verdict ``trusted``, ``extrapolating`` or
``insufficient``. It is incremental: a trajectory that grew since its last audit (a later segment) gets only its new
frames evaluated, on the same frame grid; an unchanged one is not evaluated again.

The :class:`AuditMaker` job does the same inside a flow (campaign YAML ``audit:``; it writes only through the
JobStore its manager hands it), and ``electrodb model audit`` attaches a committee to trajectories already stored.
The builders put the verdict into the summaries (``model_trust``), from where the API, export and explorer show it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from jobflow import Flow, Maker, run_locally

from electrodb.analysis.committee import (
    atom_disagreement,
    energy_spread,
    frame_disagreement,
    trust_verdict,
    worst_frames,
)
from electrodb.documents.committee import AuditDocument, CommitteeDocument, audit_id
from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.flows.committee import materialize_committee, resolve_committee
from electrodb.flows.job_io import job_stores, output_document, store_job
from electrodb.models.committee import evaluate_members
from electrodb.models.files import ModelError
from electrodb.store.frames import load_trajectory
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.campaign import Campaign, SystemSpec
from electrodb.systems.committee import AuditSettings

__all__ = [
    "AuditMaker",
    "audit_stride",
    "audit_trajectories",
    "audit_trajectory",
    "check_campaign_committee",
    "committee_campaign",
    "run_audits",
]


def audit_stride(n_frames: int, settings: AuditSettings) -> int:
    """Stride of the audited frames: ``every_frames``, larger where more than ``max_frames`` frames would result."""
    return max(settings.every_frames, math.ceil(n_frames / settings.max_frames))


def _frames(positions: np.ndarray, cells: np.ndarray, symbols: list[str], index: np.ndarray) -> list[Atoms]:
    out = []
    for i in index:
        atoms = Atoms(symbols, positions=positions[i].astype(np.float64), cell=cells[i].astype(np.float64), pbc=True)
        atoms.wrap()
        out.append(atoms)
    return out


def _previous(stores: ElectroDBStores, aid: str, stride: int, n_frames: int) -> dict[str, Any] | None:
    """The stored audit to extend: same stride and at most ``n_frames`` frames behind it (None: audit anew)."""
    old = stores.audits.query_one({"audit_id": aid})
    if old is None or int(old.get("frame_stride", 0)) != stride or int(old.get("n_frames_total", 0)) > n_frames:
        return None
    return old


def audit_trajectory(
    stores: ElectroDBStores,
    trajectory_id: str,
    committee: CommitteeDocument,
    member_paths: list[Path],
    settings: AuditSettings,
    *,
    force: bool = False,
) -> AuditDocument:
    """Evaluate ``committee`` on the stored frames of one trajectory and store the audit (incremental).

    Parameters
    ----------
    stores
        Stores holding the trajectory (``trajectories``, ``data``) and receiving the audit (``audits``).
    trajectory_id
        The trajectory.
    committee, member_paths
        The committee and its member files (:func:`~electrodb.flows.committee.materialize_committee`).
    settings
        Stride, frame cap, verdict rule and device.
    force
        Evaluate every audited frame again, even those an earlier audit holds.

    Raises
    ------
    ModelError
        The trajectory was not run by one of the committee's members (its σ_F would not describe that model), or
        its elements are not the committee's.
    """
    meta = stores.trajectories.query_one({"trajectory_id": trajectory_id})
    if meta is None:
        raise KeyError(f"no trajectory {trajectory_id!r} in this database; `electrodb db info` lists what is stored")
    if meta.get("model_id") not in committee.member_ids:
        raise ModelError(
            f"trajectory {trajectory_id[:12]} was run with model {str(meta.get('model_id'))[:23]}..., which is not a "
            f"member of committee {committee.name!r}; audit it with a committee that includes that model (electrodb "
            "model committee --foundation FILE trains one around it)"
        )
    missing = sorted(set(meta["symbols"]) - set(committee.elements)) if committee.elements else []
    if missing:
        raise ModelError(
            f"trajectory {trajectory_id[:12]} holds {', '.join(missing)}, which committee {committee.name!r} was not "
            "trained on; train a committee on data with those elements"
        )
    n_frames = int(meta["n_frames"])
    stride = audit_stride(n_frames, settings)
    aid = audit_id(trajectory_id, committee.committee_id)
    old = None if force else _previous(stores, aid, stride, n_frames)
    if (
        old is not None
        and int(old["n_frames_total"]) == n_frames
        and old.get("threshold_eV_per_A") == committee.threshold_eV_per_A
    ):
        return AuditDocument(**output_document(old))  # unchanged (a recalibrated committee re-judges the frames)
    started = time.perf_counter()
    traj = load_trajectory(meta, stores.trajectories, stores.data, fields=("positions", "cells", "times_ps"))
    index = np.arange(0, n_frames, stride)
    done = np.asarray(old["frames"], dtype=int) if old else np.empty(0, dtype=int)
    todo = index[~np.isin(index, done)]
    rows: dict[str, list[float]] = {k: [] for k in ("max", "mean", "p95", "argmax", "sigma_E")}
    if len(todo):  # one call: every member is loaded (hash-checked, unpickled) once per audit
        energies, forces = evaluate_members(
            member_paths,
            _frames(traj.positions, traj.cells, traj.symbols, todo),
            settings.device,
            expected_ids=committee.member_ids,
        )
        per_frame = frame_disagreement(atom_disagreement(forces))
        for key in ("max", "mean", "p95", "argmax"):
            rows[key] = np.asarray(per_frame[key]).tolist()
        rows["sigma_E"] = energy_spread(energies, len(traj.symbols)).tolist()
    frames = [*done.tolist(), *todo.tolist()]
    series = {
        "sigma_F_max": [*(old or {}).get("sigma_F_max", []), *rows["max"]],
        "sigma_F_mean": [*(old or {}).get("sigma_F_mean", []), *rows["mean"]],
        "sigma_F_p95": [*(old or {}).get("sigma_F_p95", []), *rows["p95"]],
        "sigma_E_meV_per_atom": [*(old or {}).get("sigma_E_meV_per_atom", []), *rows["sigma_E"]],
    }
    argmax = [*(old or {}).get("argmax_atom", []), *[int(a) for a in rows["argmax"]]]
    frame_max = np.asarray(series["sigma_F_max"], dtype=float)
    times = traj.times_ps[np.asarray(frames, dtype=int)] if frames else np.empty(0)
    threshold = committee.threshold_eV_per_A
    if threshold is None:
        raise ModelError(
            f"committee {committee.name!r} has no calibrated threshold; register it again with electrodb model "
            "committee, which calibrates one on held-out configurations"
        )
    verdict = trust_verdict(
        frame_max, threshold, max_flagged_fraction=settings.max_flagged_fraction, min_frames=settings.min_frames
    )
    worst = worst_frames(frame_max, np.asarray(argmax, dtype=int), times, traj.symbols, n=5)
    for item in worst:  # audited-frame index -> stored frame index
        item["frame"] = int(frames[int(item["frame"])])
    doc = AuditDocument(
        audit_id=aid,
        trajectory_id=trajectory_id,
        system_id=meta.get("system_id", trajectory_id),
        committee_id=committee.committee_id,
        model_id=str(meta["model_id"]),
        salt=meta.get("salt"),
        molality=meta.get("molality"),
        temperature=meta.get("temperature"),
        k=committee.k,
        frame_stride=stride,
        frames=[int(f) for f in frames],
        times_ps=[float(t) for t in times],
        **series,
        argmax_atom=argmax,
        threshold_eV_per_A=float(threshold),
        n_frames_audited=len(frames),
        n_flagged=int(verdict["n_flagged"]),
        frac_flagged=float(verdict["frac_flagged"]),
        sigma_F_max_p95=verdict.get("sigma_F_max_p95"),
        worst=worst,
        verdict={k: v for k, v in verdict.items() if k in ("status", "reason", "criterion", "note")},
        n_frames_total=n_frames,
        wall_time_s=time.perf_counter() - started + float((old or {}).get("wall_time_s") or 0.0),
    )
    stores.audits.update([doc.model_dump(mode="json")], key="audit_id")
    return doc


def audit_trajectories(
    stores: ElectroDBStores,
    committee_ref: str,
    settings: AuditSettings,
    trajectory_ids: list[str] | None = None,
    *,
    force: bool = False,
) -> dict[str, AuditDocument | str]:
    """Audit several trajectories (default: every completed one run by a member); ``{trajectory_id: doc or why}``.

    A trajectory that cannot be audited (another model, other elements) gets its one-line reason instead of a
    document; the others are still audited.
    """
    committee = resolve_committee(stores, committee_ref)
    paths = materialize_committee(stores, committee)
    if trajectory_ids is None:
        found = stores.trajectories.query(
            {"model_id": {"$in": committee.member_ids}}, properties=["trajectory_id", "status"]
        )
        trajectory_ids = sorted(d["trajectory_id"] for d in found if d.get("status") in ("completed", "unstable"))
    out: dict[str, AuditDocument | str] = {}
    for tid in trajectory_ids:
        try:
            out[tid] = audit_trajectory(stores, tid, committee, paths, settings, force=force)
        except (KeyError, ModelError) as exc:
            out[tid] = str(exc).strip("'\"")
    return out


@dataclass
class AuditMaker(Maker):
    """Audit one system's stored trajectory with the campaign's committee (after its production).

    Parameters
    ----------
    name
        Job name.
    settings
        The campaign's ``audit:`` settings; None audits nothing (the job returns the trajectory unchanged).
    """

    name: str = "committee audit"
    settings: AuditSettings | None = field(default=None)

    @store_job
    def make(self, spec: SystemSpec, trajectory: TrajectoryDocument | None = None) -> dict[str, Any] | None:
        """Audit ``spec``'s trajectory; returns the audit document (None without settings)."""
        if self.settings is None:
            return None
        with job_stores("trajectories", "data", "models", "committees", "audits") as stores:
            if stores.trajectories.query_one({"trajectory_id": spec.system_id}, properties=["trajectory_id"]) is None:
                raise RuntimeError(
                    f"no trajectory {spec.system_id} in this job's stores, so nothing to audit; if the workers read "
                    f"no database (jobflow-remote), audit after the run: electrodb model audit --committee "
                    f"{self.settings.committee}"
                )
            committee = resolve_committee(stores, self.settings.committee)
            paths = materialize_committee(stores, committee)
            doc = audit_trajectory(stores, spec.system_id, committee, paths, self.settings)
        return doc.model_dump(mode="json")


def check_campaign_committee(campaign: Campaign, stores: ElectroDBStores, model_id: str) -> CommitteeDocument | None:
    """The campaign's audit committee, checked before anything runs (None without ``audit:``).

    Raises
    ------
    ModelError
        The committee is unknown, or its driver is not the campaign's model (its σ_F would describe another model).
    """
    if campaign.audit is None:
        return None
    try:
        committee = resolve_committee(stores, campaign.audit.committee)
    except LookupError as exc:
        raise ModelError(str(exc).strip("'\"")) from None
    if committee.driver_id != model_id and model_id not in committee.member_ids:
        raise ModelError(
            f"audit.committee {campaign.audit.committee!r} does not include the campaign's model ({model_id[:23]}...); "
            f"set model: to its driver member (electrodb model list shows it) or audit with a committee built around "
            "this model (electrodb model committee --foundation FILE)"
        )
    return committee


def run_audits(campaign: Campaign, stores: ElectroDBStores, specs: list[SystemSpec]) -> dict[str, str]:
    """Audit the campaign's stored runs with its committee, one :class:`AuditMaker` job per system, locally.

    Returns ``{system_id: verdict status, or 'failed: why'}``; systems without a trajectory are left out.
    """
    if campaign.audit is None:
        return {}
    maker = AuditMaker(settings=campaign.audit)
    out: dict[str, str] = {}
    for spec in specs:
        if stores.trajectories.query_one({"trajectory_id": spec.system_id}, properties=["trajectory_id"]) is None:
            continue
        job = maker.make(spec)
        job.name = f"committee audit {spec.salt} {spec.molality:.2f} m {spec.temperature:.0f} K"
        responses = run_locally(
            Flow([job]), store=stores.job_store(), create_folders=False, log=False, ensure_success=False
        )
        done = stores.audits.query_one({"trajectory_id": spec.system_id}, properties=["verdict", "last_updated"])
        ok = job.uuid in responses
        out[spec.system_id] = (done or {}).get("verdict", {}).get("status", "") if ok and done else "failed"
    return out


def committee_campaign(campaign: Campaign, stores: ElectroDBStores) -> Campaign:
    """A campaign whose ``model`` is ``committee:NAME``, with the current committee's driver as its model.

    The driver member's file is written from the blob store and becomes the model, and the campaign is audited by
    that committee (``audit.committee`` NAME, unless ``audit:`` names one). After a refine round, running the same
    spec again therefore runs the refined committee's driver: new systems (a new model id), whose summaries
    supersede the old ones. Other campaigns are returned unchanged.

    Raises
    ------
    ModelError
        No such committee, or one driven by the committee mean (MD runs one member).
    """
    if not campaign.model.startswith("committee:"):
        return campaign
    ref = campaign.model.removeprefix("committee:")
    try:
        committee = resolve_committee(stores, ref)
    except ModelError as by_name:
        try:
            committee = resolve_committee(stores, campaign.model)  # a committee id ("committee:<hash>")
        except ModelError:
            raise by_name from None
        ref = committee.committee_id
    if committee.driver == "mean":
        raise ModelError(
            f"committee {committee.name!r} is driven by the committee mean, but MD runs one member; register it "
            "with --driver 0 (or another member) to run campaigns with it"
        )
    path = materialize_committee(stores, committee)[int(committee.driver)]
    audit = campaign.audit or AuditSettings(committee=ref)
    return campaign.model_copy(update={"model": str(path), "audit": audit})
