"""electrodb.analysis.sampling: equilibration cut, effective samples, calibrated errors, drift and static series."""

from __future__ import annotations

import numpy as np
import pytest
from pymbar import timeseries

from electrodb.analysis.sampling import analyse_series, halves_z, sampling_problems, student_t_error_factor


def ar1(n: int, phi: float, seed: int) -> np.ndarray:
    """A stationary AR(1) series with unit innovations (true mean 0, g = (1 + φ)/(1 − φ))."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0] / np.sqrt(1 - phi**2)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


def test_matches_pymbar_on_the_same_series() -> None:
    """g is pymbar.timeseries' (exact mode, fast=False) on the same series; the cut is pymbar's within the 10 %
    near-optimal tolerance (the earliest start whose N_eff is within 10 % of pymbar's best)."""
    rng = np.random.default_rng(3)
    x = np.concatenate([np.linspace(4.0, 0.0, 120), np.zeros(0)]) + ar1(1500, 0.7, 3)[:120]
    x = np.concatenate([x, ar1(1500, 0.7, 4)])
    x += rng.normal(0, 0.01, x.size)
    rep = analyse_series(x, n_candidates=len(x))
    t0, _, n_eff = timeseries.detect_equilibration(x, fast=False)
    assert rep.t0 <= int(t0) and rep.n_eff >= 0.9 * float(n_eff) - 1e-6
    assert rep.g == pytest.approx(float(timeseries.statistical_inefficiency(x[rep.t0 :])), rel=1e-6)
    assert rep.t0 > 0 and abs(rep.mean) < 3 * rep.err  # the steep start of the ramp is cut


@pytest.mark.parametrize(("phi", "n"), [(0.0, 1000), (0.5, 1000), (0.9, 1000), (0.9, 3000)])
def test_errors_cover_the_truth_over_many_seeds(phi: float, n: int) -> None:
    """z = (mean − 0)/err over 200 AR(1) series: spread 1.0 ± 0.1, none beyond 4.5 σ (g ≈ 19 at φ = 0.9)."""
    z = []
    for seed in range(200):
        rep = analyse_series(ar1(n, phi, seed))
        z.append(rep.mean / rep.err)
    z = np.asarray(z)
    assert 0.9 <= z.std() <= 1.1, z.std()
    assert np.abs(z).max() < 4.5


def test_the_transient_is_cut_and_the_value_is_the_equilibrium_one() -> None:
    x = np.concatenate([np.linspace(5.0, 1.0, 60), 1.0 + 0.1 * ar1(900, 0.5, 1)])
    rep = analyse_series(x)
    assert 45 <= rep.t0 <= 120
    assert abs(rep.mean - 1.0) < 3 * rep.err
    uncut = analyse_series(x, detect_start=False)
    assert uncut.mean - 1.0 > 0.1  # averaged in, the transient biases the value


def test_a_drifting_series_fails_the_halves_test() -> None:
    x = np.concatenate([1.0 + 0.05 * ar1(500, 0.5, 2), 1.3 + 0.05 * ar1(500, 0.5, 5)])
    rep = analyse_series(x, detect_start=False)
    assert rep.halves_z > 10
    problems = sampling_problems(rep, min_n_eff=20, stationarity_sigma=3.0, what="D")
    assert any("drifts" in p for p in problems)
    assert halves_z(ar1(1000, 0.5, 7)) < 3


def test_few_correlated_samples_are_not_enough() -> None:
    """30 frames of a series that decorrelates over ~10 frames hold a handful of independent samples."""
    rep = analyse_series(ar1(30, 0.9, 11), detect_start=False)
    assert rep.n_eff < 20
    assert any("independent samples" in p for p in sampling_problems(rep, 20, 3.0, "a_cc"))


def test_a_static_series_measures_nothing() -> None:
    rep = analyse_series(np.full(40, 8.0))
    assert rep.err == 0.0 and rep.std == 0.0
    assert any("never changed" in p for p in sampling_problems(rep, 20, 3.0, "CN(Na-O)"))


def test_student_t_factor() -> None:
    assert student_t_error_factor(2) == pytest.approx(1.8373, abs=1e-3)
    assert student_t_error_factor(1e6) == pytest.approx(1.0, abs=1e-4)
    assert student_t_error_factor(0.5) == student_t_error_factor(2)  # at least one degree of freedom


def test_bad_series_are_refused() -> None:
    with pytest.raises(ValueError, match="non-empty 1-D"):
        analyse_series(np.empty(0))
    with pytest.raises(ValueError, match="non-finite"):
        analyse_series(np.array([1.0, np.nan, 2.0]))
