"""A campaign as jobflow Flows: one :class:`ElectrolyteFlowMaker` flow per system not yet completed.

Local runs use jobflow's ``run_locally``: one system at a time (:func:`run_campaign`, so progress can be shown per
system) or k at once in worker processes with a device each (:mod:`electrodb.managers.workers`), both through
:func:`run_system`; distributed runs convert the same flow for FireWorks (``flow_to_workflow``) or submit it
with jobflow-remote.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from jobflow import Flow, JobStore, run_locally

from electrodb.flows.budget_policy import cheapest_first, decide_again, still_stopped
from electrodb.flows.md_records import produced_ps
from electrodb.flows.segments import ConvergenceCheckMaker, check_until
from electrodb.flows.solvation import SolvationTIMaker, TISettings, solvation_id
from electrodb.flows.system import ElectrolyteFlowMaker
from electrodb.flows.training import model_long_range, resolve_long_range
from electrodb.models.files import ModelError
from electrodb.models.loader import load_model, peek_model
from electrodb.models.reference import ModelRef
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.campaign import Campaign, SystemSpec
from electrodb.systems.chemistry import parse_salt
from electrodb.utils.provenance import utcnow

__all__ = [
    "CampaignRunSummary",
    "PreparedRun",
    "campaign_flow",
    "capture_job_errors",
    "check_campaign_model",
    "check_campaign_run",
    "mark_failed",
    "pending_systems",
    "prepare_campaign_run",
    "record_outcome",
    "record_system_failure",
    "register_campaign",
    "run_campaign",
    "run_segments_cheapest_first",
    "run_system",
]


def register_campaign(campaign: Campaign, stores: ElectroDBStores, model_id: str) -> None:
    """Record the campaign specification (idempotent)."""
    stores.campaigns.update(
        [
            {
                "campaign_id": campaign.campaign_id,
                "name": campaign.name,
                "spec": campaign.model_dump(mode="json"),
                "model_id": model_id,
                "last_updated": utcnow(),
            }
        ],
        key="campaign_id",
    )


def pending_systems(specs: list[SystemSpec], stores: ElectroDBStores) -> tuple[list[SystemSpec], list[SystemSpec]]:
    """Split specs into (to run, done) by their stored trajectories.

    Done: a completed trajectory as long as ``md.production_ps`` (fixed-length systems), or, with ``until``, one
    whose last convergence check stopped and would stop again under the campaign's current ``until`` and budget
    (:func:`electrodb.flows.budget_policy.still_stopped`). A raised ``production_ps`` or budget, or a new ``until``
    property, makes a system pending again: it continues from its stored trajectory.
    """
    ids = [s.system_id for s in specs]
    stored = {
        d["trajectory_id"]: d
        for d in stores.trajectories.query(
            {"trajectory_id": {"$in": ids}, "status": "completed"},
            properties=["trajectory_id", "n_frames", "frame_interval_ps", "convergence", "wall_time_s"],
        )
    }

    def done(spec: SystemSpec) -> bool:
        doc = stored.get(spec.system_id)
        if doc is None:
            return False
        if spec.until is None:
            if not doc.get("n_frames") or not doc.get("frame_interval_ps"):
                return True  # a completed record without its frame counts: nothing it could be extended from
            return produced_ps(doc) >= spec.md.production_ps - 0.5 * float(doc["frame_interval_ps"])
        return still_stopped(doc, spec, stores)

    return [s for s in specs if not done(s)], [s for s in specs if done(s)]


def campaign_flow(specs: list[SystemSpec], maker: ElectrolyteFlowMaker | None = None, name: str = "campaign") -> Flow:
    """One Flow holding an electrolyte flow per system (they are independent and can run in parallel)."""
    maker = maker or ElectrolyteFlowMaker()
    return Flow([maker.make(spec) for spec in specs], name=name)


@dataclass
class CampaignRunSummary:
    """What a campaign run did: system ids per outcome, with the reasons of the unstable and failed ones."""

    total: int
    skipped: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    unstable: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    solvation: dict[str, str] = field(default_factory=dict)  # solvation_id -> status
    reasons: dict[str, str] = field(default_factory=dict)  # system_id -> why it failed or is unstable
    # system_id -> how each worker running it died (``--workers`` only; the system was resumed elsewhere)
    worker_deaths: dict[str, list[str]] = field(default_factory=dict)


class _JobErrors(logging.Handler):
    """Collects the exceptions jobflow's ``run_locally`` reports only as log lines ("<job> failed with ...")."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:  # what would have been shown without us still is
            logging.getLogger().handle(record)
        text = record.getMessage()
        if "failed with exception" not in text:
            return
        job = text.split(" failed with exception", 1)[0].strip()
        lines = [line for line in text.splitlines() if line.strip()]
        self.errors.append(f"{job}: {lines[-1].strip()}" if lines else job)


