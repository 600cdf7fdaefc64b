"""How a campaign audits its runs with a model committee: :class:`AuditSettings` (campaign YAML key ``audit:``).

A committee (``electrodb model committee``) is K models trained alike; one of them drives the MD and all K are
evaluated on every ``every_frames``-th stored frame. Their force disagreement σ_F says where the run left the
configurations the model was trained on (``docs/committees.md``). Auditing never changes a run, so these settings
are not part of a system id: a committee attached later audits the stored trajectories.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AuditSettings"]


class AuditSettings(BaseModel):
    """Which committee audits a campaign's trajectories, and how often (YAML ``audit:``).

    Attributes
    ----------
    committee
        Committee name or id (``electrodb model list``); the campaign's ``model`` must be its driver member.
    every_frames
        Audit every n-th stored frame (the cost is K/every_frames model evaluations per stored frame).
    max_frames
        Audit at most this many frames per trajectory (the stride grows for longer runs).
    max_flagged_fraction
        A system is ``extrapolating`` when more than this fraction of its audited frames has a max σ_F above the
        committee's calibrated threshold.
    min_frames
        Fewer audited frames give ``insufficient``.
    device
        Where the committee is evaluated (``cpu``, ``cuda``, ``auto``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    committee: str = Field(description="committee name or id (electrodb model list)")
    every_frames: int = Field(10, ge=1, description="audit every n-th stored frame")
    max_frames: int = Field(200, ge=1, description="audit at most this many frames per trajectory")
    max_flagged_fraction: float = Field(
        0.05, ge=0, lt=1, description="extrapolating above this fraction of flagged frames"
    )
    min_frames: int = Field(10, ge=1, description="fewer audited frames: insufficient")
    device: str = Field("cpu", description="device for the committee evaluation")
