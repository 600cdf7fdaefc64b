"""A job run the way jobflow-remote runs it, without a server or a queue: the runner stages it
(:func:`stage_remote_job`), the worker runs it on the folder's files only, the runner collects it
(:func:`collect_remote_job`); :func:`run_job_as_jobflow_remote` does all three in this process."""

from __future__ import annotations

import os
from pathlib import Path

from jobflow import JobStore


def stage_remote_job(job, store: JobStore, run_dir: Path) -> None:
    """What jobflow-remote's runner does before a job starts: resolve its inputs from the real JobStore and write
    them, with a JSON-file copy of the JobStore (``get_remote_store``), into the job's new folder."""
    from jobflow_remote.jobs.data import IN_FILENAME
    from jobflow_remote.remote.data import get_remote_in_file, get_remote_store, resolve_job_dict_args
    from monty.json import jsanitize

    run_dir.mkdir()
    job_dict = jsanitize(job.as_dict(), strict=True, allow_bson=True)  # as the queue holds it
    store.connect()
    resolve_job_dict_args(job_dict, store)
    remote = get_remote_store(store, run_dir, None)
    (run_dir / IN_FILENAME).write_bytes(get_remote_in_file(job_dict, remote).getvalue())


def collect_remote_job(store: JobStore, run_dir: Path, db_id: str) -> None:
    """What the runner does when the job has finished: check its output and copy its stores into the JobStore."""
    from jobflow_remote.jobs.data import OUT_FILENAME
    from jobflow_remote.remote.data import get_remote_store, update_store
    from monty.serialization import loadfn

    out = loadfn(run_dir / OUT_FILENAME)
    assert out["error"] is None, out["error"]
    # The runner copies each additional store's documents into the real stores with ``add_store.update(doc)``:
    # ElectroDB's job collections keep their own keys inside the JobStore (stores._PinnedKeyMixin), so this
    # upserts by trajectory_id / system_id / model_id and never duplicates.
    update_store(store, get_remote_store(store, run_dir, None), db_id)


def run_job_as_jobflow_remote(job, store: JobStore, run_dir: Path, db_id: str) -> None:
    """One job the way jobflow-remote moves it: the runner stages it (:func:`stage_remote_job`), the worker runs it
    against the folder's files only (``run_remote_job``), the runner collects it (:func:`collect_remote_job`)."""
    from jobflow_remote.jobs.run import run_remote_job

    stage_remote_job(job, store, run_dir)
    cwd = os.getcwd()
    try:
        run_remote_job(run_dir)
    finally:
        os.chdir(cwd)
    collect_remote_job(store, run_dir, db_id)
