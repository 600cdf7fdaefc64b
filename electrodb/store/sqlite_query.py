"""Mongo criteria as SQL, projections and the collection handle of :class:`electrodb.store.sqlite.SQLiteStore`
(documents are stored by :mod:`electrodb.store.sqlite_codec`).

Translation
-----------
:class:`Translator` turns criteria into a SQL condition that is always a *superset* of the Mongo matches, plus a
flag saying whether it is exact. Exact: equality, ``$eq``, ``$ne``, ``$in``, ``$nin``, ``$gt``, ``$gte``, ``$lt``,
``$lte``, ``$exists``, ``$and``, ``$or``, ``$nor`` on scalar values (numbers, strings, booleans, ``None``,
datetimes) of paths without arrays above the last component. Everything else (``$regex``, ``$elemMatch``,
``$size``, literal documents or arrays, paths through arrays of documents, …) is dropped from the SQL and the
caller filters the candidates with mongomock's implementation of Mongo matching.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from mongomock.collection import _combine_projection_spec, _project_by_spec

try:
    import orjson as _orjson  # a maggma dependency; 5-8x faster than json for documents
except ImportError:  # pragma: no cover
    _orjson = None


from electrodb.store.sqlite_codec import (
    ARRAY,
    BIGINT,
    BOOL,
    DATE,
    DATE_HI,
    DATE_LO,
    NONFINITE,
    NOT_PLAIN,
    OBJECT,
    OTHER,
    TAGGED,
    encode,
    is_number,
    json_path,
    replace_nonfinite,
)

__all__ = ["StoreCollection", "Translator", "column_value", "project"]

_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
Clause = tuple[str, list[Any], bool]  # (SQL superset condition, parameters, exact)
_TRUE: Clause = ("1", [], False)


class Translator:
    """Mongo criteria → SQL over a table ``docs(id, k, doc)``, given the recorded kinds of each path."""

    def __init__(self, kinds: dict[str, int], columns: dict[str, str] | None = None) -> None:
        self.kinds = kinds
        self.columns = {json_path(path): col for path, col in (columns or {}).items()}

    def x(self, p: str) -> str:
        """SQL value at JSON path ``p``: its cached column if it has one (same value), else ``json_extract``."""
        return self.columns.get(p) or f"json_extract(doc, {p})"

    # ---------------------------------------------------------------- paths

    def path(self, path: str) -> tuple[str | None, int]:
        """``(JSON path literal or None if untranslatable, kind bits)``; ``None`` also when an array lies above."""
        literal = json_path(path)
        if literal is None:
            return None, 0
        parts = path.split(".")
        for i in range(1, len(parts)):
            if self.kinds.get(".".join(parts[:i]), 0) & ARRAY:
                return None, 0
        return literal, self.kinds.get(path, 0)

    # ---------------------------------------------------------------- criteria

    def where(self, criteria: dict | None) -> Clause:
        if not criteria:
            return "1", [], True
        if not isinstance(criteria, dict):
            return _TRUE
        return self._conj([self._clause(k, v) for k, v in criteria.items()])

    @staticmethod
    def _conj(clauses: list[Clause]) -> Clause:
        parts = [c for c in clauses if c[0] != "1"]
        exact = all(c[2] for c in clauses)
        if not parts:
            return "1", [], exact
        return " AND ".join(f"({c[0]})" for c in parts), [p for c in parts for p in c[1]], exact

    def _clause(self, key: str, value: Any) -> Clause:
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
                return _TRUE
            subs = [self.where(v) for v in value]
            if key == "$and":
                return self._conj(subs)
            exact = all(s[2] for s in subs)
            sql = " OR ".join(f"COALESCE(({s[0]}), 0)" for s in subs)
            params = [p for s in subs for p in s[1]]
            if key == "$or":
                return sql, params, exact
            return (f"NOT ({sql})", params, True) if exact else _TRUE
        if key.startswith("$") or key == "_id":
            return _TRUE
        literal, bits = self.path(key)
        if literal is None:
            return _TRUE
        if isinstance(value, dict) and value and all(str(k).startswith("$") for k in value):
            return self._conj([self._op(literal, bits, op, arg) for op, arg in value.items()])
        return self._op(literal, bits, "$eq", value)

    # ---------------------------------------------------------------- operators

    def _op(self, p: str, bits: int, op: str, arg: Any) -> Clause:
        if op == "$exists":
            return f"json_type(doc, {p}) IS {'NOT ' if arg else ''}NULL", [], True
        if op in ("$eq", "$ne"):
            clause = self._eq(p, bits, arg)
        elif op in ("$in", "$nin"):
            clause = self._in(p, bits, arg) if isinstance(arg, (list, tuple)) else None
        elif op in _OPS:
            clause = self._cmp(p, bits, _OPS[op], arg)
        else:
            clause = None
        if clause is None:
            return _TRUE
        if op in ("$ne", "$nin"):
            return f"NOT COALESCE(({clause[0]}), 0)", clause[1], True
        return clause

    def _each(self, p: str, cond: str) -> str:
        return f"EXISTS (SELECT 1 FROM json_each(doc, {p}) WHERE {cond})"

    def _eq(self, p: str, bits: int, v: Any) -> Clause | None:
        """Exact condition for ``{path: v}`` (NULL counts as false), or ``None``."""
        if bits & BIGINT and isinstance(v, (int, float)):
            return None
        if bits & ARRAY:
            if v is None:
                null_element = self._each(p, "type = 'null'")
                return f"json_type(doc, {p}) IS NULL OR {null_element}", [], True
            if isinstance(v, bool):
                return self._each(p, f"type = '{'true' if v else 'false'}'"), [], True
            if bits & NONFINITE and isinstance(v, float):
                return None
            if is_number(v):
                return self._each(p, "value = ? AND type IN ('integer', 'real')"), [v], True
            if isinstance(v, str):
                return self._each(p, "value = ? AND type = 'text'"), [v], True
            return None
        x = self.x(p)
        if v is None:
            return f"{x} IS NULL", [], True
        if isinstance(v, bool):
            return f"json_type(doc, {p}) = '{'true' if v else 'false'}'", [], True
        if is_number(v):
            guard = f" AND json_type(doc, {p}) IN ('integer', 'real')" if bits & BOOL else ""
            return f"{x} = ?{guard}", [v], True
        if isinstance(v, str):
            guard = f" AND json_type(doc, {p}) = 'text'" if bits & (OBJECT | TAGGED) else ""
            return f"{x} = ?{guard}", [v], True
        if isinstance(v, datetime):
            return f"{x} = ?", [encode(v)], True
        return None

    def _in(self, p: str, bits: int, values: list | tuple) -> Clause | None:
        if not values:
            return "0", [], True
        plain = not (bits & NOT_PLAIN)
        grouped = [v for v in values if (isinstance(v, str) or is_number(v))] if plain else []
        conds, params = [], []
        if grouped:
            conds.append(f"{self.x(p)} IN ({', '.join('?' * len(grouped))})")
            params += grouped
        for v in values:
            if grouped and (isinstance(v, str) or is_number(v)):
                continue
            clause = self._eq(p, bits, v)
            if clause is None:
                return None
            conds.append(clause[0])
            params += clause[1]
        if len(conds) == 1:
            return conds[0], params, True
        return " OR ".join(f"COALESCE(({c}), 0)" for c in conds), params, True

    def _cmp(self, p: str, bits: int, op: str, v: Any) -> Clause | None:
        if bits & (NONFINITE | OTHER | BIGINT):
            return None
        if bits & ARRAY:
            if is_number(v):
                return self._each(p, f"value {op} ? AND type IN ('integer', 'real')"), [v], True
            if isinstance(v, str):
                return self._each(p, f"value {op} ? AND type = 'text'"), [v], True
            return None
        x = self.x(p)
        if is_number(v):
            bracket = f" AND {x} < ''" if op[0] == ">" else ""
            guard = f" AND json_type(doc, {p}) IN ('integer', 'real')" if bits & BOOL else ""
            return f"{x} {op} ?{bracket}{guard}", [v], True
        if isinstance(v, str):
            bracket = f" AND {x} >= ''" if op[0] == "<" else ""
            guard = f" AND json_type(doc, {p}) = 'text'" if bits & (OBJECT | DATE) else ""
            return f"{x} {op} ?{bracket}{guard}", [v], True
        if isinstance(v, datetime):
            return f"{x} {op} ? AND {x} >= ? AND {x} < ?", [encode(v), DATE_LO, DATE_HI], True
        return None

    # ---------------------------------------------------------------- sort

    def order_by(self, sort: dict[str, Any] | None) -> str | None:
        """``ORDER BY`` terms in Mongo's cross-type order (ties by insertion), or ``None`` if not expressible."""
        terms = []
        for field, direction in (sort or {}).items():
            d = int(getattr(direction, "value", direction))
            desc = " DESC" if d < 0 else ""
            if field == "_id":
                terms.append(f"id{desc}")
                continue
            p, bits = self.path(field)
            if p is None or bits & (ARRAY | OBJECT | NONFINITE | OTHER | BIGINT):
                return None
            if bits & (BOOL | DATE):  # numbers/strings < booleans < dates (a DATE path has no plain objects)
                terms.append(
                    f"CASE json_type(doc, {p}) WHEN 'true' THEN 1 WHEN 'false' THEN 1 WHEN 'object' THEN 2 "
                    f"ELSE 0 END{desc}"
                )
            terms.append(f"{self.x(p)}{desc}")
        terms.append("id")
        return ", ".join(terms)

    def plain_path(self, field: str) -> str | None:
        """JSON path literal of ``field`` if every stored value there is a plain scalar (for SQL ``DISTINCT``)."""
        p, bits = self.path(field)
        return p if p is not None and not (bits & NOT_PLAIN) else None


