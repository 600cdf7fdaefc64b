"""The API's response cache and fast JSON rendering: never stale, never different from the uncached answer.

* :mod:`electrodb.api.cache`: an answer is replayed only while the collection's version token is unchanged;
  writes by builders (this process or another one) are seen by the next request.
* :mod:`electrodb.api.jsonout`: :func:`dumps` is the JSON value of :func:`jsonable` for every kind of value.
* ``SQLiteStore.data_version`` changes on every commit of another connection or process.
* ``benchmarks/api_load.py``: argument checks and its MongoDB code path (on mongomock).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from electrodb.settings import ElectroDBSettings
from electrodb.store.stores import get_stores
from tests.api.benchmark import api_load_module
from tests.synthetic import write_brownian_trajectory


def _client(settings: ElectroDBSettings, cache_mb: float | None = None) -> Any:
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    return TestClient(create_app(settings, cache_mb=cache_mb))


def _cache(client: Any) -> Any:
    from electrodb.api.cache import ResponseCache

    app = client.app.middleware_stack or client.app.build_middleware_stack()
    while not isinstance(app, ResponseCache):
        app = app.app
    return app


QUERIES = [
    "/electrolytes",
    "/electrolytes?salt=NaCl&molality_min=1&molality_max=3&_limit=2&_skip=1",
    "/electrolytes?_skip=1&molality_max=3&salt=NaCl&molality_min=1&_limit=2",  # same, other order
    "/electrolytes?_sort_fields=-D_cation,molality&_fields=salt,D_cation,provenance.model_id",
    "/electrolytes?_all_fields=true&_fields=salt&_limit=3",
    "/electrolytes?campaign=demo-campaign&_limit=0",
    "/electrolytes?_page=2&_per_page=3&_sort=molality",
    "/electrolytes?D_cation_status=converged,unconverged&temperature_min=300",
    "/electrolytes?molality_min=3&molality_max=1",
    "/electrolytes?salt=$where",  # 422: never cached
    "/structure?salt=NaCl&_limit=2",
    "/trajectories?_limit=2",
    "/models",
]


def test_cached_answers_equal_uncached_ones(db: dict) -> None:
    with _client(db["settings"]) as cached, _client(db["settings"], cache_mb=0) as plain:
        for url in QUERIES:
            want = plain.get(url)
            for _ in range(2):  # the second answer of each comes from the cache (if it is a 200)
                got = cached.get(url)
                assert got.status_code == want.status_code, url
                assert got.json() == want.json(), url
                assert got.headers.get("deprecation") == want.headers.get("deprecation"), url
        stats = _cache(cached).stats
        assert stats.hits >= 2 * sum(1 for u in QUERIES if "$" not in u) - len(QUERIES)
        assert _cache(plain).stats.hits == 0
        # the order of the parameters does not matter; a 422 is never kept
        assert not any("$where" in str(key) for key in _cache(cached)._entries)


def test_gzip_and_identity_answers_are_kept_apart(db: dict) -> None:
    with _client(db["settings"]) as c:
        for _ in range(2):
            z = c.get("/electrolytes", headers={"Accept-Encoding": "gzip"})
            p = c.get("/electrolytes", headers={"Accept-Encoding": "identity"})
            assert z.headers["content-encoding"] == "gzip" and "content-encoding" not in p.headers
            assert z.json() == p.json() and z.json()["meta"]["total_doc"] == len(db["summaries"])
        assert _cache(c).stats.hits == 2


def test_writes_are_seen_by_the_next_request(tmp_path: Path) -> None:
    settings = ElectroDBSettings(data_dir=tmp_path)
    doc = {"electrolyte_id": "e1", "salt": "NaCl", "molality": 1.0, "temperature": 298.15, "D_cation": 1.0}
    with get_stores(settings) as stores:
        stores.electrolytes.update([doc])
        with _client(settings) as c:
            url = "/electrolytes?salt=NaCl&_fields=D_cation"
            assert c.get(url).json()["data"] == [{"electrolyte_id": "e1", "D_cation": 1.0}]
            assert c.get(url).json()["meta"]["total_doc"] == 1 and _cache(c).stats.hits == 1
            stores.electrolytes.update([{**doc, "D_cation": 2.0}])  # modified
            assert c.get(url).json()["data"] == [{"electrolyte_id": "e1", "D_cation": 2.0}]
            stores.electrolytes.update([{**doc, "electrolyte_id": "e2"}])  # added
            assert c.get(url).json()["meta"]["total_doc"] == 2
            stores.electrolytes.remove_docs({"electrolyte_id": "e1"})  # removed
            body = c.get(url).json()
            assert body["meta"]["total_doc"] == 1 and body["data"][0]["electrolyte_id"] == "e2"
            # another process writes
            code = textwrap.dedent(
                f"""
                from pathlib import Path
                from electrodb.settings import ElectroDBSettings
                from electrodb.store.stores import get_stores
                with get_stores(ElectroDBSettings(data_dir=Path({str(tmp_path)!r}))) as s:
                    s.electrolytes.update([{{**{doc!r}, "electrolyte_id": "e3"}}])
                """
            )
            subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
            assert c.get(url).json()["meta"]["total_doc"] == 2
            assert _cache(c).stats.hits == 1  # every answer after a write was recomputed


def test_builds_are_seen_by_the_next_request(stores: Any) -> None:
    """Build → serve (cached) → a replica turns unstable → rebuild → the next answer follows; all gone → empty."""
    from electrodb.builders import run_builders

    a = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=15)
    b = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=16)
    run_builders(stores)
    url = "/electrolytes?salt=NaCl&_fields=n_runs,trajectory_ids"
    with _client(stores.settings) as c:
        assert c.get(url).json()["data"][0]["n_runs"] == 2
        assert c.get(url).json()["data"][0]["n_runs"] == 2 and _cache(c).stats.hits == 1
        later = datetime.now(timezone.utc) + timedelta(seconds=1)
        for tid in (b.trajectory_id, a.trajectory_id):
            doc = stores.trajectories.query_one({"trajectory_id": tid})
            doc.pop("_id", None)
            stores.trajectories.update([{**doc, "status": "unstable", "status_reason": "x", "last_updated": later}])
            run_builders(stores)
            body = c.get(url).json()
            if tid == b.trajectory_id:
                assert body["data"][0]["n_runs"] == 1 and body["data"][0]["trajectory_ids"] == [a.trajectory_id]
            else:
                assert body["meta"]["total_doc"] == 0 and body["data"] == []


def test_stores_without_version_are_not_cached(db: dict) -> None:
    from maggma.stores import MemoryStore

    with _client(db["settings"]) as c:
        memory = MemoryStore("electrolytes", key="electrolyte_id")
        memory.connect()
        memory.update(db["summaries"][:2])
        database = c.app.state.db
        database.stores._stores["electrolytes"] = memory
        database._connected.add("electrolytes")
        assert database.version("electrolytes") is None
        for _ in range(2):
            assert c.get("/electrolytes").json()["meta"]["total_doc"] == 2
        memory.update(db["summaries"][2:3])
        assert c.get("/electrolytes").json()["meta"]["total_doc"] == 3
        assert _cache(c).stats.hits == 0 and not _cache(c)._entries


def test_cache_keeps_to_its_byte_bound() -> None:
    import asyncio

    from electrodb.api.cache import ResponseCache

    body = b"x" * 1000

    async def inner(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    cache = ResponseCache(inner, {"/a": "a"}, version=lambda name: 1, max_bytes=8000)

    async def get(query: bytes) -> bytes:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/a", "query_string": query, "headers": []}
        await cache(scope, None, send)
        return b"".join(m.get("body", b"") for m in sent)

    for k in range(20):
        assert asyncio.run(get(b"k=%d" % k)) == body
    assert cache.stats.entries == 8 and cache.stats.bytes == 8000
    assert asyncio.run(get(b"k=19")) == body and cache.stats.hits == 1
    assert asyncio.run(get(b"k=0")) == body and cache.stats.hits == 1  # evicted long ago


# ------------------------------------------------------------------------------------------ rendering


VALUES: list[Any] = [
    {"a": 1, "b": 1.5, "c": None, "d": True, "e": "plain text", "f": [1, 2.0, "x"], "g": {"h": []}},
    {"nan": math.nan, "inf": [math.inf, -math.inf], "tiny": 1e-300, "big": 1e300, "neg0": -0.0},
    {"when": datetime(2024, 5, 1, 12, 0, 0, 123000), "day": date(2024, 5, 1)},
    {"aware": datetime(2024, 5, 1, tzinfo=timezone(timedelta(hours=2))), "us": datetime(2024, 1, 1, 0, 0, 0, 7)},
    {"model_path": "/srv/models/m.model", "msg": "failed reading /srv/x/y.traj now", "ratio": "1/2"},
    {"win": "C:\\models\\m.model", "file": "file:///data/a.traj", "home": "~/x/y"},
    {"_id": 5, "inner": {"_id": "x", "keep": 1}, "list": [{"_id": 1, "v": 2}]},
    {"np": np.float32(1.5), "arr": np.arange(3), "npnan": np.float64("nan")},
    {"bytes": b"\x00\x01", "huge": 2**70, 3: "int key", "set": (1, 2)},
    {"unicode": "Å ps K — 1e-9 m²/s", "quote": 'say "hi"', "esc": "tab\tnew\nline"},
    [1, "two", {"three": 3.0}],
    "/abs/path/file.txt",
    math.nan,
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_dumps_is_the_json_of_jsonable(value: Any) -> None:
    from electrodb.api.jsonout import dumps, dumps_list, jsonable

    want = json.loads(json.dumps(jsonable(value), allow_nan=False))
    assert json.loads(dumps(value)) == want
    assert json.loads(dumps_list([value, value])) == [want, want]


def test_list_answers_render_like_jsonable() -> None:
    from electrodb.api.jsonout import SafeJSONResponse, jsonable

    content = {"data": VALUES[:8], "meta": {"total_doc": 8, "warnings": ["x /srv/a/b y"]}}
    assert json.loads(SafeJSONResponse(content).body) == json.loads(json.dumps(jsonable(content)))
    assert json.loads(SafeJSONResponse({"data": []}).body) == {"data": []}


# ------------------------------------------------------------------------------------------ data_version


def test_data_version_changes_on_every_commit_elsewhere(tmp_path: Path) -> None:
    settings = ElectroDBSettings(data_dir=tmp_path)
    with get_stores(settings) as writer, get_stores(settings, read_only=True) as reader:
        writer.models.update([{"model_id": "m1"}])
        first = reader.models.data_version()
        assert reader.models.data_version() == first  # no write: same token
        writer.models.update([{"model_id": "m2"}])
        second = reader.models.data_version()
        assert second != first
        reader.models.close()  # a new version connection: tokens never collide with the old ones
        assert reader.models.data_version() not in (first, second)


# ------------------------------------------------------------------------------------------ benchmark


def test_benchmark_arguments() -> None:
    api_load = api_load_module()
    args = api_load.parse_args(["--n", "1e3,10000", "--modes", "cache,nocache"])
    assert args.n == [1000, 10000] and args.modes == ["cache", "nocache"] and args.uri is None
    with pytest.raises(SystemExit):
        api_load.parse_args(["--uri", "localhost:27017"])
    with pytest.raises(SystemExit):
        api_load.parse_args(["--modes", "fast"])
    with pytest.raises(SystemExit):
        api_load.parse_args(["--n", "many"])


def test_benchmark_mongodb_code_path_on_mongomock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--uri``: settings of a database of its own, filled with indexes, served by env, dropped afterwards."""
    import functools

    import mongomock
    import mongomock.gridfs
    from mongomock.store import ServerStore

    api_load = api_load_module()
    args = api_load.parse_args(["--uri", "mongodb://localhost:27017", "--n", "300"])
    shared = functools.partial(mongomock.MongoClient, _store=ServerStore())  # one server for every client
    monkeypatch.setattr("maggma.stores.mongolike.MongoClient", shared)
    monkeypatch.setattr("maggma.stores.gridfs.MongoClient", shared)
    mongomock.gridfs.enable_gridfs_integration()
    settings = api_load.bench_settings(tmp_path, args.uri)
    assert not settings.embedded and settings.db_name.startswith("electrodb_bench_")
    api_load.fill(settings, 300)
    with get_stores(settings, read_only=True) as stores:
        total = stores.electrolytes.count(api_load.CRITERIA)
        assert 0 < total < 300
        info = stores.electrolytes._collection.index_information()
        assert any(key[0][0] == "molality" for key in (v["key"] for v in info.values()))
        env = api_load.server_env(settings, "nocache")
        assert env["ELECTRODB_DB_URI"] == args.uri and env["ELECTRODB_DB_NAME"] == settings.db_name
        assert env["ELECTRODB_API_CACHE_MB"] == "0"
        client = stores.electrolytes._collection.database.client
    api_load.drop(settings)
    assert settings.db_name not in client.list_database_names()


