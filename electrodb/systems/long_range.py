"""Settings of the long-range Coulomb term added to a local NNP (campaign YAML key ``long_range:``).

The term itself (Ewald/PME with torch-pme, the charges per atom, the ASE calculators) lives in
:mod:`electrodb.models.longrange`; the equations are in ``docs/long-range.md``. These settings sit with the other run
settings because a campaign, a training run and a TI flow all carry them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["COULOMB_EV_A", "SPCE_CHARGES", "LongRangeSettings"]

COULOMB_EV_A = 14.399645478425668  # e^2 / (4 pi eps0) in eV Å (CODATA 2018)
SPCE_CHARGES = {"O": -0.8476, "H": 0.4238}


class LongRangeSettings(BaseModel):
    """How the long-range Coulomb term is built (campaign YAML key ``long_range:``).

    The published LiCl recipe is ``LongRangeSettings(charges="ions", epsilon_r=78.3, method="pme",
    cutoff_A=10)``.

    Attributes
    ----------
    charges
        ``"ions"``, ``"all"`` or a dict of charges (e) keyed by role name or element symbol; see the module text.
    water_charges
        Water-model charges (e) for ``"all"``: keys ``"O"`` and ``"H"``; must be neutral (q_O + 2 q_H = 0).
    epsilon_r
        Relative permittivity screening every pair (1 = vacuum; 78.3 = water, the published recipe).
    method
        ``"ewald"`` (O(N^1.5..2), exact reference) or ``"pme"`` (O(N log N), torch-pme's PMECalculator).
    cutoff_A
        Real-space cutoff of the Ewald split (Å).
    accuracy
        Relative truncation tolerance delta of both Ewald sums (GROMACS' ``ewald-rtol``): the split width
        and the k-space resolution follow from it in closed form (:func:`resolve_parameters`).
    smearing_A, lr_wavelength_A, mesh_spacing_A
        Explicit Ewald split width (Gaussian sigma, Å), Ewald k-space wavelength and PME mesh spacing (Å);
        each overrides the value derived from ``accuracy``.
    interpolation_nodes
        PME interpolation points per axis (3..7; 4 = cubic, 6 = default).
    damping_A
        Optional damping length a: pairs interact as erf(r/a)/r; ``None`` = undamped. At most ``cutoff_A / 4``.
    exclude_intramolecular
        Drop pairs inside one molecule (uses ``atoms.arrays["mol_id"]`` when present).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    charges: Literal["ions", "all"] | dict[str, float] = "ions"
    water_charges: dict[str, float] = Field(default_factory=lambda: dict(SPCE_CHARGES))
    epsilon_r: float = Field(1.0, gt=0)
    method: Literal["ewald", "pme"] = "pme"
    cutoff_A: float = Field(10.0, gt=0)
    accuracy: float = Field(1e-5, gt=0, lt=1)
    smearing_A: float | None = Field(None, gt=0)
    lr_wavelength_A: float | None = Field(None, gt=0)
    mesh_spacing_A: float | None = Field(None, gt=0)
    interpolation_nodes: int = Field(6, ge=3, le=7)
    damping_A: float | None = Field(None, gt=0)
    exclude_intramolecular: bool = True

    @field_validator("water_charges")
    @classmethod
    def _neutral_water(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) != {"O", "H"}:
            raise ValueError(f"water_charges needs exactly the keys O and H, got {sorted(value)}")
        if abs(value["O"] + 2 * value["H"]) > 1e-6:
            raise ValueError(f"water charges are not neutral: q_O + 2 q_H = {value['O'] + 2 * value['H']:+.6f}")
        return value

    @model_validator(mode="after")
    def _damping_inside_cutoff(self) -> LongRangeSettings:
        if self.damping_A is not None and self.damping_A > self.cutoff_A / 4:
            raise ValueError(
                f"damping_A = {self.damping_A} Å is longer than cutoff_A / 4 = {self.cutoff_A / 4} Å: the erfc "
                "remainder would not vanish at the real-space cutoff; raise cutoff_A or shorten damping_A"
            )
        return self

    @property
    def prefactor(self) -> float:
        """k_e / epsilon_r in eV Å."""
        return COULOMB_EV_A / self.epsilon_r
