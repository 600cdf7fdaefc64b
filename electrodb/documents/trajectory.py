"""Schema of a stored trajectory's metadata (``trajectories`` collection); its frames live in the ``data`` store
as chunks (:mod:`electrodb.store.frames`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from electrodb import __version__
from electrodb.utils.provenance import utcnow

__all__ = ["Status", "TrajectoryDocument"]

Status = Literal["running", "completed", "unstable", "failed"]


class TrajectoryDocument(BaseModel):
    """Metadata of one MD trajectory (frames live in the ``data`` store)."""

    model_config = ConfigDict(extra="allow")

    trajectory_id: str
    system_id: str
    campaign_ids: list[str] = Field(default_factory=list)
    source: Literal["electrodb-md", "ingest"] = "electrodb-md"
    status: Status = "running"
    status_reason: str | None = None
    salt: str
    cation: str
    anion: str
    molality: float = Field(description="mol/kg")
    temperature: float = Field(description="target temperature (K)")
    n_atoms: int
    n_waters: int
    n_cations: int
    n_anions: int
    symbols: list[str]
    masses: list[float] = Field(description="g/mol")
    role: list[int] = Field(description="per atom: 0 water_O, 1 water_H, 2 cation, 3 anion")
    mol_id: list[int]
    ion_center: list[bool]
    model_id: str
    model: dict[str, Any] = Field(default_factory=dict, description="model identity (ModelIdentity fields)")
    md: dict[str, Any] = Field(default_factory=dict, description="MD settings as run")
    targets: dict[str, Any] = Field(
        default_factory=dict, description="convergence-target overrides of the campaign (ConvergenceTargets names)"
    )
    timestep_fs: float
    sample_interval_steps: int
    frame_interval_ps: float
    n_frames: int = 0
    n_chunks: int = 0
    duration_ps: float = 0.0
    wall_time_s: float = 0.0
    ns_per_day: float | None = None
    last_good_frame: int | None = None
    box_length_A: float | None = None
    density_kg_m3: float | None = None
    density_err_kg_m3: float | None = None
    mean_temperature_K: float | None = None
    std_temperature_K: float | None = None
    temperature_err_K: float | None = Field(
        None, description="standard error of mean_temperature_K, autocorrelation-corrected (K)"
    )
    temperature_status: str | None = Field(
        None, description="converged / unconverged / insufficient: did the run hold its target temperature"
    )
    temperature_criterion: str | None = None
    temperature_reason: str | None = None
    md_resources: dict[str, Any] | None = Field(
        None, description="what the production ran on: device ('cpu', 'cuda:0') and CPU threads"
    )
    convergence: dict[str, Any] | None = Field(
        None,
        description="campaigns with until: the last segment's judgement (electrodb.flows.segments.SegmentRecord: "
        "segment, production_ps, per-property status and needs_ps, the decision and its reason)",
    )
    code_version: str = __version__
    created_at: datetime = Field(default_factory=utcnow)
    last_updated: datetime = Field(default_factory=utcnow)
