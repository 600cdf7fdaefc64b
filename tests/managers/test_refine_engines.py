"""A committee's refine round on the engines (issue 23, "Engines"): select, label and register on the CPU worker,
the fine-tuning on the GPU worker, through FireWorks and jobflow-remote as the campaign stages run.

The committee is the session's tiny one (:func:`tests.committee_factory.train_smoke_committee`, K = 2) with an
audited trajectory of displaced boxes; the teacher is the Lennard-Jones of its labels, given to the workers as
``python:tests.committee_factory:lj_teacher``, or :func:`failing_teacher`, which fails on every configuration.
FireWorks runs on a mongomock LaunchPad served to a cpu and a gpu worker process (as tests/managers/test_fireworks.py
does); jobflow-remote through its own JobController with workers that have only file stores (tests/managers/remote.py),
so everything a job reads must reach it as an input.

Worker processes import this module by its name (``tests.managers.test_refine_engines``) for the failing teacher:
keep its top-level imports light.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from ase.calculators.calculator import Calculator

from tests.managers.test_jobflow_remote import queue  # noqa: F401  (the fixture: a jobflow-remote project's queue)

pytestmark = pytest.mark.timeout(600)

LJ = "python:tests.committee_factory:lj_teacher"
FAILING = "python:tests.managers.test_refine_engines:failing_teacher"
#: Tiny rounds: 4 flagged configurations, every distinct frame kept, 2 fine-tuning epochs.
ROUND = {"n_select": 4, "min_distance_fraction": 0.0, "epochs": 2, "lr": 0.005}


class _FailingCalculator(Calculator):
    implemented_properties = ["energy", "forces"]  # noqa: RUF012  (ASE's own convention)

    def calculate(self, atoms=None, properties=None, system_changes=None):
        raise RuntimeError("SCF did not converge")


def failing_teacher() -> Calculator:
    """A teacher that fails on every configuration (a DFT code that never converges)."""
    return _FailingCalculator()


@pytest.fixture(scope="module")
def smoke_committee(tmp_path_factory: pytest.TempPathFactory):
    """The session's tiny committee (trained once; the folder the flows and CLI tests use too)."""
    from tests.committee_factory import train_smoke_committee

    return train_smoke_committee(tmp_path_factory.getbasetemp() / "smoke_committee")


@pytest.fixture
def audited(stores, smoke_committee):
    """The committee registered as ``smoke`` with an audited trajectory whose second half is flagged."""
    from electrodb.flows.committee import store_committee
    from tests.committee_factory import audit_displaced_boxes

    committee = store_committee(stores, smoke_committee, "smoke")
    audit_displaced_boxes(stores, committee, smoke_committee, 12)
    return committee


def _settings():
    from electrodb.flows.refine import RefineSettings

    return RefineSettings(**ROUND)


# ------------------------------------------------------------------------------------------------- no engine needed


def test_a_teacher_given_as_a_python_function_and_its_one_line_errors():
    from electrodb.flows.refine import RefineError
    from electrodb.flows.refine_flow import teacher_calculator

    calculator, identity = teacher_calculator(LJ)
    assert type(calculator).__name__ == "LennardJones"
    assert identity == {"name": LJ, "calculator": "LennardJones"}
    for bad, why in [
        ("python:tests.committee_factory", "expected python:package.module:function"),
        ("python:tests.no_such_module:f", "cannot be imported .*ModuleNotFoundError"),
        ("python:tests.committee_factory:no_such_function", "cannot be imported .*AttributeError"),
        ("python:tests.committee_factory:smoke_committee_settings", "not an ASE calculator"),
    ]:
        with pytest.raises(RefineError, match=why) as info:
            teacher_calculator(bad)
        assert "\n" not in str(info.value)


