"""The API's read-only stores: connection on first use, paging, counts and distinct done by the database."""

from __future__ import annotations

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
    """The API's read-only stores. Both backends are thread-safe and page, sort, count and distinct in the
    database itself (MongoDB indexes; the embedded SQLite store's value columns and indexes)."""

    def __init__(self, settings: ElectroDBSettings) -> None:
        self.settings = settings
        self.stores = get_stores(settings, read_only=True)
        self.embedded = settings.embedded
        self._connect_lock = threading.Lock()
        self._connected: set[str] = set()

    def store(self, name: str) -> Any:
        store = self.stores[name]
        if name not in self._connected:
            with self._connect_lock:
                if name not in self._connected:
                    store.connect()
                    self._connected.add(name)
        return store

    def page(
        self, name: str, criteria: dict, properties: dict | None, sort: dict[str, int], skip: int, limit: int
    ) -> tuple[list[dict], int]:
        """Documents ``skip``…``skip+limit`` in ``sort`` order and the total count matching ``criteria``."""
        properties, paths = q.split_projection(properties)  # dotted paths are applied here, alike everywhere
        store = self.store(name)
        total = store.count(criteria)
        if limit == 0:
            return [], total
        docs = list(store.query(criteria, properties=properties, sort=sort, skip=skip, limit=limit))
        return [q.apply_subpaths(d, paths) for d in docs], total

    def one(self, name: str, criteria: dict, properties: dict | None = None) -> dict | None:
        properties, paths = q.split_projection(properties)
        doc = self.store(name).query_one(criteria, properties=properties)
        return None if doc is None else q.apply_subpaths(doc, paths)

    def find(
        self, name: str, criteria: dict, properties: dict | None = None, sort: dict | None = None, limit: int = 0
    ) -> list[dict]:
        return list(self.store(name).query(criteria, properties=properties, sort=sort, limit=limit))

    def distinct(self, name: str, fields: tuple[str, ...]) -> dict[str, list[Any]]:
        """Distinct non-null scalar values of each field (array fields contribute their elements)."""
        store = self.store(name)
        out = {}
        for f in fields:
            values = store.distinct(f)
            out[f] = [v for v in values if v is not None and not isinstance(v, dict | list)]
        return out

    def counts(self) -> dict[str, int]:
        return {name: self.store(name).count() for name in SERVED}

    def close(self) -> None:
        with self._connect_lock:
            self.stores.close()
            self._connected.clear()
