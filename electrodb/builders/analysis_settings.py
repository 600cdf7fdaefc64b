"""The parameters of the trajectory analysis (:class:`AnalysisSettings`): RDF grid, blocks, shells, residence
tolerance and η; their hash is part of every property document's provenance."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from electrodb.utils.provenance import stable_hash

__all__ = ["AnalysisSettings"]


class AnalysisSettings(BaseModel):
    """Parameters of the trajectory analysis; their hash is part of every document's provenance."""

    model_config = ConfigDict(frozen=True)

    rdf_r_max_A: float | None = Field(
        None,
        gt=0,
        description="upper RDF range (Å); None = 0.999 × half the smallest cell width (what Kirkwood–Buff "
        "integrals need), a number caps it; never more than 5000 bins",
    )
    rdf_bin_A: float = Field(0.02, description="RDF bin width (Å)")
    n_blocks: int = Field(5, ge=2, description="time blocks for uncertainties")
    min_frames: int = Field(20, ge=5, description="trajectories with fewer frames are skipped")
    viscosity_Pa_s: float | None = Field(
        None,
        gt=0,
        description="user override of η (Pa·s) for Yeh–Hummer; None = the solution's viscosity: Green–Kubo from the "
        "run's stress, else Laliberté's correlation for the salt, else pure water (see viscosity_source)",
    )
    residence_t_star_ps: float = Field(2.0, description="IMM tolerance t* (ps)")
    fallback_shell_A: dict[str, float] = Field(
        default_factory=lambda: {"cation-O_w": 3.0, "anion-O_w": 3.8, "cation-anion": 3.5},
        description="first-shell cutoffs when the RDF has no usable first minimum (Å)",
    )

    @property
    def digest(self) -> str:
        return stable_hash(self.model_dump(mode="json"))
