"""The λ-dependent NNP calculator and the MD of one TI window (the engine under :mod:`electrodb.flows.solvation`).

:class:`LambdaCalculator` mixes the coupled state (the NNP on the whole box) with the decoupled state (the NNP on
the box without the ions plus the NNP on each ion alone) and a soft-core cavity wall, along the two legs of
:mod:`electrodb.analysis.ti_paths`; :func:`run_window` samples ∂U/∂λ at one λ with Langevin MD and the stability
monitor. Equations: ``docs/solvation.md``.

With a long-range Coulomb term (:mod:`electrodb.models.longrange`, ``long_range=``) the "NNP" of every state is the
combined potential NNP + E_LR, so the term is coupled with the same coefficient as the NNP: the coupled state has
E_LR of the whole box, the decoupled state E_LR of the solvent alone (0 for ``charges='ions'``) plus that of
each ion alone (0 in vacuum; its periodic self-energy for ``isolated_ions='periodic'``) — see
``docs/solvation.md`` §"Long-range term".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.geometry import find_mic
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.neighborlist import neighbor_list
from pydantic import BaseModel, ConfigDict, Field

from electrodb.analysis.ti_paths import (
    du_dlambda,
    mixed_energy,
    path_coefficients,
    wall_energy_forces,
)
from electrodb.md.dynamics import MDInstabilityError
from electrodb.models.longrange import long_range_energy_forces, resolve_parameters
from electrodb.systems.campaign import StabilitySettings

__all__ = ["LambdaCalculator", "WallSettings", "WindowRun", "nnp_energy_forces", "run_window"]


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
    long_range, charges
        Optional :class:`~electrodb.systems.long_range.LongRangeSettings` and the ``(n_atoms,)`` charges (e) of the
        whole box (:func:`electrodb.models.longrange.atomic_charges`): E_LR is added to the NNP on every periodic
        (sub-)system — whole box, solvent, periodic isolated ions — with the sub-system's own charges; a non-periodic
        isolated ion has no E_LR. The term is thus mixed with c_nnp exactly like the NNP (linear coupling of the
        combined potential; not charge scaling). Summation parameters are resolved once and kept.

    Results: ``energy``/``free_energy`` (U, eV), ``forces`` (−∂U/∂x, eV/Å, mixed like the energy), ``dE_dlambda``
    (∂U/∂λ, eV) and the components ``e_full``, ``e_solvent``, ``e_ions``, ``e_wall`` (eV; ``e_full`` is NaN on the
    cavity leg, where it is not needed and not computed); with a long-range term ``e_full``, ``e_solvent`` and
    ``e_ions`` include it, and ``e_long_range`` is its part of ``e_full`` (NaN when not computed, 0 without term).
    """

    implemented_properties = ("energy", "free_energy", "forces", "dE_dlambda")
    implemented_properties += ("e_full", "e_solvent", "e_ions", "e_wall", "e_long_range")

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
        long_range: Any = None,
        charges: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if long_range is not None and charges is None:
            raise ValueError(
                "long_range needs the charges of the whole box (electrodb.models.longrange.atomic_charges)"
            )
        self.long_range = long_range
        self.charges = None if charges is None else np.asarray(charges, dtype=float)
        self._lr_parameters: Any = None
        self._last_lr = 0.0
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
        if "mol_id" in atoms.arrays:  # the long-range term excludes intramolecular pairs by molecule
            sub.arrays["mol_id"] = np.asarray(atoms.arrays["mol_id"])[idx]
        return sub

    def _nnp(self, atoms: Atoms, idx: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """NNP (+ long-range term) on ``atoms``, the sub-system of the box atoms ``idx`` (None: the whole box)."""
        energy, forces = nnp_energy_forces(self.calc, atoms)
        self._last_lr = 0.0
        if self.long_range is None or not np.all(atoms.pbc):
            return energy, forces
        assert self.charges is not None
        q = self.charges if idx is None else self.charges[idx]
        if not np.any(q != 0):
            return energy, forces
        if self._lr_parameters is None:
            self._lr_parameters = resolve_parameters(atoms, self.charges, self.long_range)
        e_lr, f_lr, _ = long_range_energy_forces(atoms, q, self.long_range, self._lr_parameters, compute_stress=False)
        self._last_lr = e_lr
        return energy + e_lr, forces + f_lr

    def decoupled(self, atoms: Atoms) -> tuple[float, float, np.ndarray]:
        """E_solv, E_ions (eV) and the forces of the decoupled state (eV/Å, all atoms)."""
        pos = atoms.get_positions()
        forces = np.zeros_like(pos)
        solvent = self.solvent_indices(len(atoms))
        e_solv = 0.0
        if solvent.size:
            sub = self._sub("solvent", atoms, solvent, True)
            sub.set_positions(pos[solvent])
            e_solv, f = self._nnp(sub, solvent)
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
                    self._monatomic[key] = self._nnp(sub, idx)[0]
                e_ions += self._monatomic[key]
                continue
            p = pos[idx]
            if np.any(atoms.pbc):
                p = p[0] + find_mic(p - p[0], atoms.cell, atoms.pbc)[0]
            sub = self._sub(f"ion{label}", atoms, idx, periodic)
            sub.set_positions(p)
            e, f = self._nnp(sub, idx)
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
        e_long_range = self._last_lr if need_full else float("nan")
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
            "e_long_range": e_long_range,
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
