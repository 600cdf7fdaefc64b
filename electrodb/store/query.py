"""Typed filters → MongoDB criteria, projections and sorts, shared by the HTTP API and the export.

This module sits below both :mod:`electrodb.api` and :mod:`electrodb.io.export` in the data flow (it needs only
the document schemas). Nothing a client sends is ever passed through as a query operator: every filter is a
named parameter with a type (string with a safe pattern, or finite float), and this module alone builds the
Mongo criteria from them. String values that look like operators (start with ``$`` or contain ``{``/``}``)
are refused with a :class:`QueryError` (HTTP 422), as are unknown filter, sort and projection fields.
The collection specifications, field tables, limits and parameter patterns are in
:mod:`electrodb.store.query_specs` (re-exported here, so ``electrodb.store.query`` stays the one entry point).

Filters on ``electrolytes`` (the summaries):

* equality filters take one value or a comma-separated list (``salt=NaCl,LiCl``; emmet / mp-api style);
  salts and ions are canonicalised (``nacl`` → ``NaCl``, ``Li`` → ``Li+``);
* range filters ``<field>_min`` / ``<field>_max`` (inclusive) for ``molality`` (mol/kg), ``temperature`` (K)
  and every headline property ``P`` of :data:`~electrodb.documents.properties.SUMMARY_PROPERTIES`
  (``D_cation_min=1.0`` means D₊ ≥ 1.0 × 1e-9 m²/s); a document whose ``P`` is ``None`` never matches a
  range on ``P``; an empty range (min > max) matches nothing (see :func:`empty_ranges`);
* status filters ``P_status`` for every ``P``: one status or a comma-separated list of
  :data:`~electrodb.analysis.convergence.STATUSES` (``converged``, ``unconverged``, ``insufficient``, ``input``;
  ``D_cation_status=converged``, ``eta_status=input``);
* the model-trust verdict: ``model_trust`` (one or a list of
  :data:`~electrodb.documents.committee.TRUST_STATUSES`), ``frac_flagged_min/max``, ``sigma_F_max_p95_min/max``
  (eV/Å), ``committee_id`` and ``refine_round`` (integers);
* superseded results (``superseded_by`` set: a refined committee's model ran the same electrolyte) are left out
  unless ``include_superseded`` is true: the criteria always carry ``superseded_by: None`` otherwise, so totals,
  pages, facets and the export agree on what the default answer is.
"""

from __future__ import annotations

import difflib
import heapq
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from electrodb.analysis.convergence import STATUSES
from electrodb.store.query_specs import (  # noqa: F401  (re-exported: electrodb.store.query is the entry point)
    DEFAULT_LIMIT,
    EQ_FIELDS,
    FIELD_PATTERN,
    ID_ITEM,
    ID_PATTERN,
    INT_FIELDS,
    ION_ITEM,
    ION_PATTERN,
    LEGACY_THERMO_STATUSES,
    MAX_LIMIT,
    MAX_LIST,
    MAX_SKIP,
    MAX_SORT_KEYS,
    PATH_ID_PATTERN,
    RANGE_FIELDS,
    SALT_ITEM,
    SALT_PATTERN,
    SPECS,
    SUMMARY_EXTRA_FIELDS,
    TRAJECTORY_STATUSES,
    TRUST_FIELDS,
    VOCABULARIES,
    CollectionSpec,
    fields_pattern,
    list_pattern,
    property_fields,
    sort_pattern,
    summary_fields,
)
from electrodb.systems.chemistry import get_ion, parse_salt

__all__ = [
    "DEFAULT_LIMIT",
    "LEGACY_THERMO_STATUSES",
    "MAX_LIMIT",
    "SPECS",
    "SUMMARY_EXTRA_FIELDS",
    "TRAJECTORY_STATUSES",
    "TRUST_FIELDS",
    "CollectionSpec",
    "QueryError",
    "SortKey",
    "apply_subpaths",
    "build_criteria",
    "canonical_ion",
    "canonical_salt",
    "check_value",
    "empty_ranges",
    "fields_pattern",
    "list_pattern",
    "parse_fields",
    "parse_sort",
    "projection",
    "sort_pattern",
    "sorted_page",
    "split_projection",
    "summary_fields",
]


