"""jobflow-remote without a server: generated projects validated by jobflow-remote's own models, routed chunked
idempotent submission into an in-memory queue, and a campaign flow whose jobs use only the JobStore handed to them
(run_locally on fresh MemoryStores, and job by job exactly as jobflow-remote's runner and worker move the data)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from jobflow import JobStore, run_locally
from maggma.stores import MemoryStore

from electrodb.flows.system import ElectrolyteFlowMaker
from electrodb.managers.jobflow_remote import JobflowRemoteBackend, system_state
from electrodb.managers.jobflow_remote_project import (
    CPU_EXEC_CONFIG,
    GPU_EXEC_CONFIG,
    GPU_PRE_RUN,
    JobflowRemoteConfigError,
    project_config,
    slurm_worker,
    validate_project_config,
    write_project_config,
)
from electrodb.managers.stages import SubmitOptions
from electrodb.settings import ElectroDBSettings
from electrodb.store.frames import load_trajectory
from electrodb.store.stores import BLOB_COLLECTION, JOB_COLLECTIONS, ElectroDBStores
from electrodb.systems.campaign import Campaign
from tests.campaigns import short_md
from tests.managers.remote import run_job_as_jobflow_remote

MONGO = ElectroDBSettings(db_uri="mongodb://db.example.org:27017", db_name="electrodb_test")
STORE_NAMES = {BLOB_COLLECTION, *JOB_COLLECTIONS}


def _workers(work_dir: str = "/scratch/u/electrodb") -> dict:
    return {
        "cpu_worker": slurm_worker("cpu", work_dir, host="login.example.org", partition="cpu"),
        "gpu_worker": slurm_worker(
            "gpu", work_dir, host="login.example.org", partition="gpu", python_env="/home/u/venv"
        ),
    }


def _memory_spec() -> dict:
    """A JobStore spec of in-memory stores with ElectroDB's layout (docs ``jobs`` + the additional stores)."""
    return {
        "docs_store": {"type": "MemoryStore", "collection_name": "jobs"},
        "additional_stores": {n: {"type": "MemoryStore", "collection_name": n} for n in sorted(STORE_NAMES)},
    }


def test_generated_project_validates_with_jobflow_remote_models(tmp_path):
    from jobflow_remote.config.base import RemoteWorker
    from maggma.stores import GridFSStore, MongoStore

    path = write_project_config(tmp_path / "electrodb.yaml", "electrodb", settings=MONGO, **_workers())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the database URI
    project = validate_project_config(path)
    assert project.name == "electrodb" and set(project.workers) == {"cpu", "gpu"}
    gpu, cpu = project.workers["gpu"], project.workers["cpu"]
    assert isinstance(gpu, RemoteWorker) and gpu.host == "login.example.org" and gpu.scheduler_type == "slurm"
    header = gpu.get_scheduler_io().generate_header(gpu.resources)
    assert "#SBATCH --gres=gpu:1" in header and "#SBATCH --ntasks=1" in header and "--partition=gpu" in header
    assert "gres" not in cpu.resources and "--gres" not in cpu.get_scheduler_io().generate_header(cpu.resources)
    assert gpu.pre_run == "source /home/u/venv/bin/activate"
    assert project.exec_config[CPU_EXEC_CONFIG].export["CUDA_VISIBLE_DEVICES"] == ""  # packing never takes a GPU
    assert project.exec_config[GPU_EXEC_CONFIG].pre_run == GPU_PRE_RUN
    # productions keep their working copy beside the job folders, which `jf job rerun` deletes (flows.resume)
    gpu_env = project.exec_config[GPU_EXEC_CONFIG].export
    assert gpu_env["ELECTRODB_RESUME_DIR"] == "/scratch/u/electrodb/electrodb-resume"
    # ... and the convergence checks (CPU jobs) of campaigns with until read that copy
    assert project.exec_config[CPU_EXEC_CONFIG].export["ELECTRODB_RESUME_DIR"] == gpu_env["ELECTRODB_RESUME_DIR"]
    # the JobStore jobflow-remote builds is ElectroDB's: same classes, databases and collections
    theirs, ours = project.get_jobstore(), ElectroDBStores(MONGO).job_store()
    assert set(theirs.additional_stores) == set(ours.additional_stores) == STORE_NAMES
    assert isinstance(theirs.docs_store, MongoStore) and isinstance(theirs.additional_stores["data"], GridFSStore)
    for mine, other in [(ours.docs_store, theirs.docs_store)] + [
        (ours.additional_stores[n], theirs.additional_stores[n]) for n in STORE_NAMES
    ]:
        assert (type(other), other.database, other.collection_name) == (
            type(mine),
            "electrodb_test",
            mine.collection_name,
        )
    assert theirs.additional_stores["data"].compression is True
    written = yaml.safe_load(path.read_text())["jobstore"]["additional_stores"]["data"]
    assert written["searchable_fields"] == ["trajectory_id", "kind", "blob_uuid", "job_uuid", "job_index"]  # once each
    assert written["uri"] == MONGO.db_uri and "host" not in written and "auth_source" not in written
    queue = project.get_queue_store()
    assert isinstance(queue, MongoStore) and (queue.database, queue.collection_name) == ("electrodb_test", "jf_jobs")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_project_config(path, "electrodb", settings=MONGO, **_workers())


