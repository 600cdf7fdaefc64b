"""Tests of the alchemical solvation free energy: λ-path math, LambdaCalculator, document assembly, builder, flow."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
from electrodb.analysis.free_energy import (
    EV_TO_KJ_PER_MOL,
    TIResult,
    born_cutoff_correction,
    gauss_legendre_lambdas,
    standard_state_correction,
)
from electrodb.analysis.ti_paths import (
    du_dlambda,
    leg_estimate,
    mixed_energy,
    path_coefficients,
    soft_wall,
    solvation_cycle,
    wall_energy_forces,
    window_lambdas,
)
from electrodb.builders.solvation import SolvationBuilder
from electrodb.documents.solvation import (
    assemble_solvation_document,
    experimental_salt_hydration,
    put_ti_docs,
    run_blob_uuid,
    window_blob_uuid,
)
from electrodb.flows.solvation import (
    LambdaCalculator,
    SolvationTIMaker,
    TISettings,
    WallSettings,
    nnp_energy_forces,
)
from electrodb.models.loader import load_model
from electrodb.settings import ElectroDBSettings, get_settings
from electrodb.store.stores import ElectroDBStores
from electrodb.utils.provenance import utcnow
from tests.model_factory import smoke_box

ION_INDICES = [12, 13]  # Na, Cl of smoke_box


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def calc64(model_path: Path):
    return load_model(str(model_path), dtype="float64", device="cpu").calculator()


@pytest.fixture()
def box():
    """smoke_box (4 H2O + Na + Cl, 6.4 Å) with one water O 1.2 Å from Na and one H 1.0 Å from Cl: both walls on."""
    atoms = smoke_box(0)
    na, cl = atoms.positions[12], atoms.positions[13]
    atoms.positions[0:3] += na + np.array([1.2, 0.0, 0.0]) - atoms.positions[0]
    atoms.positions[3:6] += cl + np.array([0.0, 1.0, 0.0]) - atoms.positions[4]
    return atoms


def _energy(atoms, calc) -> float:
    calc.reset()
    return float(calc.get_potential_energy(atoms))


# --------------------------------------------------------------------------- path and wall math


def test_path_coefficients_end_points_and_derivatives() -> None:
    c0, c1 = path_coefficients("coupling", 0.0), path_coefficients("coupling", 1.0)
    assert (c0.nnp, c0.wall, c1.nnp, c1.wall) == (0.0, 1.0, 1.0, 0.0)
    k0, k1 = path_coefficients("cavity", 0.0, 4.0), path_coefficients("cavity", 1.0, 4.0)
    assert (k0.nnp, k0.wall, k1.nnp, k1.wall) == (0.0, 0.0, 0.0, 1.0)
    h = 1e-6
    for leg, lam in (("cavity", 0.37), ("coupling", 0.61)):
        c = path_coefficients(leg, lam, 4.0)
        up, dn = path_coefficients(leg, lam + h, 4.0), path_coefficients(leg, lam - h, 4.0)
        assert c.d_wall == pytest.approx((up.wall - dn.wall) / (2 * h), rel=1e-8)
        assert c.d_nnp == pytest.approx((up.nnp - dn.nnp) / (2 * h), abs=1e-8)
        e_full, e_dec, w = -3.0, -1.0, 0.5
        fd = (mixed_energy(up, e_full, e_dec, w) - mixed_energy(dn, e_full, e_dec, w)) / (2 * h)
        assert du_dlambda(c, e_full, e_dec, w) == pytest.approx(fd, rel=1e-7)
    with pytest.raises(ValueError):
        path_coefficients("sideways", 0.5)


def test_soft_wall_is_bounded_repulsive_and_c1() -> None:
    sigma, k = 2.0, 2.0
    r = np.linspace(0.0, 2.5, 2501)
    w, g = soft_wall(r**2, sigma, k)
    assert w[0] == pytest.approx(k) and np.all(np.isfinite(w)) and np.all(np.isfinite(g))
    assert np.all(np.diff(w) <= 1e-15) and np.all(w[r >= sigma] == 0.0)
    # g = (dw/dr)/r against a finite difference; dw/dr → 0 continuously at σ
    dw = np.gradient(w, r)
    inner = (r > 0.05) & (r < sigma - 0.05)
    assert np.allclose(g[inner] * r[inner], dw[inner], atol=2e-3)
    assert abs(g[np.searchsorted(r, sigma) - 1] * sigma) < 1e-2


def test_wall_forces_are_minus_gradient_and_sum_to_zero() -> None:
    rng = np.random.default_rng(3)
    cell = np.eye(3) * 6.0
    pos = rng.uniform(0, 6.0, size=(9, 3))
    pos[5] = pos[0] + [0.7, 0.2, -0.3]  # overlap ion 0 / solvent 5
    pos[1] = pos[0] + [5.2, 0.0, 0.0]  # ion 1 close to ion 0 through the boundary (1:1 pair wall)
    ions, groups = np.array([0, 1, 2]), np.array([0, 1, 1])
    solvent = np.arange(3, 9)
    sigma = np.array([2.0, 1.5, 1.5, 2.0, 1.5, 1.5])
    args = (cell, [True] * 3, ions, groups, solvent, sigma, 2.5, 2.0)
    e, f = wall_energy_forces(pos, *args)
    assert e > 0 and np.allclose(f.sum(axis=0), 0.0, atol=1e-12)
    h = 1e-6
    for a in range(9):
        for x in range(3):
            p, m = pos.copy(), pos.copy()
            p[a, x] += h
            m[a, x] -= h
            fd = -(wall_energy_forces(p, *args)[0] - wall_energy_forces(m, *args)[0]) / (2 * h)
            assert f[a, x] == pytest.approx(fd, abs=1e-6)
    # atoms of the same ion (2 and 1) never feel the ion-ion wall
    same = pos.copy()
    same[2] = same[1] + 0.1
    e_same = wall_energy_forces(same, *args)[0]
    far = same.copy()
    far[2] = far[1] + 2.9
    assert np.isfinite(e_same) and e_same >= 0.0 and np.isfinite(wall_energy_forces(far, *args)[0])


def test_wall_radii_from_ionic_radii() -> None:
    wall = WallSettings()
    sig = wall.pair_sigma([1.02, 1.81, None], np.array([False, True]))  # Na+, Cl-, an atom of a molecular ion
    assert np.allclose(sig, [[2.12, 1.12], [2.91, 1.91], [2.0, 1.5]])
    fixed = WallSettings(radii="fixed").pair_sigma([1.02], np.array([False, True]))
    assert np.allclose(fixed, [[2.0, 1.5]])
    with pytest.raises(ValueError):
        WallSettings(offset_H_A=-2.0).pair_sigma([1.0], np.array([True]))


def test_window_lambdas_and_leg_estimate_pick_nodes() -> None:
    lam = window_lambdas([5, 3])
    assert lam.size == 7  # λ = 1/2 shared
    f = lambda x: 3 * x**5 - x**2 + 0.5  # noqa: E731  (degree 5: exact for order 3)
    for order in (3, 5):
        r = leg_estimate(lam, f(lam), np.full(lam.size, 0.1), order)
        assert r.delta_f == pytest.approx(3 / 6 - 1 / 3 + 0.5, abs=1e-12)
        assert r.error == pytest.approx(0.1 * math.sqrt(np.sum(gauss_legendre_lambdas(order)[1] ** 2)))
    with pytest.raises(KeyError):
        leg_estimate(lam, f(lam), np.zeros(lam.size), 4)


def test_solvation_cycle_terms() -> None:
    cav = TIResult(0.1, 0.01, np.array([0.5]), np.array([1.0]), "gauss")
    coup = TIResult(-2.0, 0.02, np.array([0.5]), np.array([1.0]), "gauss")
    t = solvation_cycle(cav, coup, [1, -1], 298.15, 5.0, 78.4)
    assert t.delta_f_alchemical == pytest.approx(-1.9 * EV_TO_KJ_PER_MOL)
    assert t.delta_f_alchemical_err == pytest.approx(math.hypot(0.01, 0.02) * EV_TO_KJ_PER_MOL)
    assert t.standard_state_per_ion == pytest.approx(7.92, abs=0.01)
    assert t.standard_state == pytest.approx(2 * standard_state_correction(298.15))
    assert t.long_range == pytest.approx(born_cutoff_correction([1, -1], 5.0, 78.4, "kJ/mol"))
    assert t.delta_g == pytest.approx(t.delta_f_alchemical + t.standard_state)
    assert t.delta_g_with_lr == pytest.approx(t.delta_g + t.long_range)
    mg = solvation_cycle(cav, coup, [2, -1, -1], 298.15, None, 78.4, gas_reference_eV=0.5)
    assert mg.long_range is None and mg.delta_g_with_lr is None
    assert mg.standard_state == pytest.approx(3 * t.standard_state_per_ion)
    assert mg.delta_g == pytest.approx(mg.delta_f_alchemical + mg.standard_state + 0.5 * EV_TO_KJ_PER_MOL)


# --------------------------------------------------------------------------- LambdaCalculator


def _decoupled_reference(atoms, calc) -> float:
    solvent = atoms[[i for i in range(len(atoms)) if i not in ION_INDICES]]
    e = nnp_energy_forces(calc, solvent)[0]
    for i in ION_INDICES:
        ion = atoms[[i]]
        ion.pbc, ion.cell = False, np.zeros((3, 3))
        e += nnp_energy_forces(calc, ion)[0]
    return e


def test_lambda_calculator_end_states(box, calc64) -> None:
    full_e, full_f = nnp_energy_forces(calc64, box)
    lc = LambdaCalculator(calc64, ION_INDICES, 1.0, wall=WallSettings())
    assert _energy(box, lc) == pytest.approx(full_e, abs=1e-12)
    assert np.allclose(lc.results["forces"], full_f, atol=1e-12)
    assert lc.results["e_wall"] > 0.1  # the wall is "on" geometrically but has zero weight at the coupled end
    ref = _decoupled_reference(box, calc64)
    for leg in ("coupling", "cavity"):
        naive = LambdaCalculator(calc64, ION_INDICES, 0.0, leg=leg, wall=None)
        assert _energy(box, naive) == pytest.approx(ref, abs=1e-12)
    walled = LambdaCalculator(calc64, ION_INDICES, 0.0, leg="coupling", wall=WallSettings())
    assert _energy(box, walled) == pytest.approx(ref + walled.results["e_wall"], abs=1e-12)
    cavity0 = LambdaCalculator(calc64, ION_INDICES, 0.0, leg="cavity", wall=WallSettings())
    assert _energy(box, cavity0) == pytest.approx(ref, abs=1e-12)  # μ^p = 0
    assert lc.results["dE_dlambda"] == pytest.approx(full_e - ref - lc.results["e_wall"], abs=1e-12)


@pytest.mark.parametrize(
    ("leg", "lam", "atoms"), [("coupling", 0.3, (0, 13)), ("coupling", 0.85, (4, 12)), ("cavity", 0.6, (0, 4, 13))]
)
def test_lambda_calculator_derivatives_match_finite_differences(box, calc64, leg, lam, atoms) -> None:
    kw = {"leg": leg, "wall": WallSettings(), "cavity_exponent": 3.0, "ion_radii": [1.02, 1.81]}  # Na+, Cl- radii
    lc = LambdaCalculator(calc64, ION_INDICES, lam, **kw)
    _energy(box, lc)
    dudl, forces = lc.results["dE_dlambda"], lc.results["forces"]
    assert lc.results["e_wall"] > 0.1
    h = 1e-4
    e_up = _energy(box, LambdaCalculator(calc64, ION_INDICES, lam + h, **kw))
    e_dn = _energy(box, LambdaCalculator(calc64, ION_INDICES, lam - h, **kw))
    assert dudl == pytest.approx((e_up - e_dn) / (2 * h), rel=1e-6, abs=1e-9)
    dx = 1e-4
    for atom in atoms:  # 0: O near Na, 4: H near Cl, 12: Na, 13: Cl
        for x in range(3):
            moved = box.copy()
            moved.positions[atom, x] += dx
            ep = _energy(moved, lc)
            moved.positions[atom, x] -= 2 * dx
            em = _energy(moved, lc)
            assert forces[atom, x] == pytest.approx(-(ep - em) / (2 * dx), rel=1e-4, abs=1e-6)


def test_wall_term_finite_at_all_lambda_and_zero_at_coupled_end(box, calc64) -> None:
    """Exact overlap (r = 0): the NNP itself gives NaN there, which is why the cavity leg never evaluates E_full;
    the wall energy, its forces and the cavity-leg ∂U/∂λ stay finite for every λ."""
    box.positions[0] = box.positions[12]  # a water O exactly on the Na
    assert not np.isfinite(nnp_energy_forces(calc64, box)[0])
    for lam in (0.0, 0.05, 0.5, 0.95, 1.0):
        calc = LambdaCalculator(calc64, ION_INDICES, lam, leg="cavity", wall=WallSettings())
        _energy(box, calc)
        assert calc.results["e_wall"] >= WallSettings().k_eV  # the r = 0 pair alone contributes k
        assert np.isfinite(calc.results["dE_dlambda"]) and np.isfinite(calc.results["forces"]).all()
    box.positions[0] = box.positions[12] + [0.4, 0.0, 0.0]  # deep inside the wall, but not on top
    full_e = nnp_energy_forces(calc64, box)[0]
    for lam in (0.0, 0.05, 0.5, 0.95, 1.0):
        calc = LambdaCalculator(calc64, ION_INDICES, lam, leg="coupling", wall=WallSettings())
        u = _energy(box, calc)
        assert np.isfinite(calc.results["e_wall"]) and np.isfinite(calc.results["dE_dlambda"])
        assert np.isfinite(calc.results["forces"]).all()
        if lam == 1.0:
            assert calc.results["e_wall"] > 1.0 and u == pytest.approx(full_e, abs=1e-12)


def test_molecular_ion_is_evaluated_whole_across_the_boundary(calc64) -> None:
    from ase import Atoms

    # a rigid 'ion' of two atoms (O–H, think OH-) split by the periodic boundary, plus a distant water
    atoms = Atoms("OHOHH", positions=[[0.2, 3, 3], [6.0, 3, 3], [3, 0.5, 0.5], [3.9, 0.5, 0.5], [2.7, 1.4, 0.5]])
    atoms.cell, atoms.pbc = [6.4, 6.4, 6.4], True
    lc = LambdaCalculator(calc64, [0, 1], 0.0, ion_groups=[7, 7], wall=None)
    whole = atoms[[0, 1]]
    whole.positions[1] -= [6.4, 0, 0]
    whole.pbc, whole.cell = False, np.zeros((3, 3))
    expected = nnp_energy_forces(calc64, atoms[[2, 3, 4]])[0] + nnp_energy_forces(calc64, whole)[0]
    assert _energy(atoms, lc) == pytest.approx(expected, abs=1e-10)
    periodic = LambdaCalculator(calc64, [0, 1], 0.0, ion_groups=[7, 7], wall=None, isolated_ions="periodic")
    expected = nnp_energy_forces(calc64, atoms[[2, 3, 4]])[0] + nnp_energy_forces(calc64, atoms[[0, 1]])[0]
    assert _energy(atoms, periodic) == pytest.approx(expected, abs=1e-10)
    # a lone atom: cached once, position independent (vacuum and periodic alike)
    single = LambdaCalculator(calc64, [0], 0.0, wall=None, isolated_ions="periodic")
    e0 = _energy(atoms, single)
    atoms.positions[0] += [1.3, -0.4, 2.2]
    lone = atoms[[0]]
    assert _energy(atoms, single) == pytest.approx(e0, abs=1e-12)  # moving a decoupled ion costs nothing
    assert np.allclose(single.results["forces"][0], 0.0)
    assert single.results["e_ions"] == pytest.approx(nnp_energy_forces(calc64, lone)[0], abs=1e-10)


# --------------------------------------------------------------------------- assembly and builder


def _synthetic_run(sid: str = "synthetic", orders: tuple[int, ...] = (3,)) -> dict:
    ti = TISettings(n_windows=5, convergence_orders=orders).model_dump(mode="json")
    return {
        "blob_uuid": run_blob_uuid(sid),
        "kind": "ti_run",
        "solvation_id": sid,
        "status": "ok",
        "salt": "NaCl",
        "cation": "Na+",
        "anion": "Cl-",
        "nu_cation": 1,
        "nu_anion": 1,
        "charges": [1, -1],
        "n_waters": 16,
        "n_atoms": 50,
        "box_length_A": 8.0,
        "molarity": 3.2,
        "temperature": 298.15,
        "model": "x.model",
        "model_id": "sha256:abc",
        "model_identity": {"model_id": "sha256:abc", "r_max": 5.0, "kind": "mace_file", "name": "x.model"},
        "ti": ti,
        "md": {"timestep_fs": 0.5},
        "packing": {"seed": 1},
        "isolated_ion_energies_eV": {"Na+": -1.0, "Cl-": -2.0},
        "last_updated": utcnow(),
    }


def _synthetic_windows(run: dict, f_cav, f_coup, noise: float = 0.0, n: int = 400) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for leg, f in (("cavity", f_cav), ("coupling", f_coup)):
        for lam in window_lambdas([5, *run["ti"]["convergence_orders"]]):
            out.append(
                {
                    "blob_uuid": window_blob_uuid(run["solvation_id"], leg, lam),
                    "kind": "ti_window",
                    "solvation_id": run["solvation_id"],
                    "leg": leg,
                    "lam": float(lam),
                    "samples": (f(lam) + noise * rng.standard_normal(n)).tolist(),
                    "n_steps": n,
                    "status": "ok",
                    "last_updated": utcnow(),
                }
            )
    return out


def test_assemble_document_recovers_polynomial_integrals_and_cycle() -> None:
    run = _synthetic_run()
    windows = _synthetic_windows(run, lambda x: 0.2 * (1 - x) ** 2, lambda x: -3.0 + x**3)
    doc = assemble_solvation_document(run, windows)
    assert doc.status == "completed"
    cav, coup = 0.2 / 3 * EV_TO_KJ_PER_MOL, (-3.0 + 0.25) * EV_TO_KJ_PER_MOL
    assert doc.delta_f_cavity_kJ_mol == pytest.approx(cav)
    assert doc.delta_f_coupling_kJ_mol == pytest.approx(coup)
    assert doc.delta_f_alchemical_kJ_mol == pytest.approx(cav + coup)
    assert [row.n_windows for row in doc.convergence] == [3, 5]
    assert all(row.delta_f_alchemical_kJ_mol == pytest.approx(cav + coup) for row in doc.convergence)
    assert doc.standard_state_correction_kJ_mol == pytest.approx(2 * standard_state_correction(298.15))
    assert doc.born_radius_A == 5.0 and doc.dielectric_constant == pytest.approx(78.3, abs=0.1)
    assert doc.long_range_correction_kJ_mol == pytest.approx(
        born_cutoff_correction([1, -1], 5.0, doc.dielectric_constant, "kJ/mol")
    )
    assert doc.delta_g_solv_kJ_mol == pytest.approx(cav + coup + doc.standard_state_correction_kJ_mol)
    assert doc.delta_g_solv_with_lr_kJ_mol == pytest.approx(doc.delta_g_solv_kJ_mol + doc.long_range_correction_kJ_mol)
    assert doc.experimental_kJ_mol == -727.0 and "Marcus" in doc.experimental_source
    assert doc.deviation_kJ_mol == pytest.approx(doc.delta_g_solv_kJ_mol + 727.0)
    assert doc.delta_g_solv_err_kJ_mol == pytest.approx(0.0, abs=1e-9) and len(doc.windows) == 14
    assert doc.conventions and len(doc.caveats) >= 3
    # gas-reference correction: Σ ν (E_NNP(ion alone) − E_ref(ion))
    gas = assemble_solvation_document(run, windows, {"gas_phase_ion_energies_eV": {"Na+": -1.5, "Cl-": -1.0}})
    assert gas.gas_reference_correction_kJ_mol == pytest.approx((0.5 - 1.0) * EV_TO_KJ_PER_MOL)


def test_assemble_document_errors_and_missing_windows() -> None:
    run = _synthetic_run(orders=())
    windows = _synthetic_windows(run, lambda x: 0.1 + 0 * x, lambda x: -1.0 + 0 * x, noise=0.05, n=2000)
    doc = assemble_solvation_document(run, windows)
    sem = 0.05 / math.sqrt(1600)  # white noise: g ≈ 1, after discarding 20 %
    w2 = np.sum(gauss_legendre_lambdas(5)[1] ** 2)  # σ_leg² = Σ w_i² σ_i², two legs in quadrature
    assert doc.delta_f_alchemical_err_kJ_mol == pytest.approx(math.sqrt(2 * w2) * sem * EV_TO_KJ_PER_MOL, rel=0.2)
    assert all(w.statistical_inefficiency < 1.5 for w in doc.windows)
    missing = assemble_solvation_document(run, windows[1:])
    assert missing.status == "incomplete" and missing.delta_g_solv_kJ_mol is None
    unstable = [dict(w) for w in windows]
    unstable[0] |= {"status": "unstable", "status_reason": "MD unstable at step 3: boom"}
    bad = assemble_solvation_document(run, unstable)
    assert bad.status == "unstable" and "boom" in bad.status_reason
    assert experimental_salt_hydration("LiTFSI")[0] is None


def test_builder_is_incremental(tmp_path: Path) -> None:
    stores = ElectroDBStores(ElectroDBSettings(data_dir=tmp_path)).connect("data", "solvation")
    run = _synthetic_run("b1", orders=())
    windows = _synthetic_windows(run, lambda x: 0.1 + 0 * x, lambda x: -1.0 + x)
    put_ti_docs(stores.data, [run, *windows])
    builder = SolvationBuilder(stores.data, stores.solvation)
    builder.run()
    doc = stores.solvation.query_one({"solvation_id": "b1"})
    assert doc["status"] == "completed"
    assert doc["delta_f_alchemical_kJ_mol"] == pytest.approx((0.1 - 0.5) * EV_TO_KJ_PER_MOL)
    assert list(SolvationBuilder(stores.data, stores.solvation).get_items()) == []
    changed = windows[-1] | {"samples": [v + 1.0 for v in windows[-1]["samples"]], "last_updated": utcnow()}
    put_ti_docs(stores.data, [changed])
    items = list(SolvationBuilder(stores.data, stores.solvation).get_items())
    assert [i["run"]["solvation_id"] for i in items] == ["b1"]
    SolvationBuilder(stores.data, stores.solvation, analysis={"born_radius_A": 10.0}, rebuild=True).run()
    assert stores.solvation.query_one({"solvation_id": "b1"})["born_radius_A"] == 10.0
    stores.close()


# --------------------------------------------------------------------------- end to end


def _run_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Path, n_waters: int, md: dict | None = None, **overrides
):
    from jobflow import run_locally

    from electrodb.systems.campaign import MDSettings

    monkeypatch.setenv("ELECTRODB_DATA_DIR", str(tmp_path / "db"))
    get_settings.cache_clear()
    stores = ElectroDBStores(ElectroDBSettings(data_dir=tmp_path / "db")).connect()
    maker = SolvationTIMaker(md=MDSettings(npt=False, minimize_steps=5, timestep_fs=0.5, **(md or {})))
    flow = maker.make("NaCl", n_waters=n_waters, temperature=298.15, model=str(model), **overrides)
    run_locally(flow, store=stores.job_store(), create_folders=False, log=False, ensure_success=True)
    get_settings.cache_clear()
    return flow, stores


def _check_stored_document(stores: ElectroDBStores, n_windows_total: int) -> dict:
    docs = list(stores.solvation.query({}))
    assert len(docs) == 1
    doc = docs[0]
    assert doc["status"] == "completed", doc.get("status_reason")
    assert doc["salt"] == "NaCl" and doc["charges"] == [1, -1] and doc["temperature"] == 298.15
    assert len(doc["windows"]) == n_windows_total
    for w in doc["windows"]:
        assert w["status"] == "ok" and w["n_samples"] > 0 and math.isfinite(w["mean_eV"]) and w["sem_eV"] >= 0
    for key in (
        "delta_f_cavity_kJ_mol",
        "delta_f_coupling_kJ_mol",
        "delta_f_alchemical_kJ_mol",
        "delta_g_solv_kJ_mol",
        "delta_g_solv_err_kJ_mol",
        "delta_g_solv_with_lr_kJ_mol",
        "long_range_correction_kJ_mol",
    ):
        assert math.isfinite(doc[key]), key
    assert doc["standard_state_correction_kJ_mol"] == pytest.approx(2 * 7.926, abs=0.01)
    assert doc["experimental_kJ_mol"] == -727.0
    prov = doc["provenance"]
    assert prov["model_id"].startswith("sha256:") and prov["model_id"] == doc["model_id"] == doc["model"]["model_id"]
    assert prov["md"]["timestep_fs"] == 0.5 and prov["ti"]["steps_per_window"] > 0 and prov["code_version"]
    walls = prov["wall_sigma_A"]
    assert walls["Na+"]["O"] == pytest.approx(2.12) and walls["Cl-"]["H"] == pytest.approx(1.91)
    assert prov["isolated_ion_energies_eV"].keys() == {"Na+", "Cl-"}
    assert doc["conventions"] and doc["caveats"]
    assert stores.data.count({"kind": "ti_window", "solvation_id": doc["solvation_id"]}) == n_windows_total
    assert stores.data.count({"kind": "ti_run", "solvation_id": doc["solvation_id"]}) == 1
    return doc


def test_ti_flow_end_to_end_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_path: Path) -> None:
    """One NaCl pair in 8 waters, random MACE: 2 Gauss–Legendre windows per leg × 10 steps."""
    _, stores = _run_flow(
        tmp_path,
        monkeypatch,
        model_path,
        8,
        n_windows=2,
        steps_per_window=10,
        convergence_orders=(),
        equilibration_steps=10,
    )
    doc = _check_stored_document(stores, 4)
    assert [row["n_windows"] for row in doc["convergence"]] == [2]
    # the builder reproduces the combine job's numbers from the stored windows
    stores.solvation.remove_docs({})
    SolvationBuilder(stores.data, stores.solvation).run()
    rebuilt = stores.solvation.query_one({"solvation_id": doc["solvation_id"]})
    assert rebuilt["delta_g_solv_kJ_mol"] == pytest.approx(doc["delta_g_solv_kJ_mol"])
    stores.close()


def test_ti_flow_records_unstable_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_path: Path) -> None:
    """A blow-up during equilibration stores an 'unstable' solvation document and runs no window."""
    from jobflow import run_locally

    from electrodb.systems.campaign import MDSettings, StabilitySettings

    monkeypatch.setenv("ELECTRODB_DATA_DIR", str(tmp_path / "db"))
    get_settings.cache_clear()
    stores = ElectroDBStores(ElectroDBSettings(data_dir=tmp_path / "db")).connect()
    md = MDSettings(npt=False, minimize_steps=0, stability=StabilitySettings(max_force_eV_A=1e-9, check_every_steps=1))
    flow = SolvationTIMaker(md=md).make(
        "NaCl", n_waters=8, model=str(model_path), n_windows=2, steps_per_window=10, convergence_orders=()
    )
    run_locally(flow, store=stores.job_store(), create_folders=False, log=False, ensure_success=False)
    get_settings.cache_clear()
    doc = stores.solvation.query_one({})
    assert doc["status"] == "unstable" and "equilibration" in doc["status_reason"]
    assert doc["delta_g_solv_kJ_mol"] is None and doc["experimental_kJ_mol"] == -727.0
    assert stores.data.count({"kind": "ti_window"}) == 0
    stores.close()


@pytest.mark.slow
def test_ti_flow_end_to_end_16_waters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_path: Path) -> None:
    """16 waters, Gauss–Legendre orders 3 and 1 on both legs (3 windows per leg: λ = 1/2 is shared), 100 steps.

    The random MACE has no water physics (its molecules drift apart or together): the distance thresholds are
    relaxed so that the plumbing, not the model, is tested."""
    from electrodb.systems.campaign import StabilitySettings

    loose = StabilitySettings(min_distance_h_A=0.2, min_distance_heavy_A=0.5, max_force_eV_A=500.0)
    _, stores = _run_flow(
        tmp_path,
        monkeypatch,
        model_path,
        16,
        md={"stability": loose},
        n_windows=3,
        steps_per_window=100,
        convergence_orders=(1,),
        equilibration_steps=100,
    )
    doc = _check_stored_document(stores, 6)  # orders 3 and 1 share λ = 1/2
    assert [row["n_windows"] for row in doc["convergence"]] == [1, 3]
    assert all(w["n_samples"] == 101 for w in doc["windows"])
    stores.close()


# --------------------------------------------------------------------------- validation against Widom insertion

_LJ = {"OO": (3.0, 0.02), "NaO": (2.8, 0.05), "ONa": (2.8, 0.05), "NaNa": (2.8, 0.05)}  # σ (Å), ε (eV)
_LJ_CUT = 5.0


def _lj(r2: np.ndarray, sigma, eps) -> tuple[np.ndarray, np.ndarray]:
    """Energy-shifted LJ truncated at 5 Å, and (dE/dr)/r."""
    inside = r2 < _LJ_CUT**2
    s6 = (np.asarray(sigma) ** 2 / np.where(inside, r2, 1.0)) ** 3
    c6 = (np.asarray(sigma) / _LJ_CUT) ** 6
    e = np.where(inside, 4 * eps * (s6**2 - s6 - c6**2 + c6), 0.0)
    g = np.where(inside, 4 * eps * (-12 * s6**2 + 6 * s6) / np.where(inside, r2, 1.0), 0.0)
    return e, g


class _PairLJ(Calculator):
    """Minimal ASE calculator: pairwise LJ with per-species parameters (cubic box or no pbc)."""

    implemented_properties = ("energy", "forces")

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        pos, sym = self.atoms.positions, self.atoms.get_chemical_symbols()
        f, e = np.zeros_like(pos), 0.0
        if len(pos) > 1:
            i, j = np.triu_indices(len(pos), 1)
            d = pos[j] - pos[i]
            if self.atoms.pbc.any():
                length = self.atoms.cell.lengths()[0]
                d -= length * np.round(d / length)
            par = np.array([_LJ[sym[a] + sym[b]] for a, b in zip(i, j, strict=True)])
            ee, g = _lj(np.einsum("ij,ij->i", d, d), par[:, 0], par[:, 1])
            e, fij = float(ee.sum()), -g[:, None] * d
            np.add.at(f, j, fij)
            np.add.at(f, i, -fij)
        self.results = {"energy": e, "forces": f}


@pytest.mark.slow
def test_two_leg_ti_matches_widom_insertion_for_lj_solute() -> None:
    """The whole cycle (cavity leg + coupling leg with the wall removed) against an independent estimate.

    One LJ solute (σ = 2.8 Å, ε = 0.05 eV with the solvent) in 32 LJ particles (σ = 3.0 Å, ε = 0.02 eV, ρσ³ ≈ 0.7,
    298.15 K): the solvation free energy from Widom test-particle insertion, −k_BT ln⟨exp(−βΔU)⟩ over the pure
    solvent, must equal ΔF_cavity + ΔF_coupling (Gauss–Legendre order 5, wall σ = 2.4 Å). Seen while developing:
    Widom −13.36 ± 0.17 kJ/mol; TI −13.7 ± 0.8 (order 5) and −14.3 ± 0.6 (order 7); with a wall σ = 2.0 Å,
    far inside the solute's core, order 5 gave −17.0 ± 0.6 and order 7 −14.6 ± 0.7: the convergence table exposes
    a too-small cavity. This test (5000 steps, order 5): TI −14.25 ± 1.28, Widom −13.51 ± 0.21 kJ/mol.
    """
    from ase import Atoms, units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.optimize import FIRE

    from electrodb.analysis.free_energy import K_B_EV
    from electrodb.analysis.statistics import timeseries_error
    from electrodb.analysis.ti_paths import window_statistics
    from electrodb.flows.solvation import run_window
    from electrodb.systems.campaign import StabilitySettings

    temperature, n, length, dt, steps = 298.15, 32, 10.7, 2.0, 5000
    kt = K_B_EV * temperature
    rng = np.random.default_rng(1)
    atoms = Atoms(["O"] * n + ["Na"], positions=rng.uniform(0, length, (n + 1, 3)), cell=[length] * 3, pbc=True)
    atoms.calc = _PairLJ()
    FIRE(atoms, logfile=None).run(fmax=0.05, steps=500)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Langevin(atoms, dt * units.fs, temperature_K=temperature, friction=0.01 / units.fs, rng=rng).run(2000)
    start = atoms.copy()
    wall = WallSettings(radii="fixed", sigma_O_A=2.4)
    loose = StabilitySettings(min_distance_heavy_A=0.5, check_every_steps=50)
    legs = {}
    lams = gauss_legendre_lambdas(5)[0]
    for leg in ("cavity", "coupling"):
        means, sems = [], []
        for k, lam in enumerate(lams):
            calc = LambdaCalculator(_PairLJ(), [n], float(lam), leg=leg, wall=wall)
            window = run_window(start.copy(), calc, temperature, steps, dt, 0.01, 100 + k, stability=loose)
            assert window.status == "ok", window.status_reason
            est = window_statistics(window.samples, 0.2)
            means.append(est.mean)
            sems.append(est.sem)
        legs[leg] = leg_estimate(lams, means, sems, 5)
    ti = (legs["cavity"].delta_f + legs["coupling"].delta_f) * EV_TO_KJ_PER_MOL
    ti_err = math.hypot(legs["cavity"].error, legs["coupling"].error) * EV_TO_KJ_PER_MOL

    solvent = start[:n].copy()
    solvent.calc = _PairLJ()
    MaxwellBoltzmannDistribution(solvent, temperature_K=temperature, rng=rng)
    dyn = Langevin(solvent, dt * units.fs, temperature_K=temperature, friction=0.01 / units.fs, rng=rng)
    dyn.run(1000)
    boltzmann: list[float] = []

    def insert() -> None:
        trial = rng.uniform(0, length, size=(200, 3))
        d = solvent.positions[None, :, :] - trial[:, None, :]
        d -= length * np.round(d / length)
        e, _ = _lj(np.einsum("ijk,ijk->ij", d, d), *_LJ["NaO"])
        boltzmann.append(float(np.exp(-e.sum(axis=1) / kt).mean()))

    dyn.attach(insert, interval=10)
    dyn.run(40000)
    widom = timeseries_error(boltzmann)
    ref = -kt * math.log(widom.mean) * EV_TO_KJ_PER_MOL
    ref_err = kt * widom.sem / widom.mean * EV_TO_KJ_PER_MOL
    print(f"TI {ti:.2f} ± {ti_err:.2f} kJ/mol, Widom {ref:.2f} ± {ref_err:.2f} kJ/mol")
    assert abs(ti - ref) < 3 * math.hypot(ti_err, ref_err) + 1.0, (ti, ti_err, ref, ref_err)


def test_campaign_with_solvation_runs_ti_once_and_exports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_path: Path
) -> None:
    """`solvation: true` in a campaign runs one TI flow per salt and temperature; a re-run skips it."""
    import pandas as pd

    from electrodb.flows.campaign import run_solvation
    from electrodb.io.export import export_table
    from electrodb.systems.campaign import Campaign, MDSettings

    monkeypatch.setenv("ELECTRODB_DATA_DIR", str(tmp_path / "db"))
    get_settings.cache_clear()
    stores = ElectroDBStores(ElectroDBSettings(data_dir=tmp_path / "db")).connect()
    campaign = Campaign(
        name="ti",
        salts=["NaCl"],
        concentrations=[1.0],
        size={"n_waters": 8},
        model=str(model_path),
        model_cutoff_A=2.0,
        md=MDSettings(npt=False, minimize_steps=5),
        solvation=True,
        solvation_ti={"n_windows": 2, "steps_per_window": 10, "convergence_orders": [], "equilibration_steps": 10},
    )
    model_id = campaign.model_identity()
    first = run_solvation(campaign, stores, model_id)
    assert list(first.values()) == ["completed"]
    assert list(run_solvation(campaign, stores, model_id).values()) == ["skipped (completed)"]
    # the export puts ΔG beside every row of that salt, model and temperature
    stores.electrolytes.update(
        [{"electrolyte_id": "e1", "salt": "NaCl", "temperature": 298.15, "model_id": model_id, "molality": 1.0}],
        key="electrolyte_id",
    )
    export_table(stores, "csv", tmp_path / "out.csv")
    row = pd.read_csv(tmp_path / "out.csv").iloc[0]
    doc = stores.solvation.query_one({})
    assert row["dG_solv_kJ_mol"] == pytest.approx(doc["delta_g_solv_kJ_mol"])
    assert row["exp_dG_solv_kJ_mol"] == -727.0 and row["solvation_status"] == "completed"
    get_settings.cache_clear()
    stores.close()


# --------------------------------------------------------------------------- with the long-range term


def _labelled_box(atoms):
    """smoke_box labels (electrodb.systems.boxes style): roles, molecules and ion centres."""
    atoms = atoms.copy()
    atoms.arrays["role"] = np.array([0, 1, 1] * 4 + [2, 3], dtype=np.int8)
    atoms.arrays["mol_id"] = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 5], dtype=np.int32)
    atoms.arrays["ion_center"] = np.array([False] * 12 + [True, True])
    return atoms


def test_lambda_calculator_with_long_range_end_states(box, calc64) -> None:
    """λ = 1: NNP + E_LR of the whole box; λ = 0: solvent with its own E_LR + ions alone (vacuum: no E_LR;
    periodic: each ion's Wigner self-energy −ξ q² k_e / (2 ε_r L), ξ = 2.837297)."""
    from electrodb.models.longrange import atomic_charges, long_range_energy_forces
    from electrodb.systems.long_range import COULOMB_EV_A, LongRangeSettings

    atoms = _labelled_box(box)
    term = LongRangeSettings(charges="all", epsilon_r=1.0, method="ewald", cutoff_A=3.0)  # water charged too
    q = atomic_charges(atoms, term, "NaCl")
    solvent_idx = [i for i in range(len(atoms)) if i not in ION_INDICES]
    e_lr_full, f_lr_full, _ = long_range_energy_forces(atoms, q, term, compute_stress=False)
    e_lr_solv = long_range_energy_forces(atoms[solvent_idx], q[solvent_idx], term, compute_stress=False)[0]
    assert abs(e_lr_solv) > 0.1 and abs(e_lr_full - e_lr_solv) > 0.1
    full_e, full_f = nnp_energy_forces(calc64, atoms)
    kw = {"wall": WallSettings(), "long_range": term, "charges": q}

    one = LambdaCalculator(calc64, ION_INDICES, 1.0, **kw)
    assert _energy(atoms, one) == pytest.approx(full_e + e_lr_full, abs=1e-9)
    assert np.allclose(one.results["forces"], full_f + f_lr_full, atol=1e-9)
    assert one.results["e_long_range"] == pytest.approx(e_lr_full, abs=1e-12)

    ref = _decoupled_reference(atoms, calc64) + e_lr_solv
    zero = LambdaCalculator(calc64, ION_INDICES, 0.0, leg="coupling", wall=None, long_range=term, charges=q)
    assert _energy(atoms, zero) == pytest.approx(ref, abs=1e-9)
    assert one.results["dE_dlambda"] == pytest.approx(full_e + e_lr_full - ref - one.results["e_wall"], abs=1e-9)
    cavity = LambdaCalculator(calc64, ION_INDICES, 0.7, leg="cavity", **kw)
    assert _energy(atoms, cavity) - cavity.results["e_wall"] * 0.7**4 == pytest.approx(ref, abs=1e-9)

    periodic = LambdaCalculator(
        calc64, ION_INDICES, 0.0, wall=None, long_range=term, charges=q, isolated_ions="periodic"
    )
    e_periodic = _energy(atoms, periodic)
    e_nnp_ions = sum(nnp_energy_forces(calc64, atoms[[i]])[0] for i in ION_INDICES)  # alone, with pbc
    wigner = -2.837297 * COULOMB_EV_A / (2 * 6.4)
    solvent_only = nnp_energy_forces(calc64, atoms[solvent_idx])[0] + e_lr_solv
    assert e_periodic == pytest.approx(solvent_only + e_nnp_ions + 2 * wigner, abs=1e-4)
    with pytest.raises(ValueError, match="charges"):
        LambdaCalculator(calc64, ION_INDICES, 0.5, long_range=term)


def test_solvation_id_changes_with_the_long_range_term_only_when_given() -> None:
    from electrodb.flows.solvation import solvation_id
    from electrodb.systems.campaign import MDSettings, PackingSettings
    from electrodb.systems.long_range import LongRangeSettings

    args = ("NaCl", 16, 298.15, "sha256:x", TISettings(), MDSettings(npt=False), PackingSettings())
    term = LongRangeSettings(charges="ions", epsilon_r=78.3, method="pme", cutoff_A=10)
    assert solvation_id(*args) == solvation_id(*args, None)
    assert solvation_id(*args, term) == solvation_id(*args, term.model_dump(mode="json")) != solvation_id(*args)
