"""Mongo semantics in Python for what :class:`~electrodb.store.sqlite.SQLiteStore` cannot express exactly in SQL.

The store's SQL condition is always a superset of the Mongo matches (:class:`electrodb.store.sqlite_query.Translator`);
when it is not exact, these functions filter the candidate rows ``(id, JSON)`` with mongomock's implementation of
Mongo matching, and sort, page and collect distinct values as mongomock does, so that results never depend on which
path was taken.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mongomock import helpers
from mongomock.filtering import NOTHING, filter_applies, iter_key_candidates, resolve_sort_key

from electrodb.store.sqlite_codec import decode, decode_fast

__all__ = ["distinct_values", "filter_sort_page", "first_matching_id", "matching_ids", "sort_items"]


def sort_items(sort: dict | None) -> list[tuple[str, int]]:
    """``(field, direction)`` pairs of a sort (maggma ``Sort`` members or ±1)."""
    return [(k, int(getattr(v, "value", v))) for k, v in (sort or {}).items()]


def filter_sort_page(
    rows: Iterable[tuple[int, str]],
    tagged: list[list[str]],
    criteria: dict | None,
    sort: dict | None,
    skip: int,
    limit: int,
) -> list[dict]:
    """The documents of the candidate ``rows`` matching ``criteria``, sorted, from ``skip``, at most ``limit`` (0: all).

    Documents get ``_id`` = the row id; ``tagged`` are the paths that may hold tagged values (for the decoder).
    """
    docs = []
    for rid, text in rows:
        doc = decode_fast(text, tagged)
        doc["_id"] = rid
        if filter_applies(criteria or {}, doc):
            docs.append(doc)
    for field, direction in reversed(sort_items(sort)):  # stable passes, as mongomock sorts
        docs.sort(key=lambda d, f=field: resolve_sort_key(f, d), reverse=direction < 0)
    end = skip + limit if limit else None
    return docs[skip:end]


def distinct_values(docs: Iterable[dict], field: str) -> list:
    """The distinct values at ``field`` of ``docs`` (array elements counted one by one), as mongomock gives them."""
    unique: set[Any] = set()
    for doc in docs:
        for values in iter_key_candidates(field, doc):
            if values is NOTHING:
                continue
            for value in values if isinstance(values, (list, tuple)) else [values]:
                unique.add(helpers.hashdict(value) if isinstance(value, dict) else value)
    return [dict(v) if isinstance(v, helpers.hashdict) else v for v in unique]


def first_matching_id(rows: Iterable[tuple[int, str]], criteria: dict) -> int | None:
    """The id of the first candidate row whose document matches ``criteria``, or None."""
    for rid, text in rows:
        if filter_applies(criteria, decode(text)):
            return int(rid)
    return None


def matching_ids(rows: Iterable[tuple[int, str]], criteria: dict) -> list[int]:
    """The ids of the candidate rows whose documents (with ``_id`` = the row id) match ``criteria``."""
    ids = []
    for rid, text in rows:
        doc = decode(text)
        doc["_id"] = rid
        if filter_applies(criteria, doc):
            ids.append(rid)
    return ids
