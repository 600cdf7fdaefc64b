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


def run_queue(controller, store: JobStore, root: Path, hold=None) -> list[dict]:
    """jobflow-remote's runner and workers on a queue, one job at a time until no job it may run is READY.

    Each READY job is checked out (``JobController.checkout_job``), staged from its queue document as the runner's
    upload does (inputs resolved from the JobStore, a file copy of the JobStore in a new folder), run by
    ``run_remote_job`` with its exec_config's ``export`` environment (what the worker's submission script exports),
    and completed by ``JobController.complete_job``: its stores copied into the JobStore, a ``Response``'s
    additions inserted into the queue with the worker and exec_config of their own ``manager_config`` (else the
    generating job's), and the children made READY. Only the transport (SSH, SLURM) is left out.

    Parameters
    ----------
    hold
        ``hold(queue document)``: True for jobs left READY (a runner that stopped before them).

    Returns
    -------
    list of dict
        The queue documents of the jobs run, in order, with their final ``state``.
    """
    from jobflow_remote.jobs.data import IN_FILENAME
    from jobflow_remote.jobs.run import run_remote_job
    from jobflow_remote.remote.data import get_remote_in_file, get_remote_store, resolve_job_dict_args

    from electrodb.settings import get_settings

    ran: list[dict] = []
    while True:
        ready = [d for d in controller.jobs.find({"state": "READY"}, sort=[("db_id", 1)]) if not (hold and hold(d))]
        if not ready:
            return ran
        key = {"uuid": ready[0]["uuid"], "index": ready[0]["index"]}
        assert controller.checkout_job(query=key) is not None
        doc = controller.jobs.find_one(key)
        job_dict = doc["job"]
        store.connect()
        resolve_job_dict_args(job_dict, store)
        run_dir = root / f"job-{doc['db_id']}"
        run_dir.mkdir(parents=True)
        remote = get_remote_store(store, run_dir, controller.project.remote_jobstore)
        (run_dir / IN_FILENAME).write_bytes(get_remote_in_file(job_dict, remote).getvalue())
        exec_config = controller.project.exec_config.get(doc["exec_config"]) if doc["exec_config"] else None
        export = dict(exec_config.export or {}) if exec_config is not None else {}
        before = {k: os.environ.get(k) for k in export}
        cwd = os.getcwd()
        os.environ.update(export)
        get_settings.cache_clear()
        try:
            run_remote_job(run_dir)
        finally:
            os.chdir(cwd)
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            get_settings.cache_clear()
        controller.complete_job(doc, run_dir, store)
        done = controller.jobs.find_one(key)
        assert done["state"] == "COMPLETED", (done["job"]["name"], done.get("error"))
        ran.append(done)
