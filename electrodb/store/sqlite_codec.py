"""Documents as JSON text for :class:`electrodb.store.sqlite.SQLiteStore`: the codec and the kinds of value each
path has held.

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
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timezone
from typing import Any

from bson import ObjectId

try:
    import orjson as _orjson  # a maggma dependency; 5-8x faster than json for documents
except ImportError:  # pragma: no cover
    _orjson = None


__all__ = [
    "ARRAY",
    "BIGINT",
    "BOOL",
    "DATE",
    "DATE_HI",
    "DATE_LO",
    "NONFINITE",
    "NOT_PLAIN",
    "OBJECT",
    "OTHER",
    "TAGGED",
    "decode",
    "decode_fast",
    "doc_kinds",
    "encode",
    "format_datetime",
    "is_number",
    "json_path",
    "key_text",
    "replace_nonfinite",
    "tagged_paths",
]

ARRAY, OBJECT, BOOL, DATE, NONFINITE, OTHER, BIGINT = 1, 2, 4, 8, 16, 32, 64
TAGGED = DATE | NONFINITE | OTHER  # stored as one-key objects
NOT_PLAIN = ARRAY | OBJECT | BOOL | TAGGED | BIGINT
DATE_LO, DATE_HI = '{"$date":"', '{"$date":"~'


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


def replace_nonfinite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$nan": 1} if math.isnan(value) else {"$inf": 1 if value > 0 else -1}
    if isinstance(value, dict):
        return {k: replace_nonfinite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [replace_nonfinite(v) for v in value]
    return value


def encode(doc: Any, nonfinite: bool = False) -> str:
    """Compact JSON text of ``doc`` (tagged datetimes/NaN/inf/bytes); ``nonfinite``: ``doc`` holds NaN or inf."""
    if nonfinite:
        doc = replace_nonfinite(doc)
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
    return [p.split(".") for p, bits in kinds.items() if bits & TAGGED]


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


def is_number(value: Any) -> bool:
    """A finite number SQLite holds exactly (not a bool, not an integer beyond 64 bits)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) if isinstance(value, float) else -(2**63) <= value < 2**63
