"""Alchemical solvation free energy of one neutral formula unit by thermodynamic integration with an NNP.

:class:`LambdaCalculator` mixes the coupled state (the NNP on the whole box) with the decoupled state (the NNP on
the box without the ions plus the NNP on each ion alone) and a soft-core cavity wall, along the two legs of
:mod:`electrodb.analysis.ti_paths`. :class:`SolvationTIMaker` builds the jobflow Flow

    setup (pack one formula unit in water, minimise, NVT) → one job per (leg, λ) window → combine

whose windows are independent jobs (they run in parallel on a FireWorks/jobflow-remote worker pool). The combine
job writes a ``solvation`` document (:class:`electrodb.builders.solvation.SolvationDocument`); the raw windows
are kept in the ``data`` store so that :class:`electrodb.builders.solvation.SolvationBuilder` can re-analyse them.
Equations, assumptions and caveats: ``docs/solvation.md``.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.geometry import find_mic
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.neighborlist import neighbor_list
from jobflow import Flow, Maker, Response, job
from pydantic import BaseModel, ConfigDict, Field, field_validator

from electrodb import __version__
from electrodb.analysis.ti_paths import (
    LEGS,
    du_dlambda,
    mixed_energy,
    path_coefficients,
    wall_energy_forces,
    window_lambdas,
)
from electrodb.builders.solvation import (
    SolvationDocument,
    assemble_solvation_document,
    put_ti_docs,
    run_blob_uuid,
    solvation_record,
    window_blob_uuid,
)
from electrodb.campaign import MDSettings, PackingSettings, StabilitySettings, stable_hash
from electrodb.chemistry import WATER_MOLAR_MASS_KG, parse_salt
from electrodb.flows.engine import MDInstabilityError, StabilityMonitor, minimize
from electrodb.flows.md import atoms_from_dict, atoms_to_dict
from electrodb.stores import ElectroDBStores, get_stores
from electrodb.systems import ROLE_CODES, box_counts, pack_box
from electrodb.trajectory import utcnow

__all__ = [
    "LambdaCalculator",
    "SolvationTIMaker",
    "TIAnalysisSettings",
    "TISettings",
    "WallSettings",
    "WindowRun",
    "nnp_energy_forces",
    "run_window",
    "solvation_id",
    "ti_combine",
    "ti_setup",
    "ti_window",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WallSettings(_Strict):
    """Soft-core cavity wall w(r) = k (1 − r²/σ²)² for r < σ (see :func:`electrodb.analysis.ti_paths.soft_wall`).

    ``radii='ionic'``: for a monatomic ion of Shannon radius r, σ = r + ``offset_O_A`` to solvent heavy atoms and
    r + ``offset_H_A`` to solvent H (≈ where the ion–O and ion–H RDFs start: Na–O 2.12, Cl–O 2.91, Cl–H 1.91 Å);
    atoms of molecular ions, and every ion with ``radii='fixed'``, use ``sigma_O_A`` and ``sigma_H_A``.
    """

    k_eV: float = Field(2.0, gt=0, description="wall height per atom pair at r = 0 (eV); 2 eV ≈ 78 k_BT at 298 K")
    radii: Literal["ionic", "fixed"] = "ionic"
    offset_O_A: float = Field(1.1, description="σ to solvent heavy atoms = Shannon radius + this (Å)")
    offset_H_A: float = Field(0.1, description="σ to solvent H = Shannon radius + this (Å)")
    sigma_O_A: float = Field(2.0, gt=0, description="fixed σ between an ion atom and a solvent heavy atom (Å)")
    sigma_H_A: float = Field(1.5, gt=0, description="fixed σ between an ion atom and a solvent H (Å)")
    sigma_ion_A: float = Field(2.5, gt=0, description="σ between atoms of two different ions (Å)")

    def pair_sigma(self, ion_radii: Sequence[float | None], solvent_is_h: np.ndarray) -> np.ndarray:
        """σ (Å) of every (ion atom, solvent atom) pair, shape (n_ion_atoms, n_solvent)."""
        rows = []
        for r in ion_radii:
            if self.radii == "ionic" and r is not None:
                o, h = r + self.offset_O_A, r + self.offset_H_A
            else:
                o, h = self.sigma_O_A, self.sigma_H_A
            if min(o, h) <= 0:
                raise ValueError(f"wall radius must be positive (ionic radius {r} Å with the offsets)")
            rows.append(np.where(solvent_is_h, h, o))
        return np.array(rows, dtype=float).reshape(len(rows), -1)


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
) -> str:
    """stable_hash of everything that determines the sampled windows (analysis settings excluded)."""
    return stable_hash(
        {
            "kind": "solvation_ti",
            "salt": parse_salt(salt).formula,
            "n_waters": n_waters,
            "temperature": temperature,
            "model_id": model_id,
            "ti": settings.sampling_payload(),
            "md": md.model_dump(mode="json"),
            "packing": packing.model_dump(mode="json"),
        }
    )


# --------------------------------------------------------------------------- the λ calculator


def nnp_energy_forces(calc: Calculator, atoms: Atoms) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Å) of ``calc`` on ``atoms``, always recomputed (no cache between sub-systems)."""
    calc.calculate(atoms, ["energy", "forces"], all_changes)
    return float(calc.results["energy"]), np.array(calc.results["forces"], dtype=float)


