"""The refine round as a jobflow Flow: job routing, a labelling Maker as teacher, nothing flagged, the full round."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from jobflow import Maker, job, run_locally

from electrodb.documents.committee import CommitteeDocument
from electrodb.flows.committee import resolve_committee, store_committee
from electrodb.flows.refine import RefineSettings
from electrodb.flows.refine_flow import RefineMaker, labels_from_output
from electrodb.managers.stages import stage_kind
from electrodb.models.committee import CommitteeTraining
from tests.committee_factory import lj_teacher, reversed_committee, smoke_configurations, store_audit, store_frames


@dataclass
class LJStaticMaker(Maker):
    """A stand-in for atomate2's static makers: a pymatgen Structure in, ``output.energy`` / ``output.forces`` out
    (Lennard-Jones); fails on structures whose first site has x below ``fail_below`` (Å)."""

    name: str = "static lj"
    fail_below: float = -1e9

    @job
    def make(self, structure):
        from pymatgen.io.ase import AseAtomsAdaptor

        atoms = AseAtomsAdaptor.get_atoms(structure)
        if atoms.positions[0, 0] < self.fail_below:
            raise RuntimeError("SCF did not converge")
        atoms.calc = lj_teacher()
        return {"output": {"energy": float(atoms.get_potential_energy()), "forces": atoms.get_forces().tolist()}}


def test_jobs_are_named_for_their_workers() -> None:
    flow = RefineMaker().make("smoke")
    kinds = {j.name: stage_kind(j) for j in flow.jobs}
    assert kinds == {
        "select flagged smoke": "cpu",
        "label flagged smoke": "cpu",
        "train refined smoke": "gpu",
        "register refined smoke": "cpu",
    }


def test_the_flow_converts_to_a_fireworks_workflow() -> None:
    """Every job input (settings, the labelling Maker) serialises, as FireWorks and jobflow-remote need."""
    from jobflow.managers.fireworks import flow_to_workflow

    workflow = flow_to_workflow(RefineMaker(teacher_maker=LJStaticMaker()).make("smoke"))
    assert sorted(fw.name for fw in workflow.fws) == [
        "label flagged smoke",
        "register refined smoke",
        "select flagged smoke",
        "train refined smoke",
    ]
    assert workflow.to_dict()  # JSON-ready


def test_labels_from_task_documents() -> None:
    forces = np.ones((2, 3))
    assert labels_from_output({"output": {"energy": -1.0, "forces": forces.tolist()}}, 2)[0] == -1.0
    assert labels_from_output({"energy": 2.0, "forces": forces}, 2)[1].shape == (2, 3)
    for bad, why in [
        (None, "failed"),
        ({"output": {"energy": 1.0}}, "no energy and forces"),
        ({"energy": 1.0, "forces": [[0, 0, 0]]}, r"shape \(1, 3\), expected \(2, 3\)"),
        ({"energy": float("nan"), "forces": forces}, "non-finite"),
        ("text", "not a task document"),
    ]:
        with pytest.raises(ValueError, match=why):
            labels_from_output(bad, 2)


def test_nothing_flagged_stops_the_flow_without_training(stores, smoke_committee: CommitteeTraining) -> None:
    committee = store_committee(stores, smoke_committee, "smoke")
    tid = store_frames(stores, smoke_configurations(3), committee.driver_id)
    store_audit(stores, committee, tid, [0.0, 0.0, 0.0])
    flow = RefineMaker(teacher_maker=LJStaticMaker()).make("smoke")
    responses = run_locally(flow, store=stores.job_store(), create_folders=False, log=False)
    select = next(j for j in flow.jobs if j.name.startswith("select"))
    assert "nothing to refine" in responses[select.uuid][1].output["nothing_flagged"]
    assert len(responses) == 1  # label, train and register were skipped
    assert stores.committees.count({}) == 1 and resolve_committee(stores, "smoke").superseded_by is None


def _run_refine_flow(stores, tmp_path) -> tuple[CommitteeDocument, dict]:
    """Run RefineMaker on ``smoke`` with the Lennard-Jones labelling Maker (failing on at most one configuration)."""
    selection_x = sorted(a.positions[0, 0] for a in smoke_configurations(12, seed=11, displacement_A=(0.08, 0.14)))
    maker = RefineMaker(
        settings=RefineSettings(n_select=6, min_distance_fraction=0.0, epochs=2, lr=0.005),
        teacher_maker=LJStaticMaker(fail_below=selection_x[0] + 1e-6),
        workdir=str(tmp_path / "refine"),
    )
    flow = maker.make("smoke")
    responses = run_locally(flow, store=stores.job_store(), create_folders=False, log=False, ensure_success=True)
    register = next(j for j in flow.jobs if j.name.startswith("register"))
    return resolve_committee(stores, "smoke"), responses[register.uuid][1].output


def _check_child(stores, parent: CommitteeDocument, child: CommitteeDocument, out: dict) -> None:
    assert out["committee_id"] == child.committee_id and child.name == "smoke-r1"
    assert child.parent_id == parent.committee_id and child.refine_round == 1
    assert child.refine["teacher"] == {"maker": "LJStaticMaker", "name": "static lj"}
    assert child.refine["n_labelled"] + len(child.refine["skipped"]) == 6
    assert np.isfinite(child.refine["after"]["old_test"]["rmse_forces_eV_per_A"])
    assert resolve_committee(stores, parent.committee_id).superseded_by == child.committee_id


def test_refine_flow_passes_every_result_through_the_job_store(
    stores, audited: CommitteeDocument, smoke_committee: CommitteeTraining, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole flow with the fine-tuning replaced by the session committee's members in reverse order."""
    seen = {}

    def fine_tune(configurations, settings, workdir, *, foundation_paths, calibration, progress):
        seen.update(n=len(configurations), foundations=len(foundation_paths), calibration=list(calibration))
        return reversed_committee(smoke_committee, configurations, settings, foundation_paths, calibration)

    monkeypatch.setattr("electrodb.flows.refine.train_committee", fine_tune)
    child, out = _run_refine_flow(stores, tmp_path)
    _check_child(stores, audited, child, out)
    assert seen["foundations"] == 2 and seen["n"] == smoke_committee.n_configurations + child.refine["n_labelled"]
    assert child.member_ids == list(reversed(audited.member_ids))


@pytest.mark.slow
def test_refine_flow_fine_tunes_for_real(stores, audited: CommitteeDocument, tmp_path) -> None:
    child, out = _run_refine_flow(stores, tmp_path)
    _check_child(stores, audited, child, out)
    assert set(child.member_ids).isdisjoint(audited.member_ids)
