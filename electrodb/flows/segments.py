"""Production in segments until the properties a campaign asks for converge (campaign ``until:`` and ``budget:``).

A campaign with ``until`` does not guess a run length. Each system runs a first segment (``budget.segment_ps``,
default ``md.production_ps``); then a convergence-check job (:class:`ConvergenceCheckMaker`) judges the stored
trajectory with the very analysis ``electrodb build`` runs (:func:`electrodb.builders.trajectory.analyse_item`,
the per-property verdicts of :mod:`electrodb.analysis`) and either stops or returns a jobflow ``Response`` that
adds the next segment and the next check, as atomate2's dynamic OpenMM flows do. The same flow therefore runs
under ``run_locally``, ``campaign run --workers``, FireWorks and jobflow-remote.

After each segment every headline property (:data:`electrodb.documents.registry.PROPERTIES` with a
per-trajectory source) gets ``needs_ps``: the production it still needs, from its verdict's ``run_factor``
(:class:`electrodb.analysis.convergence.Verdict`): ``needs_ps = (run_factor − 1) × production so far``; 0 when
converged, ``inf`` when running longer cannot make it converge (too few ions for the error target, a box too
small), None when not estimated. The decision (:func:`decide`):

1. every ``until`` property converged → stop (``converged``);
2. the pending ones cannot converge by running longer → stop (``unreachable``), nothing more is spent on them;
3. the system's ``max_production_ps`` or ``max_wall_hours``, or the campaign's ``total_core_hours`` /
   ``total_gpu_hours``, is spent → stop (``budget``);
4. the cheapest pending property (smallest finite ``needs_ps``) needs more than twice what the budget has left →
   stop (``budget``): it would not converge, and the estimate is not that uncertain;
5. otherwise continue to ``production + max(segment_ps, min(needs_ps × 1.1, production))`` (the largest finite
   ``needs_ps`` of the pending properties, 10 % over, but at most doubling the run per segment: an estimate from a
   short run is rough), capped by the budget and rounded up to the frame grid.

Where the campaign budget is shared (local runs, :func:`electrodb.flows.campaign.run_campaign`): every system
runs its first segment, then, one segment at a time, the system whose cheapest pending ``unconverged`` property
needs the least wall time (``needs_ps`` ÷ measured speed) runs next, ranked again after every segment.
``benchmarks/segments.py`` compares that policy with the
campaign order and measures the MD steps saved against the shortest fixed run length.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from jobflow import CURRENT_JOB, Flow, Maker, Response
from pydantic import BaseModel, Field

from electrodb.builders.analysis_settings import AnalysisSettings
from electrodb.builders.trajectory import analyse_item
from electrodb.documents.registry import PROPERTIES, PROPERTY_COLLECTIONS
from electrodb.documents.system import SystemDocument
from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.flows.job_io import job_stores, output_document, store_job
from electrodb.flows.md import ProductionMDMaker, report
from electrodb.flows.md_records import mark, produced_ps
from electrodb.flows.resume import open_working_copy
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.budget import Budget
from electrodb.systems.campaign import Campaign, SystemSpec

__all__ = [
    "ROUTES_KEY",
    "ConvergenceCheckMaker",
    "PropertyState",
    "SegmentRecord",
    "campaign_spent_hours",
    "check_until",
    "decide",
    "decide_for",
    "judge_segment",
    "judge_trajectory",
    "remember_routes",
    "route_like_the_first",
    "until_properties",
]

#: Headline properties a segment can be judged on: those computed per trajectory (not η or the run-level ones).
UNTIL_PROPERTIES: tuple[str, ...] = tuple(
    name for name, p in PROPERTIES.items() if p.source in PROPERTY_COLLECTIONS and name != "eta"
)
#: Largest growth of a run per segment (an estimate from a short run is rough).
MAX_GROWTH = 2.0
#: Margin on the estimate of what the pending properties need.
NEEDS_MARGIN = 1.1


def until_properties(until: list[str] | tuple[str, ...] | str | None) -> tuple[str, ...]:
    """The property names an ``until`` asks for (``all``: :data:`UNTIL_PROPERTIES`).

    Raises
    ------
    ValueError
        An unknown name, with the close matches and where the known names are listed.
    """
    if until is None:
        return ()
    names = [until] if isinstance(until, str) else list(until)
    if "all" in names:
        return UNTIL_PROPERTIES
    unknown = [n for n in names if n not in UNTIL_PROPERTIES]
    if unknown:
        hints = []
        for n in unknown:
            close = difflib.get_close_matches(n, UNTIL_PROPERTIES, n=3)
            hints.append(f"{n!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise ValueError(
            f"until: unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(hints)}; until takes 'all' or "
            f"names from {', '.join(UNTIL_PROPERTIES)}"
        )
    return tuple(dict.fromkeys(names))


def check_until(campaign: Campaign) -> None:
    """Refuse a campaign whose ``until`` names an unknown property (before anything is stored).

    Raises
    ------
    ValueError
        One line naming the property, its close matches and the known names.
    """
    until_properties(campaign.until)


class PropertyState(BaseModel):
    """One property after a segment: its status, why it is not converged, and the production it still needs."""

    status: str
    reason: str = ""
    needs_ps: float | None = Field(None, description="more production it needs (ps); None: not estimated")
    unreachable: bool = Field(False, description="running longer cannot make it converge (too few ions, small box)")


class SegmentRecord(BaseModel):
    """What the convergence check found after a segment, and what it decided (``trajectories.convergence``)."""

    segment: int
    production_ps: float = Field(description="production so far (ps)")
    wall_time_s: float = Field(description="wall time of the production so far (s)")
    ps_per_hour: float | None = Field(None, description="measured speed (ps of production per wall hour)")
    until: list[str]
    properties: dict[str, PropertyState]
    converged: list[str] = Field(default_factory=list)
    pending: list[str] = Field(default_factory=list, description="until properties not converged yet")
    unreachable: list[str] = Field(default_factory=list, description="pending ones running longer cannot fix")
    decision: str = Field(description="continue, converged, unreachable or budget")
    reason: str = ""
    next_production_ps: float | None = None


def _get(doc: dict[str, Any] | None, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def judge_trajectory(
    meta: dict[str, Any], stores: ElectroDBStores, settings: AnalysisSettings | None = None
) -> dict[str, PropertyState]:
    """Every per-trajectory headline property of one stored trajectory, judged as a build would judge it.

    Parameters
    ----------
    meta
        The ``trajectories`` document.
    stores
        Stores holding its frames (``trajectories``, ``data``).
    settings
        Analysis settings (default :class:`~electrodb.builders.analysis_settings.AnalysisSettings`, as a build).

    Returns
    -------
    dict
        Property name -> :class:`PropertyState`; a trajectory the analysis skips (too short, not analysable)
        gives every property ``insufficient`` with the skip reason.
    """
    settings = settings or AnalysisSettings()
    produced = produced_ps(meta)
    out: dict[str, PropertyState] = {}
    item = analyse_item(meta, stores.trajectories, stores.data, settings)
    if "skip" in item:
        short = int(meta.get("n_frames") or 0) < settings.min_frames and meta.get("status") == "completed"
        # too few frames is fixed by running longer: as long again per missing frame
        needs = (settings.min_frames - int(meta.get("n_frames") or 0)) * float(meta["frame_interval_ps"])
        for name in UNTIL_PROPERTIES:
            out[name] = PropertyState(status="insufficient", reason=item["skip"], needs_ps=needs if short else None)
        return out
    docs = item["docs"]
    for name in UNTIL_PROPERTIES:
        entry = PROPERTIES[name]
        doc = docs.get(entry.source)
        verdict = _get(doc, entry.verdict) or {}
        value = _get(doc, entry.value)
        error = _get(doc, entry.error) if entry.error else None
        status = verdict.get("status") or "insufficient"
        reason = verdict.get("reason") or ("" if verdict else "not computed")
        if status == "converged" and error is not None and error == 0.0:
            status, reason = "unconverged", "error exactly 0: nothing was sampled"
        if value is None and status != "insufficient":
            status, reason = "insufficient", reason or "no value computed"
        factor = verdict.get("run_factor")
        unreachable = status != "converged" and verdict.get("run_longer_helps") is False
        if status == "converged":
            needs: float | None = 0.0
        elif factor is None or unreachable:
            needs = None
        else:
            needs = max(float(factor) - 1.0, 0.0) * produced
        out[name] = PropertyState(status=status, reason=reason, needs_ps=needs, unreachable=unreachable)
    return out


def campaign_spent_hours(stores: ElectroDBStores, campaign: str) -> tuple[float, float]:
    """``(core hours, GPU hours)`` the campaign's stored productions have taken so far.

    A CPU run counts its wall hours × the threads it ran with (``threads`` in its ``md_resources``, else 1); a
    run on a GPU counts its wall hours as GPU hours.
    """
    cores = gpu = 0.0
    for doc in stores.trajectories.query(
        {"campaign_ids": campaign}, properties=["wall_time_s", "model", "md_resources"]
    ):
        hours = float(doc.get("wall_time_s") or 0.0) / 3600.0
        resources = doc.get("md_resources") or {}
        device = str(resources.get("device") or (doc.get("model") or {}).get("device") or "cpu")
        if device.startswith("cuda"):
            gpu += hours
        else:
            cores += hours * float(resources.get("threads") or 1)
    return cores, gpu


def _frame_grid(ps: float, frame_ps: float) -> float:
    """``ps`` rounded up to a whole number of frames."""
    return math.ceil(ps / frame_ps - 1e-9) * frame_ps if frame_ps > 0 else ps


def decide(
    states: dict[str, PropertyState],
    until: tuple[str, ...],
    produced: float,
    wall_time_s: float,
    budget: Budget,
    segment_ps: float,
    frame_ps: float,
    campaign_spent: tuple[float, float] = (0.0, 0.0),
) -> tuple[str, str, float | None]:
    """``(decision, reason, next production length in ps or None)`` after a segment (see the module text).

    Parameters
    ----------
    states
        The judged properties (:func:`judge_trajectory`).
    until
        The property names that must converge.
    produced, wall_time_s
        Production so far (ps) and its wall time (s).
    budget
        The campaign's budget.
    segment_ps
        Smallest segment (ps).
    frame_ps
        Time between stored frames (ps): segment ends fall on the frame grid.
    campaign_spent
        ``(core hours, GPU hours)`` the campaign has spent (:func:`campaign_spent_hours`).
    """
    pending = [p for p in until if states.get(p) is None or states[p].status not in ("converged", "input")]
    if not pending:
        return "converged", f"every until property converged after {produced:.4g} ps", None
    reachable = {p: states[p].needs_ps if p in states else None for p in pending}
    reachable = {p: n for p, n in reachable.items() if p not in states or not states[p].unreachable}
    if not reachable:
        return (
            "unreachable",
            f"{', '.join(pending)} cannot converge by running longer (see their reasons); stopped at {produced:.4g} ps",
            None,
        )
    speed = produced / (wall_time_s / 3600.0) if wall_time_s > 0 else None  # ps per wall hour
    limits = []
    if budget.max_production_ps is not None:
        limits.append(("max_production_ps", budget.max_production_ps - produced))
    if budget.max_wall_hours is not None and speed:
        limits.append(("max_wall_hours", (budget.max_wall_hours - wall_time_s / 3600.0) * speed))
    cores, gpu = campaign_spent
    if budget.total_core_hours is not None and speed:
        limits.append(("total_core_hours", (budget.total_core_hours - cores) * speed))
    if budget.total_gpu_hours is not None and speed:
        limits.append(("total_gpu_hours", (budget.total_gpu_hours - gpu) * speed))
    if budget.total_core_hours is not None and cores >= budget.total_core_hours:
        limits.append(("total_core_hours", 0.0))
    if budget.total_gpu_hours is not None and gpu >= budget.total_gpu_hours:
        limits.append(("total_gpu_hours", 0.0))
    left_name, left = min(limits, key=lambda x: x[1]) if limits else ("", math.inf)
    if left < frame_ps:
        return "budget", f"budget.{left_name} spent at {produced:.4g} ps; {len(pending)} pending", None
    known = [n for n in reachable.values() if n is not None]
    cheapest = min(known) if known else None
    if cheapest is not None and cheapest > 2.0 * left:
        return (
            "budget",
            f"the cheapest pending property needs ≈ {cheapest:.3g} ps more, over twice the {left:.3g} ps left "
            f"(budget.{left_name}); stopped at {produced:.4g} ps",
            None,
        )
    wanted = max(known) * NEEDS_MARGIN if known else segment_ps
    step = min(max(segment_ps, wanted), max(segment_ps, (MAX_GROWTH - 1.0) * produced), left)
    nxt = _frame_grid(produced + step, frame_ps)
    return "continue", f"{len(pending)} pending; next segment to {nxt:.4g} ps", nxt


@dataclass
class ConvergenceCheckMaker(Maker):
    """Judge a system after a production segment; add the next segment and check (a jobflow ``Response``) or stop.

    Parameters
    ----------
    name
        Job name.
    production_maker
        Maker of the next segment's production job.
    continue_segments
        False: judge and record, but add nothing (the local campaign runner's first pass, which then decides
        which system continues first).
    settings
        Analysis settings of the judgement (default: those of a build).
    """

    name: str = "convergence check"
    production_maker: ProductionMDMaker = field(default_factory=ProductionMDMaker)
    continue_segments: bool = True
    settings: AnalysisSettings | None = None

    @store_job
    def make(
        self,
        spec: SystemSpec,
        trajectory: TrajectoryDocument | None,
        system: SystemDocument,
        model_file: dict[str, Any] | None = None,
        segment: int = 1,
    ) -> TrajectoryDocument | Response | None:
        with job_stores("trajectories", "data") as stores:
            # jobflow-remote: the run lives in the worker-side working copy its production kept (flows.resume)
            copy = open_working_copy(stores, spec.system_id)
            try:
                view = copy.stores if copy is not None else stores
                record = judge_segment(view, spec, segment, self.settings)
                doc = view.trajectories.query_one({"trajectory_id": spec.system_id})
                if copy is not None:
                    if doc is None:
                        raise RuntimeError(
                            f"no trajectory {spec.system_id} in this job's stores nor in the working copy "
                            f"{copy.folder}: the convergence check must see the folder its production wrote; set "
                            "ELECTRODB_RESUME_DIR on every worker to one shared folder"
                        )
                    copy.publish()  # the judgement reaches the database with this job's outputs
                    if record is None or record.decision != "continue" or not self.continue_segments:
                        copy.remove()
            finally:
                if copy is not None:
                    copy.close()
        if record is None or doc is None:
            return trajectory
        out = TrajectoryDocument(**output_document(doc))
        if record.decision != "continue" or not self.continue_segments:
            return out
        prod = self.production_maker.make(spec, system, model_file, production_ps=record.next_production_ps)
        check = self.make(spec, prod.output, system, model_file, segment + 1)
        label = f"{spec.salt} {spec.molality:.2f} m {spec.temperature:.0f} K"
        prod.name = f"production {label} segment {segment + 1}"
        check.name = f"convergence check {label} segment {segment + 1}"
        route_like_the_first(prod, check)
        return Response(output=out, addition=Flow([prod, check], output=check.output))


#: Job metadata key holding the engine settings (``config.manager_config``) of the first production and check,
#: set by the engines (:mod:`electrodb.managers.fireworks`, :mod:`electrodb.managers.jobflow_remote`) so that
#: every later segment is routed like the first: production to the GPU worker, the check to the CPU worker.
ROUTES_KEY = "electrodb_routes"


def remember_routes(flow: Flow) -> None:
    """Record, on each convergence check of ``flow``, the engine settings its engine gave the first production and
    check (:data:`ROUTES_KEY`), so the segments it adds are routed the same way. Engines call it after routing."""
    jobs = [job for job, _ in flow.iterflow()]
    production = next((j for j in jobs if (j.name or "").startswith("production")), None)
    for check in (j for j in jobs if (j.name or "").startswith("convergence check")):
        check.metadata[ROUTES_KEY] = {
            "production": dict(production.config.manager_config) if production is not None else {},
            "check": dict(check.config.manager_config),
        }
        # jobflow would give every added job the check's own settings (pass_manager_config), after
        # route_like_the_first: the next production would run on the CPU worker
        check.config.pass_manager_config = False


def route_like_the_first(production: Any, check: Any) -> None:
    """Give a new segment's jobs the metadata (system id, submission, staged model) and engine settings of the
    running check job, which the engines copied from the first segment (:data:`ROUTES_KEY`)."""
    current = CURRENT_JOB.job
    metadata = dict(current.metadata or {}) if current is not None else {}
    metadata.pop("fw_id", None)  # the running Firework's id (jobflow's FireWorks task adds it), not theirs
    routes = metadata.get(ROUTES_KEY) or {}
    for job, stage in ((production, "production"), (check, "check")):
        job.metadata.update(metadata)
        if routes.get(stage):
            job.config.manager_config = {**job.config.manager_config, **routes[stage]}
    if routes:
        check.config.pass_manager_config = False  # as remember_routes: its additions keep their own routes


def decide_for(
    spec: SystemSpec, states: dict[str, PropertyState], meta: dict[str, Any], stores: ElectroDBStores
) -> tuple[str, str, float | None]:
    """:func:`decide` for ``spec``'s stored trajectory ``meta`` with the judged ``states``: its production and
    wall time so far, the campaign's budget (none: stop at what was run), segment length, frame grid and the hours
    the campaign has spent (:func:`campaign_spent_hours`)."""
    produced = produced_ps(meta)
    budget = spec.budget or Budget(max_production_ps=produced)
    return decide(
        states,
        until_properties(spec.until),
        produced,
        float(meta.get("wall_time_s") or 0.0),
        budget,
        budget.segment_ps or spec.md.production_ps,
        float(meta.get("frame_interval_ps") or 0.0),
        campaign_spent_hours(stores, spec.campaign),
    )


def judge_segment(
    stores: ElectroDBStores, spec: SystemSpec, segment: int, settings: AnalysisSettings | None = None
) -> SegmentRecord | None:
    """Judge ``spec``'s stored trajectory, decide (:func:`decide`) and record it (``trajectories.convergence``).

    Returns None when there is no completed trajectory to judge (an unstable or failed run stops its segments).
    """
    meta = stores.trajectories.query_one({"trajectory_id": spec.system_id})
    if meta is None or meta.get("status") != "completed":
        return None
    meta = output_document(meta)
    until = until_properties(spec.until)
    states = judge_trajectory(meta, stores, settings)
    produced = produced_ps(meta)
    wall = float(meta.get("wall_time_s") or 0.0)
    decision, reason, nxt = decide_for(spec, states, meta, stores)
    pending = [p for p in until if states[p].status not in ("converged", "input")]
    before = meta.get("convergence") or {}
    if before.get("segment"):  # numbered across runs: a re-judged length keeps its number, a longer run adds one
        same = abs(float(before.get("production_ps") or 0.0) - produced) < 0.5 * float(meta["frame_interval_ps"])
        segment = int(before["segment"]) + (0 if same else 1)
    record = SegmentRecord(
        segment=segment,
        production_ps=produced,
        wall_time_s=wall,
        ps_per_hour=produced / (wall / 3600.0) if wall > 0 else None,
        until=list(until),
        properties=states,
        converged=[p for p in until if states[p].status == "converged"],
        pending=pending,
        unreachable=[p for p in pending if states[p].unreachable],
        decision=decision,
        reason=reason,
        next_production_ps=nxt,
    )
    mark(stores, TrajectoryDocument(**meta), convergence=record.model_dump(mode="json"))
    report(f"{spec.salt} {spec.molality:.2f} m: segment {segment}, {produced:.3g} ps: {decision} ({reason})")
    return record
