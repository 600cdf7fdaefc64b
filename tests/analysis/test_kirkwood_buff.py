"""Kirkwood–Buff integrals against closed-form results.

Tolerances are relative to the analytic G∞ unless stated (1e-4 relative).
"""

from __future__ import annotations

import numpy as np
import pytest

from electrodb.analysis.convergence import ConvergenceTargets
from electrodb.analysis.kb_finite_size import (
    finite_volume_kb,
    ganguly_correction,
    kb_integral_running,
    kruger_extrapolate,
)
from electrodb.analysis.kirkwood_buff import (
    A3_TO_CM3_PER_MOL,
    MOL_PER_L_TO_PER_A3,
    KBResult,
    acc_verdict,
    activity_derivative,
    kb_integral,
    kb_tail_normalised,
    salt_component_integrals,
)
from tests.published import licl_file

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
    """Finite-N g, normalised as in structure.py, from an infinite-system g.

    The reference density is that of the (N_b − δ) partners averaged over the box, (N_b − δ)/V, while the
    density far from the tagged particle is that of the partners left outside radius r:

    g(r) = g_inf(r) (N_b − δ − N_in(r)) / ((N_b − δ)(1 − V_r / V)),  N_in(r) = ((N_b − δ)/V) ∫ 4π r'^2 g dr',

    marched forward with the same trapezoid rule as the running integral (implicit in g(r_i)).
    """
    n_p = n_b - delta
    rho = n_p / volume
    g = np.empty_like(g_inf)
    n_in = 0.0
    for i, ri in enumerate(r):
        scale = n_p * (1.0 - 4.0 * np.pi * ri**3 / (3.0 * volume))
        if i == 0:
            g[0] = g_inf[0] * n_p / scale
            continue
        dr = ri - r[i - 1]
        c = rho * 4.0 * np.pi * 0.5 * dr
        known = n_in + c * g[i - 1] * r[i - 1] ** 2
        # g_i = g_inf_i (N_b - delta - known - c r_i^2 g_i) / scale  -> solve for g_i
        g[i] = g_inf[i] * (n_p - known) / (scale + g_inf[i] * c * ri**2)
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


def _ideal_blocks(rng: np.random.Generator, r: np.ndarray, n_blocks: int) -> np.ndarray:
    return 1.0 + 0.02 * rng.standard_normal((n_blocks, r.size))


@pytest.mark.parametrize("same_species", [True, False])
def test_exact_ideal_gas_gives_exactly_zero(same_species: bool) -> None:
    # structure.py convention: an ideal gas has g ≡ 1 for like and unlike pairs; every estimator returns 0
    r = np.arange(0.01, 12.5, 0.02)
    volume, n_b = 25.0**3, 12
    g = np.ones_like(r)
    np.testing.assert_array_equal(ganguly_correction(r, g, n_b, volume, same_species), g)
    res = kb_integral(r, g, n_b, volume, same_species, g_blocks=np.ones((5, r.size)))
    for method in ("raw", "ganguly", "kruger", "both"):
        assert abs(res.values[method]) < 1e-9, method
        assert abs(res.uncertainties[method]) < 1e-9, method
    assert res.kb_range == pytest.approx(r[-1])
    assert res.fit_window == pytest.approx((r[-1] / 2, r[-1]))


def test_ganguly_equals_original_formula_in_the_n_b_convention() -> None:
    # Ganguly & van der Vegt wrote g_corr for g normalised by N_b/V (g_Nb = g (N_b - 1)/N_b for a like pair):
    # g_corr = g_Nb N_b (1 - V_r/V) / [N_b (1 - V_r/V) - (N_b/V) G_Nb(r) - 1]; ours must give the same g_corr.
    r = np.arange(0.0, 12.0 + 1e-9, 0.01)
    n_b, volume = 20, 25.0**3
    g = core_oscillating_g(r) * 1.03
    g_nb = g * (n_b - 1) / n_b
    x = 4.0 * np.pi * r**3 / (3.0 * volume)
    orig = g_nb * n_b * (1 - x) / (n_b * (1 - x) - (n_b / volume) * kb_integral_running(r, g_nb) - 1.0)
    # algebraically identical; they differ by the trapezoid error of ∫ 4π r^2 dr against the exact V_r (~1e-8)
    np.testing.assert_allclose(ganguly_correction(r, g, n_b, volume, True), orig, rtol=1e-7)