@contextmanager
def capture_job_errors() -> Iterator[_JobErrors]:
    """Collect the job failures jobflow's ``run_locally`` logs while the block runs.

    Yields
    ------
    _JobErrors
        Its ``errors`` list gets one ``"<job>: <last line of the exception>"`` per failed job.
    """
    logger = logging.getLogger("jobflow.managers.local")
    handler, level, propagate, disabled = _JobErrors(), logger.level, logger.propagate, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # the failure text is logged at INFO ...
    logger.propagate = False  # ... which must not reach a root handler some library configured
    # a logging.config.dictConfig with disable_existing_loggers (jobflow-remote's job runner calls one) silences
    # the logger: the failures would be lost and reported as "no error was reported"
    logger.disabled = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


@functools.lru_cache(maxsize=16)
def _model_r_max(reference: str, stamp: tuple[int, int] | None) -> float | None:
    """The cutoff a model reports, read without unpickling it (:func:`~electrodb.models.loader.peek_model`);
    cached per reference and file state (``campaign run`` asks twice)."""
    return peek_model(ModelRef.parse(reference)).get("r_max")


def with_model_cutoff(campaign: Campaign) -> tuple[Campaign, str | None]:
    """The campaign with its box-size check using the model's own cutoff, and a note on what was used.

    ``model_cutoff_A`` is the user's word; the model file knows its real cutoff (``ModelIdentity.r_max``). When
    the model's is larger, it replaces the user's value (boxes shorter than twice the model's cutoff would see
    their own images); when the model cannot be read here, the user's value stays and the note says so.
    """
    path = Path(campaign.model).expanduser()
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else None
    try:
        r_max = _model_r_max(campaign.model, stamp)
    except (ModelError, OSError, ValueError) as exc:
        return campaign, f"model cutoff not read from {campaign.model!r} ({exc}); using model_cutoff_A"
    if r_max and r_max > campaign.model_cutoff_A:
        note = f"the model's own cutoff {r_max:g} Å replaces model_cutoff_A = {campaign.model_cutoff_A:g} Å"
        return campaign.model_copy(update={"model_cutoff_A": float(r_max)}), note
    return campaign, None


def check_campaign_model(campaign: Campaign) -> None:
    """Refuse a campaign whose model cannot run it, before anything is packed.

    The model must exist, be trusted (a pickled MACE file: :mod:`electrodb.models.trust`) and load, on the device
    its reference names, and its elements must cover every salt's elements (and water's).

    Raises
    ------
    ModelError
        One line naming the problem and the fix.
    """
    loaded = load_model(ModelRef.parse(campaign.model))
    if loaded.device.startswith("cuda"):
        import torch  # heavy; only for a model that asks for a GPU

        if not torch.cuda.is_available():
            raise ModelError(f"model {campaign.model!r} asks for device {loaded.device}, but no GPU is visible")
    supported = loaded.identity.elements
    if supported is None:
        return
    missing = {salt: sorted(set(parse_salt(salt).elements) - set(supported)) for salt in campaign.salts}
    missing = {salt: els for salt, els in missing.items() if els}
    if missing:
        what = "; ".join(f"{salt} needs {', '.join(els)}" for salt, els in missing.items())
        error = ModelError(
            f"model {campaign.model!r} does not cover every salt's elements ({what}; it supports "
            f"{', '.join(supported)}): use a model trained on them, or drop those salts from the campaign"
        )
        error.salts = sorted(missing)  # type: ignore[attr-defined]  (the systems it rules out)
        raise error


