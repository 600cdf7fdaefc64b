"""Documents as JSON text and Mongo criteria as SQL, for :class:`electrodb.store.sqlite.SQLiteStore`.

Codec
-----
Documents are stored as compact JSON. Values JSON cannot hold are tagged one-key objects, decoded back on read:
``{"$date": "2024-05-01T12:00:00.123"}`` (datetimes: converted to UTC, naive, truncated to milliseconds, as
MongoDB stores them; the fixed-width ISO text sorts chronologically), ``{"$nan": 1}``, ``{"$inf": ±1}``,
``{"$binary": base64}``, ``{"$oid": hex}``.

Kinds
-----
Every write records, per dotted path, which *awkward* kinds of value it has ever held (:data:`ARRAY`,
:data:`OBJECT`, :data:`BOOL`, :data:`DATE`, :data:`NONFINITE`, :data:`OTHER`; elements of an array are recorded at
the array's path). The translator uses them to emit SQL that is exact for the values really present: a path
that never held an array is compared with ``json_extract`` (index-backed), a path of arrays of scalars with
``json_each`` (Mongo's "array contains" semantics), anything else is left to the exact Python filter.

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

import base64
import json
import math
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from bson import ObjectId
from mongomock.collection import _combine_projection_spec, _project_by_spec

try:
    import orjson as _orjson  # a maggma dependency; 5-8x faster than json for documents
except ImportError:  # pragma: no cover
    _orjson = None

__all__ = [
    "ARRAY",
    "BOOL",
    "DATE",
    "NONFINITE",
    "OBJECT",
    "OTHER",
    "StoreCollection",
    "Translator",
    "decode",
    "doc_kinds",
    "encode",
    "json_path",
    "key_text",
    "project",
]

ARRAY, OBJECT, BOOL, DATE, NONFINITE, OTHER, BIGINT = 1, 2, 4, 8, 16, 32, 64
_TAGGED = DATE | NONFINITE | OTHER  # stored as one-key objects
_NOT_PLAIN = ARRAY | OBJECT | BOOL | _TAGGED | BIGINT
_DATE_LO, _DATE_HI = '{"$date":"', '{"$date":"~'


# ------------------------------------------------------------------------------------------ codec


def format_datetime(value: datetime) -> str:
    """Fixed-width UTC ISO text with milliseconds (``0001-01-01T00:00:00.000``), as MongoDB keeps datetimes."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    v = value
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond // 1000:03d}"
    )


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$date": format_datetime(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"$binary": base64.b64encode(bytes(value)).decode("ascii")}
    if type(value).__name__ == "ObjectId":
        return {"$oid": str(value)}
    if hasattr(value, "tolist"):  # numpy scalars/arrays that escaped jsanitize
        return value.tolist()
    if hasattr(value, "isoformat"):  # date, time
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"cannot store a value of type {type(value).__name__}")


def _hook(obj: dict) -> Any:
    if len(obj) == 1:
        ((k, v),) = obj.items()
        if k == "$date":
            return datetime.fromisoformat(v)
        if k == "$nan":
            return math.nan
        if k == "$inf":
            return math.inf if v > 0 else -math.inf
        if k == "$binary":
            return base64.b64decode(v)
        if k == "$oid":
            return ObjectId(v)
    return obj


def _replace_nonfinite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$nan": 1} if math.isnan(value) else {"$inf": 1 if value > 0 else -1}
    if isinstance(value, dict):
        return {k: _replace_nonfinite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_nonfinite(v) for v in value]
    return value


