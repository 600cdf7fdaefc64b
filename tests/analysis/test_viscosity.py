"""Viscosity for Yeh–Hummer: Green–Kubo on an analytic Ornstein–Uhlenbeck stress, Laliberté, the fall-through."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from electrodb.analysis.finite_size import BOLTZMANN_J_PER_K, water_viscosity
from electrodb.analysis.viscosity import (
    EV_PER_A3_IN_PA,
    LALIBERTE_NOMINAL_REL_ERR,
    green_kubo_viscosity,
    laliberte_viscosity,
    solution_viscosity,
)

TAU, SIG, DT = 0.05, 1e-3, 0.002  # ps, eV/Å³, ps
V, T = 1000.0, 300.0  # Å³, K


def ou(seed: int, n_frames: int, n: int, tau: float = TAU, dt: float = DT) -> np.ndarray:
    """Exact discrete Ornstein–Uhlenbeck series: variance SIG², correlation exp(-t/tau)."""
    rng = np.random.default_rng(seed)
    a = np.exp(-dt / tau)
    e = rng.normal(size=(n_frames, n)) * SIG * np.sqrt(1 - a * a)
    return lfilter([1.0], [1.0, -a], e, axis=0, zi=a * SIG * rng.normal(size=(1, n)))[0]


def off_diagonal_stress(z: np.ndarray) -> np.ndarray:
    s = np.zeros((len(z), 3, 3))
    for c, (i, j) in enumerate([(0, 1), (0, 2), (1, 2)]):
        s[:, i, j] = s[:, j, i] = z[:, c]
    return s


def eta_exact(tau: float = TAU, dt: float = DT) -> float:
    """V/(k_B T) × trapezoidal integral of SIG² a^m (= SIG² tau (1 + O(dt²/tau²)))."""
    a = np.exp(-dt / tau)
    integral = (SIG * EV_PER_A3_IN_PA) ** 2 * dt * 1e-12 * (1 + a) / (2 * (1 - a))
    return V * 1e-30 / (BOLTZMANN_J_PER_K * T) * integral


def test_green_kubo_ornstein_uhlenbeck_analytic() -> None:
    expected = eta_exact()
    assert expected == pytest.approx(
        V * 1e-30 / (BOLTZMANN_J_PER_K * T) * (SIG * EV_PER_A3_IN_PA) ** 2 * TAU * 1e-12, rel=1e-3
    )
    res = green_kubo_viscosity(off_diagonal_stress(ou(1, 200_000, 3)), V, T, DT)
    assert res.ok, res.reason
    assert res.eta_err_Pa_s < 0.05 * expected
    assert abs(res.eta_Pa_s - expected) < 3 * res.eta_err_Pa_s
    assert 3 * TAU < res.cutoff_ps < 20 * TAU
    # the sign convention (stress = -pressure) does not matter
    neg = green_kubo_viscosity(-off_diagonal_stress(ou(1, 200_000, 3)), V, T, DT)
    assert neg.eta_Pa_s == pytest.approx(res.eta_Pa_s, rel=1e-12)


def test_green_kubo_error_bars_are_honest() -> None:
    """20 independent runs: the 68 % interval covers the analytic η at about the nominal rate, no bias."""
    expected = eta_exact()
    z = []
    for seed in range(20):
        res = green_kubo_viscosity(off_diagonal_stress(ou(100 + seed, 60_000, 3)), V, T, DT)
        assert res.ok, res.reason
        z.append((res.eta_Pa_s - expected) / res.eta_err_Pa_s)
    z = np.asarray(z)
    assert 0.45 <= np.mean(np.abs(z) < 1) <= 0.95
    assert abs(np.mean(z)) < 0.8
    assert np.std(z) < 1.6


def test_green_kubo_normal_stress_differences() -> None:
    """(Pxx-Pyy)/2 and (Pyy-Pzz)/2 carry the same correlation; an isotropic pressure cancels."""
    z = ou(7, 100_000, 5)
    s = off_diagonal_stress(z[:, :3])
    s[:, 0, 0], s[:, 1, 1], s[:, 2, 2] = 2 * z[:, 3], 0.0, -2 * z[:, 4]
    s += 0.01 * np.eye(3)  # mean pressure: removed with the mean
    five = green_kubo_viscosity(s, V, T, DT, include_normal_differences=True)
    assert five.ok, five.reason
    assert abs(five.eta_Pa_s - eta_exact()) < 3 * five.eta_err_Pa_s


def test_green_kubo_refuses_coarse_or_missing_stress() -> None:
    s = off_diagonal_stress(ou(2, 50_000, 3))
    coarse = green_kubo_viscosity(s[::5], V, T, 5 * DT)  # 10 fs frames
    assert not coarse.ok and "10 fs > 5 fs" in coarse.reason and coarse.eta_Pa_s is None
    # fine frames but the correlation dies within one frame: not resolved
    fast = green_kubo_viscosity(off_diagonal_stress(ou(3, 50_000, 3, tau=0.0005)), V, T, DT)
    assert not fast.ok and "within one frame" in fast.reason
    gaps = s.copy()
    gaps[10] = np.nan
    holed = green_kubo_viscosity(gaps, V, T, DT)
    assert not holed.ok and "not recorded in 1 of" in holed.reason
    short = green_kubo_viscosity(s[:2000], V, T, DT)  # 4 ps: blocks too short for the cut-off
    assert not short.ok and short.reason


def test_laliberte_reference_values() -> None:
    # Laliberté's spreadsheet check value (thermo docstring): NaCl, w = 0.00581, 5 °C -> 1.52858 mPa s
    from thermo.electrochem import Laliberte_viscosity

    assert Laliberte_viscosity(278.15, [0.005810], ["7647-14-5"]) == pytest.approx(1.5285828581961414e-3, rel=1e-9)
    eta, note = laliberte_viscosity("NaCl", 1.0, 298.15)
    w = 58.45 / 1058.45
    assert eta == pytest.approx(Laliberte_viscosity(298.15, [w], ["7647-14-5"]), rel=1e-12)
    assert "Laliberté" in note and "552 points" in note
    # values at 25 °C (Pa s); viscosity rises with molality, LiCl above NaCl (larger Jones–Dole B)
    table = {(s, m): laliberte_viscosity(s, m, 298.15)[0] for s in ("NaCl", "LiCl") for m in (1.0, 3.0)}
    assert table["NaCl", 1.0] == pytest.approx(0.9717e-3, rel=1e-3)
    assert table["NaCl", 3.0] == pytest.approx(1.1983e-3, rel=1e-3)
    assert table["LiCl", 1.0] == pytest.approx(1.0085e-3, rel=1e-3)
    assert table["LiCl", 3.0] == pytest.approx(1.2875e-3, rel=1e-3)
    # dilute limit against Jones–Dole eta/eta_w = 1 + A sqrt(c) + B c (25 °C; B(NaCl) ~ 0.08, B(LiCl) ~ 0.14 L/mol)
    eta_w = laliberte_viscosity("NaCl", 1e-9, 298.15)[0]
    assert eta_w == pytest.approx(water_viscosity(298.15), rel=2e-3)
    for salt, a, b in (("NaCl", 0.0060, 0.080), ("LiCl", 0.0052, 0.141)):
        c = 0.1 * 0.997
        assert laliberte_viscosity(salt, 0.1, 298.15)[0] / eta_w == pytest.approx(1 + a * c**0.5 + b * c, rel=0.01)


def test_laliberte_outside_range() -> None:
    assert laliberte_viscosity("LiPF6", 1.0, 298.15) == (None, "LiPF6 not in Laliberté's viscosity table")
    eta, note = laliberte_viscosity("LiCl", 25.0, 298.15)
    assert eta is None and "above Laliberté's fitted range" in note
    eta, note = laliberte_viscosity("NaCl", 1.0, 450.0)
    assert eta is None and "outside Laliberté's fitted range 5–154 °C" in note


def test_solution_viscosity_order_of_preference() -> None:
    s = off_diagonal_stress(ou(5, 200_000, 3))
    gk = solution_viscosity("LiCl", 2.6, 298.15, s, V, DT)
    assert gk.source == "green_kubo_run" and gk.eta_Pa_s == pytest.approx(eta_exact(), rel=0.1)
    lal = solution_viscosity("LiCl", 2.6, 298.15, s[::10], V, 10 * DT)
    assert lal.source == "laliberte_correlation" and "Green–Kubo: stress sampled every 20 fs" in lal.note
    assert lal.eta_Pa_s == pytest.approx(1.2268e-3, rel=1e-3)
    assert lal.eta_err_Pa_s == pytest.approx(LALIBERTE_NOMINAL_REL_ERR * lal.eta_Pa_s)
    assert solution_viscosity("LiCl", 2.6, 298.15).source == "laliberte_correlation"
    water = solution_viscosity("LiPF6", 1.0, 298.15)
    assert water.source == "experimental_water_vogel" and "over-corrects" in water.note
    assert water.eta_Pa_s == pytest.approx(water_viscosity(298.15))
    assert solution_viscosity(None, 0.0, 298.15).source == "experimental_water_vogel"
