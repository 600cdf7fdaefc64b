"""A campaign with batched production: ``md.batch: auto | off | N`` (see ``docs/campaigns.md``, MD settings).

Every system keeps its own box and equilibration jobs (:class:`~electrodb.flows.md.BoxMaker`,
:class:`~electrodb.flows.md.EquilibrationMaker`); production runs as one
:class:`~electrodb.flows.batched.BatchedProductionMaker` job per group of at most ``batch`` systems of the same
model and MD settings, so k small boxes share one torch-sim integration on a GPU. Each box is checked for
stability, checkpointed and resumed on its own.

``md.batch`` is resolved by :func:`resolve_batch`: ``off`` always runs the sequential path
(:func:`electrodb.flows.campaign.run_campaign`); ``auto`` batches on a CUDA device (groups of
:data:`AUTO_GROUP_SYSTEMS` systems per job, split into integrations by torch-sim's ``BinningAutoBatcher``) and
runs sequentially on a CPU, where batching does not pay (``docs/batched-md.md``), or when the campaign needs
what only the sequential path has (a Bussi / Nosé–Hoover thermostat, a long-range term); ``N`` batches at most
N boxes per integration on any device and refuses a campaign it cannot batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from jobflow import Flow, OnMissing, run_locally

from electrodb.flows.batched import BatchedProductionMaker, should_batch
from electrodb.flows.campaign import (
    CampaignRunSummary,
    capture_job_errors,
    mark_failed,
    prepare_campaign_run,
    record_outcome,
    run_campaign,
    run_solvation,
)
from electrodb.flows.md import BoxMaker, EquilibrationMaker, report
from electrodb.flows.segments import judge_segment
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.campaign import Campaign, MDSettings, SystemSpec

__all__ = [
    "AUTO_GROUP_SYSTEMS",
    "batched_campaign_flow",
    "group_specs",
    "resolve_batch",
    "run_campaign_batched",
]

#: Systems per batched production job with ``md.batch: auto`` (the autobatcher splits a job into integrations
#: that fit the GPU; a job is also the unit a rerun resumes).
AUTO_GROUP_SYSTEMS = 64

BatchSetting = int | Literal["auto", "off"]


def resolve_batch(setting: BatchSetting | str | bool, device: str | None = "auto") -> int | Literal["auto"] | None:
    """What ``md.batch`` means on ``device``: ``None`` (sequential), ``'auto'`` (torch-sim's autobatcher), or N.

    Raises
    ------
    ValueError
        For anything but ``auto``, ``off`` or a whole number >= 1 (the message names the accepted values).
    """
    value = MDSettings._batch_value(setting)  # the campaign file's own validation and message
    if value == "off":
        return None
    if value == "auto":
        return "auto" if should_batch(device) else None
    return int(value)


def _label(spec: SystemSpec) -> str:
    return f"{spec.salt} {spec.molality:.2f} m {spec.temperature:.0f} K"


def group_specs(specs: Sequence[SystemSpec], batch: int) -> list[list[SystemSpec]]:
    """Groups of at most ``batch`` specs sharing the model and the MD settings, in campaign order."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1 system per group, not {batch}")
    by_key: dict[tuple[str, str], list[SystemSpec]] = {}
    for spec in specs:
        by_key.setdefault((spec.model_id, spec.md.model_dump_json()), []).append(spec)
    return [same[i : i + batch] for same in by_key.values() for i in range(0, len(same), batch)]


