"""Time-series statistics (electrodb.analysis.statistics) against analytic results.

The reference series is AR(1), x_i = φ x_{i-1} + ε_i with unit-variance ε, started in its stationary
distribution: Var(x) = 1/(1 − φ²), C(t) = φ^t, and the statistical inefficiency is g = (1 + φ)/(1 − φ).
Tolerances come from the estimators' own sampling spread (measured over 60 seeds at N = 5e4: the relative
standard deviation of g is ≈ 4.2 √(g/N), with a heavy tail from the first-zero-crossing truncation), so every
bound below is ≥ 4.5 of those standard deviations while still failing a wrong g by a wide margin.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.signal import lfilter

from electrodb.analysis.statistics import (
    ar1_statistical_inefficiency,
    autocorrelation,
    autocovariance,
    block_average,
    block_mean_error,
    block_means,
    block_standard_error,
    blocking_curve,
    detect_equilibration,
    statistical_inefficiency,
    student_t_factor,
    timeseries_error,
)


def ar1(rng: np.random.Generator, phi: float, n: int) -> np.ndarray:
    """x_i = phi x_{i-1} + noise_i, started from the stationary distribution; g = (1 + phi)/(1 - phi)."""
    noise = rng.standard_normal(n)
    noise[0] /= np.sqrt(1 - phi**2)
    return lfilter([1.0], [1.0, -phi], noise)


# ------------------------------------------------------------------------------------------ autocorrelation
def test_autocovariance_is_the_all_origins_sum() -> None:
    rng = np.random.default_rng(0)
    n, c = 37, 3
    x = rng.normal(size=(n, c))
    direct = np.array([np.sum(x[: n - m] * x[m:]) / (c * (n - m)) for m in range(n)])
    np.testing.assert_allclose(autocovariance(x), direct, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(autocovariance(x[:, 0]), autocovariance(x[:, :1]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(autocovariance(x, n_fft=2 * n - 1), direct, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="wrap around"):
        autocovariance(x, n_fft=2 * n - 2)


def test_autocorrelation_of_ar1_is_phi_to_the_t() -> None:
    phi = 0.7
    x = ar1(np.random.default_rng(1), phi, 200_000)
    c = autocorrelation(x)
    assert c[0] == 1.0
    np.testing.assert_allclose(c[:8], phi ** np.arange(8), atol=0.01)
    np.testing.assert_array_equal(autocorrelation(np.full(10, 3.0)), np.ones(10))


# -------------------------------------------------------------------------------- statistical inefficiency
def test_ar1_statistical_inefficiency_is_the_summed_series() -> None:
    for phi in (0.0, 0.3, 0.9, -0.5):
        t = np.arange(1, 2000)
        assert ar1_statistical_inefficiency(phi) == pytest.approx(1 + 2 * np.sum(phi**t), rel=1e-12)


@pytest.mark.parametrize("phi", [0.3, 0.6, 0.8, 0.9])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_statistical_inefficiency_ar1(phi: float, seed: int) -> None:
    n = 200_000
    x = ar1(np.random.default_rng(seed), phi, n)
    g_true = ar1_statistical_inefficiency(phi)
    tol = 20.0 * np.sqrt(g_true / n)  # ≈ 4.8 standard deviations of the estimator
    assert statistical_inefficiency(x) == pytest.approx(g_true, rel=tol)
    est = timeseries_error(x)
    assert est.statistical_inefficiency == statistical_inefficiency(x)
    assert est.n_effective == pytest.approx(n / est.statistical_inefficiency)
    assert est.mean == pytest.approx(x.mean())
    assert est.sem == pytest.approx(np.sqrt(g_true / (1 - phi**2) / n), rel=tol)


@pytest.mark.parametrize("seed", range(5))
def test_white_noise_has_g_one(seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal(100_000)
    g = statistical_inefficiency(x)
    assert 1.0 <= g < 1.03
    assert timeseries_error(x).sem == pytest.approx(x.std() / np.sqrt(x.size), rel=0.015)


def test_statistical_inefficiency_edge_cases() -> None:
    assert statistical_inefficiency(np.full(50, 2.0)) == 1.0
    with pytest.raises(ValueError):
        statistical_inefficiency([1.0])
    alternating = np.tile([1.0, -1.0], 500)  # C(t) = ±1: never below 1
    assert statistical_inefficiency(alternating) == 1.0


# ----------------------------------------------------------------------------------------------- blocks
def test_block_mean_error() -> None:
    s = np.r_[np.zeros(5), np.ones(5)]
    m, e = block_mean_error(s, 2)
    assert m == 0.5 and e == pytest.approx(0.5)
    assert block_mean_error(s[:1], 5)[1] is None
    assert block_mean_error(s, 1)[1] is None
    two = np.stack([s, 2 * s], axis=1)  # further axes are carried along
    m2, e2 = block_mean_error(two, 2)
    np.testing.assert_allclose(m2, [0.5, 1.0])
    np.testing.assert_allclose(e2, [0.5, 1.0])


def test_block_means_and_standard_error() -> None:
    x = np.arange(11.0)
    np.testing.assert_allclose(block_means(x, 3), [1.0, 4.0, 7.0])  # blocks of 3, two samples dropped
    np.testing.assert_allclose(block_means(x, 2, 4), [1.5, 5.5])
    v = np.random.default_rng(3).normal(size=(6, 4))
    np.testing.assert_allclose(block_standard_error(v), v.std(axis=0, ddof=1) / np.sqrt(6))
    np.testing.assert_allclose(block_standard_error(v, axis=1), v.std(axis=1, ddof=1) / 2.0)


def test_block_average_matches_timeseries_error_for_ar1() -> None:
    phi = 0.8
    x = ar1(np.random.default_rng(5), phi, 200_000)
    est = timeseries_error(x)
    blk = block_average(x, n_blocks=20)
    assert blk.mean == est.mean
    assert blk.sem == float(block_mean_error(x, 20)[1])
    assert blk.sem == pytest.approx(est.sem, rel=0.5)  # 20 blocks: the block SEM itself is uncertain by 16 %
    assert blk.statistical_inefficiency == pytest.approx(x.size * blk.sem**2 / x.var())
    with pytest.raises(ValueError):
        block_average(x[:3], n_blocks=5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blocking_curve_plateaus_at_the_ar1_standard_error(seed: int) -> None:
    """SEM(b)² = σ² g_b / N with g_b = 1 + 2 Σ_{t<b} (1 − t/b) φ^t → g: rises from σ/√N to σ√(g/N)."""
    phi, n = 0.8, 1 << 17
    x = ar1(np.random.default_rng(seed), phi, n)
    sizes, sems = blocking_curve(x)
    np.testing.assert_array_equal(sizes, 2 ** np.arange(sizes.size))
    assert n // sizes[-1] >= 4 and n // (2 * sizes[-1]) < 4
    assert sems[0] == pytest.approx(x.std(ddof=1) / np.sqrt(n))
    sigma = 1.0 / np.sqrt(1.0 - phi**2)
    plateau = sigma * np.sqrt(ar1_statistical_inefficiency(phi) / n)
    for b, sem in zip(sizes, sems, strict=True):
        t = np.arange(1, b)
        expected = sigma * np.sqrt((1 + 2 * np.sum((1 - t / b) * phi**t)) / n)
        n_blocks = n // b
        if n_blocks >= 64:  # relative spread of a block SEM: 1/sqrt(2 (B - 1)), here <= 9 %
            assert sem == pytest.approx(expected, rel=4.5 / np.sqrt(2 * (n_blocks - 1)) + 0.01), b
    on_plateau = sems[(sizes >= 64) & (n // sizes >= 64)]
    assert on_plateau.mean() == pytest.approx(plateau, rel=0.05)
    assert sems[0] < 0.4 * plateau  # naive SEM: σ/√N = plateau/√g = plateau/3


# ------------------------------------------------------------------------------------------ Student t
@pytest.mark.parametrize("n_blocks", [2, 3, 5, 10, 20, 50])
def test_student_t_factor_matches_scipy(n_blocks: int) -> None:
    coverage = stats.norm.cdf(1.0) - stats.norm.cdf(-1.0)  # 68.27 %
    half_width = stats.t.interval(coverage, n_blocks - 1)[1]
    assert student_t_factor(n_blocks) == pytest.approx(half_width, rel=1e-12)
    assert student_t_factor(n_blocks) > 1.0


def test_student_t_factor_values() -> None:
    assert student_t_factor(5) == pytest.approx(1.142, abs=1e-3)
    assert student_t_factor(2) == pytest.approx(1.837, abs=1e-3)
    assert student_t_factor(10_000) == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------------------------------- equilibration
def test_detect_equilibration_finds_a_linear_transient() -> None:
    rng = np.random.default_rng(2)
    x = ar1(rng, 0.5, 20_000)
    x[:2000] += np.linspace(20.0, 0.0, 2000)
    t0, _g, n_eff = detect_equilibration(x)
    assert 1000 <= t0 <= 3500
    assert n_eff > 0.5 * (x.size - t0) / 3.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_detect_equilibration_removes_an_exponential_transient(seed: int) -> None:
    """x = A e^{-i/τ} + AR(1): t0 falls where the transient has sunk into the noise, and what is left of it
    after t0 biases the production mean by less than its standard error."""
    n, amplitude, tau = 20_000, 10.0, 200.0
    x = ar1(np.random.default_rng(seed), 0.5, n) + amplitude * np.exp(-np.arange(n) / tau)
    t0, g, n_eff = detect_equilibration(x)
    assert tau <= t0 <= 5 * tau
    assert g == statistical_inefficiency(x[t0:])
    assert n_eff == pytest.approx((n - t0) / g)
    est = timeseries_error(x[t0:])
    residual_bias = amplitude * tau * np.exp(-t0 / tau) / (n - t0)
    assert residual_bias < est.sem
    assert abs(est.mean) < 3.0 * est.sem + residual_bias


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detect_equilibration_keeps_a_stationary_series(seed: int) -> None:
    x = ar1(np.random.default_rng(100 + seed), 0.5, 20_000)
    t0, _g, _n_eff = detect_equilibration(x)
    assert t0 <= 0.05 * x.size
