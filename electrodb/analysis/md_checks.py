"""Checks of an MD run itself: did it run at its labelled temperature, and does the model conserve energy?

Two pure functions, no I/O:

* :func:`check_temperature` — the mean kinetic temperature of a run against its target, with the standard error
  of the mean corrected for autocorrelation, judged as a :class:`~electrodb.analysis.convergence.Verdict`.
  A run whose thermostat did not hold the target (an imperfect model heating the box, a thermostat too weak for
  the run length) is ``unconverged``: its properties belong to another temperature than its label.
* :func:`fit_energy_drift` — the drift of the total energy of an NVE (velocity Verlet) run, by linear regression,
  per atom (meV/atom/ps): the standard test of how well a model and timestep conserve energy.

Equations
---------
Instantaneous kinetic temperature of N atoms with N_f = 3N − N_c degrees of freedom:
T = 2K / (N_f k_B). In the canonical ensemble K is Gamma distributed with shape N_f/2, so

    σ_T = T √(2 / N_f)                                                     (1)

(for N_f = 3N: σ_T = T √(2/(3N)); 194 atoms at 298.15 K: σ_T = 17.5 K). Successive frames are correlated; the
standard error of the mean of F frames is

    SE = σ √(g / F),   g = 1 + 2 Σ_t (1 − t/F) C(t)                          (2)

with the statistical inefficiency g from the normalised autocorrelation C(t), summed until C first drops to
zero (pymbar's estimator, corrected for the sample mean and with Student's t on its degrees of freedom: the
estimator behind every property's error, :func:`electrodb.analysis.sampling.mean_estimate`). A run no longer
than a few correlation times cannot see its own correlation (C(t) crosses zero early and g comes out near 1),
so when the caller knows a lower bound τ on the correlation time of T (a thermostat exchanges kinetic energy
with its bath over its relaxation time: τ for Bussi/Nosé–Hoover, 1/(2γ) for Langevin) g is raised to at least
that of an exponential correlation sampled every Δt:

    g ≥ (1 + ρ) / (1 − ρ),   ρ = exp(−Δt/τ)   (≈ 2τ/Δt; SE ≈ σ √(2τ / t_run))    (2')

A short run also underestimates σ itself (it has not visited the whole distribution), so for this floor σ is
at least the canonical σ_T of eq. (1) when the number of atoms is given. For a thermostat that acts on the
kinetic energy only, the slow part of T follows the total energy, which relaxes in τ C_V/C_kin and carries the
fraction C_kin/C_V of the variance of T, so the long-time g is ≈ 2τ/Δt whatever the heat capacity.

The verdict is

    converged  ⇔  |⟨T⟩ − T_target| ≤ max(temperature_tol_K, temperature_n_sigma × SE).  (3)

Energy drift: E_tot(t) = E_0 + a t + noise; the least-squares slope a per atom,

    drift = a / N × 1000   (meV/atom/ps).                                   (4)

A thermostat must remove a model's heating power at steady state. Bussi removes (K − K_0)/τ and Langevin
2γ(K − K_0), so a model drifting by ε̇ per atom runs hot by

    ΔT = ε̇ τ_K / (3/2 k_B),   τ_K = τ (Bussi) or 1/(2γ) (Langevin)        (5)

(0.77 K per meV/atom/ps at τ_K = 0.1 ps; 3.9 K at the old Langevin 0.001/fs, τ_K = 0.5 ps).

References
----------
* G. Bussi, D. Donadio, M. Parrinello, J. Chem. Phys. 126, 014101 (2007) — canonical velocity rescaling.
* J. D. Chodera et al., J. Chem. Theory Comput. 3, 26 (2007) — statistical inefficiency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from electrodb.analysis.convergence import ConvergenceTargets, Verdict
from electrodb.analysis.sampling import mean_estimate
from electrodb.analysis.statistics import ar1_statistical_inefficiency

__all__ = [
    "EnergyDrift",
    "TemperatureCheck",
    "canonical_temperature_std",
    "check_temperature",
    "fit_energy_drift",
    "thermostat_offset_K",
]

#: Fewest finite temperature samples for which a temperature verdict is given.
MIN_TEMPERATURE_SAMPLES = 10
#: Boltzmann constant in meV/K.
KB_MEV_PER_K = 8.617333262e-2


def canonical_temperature_std(temperature_K: float, n_atoms: int, n_constraints: int = 0) -> float:
    """Canonical standard deviation of the instantaneous kinetic temperature, eq. (1) (K).

    Parameters
    ----------
    temperature_K : float
        Thermostat temperature T (K).
    n_atoms : int
        Number of atoms N.
    n_constraints : int
        Constrained degrees of freedom N_c (ASE counts none for a free box; 3 if the centre of mass is fixed).

    Returns
    -------
    float
        σ_T = T √(2 / (3N − N_c)) in K.
    """
    n_dof = 3 * n_atoms - n_constraints
    if n_dof <= 0:
        raise ValueError(f"no degrees of freedom ({n_atoms} atoms, {n_constraints} constraints)")
    return float(temperature_K * math.sqrt(2.0 / n_dof))


@dataclass(frozen=True)
class TemperatureCheck:
    """Mean temperature of a run with its autocorrelation-corrected error and the verdict of eq. (3).

    Attributes
    ----------
    mean_K, std_K, err_K : float
        ⟨T⟩, the standard deviation of the instantaneous T and the standard error of ⟨T⟩ (eq. 2), in K
        (NaN when there were no finite samples).
    target_K : float
        The labelled (thermostat) temperature (K).
    statistical_inefficiency : float
        g of eq. (2) (frames per independent sample, >= 1).
    n_samples : int
        Finite temperature samples used.
    verdict : Verdict
        ``converged`` / ``unconverged`` / ``insufficient`` (fewer than ``MIN_TEMPERATURE_SAMPLES`` samples).
    """

    mean_K: float
    std_K: float
    err_K: float
    target_K: float
    statistical_inefficiency: float
    n_samples: int
    verdict: Verdict

    def as_fields(self) -> dict[str, Any]:
        """The trajectory-document fields: ``mean_temperature_K``, ``std_temperature_K``, ``temperature_err_K``,
        ``temperature_status``, ``temperature_criterion``, ``temperature_reason`` (None for NaN numbers)."""

        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {
            "mean_temperature_K": num(self.mean_K),
            "std_temperature_K": num(self.std_K),
            "temperature_err_K": num(self.err_K),
            "temperature_status": self.verdict.status,
            "temperature_criterion": self.verdict.criterion,
            "temperature_reason": self.verdict.reason,
        }


def check_temperature(
    temperatures_K: np.ndarray | Sequence[float],
    target_K: float,
    targets: ConvergenceTargets | None = None,
    *,
    discard_fraction: float = 0.0,
    min_correlation_time_ps: float = 0.0,
    frame_interval_ps: float | None = None,
    n_atoms: int | None = None,
) -> TemperatureCheck:
    """Judge whether a run ran at its labelled temperature, eqs. (2)–(3).

    Parameters
    ----------
    temperatures_K : array_like, shape (F,)
        Instantaneous kinetic temperature per frame (K), in time order at a fixed frame interval. NaN frames
        (temperature not recorded) are dropped.
    target_K : float
        Target (labelled) temperature (K).
    targets : ConvergenceTargets, optional
        ``temperature_tol_K`` (default 5 K) and ``temperature_n_sigma`` (default 3) are used.
    discard_fraction : float
        Fraction of the leading frames to leave out (0 = judge the whole run, as the property builders use it).
    min_correlation_time_ps, frame_interval_ps : float
        A known lower bound τ on the correlation time of T (ps) and the frame spacing Δt (ps): g is raised to
        at least eq. (2'). Default 0: g from the data alone (e.g. for ingested runs of unknown thermostat).
    n_atoms : int, optional
        Atoms in the box: with the floor, σ is at least the canonical σ_T = T_target √(2/(3N − 3)), eq. (1).

    Returns
    -------
    TemperatureCheck
        Mean, standard deviation, standard error and verdict. The reason of an ``unconverged`` verdict gives
        ⟨T⟩ ± SE, the target, the deviation and the tolerance; its ``run_factor`` is inf (an offset that is both
        beyond the tolerance and significant does not go away with a longer run). Too few samples: the factor
        that gives ``MIN_TEMPERATURE_SAMPLES``.
    """
    targets = targets or ConvergenceTargets()
    if not 0.0 <= discard_fraction < 1.0:
        raise ValueError(f"discard_fraction must be in [0, 1), got {discard_fraction}")
    t = np.asarray(temperatures_K, dtype=float).ravel()
    t = t[int(discard_fraction * t.size) :]
    t = t[np.isfinite(t)]
    tol, n_sigma = float(targets.temperature_tol_K), float(targets.temperature_n_sigma)
    criterion = f"|<T> - T_target| <= max({tol:g} K, {n_sigma:g} x SE(<T>))"
    if t.size < MIN_TEMPERATURE_SAMPLES:
        mean = float(t.mean()) if t.size else math.nan
        std = float(t.std()) if t.size else math.nan
        verdict = Verdict(
            "insufficient",
            criterion,
            f"{t.size} finite temperature samples (< {MIN_TEMPERATURE_SAMPLES}); run temperature not checked",
            MIN_TEMPERATURE_SAMPLES / t.size if t.size else None,  # samples ∝ T; none: not recorded
        )
        return TemperatureCheck(mean, std, math.nan, float(target_K), math.nan, int(t.size), verdict)
    est = mean_estimate(t)
    mean, std, err, g = est.mean, float(t.std()), est.sem, est.statistical_inefficiency
    if min_correlation_time_ps > 0:
        if not frame_interval_ps or frame_interval_ps <= 0:
            raise ValueError("min_correlation_time_ps needs a positive frame_interval_ps")
        rho = math.exp(-frame_interval_ps / min_correlation_time_ps)
        g_floor = ar1_statistical_inefficiency(rho)
        sigma = max(std, canonical_temperature_std(target_K, n_atoms, 3)) if n_atoms and n_atoms > 1 else std
        err_floor = sigma * math.sqrt(g_floor / t.size)
        if err_floor > err:
            err, g = err_floor, max(g, g_floor)
    dev = mean - float(target_K)
    allowed = max(tol, n_sigma * err)
    if abs(dev) <= allowed:
        verdict = Verdict("converged", criterion)
    else:
        verdict = Verdict(
            "unconverged",
            criterion,
            f"mean temperature {mean:.1f} ± {err:.1f} K is {dev:+.1f} K from the target {target_K:g} K "
            f"(allowed ±{allowed:.1f} K); the run is not at its labelled temperature",
            math.inf,  # a significant offset beyond the tolerance: a longer run measures it better, not away
        )
    return TemperatureCheck(mean, std, err, float(target_K), float(g), int(t.size), verdict)


def thermostat_offset_K(drift_meV_per_atom_ps: float, relaxation_time_ps: float) -> float:
    """Steady-state excess temperature of a run whose model drifts by ``drift_meV_per_atom_ps``, eq. (5) (K).

    ``relaxation_time_ps`` is the thermostat's kinetic-energy relaxation time τ_K: ``thermostat_time_fs``/1000
    for Bussi, 1/(2γ) (γ in 1/ps) for Langevin.
    """
    return float(drift_meV_per_atom_ps * relaxation_time_ps / (1.5 * KB_MEV_PER_K))


@dataclass(frozen=True)
class EnergyDrift:
    """Linear drift of the total energy of an NVE run, eq. (4).

    Attributes
    ----------
    drift_meV_per_atom_ps : float
        Least-squares slope of E_tot(t) per atom (meV/atom/ps); positive = the model heats.
    drift_err_meV_per_atom_ps : float
        Ordinary least-squares standard error of the slope (residuals treated as independent, so a lower bound
        when they are correlated).
    fluctuation_meV_per_atom : float
        Root-mean-square residual about the line per atom (meV/atom): the short-time integration noise.
    n_atoms, n_samples : int
    duration_ps : float
    """

    drift_meV_per_atom_ps: float
    drift_err_meV_per_atom_ps: float
    fluctuation_meV_per_atom: float
    n_atoms: int
    n_samples: int
    duration_ps: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "drift_meV_per_atom_ps": self.drift_meV_per_atom_ps,
            "drift_err_meV_per_atom_ps": self.drift_err_meV_per_atom_ps,
            "fluctuation_meV_per_atom": self.fluctuation_meV_per_atom,
            "n_atoms": self.n_atoms,
            "n_samples": self.n_samples,
            "duration_ps": self.duration_ps,
        }


def fit_energy_drift(
    times_ps: np.ndarray | Sequence[float], total_energy_eV: np.ndarray | Sequence[float], n_atoms: int
) -> EnergyDrift:
    """Fit E_tot(t) = E_0 + a t by least squares and return a per atom in meV/atom/ps, eq. (4).

    Parameters
    ----------
    times_ps : array_like, shape (M,)
        Sample times (ps).
    total_energy_eV : array_like, shape (M,)
        Total (potential + kinetic) energy of the whole box at those times (eV).
    n_atoms : int
        Atoms in the box.

    Returns
    -------
    EnergyDrift

    Raises
    ------
    ValueError
        Fewer than 3 samples, mismatched lengths, a zero time span or non-finite energies.
    """
    t = np.asarray(times_ps, dtype=float).ravel()
    e = np.asarray(total_energy_eV, dtype=float).ravel()
    if t.shape != e.shape:
        raise ValueError(f"{t.size} times but {e.size} energies")
    if t.size < 3:
        raise ValueError("need at least 3 samples to fit an energy drift")
    if not np.isfinite(e).all() or not np.isfinite(t).all():
        raise ValueError("non-finite total energy or time (the NVE run blew up)")
    if n_atoms < 1:
        raise ValueError("n_atoms must be >= 1")
    tc = t - t.mean()
    sxx = float(tc @ tc)
    if sxx <= 0:
        raise ValueError("the samples span no time")
    slope = float(tc @ (e - e.mean()) / sxx)
    resid = e - e.mean() - slope * tc
    dof = t.size - 2
    s2 = float(resid @ resid) / dof if dof > 0 else 0.0
    slope_err = math.sqrt(s2 / sxx)
    scale = 1000.0 / n_atoms
    return EnergyDrift(
        drift_meV_per_atom_ps=slope * scale,
        drift_err_meV_per_atom_ps=slope_err * scale,
        fluctuation_meV_per_atom=float(np.sqrt(np.mean(resid**2))) * scale,
        n_atoms=int(n_atoms),
        n_samples=int(t.size),
        duration_ps=float(t[-1] - t[0]),
    )