@pytest.mark.parametrize(("assigned", "ok"), [("3", True), (None, False)])
def test_gpu_pre_run_keeps_the_schedulers_device_and_refuses_none(assigned, ok):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    if assigned is not None:
        env["CUDA_VISIBLE_DEVICES"] = assigned
    script = f'{GPU_PRE_RUN}\necho "after: ${{CUDA_VISIBLE_DEVICES:-unset}}"'
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=10)
    if ok:
        assert done.returncode == 0 and "after: 3" in done.stdout  # the scheduler's device, untouched
    else:
        assert done.returncode == 1 and "--gres=gpu:1" in done.stderr and "after" not in done.stdout


def test_bad_projects_are_refused_with_the_fix():
    embedded = ElectroDBSettings(data_dir="/tmp/never-created-electrodb")
    with pytest.raises(JobflowRemoteConfigError, match="ELECTRODB_DB_URI"):
        project_config("p", settings=embedded, **_workers())

    def broken(**changes) -> dict:
        config = project_config("p", settings=MONGO, **_workers())
        for dotted, value in changes.items():
            *parents, leaf = dotted.split("__")
            node = config
            for key in parents:
                node = node[key]
            node[leaf] = value
        return config

    with pytest.raises(JobflowRemoteConfigError, match=r"workers\.gpu\.remote\.work_dir: .*absolute"):
        validate_project_config(broken(workers__gpu__work_dir="relative/dir"))
    with pytest.raises(JobflowRemoteConfigError, match="requests no GPU; add resources gres: 'gpu:1'"):
        validate_project_config(broken(workers__gpu__resources={"nodes": 1, "time": "1:00:00"}))
    with pytest.raises(JobflowRemoteConfigError, match="worker 'cpu' resources: .*gpu_count"):
        validate_project_config(broken(workers__cpu__resources={"gpu_count": 1}))
    no_traj = _memory_spec()
    del no_traj["additional_stores"]["trajectories"]
    with pytest.raises(JobflowRemoteConfigError, match=r"lacks the additional store\(s\) \['trajectories'\]"):
        validate_project_config(broken(jobstore=no_traj))
    sqlite = _memory_spec()
    sqlite["docs_store"] = {"type": "SQLiteStore", "collection_name": "jobs", "database_path": "/tmp/x"}
    with pytest.raises(JobflowRemoteConfigError, match="ELECTRODB_DB_URI|jobstore"):
        validate_project_config(broken(jobstore=sqlite))
    with pytest.raises(JobflowRemoteConfigError, match="does not exist"):
        validate_project_config("/nonexistent/project.yaml")


def test_system_state_is_the_error_or_least_advanced_job():
    assert system_state(["COMPLETED", "RUNNING", "WAITING"]) == "WAITING"
    assert system_state(["COMPLETED", "COMPLETED", "COMPLETED"]) == "COMPLETED"
    assert system_state(["COMPLETED", "FAILED", "WAITING"]) == "FAILED"
    assert system_state(["COMPLETED", "RUNNING", "READY"]) == "READY"
    with pytest.raises(ValueError, match="at least one"):
        system_state([])


def _tiny_campaign(model: Path, concentrations: list[float], production_ps: float = 0.05) -> Campaign:
    md = short_md(production_ps=production_ps)  # the flow tests' short settings
    return Campaign(
        name="jfr",
        salts=["NaCl"],
        concentrations=concentrations,
        size={"n_waters": 32},
        model=str(model),
        model_cutoff_A=4.0,
        md=md,
    )


