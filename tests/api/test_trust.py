"""The model-trust verdict in the API and the Python client (issue 23): filters, sorting, the superseded default,
``/committees`` and ``/audits``, the OpenAPI schema and ``GET /properties``.

The module's own sample database gets committees, audits and verdicts from :mod:`tests.api.trust_data`.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from electrodb.api.client import ElectroDBAPIError, ElectroDBClient
from electrodb.documents.committee import TRUST_STATUSES, AuditDocument, CommitteeDocument
from electrodb.store.query import SPECS, QueryError, build_criteria
from tests.api.sample_database import MODEL_A, SYSTEMS
from tests.api.trust_data import (
    FIRST,
    NACL_05,
    NACL_1,
    NACL_2,
    OLD_MODEL,
    REFINED,
    SUPERSEDED,
    add_trust,
)

FRAME_LISTS = ("frames", "times_ps", "sigma_F_max", "sigma_F_mean", "sigma_F_p95", "sigma_E_meV_per_atom")


@pytest.fixture(scope="module")
def trust(db: dict[str, Any]) -> dict[str, Any]:
    return add_trust(db["settings"], db["summaries"])


@pytest.fixture(scope="module")
def client(http: Any, trust: dict[str, Any]) -> Any:
    return http


@pytest.fixture(scope="module")
def api(client: Any) -> ElectroDBClient:
    return ElectroDBClient(client=client)


def _ids(body: dict[str, Any]) -> set[str]:
    return {d["electrolyte_id"] for d in body["data"]}


# ------------------------------------------------------------------------------------------ /electrolytes


def test_filter_by_model_trust(client: Any) -> None:
    body = client.get("/electrolytes", params={"model_trust": "extrapolating"}).json()
    assert _ids(body) == {NACL_1} and body["meta"]["total_doc"] == 1  # the superseded one is not the answer
    body = client.get("/electrolytes", params={"model_trust": "trusted,insufficient"}).json()
    assert _ids(body) == {NACL_05, NACL_2}
    unaudited = client.get("/electrolytes", params={"model_trust": "unaudited", "_limit": 0}).json()
    assert unaudited["meta"]["total_doc"] == len(SYSTEMS) - 3
    one = client.get(f"/electrolytes/{NACL_1}").json()["data"]
    assert one["model_trust"] == "extrapolating" and one["frac_flagged"] == 0.125
    assert one["committee_id"] == REFINED and one["refine_round"] == 1 and "12.5 %" in one["model_trust_reason"]


@pytest.mark.parametrize(("value", "close"), [("trustd", "trusted"), ("extrapolated", "extrapolating")])
def test_a_bad_verdict_is_refused_with_the_close_match(client: Any, value: str, close: str) -> None:
    r = client.get("/electrolytes", params={"model_trust": value})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["message"].count("\n") == 0 and "model_trust" in error["message"]
    assert f"did you mean '{close}'" in error["message"] and "pattern" not in error["message"]
    assert error["detail"]["parameter"] == "model_trust"
    with pytest.raises(QueryError, match=f"did you mean '{close}'"):  # the export's path (no HTTP)
        build_criteria(SPECS["electrolytes"], {"model_trust": value})


def test_trust_ranges_committee_round_and_sort(client: Any) -> None:
    assert _ids(client.get("/electrolytes?frac_flagged_min=0.1").json()) == {NACL_1}
    assert _ids(client.get("/electrolytes?sigma_F_max_p95_max=0.1").json()) == {NACL_05}
    assert _ids(client.get(f"/electrolytes?committee_id={REFINED}").json()) == {NACL_05, NACL_1, NACL_2}
    assert _ids(client.get("/electrolytes?refine_round=1").json()) == {NACL_05, NACL_1, NACL_2}
    assert _ids(client.get("/electrolytes?refine_round=0").json()) == set()  # round 0's result is superseded
    assert _ids(client.get("/electrolytes?refine_round=0&include_superseded=true").json()) == {SUPERSEDED}
    r = client.get("/electrolytes?refine_round=first")
    assert r.status_code == 422 and "refine_round" in r.json()["error"]["message"]
    data = client.get("/electrolytes?_sort_fields=-frac_flagged&_limit=3&_fields=frac_flagged").json()["data"]
    assert [d["frac_flagged"] for d in data] == [0.125, 0.01, 0.0]
    data = client.get("/electrolytes?_sort_fields=model_trust&_limit=1&_fields=model_trust").json()["data"]
    assert data[0]["model_trust"] == "extrapolating"  # alphabetical: extrapolating first
    data = client.get("/electrolytes?_sort_fields=-sigma_F_max_p95&_limit=1").json()["data"]
    assert data[0]["electrolyte_id"] == NACL_1


def test_superseded_results_are_left_out_unless_asked_for(client: Any) -> None:
    default = client.get("/electrolytes", params={"salt": "NaCl", "molality_min": 1, "molality_max": 1}).json()
    assert SUPERSEDED not in _ids(default)
    everything = client.get("/electrolytes", params={"include_superseded": "true"}).json()
    assert everything["meta"]["total_doc"] == len(SYSTEMS) + 1 and SUPERSEDED in _ids(everything)
    total = client.get("/electrolytes?_limit=0").json()["meta"]["total_doc"]
    assert total == len(SYSTEMS)
    pages = [client.get("/electrolytes", params={"_page": p, "_per_page": 5}).json() for p in (1, 2, 3)]
    assert {p["meta"]["total_doc"] for p in pages} == {len(SYSTEMS)}
    paged = set().union(*(_ids(p) for p in pages))
    assert len(paged) == len(SYSTEMS) and SUPERSEDED not in paged
    assert client.get("/electrolytes?include_superseded=false&_limit=0").json()["meta"]["total_doc"] == total
    assert client.get("/electrolytes?include_superseded=maybe").status_code == 422
    # named, it is still there; it says what replaced it
    one = client.get(f"/electrolytes/{SUPERSEDED}").json()["data"]
    assert one["superseded_by"] == NACL_1 and one["model_id"] == OLD_MODEL
    facets = client.get("/facets").json()["data"]
    assert OLD_MODEL not in facets["model_id"] and OLD_MODEL not in facets["model_name"]
    assert facets["model_trust"] == ["trusted", "extrapolating", "insufficient", "unaudited"]


def test_openapi_and_properties_describe_the_trust_fields(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/electrolytes"]["get"]["parameters"]}
    new = {"model_trust", "frac_flagged_min", "frac_flagged_max", "sigma_F_max_p95_min", "sigma_F_max_p95_max"}
    assert new | {"committee_id", "refine_round", "include_superseded"} <= set(params)
    assert all(params[n].get("description") for n in new)
    assert params["include_superseded"]["schema"]["default"] is False
    assert "model_trust" in params["_sort_fields"]["schema"]["anyOf"][0]["pattern"]
    export = {p["name"] for p in spec["paths"]["/export"]["get"]["parameters"]}
    assert {"model_trust", "include_superseded"} <= export
    summary = spec["components"]["schemas"]["ElectrolyteSummaryOut"]["properties"]
    for name in ("model_trust", "model_trust_reason", "frac_flagged", "sigma_F_max_p95", "superseded_by"):
        assert summary[name].get("description") or any(s.get("description") for s in summary[name].get("anyOf", []))
    trust_schema = summary["model_trust"]["anyOf"][0]
    assert trust_schema["enum"] == list(TRUST_STATUSES)
    assert {"/committees", "/committees/{committee_id}", "/audits"} <= set(spec["paths"])
    meta = client.get("/properties").json()["meta"]
    assert meta["trust_statuses"] == list(TRUST_STATUSES)
    assert "above threshold" in meta["trust_fields"]["frac_flagged"] and "superseded_by" in meta["trust_fields"]


# ------------------------------------------------------------------------------------------ /committees, /audits


def test_committees_list_and_one(client: Any) -> None:
    body = client.get("/committees").json()
    assert body["meta"]["total_doc"] == 2 and {c["committee_id"] for c in body["data"]} == {FIRST, REFINED}
    refined = client.get(f"/committees/{REFINED}").json()["data"]
    assert refined["parent_id"] == FIRST and refined["refine_round"] == 1 and refined["member_ids"][0] == MODEL_A
    assert client.get(f"/committees?parent_id={FIRST}").json()["data"][0]["committee_id"] == REFINED
    assert client.get("/committees?refine_round=0").json()["data"][0]["superseded_by"] == REFINED
    assert client.get(f"/committees/{FIRST}?_fields=name").json()["data"] == {
        "committee_id": FIRST,
        "name": "demo-committee",
    }
    missing = client.get("/committees/committee:nothing")
    assert missing.status_code == 404 and "GET /committees" in missing.json()["error"]["message"]
    assert client.get("/health").json()["counts"]["committees"] == 2


def test_audits_filters_and_heavy_per_frame_lists(client: Any) -> None:
    body = client.get("/audits", params={"trajectory_id": "traj-01-0"}).json()
    assert body["meta"]["total_doc"] == 2 and {a["committee_id"] for a in body["data"]} == {FIRST, REFINED}
    for audit in body["data"]:
        assert not set(FRAME_LISTS) & set(audit)  # per-frame lists only when named
        assert audit["worst"][0]["element"] == "Na" and "frac_flagged" in audit and audit["verdict"]["status"]
    assert client.get("/audits", params={"committee_id": REFINED}).json()["meta"]["total_doc"] == 2
    assert client.get("/audits", params={"system_id": "sys-00"}).json()["meta"]["total_doc"] == 1
    named = client.get("/audits", params={"system_id": "sys-00", "_fields": "sigma_F_max,frac_flagged"}).json()
    assert (
        set(named["data"][0]) == {"audit_id", "sigma_F_max", "frac_flagged"}
        and len(named["data"][0]["sigma_F_max"]) == 8
    )
    every = client.get("/audits", params={"system_id": "sys-00", "_fields": ",".join(FRAME_LISTS)}).json()["data"]
    assert set(FRAME_LISTS) <= set(every[0]) and every[0]["times_ps"][1] == 0.1
    r = client.get("/audits", params={"trajectory": "traj-01-0"})
    assert r.status_code == 422 and "did you mean 'trajectory_id'" in r.json()["error"]["message"]


# ------------------------------------------------------------------------------------------ client


def test_client_trust_filters(api: ElectroDBClient) -> None:
    rows = api.search(model_trust="extrapolating", as_dict=True)
    assert [r["electrolyte_id"] for r in rows] == [NACL_1]
    assert {d.electrolyte_id for d in api.search(model_trust=["trusted", "insufficient"])} == {NACL_05, NACL_2}
    assert {d.electrolyte_id for d in api.search(frac_flagged=(0.005, 0.2))} == {NACL_05, NACL_1}
    assert {d.electrolyte_id for d in api.search(sigma_F_max_p95_min=0.3)} == {NACL_1}
    assert {d.electrolyte_id for d in api.search(committee_id=REFINED, refine_round=1)} == {NACL_05, NACL_1, NACL_2}
    assert api.count() == len(SYSTEMS) and api.count(include_superseded=True) == len(SYSTEMS) + 1
    with_old = api.search(salt="NaCl", molality=1.0, temperature=298.15, include_superseded=True, as_dict=True)
    assert {r["electrolyte_id"] for r in with_old} >= {NACL_1, SUPERSEDED}
    with pytest.raises(ElectroDBAPIError, match="did you mean 'trusted'") as info:
        api.search(model_trust="trustd")
    assert info.value.parameter == "model_trust"
    with pytest.raises(TypeError, match="frac_flagged"):
        api.search(frac_flaged=(0, 1))


def test_client_committees_and_audits(api: ElectroDBClient) -> None:
    committees = api.committees()
    assert {c.committee_id for c in committees} == {FIRST, REFINED}
    assert all(isinstance(c, CommitteeDocument) for c in committees)
    assert [c["committee_id"] for c in api.committees(refine_round=1, as_dict=True)] == [REFINED]
    audits = api.audits(trajectory_id="traj-01-0", committee_id=REFINED)
    assert len(audits) == 1 and isinstance(audits[0], AuditDocument) and audits[0].frac_flagged == 0.125
    assert audits[0].sigma_F_max == []  # left out by the server unless asked for
    assert len(api.audits(trajectory_id="traj-01-0", committee_id=REFINED, per_frame=True)[0].sigma_F_max) == 8
    frame = api.audits(system_id="sys-00", as_dataframe=True)
    empty = api.audits(system_id="no-such-system", as_dataframe=True)
    assert isinstance(empty, pd.DataFrame) and empty.empty
    assert list(empty.columns)[:3] == ["audit_id", "trajectory_id", "system_id"]
    assert set(frame.columns) <= set(empty.columns) and "sigma_F_max" not in empty.columns
    assert "frac_flagged" in empty.columns and "verdict" in empty.columns
    none = api.committees(committee_id="committee:nothing", as_dataframe=True)
    assert none.empty and {"committee_id", "name", "member_ids", "threshold_eV_per_A", "superseded_by"} <= set(
        none.columns
    )
    summaries = api.search(salt="NaCl", model_trust="unaudited", as_dataframe=True)
    nothing = api.search(model_trust="extrapolating", salt="KBr", as_dataframe=True)
    assert nothing.empty and {"model_trust", "frac_flagged", "sigma_F_max_p95", "superseded_by"} <= set(nothing.columns)
    assert set(summaries["model_trust"]) == {"unaudited"}


def test_http_export_leaves_superseded_out_unless_asked_for(client: Any) -> None:
    default = client.get("/export", params={"format": "jsonl", "salt": "NaCl"}).text.splitlines()
    rows = [json.loads(line) for line in default]
    assert SUPERSEDED not in {r["electrolyte_id"] for r in rows}
    assert next(r for r in rows if r["electrolyte_id"] == NACL_1)["sigma_F_max_p95_eV_per_A"] == 0.41
    every = client.get("/export", params={"format": "jsonl", "salt": "NaCl", "include_superseded": "true"}).text
    old = next(json.loads(line) for line in every.splitlines() if SUPERSEDED in line)
    assert old["superseded_by"] == NACL_1 and old["model_trust"] == "extrapolating"
    assert client.get("/export", params={"model_trust": "trustd"}).status_code == 422
