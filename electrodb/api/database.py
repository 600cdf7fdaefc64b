"""The API's read-only stores: connection on first use, paging, counts and distinct done by the database.

Summaries are served under the one contract for ``insufficient``
(:func:`~electrodb.documents.properties.withhold_insufficient`): a property whose status is ``insufficient`` is
served with a null value and error, even from a database built before the summary builder wrote them so. A
projection that names ``P`` or ``P_err`` reads ``P_status`` too, to apply it, and serves only what it named.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from array import array
from collections.abc import Callable, Hashable
from typing import Any

from fastapi import HTTPException

from electrodb.api.cache import BytesLRU
from electrodb.api.jsonout import dumps
from electrodb.documents.properties import WITHHELD_SUFFIXES, withhold_insufficient
from electrodb.documents.registry import SUMMARY_PROPERTIES
from electrodb.settings import ElectroDBSettings
from electrodb.store import query as q
from electrodb.store.errors import StoreUnavailableError
from electrodb.store.stores import get_stores

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
    "committees",
    "audits",
    "thermo",
    "solvation",
)


def _no_id(doc: dict) -> dict:
    """The document without the store's ``_id`` (never served; its absence keeps rendering on the fast path)."""
    doc.pop("_id", None)
    return doc


#: ``P`` and ``P_err`` (…) → ``P_status``: what a summary projection must read to withhold insufficient values.
_STATUS_OF = {
    field: f"{prop}_status" for prop in SUMMARY_PROPERTIES for field in (prop, *(prop + s for s in WITHHELD_SUFFIXES))
}


def _read_projection(name: str, properties: dict | None) -> tuple[dict | None, tuple[str, ...]]:
    """The projection to read (on summaries, with the status of every value it names) and the fields it added."""
    if name != "electrolytes" or not properties or not all(properties.values()):
        return properties, ()
    added = tuple(
        dict.fromkeys(_STATUS_OF[f] for f in properties if f in _STATUS_OF and _STATUS_OF[f] not in properties)
    )
    return ({**properties, **dict.fromkeys(added, 1)}, added) if added else (properties, ())


def _served(name: str, doc: dict, added: tuple[str, ...]) -> dict:
    """A document as served: a summary's insufficient values withheld, the fields read only for that dropped."""
    if name == "electrolytes":
        withhold_insufficient(doc)
        for field in added:
            doc.pop(field, None)
    return doc