def test_rendered_documents_follow_the_collection(tmp_path: Path) -> None:
    """``Database.page_json`` (rendered-document cache) equals ``page`` + rendering, before and after writes."""
    from electrodb.api.database import Database
    from electrodb.api.jsonout import dumps

    settings = ElectroDBSettings(data_dir=tmp_path)
    docs = [{"electrolyte_id": f"e{i}", "salt": "NaCl", "molality": i / 4, "D_cation": float(i)} for i in range(12)]
    with get_stores(settings) as stores:
        stores.electrolytes.update(docs)
        db = Database(settings, doc_cache_bytes=2**20)
        cases = [
            ({"salt": "NaCl"}, None, {"electrolyte_id": 1}, 2, 5),
            (
                {"molality": {"$gte": 1.0}},
                {"D_cation": 1, "electrolyte_id": 1},
                {"D_cation": -1, "electrolyte_id": 1},
                0,
                3,
            ),
            ({"salt": {"$regex": "^Na"}}, None, {"electrolyte_id": 1}, 1, 4),  # not SQL-exact: plain path
        ]
        for round_ in range(3):
            for criteria, props, sort, skip, limit in cases:
                want_docs, want_total = db.page("electrolytes", criteria, props, sort, skip, limit)
                got, total = db.page_json("electrolytes", criteria, props, sort, skip, limit)
                assert total == want_total and got == [dumps(d) for d in want_docs], (round_, criteria)
            stores.electrolytes.update([{**docs[3], "D_cation": 100.0 + round_}])  # changes page 1 and 2
        criteria, props, sort, skip, limit = cases[0]
        first = db.page_json("electrolytes", criteria, props, sort, skip, limit)
        assert db.page_json("electrolytes", criteria, props, sort, skip, limit) == first
        # unchanged collection: the match list and each document are read and rendered once
        assert db.doc_cache.stats.hits == 1 + limit
        assert stores.electrolytes.page_ids({"salt": {"$regex": "^Na"}}, None) is None
        db.close()
        small = Database(settings, doc_cache_bytes=1200)  # match list (12 ids) over an eighth: paged in SQL
        for _ in range(2):
            for criteria, props, sort, skip, limit in cases:
                want_docs, want_total = small.page("electrolytes", criteria, props, sort, skip, limit)
                got, total = small.page_json("electrolytes", criteria, props, sort, skip, limit)
                assert total == want_total and got == [dumps(d) for d in want_docs], criteria
        assert small._unkept
        small.close()


