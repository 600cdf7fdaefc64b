"""Alchemical solvation free energy of one neutral formula unit by thermodynamic integration with an NNP.

:class:`LambdaCalculator` mixes the coupled state (the NNP on the whole box) with the decoupled state (the NNP on
the box without the ions plus the NNP on each ion alone) and a soft-core cavity wall, along the two legs of
:mod:`electrodb.analysis.ti_paths`. :class:`SolvationTIMaker` builds the jobflow Flow

    setup (pack one formula unit in water, minimise, NVT) → one job per (leg, λ) window → combine

whose windows are independent jobs (they run in parallel on a FireWorks/jobflow-remote worker pool). The combine
job writes a ``solvation`` document (:class:`electrodb.documents.solvation.SolvationDocument`); the raw windows
are kept in the ``data`` store so that :class:`electrodb.builders.solvation.SolvationBuilder` can re-analyse them.
Equations, assumptions and caveats: ``docs/solvation.md``. With a long-range Coulomb term (``long_range``, or
the term a delta-learned model was trained without) every state uses NNP + E_LR, coupled with the NNP's λ
coefficient (``docs/solvation.md`` §"Long-range term").
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.geometry import find_mic
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from jobflow import Flow, Maker, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from electrodb import __version__
from electrodb.analysis.ti_paths import (
    LEGS,
    window_lambdas,
)
from electrodb.documents.solvation import (
    SolvationDocument,
    assemble_solvation_document,
    put_ti_docs,
    run_blob_uuid,
    solvation_record,
    window_blob_uuid,
)
from electrodb.flows.job_io import job_stores, output_document, store_job
from electrodb.flows.md_records import atoms_from_dict, atoms_to_dict
from electrodb.flows.training import model_long_range, resolve_long_range
from electrodb.md.alchemical import LambdaCalculator, WallSettings, WindowRun, nnp_energy_forces, run_window
from electrodb.md.dynamics import MDInstabilityError, StabilityMonitor, minimize
from electrodb.models.loader import load_model
from electrodb.models.longrange import LongRangeCalculator, atomic_charges
from electrodb.models.reference import ModelRef
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.boxes import ROLE_CODES, box_counts, pack_box
from electrodb.systems.campaign import MDSettings, PackingSettings
from electrodb.systems.chemistry import WATER_MOLAR_MASS_KG, parse_salt
from electrodb.systems.long_range import LongRangeSettings
from electrodb.utils.provenance import stable_hash, utcnow

__all__ = [
    "LambdaCalculator",
    "SolvationTIMaker",
    "TIAnalysisSettings",
    "TISettings",
    "WallSettings",
    "WindowRun",
    "effective_long_range",
    "nnp_energy_forces",
    "run_window",
    "solvation_id",
    "ti_combine",
    "ti_setup",
    "ti_window",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TIAnalysisSettings(_Strict):
    """Post-processing choices: they change the reported numbers, not the sampling (not part of the id)."""

    discard_fraction: float = Field(0.2, ge=0, lt=1, description="fraction of each window dropped as equilibration")
    born_radius_A: float | None = Field(
        None, gt=0, description="R_c of the Born long-range correction (Å); None: the model cutoff r_max"
    )
    dielectric_constant: float | None = Field(None, gt=1, description="ε_r; None: water at T (Malmberg–Maryott)")
    standard_pressure_Pa: float = Field(101325.0, gt=0, description="gas standard state p° (Pa); 1e5 for 1 bar")
    standard_concentration_mol_L: float = Field(1.0, gt=0)
    gas_phase_ion_energies_eV: dict[str, float] | None = Field(
        None,
        description="energies of the isolated *charged* ions by the NNP's reference method, keyed by ion name "
        "('Na+'), on the NNP's energy scale; enables the gas-reference correction (docs/solvation.md §6)",
    )


class TISettings(_Strict):
    """Sampling protocol of the two-leg thermodynamic integration."""

    n_windows: int = Field(5, ge=1, le=32, description="Gauss–Legendre order of the coupling leg")
    n_windows_cavity: int | None = Field(None, ge=1, le=32, description="order of the cavity leg (None: n_windows)")
    convergence_orders: tuple[int, ...] = Field(
        (3,), description="extra Gauss–Legendre orders run on both legs for the convergence table"
    )
    steps_per_window: int = Field(2000, ge=2)
    sample_every: int = Field(1, ge=1, description="∂U/∂λ is recorded every this many MD steps")
    equilibration_steps: int = Field(1000, ge=0, description="NVT steps with the full NNP before the windows")
    friction_per_fs: float = Field(0.01, gt=0, description="Langevin friction of setup and windows (1/fs)")
    cavity_exponent: float = Field(4.0, ge=1, description="wall strength μ^p along the cavity leg")
    wall: WallSettings = WallSettings()
    isolated_ions: Literal["vacuum", "periodic"] = Field(
        "vacuum", description="cell of the isolated-ion energies: non-periodic, or the box cell with pbc"
    )
    model_dtype: Literal["float32", "float64"] = "float32"
    analysis: TIAnalysisSettings = TIAnalysisSettings()

    @field_validator("convergence_orders")
    @classmethod
    def _orders(cls, orders: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= int(n) <= 32 for n in orders):
            raise ValueError("convergence_orders must be Gauss–Legendre orders between 1 and 32")
        return tuple(sorted({int(n) for n in orders}))

    @property
    def cavity_order(self) -> int:
        return self.n_windows_cavity or self.n_windows

    def orders(self, leg: str) -> list[int]:
        main = self.cavity_order if leg == "cavity" else self.n_windows
        return sorted({main, *self.convergence_orders})

    def sampling_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"analysis"})


def solvation_id(
    salt: str,
    n_waters: int,
    temperature: float,
    model_id: str,
    settings: TISettings,
    md: MDSettings,
    packing: PackingSettings,
    long_range: Any = None,
) -> str:
    """stable_hash of everything that determines the sampled windows (analysis settings excluded).

    ``long_range`` (LongRangeSettings or its dict) enters only when given, so ids without the term are unchanged.
    """
    payload = {
        "kind": "solvation_ti",
        "salt": parse_salt(salt).formula,
        "n_waters": n_waters,
        "temperature": temperature,
        "model_id": model_id,
        "ti": settings.sampling_payload(),
        "md": md.model_dump(mode="json"),
        "packing": packing.model_dump(mode="json"),
    }
    if long_range is not None:
        payload["long_range"] = _long_range(long_range).model_dump(mode="json")
    return stable_hash(payload)


# --------------------------------------------------------------------------- jobs


def _stores() -> ElectroDBStores:
    """The running job's stores (those of the JobStore its manager handed it)."""
    return job_stores("data", "solvation")


