"""One status vocabulary on every surface: ``input`` is served, filtered, exported and typed as an input; an
``insufficient`` value is null everywhere (also when a database built before that contract stores a number);
``P_n_eff`` and ``P_t_equil_ps`` travel beside the error.

The sample database (:mod:`tests.api.sample_database`) holds η as an input (Laliberté) except for one system,
MgCl2 at a fixed input density, and the legacy summary :data:`LEGACY_INSUFFICIENT` (LiCl 3 mol/kg, CN(cation–O)
3.648 stored beside ``insufficient``: the number the export once wrote).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from electrodb.analysis.convergence import STATUSES
from electrodb.api.client import ElectroDBClient
from electrodb.documents.properties import ElectrolyteSummary, withhold_insufficient
from electrodb.documents.registry import SUMMARY_PROPERTIES
from electrodb.io.export import export_columns, export_table, property_column
from electrodb.store.stores import get_stores
from tests.api.sample_database import ETA_COMPUTED, LEGACY_INSUFFICIENT, SYSTEMS

LEGACY = LEGACY_INSUFFICIENT["prop"]


@pytest.fixture(scope="module")
def api(http: Any) -> ElectroDBClient:
    return ElectroDBClient(client=http)


@pytest.fixture(scope="module")
def legacy(db: dict[str, Any]) -> dict[str, Any]:
    """The stored summary that holds a number beside ``insufficient``."""
    doc = next(
        d
        for d in db["summaries"]
        if (d["salt"], d["molality"]) == (LEGACY_INSUFFICIENT["salt"], LEGACY_INSUFFICIENT["molality"])
    )
    assert doc[LEGACY] == LEGACY_INSUFFICIENT["value"] and doc[f"{LEGACY}_status"] == "insufficient"
    return doc


def _electrolytes(http: Any, **params: Any) -> dict[str, Any]:
    r = http.get("/electrolytes", params=params)
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------------------------------------ API


def test_input_is_a_status_of_its_own_in_filters_and_openapi(http: Any) -> None:
    assert "input" in STATUSES
    eta = _electrolytes(http, eta_status="input", _fields="salt,eta,eta_status,eta_source", _limit=1000)
    assert eta["meta"]["total_doc"] == len(SYSTEMS) - 1  # every η but one is Laliberté's correlation
    assert all(d["eta"] is not None and d["eta_source"] == "laliberte_correlation" for d in eta["data"])
    computed = _electrolytes(http, eta_status="converged", _fields="salt,molality,temperature,model_id,eta_source")
    assert [tuple(d[k] for k in ("salt", "molality", "temperature", "model_id")) for d in computed["data"]] == [
        ETA_COMPUTED
    ]
    density = _electrolytes(http, density_status="input", _fields="salt,density,density_input", _limit=1000)
    assert {d["salt"] for d in density["data"]} == {"MgCl2"} and density["meta"]["total_doc"] == 2
    assert all(d["density"] is None and d["density_input"] > 1000 for d in density["data"])
    assert _electrolytes(http, density_status="converged,input", _limit=0)["meta"]["total_doc"] == len(SYSTEMS)
    assert http.get("/electrolytes?eta_status=inputs").status_code == 422
    assert "input" in http.get("/properties").json()["meta"]["statuses"]
    spec = http.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/electrolytes"]["get"]["parameters"]}
    assert "input" in params["eta_status"]["schema"]["anyOf"][0]["pattern"]
    assert "input" in params["eta_status"]["description"]
    summary = spec["components"]["schemas"]["ElectrolyteSummaryOut"]["properties"]
    assert summary["eta_status"]["anyOf"][0]["enum"] == list(STATUSES)
    assert {"D_cation_n_eff", "D_cation_t_equil_ps", "D_cation_n_runs"} <= set(summary)
    # a thermo series is computed from the runs, never an input
    assert http.get("/thermo?status=input").status_code == 422


def test_insufficient_values_are_never_served(http: Any, legacy: dict) -> None:
    eid = legacy["electrolyte_id"]
    for doc in (
        http.get(f"/electrolytes/{eid}").json()["data"],
        _electrolytes(http, electrolyte_id=eid)["data"][0],
        _electrolytes(http, salt="LiCl", _limit=1000, _sort_fields="-molality")["data"][0],
    ):
        assert doc[f"{LEGACY}_status"] == "insufficient" and doc[f"{LEGACY}_reason"]
        assert doc[LEGACY] is None and doc[f"{LEGACY}_err"] is None and doc[f"{LEGACY}_n_eff"] is None
        assert doc["cn_anion_O"] is not None  # the other properties keep their values
    # a projection without the status: the value is still withheld, and only the named fields are served
    for path, params in (
        ("/electrolytes", {"electrolyte_id": eid, "_fields": f"{LEGACY},{LEGACY}_err,{LEGACY}_t_equil_ps"}),
        (f"/electrolytes/{eid}", {"_fields": f"{LEGACY},{LEGACY}_err,{LEGACY}_t_equil_ps"}),
    ):
        body = http.get(path, params=params).json()["data"]
        doc = body[0] if isinstance(body, list) else body
        assert doc == {"electrolyte_id": eid, LEGACY: None, f"{LEGACY}_err": None, f"{LEGACY}_t_equil_ps": None}
    again = _electrolytes(http, electrolyte_id=eid, _fields=f"{LEGACY},{LEGACY}_err,{LEGACY}_t_equil_ps")
    assert again["data"][0][LEGACY] is None  # the cached rendering too


def test_n_eff_and_equilibration_cut_are_served_beside_the_error(http: Any, db: dict) -> None:
    docs = _electrolytes(http, salt="NaCl", _fields="molality,D_cation_err,D_cation_n_eff,D_cation_t_equil_ps")
    for doc in docs["data"]:
        assert doc["D_cation_n_eff"] == pytest.approx(30.0 + 10.0 * doc["molality"])
        assert doc["D_cation_t_equil_ps"] == 2.5
    full = _electrolytes(http, salt="NaCl", _limit=1)["data"][0]
    assert full.get("tau_cation_water_n_eff") is None  # not recorded for τ: null or absent, never made up


# ------------------------------------------------------------------------------------------ client


def test_client_filters_on_input_and_never_returns_insufficient_values(api: ElectroDBClient, legacy: dict) -> None:
    mg = api.search(salt="MgCl2", density_status="input")
    assert len(mg) == 2 and all(isinstance(d, ElectrolyteSummary) for d in mg)
    assert {d.density_status for d in mg} == {"input"} and {d.eta_status for d in mg} == {"input"}
    assert api.count(eta_status=["input", "converged"]) == len(SYSTEMS)
    got = api.get(legacy["electrolyte_id"])
    assert got.cn_cation_O is None and got.cn_cation_O_err is None and got.cn_cation_O_status == "insufficient"
    rows = api.search(salt="LiCl", as_dataframe=True)
    assert pd.isna(rows.set_index("electrolyte_id").loc[legacy["electrolyte_id"], LEGACY])
    assert api.search(salt="LiCl", fields=[LEGACY], as_dict=True, sort="-molality")[0][LEGACY] is None


def test_client_withholds_insufficient_values_of_an_older_server() -> None:
    """A server older than the contract still sends the number: the client does not pass it on."""
    stored = {"electrolyte_id": "e1", "cn_cation_O": 3.648, "cn_cation_O_err": 0.1, "cn_cation_O_n_eff": 2.0}
    stored |= {"cn_cation_O_status": "insufficient", "D_cation": 1.3, "D_cation_status": "converged"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/electrolytes/e1":
            return httpx.Response(200, json={"data": dict(stored)})
        meta = {"total_doc": 1, "limit": 1000, "skip": 0}
        return httpx.Response(200, json={"data": [dict(stored)], "meta": meta})

    with ElectroDBClient("http://old.test", transport=httpx.MockTransport(handler)) as api:
        for doc in (
            api.get("e1", as_dict=True),
            api.search(as_dict=True)[0],
            api.query("electrolytes", as_dict=True)[0],
        ):
            assert doc["cn_cation_O"] is None and doc["cn_cation_O_err"] is None and doc["cn_cation_O_n_eff"] is None
            assert doc["D_cation"] == 1.3
    assert withhold_insufficient({"x": 1.0, "x_status": "insufficient"}) == {"x": None, "x_status": "insufficient"}


# ------------------------------------------------------------------------------------------ export


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_writes_input_statuses_n_eff_and_no_insufficient_value(
    db: dict, http: Any, legacy: dict, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"table.{fmt}"
    with get_stores(db["settings"], read_only=True) as stores:
        assert export_table(stores, fmt, out, {"salt": "LiCl,MgCl2"}) == 5
    df = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda p: pd.read_json(p, lines=True)}[fmt](out)
    df = df.set_index("electrolyte_id")
    columns = [c for c, _ in export_columns()]
    for prop in SUMMARY_PROPERTIES:
        assert {f"{prop}_n_eff", f"{prop}_t_equil_ps"} <= set(columns)
        assert property_column(prop, "n_eff") == f"{prop}_n_eff"
    row = df.loc[legacy["electrolyte_id"]]
    assert row[f"{LEGACY}_status"] == "insufficient" and pd.isna(row[LEGACY]) and pd.isna(row[f"{LEGACY}_err"])
    assert pd.isna(row[f"{LEGACY}_n_eff"]) and pd.isna(row[f"{LEGACY}_t_equil_ps"])
    assert row["cn_anion_O"] == pytest.approx(legacy["cn_anion_O"])
    assert row["D_cation_n_eff"] == pytest.approx(60.0) and row["D_cation_t_equil_ps"] == 2.5  # 30 + 10 m
    assert set(df["eta_status"]) == {"input"} and df["eta_mPa_s"].notna().all()
    mg = df[df["salt"] == "MgCl2"]
    assert set(mg["density_status"]) == {"input"} and mg["density_kg_m3"].isna().all()
    assert (mg["density_input_kg_m3"] > 1000).all()
    for prop in SUMMARY_PROPERTIES:  # one contract: no value beside "insufficient", in any row
        bad = df[(df[f"{prop}_status"] == "insufficient") & df[property_column(prop)].notna()]
        assert bad.empty, (prop, list(bad.index))
    if fmt == "jsonl":
        r = http.get("/export", params={"format": "jsonl", "salt": "LiCl"})
        lines = {d["electrolyte_id"]: d for d in map(json.loads, r.text.splitlines())}
        assert lines[legacy["electrolyte_id"]][LEGACY] is None
