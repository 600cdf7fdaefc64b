"""Long-range Coulomb term (electrodb.models.longrange) against pymatgen's EwaldSummation and analytic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torchpme  # noqa: F401  (a dependency: missing means broken set-up, not a skip)
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones
from scipy.special import erfc

from electrodb.models.longrange import LongRangeCalculator, atomic_charges, long_range_energy_forces, resolve_parameters
from electrodb.systems.long_range import COULOMB_EV_A, LongRangeSettings


def _pymatgen(atoms: Atoms, q: np.ndarray) -> tuple[float, np.ndarray]:
    from pymatgen.core.ewald import EwaldSummation
    from pymatgen.io.ase import AseAtomsAdaptor

    structure = AseAtomsAdaptor.get_structure(atoms)
    structure.add_site_property("charge", [float(x) for x in q])
    ewald = EwaldSummation(structure, acc_factor=14, compute_forces=True)
    return ewald.total_energy, np.asarray(ewald.forces)


def _nacl() -> tuple[Atoms, np.ndarray]:
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    return atoms, np.where(np.array(atoms.get_chemical_symbols()) == "Na", 1.0, -1.0)


def _cscl() -> tuple[Atoms, np.ndarray]:
    atoms = Atoms("CsCl", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[4.12] * 3, pbc=True)
    return atoms, np.array([1.0, -1.0])


def _random_triclinic(n: int = 16, seed: int = 7) -> tuple[Atoms, np.ndarray]:
    rng = np.random.default_rng(seed)
    cell = np.array([[9.0, 0.0, 0.0], [2.5, 8.5, 0.0], [-1.5, 2.0, 10.0]])
    while True:  # random points at least 1.8 Å apart (minimum image) so pairs stay physical
        frac = rng.uniform(size=(n, 3))
        atoms = Atoms(f"Na{n // 2}Cl{n // 2}", scaled_positions=frac, cell=cell, pbc=True)
        d = atoms.get_all_distances(mic=True)
        if d[np.triu_indices(n, 1)].min() > 1.8:
            return atoms, np.repeat([1.0, -1.0], n // 2)


CASES = {"NaCl rock salt": _nacl, "CsCl": _cscl, "random ±1 triclinic": _random_triclinic}


# measured |ΔE| (meV) at accuracy 1e-5 / 1e-7, Ewald and PME: NaCl 0.17 / 0.003, CsCl 0.19 / 0.002,
# random triclinic 0.03 (Ewald), 0.41 (PME) / 0.0003, 0.028: relative 1e-6–3e-5 at the default tolerance
TOLERANCES = {1e-5: (0.5, 3e-5, 5e-4), 1e-7: (0.05, 1e-6, 5e-5)}  # |ΔE| meV, |ΔE|/|E|, max |ΔF| eV/Å


@pytest.mark.parametrize("accuracy", list(TOLERANCES))
@pytest.mark.parametrize("method", ["ewald", "pme"])
@pytest.mark.parametrize("case", list(CASES))
def test_energy_and_forces_match_pymatgen(case, method, accuracy):
    atoms, q = CASES[case]()
    settings = LongRangeSettings(charges={"Na": 1, "Cl": -1, "Cs": 1}, method=method, accuracy=accuracy)
    energy, forces, _ = long_range_energy_forces(atoms, q, settings, compute_stress=False)
    ref_e, ref_f = _pymatgen(atoms, q)
    max_mev, max_rel, max_force = TOLERANCES[accuracy]
    assert abs(energy - ref_e) * 1e3 < max_mev, (case, method, (energy - ref_e) * 1e3, "meV")
    assert abs(energy - ref_e) / abs(ref_e) < max_rel
    assert np.abs(forces - ref_f).max() < max_force


def test_madelung_constants():
    """E = -M k_e / r0 per ion pair: M = 1.747565 (rock salt, r0 = a/2), 1.762675 (CsCl, r0 = a sqrt(3)/2)."""
    settings = LongRangeSettings(charges={"Na": 1, "Cl": -1, "Cs": 1}, method="ewald", accuracy=1e-8)
    atoms, q = _nacl()
    energy, _, _ = long_range_energy_forces(atoms, q, settings)
    assert energy / 4 == pytest.approx(-1.747565 * COULOMB_EV_A / 2.82, rel=1e-6)
    atoms, q = _cscl()
    energy, _, _ = long_range_energy_forces(atoms, q, settings)
    assert energy == pytest.approx(-1.762675 * COULOMB_EV_A / (4.12 * math.sqrt(3) / 2), rel=1e-6)


def test_charged_cell_uses_neutralising_background():
    """One +1 and two -1 charges: the uniform-background convention of pymatgen (Wigner-like) is reproduced."""
    atoms = Atoms("NaClCl", positions=[[1, 1, 1], [4, 5, 2], [6, 2, 7]], cell=[9.0, 9.5, 10.0], pbc=True)
    q = np.array([1.0, -1.0, -1.0])
    settings = LongRangeSettings(charges={"Na": 1, "Cl": -1}, method="ewald", accuracy=1e-8)
    energy, _, _ = long_range_energy_forces(atoms, q, settings)
    assert energy == pytest.approx(_pymatgen(atoms, q)[0], abs=1e-6)  # measured 4e-8 eV


def test_epsilon_scaling():
    atoms, q = _random_triclinic()
    e1, f1, s1 = long_range_energy_forces(atoms, q, LongRangeSettings(charges={"Na": 1, "Cl": -1}))
    e2, f2, s2 = long_range_energy_forces(atoms, q, LongRangeSettings(charges={"Na": 1, "Cl": -1}, epsilon_r=78.3))
    assert e2 == pytest.approx(e1 / 78.3, rel=1e-12)
    np.testing.assert_allclose(f2, f1 / 78.3, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(s2, s1 / 78.3, rtol=1e-10, atol=1e-14)


def _combined(method: str = "ewald", damping: float | None = None) -> tuple[Atoms, LongRangeCalculator]:
    atoms, q = _random_triclinic(n=8, seed=3)
    settings = LongRangeSettings(charges={"Na": 1, "Cl": -1}, method=method, damping_A=damping)
    atoms.calc = LongRangeCalculator(LennardJones(sigma=2.0, epsilon=0.01, rc=6.0, smooth=True), settings, q)
    return atoms, atoms.calc


@pytest.mark.parametrize(("method", "damping"), [("ewald", None), ("pme", None), ("ewald", 1.5)])
def test_forces_and_stress_finite_differences(method, damping):
    """Central differences (d = 1e-4 Å, strain 1e-5): max |ΔF| < 1e-5 eV/Å, max |Δσ| < 1e-6 eV/Å³."""
    atoms, calc = _combined(method, damping)
    forces, stress = atoms.get_forces(), atoms.get_stress()
    lr_forces = calc.results["long_range_forces"]
    fd_forces = calc.calculate_numerical_forces(atoms, d=1e-4)
    fd_stress = calc.calculate_numerical_stress(atoms, d=1e-5)
    assert np.abs(forces - fd_forces).max() < 1e-5
    assert np.abs(stress - fd_stress).max() < 1e-6
    assert np.abs(lr_forces).max() > 0.1  # the term is not trivially small here


def test_combined_calculator_sums_parts(random_mace):
    from electrodb.models.loader import load_model

    atoms, q = _random_triclinic(n=8, seed=3)
    base = load_model(random_mace).calculator()
    settings = LongRangeSettings(charges={"Na": 1, "Cl": -1}, epsilon_r=78.3)
    atoms.calc = LongRangeCalculator(base, settings, q)
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    lr_e, lr_f, _ = long_range_energy_forces(atoms, q, settings)
    assert atoms.calc.results["long_range_energy"] == pytest.approx(lr_e, abs=1e-9)
    np.testing.assert_allclose(atoms.calc.results["long_range_forces"], lr_f, atol=1e-9)
    bare = atoms.copy()
    bare.calc = base
    assert energy == pytest.approx(bare.get_potential_energy() + lr_e, abs=1e-6)
    np.testing.assert_allclose(forces, bare.get_forces() + lr_f, atol=1e-5)


def test_damping_reduces_to_undamped_at_long_range():
    """Two opposite charges at r: E_damped - E_undamped = +k_e erfc(r/a)/r (analytic), -> 0 for r >> a."""
    a = 1.5
    diffs = []
    for r in (2.0, 3.0, 9.0):
        atoms = Atoms("NaCl", positions=[[5, 5, 5], [5 + r, 5, 5]], cell=[22.0] * 3, pbc=True)
        q = np.array([1.0, -1.0])
        plain = LongRangeSettings(charges={"Na": 1, "Cl": -1}, method="ewald", accuracy=1e-8)
        damped = plain.model_copy(update={"damping_A": a})
        e0, f0, _ = long_range_energy_forces(atoms, q, plain)
        e1, f1, _ = long_range_energy_forces(atoms, q, damped)
        assert e1 - e0 == pytest.approx(COULOMB_EV_A * erfc(r / a) / r, abs=1e-8)
        diffs.append(abs(e1 - e0) + np.abs(f1 - f0).max())
    assert diffs[-1] < 1e-9  # r = 6 a: erfc(6) = 2e-17


def test_damping_longer_than_cutoff_over_4_is_refused():
    with pytest.raises(ValueError, match="cutoff_A / 4"):
        LongRangeSettings(damping_A=3.0, cutoff_A=10.0)


def _labelled_box() -> Atoms:
    """NaNO3 in two waters: Na (cation), NO3 (anion, centre N), H2O x2; ElectroDB's labels."""
    symbols = ["Na", "N", "O", "O", "O", "O", "H", "H", "O", "H", "H"]
    water = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.24, 0.9266, 0.0]])
    nitrate = np.array([[0.0, 0.0, 0.0], [1.25, 0.0, 0.0], [-0.625, 1.0825, 0.0], [-0.625, -1.0825, 0.0]])
    positions = np.vstack(
        [[[1.0, 1.0, 1.0]], nitrate + 5.0, water + np.array([2.0, 6.0, 3.0]), water + np.array([8.6, 2.0, 6.0])]
    )
    atoms = Atoms(symbols, positions=positions, cell=[9.0] * 3, pbc=True)  # the second water crosses x = 9
    atoms.arrays["role"] = np.array([2, 3, 3, 3, 3, 0, 1, 1, 0, 1, 1], dtype=np.int8)
    atoms.arrays["ion_center"] = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    atoms.arrays["mol_id"] = np.array([0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3], dtype=np.int32)
    return atoms