def _unavailable_is_503(method: Callable[..., Any]) -> Callable[..., Any]:
    """A collection or database that cannot be read answers 503 naming it (never a 500 or a server path)."""

    @functools.wraps(method)
    def wrapper(self: Database, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except StoreUnavailableError as exc:
            raise HTTPException(503, f"database unavailable: {exc.public}") from exc

    return wrapper


class Database:
    """The API's read-only stores. Both backends are thread-safe and page, sort, count and distinct in the
    database itself (MongoDB indexes; the embedded SQLite store's value columns and indexes)."""

    def __init__(self, settings: ElectroDBSettings, doc_cache_bytes: int = 0) -> None:
        """
        Parameters
        ----------
        settings
            Database settings.
        doc_cache_bytes
            Bound of the rendered-document cache of :meth:`page_json` (bytes; ``0``: none).
        """
        self.settings = settings
        self.doc_cache = BytesLRU(doc_cache_bytes)
        self._unkept: set[tuple] = set()  # (criteria, sort) of match sets too large for the cache
        self.stores = get_stores(settings, read_only=True, require_database=True)
        self.embedded = settings.embedded
        self._connect_lock = threading.Lock()
        self._connected: set[str] = set()

    @_unavailable_is_503
    def store(self, name: str) -> Any:
        store = self.stores[name]
        if name not in self._connected:
            with self._connect_lock:
                if name not in self._connected:
                    self.stores.ping()  # a MongoDB server that does not answer: one line, within its timeout
                    store.connect()
                    self._connected.add(name)
        return store

    @_unavailable_is_503
    def page(
        self, name: str, criteria: dict, properties: dict | None, sort: dict[str, int], skip: int, limit: int
    ) -> tuple[list[dict], int]:
        """Documents ``skip``…``skip+limit`` in ``sort`` order and the total count matching ``criteria``."""
        properties, added = _read_projection(name, properties)
        properties, paths = q.split_projection(properties)  # dotted paths are applied here, alike everywhere
        store = self.store(name)
        total = store.count(criteria)
        if limit == 0:
            return [], total
        docs = store.query(criteria, properties=properties, sort=sort, skip=skip, limit=limit)
        return [_served(name, q.apply_subpaths(_no_id(d), paths), added) for d in docs], total

    @_unavailable_is_503
    def page_json(
        self,
        name: str,
        criteria: dict,
        properties: dict | None,
        sort: dict[str, int],
        skip: int,
        limit: int,
        cached_only: bool = False,
    ) -> tuple[list[bytes], int] | None:
        """:meth:`page` with each document already rendered as JSON (:func:`electrodb.api.jsonout.dumps`).

        On a store with version tokens and SQL paging (the embedded one) this is a read model kept per version
        of the collection (``doc_cache``; the token is read before anything else): the row ids of all matches
        of ``(criteria, sort)``, read in one snapshot (a page is then a slice, the count a length; match sets
        over an eighth of the cache are paged in SQL instead), and each document rendered once, under
        ``(collection, token, projection, row id)``. Paging thus reads and renders only documents not seen
        since the collection last changed.

        With ``cached_only`` the answer comes from the read model alone (the match list and every document of
        the page already cached; no database read), or is ``None``: what the API answers in its event loop
        before handing anything slower to a worker thread.
        """
        store = self.store(name)
        token = self.version(name) if self.doc_cache.max_bytes and limit else None
        if cached_only:
            return None if token is None else self._cached_page(name, token, criteria, properties, sort, skip, limit)
        matches = self._matches(store, name, token, criteria, sort) if token is not None else None
        if matches is None:
            got = store.page_ids(criteria, sort, skip, limit) if token is not None else None
            if got is None:
                docs, total = self.page(name, criteria, properties, sort, skip, limit)
                return [dumps(d) for d in docs], total
            ids, total = got
        else:
            ids, total = matches[skip : skip + limit].tolist(), len(matches)
        prefix = self._doc_prefix(name, token, properties)
        rendered = {i: self.doc_cache.get((*prefix, i)) for i in ids}
        missing = [i for i, text in rendered.items() if text is None]
        if missing:
            read, added = _read_projection(name, properties)
            top, paths = q.split_projection(read)
            for doc in store.query_ids(missing, top):
                rid = doc.pop("_id")
                rendered[rid] = text = dumps(_served(name, q.apply_subpaths(doc, paths), added))
                self.doc_cache.put((*prefix, rid), text)
        return [t for t in (rendered[i] for i in ids) if t is not None], total

    def _cached_page(
        self,
        name: str,
        token: Hashable,
        criteria: dict,
        properties: dict | None,
        sort: dict[str, int],
        skip: int,
        limit: int,
    ) -> tuple[list[bytes], int] | None:
        """The page from the read model's caches only (see :meth:`page_json`), or None if any part is missing."""
        matches = self.doc_cache.get(self._matches_key(name, token, criteria, sort))
        if matches is None:
            return None
        prefix = self._doc_prefix(name, token, properties)
        rendered = []
        for i in matches[skip : skip + limit].tolist():
            text = self.doc_cache.get((*prefix, i))
            if text is None:
                return None
            rendered.append(text)
        return rendered, len(matches)

    @staticmethod
    def _doc_prefix(name: str, token: Hashable, properties: dict | None) -> tuple:
        """Cache key of a rendered document, less its row id: collection, version token, projection."""
        return name, token, None if properties is None else tuple(sorted(properties.items()))

    @staticmethod
    def _matches_key(name: str, token: Hashable, criteria: dict, sort: dict[str, int]) -> tuple:
        return (name, token, "ids", json.dumps(criteria, sort_keys=True, default=str), tuple(sort.items()))

    def _matches(self, store: Any, name: str, token: Hashable, criteria: dict, sort: dict[str, int]) -> array | None:
        """Row ids of every match of ``criteria`` in ``sort`` order (one snapshot), kept per collection version,
        so that a page is a slice and the count a length; ``None`` if the store cannot page in SQL."""
        page_ids = getattr(store, "page_ids", None)
        if page_ids is None:
            return None
        key = self._matches_key(name, token, criteria, sort)
        if key in self._unkept:
            return None
        matches = self.doc_cache.get(key)
        if matches is None:
            got = page_ids(criteria, sort)
            if got is None:
                return None
            matches = array("q", got[0])
            size = matches.itemsize * len(matches) + 100
            if size > self.doc_cache.max_bytes // 8:  # too many to keep: page this query in SQL from now on
                if len(self._unkept) > 1000:
                    self._unkept.clear()
                self._unkept.add(key)
            self.doc_cache.put(key, matches, size=size)
        return matches

    @_unavailable_is_503
    def one(self, name: str, criteria: dict, properties: dict | None = None) -> dict | None:
        properties, added = _read_projection(name, properties)
        properties, paths = q.split_projection(properties)
        doc = self.store(name).query_one(criteria, properties=properties)
        return None if doc is None else _served(name, q.apply_subpaths(_no_id(doc), paths), added)

    @_unavailable_is_503
    def find(
        self, name: str, criteria: dict, properties: dict | None = None, sort: dict | None = None, limit: int = 0
    ) -> list[dict]:
        properties, added = _read_projection(name, properties)
        docs = self.store(name).query(criteria, properties=properties, sort=sort, limit=limit)
        return [_served(name, _no_id(d), added) for d in docs]

    def version(self, name: str) -> Hashable | None:
        """Token that changes whenever collection ``name`` changes (any process), or ``None`` if the store
        cannot tell (MongoDB, in-memory stores): what the response cache checks (:mod:`electrodb.api.cache`)."""
        try:
            store = self.store(name)
        except HTTPException:  # the collection cannot be opened: no cache; the read answers 503
            return None
        version = getattr(store, "data_version", None)
        if version is None:
            return None
        try:
            return id(store), version()
        except (OSError, sqlite3.Error, StoreUnavailableError):  # file gone or unreadable: no cache; the read says
            return None

    @_unavailable_is_503
    def distinct(self, name: str, fields: tuple[str, ...], criteria: dict | None = None) -> dict[str, list[Any]]:
        """Distinct non-null scalar values of each field (array fields contribute their elements) among the
        documents matching ``criteria`` (all when None)."""
        store = self.store(name)
        out = {}
        for f in fields:
            values = store.distinct(f, criteria) if criteria else store.distinct(f)
            out[f] = [v for v in values if v is not None and not isinstance(v, dict | list)]
        return out

    @_unavailable_is_503
    def counts(self) -> dict[str, int]:
        return {name: self.store(name).count() for name in SERVED}

    def close(self) -> None:
        with self._connect_lock:
            self.stores.close()
            self._connected.clear()
