"""Delta learning with the long-range term: label subtraction, the model document, and adding the term back in MD."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
from electrodb.models.delta_learning import long_range_charges, subtract_long_range
from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY, STRESS_KEY, label_configurations, perturb_configurations
from electrodb.models.longrange import LongRangeCalculator, long_range_energy_forces
from electrodb.models.mace_command import TrainingError
from electrodb.models.mace_train import TrainingResult, TrainingSettings, train_mace
from electrodb.systems.long_range import LongRangeSettings
from tests.model_factory import smoke_box

TERM = LongRangeSettings(charges="ions", epsilon_r=78.3, method="ewald", cutoff_A=3.0)


def _labelled(n: int = 3) -> list:
    """Perturbed smoke boxes (4 H2O + Na + Cl, 6.4 Å) labelled with Lennard-Jones, stresses included."""
    configs = perturb_configurations([smoke_box(0)], n, (0.02, 0.04), 0.02, seed=1)
    return list(label_configurations(configs, LennardJones(sigma=0.86, epsilon=0.05, rc=3.0, smooth=True)))


def _with_box_labels(atoms):
    """smoke_box's labels as electrodb.systems.boxes writes them: water O/H roles 0/1, Na 2, Cl 3, molecules 0..5."""
    atoms = atoms.copy()
    atoms.arrays["role"] = np.array([0, 1, 1] * 4 + [2, 3], dtype=np.int8)
    atoms.arrays["mol_id"] = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 5], dtype=np.int32)
    atoms.arrays["ion_center"] = np.array([False] * 12 + [True, True])
    return atoms


def test_subtraction_is_reference_minus_the_term_exactly() -> None:
    labelled = _labelled()
    assert all(STRESS_KEY in a.info for a in labelled)
    reduced = subtract_long_range(labelled, TERM, "NaCl")
    q = np.array([0.0] * 12 + [1.0, -1.0])
    for ref, out in zip(labelled, reduced, strict=True):
        e, f, s = long_range_energy_forces(ref, q, TERM)
        assert abs(e) > 1e-3  # the Na–Cl pair is in the term (screened by 78.3)
        assert out.info[ENERGY_KEY] == ref.info[ENERGY_KEY] - e
        assert np.array_equal(out.arrays[FORCES_KEY], ref.arrays[FORCES_KEY] - f)
        assert np.array_equal(out.info[STRESS_KEY], np.asarray(ref.info[STRESS_KEY]) - s)
        assert out.info["LR_energy"] == e
        assert np.array_equal(out.positions, ref.positions)
    assert labelled[0].info[ENERGY_KEY] != reduced[0].info[ENERGY_KEY]  # inputs untouched, copies changed


def test_charges_from_box_labels_and_from_salt_elements_agree() -> None:
    atoms = smoke_box(0)
    by_element = long_range_charges(atoms, TERM, "NaCl")
    by_roles = long_range_charges(_with_box_labels(atoms), TERM, ["LiCl", "NaCl"])  # the salt present is used
    assert np.array_equal(by_element, by_roles)
    assert by_element.tolist() == [0.0] * 12 + [1.0, -1.0]
    explicit = LongRangeSettings(charges={"Na": 1.0, "Cl": -1.0, "O": 0.0, "H": 0.0})
    assert np.array_equal(long_range_charges(atoms, explicit), by_element)  # no salt needed


def test_charges_refused_when_they_cannot_be_assigned() -> None:
    atoms = smoke_box(0)
    with pytest.raises(ValueError, match="give the salt"):
        long_range_charges(atoms, TERM)
    with pytest.raises(ValueError, match="ion_center"):
        long_range_charges(atoms, TERM, "NaNO3")  # polyatomic ion: no centre atom without box labels
    with pytest.raises(ValueError, match="mol_id"):
        long_range_charges(atoms, TERM.model_copy(update={"charges": "all"}), "NaCl")  # water charges, no molecules
    assert long_range_charges(_with_box_labels(atoms), TERM.model_copy(update={"charges": "all"}), "NaCl")[0] < 0


