"""λ-paths, soft-core cavity wall and thermodynamic cycle of the alchemical solvation free energy (pure numpy).

The ions of one neutral formula unit are decoupled from a water box along two legs (``docs/solvation.md``):

- **cavity** (μ = 0 → 1, ions decoupled from the solvent): U = E_solv + E_ions + μ^p W,
  ∂U/∂μ = p μ^(p−1) W;
- **coupling** (λ = 0 → 1): U = λ E_full + (1 − λ)(E_solv + E_ions) + (1 − λ) W,
  ∂U/∂λ = E_full − E_solv − E_ions − W.

E_full is the NNP energy of the whole box, E_solv that of the box without the ions, E_ions the sum of the NNP
energies of each ion alone, and W the soft-core wall of :func:`wall_energy_forces`, which keeps solvent atoms
(and the other ions) out of each ion's volume while the NNP coupling is weak. Both end points of the whole path
(μ = 0 of the cavity leg: no wall, ions decoupled; λ = 1 of the coupling leg: full NNP, no wall) are the physical
states, so ΔF = ΔF_cavity + ΔF_coupling is the free energy of coupling the ions to the solvent.

Energies in eV, lengths in Å, free energies reported in kJ/mol where the name says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from electrodb.analysis.free_energy import (
    EV_TO_KJ_PER_MOL,
    TIResult,
    born_cutoff_correction,
    gauss_legendre_lambdas,
    integrate_ti,
    standard_state_correction,
)
from electrodb.analysis.sampling import mean_estimate
from electrodb.analysis.statistics import SeriesEstimate

__all__ = [
    "LEGS",
    "CycleTerms",
    "PathCoefficients",
    "du_dlambda",
    "leg_estimate",
    "mixed_energy",
    "path_coefficients",
    "soft_wall",
    "solvation_cycle",
    "wall_energy_forces",
    "window_lambdas",
    "window_statistics",
]

#: The two legs, in the order they are traversed (decoupled → cavity → coupled).
LEGS: tuple[str, str] = ("cavity", "coupling")
_NODE_DECIMALS = 12


# --------------------------------------------------------------------------- path


@dataclass(frozen=True)
class PathCoefficients:
    """U(λ) = nnp·E_full + (1 − nnp)(E_solv + E_ions) + wall·W and the λ-derivatives of the coefficients."""

    nnp: float
    d_nnp: float
    wall: float
    d_wall: float


def path_coefficients(leg: str, lam: float, cavity_exponent: float = 4.0) -> PathCoefficients:
    """Coefficients of the two end-state energies and of the wall at λ on ``leg``.

    cavity:   nnp = 0, wall = λ^p (p = ``cavity_exponent`` >= 1; p > 1 moves the steep part of ⟨W⟩ at weak
              walls away from λ = 0 so that Gauss–Legendre quadrature sees a smooth integrand);
    coupling: nnp = λ, wall = 1 − λ.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"λ must lie in [0, 1], got {lam}")
    if leg == "cavity":
        if cavity_exponent < 1.0:
            raise ValueError("cavity_exponent must be >= 1")
        return PathCoefficients(0.0, 0.0, lam**cavity_exponent, cavity_exponent * lam ** (cavity_exponent - 1.0))
    if leg == "coupling":
        return PathCoefficients(lam, 1.0, 1.0 - lam, -1.0)
    raise ValueError(f"leg must be one of {LEGS}, got {leg!r}")


def mixed_energy(c: PathCoefficients, e_full: float, e_decoupled: float, e_wall: float) -> float:
    """U = c.nnp E_full + (1 − c.nnp) E_decoupled + c.wall W (eV); E_full is ignored when c.nnp = 0."""
    coupled = c.nnp * e_full if c.nnp else 0.0
    return coupled + (1.0 - c.nnp) * e_decoupled + c.wall * e_wall


def du_dlambda(c: PathCoefficients, e_full: float, e_decoupled: float, e_wall: float) -> float:
    """∂U/∂λ = c.d_nnp (E_full − E_decoupled) + c.d_wall W (eV)."""
    coupled = c.d_nnp * (e_full - e_decoupled) if c.d_nnp else 0.0
    return coupled + c.d_wall * e_wall


# --------------------------------------------------------------------------- soft-core wall


