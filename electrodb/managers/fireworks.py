"""FireWorks backend: one Workflow per chunk of systems, packing on CPU workers and MD on GPU workers.

Each job becomes a Firework through jobflow's own ``flow_to_workflow`` (the JobStore is serialised into every
Firework, so a worker writes wherever it points). Before conversion every job gets, as its
``JobConfig.manager_config`` (which jobflow copies into the Firework's spec):

- ``_category``: ``'cpu'`` or ``'gpu'`` (:func:`electrodb.managers.stages.stage_kind`);
- ``_fworker``: the worker name of that kind (``SubmitOptions.cpu_worker`` / ``gpu_worker``);
- ``electrodb_submission``: the submission's id.

A FireWorks worker picks a Firework only if its ``my_fworker.yaml`` has that ``name`` and ``category``, so boxes
are packed by CPU workers and MD runs on GPU workers. jobflow also copies the job metadata into the spec, so
``spec.electrodb_system_id`` finds a system's Fireworks (indexed on submission).

Re-submission: systems with Fireworks in a non-failed state (:data:`electrodb.managers.submit.ACTIVE_PHASES`)
are skipped; a system whose Fireworks FIZZLED is rerun in place (``LaunchPad.rerun_fw`` on each fizzled
Firework: its waiting children follow), never added twice; archived workflows count as absent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from jobflow import Flow, JobStore

from electrodb.flows.segments import remember_routes
from electrodb.managers.stages import (
    ACTIVE_PHASES,
    SYSTEM_KEY,
    EngineConfigError,
    FlowKey,
    SubmitOptions,
    chunked,
    engine_phase,
    stage_kind,
)
from electrodb.systems.campaign import SystemSpec

# fireworks (the optional extra electrodb[fireworks], also behind jobflow.managers.fireworks) is imported where used.

__all__ = ["FW_STATE_ORDER", "FireWorksBackend", "aggregate_state", "workflow_for"]

#: A system's state is that of its least advanced Firework, read in this order (first present wins), except that
#: a system whose Fireworks all COMPLETED is COMPLETED.
FW_STATE_ORDER = ("FIZZLED", "RUNNING", "RESERVED", "READY", "WAITING", "PAUSED", "DEFUSED", "COMPLETED")
_QUERY_BATCH = 1000  # system ids per LaunchPad query


def aggregate_state(states: Iterable[str]) -> str:
    """One system's FireWorks state from those of its Fireworks (see :data:`FW_STATE_ORDER`)."""
    present = set(states)
    for state in FW_STATE_ORDER:
        if state in present:
            return state
    return sorted(present)[0] if present else "ABSENT"


def _routing(flow: Flow, options: SubmitOptions, submission_id: str) -> None:
    """Set ``_category`` / ``_fworker`` (by stage kind) and the submission id on every job of ``flow``."""
    workers = {"cpu": options.cpu_worker, "gpu": options.gpu_worker}
    for job, _ in flow.iterflow():
        kind = stage_kind(job)
        job.config.manager_config = {
            **job.config.manager_config,
            "_category": kind,
            "_fworker": workers[kind],
            "electrodb_submission": submission_id,
        }


def workflow_for(
    flows: Sequence[tuple[SystemSpec | FlowKey, Flow]], job_store: JobStore, options: SubmitOptions, name: str
) -> Any:
    """One FireWorks ``Workflow`` holding the flows of several systems (or another flow, such as a refine round,
    keyed by a :class:`~electrodb.managers.stages.FlowKey`), routed by stage kind."""
    from jobflow.managers.fireworks import flow_to_workflow

    submission_id = str(options.extra.get("submission_id") or "manual")
    for _, flow in flows:
        _routing(flow, options, submission_id)
        remember_routes(flow)  # later segments (until:) go where the first went
    return flow_to_workflow(Flow([f for _, f in flows], name=name), store=job_store)


