"""Schemas of model committees (``committees``) and of their audits of stored trajectories (``audits``).

A *committee* is K MACE models trained on the same labelled configurations with different seeds and data splits
(``electrodb model committee``). One member drives the MD (``driver``); all K are evaluated on stored frames, and
where they disagree the model is extrapolating: the force disagreement

.. math:: \\sigma_{F,i} = \\sqrt{\\tfrac{1}{K}\\sum_k \\lVert \\mathbf F_{k,i} - \\bar{\\mathbf F}_i \\rVert^2}

of atom *i* (eV/Å; :mod:`electrodb.analysis.committee`) is large where the training data did not reach. An
*audit* (:class:`AuditDocument`) records it frame by frame for one trajectory and one committee, with the model-trust
verdict of the system: ``trusted``, ``extrapolating`` (with the numbers) or ``insufficient`` (too few frames
audited). The summaries carry the verdict beside the sampling statuses (``model_trust``), and the API, export and
explorer filter and show it.

A refine round (``electrodb model refine``) labels the flagged configurations with a teacher, fine-tunes the members
and registers a new committee whose ``parent_id`` is the old one; the old committee gets ``superseded_by``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from electrodb import __version__
from electrodb.utils.provenance import stable_hash, utcnow

__all__ = [
    "TRUST_STATUSES",
    "AuditDocument",
    "CommitteeDocument",
    "WorstFrame",
    "audit_id",
    "committee_id",
]

#: Model-trust verdicts: ``trusted`` (the committee agrees on enough audited frames), ``extrapolating`` (too many
#: frames above the threshold), ``insufficient`` (too few frames audited to say), ``unaudited`` (no audit yet;
#: summaries only).
TRUST_STATUSES = ("trusted", "extrapolating", "insufficient", "unaudited")


def committee_id(member_ids: list[str], driver: int | str = 0) -> str:
    """Deterministic id of a committee: its member model ids (in order) and its driver."""
    return "committee:" + stable_hash({"members": list(member_ids), "driver": driver})


def audit_id(trajectory_id: str, committee: str) -> str:
    """Id of the audit of one trajectory by one committee."""
    return f"{trajectory_id}@{committee}"


class CommitteeDocument(BaseModel):
    """K models registered as one reference; the ``committees`` collection, keyed by ``committee_id``.

    Attributes
    ----------
    committee_id
        :func:`committee_id` of ``member_ids`` and ``driver``.
    name
        Readable name (``demo-mace-committee``); refine rounds append ``-r<round>``.
    member_ids
        ``model_id`` (sha256) of each member, in order; every member has a document in ``models`` and its bytes in
        the blob store, written before this document (nothing half-registered).
    driver
        Member index that drives MD, or ``"mean"`` (the committee mean force).
    elements, r_max
        Chemical symbols and cutoff (Å) shared by every member; members that differ are refused.
    threshold_eV_per_A
        Per-frame max σ_F (eV/Å) above which a frame is flagged as extrapolating.
    calibration
        How the threshold was set (:func:`electrodb.analysis.committee.calibrate_threshold`): ``method``,
        ``target_error_eV_per_A``, ``scale`` (α in error ≈ α·σ_F), ``spearman_atom`` and ``spearman_frame`` (rank
        correlation of σ_F with the driver's true force error on labelled held-out configurations, per atom and
        per configuration), ``recall`` / ``precision`` at the threshold, ``n_configurations``.
    held_out
        Held-out errors: ``members`` (one dict per member, ``rmse_forces_eV_per_A`` ...) and their mean.
    parent_id, refine_round
        The committee this one was refined from (None for a first committee) and the round number (0 first).
    added_configurations, added_sha256
        Configurations a refine round added to the parent's training data, and a hash of them.
    refine
        A refine round's record: held-out errors of parent and child on the old test set and on the newly
        flagged configurations (``before`` / ``after``), the selection settings and the teacher.
    superseded_by
        The committee refined from this one, once registered: results of this one stay queryable but are not the
        default answer.
    """

    model_config = ConfigDict(extra="allow")

    committee_id: str
    name: str
    member_ids: list[str]
    driver: int | Literal["mean"] = 0
    elements: list[str] = Field(default_factory=list)
    r_max: float | None = None
    threshold_eV_per_A: float | None = None
    calibration: dict[str, Any] = Field(default_factory=dict)
    held_out: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict, description="settings, seeds and data splits")
    parent_id: str | None = None
    refine_round: int = 0
    added_configurations: int = 0
    added_sha256: str | None = None
    refine: dict[str, Any] = Field(default_factory=dict)
    superseded_by: str | None = None
    code_version: str = __version__
    last_updated: datetime = Field(default_factory=utcnow)

    @property
    def k(self) -> int:
        return len(self.member_ids)

    @property
    def driver_id(self) -> str:
        """Model id of the member that drives MD (the first member for ``"mean"``: its file carries the identity)."""
        return self.member_ids[0 if self.driver == "mean" else int(self.driver)]


class WorstFrame(BaseModel):
    """One of the configurations a committee disagreed on most."""

    frame: int
    time_ps: float
    sigma_F_max: float | None = Field(description="max per-atom σ_F over the frame (eV/Å); None: not finite")
    atom: int = Field(description="index of the atom with that σ_F")
    element: str


class AuditDocument(BaseModel):
    """One trajectory audited by one committee; the ``audits`` collection, keyed by ``audit_id``.

    Per-frame lists are over the audited frames (every ``frame_stride``-th stored frame, after ``frame_start``).
    Forces in eV/Å, energies in meV/atom.
    """

    model_config = ConfigDict(extra="allow")

    audit_id: str
    trajectory_id: str
    system_id: str | None = None
    committee_id: str
    model_id: str = Field(description="model that drove the trajectory")
    salt: str | None = None
    molality: float | None = None
    temperature: float | None = None
    k: int
    frame_stride: int
    frame_start: int = 0
    frames: list[int] = Field(default_factory=list)
    times_ps: list[float] = Field(default_factory=list)
    sigma_F_max: list[float | None] = Field(default_factory=list, description="per frame: max over atoms of σ_F")
    sigma_F_mean: list[float | None] = Field(default_factory=list, description="per frame: mean over atoms of σ_F")
    sigma_F_p95: list[float | None] = Field(default_factory=list, description="per frame: 95th percentile over atoms")
    sigma_E_meV_per_atom: list[float | None] = Field(default_factory=list, description="per frame: energy spread / N")
    threshold_eV_per_A: float
    n_frames_audited: int
    n_flagged: int
    frac_flagged: float
    sigma_F_max_p95: float | None = Field(None, description="95th percentile over frames of the per-frame max")
    argmax_atom: list[int] = Field(default_factory=list, description="per frame: the atom with the largest σ_F")
    worst: list[WorstFrame] = Field(default_factory=list)
    verdict: dict[str, Any] = Field(
        default_factory=dict, description="{status (TRUST_STATUSES), reason, criterion, ...}"
    )
    n_frames_total: int = Field(0, description="frames of the trajectory when it was audited")
    wall_time_s: float | None = None
    code_version: str = __version__
    last_updated: datetime = Field(default_factory=utcnow)
