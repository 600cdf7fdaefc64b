"""Engine-independent submission: idempotency, chunking, routing metadata, the embedded-database refusal, status,
and model staging by sha256 (no engine, no server: a recording backend stands in for FireWorks/jobflow-remote)."""

from __future__ import annotations

import base64
import zlib

import pytest
from typer.testing import CliRunner

from electrodb.managers.stages import SYSTEM_KEY, EngineConfigError, SubmitOptions, chunked, engine_phase
from electrodb.managers.submit import MODEL_KEY, campaign_states, check_store_for_engine, get_backend, submit_campaign
from electrodb.models.files import ModelError, file_sha256
from electrodb.models.staging import model_blob_uuid, resolve_model_reference, stage_model
from electrodb.systems.campaign import Campaign


class RecordingBackend:
    """An engine that records what it is given and reports the states it is told."""

    name = "recording"

    def __init__(self, states: dict[str, str] | None = None) -> None:
        self.known = dict(states or {})
        self.calls: list[tuple[list, object, SubmitOptions]] = []

    def submit(self, flows, job_store, options):
        self.calls.append((flows, job_store, options))
        ids = [spec.system_id for spec, _ in flows]
        self.known.update(dict.fromkeys(ids, "READY"))
        return ids

    def states(self, system_ids):
        return {sid: self.known[sid] for sid in system_ids if sid in self.known}


def _campaign(model: str, **kw) -> Campaign:
    return Campaign(
        name="sub",
        salts=["NaCl", "LiCl"],
        concentrations=[1.0],
        temperatures=[298.15, 320.0],
        size={"n_waters": 32},
        model=model,
        model_cutoff_A=4.0,
        **kw,
    )


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "models" / "fine.model"
    path.parent.mkdir()
    path.write_bytes(b"not really a MACE model, but bytes with an identity" * 100)
    return path


def test_engine_phase_reads_fireworks_and_jobflow_remote_states():
    assert [engine_phase(s) for s in ("READY", "WAITING", "RESERVED", "RUNNING", "COMPLETED", "FIZZLED")] == [
        "queued",
        "queued",
        "queued",
        "running",
        "completed",
        "failed",
    ]
    assert [engine_phase(s) for s in ("SUBMITTED", "JobState.RUNNING", "remote_error", "USER_STOPPED")] == [
        "queued",
        "running",
        "failed",
        "stopped",
    ]
    assert engine_phase(None) == "absent" and engine_phase("ARCHIVED") == "absent"
    assert engine_phase("SOMETHING_NEW") == "unknown"


def test_get_backend_knows_both_engines_and_names_them_otherwise():
    from electrodb.managers.fireworks import FireWorksBackend

    assert isinstance(get_backend("fireworks"), FireWorksBackend)  # the LaunchPad is loaded only when used
    assert get_backend("jobflow-remote").name == "jobflow-remote"
    with pytest.raises(EngineConfigError, match="unknown engine 'slurm'.*fireworks, jobflow-remote"):
        get_backend("slurm")


def test_chunked_splits_in_order_and_refuses_zero():
    assert list(chunked(list(range(5)), 2)) == [[0, 1], [2, 3], [4]]
    with pytest.raises(EngineConfigError, match="at least 1"):
        list(chunked([1], 0))


def test_embedded_database_is_refused_for_workers_on_several_nodes(stores):
    from jobflow import JobStore
    from maggma.stores import MemoryStore, MongoStore

    with pytest.raises(EngineConfigError) as info:
        check_store_for_engine(stores.job_store(), "fireworks", multi_node=True)
    message = str(info.value)
    assert "embedded database" in message and "ELECTRODB_DB_URI" in message and "--single-node" in message
    assert "\n" not in message
    check_store_for_engine(stores.job_store(), "fireworks", multi_node=False)  # one node: SQLite is safe
    memory = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    with pytest.raises(EngineConfigError, match="memory"):
        check_store_for_engine(memory, "fireworks", multi_node=False)
    mongo = JobStore(MongoStore("db", "jobs"), additional_stores={"data": MongoStore("db", "data")})
    check_store_for_engine(mongo, "fireworks", multi_node=True)


