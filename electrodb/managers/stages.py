"""Which kind of worker each ElectroDB job needs, and the interface every engine backend implements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from jobflow import Flow, Job, JobStore

from electrodb.systems.campaign import SystemSpec

__all__ = [
    "ACTIVE_PHASES",
    "STAGE_KIND",
    "SYSTEM_KEY",
    "EngineBackend",
    "EngineConfigError",
    "FlowKey",
    "SubmitOptions",
    "WorkerKind",
    "chunked",
    "engine_phase",
    "job_stage",
    "stage_kind",
]

_T = TypeVar("_T")

WorkerKind = Literal["cpu", "gpu"]

# The first word of a job's name (set by ElectrolyteFlowMaker: "box NaCl 1.00 m 298 K", ...) -> worker kind.
STAGE_KIND: dict[str, WorkerKind] = {
    "box": "cpu",
    "equilibrate": "gpu",
    "production": "gpu",
    "batched": "gpu",
    "ti": "gpu",
    "train": "gpu",
    "build": "cpu",
}


def job_stage(job: Job) -> str:
    """The stage of a job: the first word of its name (``'box'``, ``'equilibrate'``, ``'production'``, ...)."""
    return (job.name or "").split(" ", 1)[0].lower()


def stage_kind(job: Job) -> WorkerKind:
    """``'gpu'`` for MD-like stages, ``'cpu'`` for packing, analysis and anything unknown."""
    return STAGE_KIND.get(job_stage(job), "cpu")


@dataclass
class SubmitOptions:
    """What ``electrodb campaign submit`` asks of an engine.

    Attributes
    ----------
    cpu_worker, gpu_worker
        Engine-side names of the worker (jobflow-remote worker; FireWorks ``_fworker``) for each kind.
    chunk_size
        Systems per submitted Workflow / batch of flows (never one object of 3e4 jobs).
    project
        jobflow-remote project name (None: its default); unused by FireWorks.
    extra
        Engine-specific settings (resources, exec_config, launchpad file, ...).
    """

    cpu_worker: str = "cpu"
    gpu_worker: str = "gpu"
    chunk_size: int = 200
    project: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FlowKey:
    """What an engine tracks a flow that is not a system's by (a refine round, :mod:`electrodb.managers.refine_submit`),
    in place of its :class:`~electrodb.systems.campaign.SystemSpec`: the engines read only these three fields.

    Attributes
    ----------
    system_id
        The key in ``metadata['electrodb_system_id']`` of the flow and its jobs: the engine's state is read, and a
        resubmission skipped or rerun, by it.
    campaign
        Names the engine's workflow / batch.
    model
        A model reference to stage for MD jobs; None for none.
    """

    system_id: str
    campaign: str
    model: str | None = None


class EngineBackend(Protocol):
    """One workflow engine. ``flows`` are (system spec, that system's Flow with
    ``metadata['electrodb_system_id']`` set on it and on every job); a :class:`FlowKey` stands in for the spec of
    a flow that is not a system's."""

    name: str

    def submit(
        self, flows: list[tuple[SystemSpec | FlowKey, Flow]], job_store: JobStore, options: SubmitOptions
    ) -> list[str]:
        """Submit, in chunks, the systems not already queued/running/completed in the engine; return the system
        ids submitted now."""
        ...

    def states(self, system_ids: list[str]) -> dict[str, str]:
        """The engine's own state of each system (its least advanced job), e.g. 'READY', 'RUNNING',
        'COMPLETED', 'FIZZLED' (FireWorks) or jobflow-remote's JobState names; absent ids were never submitted."""
        ...


SYSTEM_KEY = "electrodb_system_id"  # job/flow metadata (FireWorks copies it into each Firework's spec)

# Engine state names (FireWorks Firework states; jobflow-remote JobState and FlowState values) -> phase.
_PHASE_OF: dict[str, str] = {
    **dict.fromkeys(("WAITING", "READY", "RESERVED", "PAUSED", "CHECKED_OUT", "UPLOADED"), "queued"),
    **dict.fromkeys(("SUBMITTED", "BATCH_SUBMITTED"), "queued"),
    **dict.fromkeys(("RUNNING", "BATCH_RUNNING", "TERMINATED", "DOWNLOADED"), "running"),
    "COMPLETED": "completed",
    **dict.fromkeys(("FIZZLED", "FAILED", "REMOTE_ERROR"), "failed"),
    **dict.fromkeys(("DEFUSED", "STOPPED", "USER_STOPPED"), "stopped"),
    "ARCHIVED": "absent",
}
#: Phases in which a system is not submitted again (``stopped``: a user's decision; archive or delete it in the
#: engine to resubmit; ``unknown``: a state this version does not know, never duplicated).
ACTIVE_PHASES = frozenset({"queued", "running", "completed", "stopped", "unknown"})


class EngineConfigError(ValueError):
    """The engine, its options or the database cannot work together; the message names the fix."""


def engine_phase(state: str | None) -> str:
    """``'queued'``, ``'running'``, ``'completed'``, ``'failed'``, ``'stopped'``, ``'absent'`` (never submitted,
    or archived) or ``'unknown'`` for an engine's state name (FireWorks or jobflow-remote; any case)."""
    if not state:
        return "absent"
    return _PHASE_OF.get(str(state).rsplit(".", 1)[-1].upper(), "unknown")


def chunked(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    """Consecutive lists of at most ``size`` items (the last may be shorter)."""
    if size < 1:
        raise EngineConfigError(f"chunk size must be at least 1 system, got {size}")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
