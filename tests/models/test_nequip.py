"""Deployed NequIP (TorchScript) models as ElectroDB engines: the published LiCl model and a toy deployment.

The LiCl NNP of Zhang, Pagotto, Gould & Duignan (NequIP 0.5.6, species O H Li Cl, r_max 5 Å) is read from
``../shared/external/zhang2023-licl-nequip/``; it is never copied into the repository.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
import torch

from electrodb.models.files import ModelError, file_sha256
from electrodb.models.loaded import LoadedModel
from electrodb.models.loader import load_model
from electrodb.models.nequip import neighbor_list
from electrodb.models.reference import ModelRef
from tests.model_factory import build_toy_nequip
from tests.published import licl_file

TYPES = {"O": 0, "H": 1, "Li": 2, "Cl": 3}


def _require_licl() -> Path:
    return licl_file("licl-l3-deployed.pth")


def small_box(length: float = 7.5, seed: int = 0) -> Atoms:
    """8 randomly oriented waters on a 2x2x2 grid and one Li+ / Cl- pair at the grid's body centres."""
    rng = np.random.default_rng(seed)
    water = molecule("H2O")
    water.positions -= water.positions[0]
    symbols: list[str] = []
    positions: list[np.ndarray] = []
    for site in itertools.product((0.25, 0.75), repeat=3):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        positions += list(water.positions @ q.T + np.array(site) * length)
        symbols += ["O", "H", "H"]
    symbols += ["Li", "Cl"]
    positions += [np.zeros(3), np.full(3, length / 2)]
    atoms = Atoms(symbols, positions=np.array(positions), cell=[length] * 3, pbc=True)
    atoms.wrap()
    return atoms


