"""Thermodynamic integration, standard states and electrostatic corrections (time-series errors: test_statistics)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from electrodb.analysis.free_energy import (
    COULOMB_EV_A,
    EV_TO_KJ_PER_MOL,
    born_cutoff_correction,
    coulomb_pmf_tail,
    ev_to_kcal_per_mol,
    ev_to_kj_per_mol,
    gauss_legendre_lambdas,
    integrate_ti,
    kcal_per_mol_to_ev,
    kj_per_mol_to_ev,
    periodic_ion_correction,
    quadrature_weights,
    standard_state_correction,
    thermal_energy,
    wigner_self_energy,
)
from electrodb.analysis.statistics import timeseries_error

KT = 0.025693  # eV at 298.15 K
K0, K1 = 1.0, 10.0  # eV/Å^2


def exact_dudl(lam: np.ndarray) -> np.ndarray:
    """U_λ = ½ k_λ x^2, k_λ = (1−λ) k0 + λ k1: ⟨∂U/∂λ⟩ = ½ (k1 − k0) ⟨x^2⟩ = (k1 − k0) kT / (2 k_λ)."""
    return (K1 - K0) * KT / (2.0 * ((1 - lam) * K0 + lam * K1))


def test_gauss_legendre_nodes() -> None:
    lam, w = gauss_legendre_lambdas(5)
    assert np.all((lam > 0) & (lam < 1))
    assert w.sum() == pytest.approx(1.0)
    assert (w * lam**9).sum() == pytest.approx(0.1)  # exact to degree 2n - 1
    with pytest.raises(ValueError):
        quadrature_weights(np.linspace(0, 1, 5), "gauss")


def test_ti_harmonic_oscillators_exact_and_convergent() -> None:
    exact = 0.5 * KT * np.log(K1 / K0)
    errors = []
    for n in (2, 3, 4, 6, 8, 12):
        lam, _ = gauss_legendre_lambdas(n)
        errors.append(abs(integrate_ti(lam, exact_dudl(lam)).delta_f - exact))
    assert all(b < a for a, b in itertools.pairwise(errors))
    assert errors[-1] / exact < 1e-6
    for scheme, tol in (("trapezoid", 1e-2), ("simpson", 1e-3)):
        lam = np.linspace(0, 1, 21)
        assert abs(integrate_ti(lam, exact_dudl(lam), scheme=scheme).delta_f / exact - 1) < tol
    e_trap = [
        abs(integrate_ti(x, exact_dudl(x), scheme="trapezoid").delta_f - exact)
        for x in (np.linspace(0, 1, n) for n in (5, 9, 17, 33))
    ]
    assert all(b < a for a, b in itertools.pairwise(e_trap))


def test_ti_harmonic_oscillators_sampled() -> None:
    """Exact Gaussian samples of x at each node; ΔF recovered within the error bar (3σ)."""
    rng = np.random.default_rng(11)
    exact = 0.5 * KT * np.log(K1 / K0)
    lam, _ = gauss_legendre_lambdas(8)
    means, errs = [], []
    for lm in lam:
        k_l = (1 - lm) * K0 + lm * K1
        x = rng.normal(0.0, np.sqrt(KT / k_l), size=20_000)
        dudl = 0.5 * (K1 - K0) * x**2
        est = timeseries_error(dudl)
        means.append(est.mean)
        errs.append(est.sem)
    res = integrate_ti(lam, means, errs)
    assert res.error > 0
    assert abs(res.delta_f - exact) < 3.0 * res.error
    assert res.error == pytest.approx(np.sqrt(np.sum((res.weights * np.array(errs)) ** 2)))


def test_units_and_standard_state() -> None:
    assert EV_TO_KJ_PER_MOL == pytest.approx(96.485332, rel=1e-7)
    assert kj_per_mol_to_ev(ev_to_kj_per_mol(1.234)) == pytest.approx(1.234)
    assert kcal_per_mol_to_ev(ev_to_kcal_per_mol(0.5)) == pytest.approx(0.5)
    assert ev_to_kcal_per_mol(1.0) == pytest.approx(23.0605, rel=1e-5)
    assert thermal_energy(298.15, "kJ/mol") == pytest.approx(2.4790, abs=1e-4)
    assert standard_state_correction() == pytest.approx(7.926, abs=2e-3)
    assert standard_state_correction(unit="kcal/mol") == pytest.approx(1.894, abs=1e-3)
    assert standard_state_correction(unit="eV") == pytest.approx(7.926 / 96.4853, abs=2e-5)
    assert standard_state_correction(p0=1e5) > standard_state_correction()


def test_electrostatic_corrections() -> None:
    assert COULOMB_EV_A == pytest.approx(14.399645, rel=1e-6)
    # Born beyond 10 Å for a monovalent ion in water: -0.711 eV
    dg = born_cutoff_correction(1.0, 10.0, eps_r=78.4)
    assert dg == pytest.approx(-0.5 * 14.399645 / 10.0 * (1 - 1 / 78.4), rel=1e-6)
    assert born_cutoff_correction([1.0, -1.0], 10.0) == pytest.approx(2 * dg)
    assert born_cutoff_correction(0.0, 10.0) == 0.0
    assert born_cutoff_correction(2.0, 10.0, unit="kJ/mol") == pytest.approx(4 * dg * EV_TO_KJ_PER_MOL)
    w = wigner_self_energy(1.0, 20.0)
    assert w == pytest.approx(-2.837297 * 14.399645 / 40.0, rel=1e-6)
    assert periodic_ion_correction(1.0, 20.0, eps_r=78.4) == pytest.approx(-w / 78.4)
    assert coulomb_pmf_tail(5.0, 1, -1, eps_r=78.4) == pytest.approx(-14.399645 / (78.4 * 5.0), rel=1e-6)
