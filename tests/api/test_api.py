"""Tests of the read-only HTTP API (electrodb.api) over a database built here from the document schemas.

The synthetic database is built by :mod:`tests.api.sample_database` (the ``db`` fixture of this folder's conftest).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from electrodb import __version__
from electrodb.analysis.convergence import STATUSES
from electrodb.documents.registry import SUMMARY_PROPERTIES
from electrodb.settings import ElectroDBSettings
from electrodb.store.stores import ReadOnlyStoreError, get_stores
from tests.api.sample_database import (
    CAMPAIGN,
    MODEL_A,
    MODEL_B,
    N_FRAMES,
    SECRET_DIR,
    SYSTEMS,
    expected,
)


@pytest.fixture(scope="module")
def app(db: dict[str, Any]) -> Any:
    from electrodb.api.app import create_app

    return create_app(db["settings"])


@pytest.fixture(scope="module")
def client(app: Any) -> Any:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def _ids(docs: list[dict]) -> list[str]:
    return [d["electrolyte_id"] for d in docs]


# ------------------------------------------------------------------------------------------ list + filters


def test_list_all_meta_and_no_mongo_id(client: Any, db: dict) -> None:
    body = client.get("/electrolytes").json()
    n = len(SYSTEMS)
    assert body["meta"] == {
        "total_doc": n,
        "total": n,  # deprecated alias
        "limit": 100,
        "skip": 0,
        "max_limit": 1000,
        "api_version": __version__,
        "warnings": [],
    }
    assert len(body["data"]) == len(SYSTEMS)
    assert all("_id" not in d for d in body["data"])
    assert _ids(body["data"]) == sorted(_ids(db["summaries"]))  # default order: key
    one = body["data"][0]
    assert isinstance(one["last_updated"], str) and one["provenance"]["builder"] == "test"


@pytest.mark.parametrize(
    "filters",
    [
        {"salt": "NaCl"},
        {"salt": "LiCl", "molality_min": 1.5},
        {"salt": "NaCl", "temperature_min": 300.0},
        {"molality_min": 1.0, "molality_max": 3.0, "temperature_max": 300.0},
        {"model_id": MODEL_B},
        {"campaign": CAMPAIGN},
        {"D_cation_min": 1.0, "D_cation_max": 1.3},
        {"cn_cation_O_max": 5.0},
        {"tau_anion_water_min": 0.0},
        {"cation": "Li+"},
        {"anion": "Cl-", "density_min": 1070.0},
        {"salt": "MgCl2", "cip_fraction_cation_min": 0.03},
        {"salt": "NaCl,LiCl"},
        {"D_cation_status": "converged"},
        {"D_cation_status": "unconverged,insufficient"},
        {"tau_cation_water_status": "unconverged", "salt": "LiCl"},
        {"tau_anion_water_status": "insufficient"},
        {"model_id": f"{MODEL_A},{MODEL_B}"},
    ],
)
def test_filters_match_reference(client: Any, db: dict, filters: dict) -> None:
    body = client.get("/electrolytes", params=filters).json()
    want = expected(db["summaries"], **filters)
    assert body["meta"]["total_doc"] == len(want) > 0
    assert sorted(_ids(body["data"])) == sorted(_ids(want))


@pytest.mark.parametrize("spelling", ["nacl", "Na+/Cl-", "NaCl"])
def test_salt_spellings_are_canonicalised(client: Any, spelling: str) -> None:
    assert client.get("/electrolytes", params={"salt": spelling}).json()["meta"]["total_doc"] == 8


def test_ion_given_as_formula_or_with_url_plus(client: Any) -> None:
    assert client.get("/electrolytes?cation=Li").json()["meta"]["total_doc"] == 3
    assert client.get("/electrolytes?cation=Li+").json()["meta"]["total_doc"] == 3  # '+' decodes to a space
    assert client.get("/electrolytes?cation=Li%2B").json()["meta"]["total_doc"] == 3


def test_unknown_salt_matches_nothing(client: Any) -> None:
    body = client.get("/electrolytes?salt=KBr").json()
    assert body["data"] == [] and body["meta"]["total_doc"] == 0 and body["meta"]["warnings"] == []


# ------------------------------------------------------------------------------------------ pages, sort, fields


def test_pagination_totals_respect_filters(client: Any, db: dict) -> None:
    want = sorted(_ids(expected(db["summaries"], salt="NaCl")))
    got = []
    for skip in range(0, 10, 3):
        body = client.get("/electrolytes", params={"salt": "NaCl", "_limit": 3, "_skip": skip}).json()
        assert (body["meta"]["total_doc"], body["meta"]["limit"], body["meta"]["skip"]) == (len(want), 3, skip)
        got += _ids(body["data"])
    assert got == want
    only_total = client.get("/electrolytes?salt=LiCl&_limit=0").json()
    assert only_total["data"] == [] and only_total["meta"]["total_doc"] == 3


def test_sort_descending_and_multi_key(client: Any, db: dict) -> None:
    data = client.get("/electrolytes?_sort_fields=-D_cation").json()["data"]
    values = [d["D_cation"] for d in data]
    assert values == sorted(values, reverse=True)
    data = client.get("/electrolytes?salt=NaCl&_sort_fields=molality,-temperature").json()["data"]
    keys = [(d["molality"], -d["temperature"]) for d in data]
    assert keys == sorted(keys)


def test_projection(client: Any) -> None:
    data = client.get("/electrolytes?_fields=salt,molality,D_cation_err&_limit=2").json()["data"]
    assert all(set(d) == {"electrolyte_id", "salt", "molality", "D_cation_err"} for d in data)
    doc = client.get("/electrolytes?_fields=provenance.model_id&_limit=1").json()["data"][0]
    assert set(doc["provenance"]) == {"model_id"}


def test_sorted_page_follows_mongo_order() -> None:
    from electrodb.store.query import sorted_page

    values = [(None, 1), (2.0, "a"), (1, "b"), ("s", 1), (2.0, "b"), ([3, 0.5], 1)]
    docs = [{"k": i, "v": v, "w": w} for i, (v, w) in enumerate(values)]
    sort = {"v": 1, "w": -1, "k": 1}
    page, total = sorted_page(iter(docs), sort, 0, 10)
    assert [d["k"] for d in page] == [0, 5, 2, 4, 1, 3] and total == 6  # null < numbers < strings
    page, total = sorted_page(iter(docs), sort, 2, 2)
    assert [d["k"] for d in page] == [2, 4] and total == 6
    assert sorted_page(iter(docs), sort, 0, 0) == ([], 6)
    page, _ = sorted_page(iter(docs), {"v": -1, "k": 1}, 0, 10)
    assert [d["k"] for d in page] == [3, 5, 1, 4, 2, 0]  # descending: arrays by their largest element


def test_limit_bounds(client: Any) -> None:
    assert client.get("/electrolytes?_limit=1000").status_code == 200
    assert client.get("/electrolytes?_limit=1001").status_code == 422
    assert client.get("/electrolytes?_skip=-1").status_code == 422


# ------------------------------------------------------------------------------------------ single docs, arrays


def test_get_one_and_404(client: Any, db: dict) -> None:
    eid = db["summaries"][0]["electrolyte_id"]
    doc = client.get(f"/electrolytes/{eid}").json()["data"]
    assert doc["electrolyte_id"] == eid and "_id" not in doc and doc["D_cation"] == db["summaries"][0]["D_cation"]
    assert set(client.get(f"/electrolytes/{eid}?_fields=salt").json()["data"]) == {"electrolyte_id", "salt"}
    for path in (
        "/electrolytes/0000000000000000",
        "/electrolytes/0000000000000000/rdf",
        "/electrolytes/0000000000000000/msd",
        "/trajectories/nope",
    ):
        r = client.get(path)
        assert r.status_code == 404
        assert r.json()["error"]["status"] == 404 and "no " in r.json()["error"]["message"]


def test_rdf_route(client: Any, db: dict) -> None:
    summary = next(d for d in db["summaries"] if d["n_runs"] == 2)
    data = client.get(f"/electrolytes/{summary['electrolyte_id']}/rdf").json()["data"]
    assert [t["trajectory_id"] for t in data["trajectories"]] == summary["trajectory_ids"]
    first = data["trajectories"][0]
    stored = db["structure"][summary["trajectory_ids"][0]]["rdf"]["cation-O_w"]
    assert first["rdf"]["cation-O_w"]["g"] == pytest.approx(stored["g"])
    assert first["rdf"]["cation-O_w"]["n"] == pytest.approx(stored["n"])
    assert "cation-O_w" in first["shells"]
    only = client.get(f"/electrolytes/{summary['electrolyte_id']}/rdf?pairs=anion-O_w&max_points=50").json()
    rdf = only["data"]["trajectories"][0]["rdf"]
    assert set(rdf) == {"anion-O_w"} and len(rdf["anion-O_w"]["r"]) == 50 == len(rdf["anion-O_w"]["g"])


def test_msd_route(client: Any, db: dict) -> None:
    summary = db["summaries"][3]
    data = client.get(f"/electrolytes/{summary['electrolyte_id']}/msd?species=cation,water").json()["data"]
    traj = data["trajectories"][0]
    assert set(traj["msd"]) == {"cation", "water"} and set(traj["diffusion"]) == {"cation", "water"}
    stored = db["transport"][summary["trajectory_ids"][0]]["msd"]["water"]
    assert traj["msd"]["water"]["msd_A2"] == pytest.approx(stored["msd_A2"])


# ------------------------------------------------------------------------------------------ collections


@pytest.mark.parametrize("coll", ["structure", "transport", "pairing", "kinetics"])
def test_property_collections(client: Any, db: dict, coll: str) -> None:
    n_traj = sum(runs for *_, runs in SYSTEMS)
    assert client.get(f"/{coll}?_limit=0").json()["meta"]["total_doc"] == n_traj
    eid = db["summaries"][1]["electrolyte_id"]
    body = client.get(f"/{coll}", params={"electrolyte_id": eid, "_fields": "salt,molality"}).json()
    assert body["meta"]["total_doc"] == 2 and all(set(d) == {"trajectory_id", "salt", "molality"} for d in body["data"])
    body = client.get(f"/{coll}", params={"salt": "LiCl", "molality_min": 2, "temperature_max": 300}).json()
    assert body["meta"]["total_doc"] == 2
    assert client.get(f"/{coll}", params={"trajectory_id": "traj-00-0"}).json()["meta"]["total_doc"] == 1


def test_trajectories_metadata_only(client: Any) -> None:
    body = client.get("/trajectories?salt=NaCl&_sort_fields=-molality").json()
    assert body["meta"]["total_doc"] == 9
    assert all("symbols" not in d and "masses" not in d for d in body["data"])
    assert client.get("/trajectories?status=failed").json()["meta"]["total_doc"] > 0
    assert client.get("/trajectories?status=bogus").status_code == 422
    doc = client.get("/trajectories/traj-00-0").json()["data"]
    assert doc["symbols"] == ["Na", "Cl", "O", "H", "H"] and doc["n_frames"] == N_FRAMES
    symbols = client.get("/trajectories?trajectory_id=traj-00-0&_fields=symbols").json()["data"][0]
    assert symbols == {"trajectory_id": "traj-00-0", "symbols": ["Na", "Cl", "O", "H", "H"]}


def test_generic_collections(client: Any) -> None:
    models = client.get("/models").json()
    assert models["meta"]["total_doc"] == 2 and {m["model_id"] for m in models["data"]} == {MODEL_A, MODEL_B}
    assert client.get("/models", params={"model_id": MODEL_B}).json()["data"][0]["name"] == "fine-tuned"
    assert client.get("/campaigns").json()["data"][0]["campaign_id"] == CAMPAIGN
    thermo = client.get("/thermo?salt=NaCl&temperature_min=298&temperature_max=299").json()
    assert thermo["meta"]["total_doc"] == 1 and thermo["data"][0]["series"]["gamma"][0] == 0.70
    assert client.get("/thermo?salt=LiCl").json()["meta"]["total_doc"] == 0
    solv = client.get("/solvation", params={"model_id": MODEL_A, "_fields": "dG_kJ_mol"}).json()["data"]
    assert solv == [{"solvation_id": "solv-nacl-a", "dG_kJ_mol": -720.0}]


def test_facets_health_reference_docs(client: Any) -> None:
    facets = client.get("/facets").json()["data"]
    assert facets["salt"] == ["LiCl", "MgCl2", "NaCl"] and set(facets["model_id"]) == {MODEL_A, MODEL_B}
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["backend"] == "embedded" and health["read_only"] is True
    assert health["counts"]["electrolytes"] == len(SYSTEMS) and health["counts"]["thermo"] == 2
    ref = client.get("/reference/activity?salt=NaCl").json()["data"]
    assert ref["gamma_pm"]["value"][ref["gamma_pm"]["molality"].index(1.0)] == pytest.approx(0.657)
    assert client.get("/reference/activity").status_code == 422
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/electrolytes", "/electrolytes/{electrolyte_id}/rdf", "/export", "/thermo"} <= set(paths)
    names = {p["name"] for p in paths["/electrolytes"]["get"]["parameters"]}
    assert {f"{p}_{b}" for p in SUMMARY_PROPERTIES for b in ("min", "max")} <= names


def test_gzip_for_large_arrays(client: Any, db: dict) -> None:
    eid = db["summaries"][0]["electrolyte_id"]
    r = client.get(f"/electrolytes/{eid}/rdf", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"


# ------------------------------------------------------------------------------------------ safety


@pytest.mark.parametrize(
    "query",
    [
        'salt={"$gt":""}',
        "salt=$where",
        "salt=%24ne",
        "_sort=$natural",
        "_sort=-$natural",
        "_sort_fields=$natural",
        "_sort_fields=-D_cation,nope",
        "_fields=__proto__",
        "_fields=$where",
        "model_id=$regex",
        'model_id={"$ne":null}',
        "campaign=$in",
        "cation=$gt",
        'D_cation_min={"$gt":1}',
        "salt[$ne]=x",
        "salt=NaCl&salt=LiCl",
        "_sort=not_a_field",
        "_fields=salt,nope",
        "_sort=salt,molality,temperature,model_id",
        "nonsense=1",
        "salt=" + "N" * 80,
    ],
)
def test_injection_and_unknown_parameters_are_422(client: Any, query: str) -> None:
    r = client.get(f"/electrolytes?{query}")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["status"] == 422 and isinstance(err["message"], str) and "detail" in err


@pytest.mark.parametrize(
    "path",
    [
        "/structure?trajectory_id=$where",
        "/trajectories?salt={}",
        "/thermo?_fields=__proto__",
        "/thermo?_sort=$natural",
        "/models?kind=$gt",
        "/export?salt=$where",
        "/export?format=parquet",
        "/electrolytes/%24where",
        "/electrolytes/x/rdf?pairs=%7B%7D",
        "/electrolytes/x/rdf?max_points=1000000",
    ],
)
def test_injection_on_other_routes(client: Any, path: str) -> None:
    assert client.get(path).status_code == 422


@pytest.mark.parametrize(
    "query",
    [
        "_limit=abc",
        "_skip=1.5",
        "molality_min=one",
        "temperature_max=inf",
        "D_water_min=nan",
        "with_arrays=maybe",
        "D_cation_status=converged,maybe",
        "_page=0",
        "_per_page=1001",
    ],
)
def test_bad_types_are_422(client: Any, query: str) -> None:
    path = "/export" if "with_arrays" in query else "/electrolytes"
    r = client.get(f"{path}?{query}")
    assert r.status_code == 422 and r.json()["error"]["status"] == 422


def test_no_write_routes(app: Any, client: Any) -> None:
    from starlette.routing import Mount, Route

    paths = set()
    for route in app.routes:
        if isinstance(route, Mount):
            paths.add(route.path + "/index.html")
            continue
        assert isinstance(route, Route)
        assert set(route.methods or ()) <= {"GET", "HEAD"}, route.path
        paths.add(route.path.replace("{electrolyte_id}", "x").replace("{trajectory_id}", "x"))
    for path in paths:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            r = client.request(method, path)
            assert r.status_code == 405, (method, path)
            assert r.json()["error"]["status"] == 405


def test_stores_are_read_only(app: Any) -> None:
    store = app.state.db.store("electrolytes")
    with pytest.raises(ReadOnlyStoreError):
        store.update([{"electrolyte_id": "x"}])
    with pytest.raises(ReadOnlyStoreError):
        store.remove_docs({})


def test_500_uses_error_shape(db: dict) -> None:
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    app = create_app(db["settings"])

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500
    assert r.json() == {
        "error": {"status": 500, "message": "internal server error", "detail": {"type": "RuntimeError"}}
    }


def test_nan_values_are_served_as_null(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    settings = ElectroDBSettings(data_dir=tmp_path)
    with get_stores(settings) as stores:
        stores.models.update([{"model_id": "m-nan", "rmse": math.nan, "errors": [1.0, math.inf]}])
    with TestClient(create_app(settings)) as c:
        assert c.get("/models").json()["data"] == [{"model_id": "m-nan", "rmse": None, "errors": [1.0, None]}]


# ------------------------------------------------------------------------------------------ schemathesis


def test_schemathesis_finds_no_server_errors(app: Any) -> None:
    """Property-based requests generated from the OpenAPI schema (≈ 20 s): no 5xx, every answer's status,
    content type and body as documented, and valid requests accepted (2xx or a documented 404)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        positive_data_acceptance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        positive_data_acceptance,
    ]

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    n_operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        n_operations += 1

        @given(operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(checks=checks)

        check()
    assert n_operations >= 15


# ------------------------------------------------------------------------------------------ MongoDB code path


def test_mongodb_code_path_with_mongomock(db: dict, client: Any) -> None:
    """The non-embedded branch (count + find with sort/skip/limit, distinct) on a mongomock-backed store."""
    import contextlib

    from fastapi.testclient import TestClient
    from maggma.stores import MemoryStore

    from electrodb.api.app import create_app

    app = create_app(db["settings"])
    database = app.state.db
    memory = MemoryStore("electrolytes", key="electrolyte_id")
    memory.connect()
    memory.update(db["summaries"])
    database.stores._stores["electrolytes"] = memory  # swap in the mongomock collection
    database._connected.add("electrolytes")
    database.embedded = False
    database.lock = contextlib.nullcontext()
    queries = [
        "salt=NaCl&_sort=molality,-temperature,model_id&_limit=4&_skip=2",
        "D_cation_min=1.0&_sort_fields=-D_cation&_fields=salt,D_cation",
        "campaign=" + CAMPAIGN + "&_limit=0",
        "cation=Li&molality_max=2.5",
    ]
    with TestClient(app) as mongo:
        for query in queries:
            assert mongo.get(f"/electrolytes?{query}").json() == client.get(f"/electrolytes?{query}").json()
        assert mongo.get("/facets").json() == client.get("/facets").json()


# ------------------------------------------------------------------------------------------ statuses, conventions


def test_every_property_carries_its_status(client: Any) -> None:
    docs = client.get("/electrolytes").json()["data"]
    for doc in docs:
        for prop in SUMMARY_PROPERTIES:
            assert doc[f"{prop}_status"] in STATUSES, (prop, doc)
            assert isinstance(doc[f"{prop}_reason"], str) and isinstance(doc[f"{prop}_criterion"], str)
            if doc[f"{prop}_status"] == "converged":
                assert doc[f"{prop}_reason"] == ""
            if doc[f"{prop}_status"] == "insufficient":
                assert doc[prop] is None and doc[f"{prop}_err"] is None, (prop, doc)
    mg = next(d for d in docs if d["salt"] == "MgCl2")
    assert mg["D_cation_status"] == "unconverged" and "not diffusive" in mg["D_cation_reason"]
    assert mg["density"] is None and mg["density_source"] == "input" and mg["density_input"] > 1000
    assert mg["density_status"] == "input" and mg["eta_status"] == "input" and mg["eta"] is not None
    assert mg["model_name"] == "mace-mp-0 small"


def test_status_filters_and_lists(client: Any, db: dict) -> None:
    body = client.get("/electrolytes?D_cation_status=converged&_fields=salt,D_cation_status").json()
    assert {d["salt"] for d in body["data"]} == {"NaCl", "LiCl"}
    assert body["meta"]["total_doc"] == len(SYSTEMS) - 2
    both = client.get("/electrolytes?salt=MgCl2,LiCl&_limit=0").json()["meta"]["total_doc"]
    assert both == 5
    r = client.get("/electrolytes?D_cation_status=ok")
    assert r.status_code == 422 and "D_cation_status" in r.json()["error"]["message"]
    assert client.get("/thermo?status=converged").json()["meta"]["total_doc"] == 1
    assert client.get("/thermo?status=ok,derivative_only").json()["meta"]["total_doc"] == 1  # legacy document
    assert client.get("/thermo?status=nonsense").status_code == 422


def test_emmet_paging_sorting_and_deprecations(client: Any, db: dict) -> None:
    want = sorted(_ids(db["summaries"]))
    page2 = client.get("/electrolytes?_page=2&_per_page=4").json()
    assert _ids(page2["data"]) == want[4:8] and page2["meta"]["page"] == 2 and page2["meta"]["per_page"] == 4
    assert page2["meta"]["skip"] == 4 and page2["meta"]["limit"] == 4
    mixed = client.get("/electrolytes?_page=1&_per_page=2&_skip=5").json()
    assert _ids(mixed["data"]) == want[:2] and "_skip ignored" in mixed["meta"]["warnings"][0]
    new = client.get("/electrolytes?_sort_fields=-D_cation")
    old = client.get("/electrolytes?_sort=-D_cation")
    assert new.json()["data"] == old.json()["data"] and "deprecation" not in new.headers
    assert old.headers["deprecation"] == "true" and "_sort_fields" in old.headers["warning"]
    assert old.json()["meta"]["warnings"] == ["parameter _sort is deprecated; use _sort_fields"]
    everything = client.get("/electrolytes?_all_fields=true&_fields=salt&_limit=1").json()
    assert len(everything["data"][0]) > 20 and "_fields ignored" in everything["meta"]["warnings"][0]
    empty = client.get("/electrolytes?molality_min=3&molality_max=1").json()
    assert empty["data"] == [] and "empty range" in empty["meta"]["warnings"][0]


def test_no_absolute_server_path_is_served(client: Any, db: dict) -> None:
    eid = db["summaries"][1]["electrolyte_id"]
    paths = [
        "/electrolytes",
        f"/electrolytes/{eid}",
        f"/electrolytes/{eid}/rdf",
        f"/electrolytes/{eid}/msd",
        "/trajectories?_fields=model,symbols",
        "/trajectories/traj-01-0",
        "/models",
        "/structure",
        "/health",
        "/facets",
        "/export?format=jsonl",
        "/export?format=csv",
    ]
    data_dir = str(db["settings"].data_dir)
    for path in paths:
        text = client.get(path).text
        assert SECRET_DIR not in text and "/data/runs" not in text and data_dir not in text, path
    models = client.get("/models").json()["data"]
    assert {m["path"] for m in models} == {"mace-mp-0:small.model", "fine-tuned.model"}
    prov = client.get(f"/electrolytes/{eid}?_fields=provenance").json()["data"]["provenance"]["model"]
    assert prov["path"] == "m.model" and prov["source_file"] == "x.traj"


def test_strip_path_rules() -> None:
    from electrodb.api.app import jsonable

    doc = {
        "path": "/a/b/c.model",
        "model_path": "relative/dir/m.model",
        "log": "failed reading /srv/x/y.traj: truncated",
        "salt": "Li+/TFSI-",
        "unit": "1e-9 m^2/s",
        "url": "http://host/a/b",
        "win": "C:\\models\\m.model",
    }
    assert jsonable(doc) == {
        "path": "c.model",
        "model_path": "m.model",
        "log": "failed reading y.traj: truncated",
        "salt": "Li+/TFSI-",
        "unit": "1e-9 m^2/s",
        "url": "http://host/a/b",
        "win": "m.model",
    }


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_first_on_a_fresh_server(db: dict, fmt: str) -> None:
    """Regression: /export before any /thermo or /solvation request returned an empty table or a 500."""
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    with TestClient(create_app(db["settings"])) as fresh:
        r = fresh.get(f"/export?format={fmt}&salt=NaCl")
    assert r.status_code == 200, r.text
    lines = r.text.strip().splitlines()
    assert len(lines) == 8 + (fmt == "csv")
    if fmt == "jsonl":
        rows = [json.loads(line) for line in lines]
        nacl = next(
            r for r in rows if (r["molality_mol_kg"], r["temperature_K"], r["model_id"]) == (1.0, 298.15, MODEL_A)
        )
        assert nacl["gamma_pm"] == 0.67 and nacl["thermo_status"] == "converged"


def test_openapi_describes_what_is_accepted(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    ref = {p["name"]: p for p in paths["/reference/activity"]["get"]["parameters"]}
    assert ref["salt"]["required"] is True
    params = {p["name"]: p for p in paths["/electrolytes"]["get"]["parameters"]}
    sort_schema = params["_sort_fields"]["schema"]["anyOf"][0]
    assert "D_cation_status" in sort_schema["pattern"] and params["_sort"]["deprecated"] is True
    assert "provenance" in params["_fields"]["schema"]["anyOf"][0]["pattern"]
    assert {f"{p}_status" for p in SUMMARY_PROPERTIES} <= set(params)
    assert {"_page", "_per_page", "_skip", "_limit", "_all_fields"} <= set(params)
    one = paths["/electrolytes/{electrolyte_id}"]["get"]["responses"]
    assert {"200", "404", "422"} <= set(one)
    assert one["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert set(paths["/export"]["get"]["responses"]["200"]["content"]) == {"text/csv", "application/x-ndjson"}


def test_cors_off_by_default_and_configurable(db: dict) -> None:
    from fastapi.testclient import TestClient
    from pydantic import Field

    from electrodb.api.app import create_app

    headers = {"Origin": "http://example.org"}
    with TestClient(create_app(db["settings"])) as plain:
        assert "access-control-allow-origin" not in plain.get("/health", headers=headers).headers

    class CorsSettings(ElectroDBSettings):
        cors_origins: list[str] = Field(default_factory=lambda: ["http://example.org"])

    with TestClient(create_app(CorsSettings(data_dir=db["settings"].data_dir))) as cors:
        r = cors.get("/health", headers=headers)
        assert r.headers["access-control-allow-origin"] == "http://example.org"


def test_dotted_projection_has_mongodb_semantics_on_every_backend(client: Any) -> None:
    """Regression (schemathesis): ``_fields=campaign_ids.0`` (a path into an array of strings) was a 500."""
    from electrodb.store.query import apply_subpaths

    doc = {"a": [1, {"b": 2, "c": 3}, {"c": 4}], "d": {"e": 1, "f": 2}, "g": 5, "k": "x"}
    assert apply_subpaths(doc, ["a.b", "d.e", "g.h", "k"]) == {"a": [{"b": 2}, {}], "d": {"e": 1}, "k": "x"}
    r = client.get("/trajectories?_fields=campaign_ids.0,symbols.x&_limit=2")
    assert r.status_code == 200 and r.json()["data"][0] == {
        "trajectory_id": "traj-00-0",
        "campaign_ids": [],
        "symbols": [],
    }
    doc = client.get("/electrolytes?_fields=provenance.model.path,molality&_limit=1").json()["data"][0]
    assert doc["provenance"] == {"model": {"path": "m.model"}} and set(doc) == {
        "electrolyte_id",
        "provenance",
        "molality",
    }
