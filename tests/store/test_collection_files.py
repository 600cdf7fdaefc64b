"""Collection files that are lost, truncated or damaged, and databases that are not there: one line naming the
file (or folder, or URI with its password masked) and the fix; never a traceback, never read as empty."""

from __future__ import annotations

import threading
import time

import pytest

from electrodb.settings import ElectroDBSettings
from electrodb.store.check import build_problems, check_database
from electrodb.store.errors import CollectionFileError, StoreUnavailableError
from electrodb.store.stores import get_stores


def _file(settings: ElectroDBSettings, name: str):
    return settings.database_path / settings.db_name / f"{name}.sqlite3"


@pytest.fixture
def filled(settings):
    """A database with three trajectories and two summaries, closed."""
    with get_stores(settings) as s:
        s.trajectories.update([{"trajectory_id": f"t{i}", "n": i} for i in range(3)], key="trajectory_id")
        s.electrolytes.update([{"electrolyte_id": f"e{i}", "x": "y" * 5000} for i in range(40)], key="electrolyte_id")
    return settings


def test_an_empty_collection_file_is_an_error_naming_it_not_an_empty_collection(filled):
    path = _file(filled, "trajectories")
    path.write_bytes(b"")
    for read_only in (False, True):
        with pytest.raises(CollectionFileError) as err:
            get_stores(filled, read_only=read_only).connect()
        assert err.value.state == "empty" and str(path) in str(err.value) and "backup" in str(err.value)
        assert path.stat().st_size == 0  # nothing was written into it


def test_a_half_truncated_collection_file_is_unreadable_naming_it(filled):
    path = _file(filled, "electrolytes")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    stores = get_stores(filled, read_only=True, require_database=True)
    with pytest.raises(CollectionFileError) as err:
        stores.connect()
        list(stores.electrolytes.query({}))
    assert err.value.state == "unreadable" and str(path) in err.value.message
    assert "'electrolytes'" in err.value.public and str(path.parent) not in err.value.public
    stores.close()


def test_readers_that_require_a_database_create_nothing(settings, tmp_path):
    with pytest.raises(StoreUnavailableError, match="no ElectroDB database in .*check ELECTRODB_DATA_DIR"):
        get_stores(settings, read_only=True, require_database=True)
    assert not settings.data_dir.exists()
    with get_stores(settings) as s:
        s.models.update([{"model_id": "m"}])
    _file(settings, "models").unlink()
    with pytest.raises(CollectionFileError, match="models.sqlite3 is missing"):
        get_stores(settings, read_only=True, require_database=True).connect()
    assert not _file(settings, "models").exists()


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for inside in (afile, afile / "sub"):
        with pytest.raises(StoreUnavailableError, match="is a file, not a folder"):
            get_stores(ElectroDBSettings(data_dir=inside))
    assert afile.read_text() == "x"


def test_db_check_reports_every_file_and_the_build_check_stops_before_a_loss(filled):
    assert {s.name: (s.state, s.count) for s in check_database(filled)}["trajectories"] == ("ok", 3)
    assert build_problems(filled) == []
    _file(filled, "trajectories").write_bytes(b"")
    _file(filled, "structure").unlink()
    (path := _file(filled, "models")).write_bytes(b"not a database at all" * 10)
    states = {s.name: s for s in check_database(filled)}
    assert states["trajectories"].state == "empty" and states["structure"].state == "missing"
    assert states["models"].state == "unreadable" and str(path) in states["models"].message
    assert states["electrolytes"].state == "ok" and states["electrolytes"].count == 40
    assert not _file(filled, "structure").exists()  # checked, not created
    found = {p.collection: p.state for p in build_problems(filled)}
    assert found == {"trajectories": "empty", "structure": "missing", "models": "unreadable"}
    assert {p.collection for p in build_problems(filled, rebuild=True)} == {"trajectories", "models"}


def test_collection_files_are_created_whole_even_by_racing_threads(settings):
    errors: list[BaseException] = []

    def make() -> None:
        try:
            with get_stores(settings) as s:
                s.campaigns.count()
        except BaseException as exc:  # pragma: no cover - the failure this test looks for
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    folder = settings.database_path / settings.db_name
    assert not list(folder.glob(".*.new*"))  # no temporary file left
    assert all(s.state == "ok" for s in check_database(settings))


def test_a_mongodb_uri_that_does_not_answer_fails_fast_with_the_password_masked(tmp_path):
    settings = ElectroDBSettings(data_dir=tmp_path, db_uri="mongodb://bob:hunter2@127.0.0.1:1/x", db_timeout_s=2)
    started = time.perf_counter()
    with pytest.raises(StoreUnavailableError) as err:
        get_stores(settings).connect()
    assert time.perf_counter() - started < 10
    assert "mongodb://bob:***@127.0.0.1:1/x" in err.value.message and "hunter2" not in err.value.message
    assert "did not answer within 2 s" in err.value.message


def test_the_api_answers_503_naming_the_collection(filled):
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    with TestClient(create_app(filled)) as c:
        assert c.get("/health").json()["status"] == "ok"
    path = _file(filled, "electrolytes")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with TestClient(create_app(filled)) as c:
        for route in ("/electrolytes", "/health"):
            r = c.get(route)
            assert r.status_code == 503, (route, r.text)
            message = r.json()["error"]["message"]
            assert "'electrolytes'" in message and "unreadable" in message and str(path) not in r.text
        assert c.get("/trajectories").status_code == 200  # the other collections are still served
    path.write_bytes(b"")
    with TestClient(create_app(filled)) as c:
        r = c.get("/health")
        assert r.status_code == 503 and "'electrolytes' is empty" in r.json()["error"]["message"]
        assert c.get("/electrolytes").status_code == 503


def test_health_is_not_ok_when_any_collection_file_is_lost(filled):
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    _file(filled, "builds").write_bytes(b"")  # not served, but a build would meet it
    _file(filled, "jobs").unlink()
    with TestClient(create_app(filled)) as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "error"
        message = r.json()["error"]["message"]
        assert "'builds' is empty" in message and "'jobs' is missing" in message
        assert c.get("/electrolytes").status_code == 200
