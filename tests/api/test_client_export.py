"""Tests of the Python client (electrodb.api.client) and the streaming exports (electrodb.io.export)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from electrodb.api.client import ElectroDBAPIError, ElectroDBClient, ElectroDBConnectionError
from electrodb.documents.properties import ElectrolyteSummary, Provenance
from electrodb.documents.registry import SUMMARY_PROPERTIES
from electrodb.io.export import (
    export_columns,
    export_table,
    export_trajectories,
    property_column,
)
from electrodb.settings import ElectroDBSettings
from electrodb.store.query import QueryError
from electrodb.store.stores import get_stores
from tests.api.sample_database import CAMPAIGN, MODEL_A, N_FRAMES, SYSTEMS, expected

N_BULK = 1100


@pytest.fixture(scope="module")
def api(http: Any) -> ElectroDBClient:
    return ElectroDBClient(client=http)


@pytest.fixture(scope="module")
def stores(db: dict[str, Any]) -> Any:
    with get_stores(db["settings"], read_only=True) as s:
        yield s


class CountingClient:
    """Wraps a TestClient and records the query parameters of every GET."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[dict[str, Any]] = []

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append({"path": path, **(params or {})})
        return self.inner.get(path, params=params)


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A database with N_BULK small summaries (schema-valid), bulk-inserted."""
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    settings = ElectroDBSettings(data_dir=tmp_path_factory.mktemp("electrodb-bulk"))
    docs = []
    for i in range(N_BULK):
        salt, cation = ("NaCl", "Na+") if i % 2 else ("LiCl", "Li+")
        m = 0.1 + (i % 50) * 0.1
        prov = Provenance(trajectory_ids=[f"t{i}"], model_id=MODEL_A)
        docs.append(
            ElectrolyteSummary(
                electrolyte_id=f"bulk-{i:05d}",
                salt=salt,
                cation=cation,
                anion="Cl-",
                nu_cation=1,
                nu_anion=1,
                cation_charge=1,
                anion_charge=-1,
                molality=m,
                temperature=298.15,
                model_id=MODEL_A,
                trajectory_ids=[f"t{i}"],
                n_runs=1,
                total_ps=100.0,
                n_atoms=300,
                provenance=prov,
                D_cation=1.0 + 1e-4 * i,
                D_cation_err=0.01,
            ).model_dump()
        )
    with get_stores(settings) as s:
        coll = s.electrolytes._collection
        for k in range(0, N_BULK, 500):
            coll.insert_many(docs[k : k + 500])
    with TestClient(create_app(settings)) as c:
        yield c


# ------------------------------------------------------------------------------------------ client


def test_search_matches_api_filters(api: ElectroDBClient, db: dict) -> None:
    rows = api.search(salt="NaCl", molality=(1, 3), temperature=(290, 310), as_dict=True)
    want = expected(
        db["summaries"], salt="NaCl", molality_min=1, molality_max=3, temperature_min=290, temperature_max=310
    )
    assert sorted(r["electrolyte_id"] for r in rows) == sorted(d["electrolyte_id"] for d in want)
    rows = api.search(
        D_cation=(1.0, 1.3), cn_cation_O_max=5.5, fields=["salt", "D_cation"], sort="-D_cation", as_dict=True
    )
    want = expected(db["summaries"], D_cation_min=1.0, D_cation_max=1.3, cn_cation_O_max=5.5)
    assert [r["D_cation"] for r in rows] == sorted((d["D_cation"] for d in want), reverse=True)
    assert all(set(r) == {"electrolyte_id", "salt", "D_cation"} for r in rows)
    assert len(api.search(molality=2.0)) == len(expected(db["summaries"], molality_min=2, molality_max=2))
    assert api.count(salt="LiCl") == 3 and api.count(campaign=CAMPAIGN) == len(SYSTEMS) - 1


def test_search_dataframe_and_single_docs(api: ElectroDBClient, db: dict) -> None:
    df = api.search(salt="LiCl", as_dataframe=True)
    assert isinstance(df, pd.DataFrame) and len(df) == 3 and {"D_cation", "molality"} <= set(df.columns)
    eid = db["summaries"][1]["electrolyte_id"]
    assert api.get(eid).electrolyte_id == eid
    assert set(api.get(eid, fields=["salt"], as_dict=True)) == {"electrolyte_id", "salt"}
    rdf = api.get_rdf(eid, pairs=["cation-O_w"], max_points=20)
    assert len(rdf["trajectories"]) == 2 and len(rdf["trajectories"][0]["rdf"]["cation-O_w"]["g"]) == 20
    msd = api.get_msd(eid, species=["water"])
    assert set(msd["trajectories"][0]["msd"]) == {"water"}
    assert len(api.query("trajectories", salt="MgCl2")) == 2
    assert len(api.query("trajectories", salt=["MgCl2", "LiCl"], as_dict=True)) == 5
    assert api.health()["status"] == "ok"


def test_client_errors(api: ElectroDBClient) -> None:
    with pytest.raises(ElectroDBAPIError) as info:
        api.get("0000000000000000")
    assert info.value.status == 404
    with pytest.raises(ElectroDBAPIError) as info:
        api.search(salt="$where")
    assert info.value.status == 422
    assert info.value.parameter == "salt" and "salt" in str(info.value)
    with pytest.raises(ElectroDBAPIError, match="D_cation_status") as info:
        api.search(D_cation_status="ok")
    assert info.value.status == 422 and info.value.parameter == "D_cation_status"
    with pytest.raises(ElectroDBAPIError) as info:
        api.search(sort="-viscosity")
    assert info.value.parameter == "_sort_fields"
    with pytest.raises(TypeError, match="viscosity"):
        api.search(viscosity=(1, 2))


def test_typed_documents_and_statuses(api: ElectroDBClient, db: dict) -> None:
    docs = api.search(salt="MgCl2")
    assert all(isinstance(d, ElectrolyteSummary) for d in docs) and len(docs) == 2
    assert {d.D_cation_status for d in docs} == {"unconverged"} and docs[0].model_name == "mace-mp-0 small"
    converged = api.search(D_cation_status="converged", fields=["D_cation", "D_cation_status"])
    assert converged and {d.D_cation_status for d in converged} == {"converged"}
    assert isinstance(converged[0], ElectrolyteSummary)  # partial: built without validation
    both = api.search(D_cation_status=["unconverged", "insufficient"], salt=["MgCl2", "NaCl"], as_dict=True)
    assert {d["salt"] for d in both} == {"MgCl2"}
    structure = api.query("structure", salt="LiCl")
    assert structure[0].shells["cation-O_w"]["status"] == "converged"


def test_retries_on_connection_errors_and_5xx() -> None:
    import httpx

    calls: list[str] = []
    body = {"data": [], "meta": {"total_doc": 0, "limit": 0, "skip": 0}}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            return httpx.Response(503, json={"error": {"status": 503, "message": "busy", "detail": None}})
        return httpx.Response(200, json=body)

    with ElectroDBClient("http://x.test", transport=httpx.MockTransport(flaky), backoff=0.001) as api:
        assert api.count() == 0 and len(calls) == 3

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with ElectroDBClient("http://x.test", transport=httpx.MockTransport(down), retries=2, backoff=0.001) as api:
        with pytest.raises(ElectroDBConnectionError, match="3 attempt"):
            api.count()

    def bad_request(request: httpx.Request) -> httpx.Response:
        calls.append("4xx")
        detail = {"parameter": "molality_min"}
        return httpx.Response(422, json={"error": {"status": 422, "message": "not a number", "detail": detail}})

    calls.clear()
    with ElectroDBClient("http://x.test", transport=httpx.MockTransport(bad_request), backoff=0.001) as api:
        with pytest.raises(ElectroDBAPIError, match="molality_min"):
            api.count()
    assert calls == ["4xx"]  # a 4xx is not retried


def test_deprecated_names_still_work(api: ElectroDBClient, http: Any) -> None:
    with pytest.warns(DeprecationWarning, match="chunk_size"):
        assert len(api.search(salt="LiCl", page_size=2)) == 3
    old = http.get("/electrolytes?_sort=-molality&salt=LiCl").json()
    assert old["meta"]["total"] == old["meta"]["total_doc"] == 3 and old["meta"]["warnings"]


def test_client_paginates_over_1000(bulk: Any) -> None:
    counting = CountingClient(bulk)
    api = ElectroDBClient(client=counting)
    rows = api.search(as_dict=True)
    assert len(rows) == N_BULK and len({r["electrolyte_id"] for r in rows}) == N_BULK
    assert [c["_limit"] for c in counting.calls] == [1000, 1000] and counting.calls[1]["_skip"] == 1000
    counting.calls.clear()
    assert len(api.search(limit=1050, sort="-D_cation")) == 1050
    assert [(c["_skip"], c["_limit"]) for c in counting.calls] == [(0, 1000), (1000, 50)]
    assert counting.calls[0]["_sort_fields"] == "-D_cation"
    counting.calls.clear()
    assert len(api.search(chunk_size=300, num_chunks=2)) == 600
    assert [(c["_skip"], c["_limit"]) for c in counting.calls] == [(0, 300), (300, 300)]
    nacl = api.search(salt="NaCl", molality=(1, 3), fields=["molality"], as_dataframe=True)
    want = sum(1 for i in range(1, N_BULK, 2) if 1 <= 0.1 + (i % 50) * 0.1 <= 3)
    assert len(nacl) == want and nacl["molality"].between(1, 3).all()


def test_client_over_httpx_transport(http: Any) -> None:
    """A plain httpx.Client path: MockTransport forwarding to the app through the TestClient."""
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        r = http.get(request.url.path, params=dict(request.url.params))
        return httpx.Response(r.status_code, content=r.content, headers={"content-type": "application/json"})

    with ElectroDBClient("http://electrodb.test", transport=httpx.MockTransport(handler)) as api:
        assert api.count(salt="NaCl") == 8


# ------------------------------------------------------------------------------------------ export


def _api_rows(http: Any, **params: Any) -> list[dict]:
    return http.get("/electrolytes", params={**params, "_sort_fields": "electrolyte_id", "_limit": 1000}).json()["data"]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_round_trip_equals_api(stores: Any, http: Any, tmp_path: Path, fmt: str) -> None:
    filters = {"salt": "NaCl", "molality_min": 1.0}
    out = tmp_path / f"table.{fmt}"
    n = export_table(stores, fmt, out, filters, with_arrays=False)
    api = _api_rows(http, **filters)
    assert n == len(api) > 0
    readers = {
        "parquet": pd.read_parquet,
        "csv": pd.read_csv,
        "jsonl": lambda p: pd.read_json(p, lines=True, precise_float=True),
    }
    df = readers[fmt](out)
    assert list(df.columns) == [c for c, _ in export_columns(False)]
    assert list(df["electrolyte_id"]) == [d["electrolyte_id"] for d in api]
    assert np.allclose(df["molality_mol_kg"], [d["molality"] for d in api], rtol=0, atol=0)
    assert np.allclose(df["temperature_K"], [d["temperature"] for d in api], rtol=0, atol=0)
    for prop in SUMMARY_PROPERTIES:
        for kind in ("status", "reason"):
            got_text = [None if pd.isna(v) else v for v in df[property_column(prop, kind)]]
            want_text = [d.get(f"{prop}_{kind}") for d in api]
            if fmt == "csv":  # an empty string and a missing value are the same empty cell
                want_text = [v or None for v in want_text]
            assert got_text == want_text, (fmt, prop, kind)
        for kind, field in (("value", prop), ("err", f"{prop}_err"), ("exp", f"exp_{prop}")):
            got = df[property_column(prop, kind)].to_numpy(dtype=float)
            want = np.array([np.nan if d.get(field) is None else d[field] for d in api], dtype=float)
            np.testing.assert_array_equal(got, want, err_msg=f"{fmt} {prop} {kind}")
    assert list(df["trajectory_ids"]) == [";".join(d["trajectory_ids"]) for d in api]
    assert list(df["nu"]) == [d["nu_cation"] + d["nu_anion"] for d in api]
    assert list(df["exp_D_cation_source"]) == [d["exp_D_cation_source"] for d in api]
    assert list(df["model_name"]) == [d["model_name"] for d in api]
    assert list(df["density_source"]) == [d["density_source"] for d in api] == ["npt"] * len(api)
    assert list(df["eta_source"]) == [d["eta_source"] for d in api]
    assert {
        "D_cation_1e-9m2_s",
        "D_cation_err_1e-9m2_s",
        "r_cation_O_A",
        "cn_cation_O",
        "density_kg_m3",
        "tau_cation_water_ps",
    } <= set(df.columns)


def test_export_with_arrays(stores: Any, db: dict, tmp_path: Path) -> None:
    out = tmp_path / "arrays.parquet"
    n = export_table(stores, "parquet", out, {"salt": "NaCl", "model_id": MODEL_A}, with_arrays=True, batch_size=3)
    df = pd.read_parquet(out)
    assert n == len(df) == 7
    two = next(d for d in db["summaries"] if d["n_runs"] == 2)
    row = df.set_index("electrolyte_id").loc[two["electrolyte_id"]]
    g_runs = [db["structure"][t]["rdf"]["cation-O_w"]["g"] for t in two["trajectory_ids"]]
    np.testing.assert_allclose(row["rdf_cation_O_w_g"], np.mean(g_runs, axis=0))
    msd_runs = [db["transport"][t]["msd"]["water"]["msd_A2"] for t in two["trajectory_ids"]]
    np.testing.assert_allclose(row["msd_water_A2"], np.mean(msd_runs, axis=0))
    assert row["rdf_cation_H_w_g"] is None  # pair not computed
    csv_out = tmp_path / "arrays.csv"
    export_table(stores, "csv", csv_out, {"salt": "NaCl", "model_id": MODEL_A}, with_arrays=True)
    cdf = pd.read_csv(csv_out).set_index("electrolyte_id")
    np.testing.assert_allclose(json.loads(cdf.loc[two["electrolyte_id"], "rdf_cation_O_w_g"]), np.mean(g_runs, axis=0))


def test_http_export_streams_the_same_bytes(stores: Any, http: Any, api: ElectroDBClient, tmp_path: Path) -> None:
    for fmt in ("csv", "jsonl"):
        path = tmp_path / f"cli.{fmt}"
        export_table(stores, fmt, path, {"salt": "LiCl"})
        r = http.get("/export", params={"format": fmt, "salt": "LiCl"})
        assert r.status_code == 200 and r.headers["content-disposition"].endswith(f'electrolytes.{fmt}"')
        assert r.text == path.read_text()
        downloaded = api.export(tmp_path / f"client.{fmt}", format=fmt, salt="LiCl")
        assert downloaded.read_text() == path.read_text()
    r = http.get("/export?format=jsonl&with_arrays=true&salt=MgCl2")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == 2 and len(lines[0]["rdf_cation_O_w_g"]) == 200 and lines[0]["tau_anion_water_ps"] is None
    mg = lines[0]  # MgCl2: unconverged D+, no computed density (fixed input), insufficient tau-
    assert mg["D_cation_status"] == "unconverged" and "not diffusive" in mg["D_cation_reason"]
    assert mg["tau_anion_water_status"] == "insufficient" and mg["density_kg_m3"] is None
    assert mg["density_source"] == "input" and mg["density_input_kg_m3"] > 1000
    assert {"D_cation_pbc_1e-9m2_s", "eta_mPa_s", "T_mean_K", "a_cc_status", "thermo_reason"} <= set(mg)


def test_export_empty_and_invalid(stores: Any, tmp_path: Path) -> None:
    assert export_table(stores, "parquet", tmp_path / "none.parquet", {"salt": "KBr"}) == 0
    assert len(pd.read_parquet(tmp_path / "none.parquet")) == 0
    assert export_table(stores, "csv", tmp_path / "none.csv", {"salt": "KBr"}) == 0
    with pytest.raises(QueryError):
        export_table(stores, "csv", tmp_path / "x.csv", {"salt": {"$gt": ""}})
    with pytest.raises(QueryError):
        export_table(stores, "csv", tmp_path / "x.csv", {"viscosity_min": 1.0})
    with pytest.raises(ValueError, match="unknown export format"):
        export_table(stores, "xlsx", tmp_path / "x.xlsx", {})


def test_export_trajectories_extxyz(stores: Any, db: dict, tmp_path: Path) -> None:
    from ase.io import read

    with pytest.warns(UserWarning, match="no stored frames"):
        paths = export_trajectories(stores, tmp_path / "xyz", {"salt": "NaCl", "molality_max": 1.0})
    assert [p.name for p in paths] == ["traj-00-0.extxyz", "traj-01-0.extxyz", "traj-01-1.extxyz"]
    frames = read(paths[0], index=":")
    assert len(frames) == N_FRAMES
    np.testing.assert_allclose(frames[3].positions, db["positions"]["traj-00-0"][3], atol=1e-5)
    assert frames[3].info["time_ps"] == pytest.approx(0.3)
    assert frames[3].get_potential_energy() == pytest.approx(-13.0)
    assert list(frames[0].get_chemical_symbols()) == ["Na", "Cl", "O", "H", "H"]
    assert list(frames[0].arrays["role"]) == [2, 3, 0, 1, 1] and frames[0].pbc.all()
    np.testing.assert_allclose(frames[0].cell[:], np.eye(3) * 12.0)
    assert export_trajectories(stores, tmp_path / "none", {"salt": "KBr"}) == []
