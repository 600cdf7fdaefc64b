"""Refine rounds: flagged frames selected from audits, labelled by a teacher, members fine-tuned, child registered."""

from __future__ import annotations

import math

import pytest
from ase.calculators.calculator import Calculator, all_changes

from electrodb.documents.committee import CommitteeDocument
from electrodb.flows.committee import resolve_committee, store_committee
from electrodb.flows.refine import (
    NothingFlaggedError,
    RefineError,
    RefineSettings,
    label_flagged,
    refine_committee,
)
from electrodb.flows.refine_select import select_flagged
from electrodb.models.committee import CommitteeTraining
from electrodb.models.mace_command import TrainingError
from tests.committee_factory import audit_displaced_boxes, lj_teacher, smoke_configurations, store_audit, store_frames
from tests.flows.conftest import AUDITED_FRAMES


class FailsOnSome(Calculator):
    """The Lennard-Jones teacher, failing on every configuration whose first x coordinate is below ``cut``."""

    implemented_properties = ("energy", "forces")

    def __init__(self, cut: float) -> None:
        super().__init__()
        self.cut = cut
        self.lj = lj_teacher()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        if self.atoms.positions[0, 0] < self.cut:
            raise RuntimeError("SCF did not converge")
        work = self.atoms.copy()
        work.calc = self.lj
        self.results = {"energy": work.get_potential_energy(), "forces": work.get_forces()}


