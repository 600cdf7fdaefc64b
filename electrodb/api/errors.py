"""Readable messages for refused request parameters: the parameter, the bad value and the close matches.

A parameter's OpenAPI pattern enumerates what it accepts (``_fields`` lists the ~200 fields of a summary), so
pydantic's own message for a mismatch is the whole regex: hundreds of characters that say nothing a person can
use. Every patterned parameter is registered here (:func:`register`) with what it accepts, by
:mod:`electrodb.api.params` as it declares it; :func:`explain` turns a mismatch back into one line
("``_fields``: unknown field 'molalty'; did you mean 'molality'?", close matches by :mod:`difflib`), and
:func:`validation_message` does so for every error of a ``RequestValidationError``. :func:`unknown_names` words
the message for parameters a route does not take.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Accepts", "explain", "register", "suggest", "unknown_names", "validation_message"]

#: At most this many accepted values are listed in a message (longer lists: ``detail.allowed``).
LIST_IN_MESSAGE = 12
_VALUE_CHARS = 60


@dataclass(frozen=True)
class Accepts:
    """What one patterned parameter accepts.

    Attributes
    ----------
    what
        What one item is, in words (``"field"``, ``"sort field"``, ``"status"``, ``"salt formula …"``).
    values
        The accepted items when they are enumerated (close matches are suggested among them); empty: free form.
    max_items
        Most items of a comma-separated list (``1``: a single value).
    signed
        Items may start with ``-`` (descending sort).
    subpaths
        Items may be dotted paths below an accepted value (``provenance.model_id``).
    """

    what: str
    values: tuple[str, ...] = ()
    max_items: int = 1
    signed: bool = False
    subpaths: bool = False


_REGISTRY: dict[tuple[str, str], Accepts] = {}


def register(name: str, pattern: str, accepts: Accepts) -> str:
    """Record what parameter ``name`` declared with ``pattern`` accepts; return ``pattern`` (to declare it)."""
    _REGISTRY[(name, pattern)] = accepts
    return pattern


def suggest(word: str, values: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` close matches of ``word`` among ``values`` (case-insensitive first, then :mod:`difflib`)."""
    values = list(values)
    same_case = [v for v in values if v.lower() == word.strip().lower()]
    by_lower = {v.lower(): v for v in values}
    close = difflib.get_close_matches(word.strip().lower(), list(by_lower), n=n, cutoff=0.6)
    return list(dict.fromkeys([*same_case, *(by_lower[c] for c in close)]))[:n]


def _quoted(values: Sequence[str]) -> str:
    items = [repr(v) for v in values]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _did_you_mean(word: str, accepts: Accepts) -> str:
    matches = suggest(word, accepts.values)
    if matches:
        return f"did you mean {_quoted(matches)}?"
    if len(accepts.values) <= LIST_IN_MESSAGE:
        return "one of " + ", ".join(accepts.values)
    return f"{len(accepts.values)} {accepts.what}s are known: see detail.allowed or /openapi.json"


def _item_problem(item: str, accepts: Accepts) -> tuple[str, str] | None:
    """``(why, hint)`` for one item of a list that ``accepts`` refuses, or ``None`` if it looks acceptable."""
    if not item:
        return "empty item in the list", "two commas in a row, or a comma at an end"
    name = item[1:] if accepts.signed and item.startswith("-") else item
    if not accepts.values:
        return None
    top, dot, rest = name.partition(".") if accepts.subpaths else (name, "", "")
    if top not in accepts.values:
        return f"unknown {accepts.what} {top[:_VALUE_CHARS]!r}", _did_you_mean(top, accepts)
    if dot and not all(part and part.replace("_", "a").replace("-", "a").isalnum() for part in rest.split(".")):
        return f"bad sub-path {name[:_VALUE_CHARS]!r}", "up to 4 dotted names of letters, digits, _ and -"
    if dot and rest.count(".") > 3:
        return f"sub-path {name[:_VALUE_CHARS]!r} is too deep", "at most 4 levels below the field"
    return None


