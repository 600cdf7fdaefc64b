"""electrodb.analysis.sampling: equilibration cut, effective samples, calibrated errors, drift and static series."""

from __future__ import annotations

import numpy as np
import pytest
from pymbar import timeseries

from electrodb.analysis.sampling import analyse_series, halves_z, sampling_problems, student_t_error_factor
from electrodb.analysis.statistics import inefficiency


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
    """Before its correction for the sample mean, g is pymbar.timeseries' statistical inefficiency (exact mode,
    fast=False) on the same series; the correction is the documented factor N/(N − 1 − 2M + M(M+1)/N) of the
    window M (here about 2 %); the cut is pymbar's within the 10 % near-optimal tolerance (the earliest start
    whose N_eff is within 10 % of the best, N_eff on the corrected g)."""
    rng = np.random.default_rng(3)
    x = np.concatenate([np.linspace(4.0, 0.0, 120), np.zeros(0)]) + ar1(1500, 0.7, 3)[:120]
    x = np.concatenate([x, ar1(1500, 0.7, 4)])
    x += rng.normal(0, 0.01, x.size)
    rep = analyse_series(x, n_candidates=len(x))
    est = inefficiency(x[rep.t0 :])
    n, m = x.size - rep.t0, est.window
    assert est.g_sum == pytest.approx(float(timeseries.statistical_inefficiency(x[rep.t0 :])), rel=1e-6)
    assert rep.g == pytest.approx(est.g_sum * n / (n - 1 - 2 * m + m * (m + 1) / n), rel=1e-12)
    assert 1.0 < rep.g / est.g_sum < 1.05 and rep.dof == pytest.approx(n / (2 * m + 1))
    t0, _, n_eff = timeseries.detect_equilibration(x, fast=False)
    at_pymbar = inefficiency(x[int(t0) :])
    assert rep.t0 <= int(t0) and rep.n_eff >= 0.9 * float(n_eff) * at_pymbar.g_sum / at_pymbar.g - 1e-6
    assert rep.t0 > 0 and abs(rep.mean) < 3 * rep.err  # the steep start of the ramp is cut


def _gaussian_series(rho: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` stationary Gaussian series of len(rho) samples with autocorrelation ``rho`` (unit variance), by
    circulant embedding (Dietrich & Newsam 1997)."""
    c = np.concatenate([rho, rho[-2:0:-1]])
    lam = np.clip(np.fft.fft(c).real, 0.0, None)
    z = rng.normal(size=(m, c.size)) + 1j * rng.normal(size=(m, c.size))
    return np.fft.fft(np.sqrt(lam / c.size) * z, axis=1).real[:, : rho.size]


def _variance_of_mean(rho: np.ndarray) -> float:
    t = np.arange(1, rho.size)
    return float((1.0 + 2.0 * np.sum((1.0 - t / rho.size) * rho[1:])) / rho.size)


def test_a_diffusive_tail_is_not_cut_short() -> None:
    """A slowly decorrelating series as diffusion makes in a periodic box: C(t) = (1 + t/3)^(−3/2) e^(−t/30), 400
    samples, g = 7.1 (N_eff ≈ 56), exact variance of the mean known. Over 1000 series the mean error² matches it
    within a few % (1.03) and z = mean/err has spread 1.0 ± 0.08 (1.06). The plain truncated sum (pymbar's, with
    Student-t on N_eff − 1, the estimator before) gave 0.92 of the variance and a spread of 1.13 on these series
    (0.93 and 1.12 on another seed): every C(t) is low by Var(x̄) (the sample mean), and N_eff − 1 overstates
    how well the error itself is known."""
    t = np.arange(400)
    rho = (1.0 + t / 3.0) ** -1.5 * np.exp(-t / 30.0)
    xs = _gaussian_series(rho, 1000, np.random.default_rng(0))
    reps = [analyse_series(x, detect_start=False) for x in xs]
    var = np.mean([r.std**2 * r.g / r.n for r in reps]) / _variance_of_mean(rho)
    z = np.array([r.mean / r.err for r in reps])
    assert 0.95 < var < 1.08, var
    assert 0.92 < np.sqrt(np.mean(z**2)) < 1.08, np.sqrt(np.mean(z**2))


def test_a_short_correlated_series_has_honest_errors() -> None:
    """AR(1), φ = 0.8 (g = 9), 200 samples (N_eff ≈ 23, near the target): over 1000 series the z spread is
    1.0 ± 0.08 (1.01); the estimator before gave 1.13 (N_eff − 1 ≈ 21 degrees of freedom where the error rests on
    N/(2M + 1) ≈ 4–15, and no correction for the sample mean)."""
    z = []
    for seed in range(1000):
        rep = analyse_series(ar1(200, 0.8, seed), detect_start=False)
        assert rep.dof is not None and rep.dof <= rep.n_eff - 1.0 + 1e-9
        z.append(rep.mean / rep.err)
    assert 0.92 < np.sqrt(np.mean(np.square(z))) < 1.08, np.sqrt(np.mean(np.square(z)))


def test_a_known_correlation_floor_compares_the_plain_sum() -> None:
    """With ``g_floor`` (a finite-range correlation known from how the series was made) the plain truncated sum,
    not the mean-corrected one, is compared with the floor; a floor above it is used with N/g − 1 degrees of
    freedom (it is exact, not estimated)."""
    x = ar1(600, 0.5, 2)
    est = inefficiency(x)
    above = analyse_series(x, detect_start=False, g_floor=10.0)
    assert above.g == 10.0 and above.dof == pytest.approx(600 / 10.0 - 1.0)
    below = analyse_series(x, detect_start=False, g_floor=1.5)
    assert below.g == pytest.approx(est.g_sum) and below.g < analyse_series(x, detect_start=False).g == est.g


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
