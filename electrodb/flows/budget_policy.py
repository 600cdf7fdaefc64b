"""Sharing a campaign's budget across its systems (campaigns with ``until:``; :mod:`electrodb.flows.segments`).

The local runner (:func:`electrodb.flows.campaign.run_segments_cheapest_first`) gives every system a first
segment, then one segment at a time to the system whose cheapest pending ``unconverged`` property needs the least
wall time (:func:`cheapest_first`), deciding each segment's length again right before it runs
(:func:`decide_again`); :func:`still_stopped` tells a rerun which systems have nothing left to do.
``benchmarks/segments.py`` compares this policy with others.
"""

from __future__ import annotations

import math
from typing import Any

from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.flows.job_io import output_document
from electrodb.flows.md import report
from electrodb.flows.md_records import mark
from electrodb.flows.segments import PropertyState, decide_for, until_properties
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.campaign import SystemSpec

__all__ = ["cheapest_first", "decide_again", "still_stopped"]


def _recorded_states(record: dict[str, Any]) -> dict[str, PropertyState]:
    """The judged properties a stored convergence record holds."""
    return {k: PropertyState(**v) for k, v in (record.get("properties") or {}).items()}


def still_stopped(doc: dict[str, Any], spec: SystemSpec, stores: ElectroDBStores) -> bool:
    """Whether a system's last convergence check stopped it and would stop it again under ``spec``'s current
    ``until`` and budget (decided again from the stored judgement, without analysing the run again)."""
    record = doc.get("convergence") or {}
    if not record or record.get("decision") == "continue":
        return False
    states = _recorded_states(record)
    if any(p not in states for p in until_properties(spec.until)):
        return False
    return decide_for(spec, states, doc, stores)[0] != "continue"


def decide_again(stores: ElectroDBStores, spec: SystemSpec) -> float | None:
    """The length a system's next segment should run to, decided again now from its last judgement (no new
    analysis) with what the campaign has spent since; None when it should stop, which is then recorded.

    The local runner asks right before it runs a segment: a length decided while other systems were still to
    run could otherwise spend the campaign's hours twice.
    """
    doc = stores.trajectories.query_one({"trajectory_id": spec.system_id})
    record = (doc or {}).get("convergence") or {}
    if record.get("decision") != "continue":
        return None
    decision, reason, nxt = decide_for(spec, _recorded_states(record), doc, stores)
    if decision != "continue":
        updated = {**record, "decision": decision, "reason": reason, "next_production_ps": None}
        mark(stores, TrajectoryDocument(**output_document(doc)), convergence=updated)
        report(f"{spec.salt} {spec.molality:.2f} m: segment {record.get('segment')}, stopped: {reason}")
        return None
    return nxt


def cheapest_first(specs: list[SystemSpec], stores: ElectroDBStores) -> list[SystemSpec]:
    """``specs`` ordered by the wall time their cheapest pending, computed (``unconverged``) property still needs:
    the budget goes first where it buys a converged value soonest. Systems without such an estimate come last, in
    campaign order; those that stopped keep their place (they add nothing)."""

    def cost(spec: SystemSpec) -> float:
        doc = stores.trajectories.query_one({"trajectory_id": spec.system_id}, properties=["convergence"]) or {}
        record = doc.get("convergence") or {}
        speed = record.get("ps_per_hour")
        states = record.get("properties") or {}
        # an insufficient value's needs_ps is what the analysis needs before it can judge at all (frames, events),
        # not what convergence needs: ranking on it sent the budget to the least ready system (benchmarks/segments)
        needs = [
            states.get(p, {}).get("needs_ps")
            for p in record.get("pending") or []
            if p not in (record.get("unreachable") or []) and states.get(p, {}).get("status") == "unconverged"
        ]
        needs = [n for n in needs if n is not None]
        if record.get("decision") != "continue" or not needs or not speed:
            return math.inf
        return min(needs) / speed

    return sorted(specs, key=cost)