def column_value(doc: dict, path: str) -> Any:
    """What ``json_extract(doc, path)`` returns for the stored form of ``doc`` (the value cached in a column)."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else float(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return encode(replace_nonfinite(value))


# ------------------------------------------------------------------------------------------ projection


def _drop_scalars_under(doc: Any, spec: Any) -> Any:
    """Where a projection path continues below an array, MongoDB keeps only the array's documents.

    (``{"a": ["x", "y"]}`` projected on ``a.0`` gives ``{"a": []}``; mongomock raises on the plain strings.)
    """
    if not isinstance(doc, dict) or not isinstance(spec, dict):
        return doc
    out = dict(doc)
    for key, sub in spec.items():
        if not isinstance(sub, dict) or key not in out:
            continue
        value = out[key]
        if isinstance(value, list):
            out[key] = [_drop_scalars_under(v, sub) for v in value if isinstance(v, dict | list)]
            out[key] = [v for v in out[key] if isinstance(v, dict)]
        elif isinstance(value, dict):
            out[key] = _drop_scalars_under(value, sub)
        else:  # a scalar where the path goes deeper: MongoDB leaves the field out
            del out[key]
    return out


def project(doc: dict, fields: dict | None) -> dict:
    """Mongo projection of ``doc`` (inclusion or exclusion, dotted paths, ``_id`` kept unless ``_id: 0``)."""
    if not fields:
        return doc
    fields = dict(fields)
    id_value = fields.pop("_id", 1)
    if not fields:
        out = {} if id_value else {k: v for k, v in doc.items() if k != "_id"}
    else:
        if len({bool(v) for v in fields.values()}) > 1:
            raise ValueError("a projection cannot mix included and excluded fields (other than _id)")
        spec = _combine_projection_spec(fields)
        out = _project_by_spec(_drop_scalars_under(doc, spec), spec, bool(next(iter(fields.values()))), dict)
    if id_value and "_id" in doc:
        out["_id"] = doc["_id"]
    else:
        out.pop("_id", None)
    return out


class StoreCollection:
    """The few pymongo-collection methods callers use on ``store._collection`` (bulk fills in tests/benchmarks)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def insert_many(self, docs: list[dict]) -> None:
        """Upsert on the store's key (a key stays unique, unlike MongoDB's ``insert_many``)."""
        self._store.update(list(docs))

    def count_documents(self, filter: dict | None = None) -> int:
        return self._store.count(filter)

    def find(self, filter: dict | None = None, projection: Any = None, **kwargs: Any) -> Iterator[dict]:
        return self._store.query(filter, properties=projection, **kwargs)

    def delete_many(self, filter: dict) -> None:
        self._store.remove_docs(filter)
