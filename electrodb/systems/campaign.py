"""Campaign specifications: salts × concentrations × temperatures, one model, one set of MD settings.

A campaign YAML file expands into :class:`SystemSpec` objects. Each has a deterministic ``system_id``: the
hash of everything that determines its result (composition after rounding, temperature, packing, model
identity, MD settings, replica index), so re-running a campaign finds the systems already done and skips them.
See ``docs/campaigns.md`` for the file format.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from electrodb.analysis.convergence import ConvergenceTargets
from electrodb.systems.boxes import BoxCounts, box_counts
from electrodb.systems.budget import Budget
from electrodb.systems.chemistry import ChemistryError, parse_salt
from electrodb.systems.committee import AuditSettings
from electrodb.systems.long_range import LongRangeSettings
from electrodb.utils.provenance import stable_hash
from electrodb.utils.safe_yaml import SpecError, load_yaml_mapping

__all__ = [
    "MAX_ATOMS_PER_BOX",
    "MAX_SYSTEMS",
    "Campaign",
    "CampaignLimits",
    "MDSettings",
    "PackingSettings",
    "SizeSpec",
    "StabilitySettings",
    "SystemSpec",
]


@functools.cache
def _solubility_table() -> dict[str, tuple[float, str]]:
    text = resources.files("electrodb.data").joinpath("solubility_25C.csv").read_text()
    return {r["salt"]: (float(r["solubility_mol_per_kg"]), r["source"]) for r in csv.DictReader(io.StringIO(text))}


def solubility(salt: str) -> tuple[float, str] | None:
    """Approximate saturation molality at 25 °C and its source (``electrodb/data/solubility_25C.csv``), or None."""
    return _solubility_table().get(parse_salt(salt).formula)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StabilitySettings(_Strict):
    """Thresholds of the MD stability monitor (an NNP that leaves its training domain can blow up)."""

    max_temperature_factor: float = Field(2.0, gt=1.0, description="fail when T > factor × target (K/K)")
    min_distance_h_A: float = Field(0.5, gt=0, description="closest allowed distance of any pair with H (Å)")
    min_distance_heavy_A: float = Field(1.0, gt=0, description="closest allowed heavy–heavy distance (Å)")
    max_force_eV_A: float = Field(50.0, gt=0, description="largest allowed force component norm (eV/Å)")
    check_every_steps: int = Field(10, ge=1)
    retry_half_timestep: bool = Field(True, description="retry once with half the timestep after a blow-up")


class MDSettings(_Strict):
    """Molecular dynamics protocol shared by every system of a campaign."""

    timestep_fs: float = Field(0.5, gt=0, le=5.0)
    minimize_steps: int = Field(30, ge=0, description="FIRE steps before MD (packmol boxes are strained)")
    minimize_fmax_eV_A: float = Field(0.5, gt=0)
    nvt_warmup_ps: float = Field(
        0.1, ge=0, description="Langevin warm-up (friction warmup_friction_per_fs) before NPT/production (ps)"
    )
    npt: bool = Field(True, description="equilibrate the density in NPT; False keeps the packed density")
    npt_max_ps: float = Field(5.0, gt=0, description="upper bound on NPT time (ps)")
    npt_block_ps: float = Field(0.5, gt=0, description="block length for the density convergence test (ps)")
    density_tolerance: float = Field(0.005, gt=0, description="relative change of block-mean density to stop")
    pressure_bar: float = 1.0
    barostat_time_ps: float = Field(1.0, gt=0, description="Berendsen barostat relaxation time (ps)")
    compressibility_per_bar: float = Field(4.57e-5, gt=0, description="isothermal compressibility of water")
    production_ps: float = Field(2.0, gt=0)
    thermostat: Literal["bussi", "langevin", "nose-hoover-chain"] = Field(
        "bussi",
        description="production thermostat: 'bussi' (canonical velocity rescaling, time constant "
        "thermostat_time_fs; preserves dynamics), 'langevin' (friction_per_fs) or 'nose-hoover-chain'",
    )
    friction_per_fs: float = Field(
        0.001,
        gt=0,
        description="Langevin friction for production with thermostat='langevin' (1/fs); slows diffusion by "
        "about 1/(1 + M γ D0 / kT) (~2 % for water at 0.001/fs, ~14 % at 0.01/fs)",
    )
    warmup_friction_per_fs: float = Field(
        0.05,
        gt=0,
        description="Langevin friction of the warm-up (1/fs): strong, so the heat released by a strained "
        "packed box is removed within ~10 fs (kinetic-energy relaxation time 1/(2γ))",
    )
    thermostat_time_fs: float = Field(
        100.0,
        gt=0,
        description="Bussi / Nose-Hoover chain time constant (fs): relaxation time of the kinetic energy",
    )
    nve_drift_steps: int = Field(
        400,
        ge=0,
        description="velocity-Verlet steps of the once-per-model NVE energy-drift check before the first "
        "production run (0: skip the check)",
    )
    sample_every_steps: int = Field(20, ge=1, description="frames stored every this many steps")
    checkpoint_every_steps: int = Field(
        1000, ge=1, description="largest interval between checkpoints; runs get at least 10 checkpoints"
    )
    seed: int = 1
    stability: StabilitySettings = StabilitySettings()
    batch: int | Literal["auto", "off"] = Field(
        "auto",
        exclude=True,  # how boxes are scheduled, not what is simulated: never part of a system id
        description="batched torch-sim production: 'auto' (batch on a GPU with torch-sim's autobatcher, "
        "sequential on CPU), 'off' (always sequential) or N (at most N boxes per integration); "
        "batching needs thermostat: langevin (electrodb.flows.batched_campaign)",
    )

    @field_validator("batch", mode="before")
    @classmethod
    def _batch_value(cls, value: Any) -> Any:
        if value is False:  # YAML 1.1 reads a bare `off` as false
            return "off"
        if isinstance(value, str) and value.strip().lower() in ("auto", "off"):
            return value.strip().lower()
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise ValueError(
            f"md.batch must be auto, off or a whole number of boxes per integration (>= 1), not {value!r}; "
            "write e.g. batch: auto, batch: off or batch: 8"
        )

    @model_validator(mode="after")
    def _batch_needs_langevin(self) -> MDSettings:
        if isinstance(self.batch, int) and self.thermostat != "langevin":
            raise ValueError(
                f"md.batch: {self.batch} runs batched torch-sim MD, which is Langevin only: set "
                f"md.thermostat: langevin, or md.batch: off to keep thermostat {self.thermostat!r}"
            )
        return self

    @property
    def n_production_steps(self) -> int:
        return round(self.production_ps * 1000 / self.timestep_fs)


class PackingSettings(_Strict):
    tolerance_A: float = Field(2.0, gt=0.5, le=3.5)
    seed: int = 1


class SizeSpec(_Strict):
    """Box size as a number of waters or a target atom count (exactly one)."""

    n_waters: int | None = Field(None, ge=1)
    target_atoms: int | None = Field(None, ge=3)

    @model_validator(mode="after")
    def _exactly_one(self) -> SizeSpec:
        if (self.n_waters is None) == (self.target_atoms is None):
            raise ValueError("size needs exactly one of n_waters or target_atoms")
        return self


#: Default bound on the systems one campaign expands into (salts × concentrations × temperatures × replicas).
MAX_SYSTEMS = 10_000
#: Default bound on the atoms of one box (waters × 3 + ions' atoms): far above what an NNP runs on one device.
MAX_ATOMS_PER_BOX = 100_000


class CampaignLimits(_Strict):
    """Bounds a campaign is checked against before anything is expanded or built (campaign YAML key ``limits:``).

    A campaign above them is refused with one line naming the bound; raise it deliberately in the file
    (``limits: {max_systems: 50000}``). The limits say how much may be planned, not what is simulated, so
    they are never part of a campaign or system id.
    """

    max_systems: int = Field(MAX_SYSTEMS, ge=1, description="systems per campaign (salts × c × T × replicas)")
    max_atoms_per_box: int = Field(MAX_ATOMS_PER_BOX, ge=3, description="atoms per box")


class SystemSpec(_Strict):
    """One electrolyte system of a campaign, fully determined."""

    system_id: str
    box_id: str
    campaign: str
    salt: str
    cation: str
    anion: str
    concentration: float
    concentration_unit: Literal["mol/kg", "mol/L"]
    molality: float
    temperature: float
    replica: int
    n_waters: int
    n_cations: int
    n_anions: int
    n_atoms: int
    box_length_A: float
    density_kg_m3: float
    density_source: str
    model: str
    model_id: str
    md: MDSettings
    packing: PackingSettings
    targets: dict[str, float] = Field(default_factory=dict, description="convergence-target overrides")
    long_range: LongRangeSettings | None = Field(None, description="long-range Coulomb term added to the NNP")
    until: tuple[str, ...] | None = Field(
        None, description="properties to run until converged (None: run exactly md.production_ps)"
    )
    budget: Budget | None = Field(None, description="how much MD the system may spend (with until)")

    @property
    def counts(self) -> BoxCounts:
        return box_counts(self.salt, self.molality, "mol/kg", self.temperature, n_waters=self.n_waters)


class Campaign(_Strict):
    """A screening campaign. Load with :meth:`from_yaml`; expand with :meth:`systems`."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    salts: list[str] = Field(min_length=1)
    concentrations: list[float] = Field(min_length=1)
    concentration_unit: Literal["mol/kg", "mol/L"] = "mol/kg"
    temperatures: list[float] = Field(default_factory=lambda: [298.15], min_length=1)
    size: SizeSpec = SizeSpec(n_waters=128)
    model: str = Field(
        description="MACE file path, foundation name (mace-mp-0:small), chgnet:r2scan, or committee:NAME (the "
        "current driver of a registered committee, which then audits the runs)"
    )
    model_cutoff_A: float = Field(5.0, gt=0, description="NNP cutoff used for the minimum box check (Å)")
    replicas: int = Field(1, ge=1)
    limits: CampaignLimits = Field(
        default_factory=CampaignLimits,
        exclude=True,  # how much may be planned, not what is simulated: never part of a campaign or system id
        description="bounds on systems per campaign and atoms per box (raise them deliberately)",
    )
    md: MDSettings = MDSettings()
    packing: PackingSettings = PackingSettings()
    thermo: bool = Field(False, description="build activity/osmotic coefficients over the concentration series")
    solvation: bool = Field(False, description="run thermodynamic-integration solvation free energies")
    solvation_ti: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides of electrodb.flows.solvation.TISettings (n_windows, steps_per_window, …)",
    )
    allow_above_solubility: bool = Field(False, description="accept concentrations above the salt's solubility")
    long_range: LongRangeSettings | None = Field(
        None,
        description="long-range Coulomb term added to the NNP (electrodb.models.longrange; e.g. {charges: ions, "
        "epsilon_r: 78.3, method: pme, cutoff_A: 10}); part of every system id",
    )
    targets: dict[str, float] = Field(
        default_factory=dict,
        description="convergence targets to override (electrodb.analysis.convergence.ConvergenceTargets), "
        "e.g. {D_rel_err: 0.1}",
    )
    until: list[str] | Literal["all"] | None = Field(
        None,
        description="run production in segments until these summary properties converge (a list of names, or "
        "'all'); needs a budget. Without until (and without budget) a system runs exactly md.production_ps",
    )
    budget: Budget | None = Field(None, description="how much MD the campaign may spend; with until")
    audit: AuditSettings | None = Field(
        None,
        description="audit every run with a model committee (its driver must be the campaign's model): force "
        "disagreement per frame and a model-trust verdict (docs/committees.md); never part of a system id",
    )

    @field_validator("until", mode="before")
    @classmethod
    def _until_shape(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "all":
            return "all"
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and not value:
            raise ValueError("until lists no property: name the properties to converge (e.g. [r_cation_O]) or 'all'")
        return value

    @model_validator(mode="after")
    def _until_needs_budget(self) -> Campaign:
        if self.budget is not None and self.until is None:
            object.__setattr__(self, "until", "all")  # default: every property the campaign's targets judge
        if self.until is not None and (self.budget is None or not self.budget.bounded):
            raise ValueError(
                "until needs a budget, so that a property that never converges stops: add e.g. budget: "
                "{max_production_ps: 50} (or max_wall_hours, total_core_hours, total_gpu_hours)"
            )
        if self.until is not None and self.budget is not None and self.budget.max_production_ps is not None:
            tg = ConvergenceTargets().with_overrides(self.targets)
            shortest = tg.D_min_origins * tg.D_min_window_ps
            wants_d = self.until == "all" or any(p.startswith("D_") for p in self.until)
            if wants_d and self.until != "all" and shortest > self.budget.max_production_ps:
                raise ValueError(
                    f"until asks for D, whose fit window of at least D_min_window_ps = {tg.D_min_window_ps:g} ps must "
                    f"end by run/D_min_origins = run/{tg.D_min_origins}: that needs >= {shortest:g} ps of production, "
                    f"more than budget.max_production_ps = {self.budget.max_production_ps:g} ps; raise the budget "
                    "or lower targets.D_min_window_ps"
                )
        return self

    @property
    def segment_ps(self) -> float:
        """Production of the first segment (ps): ``budget.segment_ps``, else ``md.production_ps``."""
        return (self.budget.segment_ps if self.budget else None) or self.md.production_ps

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, targets: dict[str, float]) -> dict[str, float]:
        ConvergenceTargets().with_overrides(targets)  # raises ValueError naming the unknown ones
        return targets

    @field_validator("salts")
    @classmethod
    def _known_salts(cls, salts: list[str]) -> list[str]:
        try:
            return [parse_salt(s).formula for s in salts]
        except ChemistryError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _thermo_needs_a_series(self) -> Campaign:
        if self.thermo and len(set(self.concentrations)) < 3:
            raise ValueError(
                "thermo: true needs at least 3 concentrations (activity coefficients are integrated over a "
                f"concentration series); got {sorted(set(self.concentrations))}"
            )
        return self

    @field_validator("concentrations", "temperatures", mode="before")
    @classmethod
    def _numbers_only(cls, values: Any) -> Any:
        # pydantic's lax mode reads `true` as 1.0 and "2" as 2.0: a campaign number must be written as a number.
        for v in values if isinstance(values, list) else [values]:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"{v!r} is not a number; write concentrations and temperatures as plain numbers")
        return values

    @model_validator(mode="after")
    def _within_limits(self) -> Campaign:
        n = len(self.salts) * len(self.concentrations) * len(self.temperatures) * self.replicas
        if n > self.limits.max_systems:
            raise ValueError(
                f"the campaign expands into {n} systems ({len(self.salts)} salts × {len(self.concentrations)} "
                f"concentrations × {len(self.temperatures)} temperatures × {self.replicas} replicas), above the "
                f"limit of {self.limits.max_systems}; split it, or raise limits.max_systems deliberately"
            )
        # 3 atoms per water at least: a box of n_waters (or a target) above the limit is refused before any count
        atoms = self.size.target_atoms if self.size.target_atoms is not None else 3 * (self.size.n_waters or 0)
        if atoms > self.limits.max_atoms_per_box:
            raise ValueError(
                f"size asks for boxes of at least {atoms} atoms, above the limit of "
                f"{self.limits.max_atoms_per_box} atoms per box; use a smaller size, or raise "
                "limits.max_atoms_per_box deliberately"
            )
        return self

    @model_validator(mode="after")
    def _below_solubility(self) -> Campaign:
        if self.allow_above_solubility:
            return self
        for salt in self.salts:
            limit = solubility(salt)
            if limit is None:
                continue
            too_high = [c for c in self.concentrations if c > limit[0]]
            # A molarity is below the molality of the same solution, so it is checked against the same limit.
            if too_high:
                raise ValueError(
                    f"{salt} at {too_high} {self.concentration_unit} is above its solubility, about {limit[0]:g} "
                    f"mol/kg at 25 °C ({limit[1]}); lower the concentration or set allow_above_solubility: true "
                    "for a supersaturated study"
                )
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> Campaign:
        """Load and validate a campaign file; every problem is a ``ValueError`` naming the file and the field."""
        path = Path(path)
        data = load_yaml_mapping(path, "campaign file")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise SpecError(f"{path}: {problems}") from None

    @property
    def campaign_id(self) -> str:
        # a campaign without audit keeps the id it had before audits existed
        return stable_hash(self.model_dump(mode="json", exclude={"audit"} if self.audit is None else None))

    def model_identity(self) -> str:
        """sha256 of the model file when the reference is an existing file, else the reference string."""
        path = Path(self.model).expanduser()
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            return f"sha256:{digest.hexdigest()}"
        return f"name:{self.model}"

    def systems(self, model_id: str | None = None) -> list[SystemSpec]:
        """Expand into system specs (salt × concentration × temperature × replica), in a stable order.

        Raises the first box error (impossible concentration, box below 2 × cutoff) with the system named.
        """
        model_id = model_id or self.model_identity()
        specs = []
        for salt_name in self.salts:
            salt = parse_salt(salt_name)
            for conc in self.concentrations:
                for temperature in self.temperatures:
                    try:
                        c = box_counts(
                            salt,
                            conc,
                            self.concentration_unit,
                            temperature,
                            n_waters=self.size.n_waters,
                            target_atoms=self.size.target_atoms,
                            min_box_length=2 * self.model_cutoff_A,
                        )
                    except ValueError as exc:
                        raise ValueError(
                            f"{salt_name} at {conc} {self.concentration_unit}, {temperature} K: {exc}"
                        ) from exc
                    if c.n_atoms > self.limits.max_atoms_per_box:
                        raise ValueError(
                            f"{salt_name} at {conc} {self.concentration_unit}, {temperature} K: the box holds "
                            f"{c.n_atoms} atoms, above the limit of {self.limits.max_atoms_per_box} atoms per box; "
                            "use a smaller size, or raise limits.max_atoms_per_box deliberately"
                        )
                    box_payload = {
                        "salt": c.salt,
                        "n_formula": c.n_formula,
                        "n_waters": c.n_waters,
                        "packing": self.packing.model_dump(mode="json"),
                    }
                    box_id = stable_hash(box_payload)
                    for replica in range(self.replicas):
                        payload = {
                            **box_payload,
                            "temperature": temperature,
                            "model_id": model_id,
                            # the run length is not the system: a longer run continues the stored trajectory
                            "md": self.md.model_dump(mode="json", exclude={"production_ps"}),
                            "replica": replica,
                        }
                        if self.long_range is not None:  # a different Hamiltonian: a different system
                            payload["long_range"] = self.long_range.model_dump(mode="json")
                        specs.append(
                            SystemSpec(
                                system_id=stable_hash(payload),
                                box_id=box_id,
                                campaign=self.name,
                                salt=c.salt,
                                cation=salt.cation.name,
                                anion=salt.anion.name,
                                concentration=conc,
                                concentration_unit=self.concentration_unit,
                                molality=c.molality,
                                temperature=temperature,
                                replica=replica,
                                n_waters=c.n_waters,
                                n_cations=c.n_cations,
                                n_anions=c.n_anions,
                                n_atoms=c.n_atoms,
                                box_length_A=c.box_length_A,
                                density_kg_m3=c.density_kg_m3,
                                density_source=c.density_source,
                                model=self.model,
                                model_id=model_id,
                                md=self.md,
                                packing=self.packing,
                                targets=self.targets,
                                long_range=self.long_range,
                                until=None
                                if self.until is None
                                else tuple(self.until)
                                if self.until != "all"
                                else ("all",),
                                budget=self.budget,
                            )
                        )
        return specs