class LambdaCalculator(Calculator):
    """ASE calculator U(λ) = c_nnp E_full + (1 − c_nnp)(E_solv + E_ions) + c_wall W on one leg of the path.

    Parameters
    ----------
    calc
        The NNP calculator (any ASE calculator); evaluated on the whole box (E_full), on the box without the ions
        (E_solv, same cell and pbc) and on each ion alone (E_ions = Σ over ions).
    ion_indices
        Atom indices of the decoupled ions.
    lam
        λ ∈ [0, 1] on ``leg``.
    leg
        ``'coupling'`` (c_nnp = λ, c_wall = 1 − λ) or ``'cavity'`` (c_nnp = 0, c_wall = λ^p).
    wall
        Soft-core wall between ion atoms and solvent atoms (σ_H for solvent H, σ_O for other elements) and between
        atoms of different ions (σ_ion); None: no wall (the naive linear path).
    ion_radii
        Ionic radius (Å) of each entry of ``ion_indices`` or None (molecular ions), for ``wall.radii='ionic'``;
        default: None for all (fixed radii).
    ion_groups
        Ion (molecule) label of each entry of ``ion_indices``; atoms with the same label form one ion, evaluated
        alone as a whole molecule (minimum image). Default: each index is a monatomic ion.
    isolated_ions
        ``'vacuum'``: each ion in a non-periodic cell; ``'periodic'``: alone in the box cell with its images.

    Results: ``energy``/``free_energy`` (U, eV), ``forces`` (−∂U/∂x, eV/Å, mixed like the energy), ``dE_dlambda``
    (∂U/∂λ, eV) and the components ``e_full``, ``e_solvent``, ``e_ions``, ``e_wall`` (eV; ``e_full`` is NaN on the
    cavity leg, where it is not needed and not computed).
    """

    implemented_properties = ("energy", "free_energy", "forces", "dE_dlambda")
    implemented_properties += ("e_full", "e_solvent", "e_ions", "e_wall")

    def __init__(
        self,
        calc: Calculator,
        ion_indices: Sequence[int],
        lam: float,
        *,
        leg: str = "coupling",
        wall: WallSettings | None = None,
        ion_groups: Sequence[int] | None = None,
        cavity_exponent: float = 4.0,
        isolated_ions: str = "vacuum",
        ion_radii: Sequence[float | None] | None = None,
    ) -> None:
        super().__init__()
        self.calc = calc
        self.ion_indices = np.asarray(ion_indices, dtype=int)
        if self.ion_indices.size == 0:
            raise ValueError("no ion atoms to decouple")
        self.ion_groups = np.arange(self.ion_indices.size) if ion_groups is None else np.asarray(ion_groups).reshape(-1)
        if self.ion_groups.size != self.ion_indices.size:
            raise ValueError("ion_groups must label every entry of ion_indices")
        if isolated_ions not in ("vacuum", "periodic"):
            raise ValueError("isolated_ions must be 'vacuum' or 'periodic'")
        self.ion_radii = [None] * self.ion_indices.size if ion_radii is None else list(ion_radii)
        if len(self.ion_radii) != self.ion_indices.size:
            raise ValueError("ion_radii must give a radius (or None) for every entry of ion_indices")
        self.coefficients = path_coefficients(leg, lam, cavity_exponent)
        self.lam, self.leg, self.wall, self.isolated_ions = lam, leg, wall, isolated_ions
        self._cache: dict[str, Atoms] = {}
        self._monatomic: dict[tuple[Any, ...], float] = {}

    # sub-systems -------------------------------------------------------------------------------------------
    def solvent_indices(self, n_atoms: int) -> np.ndarray:
        mask = np.ones(n_atoms, dtype=bool)
        mask[self.ion_indices] = False
        return np.flatnonzero(mask)

    def _sub(self, key: str, atoms: Atoms, idx: np.ndarray, periodic: bool) -> Atoms:
        sub = self._cache.get(key)
        if sub is None or len(sub) != idx.size:
            sub = Atoms(np.asarray(atoms.get_chemical_symbols())[idx].tolist())
            self._cache[key] = sub
        sub.pbc = atoms.pbc if periodic else False
        sub.cell = atoms.cell if periodic else np.zeros((3, 3))
        return sub

    def _nnp(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        return nnp_energy_forces(self.calc, atoms)

    def decoupled(self, atoms: Atoms) -> tuple[float, float, np.ndarray]:
        """E_solv, E_ions (eV) and the forces of the decoupled state (eV/Å, all atoms)."""
        pos = atoms.get_positions()
        forces = np.zeros_like(pos)
        solvent = self.solvent_indices(len(atoms))
        e_solv = 0.0
        if solvent.size:
            sub = self._sub("solvent", atoms, solvent, True)
            sub.set_positions(pos[solvent])
            e_solv, f = self._nnp(sub)
            forces[solvent] = f
        e_ions = 0.0
        for label in dict.fromkeys(self.ion_groups.tolist()):
            idx = self.ion_indices[self.ion_groups == label]
            periodic = self.isolated_ions == "periodic"
            if idx.size == 1:  # a lone atom's energy does not depend on its position (forces vanish by symmetry)
                key = (atoms.get_chemical_symbols()[idx[0]], periodic, tuple(np.round(atoms.cell.array, 10).flat))
                if key not in self._monatomic:
                    sub = self._sub(f"ion{label}", atoms, idx, periodic)
                    sub.set_positions(pos[idx])
                    self._monatomic[key] = self._nnp(sub)[0]
                e_ions += self._monatomic[key]
                continue
            p = pos[idx]
            if np.any(atoms.pbc):
                p = p[0] + find_mic(p - p[0], atoms.cell, atoms.pbc)[0]
            sub = self._sub(f"ion{label}", atoms, idx, periodic)
            sub.set_positions(p)
            e, f = self._nnp(sub)
            e_ions += e
            forces[idx] = f
        return e_solv, e_ions, forces

    def wall_terms(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        """W (eV) and its forces (eV/Å) at the current positions (zero without a wall)."""
        if self.wall is None:
            return 0.0, np.zeros((len(atoms), 3))
        solvent = self.solvent_indices(len(atoms))
        symbols = np.asarray(atoms.get_chemical_symbols())[solvent]
        sigma = self.wall.pair_sigma(self.ion_radii, symbols == "H")
        return wall_energy_forces(
            atoms.get_positions(),
            np.asarray(atoms.cell),
            atoms.pbc,
            self.ion_indices,
            self.ion_groups,
            solvent,
            sigma,
            self.wall.sigma_ion_A,
            self.wall.k_eV,
        )

    def calculate(self, atoms: Atoms | None = None, properties: Any = None, system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        c = self.coefficients
        need_full = bool(c.nnp or c.d_nnp)
        e_full, f_full = self._nnp(atoms) if need_full else (float("nan"), np.zeros((len(atoms), 3)))
        e_solv, e_ions, f_dec = self.decoupled(atoms)
        e_wall, f_wall = self.wall_terms(atoms)
        e_dec = e_solv + e_ions
        energy = mixed_energy(c, e_full, e_dec, e_wall)
        forces = (1.0 - c.nnp) * f_dec + c.wall * f_wall
        if c.nnp:
            forces = forces + c.nnp * f_full
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces,
            "dE_dlambda": du_dlambda(c, e_full, e_dec, e_wall),
            "e_full": e_full,
            "e_solvent": e_solv,
            "e_ions": e_ions,
            "e_wall": e_wall,
        }


# --------------------------------------------------------------------------- one window


@dataclass
class WindowRun:
    """Samples of one λ window: ∂U/∂λ (eV) every ``sample_every`` steps, frame 0 = the starting state."""

    samples: list[float]
    binding: list[float]
    wall: list[float]
    temperatures: list[float]
    n_steps: int
    status: str = "ok"
    status_reason: str | None = None
    wall_time_s: float = 0.0


def _check_window(
    atoms: Atoms, solvent: Atoms, solvent_idx: np.ndarray, s: StabilitySettings, temperature: float, step: int
) -> None:
    """Stability of a window: finite state, bounded force and temperature, no fused solvent atoms.

    Ion–solvent distances are not checked: in decoupled states the solvent may legitimately overlap the ions.
    """
    positions = atoms.get_positions()
    forces = atoms.get_forces(md=True)
    if not (np.isfinite(positions).all() and np.isfinite(forces).all()):
        raise MDInstabilityError("non-finite positions or forces", step)
    fmax = float(np.sqrt((forces**2).sum(axis=1)).max())
    if fmax > s.max_force_eV_A:
        raise MDInstabilityError(f"force {fmax:.1f} eV/Å exceeds {s.max_force_eV_A} eV/Å", step)
    t_now = atoms.get_temperature()
    if t_now > s.max_temperature_factor * temperature:
        raise MDInstabilityError(
            f"temperature {t_now:.0f} K exceeds {s.max_temperature_factor} × {temperature} K", step
        )
    solvent.set_positions(positions[solvent_idx])
    i, j, d = neighbor_list("ijd", solvent, max(s.min_distance_heavy_A, s.min_distance_h_A))
    is_h = np.asarray(solvent.get_chemical_symbols()) == "H"
    with_h = is_h[i] | is_h[j]
    bad = (with_h & (d < s.min_distance_h_A)) | (~with_h & (d < s.min_distance_heavy_A))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise MDInstabilityError(
            f"solvent atoms {solvent_idx[i[k]]} and {solvent_idx[j[k]]} are {d[k]:.2f} Å apart", step
        )


def run_window(
    atoms: Atoms,
    calc: LambdaCalculator,
    temperature: float,
    n_steps: int,
    timestep_fs: float,
    friction_per_fs: float,
    seed: int,
    sample_every: int = 1,
    stability: StabilitySettings | None = None,
) -> WindowRun:
    """Langevin NVT at fixed λ from ``atoms`` (fresh Maxwell–Boltzmann velocities), recording ∂U/∂λ.

    ∂U/∂λ comes with every force evaluation, so sampling every step costs nothing extra. An instability ends the
    window early with ``status='unstable'`` and the samples collected so far.
    """
    stability = stability or StabilitySettings()
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    dyn = Langevin(
        atoms,
        timestep_fs * units.fs,
        temperature_K=temperature,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )
    out = WindowRun([], [], [], [], n_steps)
    solvent_idx = calc.solvent_indices(len(atoms))
    solvent = atoms[solvent_idx]

    def record() -> None:
        r = calc.results
        out.samples.append(float(calc.get_property("dE_dlambda", atoms)))
        out.binding.append(float(r["e_full"] - r["e_solvent"] - r["e_ions"]))
        out.wall.append(float(r["e_wall"]))
        out.temperatures.append(float(atoms.get_temperature()))

    dyn.attach(record, interval=sample_every)
    dyn.attach(
        lambda: _check_window(atoms, solvent, solvent_idx, stability, temperature, dyn.nsteps),
        interval=stability.check_every_steps,
    )
    try:
        dyn.run(n_steps)
    except MDInstabilityError as exc:
        out.status, out.status_reason, out.n_steps = "unstable", str(exc), exc.step
    out.wall_time_s = time.perf_counter() - started
    return out


# --------------------------------------------------------------------------- jobs


def _stores() -> ElectroDBStores:
    return get_stores().connect("data", "solvation")


def _load(model: str, dtype: str) -> Any:
    from electrodb.models import ModelRef, load_model

    return load_model(ModelRef.parse(model), dtype=dtype)  # type: ignore[arg-type]


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


def _without_blob_key(doc: dict[str, Any]) -> dict[str, Any]:
    """Job outputs must not carry ``blob_uuid``: jobflow's JobStore takes such dicts for blob references."""
    return {k: v for k, v in doc.items() if k != "blob_uuid"}


@job
def ti_setup(
    salt: str, n_waters: int, temperature: float, model: str, settings: dict, md: dict, packing: dict
) -> dict[str, Any] | Response:
    """Pack exactly one formula unit with ``n_waters`` waters, minimise and equilibrate (NVT, full NNP).

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
    sid = solvation_id(salt_obj.formula, n_waters, temperature, identity["model_id"], ti, mds, pk)
    calc = loaded.calculator()
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
    output = {"solvation_id": sid, "status": status, "atoms": atoms_to_dict(atoms), "run": _without_blob_key(run)}
    if status != "ok":
        return Response(output=output, stop_children=True)
    return output


@job
def ti_window(setup: dict[str, Any], leg: str, lam: float, model: str) -> dict[str, Any]:
    """One λ window: Langevin NVT with :class:`LambdaCalculator`, ∂U/∂λ samples stored as kind ``ti_window``."""
    run = setup["run"]
    ti, mds = TISettings.model_validate(run["ti"]), MDSettings.model_validate(run["md"])
    atoms = atoms_from_dict(setup["atoms"])
    loaded = _load(model, ti.model_dtype)
    if loaded.identity.model_id != run["model_id"]:
        raise ValueError(f"model {model} is {loaded.identity.model_id}, but the setup used {run['model_id']}")
    ions, groups = _ion_layout(atoms)
    calc = LambdaCalculator(
        loaded.calculator(), ions, lam, leg=leg, wall=ti.wall, ion_groups=groups,
        cavity_exponent=ti.cavity_exponent, isolated_ions=ti.isolated_ions,
        ion_radii=_ion_radii(atoms, run["salt"], ions),
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
    return _without_blob_key(window)


@job
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
    """

    name: str = "solvation ti"
    settings: TISettings = field(default_factory=TISettings)
    md: MDSettings = field(default_factory=lambda: MDSettings(npt=False))
    packing: PackingSettings = field(default_factory=PackingSettings)

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
