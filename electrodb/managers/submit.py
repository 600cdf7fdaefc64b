"""Submitting a campaign to a workflow engine, and reading its state back: the engine-independent part.

``electrodb campaign submit`` builds one :class:`~electrodb.flows.md.ElectrolyteFlowMaker` flow per system
(``metadata['electrodb_system_id']`` on the flow and every job, so each engine can find a system's jobs again),
skips systems already completed (``trajectories``) or queued, running or completed in the engine, stages the model
into the data store (:mod:`electrodb.models.staging`) and hands the rest to an :class:`EngineBackend`, which submits
them in chunks of ``SubmitOptions.chunk_size`` systems with packing on CPU workers and MD on GPU workers.

An embedded database (SQLite files under ``ELECTRODB_DATA_DIR``) is refused for workers on several nodes: SQLite's
locking does not hold over network file systems, so concurrent writers on different nodes corrupt it. Several
processes on *one* node are safe (``multi_node=False``, ``--single-node``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobflow import Flow, JobStore
from maggma.stores import GridFSStore, JSONStore, MemoryStore, MongoStore, MontyStore

from electrodb.flows.audit import AuditMaker
from electrodb.flows.campaign import pending_systems, register_campaign
from electrodb.flows.md_records import produced_ps
from electrodb.flows.system import ElectrolyteFlowMaker
from electrodb.managers.fireworks import FireWorksBackend
from electrodb.managers.jobflow_remote import JobflowRemoteBackend
from electrodb.managers.stages import (
    ACTIVE_PHASES,
    SYSTEM_KEY,
    EngineBackend,
    EngineConfigError,
    SubmitOptions,
    engine_phase,
)
from electrodb.models.staging import stage_model
from electrodb.store.sqlite import SQLiteStore
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.campaign import Campaign, SystemSpec

__all__ = [
    "ENGINE_NAMES",
    "SubmitReport",
    "SystemState",
    "campaign_states",
    "check_store_for_engine",
    "get_backend",
    "submit_campaign",
    "system_flows",
]

ENGINE_NAMES = ("fireworks", "jobflow-remote")
MODEL_KEY = "electrodb_model_sha256"  # job metadata: the staged model the MD jobs resolve on the worker


def get_backend(name: str, **kwargs: Any) -> EngineBackend:
    """The backend of engine ``name`` (``'fireworks'`` or ``'jobflow-remote'``), imported only when asked for.

    Keyword arguments go to the backend's constructor (FireWorks: ``launchpad=`` a LaunchPad or its YAML file).
    """
    key = name.strip().lower().replace("_", "-")
    if key == "fireworks":
        return FireWorksBackend(**kwargs)
    if key in ("jobflow-remote", "jfremote"):
        return JobflowRemoteBackend(**kwargs)
    raise EngineConfigError(f"unknown engine {name!r}; use one of {', '.join(ENGINE_NAMES)}")


def _store_locations(job_store: JobStore) -> dict[str, str]:
    """``{store name: 'network' | 'node' | 'process' | 'unknown'}``: who can reach each store of a JobStore."""
    out = {}
    for name, store in {"docs": job_store.docs_store, **job_store.additional_stores}.items():
        if isinstance(store, MemoryStore):  # before MongoStore: MemoryStore subclasses it
            out[name] = "process"
        elif isinstance(store, (SQLiteStore, MontyStore, JSONStore)):
            out[name] = "node"
        elif isinstance(store, (MongoStore, GridFSStore)) or type(store).__name__ in ("S3Store", "AzureBlobStore"):
            out[name] = "network"
        else:
            out[name] = "unknown"
    return out


def check_store_for_engine(job_store: JobStore, engine: str, multi_node: bool = True) -> None:
    """Refuse a JobStore the engine's workers cannot share.

    Parameters
    ----------
    job_store
        The JobStore the jobs will write (``ElectroDBStores.job_store()``).
    engine
        Engine name, for the message.
    multi_node
        True when workers may run on other nodes (the default for engines); False when every worker runs on
        this machine (``--single-node``), where the embedded SQLite store is safe with several processes.

    Raises
    ------
    EngineConfigError
        A store lives in this process's memory (no other process sees it), or, with ``multi_node``, in files on
        this node (the embedded SQLite database): the message says to set ``ELECTRODB_DB_URI`` to a MongoDB
        server, or to pass ``--single-node``.
    """
    where = _store_locations(job_store)
    in_memory = sorted(n for n, w in where.items() if w == "process")
    if in_memory:
        raise EngineConfigError(
            f"the JobStore's {', '.join(in_memory)} store(s) live in this process's memory, which {engine} "
            "workers cannot reach; use the ElectroDB database (ELECTRODB_DB_URI, or the embedded one with "
            "--single-node)"
        )
    on_node = sorted(n for n, w in where.items() if w == "node")
    if on_node and multi_node:
        raise EngineConfigError(
            f"the embedded database (SQLite files on this node) cannot be shared by {engine} workers on several "
            "nodes: SQLite locking does not hold over network file systems and concurrent writers corrupt it. "
            "Set ELECTRODB_DB_URI to a MongoDB server every node can reach (e.g. "
            "ELECTRODB_DB_URI=mongodb://dbhost:27017), or pass --single-node if every worker runs on this machine"
        )


def system_flows(
    specs: Sequence[SystemSpec], maker: Any = None, model_sha256: str | None = None
) -> list[tuple[SystemSpec, Flow]]:
    """One flow per system, with ``metadata['electrodb_system_id']`` (and the staged model's
    ``'electrodb_model_sha256'`` when given) on the flow and on every job."""
    maker = maker or ElectrolyteFlowMaker()
    out = []
    for spec in specs:
        flow = maker.make(spec)
        meta: dict[str, Any] = {SYSTEM_KEY: spec.system_id}
        if model_sha256:
            meta[MODEL_KEY] = model_sha256
        flow.update_metadata(meta)
        out.append((spec, flow))
    return out


@dataclass
class SubmitReport:
    """What one ``campaign submit`` did.

    Attributes
    ----------
    total
        Systems in the campaign.
    completed
        Ids skipped because their trajectory is completed in the database.
    in_engine
        Ids skipped because the engine already has them (id -> the engine's state).
    submitted
        Ids handed to the engine now (for a dry run: those that would be).
    n_chunks
        Workflows / batches the submitted systems form (``ceil(len(submitted) / chunk_size)``).
    model_sha256
        Identity of the staged model (None: a packaged model, or a dry run).
    notes
        What the user should know about this submission (e.g. runs that the engine cannot audit).
    """

    total: int
    completed: list[str] = field(default_factory=list)
    in_engine: dict[str, str] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)
    n_chunks: int = 0
    model_sha256: str | None = None
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)


def submit_campaign(
    campaign: Campaign,
    stores: ElectroDBStores,
    backend: EngineBackend,
    options: SubmitOptions | None = None,
    *,
    multi_node: bool = True,
    dry_run: bool = False,
    maker: Any = None,
) -> SubmitReport:
    """Submit every system of ``campaign`` that is neither completed nor already in the engine.

    Parameters
    ----------
    campaign
        The campaign (with the model's cutoff applied, :func:`electrodb.flows.campaign.with_model_cutoff`).
    stores
        The database the jobs write (its :meth:`~electrodb.store.stores.ElectroDBStores.job_store` is serialised into
        the engine's jobs).
    backend
        The engine (:func:`get_backend`).
    options
        Worker names, chunk size, engine extras.
    multi_node
        Whether workers may run on other nodes (see :func:`check_store_for_engine`).
    dry_run
        Only report what would be submitted: nothing is staged, registered or submitted.
    maker
        The per-system flow maker (default :class:`~electrodb.flows.md.ElectrolyteFlowMaker`).
    """
    options = options or SubmitOptions()
    if options.chunk_size < 1:
        raise EngineConfigError(f"--chunk-size must be at least 1 system, got {options.chunk_size}")
    job_store = stores.job_store()
    check_store_for_engine(job_store, backend.name, multi_node)
    specs = campaign.systems()
    todo, done = pending_systems(specs, stores)
    report = SubmitReport(total=len(specs), completed=[s.system_id for s in done], dry_run=dry_run)
    engine = backend.states([s.system_id for s in todo]) if todo else {}
    for spec in todo:
        state = engine.get(spec.system_id)
        if engine_phase(state) in ACTIVE_PHASES:
            report.in_engine[spec.system_id] = str(state)
    todo = [s for s in todo if s.system_id not in report.in_engine]
    report.n_chunks = -(-len(todo) // options.chunk_size)
    if dry_run or not todo:
        report.submitted = [s.system_id for s in todo]
        return report
    register_campaign(campaign, stores, specs[0].model_id)
    report.model_sha256 = stage_model(stores.data, campaign.model)
    if campaign.audit is not None and getattr(backend, "workers_reach_database", True):
        # the committee audit follows each system's production on a CPU worker
        maker = dataclasses.replace(maker or ElectrolyteFlowMaker(), audit_maker=AuditMaker(settings=campaign.audit))
    elif campaign.audit is not None:  # its workers read no database: the audit could not see the frames
        report.notes.append(
            f"{backend.name} workers read no database, so the runs are not audited there: run `electrodb model "
            f"audit --committee {campaign.audit.committee}` once they are done"
        )
    flows = system_flows(todo, maker, report.model_sha256)
    extra = {**options.extra, "submission_id": options.extra.get("submission_id") or uuid.uuid4().hex[:12]}
    opts = SubmitOptions(
        cpu_worker=options.cpu_worker,
        gpu_worker=options.gpu_worker,
        chunk_size=options.chunk_size,
        project=options.project,
        extra=extra,
    )
    report.submitted = list(backend.submit(flows, job_store, opts))
    return report


@dataclass
class SystemState:
    """One system's status for ``campaign status``: ``status`` is ``pending`` (never submitted), ``queued``,
    ``running``, ``completed``, ``unstable``, ``failed`` or ``stopped``; ``engine_state`` the engine's own."""

    spec: SystemSpec
    status: str
    engine_state: str | None = None
    reason: str | None = None
    n_frames: int = 0
    temperature_status: str | None = None
    production_ps: float = 0.0
    convergence: dict | None = None  # the last segment's judgement (campaigns with until: flows.segments)


def campaign_states(
    specs: Sequence[SystemSpec], stores: ElectroDBStores, backend: EngineBackend | None = None
) -> list[SystemState]:
    """Each system's status from ``trajectories`` and, when given, the engine's own state.

    A stored final status (``completed``, ``unstable``) wins; otherwise a failed engine job makes the system
    ``failed`` (with the trajectory's reason, if any), a running or queued one ``running`` / ``queued``; without
    engine information the trajectory's status is shown (``running``, ``failed``), and ``pending`` when there is
    none.
    """
    ids = [s.system_id for s in specs]
    docs = {
        d["trajectory_id"]: d
        for d in stores.trajectories.query(
            {"trajectory_id": {"$in": ids}},
            properties=[
                "trajectory_id",
                "status",
                "status_reason",
                "n_frames",
                "frame_interval_ps",
                "temperature_status",
                "convergence",
            ],
        )
    }
    engine = backend.states(ids) if backend is not None and ids else {}
    # a system that failed before it had a trajectory (no model, elements not covered, packing) says so here
    early = {
        d["system_id"]: {"status": "failed", "status_reason": d.get("run_reason")}
        for d in stores.systems.query(
            {"system_id": {"$in": ids}, "run_status": "failed"}, properties=["system_id", "run_reason"]
        )
    }
    out = []
    for spec in specs:
        doc = docs.get(spec.system_id) or early.get(spec.system_id, {})
        stored = doc.get("status")
        state = engine.get(spec.system_id)
        phase = engine_phase(state)
        if stored in ("completed", "unstable"):
            status = stored
        elif phase in ("failed", "running", "queued", "stopped"):
            status = phase
        elif phase == "completed":  # the engine finished but no trajectory says so
            status = "failed"
        else:
            status = stored or "pending"
        reason = doc.get("status_reason")
        if status == "failed" and not reason and state:
            reason = f"{backend.name if backend else 'engine'} state {state}"
        out.append(
            SystemState(
                spec=spec,
                status=status,
                engine_state=state,
                reason=reason,
                n_frames=int(doc.get("n_frames") or 0),
                temperature_status=doc.get("temperature_status"),
                production_ps=produced_ps(doc),
                convergence=doc.get("convergence"),
            )
        )
    return out
