"""The summaries' model-trust fields: the current committee's audit per run, the worst verdict over runs, and
``superseded_by`` once a refined committee's model ran the same electrolyte."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from electrodb.builders.trust import current_audits, newest_in_lineage, summary_trust, superseding_id
from electrodb.documents.properties import electrolyte_id

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _audit(tid: str, committee: str, status: str, flagged: int, n: int = 40, minutes: int = 0, p95: float = 0.1):
    return {
        "trajectory_id": tid,
        "committee_id": committee,
        "verdict": {"status": status, "reason": "" if status == "trusted" else f"{status} because", "criterion": "c"},
        "n_frames_audited": n,
        "n_flagged": flagged,
        "sigma_F_max_p95": p95,
        "last_updated": T0 + timedelta(minutes=minutes),
    }


COMMITTEES = {
    "c0": {"committee_id": "c0", "name": "demo", "member_ids": ["m0", "m1"], "refine_round": 0, "superseded_by": "c1"},
    "c1": {"committee_id": "c1", "name": "demo-r1", "member_ids": ["n0", "n1"], "refine_round": 1},
}


def test_trusted_runs_give_a_trusted_summary_with_pooled_fractions() -> None:
    audits = [_audit("a", "c1", "trusted", 1), _audit("b", "c1", "trusted", 0, n=60, p95=0.2)]
    out = summary_trust(["a", "b"], audits, COMMITTEES)
    assert out["model_trust"] == "trusted" and out["model_trust_reason"] == ""
    assert out["frac_flagged"] == 1 / 100 and out["n_frames_audited"] == 100
    assert out["sigma_F_max_p95"] == 0.2 and out["committee_name"] == "demo-r1" and out["refine_round"] == 1


def test_one_extrapolating_run_makes_the_summary_extrapolating_and_names_it() -> None:
    audits = [_audit("aaaaaaaaaaaa", "c1", "trusted", 0), _audit("bbbbbbbbbbbb", "c1", "extrapolating", 20)]
    out = summary_trust(["aaaaaaaaaaaa", "bbbbbbbbbbbb"], audits, COMMITTEES)
    assert out["model_trust"] == "extrapolating"
    assert out["model_trust_reason"].startswith("run bbbbbbbbbb: extrapolating because")


def test_unaudited_runs() -> None:
    assert summary_trust(["a"], [], COMMITTEES)["model_trust"] == "unaudited"
    out = summary_trust(["a", "b"], [_audit("a", "c1", "trusted", 0)], COMMITTEES)
    assert out["model_trust"] == "unaudited" and "1 of 2 runs" in out["model_trust_reason"]


def test_the_current_committee_wins_over_a_superseded_one_even_when_older() -> None:
    audits = [_audit("a", "c0", "extrapolating", 30, minutes=10), _audit("a", "c1", "trusted", 0, minutes=0)]
    assert current_audits(audits, COMMITTEES)["a"]["committee_id"] == "c1"
    assert summary_trust(["a"], audits, COMMITTEES)["model_trust"] == "trusted"


def test_superseded_only_once_the_newer_model_ran_the_same_electrolyte() -> None:
    assert newest_in_lineage("m0", COMMITTEES)["committee_id"] == "c1"
    assert newest_in_lineage("n0", COMMITTEES) is None  # drives the current committee
    newer = electrolyte_id("NaCl", 1.0, 298.15, "n0")
    assert superseding_id("NaCl", 1.0, 298.15, "m0", COMMITTEES, lambda eid: eid == newer) == newer
    assert superseding_id("NaCl", 1.0, 298.15, "m0", COMMITTEES, lambda eid: False) is None
    assert superseding_id("NaCl", 1.0, 298.15, "x", COMMITTEES, lambda eid: True) is None