@pytest.fixture
def queue(tmp_path, monkeypatch):
    """A jobflow-remote project in a private projects folder, its queue an in-memory MongoDB (mongomock)."""
    import jobflow_remote
    from jobflow_remote import JobController
    from jobflow_remote.config.base import Project

    projects = tmp_path / "jfremote"
    projects.mkdir()
    spec = _memory_spec()
    write_project_config(
        projects / "electrodb.yaml",
        "electrodb",
        job_store=spec,
        queue_store={"type": "MemoryStore", "collection_name": "jf_jobs"},
        base_dir=str(tmp_path / "jfr-base"),
        **_workers(str(tmp_path / "scratch")),  # the workers' exec_config exports folders under it
    )
    monkeypatch.setattr(jobflow_remote.SETTINGS, "projects_folder", str(projects))
    monkeypatch.setattr(jobflow_remote.SETTINGS, "project", None)
    controller = JobController.from_project(validate_project_config(projects / "electrodb.yaml"))
    controller.reset()
    # one queue for the whole test: submit_flow builds its own controller from the project, whose MemoryStore
    # would otherwise be a fresh, separate mongomock database
    monkeypatch.setattr(Project, "get_job_controller", lambda self: controller)
    job_store = JobStore.from_dict_spec(spec)
    yield controller, job_store
    controller.close()


def test_submit_routes_stages_in_chunks_and_skips_queued_systems(queue, random_mace, settings):
    controller, job_store = queue
    specs = _tiny_campaign(random_mace, [1.0, 3.0, 5.0]).systems()
    ids = [s.system_id for s in specs]
    assert len(set(ids)) == 3

    def flows():
        return [(s, ElectrolyteFlowMaker().make(s)) for s in specs]

    backend = JobflowRemoteBackend()
    options = SubmitOptions(chunk_size=2)
    twice = [*flows(), (specs[0], ElectrolyteFlowMaker().make(specs[0]))]  # the same box listed twice
    assert backend.submit(twice, job_store, options) == ids
    assert controller.flows.count_documents({}) == 2  # 3 systems in chunks of 2: two jobflow-remote flows
    jobs = controller.get_jobs(
        {}, projection=["worker", "exec_config", "resources", "job.name", "job.metadata", "job.function_kwargs"]
    )
    assert len(jobs) == 9
    for doc in jobs:
        stage = doc["job"]["name"].split()[0]
        kind = "cpu" if stage == "box" else "gpu"
        assert (doc["worker"], doc["exec_config"]) == (kind, CPU_EXEC_CONFIG if kind == "cpu" else GPU_EXEC_CONFIG)
        assert doc["resources"] is None  # the worker's own: one GPU per MD job
        assert doc["job"]["metadata"]["electrodb_system_id"] in ids
        model_input = doc["job"]["function_kwargs"].get("model_file")  # the model travels as a resolved input
        assert (model_input is not None) == (stage in ("equilibrate", "production"))
        if model_input is not None:
            assert (
                job_store.query_one({"uuid": model_input["uuid"]}, load=True)["output"]["model_id"] == specs[0].model_id
            )
    assert backend.states(ids) == dict.fromkeys(ids, "WAITING")  # box READY, its MD jobs WAITING
    assert backend.states(["never-submitted"]) == {}

    assert backend.submit(flows(), job_store, options) == []  # idempotent: all queued
    assert controller.jobs.count_documents({}) == 9

    controller.jobs.update_one({"job.metadata.electrodb_system_id": ids[1], "job.name": {"$regex": "^box"}},
                               {"$set": {"state": "FAILED"}})  # fmt: skip
    assert backend.states(ids)[ids[1]] == "FAILED"
    assert backend.submit(flows(), job_store, options) == [ids[1]]  # only the failed system again
    assert controller.jobs.count_documents({}) == 12
    assert backend.states(ids)[ids[1]] == "WAITING"  # its latest submission counts

    with pytest.raises(JobflowRemoteConfigError, match="no worker 'a100'.*--gpu-worker"):
        backend.submit(flows(), job_store, SubmitOptions(gpu_worker="a100"))
    embedded_store = ElectroDBStores(settings).job_store()
    with pytest.raises(JobflowRemoteConfigError, match="ELECTRODB_DB_URI"):
        backend.submit(flows(), embedded_store, options)


def _fresh_memory_job_store() -> JobStore:
    return JobStore(MemoryStore("jobs"), additional_stores={n: MemoryStore(f"jobs-{n}") for n in sorted(STORE_NAMES)})


def _untouched(settings: ElectroDBSettings, allow: tuple[str, ...] = ()) -> bool:
    """True when nothing was written under the process settings' data folder (no database, no files), apart
    from the top-level folders named in ``allow``."""
    if not settings.data_dir.exists():
        return True
    return not [p for p in settings.data_dir.rglob("*") if p.relative_to(settings.data_dir).parts[0] not in allow]


