"""The model-trust verdict of a summary, from the committee audits of its runs (``docs/committees.md``).

A summary merges repeat runs of one electrolyte with one model; each run may have been audited by one or more
committees (``audits``). For each run the audit of its *current* committee counts: the newest one (not superseded,
highest refine round, then the latest written). The summary's verdict is the worst over its runs
(``extrapolating`` > ``insufficient`` > ``unaudited`` > ``trusted``), so one run that left the training data is
enough to distrust the merged value. ``frac_flagged`` pools the audited frames of the runs; ``sigma_F_max_p95`` is
the largest of the runs'.

A result is *superseded* when its model drove a committee that a refine round replaced and the same electrolyte
(salt, molality, temperature) was run with the model of a newer committee in that lineage: the summary then names
the newer summary in ``superseded_by``; it stays queryable, and the API leaves it out unless asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maggma.core import Store

from electrodb.documents.committee import TRUST_STATUSES
from electrodb.documents.properties import electrolyte_id
from electrodb.utils.provenance import as_datetime

__all__ = ["TRUST_ORDER", "TrustLookup", "current_audits", "newest_in_lineage", "summary_trust", "superseding_id"]

#: Worse verdicts first: the merged verdict is the first one any run has.
TRUST_ORDER = ("extrapolating", "insufficient", "unaudited", "trusted")
if set(TRUST_ORDER) != set(TRUST_STATUSES):
    raise RuntimeError("TRUST_ORDER must rank every model-trust status")


def _rank(committee: dict[str, Any] | None) -> tuple[int, int]:
    if committee is None:
        return (0, -1)
    return (0 if committee.get("superseded_by") else 1, int(committee.get("refine_round") or 0))


def current_audits(audits: list[dict[str, Any]], committees: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{trajectory_id: audit}``: per run, the audit by its newest committee (not superseded, latest round)."""
    best: dict[str, dict[str, Any]] = {}
    for audit in audits:
        tid = audit["trajectory_id"]
        key = (*_rank(committees.get(audit["committee_id"])), as_datetime(audit.get("last_updated")))
        old = best.get(tid)
        if old is None or key > (
            *_rank(committees.get(old["committee_id"])),
            as_datetime(old.get("last_updated")),
        ):
            best[tid] = audit
    return best


