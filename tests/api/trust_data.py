"""Committees, audits and model-trust verdicts added to the sample database (:mod:`tests.api.sample_database`).

Two committees, the second refined from the first (which it supersedes); verdicts on three NaCl summaries
(trusted, extrapolating, insufficient; the rest stay ``unaudited``); audits of two trajectories; and one result of
the first committee's model that the refined one superseded (NaCl 1 mol/kg, 298.15 K): it stays in the database,
queryable, but is not the default answer. Every document is built through its pydantic schema.
"""

from __future__ import annotations

from typing import Any

from electrodb.documents.committee import AuditDocument, CommitteeDocument, WorstFrame, audit_id, committee_id
from electrodb.documents.properties import ElectrolyteSummary, electrolyte_id
from electrodb.settings import ElectroDBSettings
from electrodb.store.stores import get_stores
from tests.api.sample_database import MODEL_A

#: The first committee's driver: its model ran NaCl 1 mol/kg before the refine round.
OLD_MODEL = "sha256:" + "01" * 32
FIRST_MEMBERS = [OLD_MODEL, *("sha256:" + f"{k:02d}" * 32 for k in (2, 3, 4))]
REFINED_MEMBERS = [MODEL_A, *("sha256:" + f"{k:02d}" * 32 for k in (5, 6, 7))]
FIRST = committee_id(FIRST_MEMBERS)
REFINED = committee_id(REFINED_MEMBERS)
THRESHOLD = 0.25
NACL_05 = electrolyte_id("NaCl", 0.5, 298.15, MODEL_A)
NACL_1 = electrolyte_id("NaCl", 1.0, 298.15, MODEL_A)
NACL_2 = electrolyte_id("NaCl", 2.0, 298.15, MODEL_A)
SUPERSEDED = electrolyte_id("NaCl", 1.0, 298.15, OLD_MODEL)
EXTRAPOLATING_REASON = "12.5 % of 400 audited frames have σ_F above 0.25 eV/Å (at most 5 %)"

#: electrolyte_id → its model-trust fields.
VERDICTS: dict[str, dict[str, Any]] = {
    NACL_05: {
        "model_trust": "trusted",
        "model_trust_criterion": "frac_flagged <= 0.05 (σ_F threshold 0.25 eV/Å)",
        "frac_flagged": 0.01,
        "sigma_F_max_p95": 0.08,
        "n_frames_audited": 200,
    },
    NACL_1: {
        "model_trust": "extrapolating",
        "model_trust_reason": EXTRAPOLATING_REASON,
        "model_trust_criterion": "frac_flagged <= 0.05 (σ_F threshold 0.25 eV/Å)",
        "frac_flagged": 0.125,
        "sigma_F_max_p95": 0.41,
        "n_frames_audited": 400,
    },
    NACL_2: {
        "model_trust": "insufficient",
        "model_trust_reason": "3 frames audited < 20",
        "model_trust_criterion": ">= 20 audited frames",
        "frac_flagged": 0.0,
        "n_frames_audited": 3,
    },
}


def _committees() -> list[dict[str, Any]]:
    common = {"elements": ["Cl", "H", "Na", "O"], "r_max": 5.0, "threshold_eV_per_A": THRESHOLD}
    first = CommitteeDocument(
        committee_id=FIRST, name="demo-committee", member_ids=FIRST_MEMBERS, superseded_by=REFINED, **common
    )
    refined = CommitteeDocument(
        committee_id=REFINED,
        name="demo-committee-r1",
        member_ids=REFINED_MEMBERS,
        parent_id=FIRST,
        refine_round=1,
        added_configurations=24,
        **common,
    )
    return [first.model_dump(), refined.model_dump()]


def _audit(trajectory_id: str, system_id: str, committee: str, model_id: str, frac: float) -> dict[str, Any]:
    n = 8
    sigma = [0.1 + 0.05 * i for i in range(n)]
    flagged = sum(s > THRESHOLD for s in sigma)
    return AuditDocument(
        audit_id=audit_id(trajectory_id, committee),
        trajectory_id=trajectory_id,
        system_id=system_id,
        committee_id=committee,
        model_id=model_id,
        salt="NaCl",
        molality=1.0,
        temperature=298.15,
        k=4,
        frame_stride=1,
        frames=list(range(n)),
        times_ps=[0.1 * i for i in range(n)],
        sigma_F_max=sigma,
        sigma_F_mean=[s / 3 for s in sigma],
        sigma_F_p95=[s / 2 for s in sigma],
        sigma_E_meV_per_atom=[0.5] * n,
        threshold_eV_per_A=THRESHOLD,
        n_frames_audited=n,
        n_flagged=flagged,
        frac_flagged=frac,
        sigma_F_max_p95=0.41,
        worst=[WorstFrame(frame=n - 1, time_ps=0.7, sigma_F_max=sigma[-1], atom=0, element="Na")],
        verdict={"status": "extrapolating" if frac > 0.05 else "trusted", "reason": ""},
    ).model_dump()


def add_trust(settings: ElectroDBSettings, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the committees, audits, verdicts and the superseded summary into the database of ``settings``.

    ``summaries`` are the sample database's (``db["summaries"]``); returns ``{"summaries": the summaries now
    stored (superseded one included), "audits": [...], "committees": [...]}``.
    """
    by_id = {d["electrolyte_id"]: dict(d) for d in summaries}
    for eid, fields in VERDICTS.items():
        by_id[eid].update(fields, committee_id=REFINED, committee_name="demo-committee-r1", refine_round=1)
    old = ElectrolyteSummary.model_validate(
        {
            **by_id[NACL_1],
            "electrolyte_id": SUPERSEDED,
            "model_id": OLD_MODEL,
            "model_name": "demo committee member 0",
            "trajectory_ids": ["traj-old-0"],
            "n_runs": 1,
            "model_trust": "extrapolating",
            "model_trust_reason": "31 % of 400 audited frames have σ_F above 0.25 eV/Å (at most 5 %)",
            "frac_flagged": 0.31,
            "sigma_F_max_p95": 0.62,
            "n_frames_audited": 400,
            "committee_id": FIRST,
            "committee_name": "demo-committee",
            "refine_round": 0,
            "superseded_by": NACL_1,
        }
    ).model_dump()
    by_id[SUPERSEDED] = old
    audits = [
        _audit("traj-01-0", "sys-01", REFINED, MODEL_A, 0.125),
        _audit("traj-01-0", "sys-01", FIRST, MODEL_A, 0.31),
        _audit("traj-00-0", "sys-00", REFINED, MODEL_A, 0.01),
    ]
    committees = _committees()
    with get_stores(settings) as stores:
        stores.electrolytes.update(list(by_id.values()), key="electrolyte_id")
        stores.committees.update(committees, key="committee_id")
        stores.audits.update(audits, key="audit_id")
    return {"summaries": list(by_id.values()), "audits": audits, "committees": committees}