def brute_force_edges(atoms: Atoms, r_max: float, n_image: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (i, j, S) with |x_j - x_i + S·H| < r_max over images S in [-n, n]^3, excluding i == j at S = 0."""
    pos, cell = atoms.positions, atoms.cell.array
    ii, jj, ss = [], [], []
    for shift in itertools.product(range(-n_image, n_image + 1), repeat=3):
        vec = pos[None, :, :] - pos[:, None, :] + np.array(shift) @ cell
        dist = np.linalg.norm(vec, axis=-1)
        mask = dist < r_max
        if shift == (0, 0, 0):
            np.fill_diagonal(mask, False)
        i, j = np.nonzero(mask)
        ii.append(i)
        jj.append(j)
        ss.append(np.tile(shift, (len(i), 1)))
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(ss)


def _edge_set(i: np.ndarray, j: np.ndarray, shifts: np.ndarray) -> set[tuple[int, int, tuple[int, ...]]]:
    edges = {(int(a), int(b), tuple(int(x) for x in s)) for a, b, s in zip(i, j, shifts, strict=True)}
    assert len(edges) == len(i)  # no duplicates
    return edges


def direct_call(
    module: torch.jit.ScriptModule, atoms: Atoms, dtype: torch.dtype = torch.float32
) -> tuple[float, np.ndarray]:
    """Call the TorchScript module with a hand-built (brute-force) neighbour list, as in the model's README."""
    i, j, shifts = brute_force_edges(atoms, 5.0)
    data = {
        "pos": torch.tensor(atoms.positions, dtype=dtype),
        "edge_index": torch.tensor(np.stack([i, j]), dtype=torch.long),
        "cell": torch.tensor(atoms.cell.array, dtype=dtype).view(1, 3, 3),
        "edge_cell_shift": torch.tensor(shifts, dtype=dtype),
        "atom_types": torch.tensor([TYPES[s] for s in atoms.get_chemical_symbols()]).view(-1, 1),
        "pbc": torch.tensor([[True, True, True]]),
    }
    out = module(data)
    return float(out["total_energy"].detach().sum()), out["forces"].detach().double().numpy()


@pytest.fixture(scope="module")
def licl() -> LoadedModel:
    return load_model(f"nequip:{_require_licl()}", device="cpu")


@pytest.fixture(scope="module")
def licl_results(licl: LoadedModel) -> dict:
    atoms = small_box()
    atoms.calc = licl.calculator()
    return {"atoms": atoms, "energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}


def test_reference_syntax_and_identity(licl: LoadedModel) -> None:
    path = _require_licl()
    ref = ModelRef.parse(f"nequip:{path}?species=O,H,Li,Cl&r_max=5")
    assert ref.kind == "nequip" and ref.species == ["O", "H", "Li", "Cl"] and ref.r_max == 5.0
    assert ModelRef.parse(str(ref)) == ref
    assert ModelRef.parse(str(path)).kind == "nequip"  # detected from the file's metadata, not its suffix
    ident = licl.identity
    assert ident.kind == "nequip" and ident.model_id == file_sha256(path)
    assert ident.elements_in_type_order == ["O", "H", "Li", "Cl"] and ident.elements == ["H", "Li", "O", "Cl"]
    assert ident.r_max == 5.0 and ident.metadata["nequip_version"] == "0.5.6"
    assert ident.outputs == ["energy", "forces"]  # deployed with ForceOutput: no stress
    for bad in ("nequip:", f"nequip:{path}?species=O,Xx", f"nequip:{path}?r_max=-1", f"nequip:{path}?cutoff=5"):
        with pytest.raises(ModelError):
            ModelRef.parse(bad)
    with pytest.raises(ModelError, match="disagrees with the file's metadata"):
        load_model(f"nequip:{path}?r_max=6", device="cpu")


def test_matches_direct_call_with_brute_force_neighbours(licl: LoadedModel, licl_results: dict) -> None:
    atoms = licl_results["atoms"]
    brute = _edge_set(*brute_force_edges(atoms, 5.0))
    assert _edge_set(*neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, 5.0)) == brute
    assert _edge_set(*neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, 5.0, backend="ase")) == brute
    # the 7.5 Å cell is shorter than 2 r_max: some pairs interact through two images (minimum image is not enough)
    pairs = [(i, j) for i, j, _ in brute]
    assert len(set(pairs)) < len(pairs)
    energy, forces = direct_call(licl.module, atoms)
    assert licl_results["energy"] == pytest.approx(energy, rel=1e-6, abs=2e-3)
    np.testing.assert_allclose(licl_results["forces"], forces, atol=1e-4)  # measured: 2e-6 eV/Å
    assert np.abs(forces.sum(axis=0)).max() < 1e-3  # a periodic model's forces sum to zero
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_translation_invariance(licl: LoadedModel, licl_results: dict) -> None:
    moved = licl_results["atoms"].copy()
    moved.translate([1.3, -2.1, 3.7])
    moved.wrap()  # atoms cross the cell faces: the image shifts change
    moved.calc = licl.calculator()
    assert moved.get_potential_energy() == pytest.approx(licl_results["energy"], abs=2e-3)
    np.testing.assert_allclose(moved.get_forces(), licl_results["forces"], atol=2e-4)


@pytest.mark.slow  # ~5 s of CPU (a float64 copy of the model, JIT warm-up, 5 calls); ~12 s on a busy machine
def test_finite_difference_forces(licl_results: dict) -> None:
    """Central differences of the float64 energy, h = 1e-3 Å, on two components (Li x, an O z)."""
    loaded = load_model(f"nequip:{_require_licl()}", device="cpu", dtype="float64")
    atoms = licl_results["atoms"].copy()
    atoms.calc = loaded.calculator()
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces, licl_results["forces"], atol=2e-3)  # float64 vs float32 evaluation
    h = 1e-3
    calc = loaded.calculator()
    for atom, axis in ((24, 0), (0, 2)):
        energies = []
        for sign in (1, -1):
            displaced = atoms.copy()
            displaced.positions[atom, axis] += sign * h
            energies.append(calc.get_potential_energy(displaced))
        fd = -(energies[0] - energies[1]) / (2 * h)
        assert fd == pytest.approx(forces[atom, axis], abs=1e-4)  # measured: <= 2e-6 eV/Å