def check_campaign_run(campaign: Campaign, stores: ElectroDBStores) -> None:
    """:func:`check_campaign_model`, recording a refusal on the systems it rules out (``campaign status`` shows
    them ``failed`` with the reason); nothing is packed or run. ``electrodb campaign run`` calls it first.

    Raises
    ------
    ModelError
        As :func:`check_campaign_model`.
    """
    try:
        check_campaign_model(campaign)
    except ModelError as exc:
        needs = set(getattr(exc, "salts", ()))
        for spec in campaign.systems():
            if not needs or spec.salt in needs:
                record_system_failure(stores, spec, f"not run: {exc}")
        raise


def record_system_failure(stores: ElectroDBStores, spec: SystemSpec, reason: str) -> None:
    """Record that a system failed before it had a trajectory (``run_status``/``run_reason`` of its ``systems``
    document, which ``campaign status`` shows); a stored box stays as it is."""
    doc = stores.systems.query_one({"system_id": spec.system_id}) or {}
    doc.pop("_id", None)
    labels = {"salt": spec.salt, "molality": spec.molality, "temperature": spec.temperature}
    campaigns = sorted({*doc.get("campaign_ids", []), spec.campaign})
    record = {**labels, **doc, "system_id": spec.system_id, "campaign_ids": campaigns}
    record |= {"run_status": "failed", "run_reason": reason, "last_updated": utcnow()}
    stores.systems.update([record], key="system_id")


def _clear_system_failures(stores: ElectroDBStores, specs: list[SystemSpec]) -> None:
    """Drop the failure records of systems about to run again."""
    ids = [s.system_id for s in specs]
    for doc in stores.systems.query({"system_id": {"$in": ids}, "run_status": "failed"}):
        doc.pop("_id", None)
        doc.pop("run_status", None)
        doc.pop("run_reason", None)
        stores.systems.update([doc], key="system_id")


@dataclass
class PreparedRun:
    """A campaign ready to run: see :func:`prepare_campaign_run`."""

    campaign: Campaign
    model_id: str
    todo: list[SystemSpec]
    summary: CampaignRunSummary


def prepare_campaign_run(campaign: Campaign, stores: ElectroDBStores, model_id: str | None = None) -> PreparedRun:
    """What every way of running a campaign does first: the model's cutoff, the campaign recorded, completed
    systems skipped (and tagged with this campaign too).

    Returns
    -------
    PreparedRun
        The campaign (with the model's own cutoff, :func:`with_model_cutoff`), its model id, the systems still
        to run in the campaign's order, and a summary holding the total and the skipped ones.
    """
    check_until(campaign)
    campaign, _ = with_model_cutoff(campaign)
    specs = campaign.systems(model_id=model_id)
    register_campaign(campaign, stores, specs[0].model_id)
    todo, done = pending_systems(specs, stores)
    _clear_system_failures(stores, todo)
    summary = CampaignRunSummary(total=len(specs), skipped=[s.system_id for s in done])
    for spec in done:  # a finished system may belong to several campaigns
        stores.trajectories.update(
            [
                {
                    **stores.trajectories.query_one({"trajectory_id": spec.system_id}),
                    "campaign_ids": sorted({*_campaigns_of(stores, spec), campaign.name}),
                }
            ],
            key="trajectory_id",
        )
    return PreparedRun(campaign, specs[0].model_id, todo, summary)


