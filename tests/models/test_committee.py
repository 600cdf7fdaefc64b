"""Committees of MACE members: splits, training, evaluation through the safe loader, refusal of mismatched members."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from electrodb.models.committee import (
    CommitteeSettings,
    CommitteeTraining,
    check_members,
    committee_splits,
    decode_extxyz,
    encode_extxyz,
    evaluate_members,
    train_committee,
)
from electrodb.models.files import ModelError
from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY
from electrodb.models.loaded import ModelIdentity
from electrodb.models.mace_command import TrainingError
from electrodb.models.mace_train import TrainingResult
from tests.committee_factory import smoke_committee_settings, smoke_configurations, smoke_labels
from tests.model_factory import build_random_mace


def _identity(i: int, elements: list[str], r_max: float | None) -> ModelIdentity:
    return ModelIdentity(model_id=f"sha256:{i:064d}", kind="mace_file", name=f"m{i}", elements=elements, r_max=r_max)


def test_settings_seeds_default_and_checks() -> None:
    settings = CommitteeSettings(k=3)
    assert settings.member_seeds() == [settings.training.seed + i for i in range(3)]
    assert CommitteeSettings(k=2, seeds=[5, 9]).member_seeds() == [5, 9]
    with pytest.raises(ValidationError, match="one seed per member"):
        CommitteeSettings(k=3, seeds=[1, 2])
    with pytest.raises(ValidationError, match="must differ"):
        CommitteeSettings(k=2, seeds=[1, 1])
    with pytest.raises(ValidationError):
        CommitteeSettings(k=1)


@pytest.mark.parametrize("split", ["rotate", "bootstrap"])
def test_splits_hold_calibration_out_of_every_member(split: str) -> None:
    settings = CommitteeSettings(k=4, split=split, calibration_fraction=0.1)
    splits = committee_splits(40, settings)
    cal = set(splits.calibration)
    assert len(cal) == 5  # 10 % of 40 is 4, below min_calibration
    assert len(committee_splits(200, settings).calibration) == 20
    assert len(splits.train) == len(splits.valid) == 4
    for train, valid in zip(splits.train, splits.valid, strict=True):
        assert not cal & set(train) and not cal & set(valid)
        assert not set(train) & set(valid)
        assert len(train) + len(valid) == 40 - len(cal)  # what train_mace's own split expects
    valids = [tuple(v) for v in splits.valid]
    assert len(set(valids)) == 4  # every member validates on different configurations
    if split == "rotate":
        for train, valid in zip(splits.train, splits.valid, strict=True):
            assert sorted(train + valid) == sorted(set(range(40)) - cal)  # everything used, nothing twice
    else:
        assert any(len(set(t)) < len(t) for t in splits.train)  # drawn with replacement
    assert committee_splits(40, settings) == splits  # deterministic


def test_splits_keep_given_calibration_and_refuse_too_little_data() -> None:
    settings = CommitteeSettings(k=2)
    assert committee_splits(10, settings, calibration=[0, 9]).calibration == [0, 9]
    with pytest.raises(ValueError, match="at least 2"):
        committee_splits(3, settings, calibration=[0, 1])
    with pytest.raises(ValueError, match="0..9"):
        committee_splits(10, settings, calibration=[12])


def test_extxyz_round_trip_keeps_labels() -> None:
    configs = smoke_labels(2)
    back = decode_extxyz(encode_extxyz(configs))
    assert len(back) == 2
    assert back[1].info[ENERGY_KEY] == pytest.approx(configs[1].info[ENERGY_KEY])
    np.testing.assert_allclose(back[0].arrays[FORCES_KEY], configs[0].arrays[FORCES_KEY], atol=1e-6)  # extxyz digits
    assert decode_extxyz("") == []


def test_check_members_names_the_member_that_differs() -> None:
    elements, r_max = check_members([_identity(0, ["H", "O"], 4.0), _identity(1, ["O", "H"], 4.0)])
    assert set(elements) == {"H", "O"} and r_max == 4.0
    with pytest.raises(ModelError, match=r"member 1 .* supports elements H, O, Na but member 0") as info:
        check_members([_identity(0, ["H", "O"], 4.0), _identity(1, ["H", "O", "Na"], 4.0)])
    assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match=r"member 2 .* cutoff r_max 5.0 Å but member 0 .* 4.0 Å"):
        check_members([_identity(0, ["H"], 4.0), _identity(1, ["H"], 4.0), _identity(2, ["H"], 5.0)])
    with pytest.raises(ModelError, match="at least one member"):
        check_members([])


def test_committee_members_differ_and_evaluate(smoke_committee: CommitteeTraining) -> None:
    assert smoke_committee.k == 2
    assert len(set(smoke_committee.model_ids)) == 2
    assert set(smoke_committee.elements) == {"H", "O", "Na", "Cl"} and smoke_committee.r_max == pytest.approx(3.5)
    for member, valid in zip(smoke_committee.members, smoke_committee.splits.valid, strict=True):
        assert member.n_valid == len(valid) and math.isfinite(member.rmse_forces_eV_per_A)
    assert len(smoke_committee.configurations()) == smoke_committee.n_configurations
    assert len(smoke_committee.calibration_configurations()) == len(smoke_committee.splits.calibration)

    frames = smoke_configurations(3, seed=5)
    energies, forces = evaluate_members(smoke_committee.model_paths, frames, expected_ids=smoke_committee.model_ids)
    assert energies.shape == (2, 3) and forces.shape == (2, 3, 14, 3)
    assert energies.dtype == np.float64 and np.all(np.isfinite(forces))
    assert not np.allclose(forces[0], forces[1])  # different members disagree somewhat
    again, _ = evaluate_members(smoke_committee.model_paths[:1], frames)
    np.testing.assert_allclose(again[0], energies[0])


def test_evaluate_refuses_mismatched_members_and_bad_frames(smoke_committee: CommitteeTraining, tmp_path: Path) -> None:
    other = build_random_mace(tmp_path / "wide.model", r_max=4.0)  # H, Li, O, Na, Cl at 4 Å
    with pytest.raises(ModelError, match="member 1 .* supports elements"):
        evaluate_members([smoke_committee.model_paths[0], other], smoke_configurations(1))
    with pytest.raises(ModelError, match="sha256"):
        evaluate_members(smoke_committee.model_paths, smoke_configurations(1), expected_ids=["sha256:" + "0" * 64] * 2)
    with pytest.raises(ModelError, match="one per member"):
        evaluate_members(smoke_committee.model_paths, smoke_configurations(1), expected_ids=["x"])
    small = smoke_configurations(1)[0][:5]
    with pytest.raises(ModelError, match="different numbers of atoms"):
        evaluate_members(smoke_committee.model_paths, [smoke_configurations(1)[0], small])
    with pytest.raises(ModelError, match="Li"):
        lithium = smoke_configurations(1)[0]
        lithium.symbols[12] = "Li"
        evaluate_members(smoke_committee.model_paths, [lithium])


def test_diverging_member_is_a_training_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake_train(configurations, settings, workdir, progress=None):
        return TrainingResult(
            model_path=str(tmp_path / "x.model"), model_id="sha256:" + "1" * 64, n_train=1, n_valid=1,
            rmse_forces_eV_per_A=float("nan"), rmse_energy_meV_per_atom=1.0,
        )  # fmt: skip

    monkeypatch.setattr("electrodb.models.committee.train_mace", fake_train)
    with pytest.raises(TrainingError, match="member 0 .* diverged") as info:
        train_committee(smoke_labels(8), smoke_committee_settings(), tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="one per member"):
        train_committee(smoke_labels(8), smoke_committee_settings(), tmp_path, foundation_paths=["a"])


def test_failed_member_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def failing(configurations, settings, workdir, progress=None):
        raise TrainingError("mace_run_train exited with code 1 (log: x); last lines:\nboom")

    monkeypatch.setattr("electrodb.models.committee.train_mace", failing)
    with pytest.raises(TrainingError, match=r"^committee member 0 \(seed 0\) failed to train: mace_run_train exited"):
        train_committee(smoke_labels(8), smoke_committee_settings(), tmp_path)