def test_submit_skips_completed_and_engine_active_systems_and_stages_the_model(stores, model_file):
    campaign = _campaign(str(model_file))
    ids = [s.system_id for s in campaign.systems()]
    assert len(ids) == 4
    stores.trajectories.update([{"trajectory_id": ids[0], "status": "completed"}], key="trajectory_id")
    backend = RecordingBackend({ids[1]: "RUNNING", ids[2]: "FIZZLED"})
    options = SubmitOptions(cpu_worker="c", gpu_worker="g", chunk_size=1)

    dry = submit_campaign(campaign, stores, backend, options, multi_node=False, dry_run=True)
    assert dry.submitted == ids[2:] and dry.n_chunks == 2 and not backend.calls
    assert stores.data.query_one({"blob_uuid": model_blob_uuid(file_sha256(model_file))}) is None

    report = submit_campaign(campaign, stores, backend, options, multi_node=False)
    assert report.completed == [ids[0]] and report.in_engine == {ids[1]: "RUNNING"}
    assert report.submitted == ids[2:] and report.n_chunks == 2  # the failed one is submitted again
    assert report.model_sha256 == file_sha256(model_file)
    assert stores.data.query_one({"blob_uuid": model_blob_uuid(report.model_sha256)})["kind"] == "model_file"
    ((flows, job_store, opts),) = backend.calls
    assert set(job_store.additional_stores) >= {"data", "trajectories", "systems", "models", "solvation"}
    assert opts.chunk_size == 1 and opts.cpu_worker == "c" and opts.extra["submission_id"]
    for spec, flow in flows:
        assert flow.metadata[SYSTEM_KEY] == spec.system_id
        names = [job.name.split()[0] for job, _ in flow.iterflow()]
        assert names == ["box", "equilibrate", "production"]
        for job, _ in flow.iterflow():
            assert job.metadata[SYSTEM_KEY] == spec.system_id and job.metadata[MODEL_KEY] == report.model_sha256

    again = submit_campaign(campaign, stores, backend, options, multi_node=False)
    assert again.submitted == [] and set(again.in_engine) == set(ids[1:])
    assert len(backend.calls) == 1
    with pytest.raises(EngineConfigError, match="ELECTRODB_DB_URI"):
        submit_campaign(campaign, stores, backend, options)  # multi-node is the default


def test_status_combines_stored_trajectories_with_the_engine(stores, model_file):
    specs = _campaign(str(model_file)).systems() + _campaign(str(model_file), replicas=2).systems()[1::2]
    ids = [s.system_id for s in specs]
    assert len(set(ids)) == 8
    stores.trajectories.update(
        [
            {"trajectory_id": ids[0], "status": "completed", "n_frames": 21},
            {"trajectory_id": ids[1], "status": "unstable", "status_reason": "atoms 0.3 Å apart"},
            {"trajectory_id": ids[2], "status": "running", "n_frames": 3},
            {"trajectory_id": ids[6], "status": "running"},
        ],
        key="trajectory_id",
    )
    engine = {ids[0]: "RUNNING", ids[1]: "COMPLETED", ids[2]: "FIZZLED", ids[3]: "READY", ids[4]: "COMPLETED"}
    engine[ids[5]] = "RUNNING"
    rows = campaign_states(specs, stores, RecordingBackend(engine))
    got = [(r.status, r.engine_state) for r in rows]
    assert got == [
        ("completed", "RUNNING"),  # the stored result wins
        ("unstable", "COMPLETED"),
        ("failed", "FIZZLED"),
        ("queued", "READY"),
        ("failed", "COMPLETED"),  # the engine finished, but no trajectory was stored
        ("running", "RUNNING"),
        ("running", None),
        ("pending", None),
    ]
    assert rows[2].reason == "recording state FIZZLED" and rows[0].n_frames == 21
    assert rows[1].reason == "atoms 0.3 Å apart"
    assert [r.status for r in campaign_states(specs[:3], stores)] == ["completed", "unstable", "running"]


def test_stage_model_is_idempotent_and_skips_packaged_models(stores, model_file):
    sha = stage_model(stores.data, str(model_file))
    assert sha == file_sha256(model_file)
    first = stores.data.query_one({"blob_uuid": model_blob_uuid(sha)})
    assert first["size_bytes"] == model_file.stat().st_size and first["model_id"] == sha
    assert stage_model(stores.data, str(model_file)) == sha
    assert stores.data.query_one({"blob_uuid": model_blob_uuid(sha)})["last_updated"] == first["last_updated"]
    assert stores.data.count({"kind": "model_file"}) == 1
    assert stage_model(stores.data, "chgnet:r2scan") is None
    assert stores.data.count({"kind": "model_file"}) == 1
    damaged = {**first, "zb64": base64.b64encode(zlib.compress(b"other bytes")).decode()}
    damaged.pop("_id", None)
    stores.data.update([damaged], key="blob_uuid")
    assert stage_model(stores.data, str(model_file)) == sha  # a damaged blob is replaced by the file's bytes
    blob = stores.data.query_one({"blob_uuid": model_blob_uuid(sha)})
    assert zlib.decompress(base64.b64decode(blob["zb64"])) == model_file.read_bytes()
    with pytest.raises(ModelError, match="does not exist on this machine"):
        stage_model(stores.data, str(model_file.parent / "absent.model"))