class FireWorksBackend:
    """:class:`~electrodb.managers.stages.EngineBackend` on a FireWorks LaunchPad.

    Parameters
    ----------
    launchpad
        A ``fireworks.LaunchPad``, the path of its YAML file (``my_launchpad.yaml``), or None for
        ``LaunchPad.auto_load()`` (FireWorks' own configuration: ``FW_CONFIG_FILE``, ``~/.fireworks``).
    """

    name = "fireworks"
    workers_reach_database = True  # each Firework carries the JobStore, which the worker connects to

    def __init__(self, launchpad: Any = None) -> None:
        self._launchpad = launchpad

    @property
    def launchpad(self) -> Any:
        """The LaunchPad, loaded on first use."""
        if self._launchpad is None or isinstance(self._launchpad, (str, Path)):
            try:
                from fireworks import LaunchPad
            except ImportError as exc:
                raise EngineConfigError(
                    f"the FireWorks engine needs the fireworks package: pip install 'electrodb[fireworks]' ({exc})"
                ) from exc
            if self._launchpad is None:
                self._launchpad = LaunchPad.auto_load()
            else:
                path = Path(self._launchpad).expanduser()
                if not path.is_file():
                    raise EngineConfigError(f"--launchpad {path} does not exist; give the LaunchPad's YAML file")
                self._launchpad = LaunchPad.from_file(str(path))
        return self._launchpad

    def _fireworks(self, system_ids: Sequence[str]) -> list[dict[str, Any]]:
        """``fw_id``, ``state`` and ElectroDB spec fields of the (non-archived) Fireworks of these systems."""
        out: list[dict[str, Any]] = []
        collection = self.launchpad.fireworks
        for batch in chunked(list(system_ids), _QUERY_BATCH):
            out.extend(
                collection.find(
                    {f"spec.{SYSTEM_KEY}": {"$in": batch}, "state": {"$ne": "ARCHIVED"}},
                    {"fw_id": 1, "state": 1, f"spec.{SYSTEM_KEY}": 1, "spec.electrodb_submission": 1, "_id": 0},
                )
            )
        return out

    def _latest(self, system_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Each system's Fireworks of its latest submission (the one holding its highest ``fw_id``)."""
        by_system: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for fw in self._fireworks(system_ids):
            by_system[fw["spec"][SYSTEM_KEY]].append(fw)
        latest = {}
        for sid, fws in by_system.items():
            newest = max(fws, key=lambda f: f["fw_id"])["spec"].get("electrodb_submission")
            latest[sid] = [f for f in fws if f["spec"].get("electrodb_submission") == newest]
        return latest

    def states(self, system_ids: list[str]) -> dict[str, str]:
        """Each submitted system's state (:func:`aggregate_state` of its latest submission's Fireworks)."""
        return {sid: aggregate_state(f["state"] for f in fws) for sid, fws in self._latest(system_ids).items()}

    def fireworks_of(self, system_id: str) -> list[dict[str, Any]]:
        """The latest submission's Fireworks of one system: ``fw_id``, ``state`` (and the spec's ElectroDB keys)."""
        return sorted(self._latest([system_id]).get(system_id, []), key=lambda f: f["fw_id"])

    def submit(
        self, flows: list[tuple[SystemSpec | FlowKey, Flow]], job_store: JobStore, options: SubmitOptions
    ) -> list[str]:
        """Add one Workflow per ``options.chunk_size`` systems; skip systems already active, rerun fizzled ones.

        Returns the ids of the systems submitted or rerun now.
        """
        ids = [spec.system_id for spec, _ in flows]
        latest = self._latest(ids)
        launchpad = self.launchpad
        fresh, rerun = [], []
        for spec, flow in flows:
            fws = latest.get(spec.system_id)
            phase = engine_phase(aggregate_state(f["state"] for f in fws)) if fws else "absent"
            if phase in ACTIVE_PHASES:
                continue
            if phase == "failed":
                for fw in fws or []:
                    if fw["state"] == "FIZZLED":
                        launchpad.rerun_fw(fw["fw_id"])
                rerun.append(spec.system_id)
            else:
                fresh.append((spec, flow))
        if fresh:
            launchpad.fireworks.create_index(f"spec.{SYSTEM_KEY}")
        chunks = list(chunked(fresh, options.chunk_size))
        campaign = fresh[0][0].campaign if fresh else ""
        submission = options.extra.get("submission_id") or "manual"
        for k, chunk in enumerate(chunks, 1):
            launchpad.add_wf(
                workflow_for(chunk, job_store, options, name=f"electrodb {campaign} {submission} {k}/{len(chunks)}")
            )
        return [spec.system_id for spec, _ in fresh] + rerun
