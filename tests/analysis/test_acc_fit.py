"""a_cc series → ln y±, γ±, φ, a_w by a Debye–Hückel-shaped fit (electrodb.analysis.acc_fit)."""

from __future__ import annotations

import numpy as np
import pytest

from electrodb.analysis.acc_fit import activity_from_fit, activity_series_from_acc, fit_acc
from electrodb.analysis.activity import (
    M_WATER,
    debye_huckel_acc,
    debye_huckel_constants,
    debye_huckel_ln_y,
    debye_huckel_sigma,
    ln_y_from_ln_gamma,
    molarity_from_molality,
    osmotic_coefficient,
    pitzer_ln_gamma,
    pitzer_parameters,
    pitzer_phi,
    reference_activity,
    water_density,
)
from electrodb.builders.thermo import ThermoBuilder
from electrodb.systems.chemistry import parse_salt

NACL = pitzer_parameters("NaCl")
M_LICL = 0.04239  # kg/mol
B1, B2 = 0.207, 0.042  # LiCl-like a_cc = a_cc,DH(c; 4 Å) + B1 c + B2 c^2 (within 0.011 of experiment)


def _licl_density(m: np.ndarray) -> np.ndarray:
    return water_density() + 0.024 * np.asarray(m)  # kg/L, close to LiCl(aq) at 25 °C


def _licl_acc(c: np.ndarray) -> np.ndarray:
    return debye_huckel_acc(c, ion_size=4.0) + B1 * c + B2 * c**2


def _licl_ln_y(c: np.ndarray) -> np.ndarray:
    return debye_huckel_ln_y(c, ion_size=4.0) + B1 * c + B2 * c**2 / 2


def _old_builder_path(c: np.ndarray, a_cc: np.ndarray, c_anchor: float = 0.01) -> np.ndarray:
    """The former ``ln_y_from_acc`` default: DH anchor at 0.01 mol/L, trapezoid in ln c to the data."""
    x = np.log(np.concatenate([[c_anchor], c]))
    f = np.concatenate([[debye_huckel_acc(c_anchor) - 1.0], a_cc - 1.0])
    steps = 0.5 * (f[1:] + f[:-1]) * np.diff(x)
    return debye_huckel_ln_y(c_anchor) + np.cumsum(steps)