def test_atomic_charges_modes():
    atoms = _labelled_box()
    ions = atomic_charges(atoms, LongRangeSettings(charges="ions"), "NaNO3")
    np.testing.assert_array_equal(ions, [1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0])  # NO3- charge on its N
    full = atomic_charges(atoms, LongRangeSettings(charges="all"), "NaNO3")
    np.testing.assert_allclose(full[5:], [-0.8476, 0.4238, 0.4238] * 2)
    custom = atomic_charges(atoms, LongRangeSettings(charges={"cation": 0.8, "anion": -0.2, "O": -0.8, "H": 0.4}))
    np.testing.assert_allclose(custom[:5], [0.8, -0.2, -0.2, -0.2, -0.2])  # role keys win over elements
    with pytest.raises(ValueError, match="no charge given"):
        atomic_charges(atoms, LongRangeSettings(charges={"Na": 1.0}))
    with pytest.raises(ValueError, match="needs the salt"):
        atomic_charges(atoms, LongRangeSettings(charges="ions"))


def test_intramolecular_pairs_are_excluded():
    """E(excluded) = E(all pairs) - k_e Σ_intra q_i q_j / r_ij (nearest image), for SPC/E waters."""
    atoms = _labelled_box()
    settings = LongRangeSettings(charges="all", method="ewald", accuracy=1e-8)
    q = atomic_charges(atoms, settings, "NaNO3")
    e_excl, _, _ = long_range_energy_forces(atoms, q, settings)
    e_all, _, _ = long_range_energy_forces(atoms, q, settings.model_copy(update={"exclude_intramolecular": False}))
    d = atoms.get_all_distances(mic=True)
    mol = atoms.arrays["mol_id"]
    intra = sum(q[i] * q[j] / d[i, j] for i in range(len(atoms)) for j in range(i + 1, len(atoms)) if mol[i] == mol[j])
    assert e_excl == pytest.approx(e_all - COULOMB_EV_A * intra, abs=1e-7)


