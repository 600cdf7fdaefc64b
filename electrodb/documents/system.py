"""Schema of a stored simulation box (``systems`` collection): the packed box of a system, later its equilibrated
state, with the labels and provenance the MD Makers (:mod:`electrodb.flows.md`) write."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from electrodb import __version__

__all__ = ["SystemDocument"]


class SystemDocument(BaseModel):
    """A packed box, or an equilibrated one, with labels and provenance.

    Attributes
    ----------
    system_id
        The system's id (that of its :class:`~electrodb.systems.campaign.SystemSpec`).
    stage
        ``packed`` or ``equilibrated``.
    status, status_reason
        ``ok``, or why the box cannot be used (e.g. ``unstable`` during equilibration).
    salt, molality, temperature
        Composition (mol/kg) and target temperature (K).
    atoms
        Positions (Å), cell (Å), symbols, per-atom labels and, when set, momenta (JSON-safe, see
        :func:`electrodb.flows.md_records.atoms_to_dict`).
    density_kg_m3, density_err_kg_m3, density_converged
        Density of the box (kg/m³): the packing estimate, or the NPT mean with its error and convergence.
    box_length_A
        Box edge length (Å).
    n_steps, wall_time_s
        MD steps and wall time (s) spent on this stage.
    code_version
        ElectroDB version that wrote the document.
    """

    system_id: str
    stage: str = Field(description="'packed' or 'equilibrated'")
    status: str = "ok"
    status_reason: str | None = None
    salt: str
    molality: float
    temperature: float
    atoms: dict[str, Any] = Field(description="positions, cell, symbols and per-atom labels")
    density_kg_m3: float
    density_err_kg_m3: float | None = None
    density_converged: bool | None = None
    box_length_A: float
    n_steps: int = 0
    wall_time_s: float = 0.0
    code_version: str = __version__