def test_ideal_gas_gives_zero_and_acc_one() -> None:
    rng = np.random.default_rng(7)
    r = np.arange(0.05, 14.0, 0.1)
    volume, n_ion, n_w = 28.0**3, 20, 700
    kw = {"plateau": (7.0, 14.0)}
    # structure.py convention: g = 1 (plus noise) for like and unlike pairs of an ideal gas
    gpp = kb_integral(r, _ideal_blocks(rng, r, 10), n_ion, volume, True, **kw)
    gmm = kb_integral(r, _ideal_blocks(rng, r, 10), n_ion, volume, True, **kw)
    gpm = kb_integral(r, _ideal_blocks(rng, r, 10), n_ion, volume, False, **kw)
    gpw = kb_integral(r, _ideal_blocks(rng, r, 10), n_w, volume, False, **kw)
    gmw = kb_integral(r, _ideal_blocks(rng, r, 10), n_w, volume, False, **kw)
    for res in (gpp, gmm, gpm, gpw, gmw):
        assert isinstance(res, KBResult)
        for method in ("raw", "ganguly", "kruger", "both"):
            assert abs(res.values[method]) < 4.0 * res.uncertainties[method]
    # the g_Nb convention (like pairs 1 - 1/N) read as ours is a real correlation: Ganguly then gives ≈ -V_R/N
    g_nb = kb_integral(r, _ideal_blocks(rng, r, 10) * (1 - 1 / n_ion), n_ion, volume, True, **kw)
    assert g_nb.values["ganguly"] < -10.0 * g_nb.uncertainties["ganguly"]
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


def test_acc_verdict_statuses() -> None:
    ions = {"cations": 12, "anions": 12}
    ok = acc_verdict(1.02, 0.03, 25.0, ions, 12.49)
    assert ok.status == "converged" and ok.reason == ""
    assert "20 Å" in ok.criterion and "10 ions" in ok.criterion
    assert acc_verdict(1.02, 0.03, 25.0, ions, 4.0).status == "insufficient"
    assert acc_verdict(None, None, 25.0, ions, 12.49).status == "insufficient"
    small = acc_verdict(1.02, 0.03, 12.4, {"cations": 1, "anions": 1}, 6.19)
    assert small.status == "unconverged"
    assert "12.4 Å < 20 Å" in small.reason and "1 cations < 10" in small.reason
    noisy = acc_verdict(1.02, 0.3, 25.0, ions, 12.49)
    assert noisy.status == "unconverged" and "0.3 > 0.1" in noisy.reason
    assert acc_verdict(1.02, None, 25.0, ions, 12.49).status == "unconverged"
    short = acc_verdict(1.02, 0.03, 25.0, ions, 10.0)  # RDF stops well short of L/2
    assert short.status == "unconverged" and "L/2" in short.reason
    loose = ConvergenceTargets().with_overrides({"acc_min_box_A": 10.0, "acc_min_like_ions": 1, "acc_max_err": 1.0})
    assert acc_verdict(1.02, 0.3, 12.4, {"cations": 1, "anions": 1}, 6.19, loose).status == "converged"


def test_tail_normalised_integral() -> None:
    # a constant offset of the tail is normalised away: g = 1.05 * step gives the step's -4π σ^3/3
    r = np.arange(0.001, 12.0, 0.002)
    exact = -4.0 * np.pi * SIGMA**3 / 3.0
    assert kb_tail_normalised(r, 1.05 * step_g(r)) == pytest.approx(exact, rel=1e-4)
    assert kb_tail_normalised(r, np.full_like(r, 0.9)) == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------ published LiCl g(r) (Zhang et al. 2023)