def test_refine_jobs_are_routed_like_the_campaign_stages_on_fireworks():
    """A refine flow keyed by a FlowKey converts like the systems' flows: train on the gpu worker, the rest on cpu."""
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    from electrodb.flows.refine_flow import RefineMaker
    from electrodb.managers.fireworks import workflow_for
    from electrodb.managers.stages import SYSTEM_KEY, FlowKey, SubmitOptions

    flow = RefineMaker(teacher=LJ).make("committee:0123456789abcdef")
    flow.update_metadata({SYSTEM_KEY: "refine:committee:0123456789abcdef:x"})
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    options = SubmitOptions(cpu_worker="pack-node", gpu_worker="a100", extra={"submission_id": "s1"})
    key = FlowKey(system_id="refine:committee:0123456789abcdef:x", campaign="refine smoke")
    workflow = workflow_for([(key, flow)], store, options, name="refine")
    routes = {fw.name.split()[0]: (fw.spec["_category"], fw.spec["_fworker"]) for fw in workflow.fws}
    assert routes == {
        "select": ("cpu", "pack-node"),
        "label": ("cpu", "pack-node"),
        "train": ("gpu", "a100"),
        "register": ("cpu", "pack-node"),
    }
    assert {fw.spec[SYSTEM_KEY] for fw in workflow.fws} == {key.system_id}
    assert {fw.spec["electrodb_submission"] for fw in workflow.fws} == {"s1"}


# ---------------------------------------------------------------------------------------------------- jobflow-remote


