"""How the API serves answers: ISA-L gzip, list routes in the event loop (embedded) or the thread pool (MongoDB),
and the light HTTP client of ``benchmarks/api_load.py`` that measures them.

* :mod:`electrodb.api.compress`: gzip answers decode to exactly the identity answers (plain and streamed), small
  ones stay uncompressed, and ISA-L is the backend wherever the package is installed (it is a dependency).
* ``benchmarks/api_load.py``: :func:`read_answer` parses ``Content-Length`` and chunked answers and refuses
  malformed ones; both client kinds run against a real uvicorn server with no error, and a light client counts an
  answer whose ``total_doc`` is not the expected one as an error.
"""

from __future__ import annotations

import gzip
import inspect
import io
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.api.benchmark import api_load_module


def test_isal_is_the_gzip_backend() -> None:
    from electrodb.api.compress import BACKEND

    assert BACKEND == "isal", "install the package's dependencies (isal): gzip falls back to the slower zlib"


@pytest.mark.parametrize(
    "url",
    [
        "/electrolytes",
        "/electrolytes?_all_fields=true",
        "/structure?_limit=3",
        "/export?format=csv",  # a streamed answer
        "/export?format=jsonl&with_arrays=true",
    ],
)
def test_gzip_answers_decode_to_the_identity_answers(db: dict, url: str) -> None:
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    with TestClient(create_app(db["settings"], cache_mb=0)) as client:
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        packed = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == packed.status_code == 200, url
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip" and "accept-encoding" in packed.headers["vary"].lower()
    assert packed.content == plain.content  # httpx decoded the gzip stream


def test_gzip_stream_is_a_valid_gzip_file(db: dict) -> None:
    """The bytes on the wire are one gzip member that the standard library decodes (not only httpx)."""
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    with TestClient(create_app(db["settings"], cache_mb=0)) as client:
        plain = client.get("/electrolytes?_all_fields=true", headers={"Accept-Encoding": "identity"}).content
        with client.stream("GET", "/electrolytes?_all_fields=true", headers={"Accept-Encoding": "gzip"}) as r:
            wire = b"".join(r.iter_raw())
    assert wire[:2] == b"\x1f\x8b" and len(wire) < len(plain) / 2
    assert gzip.decompress(wire) == plain