def _nacl_exact(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c, ln y, a_cc) of NaCl from the Pitzer fit to experiment, with a made-up smooth density."""
    c = molarity_from_molality(m, water_density() + 0.04 * m, 0.05844)
    grid = np.union1d(np.geomspace(1e-3, 3.0, 400), m)
    cg = molarity_from_molality(grid, water_density() + 0.04 * grid, 0.05844)
    ln_y = ln_y_from_ln_gamma(pitzer_ln_gamma(grid, NACL), cg, grid)
    a_cc = 1.0 + np.gradient(ln_y, np.log(cg), edge_order=2)
    idx = np.searchsorted(grid, m)
    return c, ln_y[idx], a_cc[idx]


def test_dh_acc_is_the_derivative_of_dh_ln_y() -> None:
    c = np.geomspace(1e-3, 3.0, 30)
    h = 1e-6
    for zp, zm in ((1, -1), (2, -1)):
        num = (debye_huckel_ln_y(c * (1 + h), zp, zm) - debye_huckel_ln_y(c * (1 - h), zp, zm)) / (2 * h)
        assert np.allclose(1.0 + num, debye_huckel_acc(c, zp, zm), atol=1e-8)


def test_three_concentrations_reproduce_ln_y_where_the_old_path_did_not() -> None:
    m = np.array([1.0, 2.0, 3.0])
    c = molarity_from_molality(m, _licl_density(m), M_LICL)
    a_cc = _licl_acc(c)
    fit = fit_acc(c, a_cc, np.full(3, 0.05))
    assert fit.verdict.status == "converged" and fit.order == 2 and fit.dof == 1
    grid = np.linspace(1e-3, fit.c_max, 400)
    new_err = np.max(np.abs(fit.ln_y(grid)[0] - _licl_ln_y(grid)))
    assert new_err < 0.03  # measured ~1e-15: the form contains the truth
    old_err = np.max(np.abs(_old_builder_path(c, a_cc) - _licl_ln_y(c)))
    assert old_err > 0.3  # the former builder path: 0.40 too high (gamma 1.5x too large)
    # a truth outside the fitted form: NaCl from experiment (Pitzer), only 1, 2, 3 mol/kg known
    grid_m = np.linspace(0.01, 3.0, 120)
    c_g, ln_y_g, _ = _nacl_exact(grid_m)
    c3, ln_y3, a3 = _nacl_exact(m)
    fit = fit_acc(c3, a3, np.full(3, 0.02))
    assert np.max(np.abs(fit.ln_y(c_g)[0] - ln_y_g)) < 0.03  # measured 0.009
    assert np.max(np.abs(_old_builder_path(c3, a3) - ln_y3)) > 0.15  # old path: 0.19 too high


def test_gibbs_duhem_of_the_fit_is_exact_for_extended_dh_plus_polynomial() -> None:
    """With c = ρ_w m, ln γ = −A_m√m/(1 + B_m a √m) + Σ b_k (ρ_w m)^k/k has a closed-form φ."""
    m = np.array([0.5, 1.0, 2.0, 4.0])
    rho_w = water_density()
    c = rho_w * m
    b = (0.1, 0.02, -0.003)
    a_cc = debye_huckel_acc(c) + sum(bk * c ** (k + 1) for k, bk in enumerate(b))
    fit, ser = activity_series_from_acc(m, c, a_cc, np.full(4, 0.01), order=3)
    assert ser is not None and np.allclose(fit.params, b, atol=1e-12)
    dh = debye_huckel_constants()
    s = np.sqrt(m)
    phi = 1 - dh.A_molal * s / 3 * debye_huckel_sigma(dh.B_molal * 4.0 * s)
    phi += sum(bk * c ** (k + 1) / (k + 2) for k, bk in enumerate(b))  # (1/m)∫ m' d(m'^k) = k m^k/(k+1)
    assert np.allclose(ser.phi, phi, atol=1e-10)
    assert np.allclose(ser.ln_a_w, -2 * m * M_WATER * phi)
    # and the same φ from the tabulated-point Gibbs–Duhem (osmotic_coefficient) on a dense grid
    mg = np.linspace(0.02, 4.0, 200)
    dense = activity_from_fit(fit, m, c, m_eval=mg)
    assert np.max(np.abs(osmotic_coefficient(mg, dense.ln_gamma).phi - dense.phi)) < 5e-4


def test_chain_from_acc_to_phi_matches_experiment() -> None:
    """Exact NaCl a_cc (from Pitzer's experimental fit) → fit → φ within 0.005 of Hamer & Wu (measured 0.0023)."""
    ref = reference_activity("NaCl")
    for m, order in ((np.array([1.0, 2.0, 3.0]), 2), (np.round(np.arange(0.1, 3.0001, 0.05), 2), 3)):
        c, ln_y, a_cc = _nacl_exact(m)
        _, ser = activity_series_from_acc(m, c, a_cc, np.full(m.size, 0.01), order=order)
        assert ser is not None and ser.verdict.status == "converged"
        assert np.max(np.abs(ser.ln_y - ln_y)) < 0.01
        on = np.isin(m, ref.phi.molality)
        assert np.max(np.abs(ser.phi[on] - ref.phi.value[np.isin(ref.phi.molality, m)])) < 0.005
        assert np.max(np.abs(ser.phi - pitzer_phi(m, NACL))) < 0.005


def test_dh_input_returns_dh_for_1_1_and_2_1() -> None:
    c = np.geomspace(0.05, 2.0, 12)
    for zp, zm in ((1, -1), (2, -1)):
        fit = fit_acc(c, debye_huckel_acc(c, zp, zm), np.full(c.size, 0.01), z_plus=zp, z_minus=zm)
        assert np.allclose(fit.params, 0.0, atol=1e-10)
        assert np.allclose(fit.ln_y(c)[0], debye_huckel_ln_y(c, zp, zm), atol=1e-10)


def test_errors_propagate_like_monte_carlo_with_correlations() -> None:
    m = np.array([1.0, 2.0, 3.0])
    c = molarity_from_molality(m, _licl_density(m), M_LICL)
    a_cc, err = _licl_acc(c), np.array([0.03, 0.05, 0.08])
    fit, ser = activity_series_from_acc(m, c, a_cc, err)
    assert ser is not None
    rng = np.random.default_rng(7)
    samples = []
    for _ in range(1000):
        _, s = activity_series_from_acc(m, c, a_cc + err * rng.standard_normal(3), err)
        assert s is not None
        samples.append(np.concatenate([s.ln_gamma, s.phi, s.ln_a_w, s.gamma]))
    samples = np.array(samples)
    analytic = np.concatenate([ser.ln_gamma_err, ser.phi_err, ser.ln_a_w_err, ser.gamma_err])
    assert np.allclose(samples.std(axis=0, ddof=1), analytic, rtol=0.1)
    corr = ser.ln_gamma_cov / np.outer(ser.ln_gamma_err, ser.ln_gamma_err)
    assert np.allclose(np.corrcoef(samples[:, :3].T), corr, atol=0.03)
    assert corr[0, 1] > 0.9  # strongly correlated: one fit
    assert np.allclose(fit.as_dict()["params_err"], np.sqrt(np.diag(fit.covariance)))


def test_stored_fit_record_and_validity_range() -> None:
    m = np.array([1.0, 2.0, 3.0])
    c = molarity_from_molality(m, _licl_density(m), M_LICL)
    a_cc = _licl_acc(c) + np.array([0.01, -0.02, 0.01])
    fit = fit_acc(c, a_cc, np.full(3, 0.02))
    rec = fit.as_dict()
    assert rec["status"] == "converged" and rec["order"] == 2 and rec["ion_size_A"] == 4.0
    assert np.allclose(rec["residuals"], a_cc - fit.a_cc_at(c)[0])
    assert rec["chi2"] == pytest.approx(np.sum((np.array(rec["residuals"]) / 0.02) ** 2))
    assert rec["validity_molarity"] == [pytest.approx(c[0]), pytest.approx(c[-1])]
    assert len(rec["covariance"]) == 2 and rec["dof"] == 1
    with pytest.raises(ValueError, match="beyond the fitted range"):
        fit.ln_y(c[-1] * 1.1)
    fit.ln_y(c[-1] * 1.1, extrapolate=True)
    with pytest.raises(ValueError, match="beyond the fitted range"):
        activity_from_fit(fit, m, c, m_eval=np.array([1.0, 4.0]))
    ser = activity_from_fit(fit, m, c, m_eval=np.array([1.0, 4.0]), extrapolate=True)
    assert ser.extrapolated.tolist() == [False, True]
    assert ser.verdict.status == "unconverged" and "extrapolated" in ser.verdict.reason


@pytest.mark.parametrize(
    ("c", "a_cc", "err", "order", "reason"),
    [
        ([1.0], [1.1], [0.05], None, "at least 2"),
        ([1.0, 2.0], [1.1, 1.3], [0.05, 0.05], 2, "distinct concentration(s) < 3"),
        ([1.0, 1.0, 1.0], [1.1, 1.1, 1.1], [0.05] * 3, None, "distinct concentration(s) < 3"),
        ([1.0, 1.1, 1.2], [1.1, 1.12, 1.14], [0.05] * 3, None, "degenerate range"),
        ([1.0, 2.0, 3.0], [1.1, np.nan, 1.5], [0.05] * 3, None, "non-finite"),
        ([1.0, 2.0, 3.0], [1.1, 1.3, 1.5], [0.05, 0.0, 0.05], None, "error > 0"),
    ],
)
def test_refusals_are_insufficient_with_a_reason(c, a_cc, err, order, reason) -> None:
    fit, ser = activity_series_from_acc(np.array(c), np.array(c), np.array(a_cc), np.array(err), order=order)
    assert ser is None and fit.params is None
    assert fit.verdict.status == "insufficient" and reason in fit.verdict.reason
    assert fit.as_dict()["status"] == "insufficient"
    with pytest.raises(ValueError, match="no fit"):
        fit.ln_y(1.0)


def test_poor_fit_and_large_errors_are_unconverged() -> None:
    c = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    zigzag = _licl_acc(c) + 0.2 * np.array([1, -1, 1, -1, 1, -1])
    fit = fit_acc(c, zigzag, np.full(6, 0.02))
    assert fit.verdict.status == "unconverged" and "poor fit" in fit.verdict.reason
    m = c / water_density()
    _, ser = activity_series_from_acc(m, c, _licl_acc(c), np.full(6, 0.5))
    assert ser is not None and ser.verdict.status == "unconverged" and "gamma relative error" in ser.verdict.reason
    _, ser = activity_series_from_acc(m, c, _licl_acc(c), np.full(6, 0.5), max_gamma_rel_err=1.0)
    assert ser is not None and ser.verdict.status == "converged"


def test_thermo_builder_series_uses_the_fit() -> None:
    """The builder's series from exact LiCl-like a_cc at 1, 2, 3 mol/kg (the old path gave ln y 0.40 too high)."""
    m = np.array([1.0, 2.0, 3.0])
    c = molarity_from_molality(m, _licl_density(m), M_LICL)
    fitted = [
        {"trajectory_id": f"t{i}", "molality": mi, "molarity": ci, "a_cc": a, "a_cc_err": 0.04}
        for i, (mi, ci, a) in enumerate(zip(m, c, _licl_acc(c), strict=True))
    ]
    fitted.append({**fitted[1], "trajectory_id": "t1b"})  # a replica: same a_cc, error / sqrt(2)
    series, verdict = ThermoBuilder._series(fitted, parse_salt("LiCl"), 298.15)
    assert verdict.status == "converged" and series is not None
    assert np.max(np.abs(np.array(series["ln_y"]) - _licl_ln_y(c))) < 0.03
    assert series["a_cc_err"][1] == pytest.approx(0.04 / np.sqrt(2))
    assert series["fit"]["params"] == pytest.approx([B1, B2], abs=1e-9)
    assert series["validity_molality"] == [1.0, 3.0] and series["fit"]["dof"] == 1
    fitted[0] = {**fitted[0], "a_cc_err": None}
    series, verdict = ThermoBuilder._series(fitted, parse_salt("LiCl"), 298.15)
    assert series is None and verdict.status == "insufficient" and "non-finite" in verdict.reason
