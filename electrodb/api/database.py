"""The API's read-only stores: one lock around every store call on the embedded backend, paging and distinct."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from electrodb import query as q
from electrodb.settings import ElectroDBSettings
from electrodb.stores import get_stores

__all__ = ["SERVED", "Database"]

SERVED = (
    "electrolytes",
    "structure",
    "transport",
    "pairing",
    "kinetics",
    "trajectories",
    "models",
    "campaigns",
    "thermo",
    "solvation",
)


class Database:
    """The API's read-only stores with a lock around every store call on the embedded backend."""

    def __init__(self, settings: ElectroDBSettings) -> None:
        self.settings = settings
        self.stores = get_stores(settings, read_only=True)
        self.embedded = settings.embedded
        self.lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.embedded else contextlib.nullcontext()
        )
        self._connected: set[str] = set()

    def store(self, name: str) -> Any:
        store = self.stores[name]
        if name not in self._connected:
            store.connect()
            self._connected.add(name)
        return store

    def page(
        self, name: str, criteria: dict, properties: dict | None, sort: dict[str, int], skip: int, limit: int
    ) -> tuple[list[dict], int]:
        """Documents ``skip``…``skip+limit`` in ``sort`` order and the total count matching ``criteria``.

        MongoDB: ``count_documents`` plus an index-backed ``find`` with sort/skip/limit. Embedded: one scan
        gives both, keeping only the best ``skip + limit`` documents in a heap; the ordering is done here
        because montydb orders wrongly by three or more keys (it forgets the first key's groups).
        """
        properties, paths = q.split_projection(properties)  # dotted paths are applied here, alike everywhere
        with self.lock:
            store = self.store(name)
            if not self.embedded:
                total = store.count(criteria)
                if limit == 0:
                    return [], total
                docs = list(store.query(criteria, properties=properties, sort=sort, skip=skip, limit=limit))
                return [q.apply_subpaths(d, paths) for d in docs], total
            added: list[str] = []
            if properties and any(properties.values()):  # inclusion projection: sort keys must come along
                added = [k for k in sort if k not in properties]
                properties = {**properties, **{k: 1 for k in added}}
            docs, total = q.sorted_page(store.query(criteria, properties=properties), sort, skip, limit)
            for key in added:
                for doc in docs:
                    doc.pop(key, None)
            return [q.apply_subpaths(d, paths) for d in docs], total

    def one(self, name: str, criteria: dict, properties: dict | None = None) -> dict | None:
        properties, paths = q.split_projection(properties)
        with self.lock:
            doc = self.store(name).query_one(criteria, properties=properties)
        return None if doc is None else q.apply_subpaths(doc, paths)

    def find(
        self, name: str, criteria: dict, properties: dict | None = None, sort: dict | None = None, limit: int = 0
    ) -> list[dict]:
        with self.lock:
            return list(self.store(name).query(criteria, properties=properties, sort=sort, limit=limit))

    def distinct(self, name: str, fields: tuple[str, ...]) -> dict[str, list[Any]]:
        """Distinct non-null values of each field (array fields contribute their elements).

        MongoDB: one (index-backed) ``distinct`` per field. Embedded: one scan for all fields, because montydb
        scans per ``distinct`` call and compares every value with every distinct value found so far.
        """
        with self.lock:
            store = self.store(name)
            if not self.embedded:
                return {f: [v for v in store.distinct(f) if v is not None] for f in fields}
            found: dict[str, set[Any]] = {f: set() for f in fields}
            for doc in store.query({}, properties={f: 1 for f in fields}):
                for f in fields:
                    value = doc.get(f)
                    for v in value if isinstance(value, list) else [value]:
                        if v is not None and not isinstance(v, (dict, list)):
                            found[f].add(v)
            return {f: list(values) for f, values in found.items()}

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {name: self.store(name).count() for name in SERVED}

    def close(self) -> None:
        with self.lock:
            self.stores.close()
            self._connected.clear()
