"""JSON answers of the API: safe (no NaN, no server paths, no ``_id``) and fast (orjson straight to bytes).

:func:`jsonable` defines what is served: ``_id`` dropped at every level, NaN/inf → ``null``, datetimes as ISO 8601
(naive = UTC), numpy → Python, absolute paths reduced to their file name. :func:`dumps` gives exactly that JSON
value, without walking the document in Python when it does not have to: the document is rendered with orjson
(which already writes NaN/inf as ``null`` and naive datetimes as UTC ISO 8601), and only a rendering that
contains ``/`` or ``\\`` (a string that may be a path) or an ``_id`` key, or that orjson refuses (numpy, bytes,
ObjectIds, integers beyond 64 bits, non-string keys, subclasses), goes through :func:`jsonable` first. Documents
read from the stores are plain JSON values and datetimes, so a page of summaries is one orjson call per
document.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import date, datetime, timezone
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import orjson
from fastapi.responses import JSONResponse

__all__ = ["SafeJSONResponse", "dumps", "dumps_list", "jsonable", "strip_path"]

_PATH_KEYS = re.compile(r"(^|_)(path|file|dir|directory|filename|cwd)$")
_ABS_PATH = re.compile(r"^(?:/|~/|[A-Za-z]:[\\/]|file://)")
_EMBEDDED_PATH = re.compile(r"(?<![\w:/.~-])(?:/[^\s/\\'\"(),;:]+){2,}/?")
_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
_SUSPECT = (b"/", b"\\", b'"_id":')


def strip_path(value: str) -> str:
    """A file-system path reduced to its last component (``/srv/models/m.model`` → ``m.model``)."""
    text = value.removeprefix("file://")
    name = (PureWindowsPath(text) if re.match(r"^[A-Za-z]:\\", text) else PurePosixPath(text)).name
    return name or text.strip("/\\") or ""


def _clean_str(key: str, value: str) -> str:
    """``value`` with server paths reduced to file names (unchanged unless it holds ``/`` or ``\\``)."""
    if (_PATH_KEYS.search(key) and ("/" in value or "\\" in value)) or _ABS_PATH.match(value):
        return strip_path(value)
    if "/" in value:  # absolute paths inside messages ("failed reading /srv/x/y.traj")
        return _EMBEDDED_PATH.sub(lambda m: strip_path(m.group(0).rstrip("/")), value)
    return value


def jsonable(value: Any, key: str = "") -> Any:
    """JSON-safe copy: ``_id`` dropped, NaN/inf → ``None``, datetimes as ISO 8601 (naive = UTC), numpy → Python,
    absolute paths reduced to file names."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, str(k)) for k, v in value.items() if k != "_id"}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, key) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _clean_str(key, value)
    if value is None or isinstance(value, (int, bool)):
        return value
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist(), key)
    return str(value)


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _slow(value: Any) -> bytes:
    return json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def dumps(value: Any) -> bytes:
    """UTF-8 JSON of ``jsonable(value)`` (see the module docstring: orjson unless the value needs cleaning)."""
    try:
        out = orjson.dumps(value, default=_refuse, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _slow(value)
    if any(s in out for s in _SUSPECT):
        return _slow(value)
    return out


def dumps_list(docs: Iterable[Any]) -> bytes:
    """JSON array of ``jsonable(doc)`` for each document, rendered one by one (one odd document costs only
    itself the slow path)."""
    return b"[" + b",".join(dumps(d) for d in docs) + b"]"


class SafeJSONResponse(JSONResponse):
    """JSON response that never fails on NaN, datetimes or ObjectIds, and never leaks server paths."""

    def render(self, content: Any) -> bytes:
        if isinstance(content, dict) and next(iter(content), None) == "data" and isinstance(content["data"], list):
            # list answers: documents rendered one by one, then the envelope around them
            rest = dumps({k: v for k, v in content.items() if k != "data"})
            return b'{"data":' + dumps_list(content["data"]) + (b"," + rest[1:] if rest != b"{}" else b"}")
        return dumps(content)