class QueryError(ValueError):
    """A request parameter that cannot become a safe query (answered with HTTP 422)."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


# ------------------------------------------------------------------------------------------ values


def check_value(name: str, value: str) -> str:
    """Refuse string values that look like query operators or documents (``$gt``, ``{"$ne": 1}``)."""
    if value.startswith("$") or "{" in value or "}" in value or "\x00" in value:
        raise QueryError(
            f"parameter {name!r}: value {value[:60]!r} is not allowed (operators and documents "
            "are never accepted; give a plain value)",
            {"parameter": name},
        )
    return value


def canonical_salt(value: str) -> str:
    """Canonical formula of a salt name (``"nacl"`` → ``"NaCl"``, ``"Li+/TFSI-"`` → ``"LiTFSI"``), else as given."""
    try:
        return parse_salt(value).formula
    except Exception:  # unknown salts simply match nothing
        return value.strip()


def canonical_ion(value: str) -> str:
    """Canonical ion name (``"Li"`` → ``"Li+"``; a ``+`` decoded from a URL as a space still works), else as given."""
    try:
        return get_ion(value).name
    except Exception:  # unknown ions simply match nothing
        return value.strip()


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise QueryError(f"parameter {name!r} must be a number, got {value!r}", {"parameter": name})
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise QueryError(f"parameter {name!r} must be a number, got {value!r}", {"parameter": name}) from None
    if not math.isfinite(number):
        raise QueryError(f"parameter {name!r} must be finite, got {value!r}", {"parameter": name})
    return number


def _values(name: str, value: Any) -> list[str]:
    """The values of an equality filter: one string, a comma-separated string, or a list/tuple of strings."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(v, str) for v in items):
        raise QueryError(f"parameter {name!r} must be a string or a comma-separated list", {"parameter": name})
    if len(items) > MAX_LIST:
        raise QueryError(f"parameter {name!r} takes at most {MAX_LIST} values", {"parameter": name})
    for item in items:
        check_value(name, item)
        if not item.strip():
            raise QueryError(f"parameter {name!r}: empty value in list", {"parameter": name})
    return list(items)


def _vocabulary(name: str, item: str, allowed: tuple[str, ...]) -> None:
    """Refuse a value outside a filter's vocabulary, naming the close matches."""
    if item in allowed:
        return
    close = difflib.get_close_matches(item.strip().lower(), allowed, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(map(repr, close))}?" if close else "one of " + ", ".join(allowed)
    raise QueryError(
        f"parameter {name!r}: unknown value {item[:40]!r}; {hint}",
        {"parameter": name, "allowed": list(allowed), "suggestions": close},
    )


def _integer(name: str, item: str) -> int:
    text = item.strip()
    if not text.isdigit() or len(text) > 9:
        raise QueryError(
            f"parameter {name!r} takes whole numbers ≥ 0 (e.g. {name}=0,1), got {item[:40]!r}", {"parameter": name}
        )
    return int(text)


def _equals(spec: CollectionSpec, name: str, value: Any) -> Any:
    wanted: list[Any] = []
    if name in INT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif name in INT_FIELDS and isinstance(value, (list, tuple)):
        value = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    for item in _values(name, value):
        if name == "salt":
            wanted += [item, canonical_salt(item)]
        elif name in ("cation", "anion"):
            wanted += [item, canonical_ion(item)]
        elif name in INT_FIELDS:
            wanted.append(_integer(name, item))
        elif name in VOCABULARIES:
            _vocabulary(name, item, VOCABULARIES[name])
            wanted.append(item)
        else:
            if name.endswith("status"):
                allowed = STATUSES if name != "status" else spec.statuses
                if allowed and item not in allowed:
                    raise QueryError(
                        f"parameter {name!r}: unknown status {item[:40]!r}; one of {', '.join(allowed)}",
                        {"parameter": name, "allowed": list(allowed)},
                    )
            wanted.append(item)
    wanted = list(dict.fromkeys(wanted))
    return wanted[0] if len(wanted) == 1 else {"$in": wanted}


# ------------------------------------------------------------------------------------------ criteria