#: (file tag, box edge Å, LiCl formula units); 512 waters; columns r, Li–Li, Li–Cl, Cl–Cl, Li–O, Cl–O, ...
LICL_BOXES = (("1p2M", 25.05, 12), ("2p4M", 25.26, 24))


def _licl(tag: str, length: float) -> tuple[np.ndarray, np.ndarray]:
    path = licl_file(f"rdf_data_LiCl-out.lammpstrj-l3-bigbox-{tag}-run1.dat")
    data = np.loadtxt(path)
    keep = data[:, 0] <= length / 2
    return data[keep, 0], data[keep, 1:6].T


@pytest.mark.parametrize(("tag", "length", "n_salt"), LICL_BOXES)
def test_published_licl_like_pairs_follow_our_convention(tag: str, length: float, n_salt: int) -> None:
    """The authors' like-pair g(r) is normalised like structure.py: Ganguly-corrected tails come to 1.

    Read in our convention the corrected Li–Li and Cl–Cl tails (mean over [L/2 − 2 Å, L/2]) are 1.007, 1.050
    (1.2 M) and 1.014, 1.014 (2.4 M); read as N_b/V-normalised (what the old code assumed) they would be
    1.17, 1.22 and 1.09, 1.09. Tolerance 0.06.
    """
    r, g = _licl(tag, length)
    volume = length**3
    tail = r >= length / 2 - 2.0
    for col in (0, 2):
        ours = ganguly_correction(r, g[col], n_salt, volume, True)[tail].mean()
        assert abs(ours - 1.0) < 0.06, (col, ours)
        as_nb = ganguly_correction(r, g[col] * n_salt / (n_salt - 1), n_salt, volume, True)[tail].mean()
        assert as_nb - 1.0 > 0.08, (col, as_nb)


@pytest.mark.parametrize(("tag", "length", "n_salt"), LICL_BOXES)
def test_published_licl_acc_matches_the_authors_recipe(tag: str, length: float, n_salt: int) -> None:
    """a_cc from the corrected chain (Ganguly + Krüger, the builders' default) beside the authors' recipe.

    Authors: each g divided by its mean over the last 1 Å before L/2, 4π r^2 (g − 1) integrated to L/2,
    a_cc = 1/(1 + 2 ρ_pairs (G_cc − G_co)). Measured: chain 1.042 / 1.652, authors 0.947 / 2.047 (1.2 / 2.4 M),
    i.e. 1/a_cc = 1 + 2 ρ (G_cc − G_co) differs by 0.096 / 0.117 — the size of the spread between the four
    estimators of the chain (0.09 / 0.09), from noise in the ion–ion tails. Tolerance: 0.15 in 1/a_cc
    (linear in the integrals: 0.15 is 98 / 50 Å^3 in G_cc − G_co).
    """
    r, g = _licl(tag, length)
    volume = length**3
    c = n_salt / (volume * MOL_PER_L_TO_PER_A3)
    counts = (n_salt, n_salt, n_salt, 512, 512)
    like = (True, False, True, False, False)
    chain = [kb_integral(r, g[k], counts[k], volume, like[k]).value for k in range(5)]
    authors = [float(kb_tail_normalised(r, g[k], 1.0)) for k in range(5)]
    # file order Li–Li, Li–Cl, Cl–Cl, Li–O, Cl–O -> (G_++, G_--, G_+-, G_+w, G_-w)
    a_chain, _ = activity_derivative(c, chain[0], chain[2], chain[1], chain[3], chain[4])
    rho = c * MOL_PER_L_TO_PER_A3
    g_cc = (authors[0] + authors[2] + 2 * authors[1]) / 4
    g_co = (authors[3] + authors[4]) / 2
    a_authors = 1.0 / (1.0 + 2.0 * rho * (g_cc - g_co))
    assert abs(1.0 / a_chain - 1.0 / a_authors) < 0.15, (a_chain, a_authors)
    assert 0.8 < a_chain < 2.5
