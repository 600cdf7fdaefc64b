"""The embedded SQLite store: Mongo semantics (parity with maggma's mongomock MemoryStore), several writer
processes, concurrent opens, index use, montydb migration."""

from __future__ import annotations

import math
import multiprocessing
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from maggma.stores import MemoryStore

from electrodb.store.sqlite import SQLiteStore

BASE = datetime(2024, 5, 1, 12, 0, 0)
SALTS = ["NaCl", "LiCl", "KCl", "CsI"]


def random_docs(n: int, seed: int) -> list[dict[str, Any]]:
    """Documents with every awkward shape ElectroDB meets: missing/None/mixed-type fields, arrays or scalars in
    the same field, nested documents, arrays of documents, booleans, datetimes, NaN."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        d: dict[str, Any] = {"k": f"id-{i:04d}", "i": i, "salt": rng.choice(SALTS)}
        d["molality"] = rng.choice([rng.randint(0, 6), round(rng.uniform(0, 6), 2)])
        r = rng.random()
        if r < 0.1:
            d["x"] = None
        elif r < 0.2:
            d["x"] = rng.choice(["a", "b", "zz"])
        elif r < 0.3:
            d["x"] = BASE + timedelta(hours=rng.randint(0, 10))
        elif r < 0.9:
            d["x"] = rng.choice([rng.randint(-3, 3), rng.uniform(-3, 3)])
        r = rng.random()
        if r < 0.6:
            d["campaign_ids"] = rng.sample(["c1", "c2", "c3", "c4"], rng.randint(0, 3))
        elif r < 0.8:
            d["campaign_ids"] = rng.choice(["c1", "c2"])
        if rng.random() < 0.8:
            d["prov"] = {"model_id": rng.choice(["m1", "m2"]), "analysis": {"digest": rng.choice(["d1", "d2", None])}}
        if rng.random() < 0.3:
            d["runs"] = [{"t": rng.randint(0, 3)} for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.7:
            d["last_updated"] = BASE + timedelta(minutes=rng.randint(0, 600), milliseconds=rng.randint(0, 999))
        if rng.random() < 0.2:
            d["err"] = rng.choice([math.nan, 0.5, 1.5])
        if rng.random() < 0.5:
            d["flag"] = rng.choice([True, False, None])
        if rng.random() < 0.5:
            d["status"] = rng.choice(["completed", "failed", "unstable"])
        docs.append(d)
    return docs


CRITERIA: list[dict[str, Any]] = [
    {},
    {"salt": "NaCl"},
    {"salt": {"$in": ["NaCl", "KCl"]}},
    {"salt": {"$nin": ["NaCl", "KCl"]}},
    {"salt": {"$ne": "LiCl"}},
    {"molality": {"$gte": 1, "$lte": 3}},
    {"molality": {"$gt": 2.5}},
    {"molality": {"$lt": 1}},
    {"salt": "NaCl", "molality": {"$gte": 1.0, "$lte": 3.0}},
    {"molality": 2},
    {"x": None},
    {"x": {"$ne": None}},
    {"x": {"$exists": True}},
    {"x": {"$exists": False}},
    {"x": 1},
    {"flag": True},
    {"flag": False},
    {"flag": {"$ne": True}},
    {"flag": {"$in": [False, None]}},
    {"x": {"$gt": 0}},
    {"x": {"$lte": 0}},
    {"x": {"$gte": "b"}},
    {"x": {"$lt": "b"}},
    {"x": {"$in": [None, "a", 1, 2.5]}},
    {"x": {"$nin": [None, "a"]}},
    {"x": {"$gte": BASE + timedelta(hours=5)}},
    {"x": BASE + timedelta(hours=3)},
    {"campaign_ids": "c1"},
    {"campaign_ids": {"$in": ["c2", "c4"]}},
    {"campaign_ids": {"$nin": ["c1"]}},
    {"campaign_ids": {"$ne": "c2"}},
    {"campaign_ids": {"$exists": False}},
    {"campaign_ids": {"$gt": "c2"}},
    {"campaign_ids": {"$size": 0}},
    {"campaign_ids": ["c1", "c2"]},
    {"prov.model_id": "m1"},
    {"prov.analysis.digest": None},
    {"prov.analysis.digest": {"$in": ["d2"]}},
    {"prov.analysis": {"$exists": True}},
    {"prov": {"model_id": "m1", "analysis": {"digest": "d1"}}},
    {"runs.t": 2},
    {"runs.t": {"$gte": 3}},
    {"runs": {"$elemMatch": {"t": 0}}},
    {"last_updated": {"$gt": BASE + timedelta(minutes=300)}},
    {"last_updated": {"$lte": BASE + timedelta(minutes=100)}},
    {"err": 0.5},
    {"err": {"$gt": 1}},
    {"err": {"$ne": 0.5}},
    {"status": {"$in": ["completed", "unstable", "failed"]}, "salt": "CsI"},
    {"$or": [{"salt": "NaCl"}, {"molality": {"$gte": 5}}]},
    {"$and": [{"salt": {"$ne": "NaCl"}}, {"x": {"$exists": True}}]},
    {"$nor": [{"salt": "NaCl"}, {"x": None}]},
    {"$or": [{"salt": "KCl"}, {"runs.t": 1}]},
    {"salt": {"$regex": "^N"}},
    {"k": {"$in": []}},
    {"i": {"$not": {"$gt": 10}}},
]
SORTS: list[dict[str, int]] = [
    {"i": 1},
    {"i": -1},
    {"molality": 1, "i": 1},
    {"salt": -1, "molality": 1, "i": 1},
    {"x": 1, "i": 1},
    {"x": -1, "i": -1},
    {"last_updated": -1, "i": 1},
    {"err": 1, "i": 1},
    {"flag": -1, "i": 1},
    {"campaign_ids": 1, "i": 1},
    {"prov.analysis.digest": 1, "i": 1},
]


def _clean(docs: Any) -> list[dict]:
    return [{k: v for k, v in d.items() if k != "_id"} for d in docs]


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


COLUMNS = ["salt", "molality", "x", "flag", "campaign_ids", "prov.analysis.digest", "last_updated", "err"]


@pytest.fixture(scope="module", params=["json", "columns"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[SQLiteStore, MemoryStore]:
    """The same documents in a SQLite store and a MemoryStore; ``columns``: filtered fields in value columns."""
    docs = random_docs(300, seed=7)
    fields = COLUMNS if request.param == "columns" else []
    sql = SQLiteStore("docs", str(tmp_path_factory.mktemp("sqlite")), key="k", indexed_fields=fields)
    mem = MemoryStore("docs", key="k")
    sql.connect()
    mem.connect()
    for store in (sql, mem):
        store.update(docs[:200])
        store.update(docs[200:])
    sql.ensure_index("salt")
    sql.ensure_index("molality")
    sql.ensure_index("prov.model_id")  # a column added to a filled collection
    return sql, mem


@pytest.mark.parametrize("criteria", CRITERIA, ids=[repr(c)[:60] for c in CRITERIA])
def test_query_and_count_match_mongo(pair: tuple, criteria: dict) -> None:
    sql, mem = pair
    expected = _clean(mem.query(criteria, sort={"i": 1}))
    assert _same(_clean(sql.query(criteria, sort={"i": 1})), expected)
    assert sql.count(criteria) == mem.count(criteria) == len(expected)
    unsorted = _clean(sql.query(criteria))
    assert sorted(d["i"] for d in unsorted) == [d["i"] for d in expected]


@pytest.mark.parametrize("sort", SORTS, ids=[repr(s) for s in SORTS])
def test_sort_skip_limit_match_mongo(pair: tuple, sort: dict) -> None:
    sql, mem = pair
    for criteria in ({}, {"salt": {"$in": ["NaCl", "KCl"]}}, {"campaign_ids": "c1"}):
        want = [d["i"] for d in mem.query(criteria, sort=sort)]
        got = [d["i"] for d in sql.query(criteria, sort=sort)]
        assert got == want, (criteria, sort)
        for skip, limit in ((0, 5), (7, 10), (40, 0), (1000, 3)):
            page = [d["i"] for d in sql.query(criteria, sort=sort, skip=skip, limit=limit)]
            assert page == want[skip : skip + limit if limit else None]


@pytest.mark.parametrize(
    "properties",
    [
        ["salt", "molality"],
        {"salt": 1, "prov.model_id": 1},
        {"prov.analysis.digest": 1, "_id": 0},
        {"runs.t": 1},
        {"prov": 0, "campaign_ids": 0},
        {"prov.analysis": 0},
        {"_id": 0},
        {"x": 1, "err": 1},
    ],
)
def test_projection_matches_mongo(pair: tuple, properties: Any) -> None:
    sql, mem = pair
    for criteria in ({}, {"runs.t": 1}):
        want = list(mem.query(criteria, properties=properties, sort={"i": 1}))
        got = list(sql.query(criteria, properties=properties, sort={"i": 1}))
        assert ("_id" in got[0]) == ("_id" in want[0])
        assert _same(_clean(got), _clean(want))


@pytest.mark.parametrize(
    "field", ["salt", "molality", "x", "campaign_ids", "prov.model_id", "prov.analysis.digest", "runs.t", "err"]
)
def test_distinct_matches_mongo(pair: tuple, field: str) -> None:
    sql, mem = pair
    for criteria in (None, {"salt": "NaCl"}):
        key = repr
        assert sorted(map(key, sql.distinct(field, criteria))) == sorted(map(key, mem.distinct(field, criteria)))


def test_booleans_are_not_numbers_as_in_mongodb(tmp_path: Path) -> None:
    """MongoDB compares by type first: ``{"x": 1}`` does not match ``true`` (mongomock's Python ``==`` would), and
    booleans sort after numbers and strings, before dates."""
    store = SQLiteStore("b", str(tmp_path), key="k")
    store.connect()
    values = [True, 1, 0, False, 1.0, "a", None, BASE, 2]
    store.update([{"k": n, "x": v} for n, v in enumerate(values)])
    assert sorted(d["k"] for d in store.query({"x": 1})) == [1, 4]
    assert sorted(d["k"] for d in store.query({"x": True})) == [0]
    assert sorted(d["k"] for d in store.query({"x": {"$gte": 0}})) == [1, 2, 4, 8]
    assert sorted(d["k"] for d in store.query({"x": {"$in": [0, False]}})) == [2, 3]
    assert [d["x"] for d in store.query(sort={"x": 1, "k": 1})] == [None, 0, 1, 1.0, 2, "a", False, True, BASE]


def test_update_upsert_and_remove_match_mongo(tmp_path: Path) -> None:
    docs = random_docs(120, seed=3)
    sql = SQLiteStore("u", str(tmp_path), key="k")
    mem = MemoryStore("u", key="k")
    sql.connect()
    mem.connect()
    for store in (sql, mem):
        store.update(docs)
        store.update([{**d, "salt": "NaBr", "molality": 9.5} for d in docs[:30]])  # replace, not merge
        store.update([{"k": "id-0001", "only": 1}])
        store.update([{"k": "new", "i": 999, "salt": "NaBr"}])
        store.update([{"k": "id-0002", "i": 2, "by": "salt-key"}], key=["k", "i"])  # another key specification
        store.remove_docs({"molality": {"$lt": 1}})
        store.remove_docs({"runs.t": 0})  # removal through an array of documents (Python-filtered)
    assert sql.count() == mem.count()
    assert _same(_clean(sql.query(sort={"k": 1})), _clean(mem.query(sort={"k": 1})))
    assert sql.query_one({"k": "id-0001"})["only"] == 1 and "salt" not in sql.query_one({"k": "id-0001"})
    sql.remove_docs({})
    assert sql.count() == 0 and list(sql.query()) == []


def test_datetimes_round_trip_and_newer_in(tmp_path: Path) -> None:
    src, dst = SQLiteStore("src", str(tmp_path), key="k"), SQLiteStore("dst", str(tmp_path), key="k")
    src.connect()
    dst.connect()
    aware = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    src.update([{"k": "a", "last_updated": aware}, {"k": "b", "last_updated": aware + timedelta(days=1)}])
    dst.update([{"k": "a", "last_updated": aware + timedelta(hours=1)}])
    back = src.query_one({"k": "a"})["last_updated"]
    assert back == datetime(2024, 1, 2, 3, 4, 5, 678000)  # naive UTC, milliseconds: what MongoDB returns
    assert src.last_updated == datetime(2024, 1, 3, 3, 4, 5, 678000)
    assert sorted(dst.newer_in(src)) == ["b"]


def test_awkward_values_round_trip_exactly(tmp_path: Path) -> None:
    """Datetimes, NaN/inf, bytes, 17-digit floats and big integers, at the top, nested, in arrays (also of
    documents and of arrays) come back as they went in (microseconds aside), through every read path."""
    store = SQLiteStore("w", str(tmp_path), key="k", indexed_fields=["f", "when"])
    store.connect()
    doc = {
        "k": "a",
        "f": -0.10220232334240853,
        "big": 2**70,
        "when": BASE,
        "rdf": [0.0, math.nan, 1.2345678901234567, math.inf],
        "runs": [{"at": BASE, "v": [[math.nan, -math.inf]]}, {"at": None, "blob": b"\x00\xff"}],
        "nested": {"deep": {"when": [BASE, "text"], "neg0": -0.0}},
    }
    store.update([doc, {"k": "b", "f": 1}])
    for back in (
        store.query_one({"k": "a"}),
        next(store.query({"f": {"$lt": 0}}, sort={"f": 1}, limit=1)),
        next(store.query({"runs.at": BASE})),  # Python-filtered path
        next(store.query({"k": "a"}, properties={"rdf": 0})),
    ):
        assert _same(_clean([back]), [{k: v for k, v in doc.items() if k != "rdf" or "rdf" in back}])
    assert str(store.query_one({"k": "a"})["nested"]["deep"]["neg0"]) == "-0.0"
    assert store.distinct("f") == [-0.10220232334240853, 1]


def test_jobflow_key_specification_and_stores_serialise(tmp_path: Path) -> None:
    from monty.json import MontyDecoder

    jobs = SQLiteStore("jobs", str(tmp_path), key="uuid")
    jobs.connect()
    jobs.update([{"uuid": "u", "index": 1, "output": 1}, {"uuid": "u", "index": 2, "output": 2}], key=["uuid", "index"])
    jobs.update([{"uuid": "u", "index": 2, "output": 3}], key=["uuid", "index"])
    assert jobs.count() == 2 and jobs.query_one({"uuid": "u"}, sort={"index": -1})["output"] == 3
    jobs.close()  # maggma builders close their stores in finalize; a closed store reopens on use
    assert jobs.count() == 2
    again = MontyDecoder().process_decoded(jobs.as_dict())
    again.connect()
    assert again == jobs and again.count({"uuid": "u"}) == 2


def test_indexed_filters_use_their_index(tmp_path: Path) -> None:
    store = SQLiteStore("electrolytes", str(tmp_path), key="electrolyte_id")
    store.connect()
    store.update(random_docs(50, seed=1), key="k")
    for field in ("salt", "molality", "k"):
        assert store.ensure_index(field)
    assert {"ix_salt", "ix_molality"} <= set(store.indexes())
    assert any("USING INDEX ix_salt" in line for line in store.explain({"salt": "NaCl"}))
    plan = store.explain({"molality": {"$gte": 1.0, "$lte": 3.0}})
    assert any("USING INDEX ix_molality" in line for line in plan), plan


# ------------------------------------------------------------------------------------------ processes


def _upsert_keys(path: str, seed: int, barrier: Any) -> None:
    store = SQLiteStore("race", path, key="k", busy_timeout_s=60)
    store.connect()
    keys = list(range(150))
    random.Random(seed).shuffle(keys)
    barrier.wait()
    for k in keys:
        store.update([{"k": f"key-{k}", "writer": seed, "payload": list(range(20))}])
    store.close()


def _open_and_write(path: str, n: int, barrier: Any) -> None:
    barrier.wait()
    store = SQLiteStore("opened", path, key="k", busy_timeout_s=60)
    store.connect()
    store.ensure_index("salt")
    store.update([{"k": n, "salt": "NaCl"}])
    assert store.count({"k": n}) == 1
    store.close()


def _run(target: Any, args: list[tuple]) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(args))
    procs = [ctx.Process(target=target, args=(*a, barrier)) for a in args]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(procs)


@pytest.mark.parametrize("trial", range(3))
def test_two_writer_processes_upserting_the_same_keys_leave_one_document_per_key(tmp_path: Path, trial: int) -> None:
    _run(_upsert_keys, [(str(tmp_path), 1), (str(tmp_path), 2)])
    store = SQLiteStore("race", str(tmp_path), key="k")
    store.connect()
    assert store.count() == 150
    assert len(store.distinct("k")) == 150


def test_eight_processes_opening_a_new_database_at_once_never_fail(tmp_path: Path) -> None:
    _run(_open_and_write, [(str(tmp_path), n) for n in range(8)])
    store = SQLiteStore("opened", str(tmp_path), key="k")
    store.connect()
    assert store.count() == 8


def _write_with(store: SQLiteStore, n: int, barrier: Any) -> None:
    barrier.wait()
    store.update([{"k": f"child-{n}"}])


def test_a_store_connected_before_a_fork_works_on_both_sides(tmp_path: Path) -> None:
    store = SQLiteStore("forked", str(tmp_path), key="k")
    store.connect()
    store.update([{"k": "parent"}])
    _run(_write_with, [(store, n) for n in range(3)])
    store.update([{"k": "parent-again"}])
    assert store.count() == 5


# ------------------------------------------------------------------------------------------ ElectroDB stores


def test_old_montydb_database_is_migrated_once(tmp_path: Path) -> None:
    from maggma.stores import MontyStore

    from electrodb.settings import ElectroDBSettings
    from electrodb.store.sqlite_migrate import MIGRATED_MARKER
    from electrodb.store.stores import get_stores

    settings = ElectroDBSettings(data_dir=tmp_path)
    old = MontyStore("systems", database_path=str(settings.database_path), database_name=settings.db_name)
    old.connect()
    old._collection.insert_many([{"system_id": f"s{i}", "salt": "NaCl", "last_updated": BASE} for i in range(5)])
    jobs = MontyStore("jobs", database_path=str(settings.database_path), database_name=settings.db_name)
    jobs.connect()
    jobs._collection.insert_many([{"uuid": "u", "index": i} for i in (1, 2)])
    with get_stores(settings, read_only=True) as stores:
        assert stores.systems.count({"salt": "NaCl"}) == 5
        assert stores.systems.query_one({"system_id": "s3"})["last_updated"] == BASE
        assert stores.jobs.count() == 2
    folder = settings.database_path / settings.db_name
    assert (folder / MIGRATED_MARKER).is_file() and (folder / "systems.collection").is_file()
    old.update([{"system_id": "late", "salt": "KCl"}], key="system_id")  # after the migration: not copied again
    with get_stores(settings) as stores:
        assert stores.systems.count() == 5
        stores.systems.update([{"system_id": "s0", "salt": "LiCl"}], key="system_id")
        assert stores.systems.count() == 5


def test_projection_below_an_array_of_scalars_keeps_what_mongodb_keeps(tmp_path):
    """``campaign_ids.0`` on a list of strings gives ``[]`` in MongoDB (mongomock raised; the API answered 500)."""
    from electrodb.store.sqlite import SQLiteStore

    store = SQLiteStore("t", tmp_path, key="k")
    store.connect()
    store.update([{"k": "a", "ids": ["x", "y"], "n": {"a": 1}, "m": 3, "l": [{"a": 1, "b": 2}, "z"]}], key="k")
    (doc,) = store.query({}, properties=["ids.0", "n.a", "m.x", "l.a", "k"])
    doc.pop("_id")
    assert doc == {"k": "a", "ids": [], "n": {"a": 1}, "l": [{"a": 1}]}