def test_parameters_follow_tolerance():
    p = resolve_parameters(Atoms(), np.zeros(0), LongRangeSettings(method="ewald", accuracy=1e-5, cutoff_A=10))
    assert erfc(10 / (math.sqrt(2) * p.smearing_A)) == pytest.approx(1e-5, rel=1e-6)
    k_max = math.pi / p.lr_wavelength_A
    assert math.exp(-0.5 * (p.smearing_A * k_max) ** 2) == pytest.approx(1e-5, rel=1e-6)


class _Harmonic(Calculator):
    """Weak harmonic tether of every atom to its start (keeps the NVE test box bounded); no stress."""

    implemented_properties = ["energy", "forces"]  # noqa: RUF012

    def __init__(self, origin: np.ndarray, k: float = 0.5) -> None:
        super().__init__()
        self.origin, self.k = origin.copy(), k

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        disp = self.atoms.positions - self.origin
        self.results = {"energy": 0.5 * self.k * float((disp**2).sum()), "forces": -self.k * disp}


@pytest.mark.parametrize("n_steps", [200, pytest.param(2000, marks=pytest.mark.slow)])
def test_nve_energy_conservation(n_steps):
    """Velocity Verlet, 1 fs, 8 ions + LJ + tether, PME at the default tolerance: small drift (meV/atom/ps)."""
    from ase import units
    from ase.calculators.mixing import SumCalculator
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    atoms, q = _random_triclinic(n=8, seed=3)
    base = SumCalculator([LennardJones(sigma=2.0, epsilon=0.01, rc=6.0, smooth=True), _Harmonic(atoms.positions)])
    atoms.calc = LongRangeCalculator(base, LongRangeSettings(charges={"Na": 1, "Cl": -1}, method="pme"), q)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    energies = []
    dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=1)
    dyn.run(n_steps)
    e = np.array(energies)
    t_ps = np.arange(len(e)) * 1e-3
    drift = np.polyfit(t_ps, e, 1)[0] / len(atoms) * 1e3  # meV/atom/ps
    fluct = e.std() / len(atoms) * 1e3
    print(f"NVE drift {drift:+.4f} meV/atom/ps, fluctuation {fluct:.4f} meV/atom")
    assert abs(drift) < (1.0 if n_steps < 1000 else 0.1)  # measured -0.29 (200 steps), -0.026 (2000 steps)


def test_single_ion_wigner_self_energy():
    """One charge in a cubic box with background: E = -ξ q² k_e / (2 ε_r L), ξ = 2.837297 (docs/long-range.md)."""
    for eps in (1.0, 78.3):
        atoms = Atoms("Na", positions=[[1.0, 2.0, 3.0]], cell=[12.0] * 3, pbc=True)
        settings = LongRangeSettings(charges={"Na": 1}, method="ewald", accuracy=1e-8, epsilon_r=eps)
        energy, forces, _ = long_range_energy_forces(atoms, np.array([1.0]), settings)
        assert energy == pytest.approx(-2.837297 * COULOMB_EV_A / (2 * eps * 12.0), rel=1e-6)
        assert np.abs(forces).max() < 1e-10
