"""Run checks against analytic cases: canonical temperature fluctuations, correlated errors, energy drift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from electrodb.analysis.convergence import ConvergenceTargets
from electrodb.analysis.md_checks import (
    canonical_temperature_std,
    check_temperature,
    fit_energy_drift,
    thermostat_offset_K,
)


def _canonical_temperatures(rng: np.random.Generator, t0: float, n_atoms: int, n: int) -> np.ndarray:
    """Independent canonical samples: T = 2K/(N_f k_B) with K ~ Gamma(N_f/2, k_B T0), i.e. T0 χ²(N_f)/N_f."""
    n_dof = 3 * n_atoms
    return t0 * rng.chisquare(n_dof, size=n) / n_dof


def test_canonical_std_is_t_sqrt_2_over_3n():
    assert canonical_temperature_std(298.15, 194) == pytest.approx(298.15 * math.sqrt(2 / 582))
    assert canonical_temperature_std(298.15, 194) == pytest.approx(17.48, abs=0.01)
    assert canonical_temperature_std(300.0, 100, n_constraints=3) == pytest.approx(300 * math.sqrt(2 / 297))
    rng = np.random.default_rng(0)
    t = _canonical_temperatures(rng, 298.15, 194, 200_000)
    assert t.std() == pytest.approx(canonical_temperature_std(298.15, 194), rel=0.01)


def test_right_temperature_is_converged_with_the_iid_error():
    rng = np.random.default_rng(1)
    n, n_atoms = 4000, 194
    check = check_temperature(_canonical_temperatures(rng, 298.15, n_atoms, n), 298.15)
    sigma = canonical_temperature_std(298.15, n_atoms)
    assert check.verdict.status == "converged" and check.verdict.reason == ""
    assert check.std_K == pytest.approx(sigma, rel=0.05)
    assert check.err_K == pytest.approx(sigma / math.sqrt(n), rel=0.15)  # independent samples: g ≈ 1
    assert check.statistical_inefficiency < 1.3
    fields = check.as_fields()
    assert set(fields) == {
        "mean_temperature_K",
        "std_temperature_K",
        "temperature_err_K",
        "temperature_status",
        "temperature_criterion",
        "temperature_reason",
    }
    assert fields["temperature_status"] == "converged" and fields["mean_temperature_K"] == check.mean_K


def test_wrong_temperature_is_unconverged_with_numbers_in_the_reason():
    rng = np.random.default_rng(2)
    hot = _canonical_temperatures(rng, 420.0, 194, 2000)
    check = check_temperature(hot, 298.15)
    assert check.verdict.status == "unconverged"
    assert "298.15" in check.verdict.reason and f"{check.mean_K:.1f}" in check.verdict.reason
    # the tolerance floor: 4 K off with a tiny error is still at the labelled temperature (5 K default) ...
    near = np.full(100, 302.15) + rng.normal(0, 0.01, 100)
    assert check_temperature(near, 298.15).verdict.status == "converged"
    # ... and not with a 2 K tolerance
    strict = ConvergenceTargets(temperature_tol_K=2.0)
    assert check_temperature(near, 298.15, strict).verdict.status == "unconverged"


def test_correlated_series_error_accounts_for_autocorrelation():
    """AR(1) x_i = φ x_{i-1} + ε: SE² = σ²/n × (1+φ)/(1−φ)."""
    rng = np.random.default_rng(3)
    phi, n, sigma = 0.9, 20_000, 10.0
    eps = rng.normal(0, sigma * math.sqrt(1 - phi**2), n)
    x = np.empty(n)
    x[0] = rng.normal(0, sigma)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + eps[i]
    check = check_temperature(300.0 + x, 300.0)
    expected = sigma * math.sqrt((1 + phi) / (1 - phi) / n)
    assert check.err_K == pytest.approx(expected, rel=0.25)
    assert check.statistical_inefficiency == pytest.approx((1 + phi) / (1 - phi), rel=0.25)
    # an offset of 2 × the floor but well inside n_sigma × SE of a short, strongly correlated run is accepted
    short = 300.0 + 12.0 + x[:300] * 3
    c = check_temperature(short, 300.0)
    assert (abs(c.mean_K - 300.0) <= max(5.0, 3 * c.err_K)) == (c.verdict.status == "converged")


def test_too_few_or_nan_temperatures_are_insufficient():
    check = check_temperature([np.nan] * 50 + [300.0] * 3, 300.0)
    assert check.verdict.status == "insufficient" and check.n_samples == 3
    assert check.as_fields()["temperature_err_K"] is None
    assert check_temperature([], 300.0).as_fields()["mean_temperature_K"] is None
    with_nan = np.r_[np.full(5, np.nan), np.full(40, 300.0)]
    assert check_temperature(with_nan, 300.0).verdict.status == "converged"


def test_energy_drift_recovers_a_linear_slope_per_atom():
    rng = np.random.default_rng(4)
    t = np.arange(0, 0.2, 0.0025)  # ps
    n_atoms = 200
    slope_eV_ps = 0.5  # 0.5 eV/ps over 200 atoms = 2.5 meV/atom/ps
    e = -1000.0 + slope_eV_ps * t + rng.normal(0, 1e-3, t.size)
    d = fit_energy_drift(t, e, n_atoms)
    assert d.drift_meV_per_atom_ps == pytest.approx(2.5, abs=4 * d.drift_err_meV_per_atom_ps)
    assert d.drift_err_meV_per_atom_ps < 0.05
    assert d.fluctuation_meV_per_atom == pytest.approx(1e-3 / n_atoms * 1000, rel=0.2)
    assert d.duration_ps == pytest.approx(t[-1]) and d.n_samples == t.size
    exact = fit_energy_drift([0.0, 1.0, 2.0], [1.0, 1.1, 1.2], 10)
    assert exact.drift_meV_per_atom_ps == pytest.approx(10.0) and exact.fluctuation_meV_per_atom < 1e-9
    with pytest.raises(ValueError, match="non-finite"):
        fit_energy_drift([0, 1, 2], [0, np.nan, 1], 3)
    with pytest.raises(ValueError, match="at least 3"):
        fit_energy_drift([0, 1], [0, 1], 3)


def test_known_correlation_time_sets_a_floor_on_the_error():
    """Exponential correlation τ sampled every Δt: g = (1 + e^{−Δt/τ})/(1 − e^{−Δt/τ}) ≈ 2τ/Δt."""
    rng = np.random.default_rng(5)
    t = _canonical_temperatures(rng, 300.0, 194, 41)  # a 0.1 ps run sampled every 2.5 fs
    free = check_temperature(t, 300.0)
    floored = check_temperature(t, 300.0, min_correlation_time_ps=0.1, frame_interval_ps=0.0025)
    rho = math.exp(-0.0025 / 0.1)
    g = (1 + rho) / (1 - rho)
    assert g == pytest.approx(2 * 0.1 / 0.0025, rel=0.01)
    assert floored.statistical_inefficiency == pytest.approx(g)
    assert floored.err_K == pytest.approx(floored.std_K * math.sqrt(g / 41))
    assert floored.err_K > 3 * free.err_K  # 41 samples: their own g (3.5 here) with t on 3.7 degrees of freedom
    with pytest.raises(ValueError, match="frame_interval_ps"):
        check_temperature(t, 300.0, min_correlation_time_ps=0.1)
    # a short run's own spread underestimates σ_T: with N given, the floor uses the canonical σ_T of eq. (1)
    narrow = 300.0 + rng.normal(0, 3.0, 41)
    with_n = check_temperature(narrow, 300.0, min_correlation_time_ps=0.1, frame_interval_ps=0.0025, n_atoms=194)
    assert with_n.err_K == pytest.approx(canonical_temperature_std(300.0, 194, 3) * math.sqrt(g / 41))


def test_thermostat_offset_from_energy_drift():
    # ΔT = ε̇ τ / (3/2 k_B): 1 meV/atom/ps for 0.1 ps is 0.1 meV/atom = 0.774 K of kinetic temperature
    assert thermostat_offset_K(1.0, 0.1) == pytest.approx(0.1 / (1.5 * 0.08617333262))
    assert thermostat_offset_K(1.0, 0.1) == pytest.approx(0.774, abs=1e-3)
    assert thermostat_offset_K(-2.0, 0.5) == pytest.approx(-2 * 5 * 0.774, rel=1e-3)


def test_checkpoint_interval_scales_with_the_run():
    from electrodb.md.dynamics import checkpoint_interval

    assert checkpoint_interval(1000, 400, 4) == 40  # a 400-step run gets checkpoints (it got none at 1000)
    assert checkpoint_interval(1000, 200_000, 20) == 1000  # long runs keep the configured interval
    assert checkpoint_interval(1000, 30, 20) == 20  # never off the sampling grid
    assert checkpoint_interval(50, 400, 10) == 40
