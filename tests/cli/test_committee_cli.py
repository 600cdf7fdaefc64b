"""``electrodb model committee``, ``model refine`` and the committees of ``model list``: output and one-line errors.

The training itself is the session's tiny committee (:func:`tests.committee_factory.train_smoke_committee`), put in
place of ``train_committee``; the flows tests train and fine-tune for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ase.io import write
from typer.testing import CliRunner

from electrodb.cli.main import app
from electrodb.flows.committee import resolve_committee, store_committee
from electrodb.models.committee import CommitteeTraining
from electrodb.models.mace_command import TrainingError
from tests.committee_factory import (
    audit_displaced_boxes,
    lj_teacher,
    reversed_committee,
    smoke_configurations,
    smoke_labels,
    store_audit,
    store_frames,
    train_smoke_committee,
)

runner = CliRunner()
WIDE = {"COLUMNS": "220"}


@pytest.fixture(scope="module")
def smoke_committee(tmp_path_factory: pytest.TempPathFactory) -> CommitteeTraining:
    """The session's tiny committee (trained once; the same folder as the models and flows tests use)."""
    return train_smoke_committee(tmp_path_factory.getbasetemp() / "smoke_committee")


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    path = tmp_path / "labelled.xyz"
    write(path, smoke_labels(16), format="extxyz")
    return path


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_committee_trains_registers_and_lists(
    settings, labelled: Path, smoke_committee: CommitteeTraining, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {}

    def trained(configurations, committee_settings, workdir, progress=None):
        seen.update(n=len(configurations), settings=committee_settings)
        return smoke_committee

    monkeypatch.setattr("electrodb.models.committee.train_committee", trained)
    args = ["model", "committee", "--data", str(labelled), "--k", "2", "--name", "cli", "--epochs", "3"]
    result = runner.invoke(app, [*args, "--driver", "mean", "--split", "bootstrap"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert seen["n"] == 16 and seen["settings"].k == 2 and seen["settings"].split == "bootstrap"
    assert seen["settings"].training.max_num_epochs == 3
    assert "committee committee:" in result.output and "σ_F threshold" in result.output
    assert "Spearman" in result.output and "held-out force RMSE" in result.output
    listed = runner.invoke(app, ["model", "list"], env=WIDE)
    assert listed.exit_code == 0 and "cli-m0" in listed.output and "current" in listed.output
    assert "mean" in listed.output and "σ_F threshold" in listed.output


def test_committee_bad_input_is_one_line(
    settings, labelled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ["model", "committee", "--data"]
    _one_line_error(runner.invoke(app, [*base, str(tmp_path / "none.xyz")], env=WIDE), "does not exist")
    unlabelled = tmp_path / "raw.xyz"
    write(unlabelled, smoke_configurations(2), format="extxyz")
    _one_line_error(runner.invoke(app, [*base, str(unlabelled)], env=WIDE), "no REF_energy/REF_forces labels")
    _one_line_error(runner.invoke(app, [*base, str(labelled), "--k", "1"], env=WIDE), "--k:")
    _one_line_error(runner.invoke(app, [*base, str(labelled), "--driver", "7"], env=WIDE), "--driver", "0..3")
    _one_line_error(runner.invoke(app, [*base, str(labelled), "--split", "halves"], env=WIDE), "--split")

    def diverging(*args, **kwargs):
        raise TrainingError("committee member 1 (seed 124) diverged: held-out force RMSE nan eV/Å")

    monkeypatch.setattr("electrodb.models.committee.train_committee", diverging)
    _one_line_error(runner.invoke(app, [*base, str(labelled)], env=WIDE), "diverged", "nothing was registered")
    assert "committee" not in runner.invoke(app, ["model", "list"], env=WIDE).output.split("model id")[-1].lower()


def test_refine_prints_before_and_after(
    stores, smoke_committee: CommitteeTraining, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = store_committee(stores, smoke_committee, "smoke")
    audit_displaced_boxes(stores, parent, smoke_committee)

    def fine_tune(configurations, settings, workdir, *, foundation_paths, calibration, progress):
        return reversed_committee(smoke_committee, configurations, settings, foundation_paths, calibration)

    monkeypatch.setattr("electrodb.flows.refine.train_committee", fine_tune)
    monkeypatch.setattr("electrodb.cli.committee.load_teacher", lambda ref: (lj_teacher(), {"name": ref}))
    args = ["model", "refine", "--committee", "smoke", "--n-select", "4", "--teacher", "lj", "--epochs", "2"]
    result = runner.invoke(app, [*args, "--min-distance-fraction", "0"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "old test set" in result.output and "newly flagged" in result.output
    assert "refined committee committee:" in result.output and "smoke-r1" in result.output
    child = resolve_committee(stores, "smoke")
    assert child.name == "smoke-r1" and child.refine["teacher"] == {"name": "lj"}
    assert child.refine["settings"]["epochs"] == 2


def test_refine_bad_input_leaves_the_committee_current(
    stores, smoke_committee: CommitteeTraining, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("electrodb.cli.committee.load_teacher", lambda ref: (lj_teacher(), {"name": ref}))
    monkeypatch.setattr("electrodb.flows.refine.train_committee", pytest.fail)
    base = ["model", "refine", "--committee"]
    _one_line_error(runner.invoke(app, [*base, "nope"], env=WIDE), "no committee 'nope'", "none yet")
    parent = store_committee(stores, smoke_committee, "smoke")
    _one_line_error(runner.invoke(app, [*base, "smoke"], env=WIDE), "has no audits", "stays registered and current")
    tid = store_frames(stores, smoke_configurations(3), parent.driver_id)
    store_audit(stores, parent, tid, [0.0, 0.0, 0.0])
    calm = runner.invoke(app, [*base, "smoke"], env=WIDE)
    assert calm.exit_code == 0 and calm.output.startswith("nothing to refine: ") and calm.output.count("\n") == 1
    _one_line_error(runner.invoke(app, [*base, "smoke", "--test-fraction", "1.5"], env=WIDE), "--test-fraction")
    assert resolve_committee(stores, "smoke").committee_id == parent.committee_id
    assert stores.committees.count({}) == 1
