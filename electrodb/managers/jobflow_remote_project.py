"""jobflow-remote project configuration: SLURM CPU/GPU workers and ElectroDB's JobStore, written and validated.

* :func:`project_config` / :func:`write_project_config` generate a jobflow-remote project (YAML) whose JobStore is
  ElectroDB's layout (docs ``jobs``; additional stores ``data`` on GridFS and the collections jobs write,
  :data:`~electrodb.store.stores.JOB_COLLECTIONS`), with a CPU worker (packing, analysis) and a GPU worker (one GPU per
  MD job, ``CUDA_VISIBLE_DEVICES`` taken from the scheduler); :func:`slurm_worker` builds either worker.
* :func:`validate_project_config` validates a project through jobflow-remote's own pydantic ``Project`` model plus
  ElectroDB's checks (store layout, no embedded database, scheduler directives, one GPU per MD job).

Submission and state read-back are :mod:`electrodb.managers.jobflow_remote`.
"""

from __future__ import annotations

import copy
import inspect
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from electrodb.managers.stages import WorkerKind
from electrodb.settings import ElectroDBSettings, get_settings
from electrodb.store.stores import BLOB_COLLECTION, JOB_COLLECTIONS, ElectroDBStores
from electrodb.utils.safe_files import check_output_path

# jobflow_remote (the optional extra electrodb[remote]) is imported where used: this module imports without it.
if TYPE_CHECKING:
    from jobflow_remote.config.base import Project

__all__ = [
    "CPU_EXEC_CONFIG",
    "EMBEDDED_FIX",
    "EMBEDDED_STORE_TYPES",
    "GPU_EXEC_CONFIG",
    "GPU_PRE_RUN",
    "QUEUE_COLLECTION",
    "RESUME_FOLDER",
    "JobflowRemoteConfigError",
    "electrodb_jobstore_spec",
    "project_config",
    "slurm_worker",
    "validate_project_config",
    "write_project_config",
]

CPU_EXEC_CONFIG = "electrodb-cpu"
GPU_EXEC_CONFIG = "electrodb-gpu"
QUEUE_COLLECTION = "jf_jobs"  # jobflow-remote's queue collection (its flows/auxiliary collections sit beside it)
#: Folder, beside a GPU worker's job folders, holding the working copies of productions in progress.
RESUME_FOLDER = "electrodb-resume"
#: Shell run before every GPU job: keep the device the scheduler assigned (never overwrite it, never GPU 0 of a
#: shared node by default), refuse to start without one, and log it in the job's queue output.
GPU_PRE_RUN = (
    'if [ -z "${CUDA_VISIBLE_DEVICES:-}" ]; then '
    'echo "electrodb: no GPU assigned by the scheduler (CUDA_VISIBLE_DEVICES is unset); '
    'request one per MD job (SLURM: --gres=gpu:1)" >&2; exit 1; fi\n'
    'echo "electrodb: MD on CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES}"'
)

#: Store types of an embedded database, which workers on other machines cannot share.
EMBEDDED_STORE_TYPES = ("SQLiteStore", "EmbeddedStore", "ReadOnlyEmbeddedStore", "MontyStore")
#: Why an embedded database is refused, and the fix.
EMBEDDED_FIX = (
    "jobflow-remote runs jobs on other machines, whose runner writes into the project's JobStore: an embedded "
    "SQLite database cannot be shared by them; set ELECTRODB_DB_URI=mongodb://HOST:27017 (a MongoDB server the "
    "runner machine reaches) and generate the project with `write_project_config`"
)


class JobflowRemoteConfigError(ValueError):
    """A jobflow-remote project or submission that ElectroDB cannot use; the message names the fix."""