def batched_campaign_flow(
    specs: list[SystemSpec],
    batch: int,
    *,
    autobatch: bool = False,
    device: str = "auto",
    name: str = "campaign (batched)",
) -> Flow:
    """Box and equilibration jobs per system, then one batched production job per group of <= ``batch`` systems.

    Parameters
    ----------
    specs
        The systems (of one or several models; only systems of the same model and MD settings share a job).
    batch
        Systems per production job, and at most that many boxes per integration.
    autobatch
        Let torch-sim's autobatcher split each job into integrations that fit the GPU (``md.batch: auto``).
    device
        Device of the production jobs (``'auto'``: CUDA when available).
    name
        Name of the flow.

    Returns
    -------
    Flow
        Jobs carry ``metadata.electrodb_system_id`` (box, equilibration) or ``metadata.electrodb_batch`` (the
        system ids of a production job). A production job runs even when some of its equilibrations failed
        (``on_missing_references=NONE``); those systems are skipped.
    """
    jobs: list[Any] = []
    equilibrated: dict[str, Any] = {}
    for spec in specs:
        box = BoxMaker().make(spec)
        eq = EquilibrationMaker().make(spec, box.output)
        for j, stage in ((box, "box"), (eq, "equilibrate")):
            j.name = f"{stage} {_label(spec)}"
            j.update_metadata({"electrodb_system_id": spec.system_id})
        jobs += [box, eq]
        equilibrated[spec.system_id] = eq.output
    outputs = []
    for group in group_specs(specs, batch):
        maker = BatchedProductionMaker(device=device, max_systems_per_batch=batch, autobatch=autobatch)
        prod = maker.make(group, [equilibrated[s.system_id] for s in group])
        prod.config.on_missing_references = OnMissing.NONE
        prod.name = f"batched production of {len(group)} systems: " + ", ".join(_label(s) for s in group)
        prod.update_metadata({"electrodb_batch": [s.system_id for s in group]})
        jobs.append(prod)
        outputs.append(prod.output)
    return Flow(jobs, output=outputs, name=name)


def _cannot_batch(campaign: Campaign) -> str | None:
    """Why this campaign's production cannot run batched, or None."""
    if campaign.md.thermostat != "langevin":
        return f"batched MD is Langevin only and md.thermostat is {campaign.md.thermostat!r}"
    if campaign.long_range is not None:
        return "batched MD has no long-range Coulomb term and the campaign sets long_range"
    return None


def run_campaign_batched(
    campaign: Campaign,
    stores: ElectroDBStores,
    batch: BatchSetting | None = None,
    on_system: Callable[[int, int, SystemSpec], None] | None = None,
    *,
    model_id: str | None = None,
    maker: Any = None,
    device: str = "auto",
) -> CampaignRunSummary:
    """Run every pending system of ``campaign`` locally into ``stores``, production batched where it applies.

    Parameters
    ----------
    campaign
        The campaign; its ``md.batch`` is used unless ``batch`` is given.
    stores
        The campaign's database (jobs get its :meth:`~electrodb.store.stores.ElectroDBStores.job_store`).
    batch
        ``'auto'``, ``'off'`` or N (overrides ``campaign.md.batch``).
    on_system
        Called as ``on_system(k, n, spec)`` before system k of the n pending ones is run.
    model_id, maker
        Passed to :func:`~electrodb.flows.campaign.run_campaign` when the run is sequential (``maker``: an
        ``ElectrolyteFlowMaker``; ignored when batched).
    device
        Device for batched production (``'auto'``: CUDA when available) and for resolving ``auto``.

    Returns
    -------
    CampaignRunSummary
        As :func:`~electrodb.flows.campaign.run_campaign`: completed, unstable (with reasons), failed, skipped.

    Raises
    ------
    ValueError
        A bad ``batch``; or an explicit N for a campaign that cannot be batched (thermostat, long_range).
    """
    setting = campaign.md.batch if batch is None else batch
    resolved = resolve_batch(setting, device)
    why_not = _cannot_batch(campaign)
    if resolved is not None and why_not is not None:
        if resolved != "auto":
            raise ValueError(f"md.batch: {resolved} cannot be used: {why_not}; set md.batch: off (or auto)")
        report(f"md.batch: auto runs sequentially: {why_not}")
        resolved = None
    if resolved is None:
        return run_campaign(campaign, stores, model_id=model_id, maker=maker, on_system=on_system)

    run = prepare_campaign_run(campaign, stores, model_id)
    todo, summary = run.todo, run.summary
    size = AUTO_GROUP_SYSTEMS if resolved == "auto" else resolved
    job_store = stores.job_store()
    if run.campaign.until is not None:
        errors = _batched_segments(todo, stores, size, resolved == "auto", device, job_store, on_system)
        for spec in todo:
            _record(summary, stores, spec, errors)
        if run.campaign.solvation:
            summary.solvation = run_solvation(run.campaign, stores, run.model_id)
        return summary
    k = 0
    for group in group_specs(todo, size):
        for spec in group:
            if on_system:
                on_system(k, len(todo), spec)
            k += 1
        flow = batched_campaign_flow(group, size, autobatch=resolved == "auto", device=device)
        _remove_earlier_attempts(job_store, [s.system_id for s in group])
        with capture_job_errors() as errors:
            run_locally(flow, store=job_store, create_folders=False, log=False, ensure_success=False)
        for spec in group:
            _record(summary, stores, spec, errors.errors)
    if run.campaign.solvation:
        summary.solvation = run_solvation(run.campaign, stores, run.model_id)
    return summary