def run_system(
    spec: SystemSpec,
    stores: ElectroDBStores,
    maker: ElectrolyteFlowMaker | None = None,
    job_store: JobStore | None = None,
) -> tuple[str, str | None]:
    """Run one system's flow locally (``run_locally`` on ``stores.job_store()``); resume what was stored.

    A rerun (after an interruption, a killed worker or a failure) first removes the job documents of the
    earlier attempt, then continues from the stored box, equilibrated state and production checkpoint.

    Parameters
    ----------
    spec
        The system.
    stores
        The database the system's documents and blobs go to.
    maker
        The flow maker (default :class:`ElectrolyteFlowMaker`).
    job_store
        ``stores.job_store()``, when the caller already built it.

    Returns
    -------
    tuple
        The system's status (``completed``, ``unstable`` or ``failed``) and the reason (None when completed).
    """
    maker = maker or ElectrolyteFlowMaker()
    job_store = job_store or stores.job_store()
    flow = maker.make(spec)
    flow.update_metadata({"electrodb_system_id": spec.system_id})
    # The system's data live in its own collections, so the old job outputs would only pile up.
    job_store.remove_docs({"metadata.electrodb_system_id": spec.system_id})
    with capture_job_errors() as errors:
        responses = run_locally(flow, store=job_store, create_folders=False, log=False, ensure_success=False)
    del responses
    doc = stores.trajectories.query_one({"trajectory_id": spec.system_id}, properties=["status", "status_reason"])
    status = doc["status"] if doc else "failed"
    if status == "completed" and errors.errors:  # a segment's check or production failed after a good segment
        reason = "; ".join(errors.errors)
        mark_failed(stores, spec.system_id, reason)
        return "failed", reason
    if status == "completed":
        return status, None
    if status == "unstable":
        return status, (doc or {}).get("status_reason") or "unstable (no reason recorded)"
    reason = "; ".join(errors.errors) or (doc or {}).get("status_reason") or "no error was reported"
    mark_failed(stores, spec.system_id, reason)
    return "failed", reason


def mark_failed(stores: ElectroDBStores, system_id: str, reason: str) -> None:
    """Record ``failed`` and the reason on a system's trajectory document (its frames, boxes and checkpoint stay:
    a rerun resumes from them), or, before it has one, on its ``systems`` document (``run_status``)."""
    doc = stores.trajectories.query_one({"trajectory_id": system_id})
    if doc is None:
        box = stores.systems.query_one({"system_id": system_id}) or {"system_id": system_id}
        box.pop("_id", None)
        box |= {"run_status": "failed", "run_reason": reason, "last_updated": utcnow()}
        stores.systems.update([box], key="system_id")
        return
    doc.pop("_id", None)
    stores.trajectories.update(
        [{**doc, "status": "failed", "status_reason": reason, "last_updated": utcnow()}], key="trajectory_id"
    )


def record_outcome(summary: CampaignRunSummary, system_id: str, status: str, reason: str | None) -> None:
    """Add one system's outcome (from :func:`run_system`) to ``summary``."""
    if status == "completed":
        summary.completed.append(system_id)
        return
    (summary.unstable if status == "unstable" else summary.failed).append(system_id)
    summary.reasons[system_id] = reason or f"{status} (no reason recorded)"


def run_campaign(
    campaign: Campaign,
    stores: ElectroDBStores,
    model_id: str | None = None,
    maker: ElectrolyteFlowMaker | None = None,
    on_system: Callable[[int, int, SystemSpec], None] | None = None,
) -> CampaignRunSummary:
    """Run every pending system of ``campaign`` locally into ``stores``, one at a time; skip completed ones.

    The box-size check uses the model's own cutoff where it is larger than ``model_cutoff_A``
    (:func:`with_model_cutoff`). Several systems at once: :func:`electrodb.managers.workers.run_campaign_workers`.
    """
    run = prepare_campaign_run(campaign, stores, model_id)
    maker = maker or ElectrolyteFlowMaker()
    job_store = stores.job_store()
    if run.campaign.until is not None and len(run.todo) > 1:
        run_segments_cheapest_first(run, stores, maker, job_store, on_system)
        if run.campaign.solvation:
            run.summary.solvation = run_solvation(run.campaign, stores, run.model_id)
        return run.summary
    for k, spec in enumerate(run.todo):
        if on_system:
            on_system(k, len(run.todo), spec)
        status, reason = run_system(spec, stores, maker, job_store)
        record_outcome(run.summary, spec.system_id, status, reason)
    if run.campaign.solvation:
        run.summary.solvation = run_solvation(run.campaign, stores, run.model_id)
    return run.summary