def test_wrong_element(licl: LoadedModel) -> None:
    licl.check_elements(["O", "H", "Li", "Cl"])
    with pytest.raises(ModelError, match="Na") as err:
        licl.check_elements(["O", "H", "Na", "Cl"])
    assert "H, Li, O, Cl" in str(err.value)


def test_not_a_model(tmp_path: Path) -> None:
    path = _require_licl()
    pickled = tmp_path / "pickled.model"  # torch.save of a module: the (pickle) format of MACE files
    torch.save(torch.nn.Linear(2, 2), pickled)
    text = tmp_path / "notes.pth"
    text.write_text("not a model\n")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    folder = tmp_path / "folder.pth"
    folder.mkdir()
    cases = {
        text: "not a zip archive",
        truncated: "not a zip archive",
        folder: "not a file",
        pickled: "not TorchScript",
        tmp_path / "missing.pth": "does not exist",
    }
    for bad, why in cases.items():
        with pytest.raises(ModelError, match=why) as err:
            load_model(f"nequip:{bad}", device="cpu")
        assert "nequip-deploy" in str(err.value)
    # a truncated deployment given as a bare path is not detected as NequIP and fails as a MACE file would
    with pytest.raises(ModelError, match="could not load MACE model"):
        load_model(str(truncated), device="cpu")
    assert ModelRef.parse(str(pickled)).kind == "mace_file"  # a pickle is never taken for a NequIP deployment


def _rocksalt() -> Atoms:
    from ase.build import bulk

    atoms = bulk("NaCl", "rocksalt", a=4.4, cubic=True).repeat((1, 1, 2))
    atoms.rattle(0.1, seed=3)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + np.array([[0.02, 0.01, 0], [0, -0.01, 0.03], [0, 0, 0.01]])), True)
    return atoms


def test_toy_deployment_with_stress(tmp_path: Path) -> None:
    path = build_toy_nequip(tmp_path, metadata=True)
    loaded = load_model(str(path), dtype="float64", device="cpu")
    assert loaded.identity.kind == "nequip" and loaded.identity.outputs == ["energy", "forces", "stress"]
    assert loaded.identity.elements == ["Na", "Cl"] and loaded.identity.r_max == 3.0
    atoms = _rocksalt()
    atoms.calc = loaded.calculator()
    stress = atoms.get_stress()
    np.testing.assert_allclose(stress, atoms.calc.calculate_numerical_stress(atoms, d=1e-5), atol=1e-7)
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces, atoms.calc.calculate_numerical_forces(atoms, d=1e-5), atol=1e-7)
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)


def test_toy_without_metadata_needs_species(tmp_path: Path) -> None:
    path = build_toy_nequip(tmp_path, metadata=False)
    assert ModelRef.parse(str(path)).kind == "mace_file"  # no metadata: not detected, named explicitly below
    with pytest.raises(ModelError, match=r"species=.*r_max="):
        load_model(f"nequip:{path}", device="cpu")
    with pytest.raises(ModelError, match="NequIP/Allegro"):
        load_model(str(path), device="cpu")
    loaded = load_model(f"nequip:{path}?species=Na,Cl&r_max=3", device="cpu", dtype="float64")
    assert loaded.identity.elements_in_type_order == ["Na", "Cl"] and loaded.identity.outputs == ["energy", "forces"]
    atoms = _rocksalt()
    atoms.calc = loaded.calculator()
    np.testing.assert_allclose(atoms.get_forces(), atoms.calc.calculate_numerical_forces(atoms, d=1e-5), atol=1e-7)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_altered_file_is_refused_after_identification(tmp_path: Path) -> None:
    path = build_toy_nequip(tmp_path, metadata=True)
    loaded = load_model(str(path), device="cpu")
    with pytest.raises(ModelError, match="expected"):
        load_model(str(path), device="cpu", expected_id="sha256:" + "0" * 64)
    loaded.module = None  # drop the in-memory module: the calculator reloads it from the file
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="altered or replaced"):
        loaded.calculator()
