"""A campaign as jobflow Flows: one :class:`ElectrolyteFlowMaker` flow per system not yet completed.

Local runs use jobflow's ``run_locally`` (one system at a time, so progress can be shown per system);
distributed runs convert the same flow for FireWorks (``flow_to_workflow``) or submit it with jobflow-remote.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from jobflow import Flow, run_locally

from electrodb.campaign import Campaign, SystemSpec
from electrodb.flows.md import ElectrolyteFlowMaker
from electrodb.stores import ElectroDBStores
from electrodb.trajectory import utcnow

__all__ = ["CampaignRunSummary", "campaign_flow", "pending_systems", "register_campaign", "run_campaign"]


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
    """Split specs into (to run, already completed) by looking their ids up in ``trajectories``."""
    ids = [s.system_id for s in specs]
    done = {
        d["trajectory_id"]
        for d in stores.trajectories.query(
            {"trajectory_id": {"$in": ids}, "status": "completed"}, properties=["trajectory_id"]
        )
    }
    return [s for s in specs if s.system_id not in done], [s for s in specs if s.system_id in done]


def campaign_flow(specs: list[SystemSpec], maker: ElectrolyteFlowMaker | None = None, name: str = "campaign") -> Flow:
    """One Flow holding an electrolyte flow per system (they are independent and can run in parallel)."""
    maker = maker or ElectrolyteFlowMaker()
    return Flow([maker.make(spec) for spec in specs], name=name)


@dataclass
class CampaignRunSummary:
    total: int
    skipped: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    unstable: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    solvation: dict[str, str] = field(default_factory=dict)  # solvation_id -> status
    reasons: dict[str, str] = field(default_factory=dict)  # system_id -> why it failed or is unstable


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
def _capture_job_errors() -> Iterator[_JobErrors]:
    logger = logging.getLogger("jobflow.managers.local")
    handler, level, propagate = _JobErrors(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # the failure text is logged at INFO ...
    logger.propagate = False  # ... which must not reach a root handler some library configured
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@functools.lru_cache(maxsize=16)
def _model_r_max(reference: str, stamp: tuple[int, int] | None) -> float | None:
    """The cutoff a model reports; cached per reference and file state (``campaign run`` asks twice)."""
    from electrodb.models import ModelRef, load_model

    return load_model(ModelRef.parse(reference)).identity.r_max


def with_model_cutoff(campaign: Campaign) -> tuple[Campaign, str | None]:
    """The campaign with its box-size check using the model's own cutoff, and a note on what was used.

    ``model_cutoff_A`` is the user's word; the model file knows its real cutoff (``ModelIdentity.r_max``). When
    the model's is larger, it replaces the user's value (boxes shorter than twice the model's cutoff would see
    their own images); when the model cannot be read here, the user's value stays and the note says so.
    """
    from electrodb.models import ModelError

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


def run_campaign(
    campaign: Campaign,
    stores: ElectroDBStores,
    model_id: str | None = None,
    maker: ElectrolyteFlowMaker | None = None,
    on_system: Callable[[int, int, SystemSpec], None] | None = None,
) -> CampaignRunSummary:
    """Run every pending system of ``campaign`` locally into ``stores``; skip completed ones.

    The box-size check uses the model's own cutoff where it is larger than ``model_cutoff_A``
    (:func:`with_model_cutoff`).
    """
    campaign, _ = with_model_cutoff(campaign)
    specs = campaign.systems(model_id=model_id)
    model_id = specs[0].model_id
    register_campaign(campaign, stores, model_id)
    todo, done = pending_systems(specs, stores)
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
    maker = maker or ElectrolyteFlowMaker()
    job_store = stores.job_store()
    for k, spec in enumerate(todo):
        if on_system:
            on_system(k, len(todo), spec)
        flow = maker.make(spec)
        flow.update_metadata({"electrodb_system_id": spec.system_id})
        # A rerun (after an interruption or a failure) supersedes the job documents of the earlier attempt:
        # the system's data live in its own collections, so the old job outputs would only pile up.
        job_store.remove_docs({"metadata.electrodb_system_id": spec.system_id})
        with _capture_job_errors() as errors:
            responses = run_locally(flow, store=job_store, create_folders=False, log=False, ensure_success=False)
        doc = stores.trajectories.query_one({"trajectory_id": spec.system_id}, properties=["status", "status_reason"])
        status = doc["status"] if doc else "failed"
        if status == "completed":
            summary.completed.append(spec.system_id)
        elif status == "unstable":
            summary.unstable.append(spec.system_id)
            summary.reasons[spec.system_id] = (doc or {}).get("status_reason") or "unstable (no reason recorded)"
        else:
            summary.failed.append(spec.system_id)
            reason = "; ".join(errors.errors) or (doc or {}).get("status_reason") or "no error was reported"
            summary.reasons[spec.system_id] = reason
            if doc:  # the trajectory document carries the failing job's error text too
                stores.trajectories.update(
                    [
                        {
                            **stores.trajectories.query_one({"trajectory_id": spec.system_id}),
                            "status": "failed",
                            "status_reason": reason,
                            "last_updated": utcnow(),
                        }
                    ],
                    key="trajectory_id",
                )
        del responses
    if campaign.solvation:
        summary.solvation = run_solvation(campaign, stores, model_id)
    return summary


def run_solvation(campaign: Campaign, stores: ElectroDBStores, model_id: str) -> dict[str, str]:
    """One TI flow per salt × temperature (``docs/solvation.md``); skips ids already completed.

    The campaign's ``long_range`` term (or the one a delta-learned model was trained without) is used in TI too.
    """
    from electrodb.flows.solvation import SolvationTIMaker, TISettings, solvation_id
    from electrodb.flows.training import model_long_range, resolve_long_range

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