def run_segments_cheapest_first(
    run: PreparedRun,
    stores: ElectroDBStores,
    maker: ElectrolyteFlowMaker,
    job_store: JobStore,
    on_system: Callable[[int, int, SystemSpec], None] | None = None,
) -> None:
    """A campaign with ``until``, one segment at a time, where the budget buys converged values soonest.

    Every system runs its first segment and is judged; then, again and again, the system whose cheapest pending
    property needs the least wall time (:func:`electrodb.flows.budget_policy.cheapest_first`, ranked again after every
    segment) runs its next segment, until no system is left to continue (each check stops its system when its
    ``until`` properties converged, are unreachable, or the budget is spent). Outcomes go to ``run.summary``.
    """
    single = dataclasses.replace(
        maker, check_maker=ConvergenceCheckMaker(production_maker=maker.production_maker, continue_segments=False)
    )
    outcomes: dict[str, tuple[str, str | None]] = {}
    for k, spec in enumerate(run.todo):
        if on_system:
            on_system(k, len(run.todo), spec)
        outcomes[spec.system_id] = run_system(spec, stores, single, job_store)
    while True:
        going = [s for s in run.todo if outcomes[s.system_id][0] == "completed" and _next_end(stores, s) is not None]
        if not going:
            break
        spec = cheapest_first(going, stores)[0]
        end = decide_again(stores, spec)  # with what the others spent meanwhile: never past the campaign's hours
        if end is None:
            continue
        step = dataclasses.replace(single, segment_end_ps=end)
        outcomes[spec.system_id] = run_system(spec, stores, step, job_store)
    for spec in run.todo:
        record_outcome(run.summary, spec.system_id, *outcomes[spec.system_id])


def _next_end(stores: ElectroDBStores, spec: SystemSpec) -> float | None:
    """The production length the system's last check asked for (None: it stopped)."""
    doc = stores.trajectories.query_one({"trajectory_id": spec.system_id}, properties=["convergence"]) or {}
    record = doc.get("convergence") or {}
    return record.get("next_production_ps") if record.get("decision") == "continue" else None


def run_solvation(campaign: Campaign, stores: ElectroDBStores, model_id: str) -> dict[str, str]:
    """One TI flow per salt × temperature (``docs/solvation.md``); skips ids already completed.

    The campaign's ``long_range`` term (or the one a delta-learned model was trained without) is used in TI too.
    """
    md = campaign.md.model_copy(update={"npt": False})
    recorded = model_long_range(stores, model_id) if model_id else None
    long_range, _ = resolve_long_range(campaign.long_range, recorded, f"model {campaign.model!r}")
    maker = SolvationTIMaker(md=md, packing=campaign.packing, long_range=long_range)
    settings = TISettings.model_validate({**maker.settings.model_dump(), **campaign.solvation_ti})
    n_waters = campaign.size.n_waters or 64
    out: dict[str, str] = {}
    for salt in campaign.salts:
        for temperature in campaign.temperatures:
            sid = solvation_id(salt, n_waters, temperature, model_id, settings, md, campaign.packing, long_range)
            done = stores.solvation.query_one({"solvation_id": sid}, properties=["status"])
            if done and done["status"] == "completed":
                out[sid] = "skipped (completed)"
                continue
            flow = maker.make(salt, n_waters, temperature, model=campaign.model, **campaign.solvation_ti)
            run_locally(flow, store=stores.job_store(), create_folders=False, log=False, ensure_success=False)
            doc = stores.solvation.query_one({"solvation_id": sid}, properties=["status"])
            out[sid] = doc["status"] if doc else "failed"
    return out


def _campaigns_of(stores: ElectroDBStores, spec: SystemSpec) -> list[str]:
    doc = stores.trajectories.query_one({"trajectory_id": spec.system_id}, properties=["campaign_ids"])
    return list(doc.get("campaign_ids", [])) if doc else []