def build_criteria(spec: CollectionSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Mongo criteria from named filter parameters (``None`` values are ignored).

    Parameters
    ----------
    spec
        The collection's :class:`CollectionSpec`; parameters outside ``spec.filters`` raise :class:`QueryError`.
    params
        ``{"salt": "NaCl,LiCl", "molality_min": 1.0, "D_cation_max": 1.5, "D_cation_status": "converged"}``.

    Returns
    -------
    dict
        Criteria built only from ``$gte``/``$lte``/``$in`` and plain equality on known fields; on a collection
        with ``spec.superseded`` also ``superseded_by: None`` unless ``include_superseded`` is true.
    """
    criteria: dict[str, Any] = {}
    unknown = sorted(k for k, v in params.items() if v is not None and k not in spec.filters)
    if unknown:
        raise QueryError(
            f"unknown filter(s) for {spec.name}: {', '.join(unknown)}",
            {"parameter": unknown[0], "unknown": unknown, "allowed": list(spec.filters)},
        )
    if spec.superseded and not _flag("include_superseded", params.get("include_superseded")):
        criteria["superseded_by"] = None  # null or absent: results no refined committee has replaced
    for name, value in params.items():
        if value is None or name == "include_superseded":
            continue
        base, _, bound = name.rpartition("_")
        if bound in ("min", "max") and base in RANGE_FIELDS:
            op = "$gte" if bound == "min" else "$lte"
            criteria.setdefault(RANGE_FIELDS[base], {})[op] = _finite(name, value)
        else:
            criteria[EQ_FIELDS[name]] = _equals(spec, name, value)
    return criteria


def _flag(name: str, value: Any) -> bool:
    """A boolean filter: ``True``/``False``, ``None`` (false) or the text ``true``/``false``/``1``/``0``."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise QueryError(f"parameter {name!r} must be true or false, got {str(value)[:40]!r}", {"parameter": name})


def empty_ranges(criteria: Mapping[str, Any]) -> list[str]:
    """Warnings for range clauses whose minimum exceeds their maximum (they match nothing)."""
    return [
        f"empty range for {field!r}: minimum {clause['$gte']} > maximum {clause['$lte']}; nothing matches"
        for field, clause in criteria.items()
        if isinstance(clause, dict) and "$gte" in clause and "$lte" in clause and clause["$gte"] > clause["$lte"]
    ]


def parse_sort(spec: CollectionSpec, value: str | None, parameter: str = "_sort_fields") -> dict[str, int]:
    """``"-D_cation,molality"`` → ``{"D_cation": -1, "molality": 1, <key>: 1}`` (key added as tie-breaker).

    Only fields in ``spec.sortable`` are accepted, at most :data:`MAX_SORT_KEYS`.
    """
    sort: dict[str, int] = {}
    if value:
        check_value(parameter, value)
        items = [s.strip() for s in value.split(",") if s.strip()]
        if len(items) > MAX_SORT_KEYS:
            raise QueryError(f"{parameter} takes at most {MAX_SORT_KEYS} fields", {"parameter": parameter})
        for item in items:
            direction = -1 if item.startswith("-") else 1
            name = item.lstrip("+-")
            if name not in spec.sortable:
                raise QueryError(
                    f"cannot sort {spec.name} by {name[:60]!r}",
                    {"parameter": parameter, "allowed": list(spec.sortable)},
                )
            sort.setdefault(name, direction)
    sort.setdefault(spec.key, 1)
    return sort


def parse_fields(spec: CollectionSpec, value: str | None) -> list[str] | None:
    """Validated projection paths from ``"salt,molality,D_cation"`` (the key field is always added)."""
    if not value:
        return None
    check_value("_fields", value)
    items = list(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    if not items:
        return None
    for item in items:
        top = item.split(".", 1)[0]
        if not FIELD_PATTERN.match(item) or (spec.fields is not None and top not in spec.fields):
            allowed = sorted(spec.fields) if spec.fields is not None else "letters, digits, _ and . paths"
            raise QueryError(
                f"unknown field {item[:60]!r} for {spec.name}", {"parameter": "_fields", "allowed": allowed}
            )
    if spec.key not in items:
        items.insert(0, spec.key)
    # A path below a requested parent would collide with the parent in a Mongo projection.
    return [f for f in items if not any(f.startswith(p + ".") for p in items if p != f)]


def projection(spec: CollectionSpec, fields: list[str] | None) -> dict[str, int] | None:
    """Inclusion projection for ``fields``; otherwise exclusion of ``spec.heavy`` (or ``None``: everything)."""
    if fields:
        return {f: 1 for f in fields}
    if spec.heavy:
        return {f: 0 for f in spec.heavy}
    return None


_MISSING = object()


def split_projection(properties: dict[str, int] | None) -> tuple[dict[str, int] | None, list[str] | None]:
    """An inclusion projection with dotted paths → (top-level store projection, the dotted paths to apply).

    Stores get only top-level fields (every backend projects those alike); :func:`apply_subpaths` then trims
    the sub-documents with MongoDB's semantics. Exclusions and plain projections pass through unchanged.
    """
    if not properties or not all(properties.values()) or not any("." in k for k in properties):
        return properties, None
    top = {k.split(".", 1)[0]: 1 for k in properties}
    return top, list(properties)


def _subproject(value: Any, paths: list[tuple[str, ...]]) -> Any:
    if any(not p for p in paths):
        return value
    if isinstance(value, dict):
        out = {}
        for head in dict.fromkeys(p[0] for p in paths):
            if head in value:
                sub = _subproject(value[head], [p[1:] for p in paths if p[0] == head])
                if sub is not _MISSING:
                    out[head] = sub
        return out
    if isinstance(value, list):  # as MongoDB: the path applies to every sub-document; scalars are dropped
        items = [_subproject(v, paths) for v in value if isinstance(v, (dict, list))]
        return [v for v in items if v is not _MISSING]
    return _MISSING


def apply_subpaths(doc: dict[str, Any], paths: list[str] | None) -> dict[str, Any]:
    """``doc`` restricted to ``paths`` (``"rdf.cation-O_w"``, ``"campaign_ids"``) as a MongoDB projection would."""
    if paths is None:
        return doc
    out = _subproject(doc, [tuple(p.split(".")) for p in paths])
    if "_id" in doc:
        out["_id"] = doc["_id"]
    return out


# ------------------------------------------------------------------------------------------ sorting


class _Counter:
    """Iterator wrapper that counts what passed through it."""

    def __init__(self, iterable: Any) -> None:
        self._it = iter(iterable)
        self.n = 0

    def __iter__(self) -> _Counter:
        return self

    def __next__(self) -> Any:
        item = next(self._it)
        self.n += 1
        return item


_BSON_RANK = ((type(None), 1), (bool, 8), (int, 2), (float, 2), (str, 3), (dict, 4), (datetime, 9))


def _bson_key(value: Any, descending: bool) -> tuple[int, Any]:
    """MongoDB's cross-type sort order (null < numbers < strings < objects < booleans < dates)."""
    if isinstance(value, list):  # arrays sort by their smallest (ascending) or largest (descending) element
        keys = [_bson_key(v, descending) for v in value] or [(0, 0)]
        return max(keys) if descending else min(keys)
    for typ, rank in _BSON_RANK:
        if isinstance(value, typ):
            return (rank, value if rank not in (1, 4) else str(value))
    return (5, str(value))


class SortKey:
    """Comparable key of a document for a Mongo sort specification ``{field: ±1}``."""

    __slots__ = ("dirs", "keys")

    def __init__(self, doc: dict, sort: dict[str, int]) -> None:
        self.dirs = tuple(sort.values())
        self.keys = tuple(_bson_key(_get_path(doc, f), d < 0) for f, d in sort.items())

    def __lt__(self, other: SortKey) -> bool:
        for a, b, d in zip(self.keys, other.keys, self.dirs, strict=True):
            if a == b:
                continue
            try:
                return a < b if d > 0 else b < a
            except TypeError:  # e.g. naive vs aware datetimes
                return str(a) < str(b) if d > 0 else str(b) < str(a)
        return False


def _get_path(doc: dict, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def sorted_page(docs: Iterable[dict], sort: dict[str, int], skip: int, limit: int) -> tuple[list[dict], int]:
    """Documents ``skip``…``skip+limit`` of ``docs`` in Mongo ``sort`` order, and how many ``docs`` there were.

    One pass with a heap of the best ``skip + limit`` documents (memory O(skip + limit), time O(N log k)).
    Used for the embedded backend, whose montydb sorts wrongly by three or more keys.
    """
    counter = _Counter(docs)
    best = heapq.nsmallest(skip + limit, counter, key=lambda d: SortKey(d, sort)) if limit else []
    for _ in counter:  # count what nsmallest did not consume (limit 0)
        pass
    return best[skip:], counter.n
