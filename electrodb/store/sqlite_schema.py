"""The SQLite file of one :class:`~electrodb.store.sqlite.SQLiteStore` collection: tables, value columns, indexes,
opening it (WAL) and transactions.

Tables::

    docs(id INTEGER PRIMARY KEY, k TEXT UNIQUE, c0, c1, …, doc TEXT NOT NULL)
    columns(path TEXT PRIMARY KEY, col TEXT UNIQUE)  -- value columns: the key's and ``indexed_fields``
    paths(path TEXT PRIMARY KEY, kinds INTEGER)      -- awkward value kinds seen per path (sqlite_query)
    keyspecs(spec TEXT PRIMARY KEY)                  -- upsert keys used so far

``doc`` is the JSON text (:mod:`electrodb.store.sqlite_query` codec); ``k`` the canonical text of the upsert key;
each value column holds exactly what ``json_extract(doc, path)`` would return, is written with the document
and indexed, and is placed before ``doc`` so reading it never touches the document's overflow pages.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from electrodb.store.errors import collection_file_error
from electrodb.store.sqlite_codec import json_path

__all__ = [
    "KINDS_UPSERT",
    "SUFFIX",
    "add_value_column",
    "create_tables",
    "index_name",
    "open_connection",
    "stored_columns",
    "stored_kinds",
    "transaction",
]

#: File name suffix of a collection.
SUFFIX = ".sqlite3"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS paths (path TEXT PRIMARY KEY, kinds INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keyspecs (spec TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS columns (path TEXT PRIMARY KEY, col TEXT NOT NULL UNIQUE)",
)
#: Records the kinds of value seen at a path (bits OR-ed into those already recorded); parameters (path, kinds).
KINDS_UPSERT = (
    "INSERT INTO paths (path, kinds) VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET kinds = kinds | excluded.kinds"
)


def index_name(path: str, unique: bool = False) -> str:
    """Name of the index on the value at dotted ``path`` (``ix_<path>``, ``_u`` appended when unique)."""
    return "ix_" + "".join(c if c.isalnum() else "_" for c in path) + ("_u" if unique else "")


@contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """``BEGIN <mode>`` … ``COMMIT``, rolled back on any exception (``IMMEDIATE`` takes the write lock at once)."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _create_file(
    path: Path, busy_timeout_s: float, key: str, indexed_fields: list[str], compound_indexes: list[list[str]]
) -> None:
    """Create the collection file ``path`` whole: written under a temporary name, then linked into place, so a
    collection file is never seen half made (a 0-byte collection file is therefore always damage)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.new")
    try:
        conn = sqlite3.connect(tmp, timeout=busy_timeout_s, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            with transaction(conn):
                create_tables(conn, key, indexed_fields, compound_indexes)
        finally:
            conn.close()  # checkpoints and removes the temporary WAL
        try:
            os.link(tmp, path)  # fails if another process made it first: theirs is as good
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def open_connection(
    path: Path,
    busy_timeout_s: float,
    key: str,
    indexed_fields: list[str],
    compound_indexes: list[list[str]],
    create: bool = True,
) -> sqlite3.Connection:
    """A connection to the collection file ``path`` in WAL mode, its tables created if missing.

    Parameters
    ----------
    path
        The collection's file (its folder is created).
    busy_timeout_s
        How long to wait for another process's write lock (s), here and for every later statement.
    key, indexed_fields, compound_indexes
        The store's key and indexed paths, for :func:`create_tables`.
    create
        Create the file when it does not exist; ``False`` raises
        :class:`~electrodb.store.errors.CollectionFileError` (``missing``) instead.

    Raises
    ------
    CollectionFileError
        The file is missing (with ``create=False``) or empty (0 bytes: truncated, since files are created whole).
    """
    if not path.exists():
        if not create:
            raise collection_file_error(path, "missing")
        _create_file(path, busy_timeout_s, key, indexed_fields, compound_indexes)
    elif path.is_file() and path.stat().st_size == 0:
        raise collection_file_error(path, "empty")
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    deadline = time.monotonic() + busy_timeout_s
    for attempt in itertools.count():
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"docs", "paths", "keyspecs", "columns"} <= have and not create:
                conn.close()
                raise collection_file_error(path, "unreadable", "no ElectroDB tables in it")
            if not {"docs", "paths", "keyspecs", "columns"} <= have:
                with transaction(conn):
                    create_tables(conn, key, indexed_fields, compound_indexes)
            break
        except sqlite3.OperationalError as exc:  # "database is locked" while another process creates it
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(min(0.05 * (attempt + 1), 0.5))
    return conn


def create_tables(
    conn: sqlite3.Connection, key: str, indexed_fields: list[str], compound_indexes: list[list[str]]
) -> None:
    """Tables; the key and ``indexed_fields`` get value columns placed before the (long) document.

    ``compound_indexes`` are indexed together with the key appended (those naming a path without a column are
    skipped).
    """
    for statement in _SCHEMA:
        conn.execute(statement)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'docs'").fetchone():
        return
    paths = [p for p in dict.fromkeys([key, *indexed_fields]) if json_path(p) and p != "_id"]
    cols = {p: f"c{i}" for i, p in enumerate(paths)}
    conn.execute(
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, k TEXT UNIQUE, "
        + "".join(f"{c}, " for c in cols.values())
        + "doc TEXT NOT NULL)"
    )
    conn.executemany("INSERT INTO columns (path, col) VALUES (?, ?)", list(cols.items()))
    for path, col in cols.items():
        conn.execute(f"CREATE INDEX IF NOT EXISTS {index_name(path)} ON docs ({col})")
    for fields in compound_indexes:
        if all(f in cols for f in fields):
            names = ", ".join(cols[f] for f in dict.fromkeys([*fields, key]))
            conn.execute(f"CREATE INDEX IF NOT EXISTS {index_name('__'.join(fields))} ON docs ({names})")


def stored_columns(conn: sqlite3.Connection) -> dict[str, str]:
    """Dotted path → name of its value column."""
    return dict(conn.execute("SELECT path, col FROM columns").fetchall())


def stored_kinds(conn: sqlite3.Connection) -> dict[str, int]:
    """Dotted path → bits of the awkward value kinds it has held (:mod:`electrodb.store.sqlite_query`)."""
    return dict(conn.execute("SELECT path, kinds FROM paths").fetchall())


def add_value_column(conn: sqlite3.Connection, key: str) -> str:
    """The value column of dotted path ``key``, appended and filled from the documents if it has none yet.

    Call inside a write :func:`transaction`.
    """
    columns = stored_columns(conn)
    col = columns.get(key)
    if col is None:
        col = f"c{len(columns)}"
        while col in columns.values():
            col += "_"
        conn.execute(f"ALTER TABLE docs ADD COLUMN {col}")
        conn.execute(f"UPDATE docs SET {col} = json_extract(doc, {json_path(key)})")
        conn.execute("INSERT INTO columns (path, col) VALUES (?, ?)", (key, col))
    return col
