"""jobflow-remote engine: routed, chunked, idempotent submission of per-system flows, and their state read back.

jobflow-remote (https://matgenix.github.io/jobflow-remote) keeps its queue in MongoDB and runs each job on a worker
with a file-based copy of the JobStore (one JSON file per store, :func:`jobflow_remote.remote.data.get_remote_store`);
its runner copies every document of those files into the project's real JobStore when the job completes
(:func:`jobflow_remote.remote.data.update_store`). Workers therefore need no database access, but the project's
JobStore must be a real server: an embedded SQLite database is refused.

* The project itself (SLURM CPU/GPU workers, ElectroDB's JobStore layout, validation) is written and checked by
  :mod:`electrodb.managers.jobflow_remote_project`; its names are re-exported here.
* :class:`JobflowRemoteBackend` submits per-system flows in chunks with ``jobflow_remote.submit_flow``, routing
  each job by :func:`~electrodb.managers.stages.stage_kind` through ``jobflow_remote.set_run_config`` (the job's
  ``config.manager_config``: worker, exec_config, resources), skips systems already queued/running/completed, and
  reads each system's state back from the ``JobController``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jobflow import Flow, JobStore

from electrodb.flows.segments import remember_routes
from electrodb.managers.jobflow_remote_project import (
    CPU_EXEC_CONFIG,
    EMBEDDED_FIX,
    GPU_EXEC_CONFIG,
    JobflowRemoteConfigError,
)
from electrodb.managers.stages import FlowKey, SubmitOptions, WorkerKind, job_stage, stage_kind
from electrodb.models.staging import publish_model_output
from electrodb.store.sqlite import SQLiteStore
from electrodb.systems.campaign import SystemSpec

# jobflow_remote (the optional extra electrodb[remote]) is imported where used: this module imports without it.
if TYPE_CHECKING:
    from jobflow_remote import JobController
    from jobflow_remote.config.base import Project

__all__ = [
    "JobflowRemoteBackend",
    "system_state",
]

#: Stages whose jobs load the model and so receive it as the input ``model_file``.
MODEL_INPUT_STAGES = ("equilibrate", "production", "convergence")  # a check passes it to the next segment

SYSTEM_KEY = "electrodb_system_id"  # job metadata naming the system (set by the campaign on every job)
SUBMISSION_KEY = "electrodb_submission"  # job metadata: UTC time of the submit call that queued the job
#: jobflow-remote job states, least advanced first (a system's state is that of its least advanced job).
_PROGRESS = (
    "PAUSED",
    "WAITING",
    "READY",
    "CHECKED_OUT",
    "UPLOADED",
    "BATCH_SUBMITTED",
    "SUBMITTED",
    "BATCH_RUNNING",
    "RUNNING",
    "RUN_FINISHED",
    "DOWNLOADED",
    "STOPPED",
    "COMPLETED",
)
#: A system with a job in one of these states is reported in it (whatever its other jobs do) and is resubmitted.
_ERROR_STATES = ("FAILED", "REMOTE_ERROR", "USER_STOPPED")


def system_state(states: Iterable[str]) -> str:
    """One system's state from its jobs' jobflow-remote states: an error state if any job has one, else the
    least advanced state (``WAITING`` < ``READY`` < ... < ``COMPLETED``)."""
    states = list(states)
    if not states:
        raise ValueError("a system state needs at least one job state")
    for bad in _ERROR_STATES:
        if bad in states:
            return bad
    rank = {s: k for k, s in enumerate(_PROGRESS)}
    return min(states, key=lambda s: rank.get(s, -1))


class JobflowRemoteBackend:
    """ElectroDB campaigns on jobflow-remote (:class:`~electrodb.managers.stages.EngineBackend`).

    Parameters
    ----------
    project
        jobflow-remote project name (None: ``SubmitOptions.project`` or jobflow-remote's default project).
    job_controller
        An open ``JobController`` to read states from (default: one built from the project on first use).
    """

    name = "jobflow-remote"
    workers_reach_database = False  # workers get file stores; what jobs read must travel as their inputs

    def __init__(self, project: str | None = None, *, job_controller: JobController | None = None) -> None:
        self.project = project
        self._controller = job_controller
        self._owns_controller = job_controller is None

    # -- engine state -------------------------------------------------------------------------------------------
    def _project(self, name: str | None = None) -> Project:
        from jobflow_remote import ConfigManager

        return ConfigManager().get_project(name or self.project)

    def controller(self) -> JobController:
        """The project's ``JobController`` (built once, on first use)."""
        if self._controller is None:
            self._controller = self._project().get_job_controller()
        return self._controller

    def close(self) -> None:
        """Close the JobController this backend opened (not one it was given)."""
        if self._controller is not None and self._owns_controller:
            self._controller.close()
            self._controller = None

    def _job_states(self, system_ids: Sequence[str]) -> dict[str, list[str]]:
        """Job states of each system's latest submission, read from the queue (1,000 ids per query)."""
        latest: dict[str, str] = {}
        states: dict[tuple[str, str], list[str]] = {}
        ids = list(dict.fromkeys(system_ids))
        for start in range(0, len(ids), 1000):
            query = {f"job.metadata.{SYSTEM_KEY}": {"$in": ids[start : start + 1000]}}
            for doc in self.controller().get_jobs(query, projection=["state", "job.metadata"]):
                meta = doc["job"]["metadata"]
                sid, stamp = meta[SYSTEM_KEY], str(meta.get(SUBMISSION_KEY, ""))
                latest[sid] = max(latest.get(sid, stamp), stamp)
                states.setdefault((sid, stamp), []).append(str(doc["state"]))
        return {sid: states[(sid, stamp)] for sid, stamp in latest.items()}

    def states(self, system_ids: list[str]) -> dict[str, str]:
        """jobflow-remote state of each submitted system (:func:`system_state` of its latest submission's jobs);
        ids never submitted are absent."""
        return {sid: system_state(s) for sid, s in self._job_states(system_ids).items()}

    # -- submission ---------------------------------------------------------------------------------------------
    def _routing(self, project: Project, options: SubmitOptions) -> dict[WorkerKind, dict[str, Any]]:
        """Per worker kind: worker name, exec_config and resources, checked against the project."""
        extra_exec = options.extra.get("exec_config", {})
        extra_res = options.extra.get("resources", {})
        routes: dict[WorkerKind, dict[str, Any]] = {}
        defaults: dict[WorkerKind, str] = {"cpu": CPU_EXEC_CONFIG, "gpu": GPU_EXEC_CONFIG}
        for kind, worker in (("cpu", options.cpu_worker), ("gpu", options.gpu_worker)):
            if worker not in project.workers:
                raise JobflowRemoteConfigError(
                    f"jobflow-remote project {project.name!r} has no worker {worker!r} for {kind} jobs (workers: "
                    f"{sorted(project.workers)}); pass --{kind}-worker NAME or add it to the project"
                )
            exec_config = extra_exec.get(kind, defaults[kind] if defaults[kind] in project.exec_config else None)
            if isinstance(exec_config, str) and exec_config not in project.exec_config:
                raise JobflowRemoteConfigError(
                    f"jobflow-remote project {project.name!r} has no exec_config {exec_config!r} (known: "
                    f"{sorted(project.exec_config)}); add it or choose another"
                )
            routes[kind] = {"worker": worker, "exec_config": exec_config, "resources": extra_res.get(kind)}
        return routes

    @staticmethod
    def _check_job_store(job_store: JobStore, project: Project) -> None:
        if isinstance(job_store.docs_store, SQLiteStore):
            raise JobflowRemoteConfigError(EMBEDDED_FIX)
        theirs = project.get_jobstore()

        def where(store: Any) -> tuple[Any, Any]:
            return getattr(store, "database", None), getattr(store, "collection_name", None)

        if where(theirs.docs_store) != where(job_store.docs_store):
            raise JobflowRemoteConfigError(
                f"jobflow-remote project {project.name!r} stores job outputs in {where(theirs.docs_store)} but "
                f"ElectroDB reads {where(job_store.docs_store)}; regenerate the project with write_project_config "
                "from the same ELECTRODB_DB_URI / ELECTRODB_DB_NAME"
            )
        missing = [n for n in job_store.additional_stores if n not in theirs.additional_stores]
        if missing:
            raise JobflowRemoteConfigError(
                f"jobflow-remote project {project.name!r} lacks the additional store(s) {missing}; regenerate "
                "its jobstore with electrodb_jobstore_spec()"
            )

    def submit(
        self, flows: list[tuple[SystemSpec | FlowKey, Flow]], job_store: JobStore, options: SubmitOptions
    ) -> list[str]:
        """Submit, ``options.chunk_size`` systems per jobflow-remote Flow, the systems with no job queued,
        running or completed (a system whose latest submission failed is submitted again); return their ids.

        Packing and analysis jobs go to ``options.cpu_worker`` (exec_config ``electrodb-cpu``), MD jobs to
        ``options.gpu_worker`` (exec_config ``electrodb-gpu``: one GPU each); ``options.extra`` may give
        ``{"exec_config": {"cpu"|"gpu": name}, "resources": {"cpu"|"gpu": {...}}}`` per kind.
        """
        from jobflow_remote import set_run_config, submit_flow

        if options.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {options.chunk_size}")
        if options.project and options.project != self.project:  # states are read from the submitted project
            if self._owns_controller:
                self.close()
            self.project = options.project
        project_name = self.project
        project = self._project(project_name)
        self._check_job_store(job_store, project)
        routes = self._routing(project, options)
        unique: list[tuple[SystemSpec | FlowKey, Flow]] = []  # specs of the same box are one system: submit it once
        for spec, flow in flows:
            if all(spec.system_id != s.system_id for s, _ in unique):
                unique.append((spec, flow))
        current = self.states([spec.system_id for spec, _ in unique])
        todo = [(s, f) for s, f in unique if s.system_id not in current or current[s.system_id] in _ERROR_STATES]
        stamp = datetime.now(timezone.utc).isoformat()
        submitted: list[str] = []
        models: dict[str, Any] = {}  # reference -> OutputReference of its published bytes (None: packaged model)
        for start in range(0, len(todo), options.chunk_size):
            chunk = todo[start : start + options.chunk_size]
            for spec, flow in chunk:
                flow.update_metadata({SYSTEM_KEY: spec.system_id, SUBMISSION_KEY: stamp})
                if spec.model not in models:  # workers reach no database: the model travels as a job input
                    models[spec.model] = publish_model_output(job_store, spec.model) if spec.model else None
                for job, _ in flow.iterflow():
                    route = routes[stage_kind(job)]
                    # not dynamic: a check's added jobs would all get the check's CPU route; they take the routes
                    # of the first production and check from remember_routes instead
                    set_run_config(
                        job,
                        worker=route["worker"],
                        exec_config=route["exec_config"],
                        resources=route["resources"],
                        dynamic=False,
                    )
                    if models[spec.model] is not None and job_stage(job) in MODEL_INPUT_STAGES:
                        job.function_kwargs["model_file"] = models[spec.model]
                remember_routes(flow)  # later segments (until:) go where the first went
            campaign = chunk[0][0].campaign
            batch = Flow([f for _, f in chunk], name=f"electrodb {campaign} systems {start + 1}-{start + len(chunk)}")
            # the model reference points at a published output outside the flow; the runner resolves it
            submit_flow(batch, worker=options.cpu_worker, project=project_name, allow_external_references=True)
            submitted.extend(spec.system_id for spec, _ in chunk)
        return submitted
