"""Kirkwood–Buff integrals against closed-form results.

Tolerances are relative to the analytic G∞ unless stated (1e-4 relative).
"""

from __future__ import annotations

import numpy as np
import pytest

from electrodb.analysis.kirkwood_buff import (
    A3_TO_CM3_PER_MOL,
    MOL_PER_L_TO_PER_A3,
    KBResult,
    activity_derivative,
    finite_volume_kb,
    ganguly_correction,
    kb_integral,
    kb_integral_running,
    kruger_extrapolate,
    salt_component_integrals,
)

SIGMA, AMP, XI, K = 3.0, 0.8, 1.0, 2.0 * np.pi / 3.0


def step_g(r: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """g = 0 inside sigma, 1 outside, the mean value 1/2 on the jump (trapezoid stays O(dr^2))."""
    g = np.where(r < sigma, 0.0, 1.0)
    g[np.isclose(r, sigma)] = 0.5
    return g


def oscillating_g(r: np.ndarray) -> np.ndarray:
    """g = 1 + A exp(-r/xi) sin(kr)/r (no core); G = 8 pi A (k/xi) / (1/xi^2 + k^2)^2."""
    with np.errstate(invalid="ignore", divide="ignore"):
        h = AMP * np.exp(-r / XI) * np.where(r > 0, np.sin(K * r) / r, K)
    return 1.0 + h


def oscillating_exact() -> float:
    return 8.0 * np.pi * AMP * (K / XI) / (1.0 / XI**2 + K**2) ** 2


def core_oscillating_g(r: np.ndarray) -> np.ndarray:
    """Hard core of diameter SIGMA plus the damped oscillation beyond it (a liquid-like g)."""
    g = np.where(r < SIGMA, 0.0, oscillating_g(r))
    on = np.isclose(r, SIGMA)
    g[on] = 0.5 * oscillating_g(r[on])
    return g


def core_oscillating_exact() -> float:
    s = 1.0 / XI - 1j * K
    tail = np.exp(-s * SIGMA) * (SIGMA / s + 1.0 / s**2)
    return -4.0 * np.pi * SIGMA**3 / 3.0 + 4.0 * np.pi * AMP * tail.imag


def test_running_integral_step() -> None:
    r = np.arange(0.0, 12.0 + 1e-9, 0.002)
    g_run = kb_integral_running(r, step_g(r))
    exact = -4.0 * np.pi * SIGMA**3 / 3.0
    assert abs(g_run[-1] / exact - 1.0) < 1e-4
    # bin-centred grid: the [0, r0] head is added analytically (g = g(r0) = 0 there)
    rc = np.arange(0.001, 12.0, 0.002)
    assert abs(kb_integral_running(rc, step_g(rc))[-1] / exact - 1.0) < 1e-4


def test_running_integral_damped_oscillation() -> None:
    r = np.arange(0.0, 30.0, 0.002)
    g_run = kb_integral_running(r, oscillating_g(r))
    assert abs(g_run[-1] / oscillating_exact() - 1.0) < 1e-4
    r2 = np.arange(0.0, 30.0, 0.002)
    assert abs(kb_integral_running(r2, core_oscillating_g(r2))[-1] / core_oscillating_exact() - 1.0) < 1e-4


def test_kruger_extrapolation_exact_with_cubic_term() -> None:
    # for L beyond the range of h: G(L) = G_inf + a/L + b/L^3 exactly
    r = np.arange(0.0, 40.0 + 1e-9, 0.002)
    g = core_oscillating_g(r)
    lengths = np.linspace(20.0, 40.0, 30)
    g_l = finite_volume_kb(r, g, lengths)
    g_inf, _ = kruger_extrapolate(lengths, g_l, cubic=True)
    assert abs(g_inf / core_oscillating_exact() - 1.0) < 1e-4
    # the finite-L values themselves are far from G_inf (the correction matters)
    assert abs(g_l[0] / core_oscillating_exact() - 1.0) > 0.05


def test_kruger_linear_in_inverse_length() -> None:
    # linear 1/L fit: the 1/L^3 term is below 1e-4 once L >> sigma (window 60-120 Å)
    r = np.arange(0.0, 120.0 + 1e-9, 0.005)
    res = kb_integral(r, step_g(r), n_b=10_000, volume=1e9, same_species=False, method="kruger")
    exact = -4.0 * np.pi * SIGMA**3 / 3.0
    assert abs(res.value / exact - 1.0) < 1e-4
    assert abs(res.value_cm3_per_mol / (exact * A3_TO_CM3_PER_MOL) - 1.0) < 1e-4


def _closed_system_g(r: np.ndarray, g_inf: np.ndarray, n_b: int, volume: float, delta: int) -> np.ndarray:
    """Finite-N g from an infinite-system g: the far density is that of the b left outside radius r.

    g(r) = g_inf(r) (N_b - delta - N_in(r)) / (N_b (1 - V_r / V)),  N_in(r) = (N_b/V) ∫ 4π r'^2 g dr',
    marched forward with the same trapezoid rule as the running integral (implicit in g(r_i)).
    """
    rho = n_b / volume
    g = np.empty_like(g_inf)
    n_in = 0.0
    for i, ri in enumerate(r):
        scale = n_b * (1.0 - 4.0 * np.pi * ri**3 / (3.0 * volume))
        if i == 0:
            g[0] = g_inf[0] * (n_b - delta) / scale
            continue
        dr = ri - r[i - 1]
        c = rho * 4.0 * np.pi * 0.5 * dr
        known = n_in + c * g[i - 1] * r[i - 1] ** 2
        # g_i = g_inf_i (N_b - delta - known - c r_i^2 g_i) / scale  -> solve for g_i
        g[i] = g_inf[i] * (n_b - delta - known) / (scale + g_inf[i] * c * ri**2)
        n_in = known + c * g[i] * ri**2
    return g


@pytest.mark.parametrize("same_species", [True, False])
def test_ganguly_correction_recovers_infinite_system(same_species: bool) -> None:
    r = np.arange(0.0, 15.0 + 1e-9, 0.002)
    g_inf = core_oscillating_g(r)
    n_b, volume = 100, 30.0**3
    g_fin = _closed_system_g(r, g_inf, n_b, volume, int(same_species))
    g_corr = ganguly_correction(r, g_fin, n_b, volume, same_species)
    # exact up to the trapezoid error of ∫ r^2 dr against the exact sphere volume (~1e-8 here)
    assert np.max(np.abs(g_corr - g_inf)) < 1e-7
    res = kb_integral(r, g_fin, n_b, volume, same_species, method="ganguly", plateau=(11.0, 15.0))
    exact = core_oscillating_exact()
    assert abs(res.values["ganguly"] / exact - 1.0) < 1e-4
    # without the correction the plateau is badly biased (this is what the correction is for)
    assert abs(res.values["raw"] / exact - 1.0) > 0.01
    # Ganguly then Krüger ('both'): in a 30 Å box the 1/L^3 term matters, the cubic fit handles it
    both = kb_integral(r, g_fin, n_b, volume, same_species, method="both", fit_window=(7.5, 15.0), cubic=True)
    assert abs(both.value / exact - 1.0) < 1e-4


def _ideal_blocks(rng: np.random.Generator, r: np.ndarray, n_blocks: int, scale: float) -> np.ndarray:
    return scale * (1.0 + 0.02 * rng.standard_normal((n_blocks, r.size)))


def test_ideal_gas_gives_zero_and_acc_one() -> None:
    rng = np.random.default_rng(7)
    r = np.arange(0.05, 14.0, 0.1)
    volume, n_ion, n_w = 28.0**3, 20, 700
    kw = {"plateau": (7.0, 14.0)}
    # like pairs of an ideal gas in a closed box: g = 1 - 1/N (normalised by N/V)
    gpp = kb_integral(r, _ideal_blocks(rng, r, 10, 1 - 1 / n_ion), n_ion, volume, True, **kw)
    gmm = kb_integral(r, _ideal_blocks(rng, r, 10, 1 - 1 / n_ion), n_ion, volume, True, **kw)
    gpm = kb_integral(r, _ideal_blocks(rng, r, 10, 1.0), n_ion, volume, False, **kw)
    gpw = kb_integral(r, _ideal_blocks(rng, r, 10, 1.0), n_w, volume, False, **kw)
    gmw = kb_integral(r, _ideal_blocks(rng, r, 10, 1.0), n_w, volume, False, **kw)
    for res in (gpp, gmm, gpm, gpw, gmw):
        assert isinstance(res, KBResult)
        for method in ("ganguly", "both"):
            assert abs(res.values[method]) < 4.0 * res.uncertainties[method]
    for res in (gpm, gpw, gmw):
        assert abs(res.values["kruger"]) < 4.0 * res.uncertainties["kruger"]
    # like pairs: the -1/N offset of a closed box is not a finite-L (1/L) effect; only Ganguly removes it
    assert abs(gpp.values["kruger"]) > 10.0 * gpp.uncertainties["kruger"]
    c = n_ion / (volume * MOL_PER_L_TO_PER_A3)
    a_cc, err = activity_derivative(c, gpp, gmm, gpm, gpw, gmw)
    assert err > 0
    assert abs(a_cc - 1.0) < 4.0 * err
    a_lin, err_lin = activity_derivative(c, gpp, gmm, gpm, gpw, gmw, propagation="linear")
    assert a_lin == pytest.approx(a_cc)
    assert 0.3 < err_lin / err < 3.0


def test_salt_component_matches_zhang_form_for_1to1() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        gpp, gmm, gpm, gpw, gmw = rng.uniform(-400, 400, size=5)
        c = rng.uniform(0.1, 5.0)
        a_cc, _ = activity_derivative(c, gpp, gmm, gpm, gpw, gmw)
        rho_pairs = c * MOL_PER_L_TO_PER_A3
        g_cc_zhang = (gpp + gmm + 2 * gpm) / 4.0
        g_co = (gpw + gmw) / 2.0
        denom = 1.0 + 2.0 * rho_pairs * (g_cc_zhang - g_co)
        assert a_cc == pytest.approx(1.0 / denom, rel=1e-12)


def test_salt_component_2to1_weights() -> None:
    # MgCl2: rho_- = 2 rho_+; equal integrals must give back that integral
    g_cc, g_cw = salt_component_integrals(1.0, 5.0, 5.0, 5.0, 2.0, 2.0, nu_plus=1, nu_minus=2)
    assert g_cc == pytest.approx(5.0)
    assert g_cw == pytest.approx(2.0)
    g_cc, g_cw = salt_component_integrals(1.0, 9.0, 0.0, 0.0, 3.0, 0.0, nu_plus=1, nu_minus=2)
    assert g_cc == pytest.approx(1.0)  # (1/3)^2 * 9
    assert g_cw == pytest.approx(1.0)  # (1/3) * 3


def test_linear_error_propagation_matches_finite_difference() -> None:
    vals = np.array([-50.0, 20.0, 80.0, -30.0, -10.0])
    errs = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    c = 2.0
    a0, err = activity_derivative(c, *vals, errors=dict(zip(["pp", "mm", "pm", "pw", "mw"], errs, strict=True)))
    grads = []
    for i in range(5):
        v = vals.copy()
        v[i] += 1e-4
        grads.append((activity_derivative(c, *v)[0] - a0) / 1e-4)
    assert err == pytest.approx(np.sqrt(np.sum((np.array(grads) * errs) ** 2)), rel=1e-3)