def test_worker_resolves_the_model_by_sha256_from_the_data_store(stores, settings, model_file):
    from electrodb.flows.training import materialize_model

    reference = str(model_file)
    sha = stage_model(stores.data, reference)
    assert resolve_model_reference(reference, sha, stores.data) == reference  # the file is here, same bytes
    assert resolve_model_reference(reference, None, stores.data) == reference
    assert resolve_model_reference("chgnet:r2scan", sha, stores.data) == "chgnet:r2scan"
    original = model_file.read_bytes()
    model_file.write_bytes(b"a different model at the same path")
    cached = resolve_model_reference(reference, sha, stores.data)
    assert cached == str(settings.data_dir / "model-cache" / f"{sha.removeprefix('sha256:')}.model")
    assert file_sha256(cached) == sha
    model_file.unlink()
    assert resolve_model_reference(reference, sha.removeprefix("sha256:"), stores.data) == cached  # bare hex too
    assert materialize_model(sha, stores).read_bytes() == original  # the blob store_model's readers know

    nequip = model_file.parent / "deployed.pth"
    nequip.write_bytes(b"torchscript zip stand-in")
    ref = f"nequip:{nequip}?species=O,H&r_max=5"
    nsha = stage_model(stores.data, ref)
    nequip.unlink()
    resolved = resolve_model_reference(ref, nsha, stores.data, cache_dir=settings.data_dir / "cache2")
    assert resolved == f"nequip:{settings.data_dir / 'cache2' / nsha.removeprefix('sha256:')}.pth?species=O,H&r_max=5"

    missing = "sha256:" + "0" * 64
    with pytest.raises(ModelError, match=f"{missing}.*stage it"):
        resolve_model_reference(reference, missing, stores.data)
    with pytest.raises(ModelError, match="not a model sha256"):
        resolve_model_reference(reference, "abc", stores.data)
    blob = stores.data.query_one({"blob_uuid": model_blob_uuid(sha)})
    blob.pop("_id", None)
    stores.data.update([{**blob, "zb64": base64.b64encode(zlib.compress(b"tampered")).decode()}], key="blob_uuid")
    with pytest.raises(ModelError, match="corrupt"):
        resolve_model_reference(reference, sha, stores.data, cache_dir=settings.data_dir / "cache3")


def test_cli_submit_refuses_embedded_multi_node_and_unknown_engines(settings, model_file, tmp_path):
    from electrodb.cli.main import app

    spec = tmp_path / "spec.yaml"
    spec.write_text(_campaign(str(model_file)).model_dump_json())
    runner = CliRunner()
    result = runner.invoke(app, ["campaign", "submit", str(spec), "--engine", "fireworks"], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "ELECTRODB_DB_URI to a MongoDB server" in result.output
    result = runner.invoke(app, ["campaign", "submit", str(spec), "--engine", "slurm"])
    assert result.exit_code == 2 and "unknown engine 'slurm'" in result.output
    args = ["campaign", "submit", str(spec), "--engine", "jobflow-remote", "--launchpad", str(spec)]
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "--launchpad is a FireWorks option" in result.output
    result = runner.invoke(app, ["campaign", "run", str(spec), "--fireworks"])
    assert result.exit_code == 2 and "No such option" in result.output  # engines go through `campaign submit`


def test_cli_submit_and_status_through_a_backend(settings, model_file, tmp_path, monkeypatch):
    import electrodb.managers.submit as submit_module
    from electrodb.cli.main import app

    backend = RecordingBackend()
    monkeypatch.setattr(submit_module, "get_backend", lambda name, **kw: backend)
    spec = tmp_path / "spec.yaml"
    spec.write_text(_campaign(str(model_file)).model_dump_json())
    runner = CliRunner()
    env = {"COLUMNS": "300"}
    base = ["campaign", "submit", str(spec), "--engine", "fireworks", "--single-node", "--chunk-size", "3"]
    result = runner.invoke(app, [*base, "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    assert "would submit 4 of 4 systems to recording in 2 chunk(s) of at most 3" in result.output
    assert not backend.calls
    result = runner.invoke(app, [*base, "--gpu-worker", "a100"], env=env)
    assert result.exit_code == 0, result.output
    assert "submitted 4 of 4 systems" in result.output and file_sha256(model_file) in result.output
    assert backend.calls[0][2].gpu_worker == "a100" and backend.calls[0][2].cpu_worker == "cpu"
    result = runner.invoke(app, ["campaign", "status", str(spec), "--engine", "fireworks"], env=env)
    assert result.exit_code == 0, result.output
    assert "engine state" in result.output and result.output.count("READY") == 4 and "queued 4" in result.output


@pytest.mark.parametrize("reaches", [True, False])
def test_audited_campaigns_get_an_audit_job_where_workers_read_the_database(stores, model_file, reaches):
    from electrodb.managers.stages import stage_kind

    backend = RecordingBackend()
    backend.workers_reach_database = reaches
    campaign = _campaign(str(model_file), audit={"committee": "c"})
    report = submit_campaign(campaign, stores, backend, SubmitOptions(), multi_node=False)
    ((flows, _, _),) = backend.calls
    for _, flow in flows:
        jobs = [job for job, _ in flow.iterflow()]
        assert jobs[-1].name.startswith("committee audit") == reaches
        if reaches:
            assert stage_kind(jobs[-1]) == "cpu"
    assert bool(report.notes) != reaches
    if not reaches:
        assert "electrodb model audit --committee c" in report.notes[0]