INVALID = [
    "/electrolytes?_limit=abc",
    "/electrolytes?_limit=5000&_skip=-1",
    "/electrolytes?molality_min=nan",
    "/electrolytes?salt=na%20cl!",
    "/electrolytes?_all_fields=maybe",
    "/electrolytes?_sort_fields=nonsense",
    "/electrolytes?_page=0&_per_page=10",
    "/reference/activity",
    "/reference/activity?salt=NaCl",
    "/electrolytes/x/rdf?max_points=1",
    "/export?format=xml",
    "/trajectories/traj-00-0?_fields=symbols",
]


def test_fast_parameter_dependencies_answer_like_fastapi(db: dict) -> None:
    """Every route's fast twin (swapped in by ``fast_dependencies``) answers exactly as FastAPI's own parameter
    handling does: values, defaults, 422 messages and details."""
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app
    from electrodb.api.params import declared_dependencies, fast_dependencies

    fast_app, plain_app = create_app(db["settings"], cache_mb=0), create_app(db["settings"], cache_mb=0)
    assert not fast_app.dependency_overrides  # overrides make FastAPI re-inspect every dependency per request
    declared_dependencies(plain_app)
    assert fast_dependencies(plain_app) >= 15  # as many twins as create_app switched in
    declared_dependencies(plain_app)
    with TestClient(fast_app) as fast, TestClient(plain_app) as plain:
        for url in QUERIES + INVALID:
            want, got = plain.get(url), fast.get(url)
            assert got.status_code == want.status_code, url
            assert got.content == want.content, url