def summary_trust(
    trajectory_ids: list[str], audits: list[dict[str, Any]], committees: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The summary's trust fields (``model_trust``, its reason and criterion, the committee, ``frac_flagged`` ...).

    Parameters
    ----------
    trajectory_ids
        The merged runs.
    audits
        Audit documents of those runs (any committee).
    committees
        ``{committee_id: committee document}`` of the committees named by the audits.
    """
    current = current_audits(audits, committees)
    verdicts = {tid: (current[tid].get("verdict") or {}) if tid in current else None for tid in trajectory_ids}
    statuses = {
        tid: (v or {}).get("status", "unaudited") if v is not None else "unaudited" for tid, v in verdicts.items()
    }
    status = next(s for s in TRUST_ORDER if s in statuses.values() or s == "trusted")
    audited = [current[t] for t in trajectory_ids if t in current]
    if not audited:
        return {
            "model_trust": "unaudited",
            "model_trust_reason": "no committee audit of these runs (electrodb model audit, or audit: in the campaign)",
            "n_frames_audited": 0,
        }
    worst_tid = next(t for t in trajectory_ids if statuses[t] == status)
    if status == "unaudited":
        missing = sum(1 for s in statuses.values() if s == "unaudited")
        reason = f"{missing} of {len(trajectory_ids)} runs have no committee audit (electrodb model audit)"
        criterion = ""
    else:
        verdict = verdicts[worst_tid] or {}
        reason = str(verdict.get("reason") or "")
        criterion = str(verdict.get("criterion") or "")
        if reason and len(trajectory_ids) > 1:
            reason = f"run {worst_tid[:10]}: {reason}"
    n_frames = sum(int(a.get("n_frames_audited") or 0) for a in audited)
    n_flagged = sum(int(a.get("n_flagged") or 0) for a in audited)
    p95 = [a["sigma_F_max_p95"] for a in audited if a.get("sigma_F_max_p95") is not None]
    chosen = current.get(worst_tid) or audited[0]
    committee = committees.get(chosen["committee_id"]) or {}
    return {
        "model_trust": status,
        "model_trust_reason": reason,
        "model_trust_criterion": criterion,
        "committee_id": chosen["committee_id"],
        "committee_name": committee.get("name"),
        "refine_round": committee.get("refine_round"),
        "frac_flagged": n_flagged / n_frames if n_frames else None,
        "sigma_F_max_p95": max(p95) if p95 else None,
        "n_frames_audited": n_frames,
    }


def newest_in_lineage(model_id: str, committees: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The newest committee descended from one that ``model_id`` drives (None: it drives no superseded one)."""
    driven = [c for c in committees.values() if _driver(c) == model_id and c.get("superseded_by")]
    if not driven:
        return None
    current = max(driven, key=lambda c: int(c.get("refine_round") or 0))
    seen = {current["committee_id"]}
    while current.get("superseded_by") and current["superseded_by"] in committees:
        current = committees[current["superseded_by"]]
        if current["committee_id"] in seen:  # a cycle would be damage; stop rather than loop
            break
        seen.add(current["committee_id"])
    return current


def _driver(committee: dict[str, Any]) -> str | None:
    members = committee.get("member_ids") or []
    driver = committee.get("driver", 0)
    index = 0 if driver == "mean" else int(driver)
    return members[index] if index < len(members) else None


def superseding_id(
    salt: str,
    molality: float,
    temperature: float,
    model_id: str,
    committees: dict[str, dict[str, Any]],
    has_summary: Any,
) -> str | None:
    """``electrolyte_id`` of the same electrolyte run with the newest committee's driver in ``model_id``'s lineage,
    when ``has_summary(electrolyte_id)`` says it exists (None otherwise)."""
    newest = newest_in_lineage(model_id, committees)
    if newest is None:
        return None
    driver = _driver(newest)
    if driver is None or driver == model_id:
        return None
    eid = electrolyte_id(salt, molality, temperature, driver)
    return eid if has_summary(eid) else None


class TrustLookup:
    """The summary builder's view of ``audits`` and ``committees`` (committees read once per build).

    Parameters
    ----------
    audits, committees, trajectories
        The stores.
    structure
        A per-trajectory property store (``structure``): an electrolyte has results when it has documents there.
    """

    def __init__(self, audits: Store, committees: Store | None, trajectories: Store, structure: Store) -> None:
        self.audits = audits
        self.committees = committees
        self.trajectories = trajectories
        self.structure = structure
        self._committees: dict[str, dict[str, Any]] | None = None

    def committee_docs(self) -> dict[str, dict[str, Any]]:
        """``{committee_id: document}`` of every registered committee."""
        if self._committees is None:
            found = self.committees.query({}) if self.committees is not None else []
            self._committees = {d["committee_id"]: d for d in found if d.get("committee_id")}
        return self._committees

    def stamps(self, newest: dict[str, datetime], members: dict[str, set[str]]) -> dict[str, datetime]:
        """``newest`` (electrolyte id → newest input) raised to its runs' newest audit and, for electrolytes whose
        model drives a committee, to the newest committee (a refine round may supersede them)."""
        self._committees = None
        stamps = dict(newest)
        audited: dict[str, datetime] = {}
        for d in self.audits.query({}, properties=["trajectory_id", "last_updated"]):
            t = as_datetime(d.get("last_updated"))
            audited[d["trajectory_id"]] = max(t, audited.get(d["trajectory_id"], t))
        committees = self.committee_docs()
        drivers = sorted({d for c in committees.values() if (d := _driver(c))})
        latest = max((as_datetime(c.get("last_updated")) for c in committees.values()), default=None)
        driven: set[str] = set()
        if drivers and latest is not None:
            found = self.trajectories.query({"model_id": {"$in": drivers}}, properties=["trajectory_id"])
            driven = {d["trajectory_id"] for d in found}
        for eid, tids in members.items():
            for tid in tids:
                for t in (audited.get(tid), latest if tid in driven else None):
                    if t is not None and eid in stamps and t > stamps[eid]:
                        stamps[eid] = t
        return stamps

    def fields(self, summary: Any) -> dict[str, Any]:
        """The model-trust fields and ``superseded_by`` of one summary (an ``ElectrolyteSummary``)."""
        tids = list(summary.trajectory_ids)
        committees = self.committee_docs()
        out = summary_trust(tids, list(self.audits.query({"trajectory_id": {"$in": tids}})), committees)
        out["superseded_by"] = superseding_id(
            summary.salt,
            summary.molality,
            summary.temperature,
            summary.model_id,
            committees,
            lambda eid: self.structure.query_one({"electrolyte_id": eid}, properties=["electrolyte_id"]) is not None,
        )
        return out