def explain(name: str, value: Any, pattern: str | None) -> tuple[str, dict[str, Any]]:
    """Why a ``value`` of parameter ``name`` does not match its ``pattern``, in one readable line, and details.

    Parameters
    ----------
    name
        The parameter.
    value
        What the request gave.
    pattern
        The pattern it failed (the key, with ``name``, of what :func:`register` recorded).

    Returns
    -------
    tuple
        ``(reason, detail)``: the reason does not repeat the parameter's name; ``detail`` has ``value`` and,
        where they apply, ``unknown`` (the refused items), ``suggestions`` (item → close matches) and
        ``allowed`` (the enumerated values).
    """
    text = str(value)
    shown = text if len(text) <= _VALUE_CHARS else text[:_VALUE_CHARS] + "…"
    accepts = _REGISTRY.get((name, pattern or ""))
    if accepts is None:
        return f"{shown!r} does not have the accepted form (see /openapi.json)", {"value": shown}
    items = text.split(",") if accepts.max_items > 1 else [text]
    detail: dict[str, Any] = {"value": shown}
    if accepts.values:
        detail["allowed"] = list(accepts.values)
    if len(items) > accepts.max_items:
        return f"takes at most {accepts.max_items} items, got {len(items)}", detail
    problems = [(item, p) for item in items if (p := _item_problem(item, accepts)) is not None]
    if not problems:
        return f"{shown!r} is not a valid {accepts.what}", detail
    if accepts.values:
        unknown = [item for item, _ in problems]
        detail["unknown"] = unknown
        detail["suggestions"] = {item: suggest(item.lstrip("-").split(".")[0], accepts.values) for item in unknown}
    (why, hint), more = problems[0][1], len(problems) - 1
    extra = f" (and {more} more: {', '.join(repr(i[:_VALUE_CHARS]) for i, _ in problems[1:4])})" if more else ""
    return f"{why}; {hint}{extra}", detail


def validation_message(errors: Sequence[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The message and detail of a 422 for pydantic's ``errors`` (those of a ``RequestValidationError``).

    One line naming each bad parameter with its value; a pattern mismatch is explained by :func:`explain` (never
    the regex). ``detail``: ``{"parameter": the first one, "errors": [{loc, msg, type, value, …}]}``.
    """
    parts: list[str] = []
    names: list[str] = []
    detail: list[dict[str, Any]] = []
    for e in errors:
        loc = list(e.get("loc", ()))
        name = ".".join(map(str, loc[1:] or loc))
        value = e.get("input")
        names.append(name)
        if e.get("type") == "string_pattern_mismatch":
            msg, extra = explain(name, value, (e.get("ctx") or {}).get("pattern"))
            parts.append(f"{name}: {msg}")
        else:
            msg, extra = str(e.get("msg", "")), {}
            shown = "" if value is None or isinstance(value, (dict, list)) else f"={str(value)[:_VALUE_CHARS]!r}"
            parts.append(f"{name}{shown}: {msg}")
        detail.append({"loc": loc, "msg": msg, "type": e.get("type", ""), **extra})
    message = "invalid request parameter " + parts[0] if len(parts) == 1 else "invalid request parameters: "
    message += "; ".join(parts) if len(parts) != 1 else ""
    return message[:500], {"parameter": names[0] if names else None, "errors": detail}


def unknown_names(unknown: Sequence[str], allowed: Iterable[str]) -> tuple[str, dict[str, Any]]:
    """Message and detail for query parameters a route does not take, with close matches among ``allowed``."""
    allowed = sorted(allowed)
    words, suggestions = [], {}
    for name in unknown:
        close = suggest(name, allowed)
        suggestions[name[:40]] = close
        words.append(f"{name[:40]!r}" + (f" (did you mean {_quoted(close)}?)" if close else ""))
    message = ("unknown query parameter " if len(unknown) == 1 else "unknown query parameters ") + ", ".join(words)
    if not any(suggestions.values()):
        if len(allowed) <= LIST_IN_MESSAGE:
            message += "; this route takes " + (", ".join(allowed) or "none")
        else:
            message += f"; this route takes {len(allowed)}: see detail.allowed or /openapi.json"
    detail = {"parameter": unknown[0][:40], "unknown": list(unknown), "suggestions": suggestions, "allowed": allowed}
    return message[:500], detail
