"""A production killed on a jobflow-remote worker resumes from its checkpoint after ``jf job rerun``.

jobflow-remote's workers keep a job's stores as files in its run folder and copy them into the database only when
the job succeeds; ``jf job rerun`` deletes that folder before the job starts again. The production therefore keeps
a working copy of its frames and checkpoints beside the job folders (:mod:`electrodb.flows.resume`). Here the
production job runs exactly as jobflow-remote's worker runs it (``run_remote_job`` in a process of its own, on the
files the runner wrote), SIGKILLs itself mid-run, its folder is deleted as a rerun does, and the rerun completes:
every frame once, the frames before the checkpoint kept from the killed attempt, the working copy gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from electrodb.flows.resume import open_working_copy, volatile
from electrodb.flows.system import ElectrolyteFlowMaker
from electrodb.settings import ElectroDBSettings
from electrodb.store.stores import ElectroDBStores
from tests.campaigns import assert_no_duplicates, worker_campaign
from tests.managers.doubles import KillingProductionMaker
from tests.managers.remote import collect_remote_job, run_job_as_jobflow_remote, stage_remote_job

REPO = Path(__file__).resolve().parents[2]  # the worker unpickles tests.managers.doubles.KillingProductionMaker


def _launch(run_dir: Path, env: dict[str, str]) -> int:
    """The worker: ``run_remote_job`` in a process of its own (a SLURM job), on the folder's files only."""
    code = "import sys; from jobflow_remote.jobs.run import run_remote_job; run_remote_job(sys.argv[1])"
    return subprocess.run([sys.executable, "-c", code, str(run_dir)], env=env, cwd=run_dir, timeout=600).returncode


def test_killed_production_resumes_after_a_rerun_deletes_its_folder(settings, random_mace, tmp_path):
    from electrodb.md.dynamics import checkpoint_interval
    from electrodb.store.frames import list_chunks, load_trajectory

    campaign = worker_campaign(str(random_mace), [2.0], [298.15], production_ps=0.1)
    spec = campaign.systems()[0]
    md = campaign.md
    n_steps = md.n_production_steps
    every = checkpoint_interval(md.checkpoint_every_steps, n_steps, md.sample_every_steps)
    marker = tmp_path / "killed.json"
    killing = KillingProductionMaker(marker=str(marker), kill_at_step=n_steps // 2)
    flow = ElectrolyteFlowMaker(production_maker=killing).make(spec)
    real = ElectroDBStores(ElectroDBSettings(data_dir=tmp_path / "campaign-db"))
    js = real.job_store()
    jobs = [job for job, _ in flow.iterflow()]
    for k, job in enumerate(jobs[:2]):  # packing and equilibration
        run_job_as_jobflow_remote(job, js, tmp_path / f"job-{k}", str(k + 1))

    resume = tmp_path / "worker" / "electrodb-resume"  # what the generated project exports to GPU jobs
    env = {
        **os.environ,
        "ELECTRODB_RESUME_DIR": str(resume),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    run_dir = tmp_path / "job-2"
    stage_remote_job(jobs[2], js, run_dir)
    assert _launch(run_dir, env) == -9  # SIGKILLed mid-production
    killed = json.loads(marker.read_text())
    killed_at = datetime.fromtimestamp(killed["time"], UTC)
    copies = [p.name for p in resume.iterdir()]
    assert len(copies) == 1  # the working copy outlived the job
    with real:
        assert real.trajectories.count({"trajectory_id": spec.system_id}) == 0  # nothing reached the database

    shutil.rmtree(run_dir)  # `jf job rerun` (delete_files=True): the job folder is deleted before the job restarts
    stage_remote_job(jobs[2], js, run_dir)
    assert _launch(run_dir, env) == 0
    collect_remote_job(js, run_dir, "3")
    assert not list(resume.iterdir())  # published, then removed

    n_expected = n_steps // md.sample_every_steps + 1
    with real:
        doc = real.trajectories.query_one({"trajectory_id": spec.system_id})
        traj = load_trajectory(spec.system_id, real.trajectories, real.data)
        assert doc["status"] == "completed" and doc["n_frames"] == traj.n_frames == n_expected
        assert np.allclose(np.diff(traj.times_ps), doc["frame_interval_ps"])  # no gap, no duplicate
        assert np.linalg.norm(np.diff(traj.positions, axis=0), axis=2).max() < 1.0  # continuous positions
        chunks = list_chunks(real.data, spec.system_id)
        starts = [c["frame_start"] for c in chunks]
        assert starts == sorted(set(starts)) and sum(c["n_frames"] for c in chunks) == n_expected
        # resumed, not restarted: chunks before the last stored checkpoint were written by the killed attempt
        ckpt_frames = (killed["step"] - every) // md.sample_every_steps + 1
        stored = list(real.data.query({"trajectory_id": spec.system_id, "kind": "trajectory_chunk"}))
        assert any(c["frame_start"] < ckpt_frames for c in stored) and any(
            c["frame_start"] >= ckpt_frames for c in stored
        )
        for chunk in stored:
            written = chunk["last_updated"].replace(tzinfo=UTC)
            assert (written < killed_at) == (chunk["frame_start"] < ckpt_frames), chunk["frame_start"]
        assert (
            real.data.count({"blob_uuid": f"{spec.system_id}:checkpoint"}) == 0
        )  # the ended run's checkpoint stays behind
        assert_no_duplicates(real)


def test_durable_stores_get_no_working_copy(stores) -> None:
    """The database itself (run_locally, FireWorks, campaign run --workers) survives a job: no copy."""
    assert not volatile(stores.data) and not volatile(stores.trajectories)
    assert open_working_copy(stores, "x") is None


def test_a_working_copy_inside_the_job_folder_is_used_with_a_warning(tmp_path, monkeypatch) -> None:
    from jobflow import JobStore
    from jobflow_remote.remote.data import get_remote_store

    from electrodb.flows.job_io import JobCollection
    from electrodb.store.stores import COLLECTIONS

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    monkeypatch.chdir(job_dir)
    base = ElectroDBStores(ElectroDBSettings(data_dir=tmp_path / "db")).job_store()
    remote: JobStore = get_remote_store(base, job_dir, None)
    view = ElectroDBStores.from_job_store(remote)
    view._stores["trajectories"] = JobCollection(view._stores["trajectories"], COLLECTIONS["trajectories"])
    assert volatile(view.data) and volatile(view.trajectories)
    inside = ElectroDBSettings(data_dir=job_dir / "electrodb-data")
    with pytest.warns(UserWarning, match="ELECTRODB_RESUME_DIR"):
        copy = open_working_copy(view, "sys:1", inside)
    assert copy is not None and copy.folder.parent == job_dir / "electrodb-data" / "resume"
    copy.close()
    outside = ElectroDBSettings(data_dir=job_dir / "electrodb-data", resume_dir=tmp_path / "resume")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy = open_working_copy(view, "sys:1", outside)
    assert copy is not None and copy.folder == tmp_path / "resume" / "sys_1" and not copy.resumed
    copy.close()