def test_flow_writes_only_to_the_job_store_given_to_run_locally(settings, random_mace):
    spec = _tiny_campaign(random_mace, [1.0]).systems()[0]
    js = _fresh_memory_job_store()
    responses = run_locally(ElectrolyteFlowMaker().make(spec), store=js, log=False, ensure_success=True)
    assert len(responses) == 3
    trajectories, data = js.additional_stores["trajectories"], js.additional_stores["data"]
    doc = trajectories.query_one({"trajectory_id": spec.system_id})
    assert doc["status"] == "completed" and doc["n_frames"] == 11  # 100 steps of 0.5 fs, a frame every 10
    assert load_trajectory(spec.system_id, trajectories, data).positions.shape == (11, spec.n_atoms, 3)
    assert js.additional_stores["systems"].count({"system_id": spec.system_id}) == 1
    assert _untouched(settings)


def test_flow_runs_on_file_stores_like_a_jobflow_remote_worker(settings, random_mace, tmp_path):
    """Every job replayed the way jobflow-remote runs it, on a 'worker' that has neither a database nor the model
    file: the model arrives as the resolved input ``model_file`` (published in the JobStore at submission)."""
    import shutil

    from electrodb.models.staging import publish_model_output

    model = tmp_path / "submit-side.model"
    shutil.copyfile(random_mace, model)
    spec = _tiny_campaign(model, [1.0]).systems()[0]
    flow = ElectrolyteFlowMaker().make(spec)
    flow.update_metadata({"electrodb_system_id": spec.system_id})
    real = ElectroDBStores(ElectroDBSettings(data_dir=tmp_path / "campaign-db"))  # not the process settings'
    js = real.job_store()
    published = publish_model_output(js, str(model))
    assert publish_model_output(js, str(model)).uuid == published.uuid  # idempotent: one output per model
    for job, _ in flow.iterflow():
        if job.name.split()[0] in ("equilibrate", "production"):
            job.function_kwargs["model_file"] = published
    model.unlink()  # the worker side never sees the file
    for k, (job, _) in enumerate(flow.iterflow()):
        run_job_as_jobflow_remote(job, js, tmp_path / f"job-{k}", str(k + 1))
    cached = list((settings.data_dir / "model-cache").iterdir())
    assert [p.name for p in cached] == [spec.model_id.removeprefix("sha256:") + ".model"]
    with real:
        doc = real.trajectories.query_one({"trajectory_id": spec.system_id})
        assert doc["status"] == "completed" and doc["n_frames"] == 11
        traj = load_trajectory(spec.system_id, real.trajectories, real.data)
        assert traj.positions.shape == (11, spec.n_atoms, 3)
        assert real.jobs.count({"metadata.electrodb_system_id": spec.system_id}) == 3  # one output per job
        assert real.systems.count({"system_id": spec.system_id}) == 1
        box = real.systems.query_one({"system_id": spec.system_id})
        # the equilibration's document replaced the packing's: the box's labels survive although the worker's
        # store started empty
        assert box["stage"] == "equilibrated" and box["box_id"] == spec.box_id
        assert box["campaign_ids"] == [spec.campaign] and box["density_source"]
    # the worker's verified model copy and the (emptied) root of production working copies, no database
    assert _untouched(settings, allow=("model-cache", "resume"))
    assert not list((settings.data_dir / "resume").iterdir())  # published into the JobStore, then removed


