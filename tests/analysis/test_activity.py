"""Activity and osmotic coefficients: Debye–Hückel limits, Gibbs–Duhem consistency, scale conversions."""

from __future__ import annotations

import numpy as np
import pytest

from electrodb.analysis.activity import (
    debye_huckel_constants,
    debye_huckel_ln_y,
    ln_gamma_from_ln_y,
    ln_y_from_ln_gamma,
    molality_from_counts,
    molality_from_molarity,
    molarity_from_counts,
    molarity_from_molality,
    osmotic_coefficient,
    pitzer_ln_gamma,
    pitzer_parameters,
    pitzer_phi,
    reference_activity,
    stoichiometry,
    water_activity,
    water_density,
    water_dielectric_constant,
)

NACL = pitzer_parameters("NaCl")


def test_water_properties_and_dh_constants_at_25c() -> None:
    assert water_dielectric_constant(298.15) == pytest.approx(78.30, abs=0.01)
    assert water_density(298.15) == pytest.approx(0.997047, abs=2e-6)
    dh = debye_huckel_constants(298.15)
    assert dh.A_molal / np.log(10) == pytest.approx(0.509, abs=0.002)  # textbook 0.509 kg^1/2 mol^-1/2
    assert dh.B_molar == pytest.approx(0.329, abs=0.001)  # Å^-1 (L/mol)^1/2
    assert dh.A_phi == pytest.approx(0.392, abs=0.001)  # Pitzer's A_phi
    assert stoichiometry(2, -1) == (1, 2)
    assert stoichiometry(2, -2) == (1, 1)


def test_reference_data_loader() -> None:
    ref = reference_activity("NaCl")
    assert list(ref.phi.molality) == [0.1, 0.5, 1.0, 2.0, 3.0]
    assert all(s == "evaluated-experimental" for s in ref.phi.status)
    assert ref.phi.value[2] == pytest.approx(0.936)
    assert ref.gamma.value[2] == pytest.approx(0.657)
    # UNCERTAIN rows are left out unless asked for
    assert 4.0 not in reference_activity("NaI").gamma.molality
    assert 4.0 in reference_activity("NaI", include_uncertain=True).gamma.molality


def test_pitzer_reproduces_tables() -> None:
    ref = reference_activity("NaCl")
    assert np.max(np.abs(np.exp(pitzer_ln_gamma(ref.gamma.molality, NACL)) - ref.gamma.value)) < 0.003
    assert np.max(np.abs(pitzer_phi(ref.phi.molality, NACL) - ref.phi.value)) < 0.0015


def test_debye_huckel_limiting_law_at_1e_3_molal() -> None:
    m = 1e-3
    a_gamma = 3.0 * debye_huckel_constants().A_phi  # ln gamma = -A_gamma sqrt(m) for 1:1
    ln_ll = -a_gamma * np.sqrt(m)
    # Pitzer (experiment) and the Gibbs–Duhem phi approach the limiting laws; deviations are O(m)
    assert abs(np.exp(pitzer_ln_gamma(m, NACL)) / np.exp(ln_ll) - 1.0) < 2e-3
    phi = osmotic_coefficient(np.array([m]), pitzer_ln_gamma(np.array([m]), NACL)).phi[0]
    assert abs(phi - (1.0 + ln_ll / 3.0)) < 1e-3
    # molar extended DH with a = 0 is the limiting law; a = 4 Å is within 5 % of it in ln y
    c = m * water_density()
    assert debye_huckel_ln_y(c, ion_size=0.0) == pytest.approx(-debye_huckel_constants().A_molar * np.sqrt(c))
    assert abs(debye_huckel_ln_y(c) / debye_huckel_ln_y(c, ion_size=0.0) - 1.0) < 0.05


def _pitzer_dlngamma_dlnm(m: np.ndarray) -> np.ndarray:
    h = 1e-5
    return (pitzer_ln_gamma(m * (1 + h), NACL) - pitzer_ln_gamma(m * (1 - h), NACL)) / (2 * h)


def test_gibbs_duhem_reproduces_experimental_phi() -> None:
    ref = reference_activity("NaCl")
    m = np.round(np.arange(0.05, 3.0001, 0.05), 2)
    sel = np.isin(m, ref.phi.molality)
    # from ln gamma (Pitzer fit to experiment) and from its derivative d ln gamma / d ln m
    for kwargs in ({"ln_gamma": pitzer_ln_gamma(m, NACL)}, {"dlngamma_dlnm": _pitzer_dlngamma_dlnm(m)}):
        res = osmotic_coefficient(m, **kwargs)
        assert np.max(np.abs(res.phi[sel] - ref.phi.value)) < 0.0015  # measured 0.0009 and 0.0012
        assert np.max(np.abs(res.phi - pitzer_phi(m, NACL))) < 1e-3  # Pitzer's own phi (exact GD pair)
    # straight from the 8 tabulated gamma values (0.1 ... 6 mol/kg)
    res = osmotic_coefficient(ref.gamma.molality, np.log(ref.gamma.value))
    on = np.isin(ref.gamma.molality, ref.phi.molality)
    assert np.max(np.abs(res.phi[on] - ref.phi.value)) < 0.0015  # measured 0.0010


def test_molar_molal_round_trip() -> None:
    m = np.array([0.1, 1.0, 3.0, 6.0])
    rho = np.array([1.0018, 1.0362, 1.1074, 1.1978])  # NaCl solution densities, kg/L
    c = molarity_from_molality(m, rho, 0.05844)
    assert np.allclose(molality_from_molarity(c, rho, 0.05844), m, rtol=1e-12)
    ln_y = np.array([-0.25, -0.4, -0.3, 0.0])
    assert np.allclose(ln_y_from_ln_gamma(ln_gamma_from_ln_y(ln_y, c, m), c, m), ln_y, atol=1e-14)
    # molal below molar at 1 m: c/(m rho_w) < 1 for NaCl
    assert ln_gamma_from_ln_y(0.0, c[1], m[1]) < 0
    assert molality_from_counts(18, 1000) == pytest.approx(18 / (1000 * 0.018015))
    assert molarity_from_counts(1, 1e27 / 6.02214076e23) == pytest.approx(1.0)


def test_water_activity_nacl_1m() -> None:
    a_w = np.exp(water_activity(1.0, 0.936, nu=2))
    assert a_w == pytest.approx(0.9668, abs=1e-4)
    res = osmotic_coefficient(np.arange(0.1, 1.01, 0.1), pitzer_ln_gamma(np.arange(0.1, 1.01, 0.1), NACL))
    assert res.a_w[-1] == pytest.approx(0.9669, abs=2e-4)  # Robinson & Stokes: 0.9669