def test_small_answers_are_not_compressed(db: dict) -> None:
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    with TestClient(create_app(db["settings"], cache_mb=0)) as client:
        r = client.get("/electrolytes?_limit=0", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and len(r.content) < 1000 and "content-encoding" not in r.headers


def test_list_routes_run_in_the_loop_on_the_embedded_store_and_in_threads_on_mongodb(
    db: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embedded: ``async`` endpoints (no thread-pool hop); MongoDB: plain functions run in FastAPI's pool."""
    import mongomock

    from electrodb.api.app import create_app
    from electrodb.settings import ElectroDBSettings

    def list_endpoints(app: Any) -> dict[str, Any]:
        return {r.path: r.endpoint for r in app.routes if getattr(r, "name", "").startswith("list_")}

    embedded = list_endpoints(create_app(db["settings"], cache_mb=0))
    assert embedded and all(inspect.iscoroutinefunction(f) for f in embedded.values())
    monkeypatch.setattr("maggma.stores.mongolike.MongoClient", mongomock.MongoClient)
    monkeypatch.setattr("maggma.stores.gridfs.MongoClient", mongomock.MongoClient)
    remote = ElectroDBSettings(data_dir=db["settings"].data_dir, db_uri="mongodb://localhost:27017", db_name="x")
    threaded = list_endpoints(create_app(remote, cache_mb=0))
    assert threaded.keys() == embedded.keys()
    assert not any(inspect.iscoroutinefunction(f) for f in threaded.values())


# ------------------------------------------------------------------------------------------ light client


def _reader(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data))


def test_read_answer_content_length_and_chunked() -> None:
    api_load = api_load_module()
    two = (
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nContent-Encoding: gzip\r\n\r\nhello"
        b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"
    )
    reader = _reader(two)
    assert api_load.read_answer(reader) == (200, {"content-length": "5", "content-encoding": "gzip"}, b"hello")
    status, headers, body = api_load.read_answer(reader)
    assert (status, body) == (404, b"abcde") and headers["transfer-encoding"] == "chunked"


@pytest.mark.parametrize(
    "data",
    [
        b"",  # connection closed
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",  # closed inside the body
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nbody",  # no length
    ],
)
def test_read_answer_refuses_malformed_answers(data: bytes) -> None:
    with pytest.raises(ValueError):
        api_load_module().read_answer(_reader(data))


def test_both_client_kinds_against_a_real_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A uvicorn server over 300 synthetic summaries: light and httpx clients get answers and no errors, the
    server's CPU is measured, and a light client checking against a wrong ``total_doc`` reports errors."""
    api_load = api_load_module()
    with tempfile.TemporaryDirectory(prefix="electrodb-serving-") as tmp:
        settings = api_load.bench_settings(Path(tmp), None)
        api_load.fill(settings, 300)
        from electrodb.store.stores import get_stores

        with get_stores(settings, read_only=True) as stores:
            total = stores.electrolytes.count(api_load.CRITERIA)
        port = api_load.free_port()
        proc = api_load.start_server(api_load.server_env(settings, "cache"), port)
        url = f"http://127.0.0.1:{port}"
        try:
            api_load.wait_ready(url, proc)
            meter = api_load.CpuMeter(proc.pid)
            cpu0 = meter.seconds()
            for kind in ("light", "httpx"):
                res = api_load.run_clients(url, 3, 0.5, 30, total, kind=kind)
                assert res["latencies"] and not res["errors"], (kind, res["errors"][:3])
                assert res["client_cpu"] > 0
            assert meter.seconds() > cpu0
            monkeypatch.setattr(api_load, "CHECK_EVERY", 1)
            wrong = api_load.run_clients(url, 2, 0.3, 30, total + 1, kind="light")
            assert wrong["errors"] and set(wrong["errors"]) == {"wrong total_doc"} and not wrong["latencies"]
            line = api_load.summary_line("cache/light", {**res, "server_cpu": 0.1})
            assert "CPU ms/req: server" in line and "\n" not in line
        finally:
            api_load.stop_server(proc)


def test_cached_only_pages_come_from_the_read_model_alone(tmp_path: Path) -> None:
    """``page_json(cached_only=True)``: None until the match list and every document of the page are cached (what
    the event loop answers; the rest goes to the thread pool), then exactly the full answer; None again after any
    write to the collection."""
    from electrodb.api.database import Database
    from electrodb.settings import ElectroDBSettings
    from electrodb.store.stores import get_stores

    settings = ElectroDBSettings(data_dir=tmp_path)
    docs = [{"electrolyte_id": f"e{i:02d}", "salt": "NaCl", "molality": i / 4} for i in range(12)]
    page = ("electrolytes", {"salt": "NaCl"}, None, {"electrolyte_id": 1})
    with get_stores(settings) as stores:
        stores.electrolytes.update(docs)
        db = Database(settings, doc_cache_bytes=2**20)
        assert db.page_json(*page, 2, 3, cached_only=True) is None  # nothing cached yet
        full = db.page_json(*page, 2, 3)
        assert db.page_json(*page, 2, 3, cached_only=True) == full
        assert db.page_json(*page, 4, 3, cached_only=True) is None  # e04 was never rendered
        stores.electrolytes.update([{**docs[2], "molality": 9.0}])
        assert db.page_json(*page, 2, 3, cached_only=True) is None  # a new version: nothing of the old is served
        db.close()
        assert Database(settings).page_json(*page, 2, 3, cached_only=True) is None  # no cache at all
