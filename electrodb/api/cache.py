"""Response cache of the API's list routes: whole answers kept as bytes, valid while their collection is unchanged.

A read model in front of the app (an ASGI middleware, outside gzip): ``GET /electrolytes?...`` answers are
kept as the exact bytes and headers sent, keyed by the route, the decoded query parameters in canonical order
and whether the client accepts gzip. Each answer is stored with the *version token* of its collection taken
before the app read the collection; it is served again only while the collection's current token is the same.

Tokens come from the stores (:meth:`electrodb.store.sqlite.SQLiteStore.data_version`: SQLite's
``PRAGMA data_version`` on one dedicated connection, which changes whenever any other connection, in any
process, commits to the collection's file, with the file's inode). A builder's write is therefore seen by the
next request: its token differs, and the answer is recomputed. Since the token is read *before* the app's own
read, a stored answer is never older than its token says. Stores without tokens (MongoDB, whose writes this
process cannot observe cheaply) are never cached. Only ``200`` answers up to ``max_bytes / 8`` are kept; the
least recently used go first when ``max_bytes`` would be exceeded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["BytesLRU", "CacheStats", "ResponseCache"]

Scope = dict[str, Any]
Message = dict[str, Any]


@dataclass
class CacheStats:
    """Counters of a :class:`ResponseCache` (hits, misses, stored answers and their bytes)."""

    hits: int = 0
    misses: int = 0
    entries: int = 0
    bytes: int = 0


@dataclass
class _Entry:
    token: Hashable
    start: Message
    body: bytes


class ResponseCache:
    """ASGI middleware caching the ``200`` answers of ``routes`` (path → collection name).

    Parameters
    ----------
    app
        The ASGI app to wrap.
    routes
        Exact request paths cached, each with the collection its answer depends on (``{"/electrolytes":
        "electrolytes"}``).
    version
        ``version(collection)`` → hashable token that changes whenever the collection changes, or ``None`` if
        that cannot be known (the request is then passed through, uncached). Called in the event loop: it must
        be fast and non-blocking (microseconds).
    max_bytes
        Most bytes of answers kept (bodies); ``0`` disables the cache.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        routes: dict[str, str],
        version: Callable[[str], Hashable | None],
        max_bytes: int = 64 * 2**20,
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self.version = version
        self.max_bytes = max(0, int(max_bytes))
        self.stats = CacheStats()
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()

    def clear(self) -> None:
        """Forget every stored answer."""
        self._entries.clear()
        self.stats.entries = self.stats.bytes = 0

    @staticmethod
    def _key(scope: Scope) -> tuple:
        query = scope.get("query_string", b"").decode("latin-1")
        params = tuple(sorted(parse_qsl(query, keep_blank_values=True)))
        gzip = any(k == b"accept-encoding" and b"gzip" in v.lower() for k, v in scope.get("headers", ()))
        return scope["path"], params, gzip

    async def __call__(self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        name = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if name is None or not self.max_bytes or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        token = self.version(name)
        if token is None:
            await self.app(scope, receive, send)
            return
        key = self._key(scope)
        entry = self._entries.get(key)
        if entry is not None and entry.token == token:
            self._entries.move_to_end(key)
            self.stats.hits += 1
            await send(dict(entry.start))
            await send({"type": "http.response.body", "body": entry.body, "more_body": False})
            return
        self.stats.misses += 1
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        keep = True

        async def capture(message: Message) -> None:
            nonlocal start, size, keep
            if message["type"] == "http.response.start":
                start = message
                keep = message.get("status") == 200
            elif message["type"] == "http.response.body" and keep:
                body = message.get("body", b"")
                size += len(body)
                keep = size <= self.max_bytes // 8
                if not keep:
                    chunks.clear()
                else:
                    chunks.append(body)
                if keep and not message.get("more_body", False):
                    self._store(key, _Entry(token, start or {}, b"".join(chunks)))
            await send(message)

        await self.app(scope, receive, capture)

    def _store(self, key: tuple, entry: _Entry) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.stats.bytes -= len(old.body)
        self._entries[key] = entry
        self.stats.bytes += len(entry.body)
        while self.stats.bytes > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self.stats.bytes -= len(dropped.body)
        self.stats.entries = len(self._entries)


class BytesLRU:
    """Thread-safe least-recently-used map of keys to values, bounded by the total size of the values (their
    ``len`` for bytes, or the ``size`` given to :meth:`put`).

    Parameters
    ----------
    max_bytes
        Most bytes kept (sum of the values' lengths); ``0`` keeps nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.stats = CacheStats()
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.stats.misses += 1
                return None
            self._items.move_to_end(key)
            self.stats.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any, size: int | None = None) -> None:
        """Keep ``value`` (``size`` bytes, default ``len(value)``) unless it is over an eighth of the bound."""
        size = len(value) if size is None else int(size)
        if size > self.max_bytes // 8:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self.stats.bytes += size - (old[1] if old is not None else 0)
            self._items[key] = (value, size)
            while self.stats.bytes > self.max_bytes and self._items:
                _, (_, dropped) = self._items.popitem(last=False)
                self.stats.bytes -= dropped
            self.stats.entries = len(self._items)
