"""Tests of electrodb.models.labelling and .mace_train: perturbation, labelling, mace_run_train, held-out errors."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

from electrodb.models import mace_command
from electrodb.models.labelling import (
    ENERGY_KEY,
    FORCES_KEY,
    STRESS_KEY,
    label_configurations,
    perturb_configurations,
)
from electrodb.models.mace_command import TrainingError, build_train_command
from electrodb.models.mace_train import TrainingResult, TrainingSettings, evaluate_model, split_train_valid, train_mace
from tests.model_factory import smoke_box, train_smoke_model


class NaNOnSecond(Calculator):
    """Energy = 0 and zero forces, except NaN for the second configuration evaluated."""

    implemented_properties = ("energy", "forces")

    def __init__(self) -> None:
        super().__init__()
        self.n_calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.n_calls += 1
        value = math.nan if self.n_calls == 2 else 0.0
        self.results = {"energy": value, "forces": np.full((len(self.atoms), 3), value)}


def test_perturbation_counts_bounds_and_determinism() -> None:
    base = [bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2), smoke_box()]
    lo, hi, strain = 0.02, 0.07, 0.02
    out = perturb_configurations(base, 5, displacement_A=(lo, hi), strain=strain, seed=3)
    assert len(out) == 10
    for new in out:
        ref = base[new.info["perturb_source"]]
        assert len(new) == len(ref)
        assert list(new.symbols) == list(ref.symbols)
        assert new.calc is None
        sigma = new.info["perturb_sigma_A"]
        assert lo <= sigma <= hi
        ratio = new.cell.lengths() / ref.cell.lengths()
        assert np.all(np.abs(ratio - 1.0) <= strain + 1e-12)
        # displacement relative to the strained reference (same scaled coordinates)
        delta = new.positions - ref.get_scaled_positions(wrap=False) @ np.asarray(new.cell)
        assert np.max(np.abs(delta)) <= 4.0 * sigma + 1e-9
        assert 0.5 * sigma < np.sqrt(np.mean(delta**2)) < 1.5 * sigma
    again = perturb_configurations(base, 5, displacement_A=(lo, hi), strain=strain, seed=3)
    assert all(np.allclose(a.positions, b.positions) for a, b in zip(out, again, strict=True))
    assert not np.allclose(out[0].positions, base[0].positions)


def test_perturbation_of_molecule_keeps_no_cell() -> None:
    water = molecule("H2O")
    (new,) = perturb_configurations([water], 1, seed=0)
    assert new.cell.rank == 0 and len(new) == 3
    with pytest.raises(ValueError):
        perturb_configurations([water], 1, displacement_A=(0.1, 0.05))


def test_labelling_stores_reference_keys() -> None:
    configs = perturb_configurations([smoke_box()], 3, seed=1)
    seen = []
    labelled = label_configurations(
        configs,
        LennardJones(sigma=0.86, epsilon=0.05, rc=3.0, smooth=True),
        progress=lambda i, n: seen.append(i),
    )
    assert len(labelled) == 3 and labelled.n_skipped == 0
    assert seen == [1, 2, 3]
    for atoms in labelled:
        assert math.isfinite(atoms.info[ENERGY_KEY])
        assert atoms.arrays[FORCES_KEY].shape == (len(atoms), 3)
        assert np.asarray(atoms.info[STRESS_KEY]).shape == (6,)
        assert atoms.calc is None
    assert ENERGY_KEY not in configs[0].info  # inputs untouched


def test_labelling_skips_nan_and_huge_forces() -> None:
    configs = perturb_configurations([molecule("H2O")], 3, seed=0)  # distinct, so each is recomputed
    labelled = label_configurations(configs, NaNOnSecond())
    assert len(labelled) == 2 and labelled.n_skipped == 1
    assert labelled.skipped[0][0] == 1 and "non-finite" in labelled.skipped[0][1]

    close = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.3]])
    ok = Atoms("H2", positions=[[0, 0, 0], [0, 0, 1.0]])
    lj = LennardJones(sigma=0.86, epsilon=0.05, rc=3.0)
    result = label_configurations([close, ok], lj, max_force_eV_per_A=50.0)
    assert len(result) == 1 and result.skipped[0][0] == 0 and "|F|" in result.skipped[0][1]
    with pytest.raises(ValueError, match="rejected"):
        label_configurations([close], lj)


def test_settings_and_command_flags(tmp_path: Path) -> None:
    settings = TrainingSettings(max_num_epochs=10, E0s={"Na": -1.5, "8": -2.0})
    assert settings.effective_start_swa == 7 and settings.runs_stage_two
    cmd = build_train_command(settings, "t.xyz", "v.xyz", str(tmp_path))
    assert Path(cmd[0]).name == "mace_run_train"
    for flag in ("--swa", "--start_swa=7", "--energy_key=REF_energy", "--forces_key=REF_forces"):
        assert flag in cmd
    assert "--radial_MLP=[32,32,32]" in cmd and "--num_channels=16" in cmd and "--max_L=1" in cmd
    assert "--E0s={8: -2.0, 11: -1.5}" in cmd
    assert not TrainingSettings(max_num_epochs=5, start_swa=5).runs_stage_two
    with pytest.raises(ValueError):
        TrainingSettings(valid_fraction=0.0)
    with pytest.raises(ValueError):
        TrainingSettings(E0s="guess")
    train_idx, valid_idx = split_train_valid(20, 0.1, seed=0)
    assert len(valid_idx) == 2 and len(train_idx) == 18 and not set(train_idx) & set(valid_idx)


def test_foundation_command_uses_foundation_architecture(tmp_path: Path) -> None:
    fake = tmp_path / "found.model"
    fake.write_bytes(b"x")
    cmd = build_train_command(TrainingSettings(foundation_model=str(fake)), "t", "v", str(tmp_path))
    assert f"--foundation_model={fake}" in cmd and "--multiheads_finetuning=False" in cmd
    assert not any(a.startswith(("--num_channels", "--r_max", "--max_L")) for a in cmd)
    from electrodb.models.files import ModelError

    with pytest.raises(ModelError, match="place the file"):
        build_train_command(
            TrainingSettings(foundation_model="mace-mp-0:small", foundation_cache_dir=str(tmp_path)),
            "t",
            "v",
            str(tmp_path),
        )


def test_failed_run_reports_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = "import sys; print('line one'); print('something broke: bad flag'); sys.exit(3)"
    monkeypatch.setattr(mace_command, "mace_run_train_executable", lambda: [sys.executable, "-c", script])
    configs = label_configurations(
        perturb_configurations([smoke_box()], 3, seed=0), LennardJones(sigma=0.86, epsilon=0.05, rc=3.0)
    )
    with pytest.raises(TrainingError, match="code 3") as err:
        train_mace(configs, TrainingSettings(), tmp_path)
    assert "something broke: bad flag" in str(err.value)
    assert (tmp_path / "mace_run_train.log").is_file()


def test_train_mace_result(smoke_model: TrainingResult) -> None:
    path = Path(smoke_model.model_path)
    assert path.name == "smoke_mace_stagetwo.model" and smoke_model.stage_two
    assert smoke_model.model_id == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert smoke_model.n_train >= 10 and smoke_model.n_valid >= 2
    assert smoke_model.elements == ["H", "O", "Na", "Cl"] and smoke_model.r_max == pytest.approx(3.5)
    for value in (
        smoke_model.rmse_energy_meV_per_atom,
        smoke_model.rmse_forces_eV_per_A,
        smoke_model.mae_forces,
    ):
        assert value is not None and math.isfinite(value) and value >= 0
    assert smoke_model.mae_forces <= smoke_model.rmse_forces_eV_per_A
    assert smoke_model.mace_version and smoke_model.wall_time_s > 0
    assert Path(smoke_model.command[0]).name == "mace_run_train"
    saved = json.loads((Path(smoke_model.workdir) / "training_result.json").read_text())
    assert saved["model_id"] == smoke_model.model_id
    assert "Stage Two" in Path(smoke_model.log_path).read_text()


def test_held_out_errors_are_recomputed(smoke_model: TrainingResult) -> None:
    from ase.io import read

    valid = read(Path(smoke_model.workdir) / "valid.xyz", ":")
    assert len(valid) == smoke_model.n_valid
    errors = evaluate_model(smoke_model.model_path, valid)
    assert errors["rmse_forces_eV_per_A"] == pytest.approx(smoke_model.rmse_forces_eV_per_A, rel=1e-6)
    assert errors["rmse_energy_meV_per_atom"] == pytest.approx(smoke_model.rmse_energy_meV_per_atom, rel=1e-6)


def test_smoke_model_is_reused(smoke_model: TrainingResult) -> None:
    again = train_smoke_model(Path(smoke_model.workdir))
    assert again == smoke_model


@pytest.mark.slow
def test_fine_tune_from_foundation_file(smoke_model: TrainingResult, tmp_path: Path) -> None:
    from ase.io import read

    configs = read(Path(smoke_model.workdir) / "train.xyz", ":") + read(Path(smoke_model.workdir) / "valid.xyz", ":")
    settings = TrainingSettings(
        foundation_model=smoke_model.model_path, max_num_epochs=2, start_swa=1, lr=0.001, valid_fraction=0.2
    )
    result = train_mace(configs, settings, tmp_path)
    assert "--foundation_model=" + smoke_model.model_path in result.command
    assert result.r_max == pytest.approx(smoke_model.r_max)  # architecture taken from the foundation model
    assert result.rmse_forces_eV_per_A is not None and math.isfinite(result.rmse_forces_eV_per_A)