def _batched_segments(
    todo: list[SystemSpec],
    stores: ElectroDBStores,
    size: int,
    autobatch: bool,
    device: str,
    job_store: Any,
    on_system: Callable[[int, int, SystemSpec], None] | None = None,
) -> list[str]:
    """A campaign with ``until``, batched: every round runs the boxes not yet stopped, each to the length its last
    check asked for (boxes asking for the same length share a batch), then judges each
    (:func:`electrodb.flows.segments.judge_segment`); a box stops when its ``until`` properties converged, are
    unreachable or its budget is spent, so a batch only ever extends its unconverged boxes. Returns the job
    errors of every round."""
    target = {s.system_id: (s.budget.segment_ps if s.budget else None) or s.md.production_ps for s in todo}
    segment = dict.fromkeys(target, 1)
    active, errors_all = list(todo), []
    for k, spec in enumerate(todo):
        if on_system:
            on_system(k, len(todo), spec)
    while active:
        runs = [
            s.model_copy(update={"md": s.md.model_copy(update={"production_ps": target[s.system_id]})}) for s in active
        ]
        for group in group_specs(runs, size):
            flow = batched_campaign_flow(group, size, autobatch=autobatch, device=device)
            _remove_earlier_attempts(job_store, [s.system_id for s in group])
            with capture_job_errors() as errors:
                run_locally(flow, store=job_store, create_folders=False, log=False, ensure_success=False)
            errors_all += errors.errors
        going = []
        for spec in active:
            record = judge_segment(stores, spec, segment[spec.system_id])
            if record is not None and record.decision == "continue" and record.next_production_ps:
                target[spec.system_id], segment[spec.system_id] = record.next_production_ps, record.segment + 1
                going.append(spec)
        active = going
    return errors_all


def _remove_earlier_attempts(job_store: Any, ids: list[str]) -> None:
    """A rerun supersedes the job documents of earlier attempts of these systems (their data stay)."""
    job_store.remove_docs({"metadata.electrodb_system_id": {"$in": ids}})
    wanted = set(ids)
    old = [
        d["uuid"]
        for d in job_store.docs_store.query(
            {"metadata.electrodb_batch": {"$exists": True}}, properties=["uuid", "metadata"]
        )
        if wanted & set(d.get("metadata", {}).get("electrodb_batch", []))
    ]
    if old:
        job_store.remove_docs({"uuid": {"$in": old}})


def _record(summary: CampaignRunSummary, stores: ElectroDBStores, spec: SystemSpec, errors: list[str]) -> None:
    """Sort one system into the summary by its trajectory's status; a failure keeps the failing job's error."""
    sid = spec.system_id
    doc = stores.trajectories.query_one({"trajectory_id": sid}, properties=["status", "status_reason"])
    status = doc["status"] if doc else "failed"
    if status in ("completed", "unstable"):
        record_outcome(summary, sid, status, (doc or {}).get("status_reason"))
        return
    mine = [e for e in errors if _label(spec) in e] or [e for e in errors if "batched production" in e]
    reason = "; ".join(mine) or (doc or {}).get("status_reason") or "no error was reported"
    mark_failed(stores, sid, reason)
    record_outcome(summary, sid, "failed", reason)
