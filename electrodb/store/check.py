"""The state of every collection of a database, read without creating or changing anything (``electrodb db
check``), and the check a build makes before it reads its sources (:func:`build_problems`).

Each collection file of the embedded database is ``ok``, ``missing`` (its database folder exists, the file does
not), ``empty`` (0 bytes: files are created whole, so this is truncation) or ``unreadable`` (not an SQLite
database, damaged pages, no ElectroDB tables). :func:`check_database` opens each file read-only, runs SQLite's
``quick_check`` (which reads every page) and counts the documents. On MongoDB it pings the server and counts.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from electrodb.documents.registry import BLOB_COLLECTION, COLLECTIONS
from electrodb.settings import ElectroDBSettings
from electrodb.store.errors import CollectionFileError, StoreUnavailableError, collection_file_error
from electrodb.store.sqlite_schema import SUFFIX
from electrodb.store.stores import get_stores

__all__ = [
    "BUILD_SOURCES",
    "CollectionState",
    "build_problems",
    "check_database",
    "collection_names",
    "database_folder",
]

_HEADER = b"SQLite format 3\x00"
#: What the builders read: a build must not start with one of these lost (it would read as empty).
BUILD_SOURCES = ("data", "electrolytes", "kinetics", "pairing", "structure", "trajectories", "transport")


@dataclass(frozen=True)
class CollectionState:
    """One collection: ``state`` (``ok``, ``missing``, ``empty``, ``unreadable``), its document count when ok,
    and the one-line message of a problem (``None`` when ok)."""

    name: str
    state: str
    count: int | None = None
    message: str | None = None


def collection_names() -> list[str]:
    """Every collection of a database, sorted (the registry's and the blob store)."""
    return sorted({*COLLECTIONS, BLOB_COLLECTION})


def database_folder(settings: ElectroDBSettings) -> Path:
    """The folder of the embedded database's collection files."""
    return settings.database_path / settings.db_name


def _file_state(path: Path) -> CollectionFileError | None:
    """The problem of collection file ``path`` seen from outside (exists, size, SQLite header), or None."""
    if not path.exists():
        return collection_file_error(path, "missing")
    if not path.is_file():
        return collection_file_error(path, "unreadable", "not a regular file")
    if path.stat().st_size == 0:
        return collection_file_error(path, "empty")
    try:
        with path.open("rb") as fh:
            header = fh.read(len(_HEADER))
    except OSError as exc:
        return collection_file_error(path, "unreadable", exc.strerror or str(exc))
    if header != _HEADER:
        return collection_file_error(path, "unreadable", "not an SQLite database")
    return None


def _read_file(path: Path) -> int:
    """Documents in collection file ``path`` after SQLite's ``quick_check`` of every page (read-only)."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        problems = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems[:3]))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "docs" not in tables:
            raise sqlite3.DatabaseError("no ElectroDB tables in it")
        return int(conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
    finally:
        conn.close()


def check_database(settings: ElectroDBSettings) -> list[CollectionState]:
    """The state of every collection of the database of ``settings``, in name order; creates nothing.

    Raises :class:`StoreUnavailableError` when there is no database at all (no folder; a MongoDB server that
    does not answer).
    """
    if not settings.embedded:
        stores = get_stores(settings, read_only=True, require_database=True)
        try:
            stores.connect()
            return [CollectionState(n, "ok", stores[n].count()) for n in collection_names()]
        finally:
            stores.close()
    get_stores(settings, read_only=True, require_database=True)  # the folder checks, one line each
    out = []
    for name in collection_names():
        path = database_folder(settings) / f"{name}{SUFFIX}"
        problem = _file_state(path)
        if problem is None:
            try:
                out.append(CollectionState(name, "ok", _read_file(path)))
                continue
            except sqlite3.Error as exc:
                problem = collection_file_error(path, "unreadable", str(exc))
        out.append(CollectionState(name, problem.state, None, problem.message))
    return out


def file_problems(settings: ElectroDBSettings) -> list[CollectionFileError]:
    """Collection files of the embedded database that are missing, empty or not SQLite databases, seen from
    outside (size and header, microseconds each; damage further in shows on reading); none on MongoDB."""
    folder = database_folder(settings)
    if not settings.embedded:
        return []
    return [p for p in (_file_state(folder / f"{n}{SUFFIX}") for n in collection_names()) if p is not None]


def build_problems(settings: ElectroDBSettings, rebuild: bool = False) -> list[StoreUnavailableError]:
    """What stops a build before it reads anything.

    Collection files that are empty or not SQLite databases, and, unless ``rebuild``, missing source collections
    (:data:`BUILD_SOURCES`), in a database folder that already holds collection files (a build reading a lost
    source as empty would delete every document derived from it). Fast: no file is read past its header. An
    embedded database that does not exist yet, and MongoDB, have none.
    """
    folder = database_folder(settings)
    if not settings.embedded or not folder.is_dir() or not any(folder.glob(f"*{SUFFIX}")):
        return []
    problems: list[StoreUnavailableError] = []
    for name in collection_names():
        problem = _file_state(folder / f"{name}{SUFFIX}")
        if problem is not None and problem.state == "missing" and (rebuild or name not in BUILD_SOURCES):
            continue  # created empty by the build: nothing derived from it is lost
        if problem is not None:
            problems.append(problem)
    return problems