def encode(doc: Any, nonfinite: bool = False) -> str:
    """Compact JSON text of ``doc`` (tagged datetimes/NaN/inf/bytes); ``nonfinite``: ``doc`` holds NaN or inf."""
    if nonfinite:
        doc = _replace_nonfinite(doc)
    return json.dumps(doc, default=_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def decode(text: str) -> Any:
    return json.loads(text, object_hook=_hook)


def _scalar_bits(value: Any) -> int:
    t = type(value)
    if t is str or value is None:
        return 0
    if t is int:
        return 0 if -(2**63) <= value < 2**63 else BIGINT  # SQLite and orjson read these as floats
    if t is float:
        return 0 if math.isfinite(value) else NONFINITE
    if t is bool:
        return BOOL
    if t is dict:
        return OBJECT
    if t is list or t is tuple:
        return ARRAY
    if isinstance(value, datetime):
        return DATE
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0 if math.isfinite(value) else NONFINITE
    return OTHER


def doc_kinds(doc: dict) -> tuple[dict[str, int], bool]:
    """``({path: awkward-kind bits}, holds NaN/inf)`` of a document; paths with plain values are not listed.

    Elements of arrays count at the array's path, fields of documents inside arrays at the dotted path
    (``runs.t``), as Mongo addresses them.
    """
    out: dict[str, int] = {}

    def mark(path: str, bits: int) -> None:
        if bits:
            out[path] = out.get(path, 0) | bits

    def elements(path: str, items: list | tuple) -> int:
        if items and all(type(e) is float for e in items):
            return 0 if all(math.isfinite(e) for e in items) else NONFINITE
        bits = 0
        for element in items:
            b = _scalar_bits(element)
            if b & OBJECT:
                visit(path + ".", element)
            elif b & ARRAY:
                b |= elements(path, element)
            bits |= b
        return bits

    def visit(prefix: str, obj: dict) -> None:
        for key, value in obj.items():
            path = f"{prefix}{key}"
            bits = _scalar_bits(value)
            if bits & OBJECT:
                visit(path + ".", value)
            elif bits & ARRAY:
                bits |= elements(path, value)
            mark(path, bits)

    visit("", doc)
    return out, any(bits & NONFINITE for bits in out.values())


def tagged_paths(kinds: dict[str, int]) -> list[list[str]] | None:
    """Split paths that may hold tagged values (datetimes, NaN/inf, bytes, ObjectIds), for :func:`decode_fast`;
    ``None`` if some document holds an integer beyond 64 bits (only :func:`decode` reads those exactly)."""
    if any(bits & BIGINT for bits in kinds.values()):
        return None
    return [p.split(".") for p, bits in kinds.items() if bits & _TAGGED]


def _untag(value: Any) -> Any:
    if type(value) is dict:
        return _hook(value)
    if type(value) is list:
        return [_untag(v) for v in value]
    return value


def _fix(obj: Any, parts: list[str]) -> None:
    if type(obj) is list:
        for element in obj:
            _fix(element, parts)
        return
    if type(obj) is not dict or parts[0] not in obj:
        return
    if len(parts) == 1:
        obj[parts[0]] = _untag(obj[parts[0]])
    else:
        _fix(obj[parts[0]], parts[1:])


def decode_fast(text: str, tagged: list[list[str]] | None) -> Any:
    """:func:`decode` with orjson, restoring tagged values only at ``tagged`` paths (from the recorded kinds)."""
    if _orjson is None or tagged is None:
        return decode(text)
    try:
        doc = _orjson.loads(text)
    except _orjson.JSONDecodeError:  # pragma: no cover
        return decode(text)
    for parts in tagged:
        _fix(doc, parts)
    return doc


def _key_value(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # Mongo: {k: 1} matches 1.0
    return value


def key_text(fields: list[str], doc: dict) -> str:
    """Canonical text of the upsert key ``fields`` of ``doc`` (raises ``KeyError`` for a missing key field)."""
    return encode([[f, _key_value(doc[f])] for f in sorted(fields)])


# ------------------------------------------------------------------------------------------ SQL


def json_path(path: str) -> str | None:
    """SQL literal of the JSON path of a dotted Mongo path, or ``None`` if it cannot be expressed exactly."""
    parts = path.split(".")
    for part in parts:
        if not part or part.isdigit() or part.startswith("$") or any(c in part for c in "\"'\\\x00"):
            return None
    return "'$" + "".join(f'."{p}"' for p in parts) + "'"


def _is_number(value: Any) -> bool:
    """A finite number SQLite holds exactly (not a bool, not an integer beyond 64 bits)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) if isinstance(value, float) else -(2**63) <= value < 2**63


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
            if _is_number(v):
                return self._each(p, "value = ? AND type IN ('integer', 'real')"), [v], True
            if isinstance(v, str):
                return self._each(p, "value = ? AND type = 'text'"), [v], True
            return None
        x = self.x(p)
        if v is None:
            return f"{x} IS NULL", [], True
        if isinstance(v, bool):
            return f"json_type(doc, {p}) = '{'true' if v else 'false'}'", [], True
        if _is_number(v):
            guard = f" AND json_type(doc, {p}) IN ('integer', 'real')" if bits & BOOL else ""
            return f"{x} = ?{guard}", [v], True
        if isinstance(v, str):
            guard = f" AND json_type(doc, {p}) = 'text'" if bits & (OBJECT | _TAGGED) else ""
            return f"{x} = ?{guard}", [v], True
        if isinstance(v, datetime):
            return f"{x} = ?", [encode(v)], True
        return None

    def _in(self, p: str, bits: int, values: list | tuple) -> Clause | None:
        if not values:
            return "0", [], True
        plain = not (bits & _NOT_PLAIN)
        grouped = [v for v in values if (isinstance(v, str) or _is_number(v))] if plain else []
        conds, params = [], []
        if grouped:
            conds.append(f"{self.x(p)} IN ({', '.join('?' * len(grouped))})")
            params += grouped
        for v in values:
            if grouped and (isinstance(v, str) or _is_number(v)):
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
            if _is_number(v):
                return self._each(p, f"value {op} ? AND type IN ('integer', 'real')"), [v], True
            if isinstance(v, str):
                return self._each(p, f"value {op} ? AND type = 'text'"), [v], True
            return None
        x = self.x(p)
        if _is_number(v):
            bracket = f" AND {x} < ''" if op[0] == ">" else ""
            guard = f" AND json_type(doc, {p}) IN ('integer', 'real')" if bits & BOOL else ""
            return f"{x} {op} ?{bracket}{guard}", [v], True
        if isinstance(v, str):
            bracket = f" AND {x} >= ''" if op[0] == "<" else ""
            guard = f" AND json_type(doc, {p}) = 'text'" if bits & (OBJECT | DATE) else ""
            return f"{x} {op} ?{bracket}{guard}", [v], True
        if isinstance(v, datetime):
            return f"{x} {op} ? AND {x} >= ? AND {x} < ?", [encode(v), _DATE_LO, _DATE_HI], True
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
        return p if p is not None and not (bits & _NOT_PLAIN) else None


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
    return encode(_replace_nonfinite(value))


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