def soft_wall(r2: np.ndarray, sigma: np.ndarray | float, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Soft-core repulsion w(r) = k (1 − r²/σ²)² for r < σ, 0 beyond; returns (w, g) with g = (dw/dr)/r.

    Finite at r = 0 (w(0) = k), monotonically decreasing, and continuous with its first derivative at σ;
    g = −(4k/σ²)(1 − r²/σ²) is finite at r = 0, so the force −g·(r_j − r_i) on atom j needs no division by r.
    Inputs: squared distances r² (Å²), σ (Å), k (eV).
    """
    r2 = np.asarray(r2, dtype=float)
    s2 = np.broadcast_to(np.asarray(sigma, dtype=float) ** 2, r2.shape)
    u = np.where(r2 < s2, 1.0 - r2 / s2, 0.0)
    return k * u**2, -4.0 * k * u / s2


def _minimum_image(d: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Minimum-image displacement vectors (exact for orthorhombic cells; rows of ``cell`` are the lattice vectors)."""
    if not np.any(pbc):
        return d
    frac = d @ np.linalg.inv(cell)
    frac[..., pbc] -= np.round(frac[..., pbc])
    return frac @ cell


def wall_energy_forces(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: Sequence[bool] | np.ndarray,
    ion_atoms: np.ndarray,
    ion_group: np.ndarray,
    solvent_atoms: np.ndarray,
    pair_sigma: np.ndarray,
    ion_sigma: float,
    k: float,
) -> tuple[float, np.ndarray]:
    """Total soft-core wall W = Σ_ion-solvent pairs w(r; σ_ij) + Σ_pairs of atoms of different ions w(r; σ_ion).

    Parameters
    ----------
    positions : (N, 3) Å;  cell : (3, 3) Å (rows = lattice vectors);  pbc : (3,) bool
    ion_atoms : (n_i,) indices of the ion atoms;  ion_group : (n_i,) ion (molecule) label of each ion atom
    solvent_atoms : (n_s,) indices of the solvent atoms
    pair_sigma : wall radius σ_ij (Å) of every ion atom–solvent atom pair, shape (n_i, n_s), or (n_s,) when it
        depends on the solvent atom only
    ion_sigma : wall radius between atoms of different ions (Å);  k : wall height (eV)

    Returns
    -------
    (W in eV, forces (N, 3) in eV/Å).
    """
    pos = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    pbc = np.asarray(pbc, dtype=bool)
    forces = np.zeros_like(pos)
    ion_atoms = np.asarray(ion_atoms, dtype=int)
    solvent_atoms = np.asarray(solvent_atoms, dtype=int)
    energy = 0.0
    if ion_atoms.size and solvent_atoms.size:
        d = _minimum_image(pos[solvent_atoms][None, :, :] - pos[ion_atoms][:, None, :], cell, pbc)
        sig = np.broadcast_to(np.asarray(pair_sigma, dtype=float), (ion_atoms.size, solvent_atoms.size))
        w, g = soft_wall(np.einsum("ijk,ijk->ij", d, d), sig, k)
        energy += float(w.sum())
        f = -g[..., None] * d  # force on the solvent atom j of pair (i, j)
        np.add.at(forces, solvent_atoms, f.sum(axis=0))
        np.add.at(forces, ion_atoms, -f.sum(axis=1))
    a, b = np.triu_indices(ion_atoms.size, k=1)
    other = np.asarray(ion_group)[a] != np.asarray(ion_group)[b]
    a, b = ion_atoms[a[other]], ion_atoms[b[other]]
    if a.size:
        d = _minimum_image(pos[b] - pos[a], cell, pbc)
        w, g = soft_wall(np.einsum("ij,ij->i", d, d), ion_sigma, k)
        energy += float(w.sum())
        f = -g[:, None] * d
        np.add.at(forces, b, f)
        np.add.at(forces, a, -f)
    return energy, forces


# --------------------------------------------------------------------------- windows and quadrature


def window_lambdas(orders: Sequence[int]) -> np.ndarray:
    """Sorted union of the Gauss–Legendre nodes of every order in ``orders`` (shared nodes appear once:
    odd orders all contain λ = 1/2). Nodes are rounded to 12 decimals, the precision used to match them."""
    nodes = np.concatenate([gauss_legendre_lambdas(int(n))[0] for n in orders])
    return np.unique(np.round(nodes, _NODE_DECIMALS))


def window_statistics(samples: Sequence[float] | np.ndarray, discard_fraction: float = 0.2) -> SeriesEstimate:
    """Mean and autocorrelation-corrected SEM of ∂U/∂λ samples after dropping the first ``discard_fraction``
    (:func:`electrodb.analysis.sampling.mean_estimate`, the estimator behind every property's error)."""
    x = np.asarray(samples, dtype=float)
    start = math.floor(discard_fraction * x.size)
    x = x[start:]
    if x.size < 2:
        raise ValueError(f"need at least 2 samples after discarding {start}, got {x.size}")
    return mean_estimate(x)


def leg_estimate(
    lambdas: Sequence[float] | np.ndarray,
    means: Sequence[float] | np.ndarray,
    sems: Sequence[float] | np.ndarray,
    order: int,
) -> TIResult:
    """Gauss–Legendre estimate of order ``order`` from the windows whose λ are that order's nodes.

    ``lambdas`` may hold windows of several orders; those at the nodes of ``order`` are picked (tolerance 1e-8).
    Raises ``KeyError`` if a node has no window.
    """
    lam = np.asarray(lambdas, dtype=float)
    nodes, _ = gauss_legendre_lambdas(order)
    picks = []
    for node in nodes:
        hit = np.flatnonzero(np.abs(lam - node) < 1e-8)
        if hit.size == 0:
            raise KeyError(f"no window at Gauss–Legendre node λ = {node:.6f} of order {order}")
        picks.append(int(hit[0]))
    return integrate_ti(nodes, np.asarray(means, dtype=float)[picks], np.asarray(sems, dtype=float)[picks], "gauss")


# --------------------------------------------------------------------------- thermodynamic cycle


@dataclass(frozen=True)
class CycleTerms:
    """Every term of the solvation cycle of one formula unit, in kJ/mol (σ: statistical, 1 standard error).

    ΔG°_solv = ΔF_cavity + ΔF_coupling + ΔG_ss [+ ΔE_gas-ref];  ΔG°_solv,LR = ΔG°_solv + ΔG_Born.
    """

    delta_f_cavity: float
    delta_f_cavity_err: float
    delta_f_coupling: float
    delta_f_coupling_err: float
    delta_f_alchemical: float
    delta_f_alchemical_err: float
    standard_state_per_ion: float
    standard_state: float
    gas_reference: float | None
    long_range: float | None
    delta_g: float
    delta_g_with_lr: float | None
    delta_g_err: float


def solvation_cycle(
    cavity: TIResult,
    coupling: TIResult,
    charges: Sequence[float],
    temperature: float,
    born_radius_A: float | None,
    dielectric_constant: float,
    standard_pressure_Pa: float = 101325.0,
    standard_concentration_mol_L: float = 1.0,
    gas_reference_eV: float | None = None,
) -> CycleTerms:
    """Assemble the cycle from the two TI legs (their ΔF in eV).

    - ΔF_alch = ΔF_cavity + ΔF_coupling, σ² = σ_cav² + σ_coup² (independent windows): Ben-Naim ΔG* of the formula
      unit (gas and solution at the same number density, 1/V, so translational terms cancel).
    - ΔG_ss = ν RT ln(c° RT/p°) (ν = number of ions; +7.92 kJ/mol per ion at 298.15 K, 1 atm → 1 mol/L).
    - ΔE_gas-ref (optional) = Σ_ions [E_NNP(ion alone) − E_ref(charged ion in the gas)], supplied by the caller.
    - ΔG_Born = −Σ q_i² e²/(8π ε0 R_c)(1 − 1/ε_r) (``born_cutoff_correction``), when ``born_radius_A`` is given.
    """
    to_kj = EV_TO_KJ_PER_MOL
    cav, cav_err = cavity.delta_f * to_kj, cavity.error * to_kj
    coup, coup_err = coupling.delta_f * to_kj, coupling.error * to_kj
    alch = cav + coup
    err = math.hypot(cav_err, coup_err)
    per_ion = standard_state_correction(temperature, standard_pressure_Pa, standard_concentration_mol_L, "kJ/mol")
    ss = len(charges) * per_ion
    gas = None if gas_reference_eV is None else gas_reference_eV * to_kj
    lr = (
        None
        if born_radius_A is None
        else born_cutoff_correction(list(charges), born_radius_A, dielectric_constant, "kJ/mol")
    )
    dg = alch + ss + (gas or 0.0)
    return CycleTerms(
        delta_f_cavity=cav,
        delta_f_cavity_err=cav_err,
        delta_f_coupling=coup,
        delta_f_coupling_err=coup_err,
        delta_f_alchemical=alch,
        delta_f_alchemical_err=err,
        standard_state_per_ion=per_ion,
        standard_state=ss,
        gas_reference=gas,
        long_range=lr,
        delta_g=dg,
        delta_g_with_lr=None if lr is None else dg + lr,
        delta_g_err=err,
    )
