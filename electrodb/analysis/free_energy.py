"""Thermodynamic integration, standard states and long-range electrostatic corrections.

Energies are in eV unless a function says otherwise (``unit`` arguments accept 'eV', 'kJ/mol', 'kcal/mol');
lengths in Å, temperatures in K, charges in units of the elementary charge e. Equations and references:
``docs/methods-thermodynamics.md``. The errors of the ⟨∂U/∂λ⟩ windows (autocorrelation-corrected standard errors,
block averages, equilibration detection) are :mod:`electrodb.analysis.statistics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.constants import N_A, R, e, epsilon_0, k
from scipy.integrate import simpson

#: 1 eV per particle in kJ/mol (e N_A / 1000 = 96.485 332 12).
EV_TO_KJ_PER_MOL: float = e * N_A / 1000.0
#: Thermochemical calorie, J.
KCAL_TO_KJ: float = 4.184
#: Boltzmann constant, eV/K.
K_B_EV: float = k / e
#: Coulomb constant e^2/(4π ε0), eV Å (14.399 645).
COULOMB_EV_A: float = e / (4.0 * math.pi * epsilon_0) * 1e10
#: Wigner (Ewald) constant of the simple-cubic lattice of point charges with neutralising background.
XI_EWALD_CUBIC: float = -2.837297

_UNITS = {"eV": 1.0, "kJ/mol": EV_TO_KJ_PER_MOL, "kcal/mol": EV_TO_KJ_PER_MOL / KCAL_TO_KJ}


def _unit_factor(unit: str) -> float:
    try:
        return _UNITS[unit]
    except KeyError:
        raise ValueError(f"unit must be one of {tuple(_UNITS)}") from None


def ev_to_kj_per_mol(x: np.ndarray | float) -> np.ndarray | float:
    """eV (per particle) → kJ/mol."""
    return x * EV_TO_KJ_PER_MOL


def kj_per_mol_to_ev(x: np.ndarray | float) -> np.ndarray | float:
    """kJ/mol → eV (per particle)."""
    return x / EV_TO_KJ_PER_MOL


def ev_to_kcal_per_mol(x: np.ndarray | float) -> np.ndarray | float:
    """eV (per particle) → kcal/mol (thermochemical calorie)."""
    return x * EV_TO_KJ_PER_MOL / KCAL_TO_KJ


def kcal_per_mol_to_ev(x: np.ndarray | float) -> np.ndarray | float:
    """kcal/mol → eV (per particle)."""
    return x * KCAL_TO_KJ / EV_TO_KJ_PER_MOL


def thermal_energy(T: float = 298.15, unit: str = "eV") -> float:
    """k_B T in ``unit`` (0.025693 eV = 2.4790 kJ/mol at 298.15 K)."""
    return K_B_EV * T * _unit_factor(unit)


# --------------------------------------------------------------------------- quadrature and TI


def gauss_legendre_lambdas(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on λ ∈ [0, 1]: λ_i = (x_i + 1)/2, w_i = W_i/2 (Σ w_i = 1).

    Exact for polynomials in λ of degree <= 2n − 1; the end points 0 and 1 are never sampled.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


def quadrature_weights(lambdas: np.ndarray | Sequence[float], scheme: str) -> np.ndarray:
    """Weights w_i with ∫ f dλ ≈ Σ w_i f(λ_i) on the given (increasing) grid.

    'trapezoid' and 'simpson' (scipy's composite Simpson for uneven grids, linear in f) integrate between the
    first and last λ; 'gauss' requires the Gauss–Legendre nodes of ``gauss_legendre_lambdas(n)``.
    """
    lam = np.asarray(lambdas, dtype=float)
    n = lam.size
    if scheme == "gauss":
        nodes, weights = gauss_legendre_lambdas(n)
        if not np.allclose(lam, nodes, atol=1e-8):
            raise ValueError("lambdas are not the Gauss–Legendre nodes; use gauss_legendre_lambdas(n)")
        return weights
    if n < 2 or np.any(np.diff(lam) <= 0):
        raise ValueError("need at least 2 increasing lambdas")
    if scheme == "trapezoid":
        d = np.diff(lam)
        w = np.zeros(n)
        w[:-1] += 0.5 * d
        w[1:] += 0.5 * d
        return w
    if scheme == "simpson":
        return np.array([simpson(np.eye(n)[i], x=lam) for i in range(n)])
    raise ValueError("scheme must be 'gauss', 'trapezoid' or 'simpson'")


@dataclass(frozen=True)
class TIResult:
    """ΔF = ∫_0^1 ⟨∂U/∂λ⟩_λ dλ.

    Attributes
    ----------
    delta_f : float, unit of the input;  error : float, σ with σ^2 = Σ w_i^2 σ_i^2 (independent windows)
    lambdas, weights : (n,) arrays;  scheme : 'gauss' | 'trapezoid' | 'simpson'
    """

    delta_f: float
    error: float
    lambdas: np.ndarray
    weights: np.ndarray
    scheme: str


def integrate_ti(
    lambdas: np.ndarray | Sequence[float],
    mean_dudl: np.ndarray | Sequence[float],
    err_dudl: np.ndarray | Sequence[float] | None = None,
    scheme: str = "gauss",
) -> TIResult:
    """Thermodynamic integration ΔF = Σ_i w_i ⟨∂U/∂λ⟩_i, σ_ΔF^2 = Σ_i w_i^2 σ_i^2.

    Parameters
    ----------
    lambdas : (n,) λ values (Gauss–Legendre nodes for ``scheme='gauss'``)
    mean_dudl : (n,) ⟨∂U/∂λ⟩ at each λ (any energy unit; ΔF has the same unit)
    err_dudl : (n,) standard errors of the means (e.g. ``sampling.mean_estimate(...).sem``)
    scheme : 'gauss' | 'trapezoid' | 'simpson'
    """
    lam = np.asarray(lambdas, dtype=float)
    mean = np.asarray(mean_dudl, dtype=float)
    if lam.shape != mean.shape:
        raise ValueError("lambdas and mean_dudl must have the same shape")
    w = quadrature_weights(lam, scheme)
    err = np.zeros_like(mean) if err_dudl is None else np.asarray(err_dudl, dtype=float)
    return TIResult(float(w @ mean), float(np.sqrt(np.sum((w * err) ** 2))), lam, w, scheme)


# --------------------------------------------------------------------------- standard states


def standard_state_correction(T: float = 298.15, p0: float = 101325.0, c0: float = 1.0, unit: str = "kJ/mol") -> float:
    """ΔG° of compressing an ideal gas from pressure p0 (Pa) to concentration c0 (mol/L): RT ln(c0 RT / p0).

    +7.92 kJ/mol = +1.89 kcal/mol at 298.15 K, 1 atm → 1 mol/L (use p0 = 1e5 Pa for 1 bar: +7.95 kJ/mol).
    Convention: ΔG°(gas at p0 → solution at c0) = ΔG*(gas c0 → solution c0, Ben-Naim) + this value.
    Alchemical decoupling yields ΔG*.
    """
    value_kj = R * T * math.log(c0 * 1000.0 * R * T / p0) / 1000.0
    return value_kj * _unit_factor(unit) / EV_TO_KJ_PER_MOL


# --------------------------------------------------------------------------- long-range electrostatics


def born_cutoff_correction(
    charges: float | Sequence[float], r_cut: float, eps_r: float = 78.4, unit: str = "eV"
) -> float:
    """Born free energy of the dielectric beyond a cutoff: ΔG = −Σ_i q_i^2 e^2/(8π ε0 R_c) (1 − 1/ε_r).

    Free energy of polarisation of the continuum outside a sphere of radius R_c around a charge q that a
    model with electrostatic response truncated at R_c misses (cut-off Coulomb, or a short-ranged
    potential whose receptive field is R_c). Add it to the computed charging / hydration free energy
    (negative: the missing solvation). Independent ions: pass each charge (the sum of q_i^2 is used); for a
    cluster much smaller than R_c (e.g. a contact ion pair) pass its net charge.
    References: Born, Z. Phys. 1, 45 (1920); Straatsma & Berendsen, J. Chem. Phys. 89, 5876 (1988).
    """
    q2 = float(np.sum(np.asarray(charges, dtype=float) ** 2))
    return -0.5 * COULOMB_EV_A * q2 / r_cut * (1.0 - 1.0 / eps_r) * _unit_factor(unit)


def wigner_self_energy(q: float, box_length: float, eps_r: float = 1.0, unit: str = "eV") -> float:
    """Energy of a point charge with its periodic images and the neutralising background (cubic box):

    E_W = q^2 e^2 ξ_EW / (8π ε0 ε_r L),  ξ_EW = −2.837297 (negative; ε_r = 1: vacuum, as in Ewald sums).
    """
    return 0.5 * COULOMB_EV_A * q**2 * XI_EWALD_CUBIC / (eps_r * box_length) * _unit_factor(unit)


def periodic_ion_correction(q: float, box_length: float, eps_r: float = 78.4, unit: str = "eV") -> float:
    """Leading finite-size correction to ADD to the solvation free energy of an ion of charge q computed with
    full lattice-sum (Ewald/PME) electrostatics *including* the Wigner self term in a cubic box of edge L:

    ΔG_corr = −q^2 e^2 ξ_EW / (8π ε0 ε_r L) = −``wigner_self_energy(q, L, eps_r)`` (> 0).

    This is the net-charge term (−ξ q^2/(8π ε0 L), Hummer, Pratt & García, J. Phys. Chem. 100, 1206
    (1996)) plus the periodicity-induced undersolvation term (+ξ q^2 (1 − 1/ε_r)/(8π ε0 L)); together the
    leading (1/L) part of the type-A correction of Kastenholz & Hünenberger, J. Chem. Phys. 124, 124106
    (2006), in the form of Rocklin et al., J. Chem. Phys. 139, 184103 (2013). The O(R^2/L^3) terms and the
    potential-convention (type C) terms are not included. With ε_r = 1 it is the unscreened Wigner term.
    Not applicable to short-ranged potentials without lattice sums (use ``born_cutoff_correction``).
    """
    return -wigner_self_energy(q, box_length, eps_r, unit)


def coulomb_pmf_tail(r: np.ndarray | float, q1: float, q2: float, eps_r: float = 78.4, unit: str = "eV") -> np.ndarray:
    """Screened Coulomb potential of mean force W(r) = q1 q2 e^2/(4π ε0 ε_r r) (r in Å), the asymptote of an
    ion-pair PMF; use it to continue or correct a PMF beyond the range of a short-ranged model."""
    return COULOMB_EV_A * q1 * q2 / (eps_r * np.asarray(r, dtype=float)) * _unit_factor(unit)