def test_segments_continue_through_the_working_copy_on_a_jobflow_remote_queue(
    queue, settings, random_mace, tmp_path, monkeypatch
):
    """A campaign with until, submitted by the backend and run by jobflow-remote's own JobController (checkout,
    completion, the check's Response appended to the queue) on workers with file stores and their exec_config's
    environment: the segments go to the GPU worker and the checks to the CPU worker, each production continues the
    working copy the previous one kept, the trajectory reaches the real stores and the copy goes when it stops."""
    import numpy as np

    from electrodb.managers.submit import campaign_states, system_flows
    from tests.campaigns import THREE_SEGMENTS, assert_no_duplicates
    from tests.managers.remote import run_queue

    controller, _ = queue
    # the project's JobStore is the embedded database here (the backend refuses it for a real project)
    monkeypatch.setattr(JobflowRemoteBackend, "_check_job_store", staticmethod(lambda job_store, project: None))
    model = tmp_path / "submit-side.model"
    model.write_bytes(random_mace.read_bytes())
    md = short_md(production_ps=0.02, sample_every_steps=2, checkpoint_every_steps=20)
    campaign = _tiny_campaign(model, [1.0]).model_copy(update={"md": md})
    campaign = Campaign.model_validate({**campaign.model_dump(), **THREE_SEGMENTS})
    spec = campaign.systems()[0]
    real = ElectroDBStores(ElectroDBSettings(data_dir=tmp_path / "campaign-db"))
    js = real.job_store()
    backend = JobflowRemoteBackend(job_controller=controller)
    assert backend.submit(system_flows([spec]), js, SubmitOptions()) == [spec.system_id]
    model.unlink()  # the workers get the model as an input
    resume = tmp_path / "scratch" / "electrodb-resume"  # the generated project's ELECTRODB_RESUME_DIR

    def later_segment(doc: dict) -> bool:
        return doc["job"]["name"].startswith("production") and not doc["job"]["name"].endswith("segment 1")

    # the runner stops after the first check (its next segment queued): nothing lives but the queue, the database
    # and the working copy
    first = run_queue(controller, js, tmp_path / "run", hold=later_segment)
    stages = [(d["job"]["name"].split()[0], d["worker"], d["exec_config"]) for d in first]
    assert stages == [
        ("box", "cpu", CPU_EXEC_CONFIG),
        ("equilibrate", "gpu", GPU_EXEC_CONFIG),
        ("production", "gpu", GPU_EXEC_CONFIG),
        ("convergence", "cpu", CPU_EXEC_CONFIG),
    ]
    assert len(list(resume.iterdir())) == 1  # kept for the next segment
    with real:
        doc = real.trajectories.query_one({"trajectory_id": spec.system_id})
        assert doc["n_frames"] == 6 and doc["convergence"]["decision"] == "continue"
        before = load_trajectory(spec.system_id, real.trajectories, real.data).positions
    queued = {d["job"]["name"]: d for d in controller.jobs.find({"state": {"$in": ["READY", "WAITING"]}})}
    label = f"{spec.salt} {spec.molality:.2f} m {spec.temperature:.0f} K"
    production, check = queued[f"production {label} segment 2"], queued[f"convergence check {label} segment 2"]
    assert (production["state"], production["worker"], production["exec_config"]) == ("READY", "gpu", GPU_EXEC_CONFIG)
    assert (check["state"], check["worker"], check["exec_config"]) == ("WAITING", "cpu", CPU_EXEC_CONFIG)
    submitted = first[0]["job"]["metadata"]
    for added in (production, check):
        meta = added["job"]["metadata"]
        assert {k: meta.get(k) for k in ("electrodb_system_id", "electrodb_submission")} == {
            k: submitted[k] for k in ("electrodb_system_id", "electrodb_submission")
        }

    rest = run_queue(controller, js, tmp_path / "run")
    names = [d["job"]["name"] for d in rest]
    assert names == [f"{stage} {label} segment {k}" for k in (2, 3) for stage in ("production", "convergence check")]
    for d in rest:
        kind = "gpu" if d["job"]["name"].startswith("production") else "cpu"
        assert (d["worker"], d["exec_config"]) == (kind, GPU_EXEC_CONFIG if kind == "gpu" else CPU_EXEC_CONFIG)
    assert not list(resume.iterdir())  # the system stopped: its working copy is gone
    assert controller.jobs.count_documents({"state": {"$ne": "COMPLETED"}}) == 0
    assert backend.states([spec.system_id]) == {spec.system_id: "COMPLETED"}
    with real:
        doc = real.trajectories.query_one({"trajectory_id": spec.system_id})
        traj = load_trajectory(spec.system_id, real.trajectories, real.data)
        assert doc["status"] == "completed" and doc["n_frames"] == traj.n_frames == 21
        assert np.allclose(np.diff(traj.times_ps), 0.001)  # no gap, no duplicate across the segments
        assert np.linalg.norm(np.diff(traj.positions, axis=0), axis=2).max() < 1.0
        assert np.array_equal(traj.positions[: len(before)], before)  # continued from the copy, not restarted
        record = doc["convergence"]
        assert record["segment"] == 3 and record["decision"] != "continue" and record["production_ps"] == 0.02
        assert "r_cation_O" in record["properties"]
        (state,) = campaign_states([spec], real, backend)
        assert (state.status, state.engine_state) == ("completed", "COMPLETED")
        assert state.convergence["segment"] == 3 and state.production_ps == pytest.approx(0.02)
        assert_no_duplicates(real)
