"""How much MD a campaign that runs until its properties converge may spend: :class:`Budget` (YAML ``budget:``).

A campaign with ``until:`` runs each system's production in segments and judges the run after each one
(:mod:`electrodb.flows.segments`); the budget bounds what that may cost, per system and for the whole campaign.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["Budget"]


class Budget(BaseModel):
    """How much MD a campaign with ``until:`` may spend (campaign YAML key ``budget:``); see ``docs/campaigns.md``.

    Per system, production runs in segments of ``segment_ps`` until the ``until`` properties converge or the
    system's ``max_production_ps`` or ``max_wall_hours`` is reached; the campaign stops adding segments once its
    ``total_core_hours`` (CPU runs: wall hours × threads) or ``total_gpu_hours`` (GPU runs: wall hours) are
    spent. A budget is how much may be spent, not what is simulated: it is never part of a system id, so raising
    it later continues every system from its stored trajectory.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment_ps: float | None = Field(
        None, description="production per segment (ps); default md.production_ps; later segments are sized by needs_ps"
    )
    max_production_ps: float | None = Field(None, description="production per system, at most (ps)")
    max_wall_hours: float | None = Field(None, description="wall time per system, at most (h)")
    total_core_hours: float | None = Field(None, description="CPU core hours for the whole campaign, at most")
    total_gpu_hours: float | None = Field(None, description="GPU hours for the whole campaign, at most")

    @field_validator("*")
    @classmethod
    def _positive(cls, value: float | None, info: Any) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(
                f"{info.field_name} must be a positive number, not {value!r}: give a budget above zero or leave "
                f"{info.field_name} out"
            )
        return value

    @model_validator(mode="after")
    def _segment_within_budget(self) -> Budget:
        if self.segment_ps and self.max_production_ps and self.segment_ps > self.max_production_ps:
            raise ValueError(
                f"segment_ps ({self.segment_ps:g} ps) is longer than max_production_ps ({self.max_production_ps:g} "
                "ps): lower segment_ps or raise max_production_ps"
            )
        return self

    @property
    def bounded(self) -> bool:
        """Whether a system's production is bounded (per-system ps or wall hours, or a campaign total)."""
        return any(
            v is not None
            for v in (self.max_production_ps, self.max_wall_hours, self.total_core_hours, self.total_gpu_hours)
        )