@pytest.fixture
def jfr(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """The jobflow-remote queue of tests/managers/test_jobflow_remote.py, accepting the embedded database as the
    project's JobStore (a real project refuses it), and its backend."""
    from electrodb.managers.jobflow_remote import JobflowRemoteBackend

    controller, _ = request.getfixturevalue("queue")
    monkeypatch.setattr(JobflowRemoteBackend, "_check_job_store", staticmethod(lambda job_store, project: None))
    return controller, JobflowRemoteBackend(job_controller=controller)


def _stages(docs: list[dict]) -> list[tuple[str, str, str]]:
    return [(d["job"]["name"].split()[0], d["worker"], d["exec_config"]) for d in docs]


def test_a_failing_teacher_stops_the_round_on_jobflow_remote_and_the_parent_stays_current(
    jfr, stores, audited, tmp_path
):
    from electrodb.flows.committee import resolve_committee
    from electrodb.managers.jobflow_remote_project import CPU_EXEC_CONFIG
    from electrodb.managers.refine_submit import submit_refine
    from electrodb.managers.stages import SubmitOptions
    from tests.managers.remote import run_queue

    controller, backend = jfr
    report = submit_refine(stores, "smoke", backend, SubmitOptions(), _settings(), teacher=FAILING, multi_node=False)
    assert report.submitted and report.inputs_published and report.committee_id == audited.committee_id
    with pytest.raises(AssertionError, match="label flagged"):  # run_queue stops at the first job that fails
        run_queue(controller, stores.job_store(), tmp_path / "run")
    docs = {d["job"]["name"].split()[0]: d for d in controller.jobs.find({})}
    assert (docs["select"]["state"], docs["label"]["state"]) == ("COMPLETED", "FAILED")
    assert _stages([docs["select"], docs["label"]]) == [
        ("select", "cpu", CPU_EXEC_CONFIG),
        ("label", "cpu", CPU_EXEC_CONFIG),
    ]
    assert "the teacher labelled none of the 4 selected configurations" in docs["label"]["error"]
    assert "SCF did not converge" in docs["label"]["error"]
    assert {docs["train"]["state"], docs["register"]["state"]} == {"WAITING"}
    assert backend.states([report.key]) == {report.key: "FAILED"}
    current = resolve_committee(stores, "smoke")
    assert current.committee_id == audited.committee_id and current.superseded_by is None
    assert stores.committees.count({}) == 1 and stores.models.count({}) == len(audited.member_ids)


def test_cli_submits_a_round_to_jobflow_remote_once_and_refuses_bad_input(jfr, stores, audited):
    from typer.testing import CliRunner

    from electrodb.cli.main import app
    from electrodb.managers.jobflow_remote_project import CPU_EXEC_CONFIG, GPU_EXEC_CONFIG

    controller, _ = jfr
    runner = CliRunner()
    base = ["model", "refine", "--committee", "smoke", "--teacher", LJ, "--n-select", "4", "--epochs", "2"]
    engine = ["--submit", "jobflow-remote", "--single-node"]
    first = runner.invoke(app, [*base, *engine], env={"COLUMNS": "250"})
    assert first.exit_code == 0, first.output
    assert first.output.startswith("submitted the refine round of committee 'smoke'"), first.output
    assert "select, label and register on worker 'cpu', fine-tuning on worker 'gpu'" in first.output
    jobs = controller.get_jobs({}, projection=["worker", "exec_config", "job.name", "job.metadata"])
    assert sorted(_stages(jobs)) == [
        ("label", "cpu", CPU_EXEC_CONFIG),
        ("register", "cpu", CPU_EXEC_CONFIG),
        ("select", "cpu", CPU_EXEC_CONFIG),
        ("train", "gpu", GPU_EXEC_CONFIG),
    ]
    key = jobs[0]["job"]["metadata"]["electrodb_system_id"]
    assert key.startswith(f"refine:{audited.committee_id}:") and key in first.output
    assert {d["job"]["metadata"]["electrodb_refine_committee"] for d in jobs} == {audited.committee_id}

    again = runner.invoke(app, [*base, *engine], env={"COLUMNS": "250"})
    assert again.exit_code == 0 and "already in jobflow-remote (WAITING); not submitted again" in again.output
    assert controller.jobs.count_documents({}) == 4

    def one_line_error(args, *fragments):
        result = runner.invoke(app, args, env={"COLUMNS": "250"})
        assert result.exit_code == 2 and result.output.startswith("error: "), result.output
        assert result.output.count("\n") == 1, result.output
        for fragment in fragments:
            assert fragment in result.output, result.output

    one_line_error([*base, "--submit", "slurm"], "unknown engine 'slurm'", "fireworks, jobflow-remote")
    one_line_error([*base, "--submit", "jobflow-remote"], "ELECTRODB_DB_URI", "nothing was submitted")
    one_line_error([*base, "--launchpad", "lp.yaml"], "add --submit fireworks")
    one_line_error([*base, *engine, "--launchpad", "lp.yaml"], "--launchpad is a FireWorks option")
    one_line_error([*base[:5], "python:oops", *base[6:], *engine], "expected python:package.module:function")
    one_line_error([*base[:3], "nope", *base[4:], *engine], "no committee 'nope'", "nothing was submitted")
    assert controller.jobs.count_documents({}) == 4


def test_a_refine_round_runs_on_a_jobflow_remote_queue_with_workers_that_have_no_database(
    jfr, settings, stores, audited, tmp_path
):
    """Submitted by the backend, run by jobflow-remote's JobController on workers with file stores only: the inputs
    travel as published outputs, the fine-tuned members as the train job's output; the child is registered."""
    import shutil

    from electrodb.flows.committee import resolve_committee
    from electrodb.managers.jobflow_remote_project import CPU_EXEC_CONFIG, GPU_EXEC_CONFIG
    from electrodb.managers.refine_submit import submit_refine
    from electrodb.managers.stages import SubmitOptions
    from tests.managers.remote import run_queue

    controller, backend = jfr
    report = submit_refine(stores, "smoke", backend, SubmitOptions(), _settings(), teacher=LJ, multi_node=False)
    assert report.submitted and report.inputs_published
    assert stores.jobs.count({"metadata.electrodb_refine_inputs": report.key}) == 1
    js = stores.job_store()
    first = run_queue(controller, js, tmp_path / "run", hold=lambda d: d["job"]["name"].startswith("register"))
    assert _stages(first) == [
        ("select", "cpu", CPU_EXEC_CONFIG),
        ("label", "cpu", CPU_EXEC_CONFIG),
        ("train", "gpu", GPU_EXEC_CONFIG),
    ]
    train_dir = tmp_path / "run" / f"job-{first[-1]['db_id']}"
    copied = json.loads((train_dir / "additional_store_committees.json").read_text() or "[]")
    assert copied == []  # the seeded parent was removed again: the runner copies no stale snapshot back
    assert resolve_committee(stores, "smoke").superseded_by is None  # nothing registered before the last job
    # the register worker has neither the fine-tuning folder nor any materialized member: the bytes travel
    shutil.rmtree(settings.data_dir / "work")
    shutil.rmtree(settings.data_dir / "models")

    (register,) = run_queue(controller, js, tmp_path / "run")
    assert _stages([register]) == [("register", "cpu", CPU_EXEC_CONFIG)]
    assert backend.states([report.key]) == {report.key: "COMPLETED"}
    child = resolve_committee(stores, "smoke")
    assert child.parent_id == audited.committee_id and child.name == "smoke-r1" and child.refine_round == 1
    assert resolve_committee(stores, audited.committee_id).superseded_by == child.committee_id
    assert set(child.member_ids).isdisjoint(audited.member_ids)
    assert child.refine["teacher"] == {"name": LJ, "calculator": "LennardJones"}
    assert child.refine["n_labelled"] + len(child.refine["skipped"]) == 4, child.refine
    for mid in child.member_ids:
        assert stores.models.count({"model_id": mid}) == 1
        assert stores.data.count({"blob_uuid": f"model:{mid}"}) == 1
    with pytest.raises(ValueError, match="has no audits"):  # the child is current now, and not audited yet
        submit_refine(stores, "smoke", backend, SubmitOptions(), _settings(), teacher=LJ, multi_node=False)


# --------------------------------------------------------------------------------------------------------- FireWorks

REFINE_HOST_SCRIPT = """
import json, os
from fireworks import LaunchPad
from electrodb.flows.refine import RefineSettings
from electrodb.managers.fireworks import FireWorksBackend
from electrodb.managers.refine_submit import submit_refine
from electrodb.managers.stages import SubmitOptions
from electrodb.store.stores import get_stores

lp = LaunchPad.from_file("launchpad.yaml")
lp.reset("", require_password=False)
settings = RefineSettings.model_validate_json(open("settings.json").read())
options = SubmitOptions(cpu_worker="cpu-node", gpu_worker="gpu-node")
"""

REFINE_RUN_SCRIPT = """
def submit(teacher):
    with get_stores() as stores:
        try:
            report = submit_refine(stores, "smoke", FireWorksBackend(lp), options, settings, teacher=teacher,
                                   multi_node=False)
        except ValueError as exc:
            return {"error": str(exc)}
    return vars(report)

def committees():
    with get_stores() as stores:
        keep = ("committee_id", "name", "parent_id", "superseded_by", "refine_round", "refine")
        return [{k: d.get(k) for k in keep} for d in stores.committees.query({})]

out = {}
LJ = json.loads(open("teachers.json").read())[-1][1]
for tag, teacher in json.loads(open("teachers.json").read()):
    report = submit(teacher)
    twice = submit(teacher)  # queued: not added again
    workers = start_workers()
    codes = [p.wait(timeout=400) for p in workers]
    with lock:
        fws = list(lp.fireworks.find({"spec.electrodb_system_id": report["key"]},
                                     {"_id": 0, "fw_id": 1, "name": 1, "state": 1, "spec._category": 1,
                                      "spec._fworker": 1}))
        ids = [f["fw_id"] for f in fws]
        launches = list(lp.launches.find({"fw_id": {"$in": ids}}, {"_id": 0, "fw_id": 1, "state": 1,
                                                                  "fworker.name": 1, "action.stored_data": 1}))
        state = FireWorksBackend(lp).states([report["key"]])
    out[tag] = {"report": report, "twice": twice, "codes": codes, "fireworks": fws, "launches": launches,
                "state": state, "committees": committees()}
out["after"] = submit(LJ)
print(json.dumps(out, default=str))
"""


@pytest.mark.slow
def test_refine_rounds_run_on_the_gpu_and_cpu_workers_of_a_fireworks_launchpad(tmp_path, settings, stores, audited):
    """A round whose teacher fails on everything fizzles at the label job on the cpu worker and leaves the parent
    current; then a round with the Lennard-Jones teacher selects, labels and registers on cpu-node and fine-tunes on
    gpu-node, and registers the child; submitting either again adds nothing."""
    import yaml

    from tests.managers.test_fireworks import LAUNCHPAD_YAML, SERVE_LAUNCHPAD, WORKER_SCRIPT, _env, _python

    (tmp_path / "launchpad.yaml").write_text(yaml.safe_dump(LAUNCHPAD_YAML))
    (tmp_path / "worker.py").write_text(textwrap.dedent(WORKER_SCRIPT))
    (tmp_path / "settings.json").write_text(_settings().model_dump_json())
    (tmp_path / "teachers.json").write_text(json.dumps([["failing", FAILING], ["lj", LJ]]))
    script = REFINE_HOST_SCRIPT + SERVE_LAUNCHPAD + REFINE_RUN_SCRIPT
    out = _python(script, tmp_path, _env(tmp_path, settings.data_dir), timeout=580)

    failed, done = out["failing"], out["lj"]
    for run in (failed, done):
        assert run["report"]["submitted"] and not run["report"]["inputs_published"]  # FireWorks workers reach the DB
        assert run["codes"] == [0, 0]
        worker_of = {lc["fw_id"]: lc["fworker"]["name"] for lc in run["launches"]}
        for fw in run["fireworks"]:
            expected = ("gpu", "gpu-node") if fw["name"].startswith("train") else ("cpu", "cpu-node")
            assert (fw["spec"]["_category"], fw["spec"]["_fworker"]) == expected, fw
            if fw["fw_id"] in worker_of:
                assert worker_of[fw["fw_id"]] == expected[1], fw  # ran on the worker it was routed to
        assert run["twice"]["key"] == run["report"]["key"]
        assert (run["twice"]["submitted"], run["twice"]["engine_state"]) == (False, "READY")  # never queued twice

    states = {fw["name"].split()[0]: fw["state"] for fw in failed["fireworks"]}
    assert states == {"select": "COMPLETED", "label": "FIZZLED", "train": "WAITING", "register": "WAITING"}
    (label,) = [lc for lc in failed["launches"] if lc["state"] == "FIZZLED"]
    error = json.dumps(label["action"]["stored_data"])
    assert "the teacher labelled none of the 4 selected configurations" in error and "SCF did not converge" in error
    assert failed["state"] == {failed["report"]["key"]: "FIZZLED"}
    assert done["report"]["key"] != failed["report"]["key"]  # another teacher: another round
    (parent,) = failed["committees"]  # no child; the parent stays current
    assert parent["committee_id"] == audited.committee_id and parent["superseded_by"] is None

    assert {fw["state"] for fw in done["fireworks"]} == {"COMPLETED"} and len(done["fireworks"]) == 4
    assert sorted(lc["fw_id"] for lc in done["launches"]) == sorted(fw["fw_id"] for fw in done["fireworks"])
    assert done["state"] == {done["report"]["key"]: "COMPLETED"}
    by_id = {c["committee_id"]: c for c in done["committees"]}
    child = next(c for c in by_id.values() if c["parent_id"] == audited.committee_id)
    assert child["name"] == "smoke-r1" and child["refine_round"] == 1 and child["superseded_by"] is None
    assert child["refine"]["teacher"]["name"] == LJ
    assert child["refine"]["n_labelled"] + len(child["refine"]["skipped"]) == 4  # LJ may refuse a close contact
    assert by_id[audited.committee_id]["superseded_by"] == child["committee_id"]
    assert "committee 'smoke-r1' has no audits" in out["after"]["error"]  # the lineage's current one: the child