def test_train_mace_writes_the_reduced_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wiring train_mace -> subtract_long_range, up to the mace_run_train call (stopped there)."""
    from ase.io import read

    import electrodb.models.mace_train as mt

    def stop(*args, **kwargs):
        raise TrainingError("stopped before training")

    monkeypatch.setattr(mt, "run_logged", stop)
    labelled = _labelled(4)
    with pytest.raises(TrainingError, match="stopped"):
        train_mace(labelled, TrainingSettings(valid_fraction=0.25), tmp_path, long_range=TERM, salts="NaCl")
    written = read(tmp_path / "train.xyz", index=":") + read(tmp_path / "valid.xyz", index=":")
    expected = {round(a.info[ENERGY_KEY], 10) for a in subtract_long_range(labelled, TERM, "NaCl")}
    assert {round(a.info[ENERGY_KEY], 10) for a in written} == expected


def _store_fake_model(stores, model_path: Path, long_range: LongRangeSettings | None):
    from electrodb.flows.training import store_model
    from electrodb.models.files import file_sha256

    result = TrainingResult(
        model_path=str(model_path),
        model_id=file_sha256(model_path),
        n_train=3,
        n_valid=1,
        long_range=long_range.model_dump(mode="json") if long_range else None,
        long_range_charges="per element from the formal charges of NaCl" if long_range else None,
    )
    return store_model(stores, result, "delta-test", {"source": "test"})


def test_model_document_records_the_removed_term(stores, random_mace: Path) -> None:
    doc = _store_fake_model(stores, random_mace, TERM)
    assert doc.long_range == TERM.model_dump(mode="json")
    stored = stores.models.query_one({"model_id": doc.model_id})
    assert LongRangeSettings.model_validate(stored["long_range"]) == TERM
    assert stored["training"]["long_range_charges"].endswith("NaCl")


def test_md_adds_the_recorded_term_back_and_refuses_another(stores, random_mace: Path) -> None:
    from electrodb.flows.md import load_calculator
    from electrodb.models.files import ModelError
    from electrodb.models.loader import load_model

    atoms = _with_box_labels(smoke_box(0))
    spec = SimpleNamespace(model=str(random_mace), long_range=None, salt="NaCl")
    calc, identity = load_calculator(spec, atoms, stores)  # no document yet: the bare NNP
    assert not isinstance(calc, LongRangeCalculator) and "long_range" not in identity

    _store_fake_model(stores, random_mace, TERM)
    calc, identity = load_calculator(spec, atoms, stores)
    assert isinstance(calc, LongRangeCalculator) and calc.settings == TERM
    assert identity["long_range"] == TERM.model_dump(mode="json") and identity["long_range_source"] == "model"
    nnp = load_model(str(random_mace)).calculator()
    e_lr = long_range_energy_forces(atoms, np.array([0.0] * 12 + [1.0, -1.0]), TERM, compute_stress=False)[0]
    work = atoms.copy()
    work.calc = calc
    e_total = work.get_potential_energy()
    work.calc = nnp
    assert e_total == pytest.approx(work.get_potential_energy() + e_lr, abs=1e-5)

    same = SimpleNamespace(model=str(random_mace), long_range=TERM, salt="NaCl")
    assert load_calculator(same, atoms, stores)[1]["long_range_source"] == "model"
    other = SimpleNamespace(model=str(random_mace), long_range=TERM.model_copy(update={"epsilon_r": 1.0}), salt="NaCl")
    with pytest.raises(ModelError, match="delta learning"):
        load_calculator(other, atoms, stores)
    from jobflow import CURRENT_JOB

    from electrodb.flows.job_io import NoJobStoreError

    CURRENT_JOB.reset()
    with pytest.raises(NoJobStoreError):  # outside a job it never falls back to the process's own database
        load_calculator(spec, atoms)


def test_cli_long_range_option_parses_json_yaml_and_files(tmp_path: Path) -> None:
    from electrodb.cli.model import _long_range_option

    text = '{"charges": "ions", "epsilon_r": 78.3, "method": "pme", "cutoff_A": 10}'
    expected = LongRangeSettings(charges="ions", epsilon_r=78.3, method="pme", cutoff_A=10)
    assert _long_range_option(text) == expected
    assert _long_range_option("{charges: ions, epsilon_r: 78.3, method: pme, cutoff_A: 10}") == expected
    path = tmp_path / "lr.yaml"
    path.write_text("long_range:\n  charges: ions\n  epsilon_r: 78.3\n  method: pme\n  cutoff_A: 10\n")
    assert _long_range_option(str(path)) == expected
    assert _long_range_option(None) is None