def _load(model: str, dtype: str) -> Any:
    """The model ``model`` (a path or reference) loaded in precision ``dtype``."""
    return load_model(ModelRef.parse(model), dtype=dtype)  # type: ignore[arg-type]


def _long_range(value: Any) -> Any:
    """LongRangeSettings from settings or their JSON dict (None stays None)."""
    if value is None:
        return None
    return LongRangeSettings.model_validate(value)


def effective_long_range(requested: Any, model_id: str, model: str) -> tuple[Any, str | None]:
    """The term to run TI with: ``requested``, or the one a delta-learned model was trained without.

    See :func:`electrodb.flows.training.resolve_long_range` (a conflicting request raises ModelError).
    """
    recorded = model_long_range(job_stores("models"), model_id)
    return resolve_long_range(_long_range(requested), recorded, f"model {model!r}")


def _ion_layout(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    role = atoms.arrays["role"]
    ions = np.flatnonzero((role == ROLE_CODES["cation"]) | (role == ROLE_CODES["anion"]))
    return ions, atoms.arrays["mol_id"][ions]


def _ion_radii(atoms: Atoms, salt_name: str, ions: np.ndarray) -> list[float | None]:
    """Shannon radius (Å) of each ion atom of a monatomic ion, None for atoms of molecular ions."""
    salt = parse_salt(salt_name)
    role = atoms.arrays["role"]
    out: list[float | None] = []
    for i in ions:
        ion = salt.cation if role[i] == ROLE_CODES["cation"] else salt.anion
        out.append(ion.radius_A if ion.n_atoms == 1 else None)
    return out


def _wall_table(atoms: Atoms, salt_name: str, wall: WallSettings) -> dict[str, dict[str, float]]:
    """The wall radii used, per ion species: {"Na+": {"O": 2.12, "H": 1.12}, ...} (Å)."""
    salt = parse_salt(salt_name)
    out = {}
    for ion in (salt.cation, salt.anion):
        radius = ion.radius_A if ion.n_atoms == 1 else None
        o, h = wall.pair_sigma([radius], np.array([False, True]))[0]
        out[ion.name] = {"O": float(o), "H": float(h), "ion": wall.sigma_ion_A}
    return out


def _isolated_ion_energies(atoms: Atoms, calc: Calculator, salt_name: str) -> dict[str, float]:
    """NNP energy of each ion species alone in vacuum (eV), at its geometry in the box (first instance)."""
    salt = parse_salt(salt_name)
    ions, groups = _ion_layout(atoms)
    out: dict[str, float] = {}
    role = atoms.arrays["role"]
    for label in dict.fromkeys(groups.tolist()):
        idx = ions[groups == label]
        name = salt.cation.name if role[idx[0]] == ROLE_CODES["cation"] else salt.anion.name
        if name in out:
            continue
        sub = atoms[idx]
        if idx.size > 1:
            sub.positions = sub.positions[0] + find_mic(sub.positions - sub.positions[0], atoms.cell, atoms.pbc)[0]
        sub.pbc, sub.cell = False, np.zeros((3, 3))
        out[name] = nnp_energy_forces(calc, sub)[0]
    return out


@store_job
def ti_setup(
    salt: str,
    n_waters: int,
    temperature: float,
    model: str,
    settings: dict,
    md: dict,
    packing: dict,
    long_range: dict | None = None,
) -> dict[str, Any] | Response:
    """Pack exactly one formula unit with ``n_waters`` waters, minimise and equilibrate (NVT, full NNP).

    ``long_range`` (LongRangeSettings as a dict) adds the long-range term to the NNP; a model trained with a term
    removed (its ``models`` document) gets that term when none is given. The term used is ``run["long_range"]``.

    Returns ``{"solvation_id", "status", "atoms", "run"}``; ``run`` (also stored in ``data`` as kind ``ti_run``)
    holds everything the analysis needs besides the windows.
    """
    ti, mds, pk = (
        TISettings.model_validate(settings),
        MDSettings.model_validate(md),
        PackingSettings.model_validate(packing),
    )
    salt_obj = parse_salt(salt)
    counts = box_counts(salt_obj, 1.0 / (n_waters * WATER_MOLAR_MASS_KG), "mol/kg", temperature, n_waters=n_waters)
    if counts.n_formula != 1:
        raise ValueError(
            f"expected exactly one formula unit of {salt_obj} with {n_waters} waters, got {counts.n_formula}"
        )
    packed = pack_box(counts, seed=pk.seed, tolerance=pk.tolerance_A)
    atoms = packed.atoms
    loaded = _load(model, ti.model_dtype)
    loaded.check_elements(atoms.get_chemical_symbols())
    identity = loaded.identity.model_dump(mode="json")
    term, term_source = effective_long_range(long_range, identity["model_id"], model)
    sid = solvation_id(salt_obj.formula, n_waters, temperature, identity["model_id"], ti, mds, pk, term)
    calc = loaded.calculator()
    if term is not None:
        atoms.calc = LongRangeCalculator.for_system(calc, term, atoms, salt_obj)
    else:
        atoms.calc = calc
    started = time.perf_counter()
    status, reason = "ok", None
    try:
        minimize(atoms, mds.minimize_steps, mds.minimize_fmax_eV_A)
        rng = np.random.default_rng(mds.seed)
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        Stationary(atoms)
        if ti.equilibration_steps:
            dyn = Langevin(
                atoms, mds.timestep_fs * units.fs, temperature_K=temperature,
                friction=ti.friction_per_fs / units.fs, fixcm=False, rng=rng,
            )  # fmt: skip
            monitor = StabilityMonitor.for_atoms(atoms, mds.stability, temperature)
            dyn.attach(lambda: monitor.check(atoms, dyn.nsteps), interval=mds.stability.check_every_steps)
            dyn.run(ti.equilibration_steps)
    except MDInstabilityError as exc:
        status, reason = "unstable", f"during equilibration: {exc}"
    run = {
        "blob_uuid": run_blob_uuid(sid),
        "kind": "ti_run",
        "solvation_id": sid,
        "status": status,
        "status_reason": reason,
        "salt": salt_obj.formula,
        "cation": salt_obj.cation.name,
        "anion": salt_obj.anion.name,
        "nu_cation": salt_obj.nu_cation,
        "nu_anion": salt_obj.nu_anion,
        "charges": [salt_obj.cation.charge] * salt_obj.nu_cation + [salt_obj.anion.charge] * salt_obj.nu_anion,
        "n_waters": n_waters,
        "n_atoms": len(atoms),
        "box_length_A": float(atoms.cell.lengths()[0]),
        "molality": counts.molality,
        "molarity": counts.molarity,
        "temperature": temperature,
        "model": model,
        "model_id": identity["model_id"],
        "model_identity": identity,
        "long_range": term.model_dump(mode="json") if term is not None else None,
        "long_range_source": term_source,
        "ti": ti.model_dump(mode="json"),
        "md": mds.model_dump(mode="json"),
        "packing": pk.model_dump(mode="json"),
        "windows_planned": {leg: window_lambdas(ti.orders(leg)).tolist() for leg in LEGS},
        "wall_sigma_A": _wall_table(atoms, salt_obj.formula, ti.wall),
        "isolated_ion_energies_eV": _isolated_ion_energies(atoms, calc, salt_obj.formula) if status == "ok" else {},
        "setup_wall_time_s": time.perf_counter() - started,
        "code_version": __version__,
        "last_updated": utcnow(),
    }
    with _stores() as stores:
        put_ti_docs(stores.data, [run])
        if status != "ok":
            doc = assemble_solvation_document(run, [], builder="ti_setup")
            stores.solvation.update([solvation_record(doc)], key="solvation_id")
    output = {"solvation_id": sid, "status": status, "atoms": atoms_to_dict(atoms), "run": output_document(run)}
    if status != "ok":
        return Response(output=output, stop_children=True)
    return output


@store_job
def ti_window(setup: dict[str, Any], leg: str, lam: float, model: str) -> dict[str, Any]:
    """One λ window: Langevin NVT with :class:`LambdaCalculator`, ∂U/∂λ samples stored as kind ``ti_window``."""
    run = setup["run"]
    ti, mds = TISettings.model_validate(run["ti"]), MDSettings.model_validate(run["md"])
    atoms = atoms_from_dict(setup["atoms"])
    loaded = _load(model, ti.model_dtype)
    if loaded.identity.model_id != run["model_id"]:
        raise ValueError(f"model {model} is {loaded.identity.model_id}, but the setup used {run['model_id']}")
    ions, groups = _ion_layout(atoms)
    term = _long_range(run.get("long_range"))
    charges = None
    if term is not None:
        charges = atomic_charges(atoms, term, run["salt"])
    calc = LambdaCalculator(
        loaded.calculator(), ions, lam, leg=leg, wall=ti.wall, ion_groups=groups,
        cavity_exponent=ti.cavity_exponent, isolated_ions=ti.isolated_ions,
        ion_radii=_ion_radii(atoms, run["salt"], ions), long_range=term, charges=charges,
    )  # fmt: skip
    seed = mds.seed + 1 + zlib.crc32(f"{leg}:{lam:.12f}".encode()) % 1_000_003
    result = run_window(
        atoms, calc, run["temperature"], ti.steps_per_window, mds.timestep_fs, ti.friction_per_fs, seed,
        ti.sample_every, mds.stability,
    )  # fmt: skip
    window = {
        "blob_uuid": window_blob_uuid(run["solvation_id"], leg, lam),
        "kind": "ti_window",
        "solvation_id": run["solvation_id"],
        "leg": leg,
        "lam": float(lam),
        "samples": result.samples,
        "mean_binding_eV": float(np.mean(result.binding)) if leg == "coupling" and result.binding else None,
        "mean_wall_eV": float(np.mean(result.wall)) if result.wall else None,
        "mean_temperature_K": float(np.mean(result.temperatures)) if result.temperatures else None,
        "n_steps": result.n_steps,
        "sample_every": ti.sample_every,
        "timestep_fs": mds.timestep_fs,
        "seed": seed,
        "status": result.status,
        "status_reason": result.status_reason,
        "wall_time_s": result.wall_time_s,
        "code_version": __version__,
        "last_updated": utcnow(),
    }
    with _stores() as stores:
        put_ti_docs(stores.data, [window])
    return output_document(window)


@store_job
def ti_combine(setup: dict[str, Any], windows: list[dict[str, Any]]) -> SolvationDocument:
    """Integrate the windows, assemble the cycle and write the ``solvation`` document."""
    doc = assemble_solvation_document(setup["run"], windows, builder="ti_combine")
    with _stores() as stores:
        stores.solvation.update([solvation_record(doc)], key="solvation_id")
    return doc


@dataclass
class SolvationTIMaker(Maker):
    """Solvation free energy of one neutral formula unit in water by two-leg TI (``docs/solvation.md``).

    Flow: ``ti_setup`` → one ``ti_window`` job per (leg, λ) — Gauss–Legendre nodes of ``settings.n_windows``
    (coupling), ``settings.n_windows_cavity`` (cavity) and every ``settings.convergence_orders`` — → ``ti_combine``.
    From ``md`` the timestep, minimisation, seed and stability thresholds are used; ``packing`` seeds packmol.
    ``long_range`` (:class:`electrodb.models.longrange.LongRangeSettings`) adds the long-range Coulomb term to every
    state (coupled with the NNP's λ coefficient); None: none, unless the model was trained without one
    (delta learning), whose recorded term is then used.
    """

    name: str = "solvation ti"
    settings: TISettings = field(default_factory=TISettings)
    md: MDSettings = field(default_factory=lambda: MDSettings(npt=False))
    packing: PackingSettings = field(default_factory=PackingSettings)
    long_range: Any = None

    def make(
        self,
        salt: str,
        n_waters: int = 64,
        temperature: float = 298.15,
        model: str = "",
        n_windows: int | None = None,
        steps_per_window: int | None = None,
        **overrides: Any,
    ) -> Flow:
        """Build the Flow. ``n_windows``, ``steps_per_window`` and any other ``overrides`` replace fields of
        ``self.settings`` (e.g. ``convergence_orders=()``, ``n_windows_cavity=3``)."""
        if not model:
            raise ValueError("give the model: a MACE file path, a foundation model name or 'chgnet:r2scan'")
        updates = {k: v for k, v in {"n_windows": n_windows, "steps_per_window": steps_per_window}.items() if v}
        settings = TISettings.model_validate({**self.settings.model_dump(), **updates, **overrides})
        formula = parse_salt(salt).formula
        setup = ti_setup(
            formula,
            n_waters,
            temperature,
            str(model),
            settings.model_dump(mode="json"),
            self.md.model_dump(mode="json"),
            self.packing.model_dump(mode="json"),
            _long_range(self.long_range).model_dump(mode="json") if self.long_range is not None else None,
        )
        setup.name = f"TI setup {formula} {temperature:.0f} K"
        windows = []
        for leg in LEGS:
            for lam in window_lambdas(settings.orders(leg)):
                w = ti_window(setup.output, leg, float(lam), str(model))
                w.name = f"TI {leg} λ={lam:.4f} {formula}"
                windows.append(w)
        combine = ti_combine(setup.output, [w.output for w in windows])
        combine.name = f"TI combine {formula} {temperature:.0f} K"
        return Flow([setup, *windows, combine], output=combine.output, name=f"{self.name} {formula}")