def test_selection_keeps_flagged_distinct_frames(stores, audited: CommitteeDocument) -> None:
    selection = select_flagged(stores, audited, 4, min_distance_fraction=0.0)
    assert selection.n_audits == 1 and selection.n_audited_frames == AUDITED_FRAMES
    assert selection.n_flagged <= AUDITED_FRAMES // 2 and selection.n_selected == min(4, selection.n_flagged)
    assert all(f.frame >= AUDITED_FRAMES // 2 for f in selection.frames)  # only flagged frames
    scores = [f.sigma_F_max for f in selection.frames]
    assert scores[0] == max(scores)  # the most uncertain first
    configs = selection.configurations()
    assert len(configs) == selection.n_selected and len(configs[0]) == 14
    assert len(select_flagged(stores, audited, 4, min_distance_fraction=1e9).frames) == 1  # everything else a duplicate


def test_teacher_failures_are_skipped_with_reasons_or_refused(stores, audited: CommitteeDocument) -> None:
    selection = select_flagged(stores, audited, 6, min_distance_fraction=0.0)
    xs = sorted(a.positions[0, 0] for a in selection.configurations())
    some = label_flagged(selection, FailsOnSome(cut=xs[1] + 1e-9), {"name": "flaky"})
    assert some.n_labelled + len(some.skipped) == selection.n_selected and some.n_labelled >= 1
    failed = [s for s in some.skipped if "SCF did not converge" in s["reason"]]
    assert len(failed) >= 1 and failed[0]["trajectory_id"] == "traj-smoke"
    assert {s["frame"] for s in some.skipped} <= {f.frame for f in selection.frames}
    with pytest.raises(RefineError, match=r"^the teacher labelled none of the \d+ selected configurations: .*SCF"):
        label_flagged(selection, FailsOnSome(cut=1e9))


def test_no_audits_or_nothing_flagged_stops_before_training(
    stores, smoke_committee: CommitteeTraining, monkeypatch: pytest.MonkeyPatch
) -> None:
    committee = store_committee(stores, smoke_committee, "smoke")
    monkeypatch.setattr("electrodb.flows.refine.train_committee", pytest.fail)
    with pytest.raises(RefineError, match="has no audits; audit its trajectories first: electrodb model audit"):
        refine_committee(stores, "smoke", lj_teacher())
    tid = store_frames(stores, smoke_configurations(3), committee.driver_id)
    store_audit(stores, committee, tid, [0.0, 0.0, 0.0])
    with pytest.raises(NothingFlaggedError, match="none of the 3 frames audited in 1 trajectory exceeds"):
        refine_committee(stores, "smoke", lj_teacher())
    with pytest.raises(Exception, match="no committee 'other'"):
        refine_committee(stores, "other", lj_teacher())
    assert resolve_committee(stores, "smoke").committee_id == committee.committee_id


def test_diverging_fine_tune_keeps_the_parent_current(
    stores, audited: CommitteeDocument, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    def diverging(*args, **kwargs):
        raise TrainingError("committee member 0 (seed 0) diverged: held-out force RMSE nan eV/Å")

    monkeypatch.setattr("electrodb.flows.refine.train_committee", diverging)
    with pytest.raises(TrainingError, match="diverged"):
        refine_committee(stores, "smoke", lj_teacher(), RefineSettings(n_select=4), tmp_path)
    assert stores.committees.count({}) == 1
    assert resolve_committee(stores, "smoke").committee_id == audited.committee_id


def test_one_refine_round_registers_a_child_with_before_and_after(stores, audited: CommitteeDocument, tmp_path) -> None:
    lines: list[str] = []
    settings = RefineSettings(n_select=8, min_distance_fraction=0.0, epochs=2, lr=0.005)
    child = refine_committee(
        stores, "smoke", lj_teacher(), settings, tmp_path, teacher={"name": "lj"}, log=lines.append
    )
    assert child.name == "smoke-r1" and child.refine_round == 1 and child.parent_id == audited.committee_id
    assert child.driver == audited.driver and child.k == 2
    assert set(child.member_ids).isdisjoint(audited.member_ids)
    record = child.refine
    assert record["n_labelled"] == record["n_added"] + record["n_new_test"] and record["n_new_test"] >= 1
    assert child.added_configurations == record["n_added"]
    for when in ("before", "after"):
        for test_set in ("old_test", "new_flagged"):
            assert math.isfinite(record[when][test_set]["rmse_forces_eV_per_A"])
    assert record["n_old_test"] == len(audited.training["splits"]["calibration"])
    assert record["teacher"] == {"name": "lj"} and record["selection"]["n_selected"] == record["n_labelled"] + len(
        record["skipped"]
    )
    n_old = audited.training["n_configurations"]
    assert child.training["n_configurations"] == n_old + record["n_labelled"]
    held = set(child.training["splits"]["calibration"])  # old test set and newly flagged test set held out
    assert (
        set(audited.training["splits"]["calibration"]) <= held
        and len(held) == record["n_old_test"] + record["n_new_test"]
    )
    assert all(not held & set(train) for train in child.training["splits"]["train"])
    assert child.training["foundation_paths"] and len(child.training["foundation_paths"]) == 2
    parent = resolve_committee(stores, audited.committee_id)
    assert parent.superseded_by == child.committee_id
    assert resolve_committee(stores, "smoke").committee_id == child.committee_id
    assert any("fine-tuning 2 members" in line for line in lines)


@pytest.mark.slow
def test_a_refine_round_lowers_the_held_out_errors(stores, smoke_committee: CommitteeTraining, tmp_path) -> None:
    """16 flagged configurations of 32 frames, 40 fine-tuning epochs (~25 s on 2 cores): the driver's force error
    falls on the newly flagged test configurations (measured 2.68 → 2.46 eV/Å) and on the old test set (0.44 →
    0.32 eV/Å; the tiny parent trained only 2 epochs)."""
    parent = store_committee(stores, smoke_committee, "smoke")
    audit_displaced_boxes(stores, parent, smoke_committee, n_frames=32)
    settings = RefineSettings(n_select=16, min_distance_fraction=0.0, epochs=40, lr=0.01)
    record = refine_committee(stores, "smoke", lj_teacher(), settings, tmp_path).refine
    assert record["n_new_test"] >= 3
    for test_set in ("old_test", "new_flagged"):
        before, after = (record[w][test_set]["rmse_forces_eV_per_A"] for w in ("before", "after"))
        assert after < before, (test_set, before, after)