def _store_spec(store: Any) -> dict[str, Any]:
    """A maggma store as a ``JobStore.from_dict_spec`` entry (``type`` plus its constructor arguments)."""
    args = {k: v for k, v in store.as_dict().items() if not k.startswith("@")}
    if args.get("uri"):  # the URI carries host, port, credentials and authSource
        for name in ("host", "port", "username", "password"):
            args.pop(name, None)
    if args.get("auth_source") == args.get("database"):  # the constructor's own default
        args.pop("auth_source")
    defaults = {
        name: p.default
        for name, p in inspect.signature(type(store).__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    spec: dict[str, Any] = {"type": type(store).__name__}
    for key, value in args.items():
        if (key in defaults and value == defaults[key]) or (key == "mongoclient_kwargs" and not value):
            continue
        spec[key] = list(dict.fromkeys(value)) if isinstance(value, list) else value  # GridFS repeats fields
    return spec


def electrodb_jobstore_spec(settings: ElectroDBSettings | None = None) -> dict[str, Any]:
    """ElectroDB's JobStore (``ElectroDBStores.job_store()``) as a jobflow-remote ``jobstore`` entry.

    Docs in ``jobs``; additional stores ``data`` (GridFS) and :data:`~electrodb.store.stores.JOB_COLLECTIONS`, all on
    the MongoDB server of ``settings`` (default: the process settings).

    Raises
    ------
    JobflowRemoteConfigError
        When ``settings`` select the embedded database.
    """
    settings = settings or get_settings()
    if settings.embedded:
        raise JobflowRemoteConfigError(EMBEDDED_FIX)
    job_store = ElectroDBStores(settings).job_store()
    return {
        "docs_store": _store_spec(job_store.docs_store),
        "additional_stores": {name: _store_spec(s) for name, s in job_store.additional_stores.items()},
    }


def slurm_worker(
    kind: WorkerKind,
    work_dir: str,
    *,
    host: str | None = None,
    user: str | None = None,
    partition: str | None = None,
    account: str | None = None,
    time: str = "24:00:00",
    cpus_per_task: int | None = None,
    mem: str | None = None,
    python_env: str | None = None,
    max_jobs: int | None = None,
    resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A jobflow-remote SLURM worker entry for ElectroDB jobs of one kind.

    Parameters
    ----------
    kind
        ``'gpu'``: one task, one GPU (``--gres=gpu:1``) per MD job, 8 CPUs by default; ``'cpu'``: one task,
        4 CPUs by default (packmol, analysis).
    work_dir
        Absolute folder on the cluster where job folders are created.
    host, user
        SSH login node (a ``remote`` worker); None: the runner runs on the cluster itself (a ``local`` worker).
    partition, account, time, cpus_per_task, mem
        SLURM directives (``time`` as ``HH:MM:SS`` or ``D-HH:MM:SS``; ``mem`` e.g. ``'32G'``).
    python_env
        Virtual environment on the cluster with ElectroDB and jobflow-remote installed (activated before each job).
    max_jobs
        Most jobs of this worker in the SLURM queue at once (None: no limit).
    resources
        Further SLURM template keys (qtoolkit's ``slurm`` template: ``qos``, ``constraint``, ...), merged last.
    """
    res: dict[str, Any] = {
        "nodes": 1,
        "ntasks": 1,
        "cpus_per_task": cpus_per_task or (8 if kind == "gpu" else 4),
        "time": time,
    }
    if kind == "gpu":
        res["gres"] = "gpu:1"
    for key, value in (("partition", partition), ("account", account), ("mem", mem)):
        if value is not None:
            res[key] = value
    res.update(resources or {})
    worker: dict[str, Any] = {
        "type": "remote" if host else "local",
        "scheduler_type": "slurm",
        "work_dir": work_dir,
        "resources": res,
    }
    if host:
        worker["host"] = host
        if user:
            worker["user"] = user
    if python_env:
        worker["pre_run"] = f"source {python_env}/bin/activate"
    if max_jobs is not None:
        worker["max_jobs"] = max_jobs
    return worker


def project_config(
    name: str,
    *,
    cpu_worker: dict[str, Any],
    gpu_worker: dict[str, Any],
    settings: ElectroDBSettings | None = None,
    job_store: dict[str, Any] | None = None,
    queue_store: dict[str, Any] | None = None,
    cpu_worker_name: str = "cpu",
    gpu_worker_name: str = "gpu",
    base_dir: str | None = None,
) -> dict[str, Any]:
    """A jobflow-remote project (the mapping of its YAML file) for an ElectroDB campaign.

    Parameters
    ----------
    name
        Project name (``jf -p NAME ...``; ``SubmitOptions.project``).
    cpu_worker, gpu_worker
        Worker entries (:func:`slurm_worker`, or any jobflow-remote worker mapping).
    settings
        ElectroDB settings whose MongoDB holds the JobStore and the queue (default: the process settings).
    job_store, queue_store
        Override the JobStore (``JobStore.from_dict_spec`` format) or the queue store (a MongoStore entry); by
        default both come from ``settings`` (queue collection ``jf_jobs`` in the same database).
    cpu_worker_name, gpu_worker_name
        Worker names (``SubmitOptions.cpu_worker`` / ``gpu_worker``).
    base_dir
        jobflow-remote's project folder (logs, daemon files); None: its default ``~/.jfremote/NAME``.
    """
    if job_store is None or queue_store is None:
        settings = settings or get_settings()
        if settings.embedded:
            raise JobflowRemoteConfigError(EMBEDDED_FIX)
        job_store = job_store or electrodb_jobstore_spec(settings)
        queue_store = queue_store or {
            "type": "MongoStore",
            "database": settings.db_name,
            "collection_name": QUEUE_COLLECTION,
            "uri": settings.db_uri,
        }
    config: dict[str, Any] = {
        "name": name,
        "workers": {cpu_worker_name: cpu_worker, gpu_worker_name: gpu_worker},
        "queue": {"store": queue_store},
        "exec_config": {
            # the CPU jobs include the convergence checks of campaigns with until, which read the production's
            # working copy: they need its folder too (the CPU worker must see the GPU worker's work_dir)
            CPU_EXEC_CONFIG: {"export": {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", **_resume(gpu_worker)}},
            GPU_EXEC_CONFIG: {"export": _gpu_export(gpu_worker), "pre_run": GPU_PRE_RUN},
        },
        "jobstore": job_store,
        "metadata": {"generated_by": "electrodb", "cpu_worker": cpu_worker_name, "gpu_worker": gpu_worker_name},
    }
    if base_dir is not None:
        config["base_dir"] = base_dir
    return config


def _gpu_export(gpu_worker: dict[str, Any]) -> dict[str, str]:
    """Environment of MD jobs: one thread per process, and production working copies kept beside the worker's job
    folders (``ELECTRODB_RESUME_DIR``), which ``jf job rerun`` deletes, so that a killed production resumes
    from its checkpoint (:mod:`electrodb.flows.resume`)."""
    return {"OMP_NUM_THREADS": "1", **_resume(gpu_worker)}


def _resume(gpu_worker: dict[str, Any]) -> dict[str, str]:
    """``ELECTRODB_RESUME_DIR``: the production working copies' folder beside the GPU worker's job folders."""
    work_dir = gpu_worker.get("work_dir")
    return {"ELECTRODB_RESUME_DIR": f"{str(work_dir).rstrip('/')}/{RESUME_FOLDER}"} if work_dir else {}


def write_project_config(path: str | os.PathLike[str], name: str, *, overwrite: bool = False, **kwargs: Any) -> Path:
    """Write :func:`project_config` ``(name, **kwargs)`` as YAML to ``path`` after validating it; return the path.

    The file may hold the database URI with its credentials: it is written with mode 0600, atomically (an
    interrupted write leaves the previous file or nothing). Put it in jobflow-remote's projects folder
    (``~/.jfremote/NAME.yaml``).

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    JobflowRemoteConfigError
        When the configuration does not validate (:func:`validate_project_config`).
    """
    target = check_output_path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (or choose another file) to replace it")
    config = project_config(name, **kwargs)
    validate_project_config(config)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(config, fh, sort_keys=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _format_validation_error(exc: Any) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "(project)"
        message = str(err.get("msg", "")).strip().splitlines()
        lines.append(f"{where}: {message[-1] if message else 'invalid'}")
    return "; ".join(lines)


def validate_project_config(source: str | os.PathLike[str] | dict[str, Any], gpu_worker: str | None = "gpu") -> Project:
    """Validate a jobflow-remote project (a YAML/JSON file or its mapping) for ElectroDB; return the ``Project``.

    Checks, in order: jobflow-remote's own pydantic ``Project`` model (workers, exec_config, queue and JobStore
    as jobflow-remote builds them); the JobStore has the additional stores ElectroDB jobs write (``data`` and
    :data:`~electrodb.store.stores.JOB_COLLECTIONS`) and is not an embedded database; every worker's ``resources`` are
    keys of its scheduler's template; the worker named ``gpu_worker`` (when present) asks for a GPU per job.

    Raises
    ------
    JobflowRemoteConfigError
        With one line per problem and the fix.
    """
    from jobflow_remote.config.base import Project

    if isinstance(source, dict):  # a copy: maggma's GridFSStore appends to the searchable_fields list it is given
        data, where = copy.deepcopy(source), "project"
    else:
        path = Path(source)
        if not path.is_file():
            raise JobflowRemoteConfigError(f"{path} does not exist; write it with write_project_config")
        with open(path) as fh:
            data = yaml.safe_load(fh)
        where = str(path)
        if not isinstance(data, dict):
            raise JobflowRemoteConfigError(f"{where} is not a mapping; it must be a jobflow-remote project file")
    try:
        project = Project.model_validate(data)
    except ValidationError as exc:
        raise JobflowRemoteConfigError(
            f"{where} is not a valid jobflow-remote project: {_format_validation_error(exc)}"
        ) from None
    spec = project.jobstore or {}
    stores = [spec.get("docs_store", {}), *(spec.get("additional_stores") or {}).values()]
    if any(isinstance(s, dict) and s.get("type", s.get("@class")) in EMBEDDED_STORE_TYPES for s in stores):
        raise JobflowRemoteConfigError(f"{where}: {EMBEDDED_FIX}")
    job_store = project.get_jobstore()
    missing = [n for n in (BLOB_COLLECTION, *JOB_COLLECTIONS) if n not in job_store.additional_stores]
    if missing:
        raise JobflowRemoteConfigError(
            f"{where}: the jobstore lacks the additional store(s) {missing} that ElectroDB jobs write; generate it "
            "with electrodb_jobstore_spec() (or add those stores under jobstore.additional_stores)"
        )
    for name, worker in project.workers.items():
        try:
            worker.get_scheduler_io().generate_header(worker.resources or {})
        except Exception as exc:
            raise JobflowRemoteConfigError(f"{where}: worker {name!r} resources: {exc}") from None
    if gpu_worker is not None and gpu_worker in project.workers:
        res = project.workers[gpu_worker].resources or {}
        if not ("gpu" in str(res.get("gres", "")) or res.get("gpus") or res.get("gpus_per_node")):
            raise JobflowRemoteConfigError(
                f"{where}: worker {gpu_worker!r} runs MD but requests no GPU; add resources gres: 'gpu:1' "
                "(one GPU per MD job; the scheduler then sets CUDA_VISIBLE_DEVICES)"
            )
    return project
