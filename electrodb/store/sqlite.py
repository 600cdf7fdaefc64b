"""A maggma ``Store`` over SQLite: indexed, safe with several writer processes, no server.

One SQLite file per collection, ``<database_path>/<database_name>/<collection>.sqlite3``, in WAL mode (readers
never block the writer nor each other); its tables, value columns and indexes are described in
:mod:`electrodb.store.sqlite_schema`.

Writes run inside ``BEGIN IMMEDIATE`` transactions: concurrent writers wait for the write lock (busy timeout
``busy_timeout_s``) instead of interleaving. An upsert is ``INSERT … ON CONFLICT(k) DO UPDATE`` on the canonical
text of the key fields, so two processes upserting the same keys can never leave duplicates. If a collection is
written with several different key specifications, each upsert looks up the first document matching its key
criteria inside the same transaction (Mongo's ``replace_one(…, upsert=True)``).

Reads run in one snapshot (``BEGIN`` … ``COMMIT``): the criteria are translated to SQL
(:class:`electrodb.store.sqlite_query.Translator`) over the value columns or ``json_extract``; sort, skip, limit and
count run in SQL when the sort is expressible (a page reads its ids first, then only its documents). Whatever
the translator cannot express exactly is filtered, sorted and projected in Python with mongomock's Mongo
semantics (:mod:`electrodb.store.sqlite_fallback`), so results never depend on which path was taken. Documents
come back with ``_id`` = the row id.
Connections are per thread (and per process after a fork), so one store may serve many threads.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maggma.core import Sort, Store, StoreError
from monty.json import jsanitize
from pydash import get, has, set_

from electrodb.store.errors import named_sqlite_errors
from electrodb.store.sqlite_codec import decode_fast, doc_kinds, encode, json_path, key_text, tagged_paths
from electrodb.store.sqlite_fallback import distinct_values, filter_sort_page, first_matching_id, matching_ids
from electrodb.store.sqlite_query import StoreCollection, Translator, column_value, project
from electrodb.store.sqlite_schema import (
    KINDS_UPSERT,
    SUFFIX,
    add_value_column,
    index_name,
    open_connection,
    stored_columns,
    stored_kinds,
    transaction,
)

__all__ = ["SQLiteStore", "project"]

log = logging.getLogger(__name__)
_VERSION_SERIAL = itertools.count(1)


def _props(properties: dict | list | None) -> dict | None:
    if properties is None:
        return None
    if isinstance(properties, (list, tuple)):
        return {p: 1 for p in properties}
    return dict(properties)


class SQLiteStore(Store):
    """maggma ``Store`` of one collection in its own SQLite file (see the module docstring).

    A file that is empty (0 bytes) or damaged raises :class:`~electrodb.store.errors.CollectionFileError`
    naming it, on whichever use meets the damage; a missing file is created, unless ``create_missing`` is
    false (then it is an error too).
    """

    #: Create the collection file when it does not exist (readers that must not create anything set False).
    create_missing: bool = True

    def __init__(
        self,
        collection_name: str,
        database_path: str,
        database_name: str = "electrodb",
        busy_timeout_s: float = 300.0,
        indexed_fields: list[str] | None = None,
        compound_indexes: list[list[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Parameters
        ----------
        collection_name
            Collection (file ``<database_path>/<database_name>/<collection_name>.sqlite3``).
        database_path
            Folder of the database (absolute, or it lands inside job folders).
        database_name
            Subfolder per database.
        busy_timeout_s
            How long a writer waits for another process's write transaction (s) before failing.
        indexed_fields
            Paths whose values are also kept in columns of their own (with the key's), so that filters and
            sorts on them read no JSON; fixed when the file is created (later ones: :meth:`ensure_index`).
        compound_indexes
            Lists of ``indexed_fields`` indexed together, the key appended (covering: a count or a sorted page
            filtered on their leading fields reads only the index), made when the file is created.
        **kwargs
            ``key``, ``last_updated_field``, ``validator`` … of ``maggma.core.Store``.
        """
        self.collection_name = collection_name
        self.database_path = str(database_path)
        self.database_name = database_name
        self.busy_timeout_s = busy_timeout_s
        self.indexed_fields = list(indexed_fields or [])
        self.compound_indexes = [list(c) for c in compound_indexes or []]
        self.kwargs = kwargs
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._connected = self._ever_connected = False
        self._indexes: set[str] = set()
        self._pid = os.getpid()
        self._version_lock = threading.Lock()
        self._version_conn: tuple[int, int, sqlite3.Connection] | None = None  # (pid, serial, connection)
        super().__init__(**kwargs)

    # ---------------------------------------------------------------- connection

    @property
    def path(self) -> Path:
        return Path(self.database_path) / self.database_name / f"{self.collection_name}{SUFFIX}"

    @property
    def name(self) -> str:
        return f"sqlite://{self.path}"

    def connect(self, force_reset: bool = False) -> None:
        if force_reset:
            self.close()
        if not self._connected:
            self._connected = self._ever_connected = True
            self._conn()  # create the file and tables now (errors surface at connect)

    def close(self) -> None:
        """Close this store's connections. A closed store reopens on its next use, as montydb's did (maggma
        builders close their stores in ``finalize``; callers read them afterwards)."""
        with self._conns_lock:
            conns, self._conns = self._conns, []
            self._local = threading.local()
            self._connected = False
        with self._version_lock:
            if self._version_conn is not None and self._version_conn[0] == os.getpid():
                conns.append(self._version_conn[2])
            self._version_conn = None
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _conn(self) -> sqlite3.Connection:
        if not self._connected:
            if self._ever_connected:
                self._connected = True
            else:
                raise StoreError(f"connect the store {self.name} before using it")
        if self._pid != os.getpid():  # forked: SQLite connections must not cross a fork; open new ones
            self._pid, self._local, self._conns = os.getpid(), threading.local(), []
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @named_sqlite_errors
    def _open(self) -> sqlite3.Connection:
        return open_connection(
            self.path,
            self.busy_timeout_s,
            self.key,
            self.indexed_fields,
            self.compound_indexes,
            create=self.create_missing,
        )

    @named_sqlite_errors
    def data_version(self) -> tuple[int, int, int, int]:
        """A token that changes whenever the collection may have changed (cheap: a few microseconds).

        ``(connection serial, device, inode, PRAGMA data_version)``: SQLite's ``data_version`` of one connection
        kept for this purpose changes whenever any *other* connection, of this or another process, commits to
        the file (including the WAL); the inode changes if the file is replaced. The serial distinguishes the
        counters of successive connections (after :meth:`close` or a fork). Read caches (the API's response
        cache) compare tokens taken before their read with the current one.
        """
        self._conn()  # connected (or reconnecting) as any read would be
        with self._version_lock:
            state = self._version_conn
            if state is None or state[0] != os.getpid():
                state = (os.getpid(), next(_VERSION_SERIAL), self._open())
                self._version_conn = state
            stat = os.stat(self.path)
            version = state[2].execute("PRAGMA data_version").fetchone()[0]
        return state[1], stat.st_dev, stat.st_ino, int(version)

    @property
    def _collection(self) -> StoreCollection:
        self._conn()
        return StoreCollection(self)

    @staticmethod
    def _translator(conn: sqlite3.Connection) -> Translator:
        return Translator(stored_kinds(conn), stored_columns(conn))

    # ---------------------------------------------------------------- reading

    @named_sqlite_errors
    def _rows(
        self, criteria: dict | None, fields: dict | None, sort: dict | None, skip: int, limit: int
    ) -> tuple[list[tuple[int, str]], bool, list[list[str]]]:
        """Rows ``(id, JSON)``; ``True`` if they are final (filtered/sorted/paged in SQL), else candidates; the
        paths that may hold tagged values."""
        conn = self._conn()
        with transaction(conn, "DEFERRED"):
            tr = self._translator(conn)
            tagged = tagged_paths(tr.kinds)
            where, params, exact = tr.where(criteria)
            order = tr.order_by(sort) if sort else None
            final = exact and (order is not None or not sort)
            column = self._column(fields, sort, final)
            if not final:
                return (
                    conn.execute(f"SELECT id, {column} FROM docs WHERE {where} ORDER BY id", params).fetchall(),
                    False,
                    tagged,
                )
            order = order or ("id" if skip or limit else None)
            sql = f"SELECT id FROM docs WHERE {where}" + (f" ORDER BY {order}" if order else "")
            if skip or limit:  # page the ids first: only the page's documents are read and sorted
                sql += " LIMIT ? OFFSET ?"
                params = [*params, limit if limit else -1, skip]
                ids = [r[0] for r in conn.execute(sql, params)]
                found = dict(
                    conn.execute(
                        f"SELECT id, {column} FROM docs WHERE id IN (SELECT value FROM json_each(?))", (encode(ids),)
                    ).fetchall()
                )
                return [(i, found[i]) for i in ids], True, tagged
            sql = f"SELECT id, {column} FROM docs WHERE {where}" + (f" ORDER BY {order}" if order else "")
            return conn.execute(sql, params).fetchall(), True, tagged

    @staticmethod
    def _column(fields: dict | None, sort: dict | None, final: bool) -> str:
        """SQL expression of the document: heavy top-level fields excluded by the projection stay in SQLite.

        ``json_remove`` copies number literals verbatim; SQLite's re-rendering of a number taken out of a
        document (``json_each``/``json_group_object``) keeps only 15 digits, so inclusion projections are made
        in Python from the whole document.
        """
        if not final or not fields:
            return "doc"
        body = {k: v for k, v in fields.items() if k != "_id"}
        if body and not any(body.values()):
            paths = [p for p in (json_path(f) for f in body if "." not in f) if p]
            if paths:
                return f"json_remove(doc, {', '.join(paths)})"
        return "doc"

    def query(  # type: ignore[override]
        self,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
        hint: Any = None,
        **kwargs: Any,
    ) -> Iterator[dict]:
        fields = _props(properties)
        rows, final, tagged = self._rows(criteria, fields, sort, skip, limit)
        if final:
            for rid, text in rows:
                doc = decode_fast(text, tagged)
                doc["_id"] = rid
                yield project(doc, fields)
            return
        for doc in filter_sort_page(rows, tagged, criteria, sort, skip, limit):
            yield project(doc, fields)

    @named_sqlite_errors
    def page_ids(
        self, criteria: dict | None, sort: dict | None, skip: int = 0, limit: int = 0
    ) -> tuple[list[int], int] | None:
        """``(row ids of the page, count of all matches)`` read in one snapshot, or ``None`` when the criteria or
        the sort cannot be done exactly in SQL (then :meth:`query` and :meth:`count` filter in Python).

        The ids are those :meth:`query` with the same arguments would return (same order, ties by row id);
        :meth:`query_ids` reads their documents.
        """
        conn = self._conn()
        with transaction(conn, "DEFERRED"):
            tr = self._translator(conn)
            where, params, exact = tr.where(criteria)
            order = tr.order_by(sort) if sort else "id"
            if not exact or order is None:
                return None
            total = int(conn.execute(f"SELECT COUNT(*) FROM docs WHERE {where}", params).fetchone()[0])
            sql = f"SELECT id FROM docs WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?"
            ids = [r[0] for r in conn.execute(sql, [*params, limit if limit else -1, skip])]
        return ids, total

    @named_sqlite_errors
    def query_ids(self, ids: list[int], properties: dict | list | None = None) -> Iterator[dict]:
        """Documents of the row ids ``ids`` (``_id``), in that order, projected; ids no longer stored are skipped."""
        fields = _props(properties)
        conn = self._conn()
        with transaction(conn, "DEFERRED"):
            tagged = tagged_paths(stored_kinds(conn))
            column = self._column(fields, None, True)
            sql = f"SELECT id, {column} FROM docs WHERE id IN (SELECT value FROM json_each(?))"
            found = dict(conn.execute(sql, (encode(list(ids)),)).fetchall())
        for rid in ids:
            if rid in found:
                doc = decode_fast(found[rid], tagged)
                doc["_id"] = rid
                yield project(doc, fields)

    @named_sqlite_errors
    def count(self, criteria: dict | None = None, hint: Any = None) -> int:
        conn = self._conn()
        with transaction(conn, "DEFERRED"):
            where, params, exact = self._translator(conn).where(criteria)
            if exact:
                return int(conn.execute(f"SELECT COUNT(*) FROM docs WHERE {where}", params).fetchone()[0])
        return sum(1 for _ in self.query(criteria, properties={"_id": 1}))

    @named_sqlite_errors
    def distinct(self, field: str, criteria: dict | None = None, all_exist: bool = False) -> list:
        conn = self._conn()
        with transaction(conn, "DEFERRED"):
            tr = self._translator(conn)
            where, params, exact = tr.where(criteria)
            p = tr.plain_path(field)
            if exact and p is not None:
                x = tr.x(p)
                values = [
                    r[0]
                    for r in conn.execute(f"SELECT DISTINCT {x} FROM docs WHERE ({where}) AND {x} IS NOT NULL", params)
                ]
                null = f"SELECT 1 FROM docs WHERE ({where}) AND {x} IS NULL AND json_type(doc, {p}) = 'null' LIMIT 1"
                return values + [None] * (conn.execute(null, params).fetchone() is not None)
        return distinct_values(self.query(criteria, properties=[field]), field)

    def groupby(
        self,
        keys: list[str] | str,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> Iterator[tuple[dict, list[dict]]]:
        """As ``MemoryStore.groupby``: documents having every key, grouped by the keys' values."""
        keys = keys if isinstance(keys, list) else [keys]
        props = list(_props(properties) or {})
        data = [
            d for d in self.query(criteria, properties=keys + props if props else None) if all(has(d, k) for k in keys)
        ]

        def grouping(doc: dict) -> tuple:
            return tuple(get(doc, k) for k in keys)

        for vals, group in itertools.groupby(sorted(data, key=grouping), key=grouping):
            out: dict = {}
            for k, v in zip(keys, vals, strict=True):
                set_(out, k, v)
            yield out, list(group)

    # ---------------------------------------------------------------- writing

    @named_sqlite_errors
    def update(self, docs: list[dict] | dict, key: list | str | None = None) -> None:
        if not isinstance(docs, list):
            docs = [docs]
        key = key or self.key
        fields = list(key) if isinstance(key, (list, tuple)) else [key]
        spec = encode(sorted(fields))
        rows, kinds = [], {}
        for d in docs:
            d = jsanitize(d, allow_bson=True, recursive_msonable=True)
            if self.validator and not self.validator.is_valid(d):
                if self.validator.strict:
                    raise ValueError(self.validator.validation_errors(d))
                self.logger.error(self.validator.validation_errors(d))
                continue
            d.pop("_id", None)
            doc_bits, nonfinite = doc_kinds(d)
            for path, bits in doc_bits.items():
                kinds[path] = kinds.get(path, 0) | bits
            rows.append((key_text(fields, d), encode(d, nonfinite), d))
        if not rows:
            return
        conn = self._conn()
        with transaction(conn):
            specs = {r[0] for r in conn.execute("SELECT spec FROM keyspecs")}
            if spec not in specs:
                conn.execute("INSERT INTO keyspecs (spec) VALUES (?)", (spec,))
            conn.executemany(KINDS_UPSERT, list(kinds.items()))
            columns = stored_columns(conn)
            names = "".join(f", {c}" for c in columns.values())
            marks = ", ?" * len(columns)
            values = [[column_value(d, path) for path in columns] for _, _, d in rows]
            if specs <= {spec}:
                sets = "".join(f", {c} = excluded.{c}" for c in columns.values())
                conn.executemany(
                    f"INSERT INTO docs (k, doc{names}) VALUES (?, ?{marks}) "
                    f"ON CONFLICT (k) DO UPDATE SET doc = excluded.doc{sets}",
                    [(k, text, *vals) for (k, text, _), vals in zip(rows, values, strict=True)],
                )
                return
            tr = self._translator(conn)
            sets = "".join(f", {c} = ?" for c in columns.values())
            insert = f"INSERT INTO docs (k, doc{names}) VALUES (?, ?{marks})"
            for (k, text, d), vals in zip(rows, values, strict=True):
                # several key specifications in use: replace the first document matching this one's key
                rid = self._first_id(conn, tr, {f: d[f] for f in fields})
                if rid is None:
                    if conn.execute(f"{insert} ON CONFLICT (k) DO NOTHING", (k, text, *vals)).rowcount == 0:
                        conn.execute(insert, (None, text, *vals))
                    continue
                try:
                    conn.execute(f"UPDATE docs SET doc = ?{sets}, k = ? WHERE id = ?", (text, *vals, k, rid))
                except sqlite3.IntegrityError:
                    conn.execute(f"UPDATE docs SET doc = ?{sets} WHERE id = ?", (text, *vals, rid))

    @staticmethod
    def _first_id(conn: sqlite3.Connection, tr: Translator, criteria: dict) -> int | None:
        where, params, exact = tr.where(criteria)
        if exact:
            row = conn.execute(f"SELECT id FROM docs WHERE {where} ORDER BY id LIMIT 1", params).fetchone()
            return None if row is None else int(row[0])
        return first_matching_id(conn.execute(f"SELECT id, doc FROM docs WHERE {where} ORDER BY id", params), criteria)

    @named_sqlite_errors
    def remove_docs(self, criteria: dict) -> None:
        conn = self._conn()
        with transaction(conn):
            where, params, exact = self._translator(conn).where(criteria)
            if exact:
                conn.execute(f"DELETE FROM docs WHERE {where}", params)
                return
            rows = conn.execute(f"SELECT id, doc FROM docs WHERE {where}", params).fetchall()
            conn.executemany("DELETE FROM docs WHERE id = ?", [(rid,) for rid in matching_ids(rows, criteria)])

    @named_sqlite_errors
    def ensure_index(self, key: str, unique: bool = False) -> bool:
        """Index on the value at ``key`` (used by equality, ``$in`` and range filters and by sorts).

        A path without a value column gets one (appended, filled from the documents) before it is indexed.
        """
        if key == "_id":
            return True
        p = json_path(key)
        if p is None:
            return False
        name = index_name(key, unique)
        if name in self._indexes:
            return True
        conn = self._conn()
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone() is None:
            try:
                with transaction(conn):
                    col = add_value_column(conn, key)
                    conn.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {name} ON docs ({col})")
            except sqlite3.IntegrityError:
                return False
        self._indexes.add(name)
        return True

    @named_sqlite_errors
    def indexes(self) -> list[str]:
        """Names of the expression indexes of this collection."""
        rows = self._conn().execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_%'")
        return sorted(r[0] for r in rows)

    def explain(self, criteria: dict | None = None, sort: dict | None = None) -> list[str]:
        """SQLite's ``EXPLAIN QUERY PLAN`` lines of a query (to check which index it uses)."""
        conn = self._conn()
        tr = self._translator(conn)
        where, params, _ = tr.where(criteria)
        order = tr.order_by(sort) if sort else None
        sql = f"SELECT id, doc FROM docs WHERE {where}" + (f" ORDER BY {order}" if order else "")
        return [str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]

    # ---------------------------------------------------------------- identity

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SQLiteStore):
            return False
        return (self.path, self.last_updated_field) == (other.path, other.last_updated_field)

    def __hash__(self) -> int:
        return hash((self.name, self.last_updated_field))

    def __getstate__(self) -> dict:
        return self.as_dict()
