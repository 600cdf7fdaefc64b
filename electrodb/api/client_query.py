"""What the Python client sends for a search and what it makes of the documents as a table (for
:class:`~electrodb.api.client.ElectroDBClient`): filters → query parameters, and a pandas DataFrame that keeps
its columns when nothing matched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from electrodb.documents.registry import SUMMARY_PROPERTIES

__all__ = [
    "TRUST_RANGES",
    "Range",
    "Values",
    "data_frame",
    "frame_columns",
    "joined",
    "range_params",
    "search_params",
]

Range = tuple[float | None, float | None] | list[float | None] | float | int | None
Values = str | Sequence[str] | None
#: Range filters of the model-trust verdict (``frac_flagged=(0, 0.05)``, ``sigma_F_max_p95_max=0.3``).
TRUST_RANGES = ("frac_flagged", "sigma_F_max_p95")


def range_params(name: str, value: Range, tolerance: float = 1e-6) -> dict[str, float]:
    """``(lo, hi)`` → ``{name_min: lo, name_max: hi}`` (``None`` ends open); a number means ±``tolerance``."""
    if value is None:
        return {}
    if isinstance(value, (int, float)):
        return {f"{name}_min": float(value) - tolerance, f"{name}_max": float(value) + tolerance}
    lo, hi = value
    out = {}
    if lo is not None:
        out[f"{name}_min"] = float(lo)
    if hi is not None:
        out[f"{name}_max"] = float(hi)
    return out


def joined(value: Values) -> str | None:
    """One value or a sequence of values → the API's comma-separated list (a number as its text)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return ",".join(str(v) for v in value)


def search_params(
    filters: dict[str, Any],
    fields: Sequence[str] | str | None = None,
    sort: Sequence[str] | str | None = None,
    all_fields: bool = False,
) -> dict[str, Any]:
    """The query parameters of ``GET /electrolytes`` for the filters of :meth:`ElectroDBClient.search`.

    Parameters
    ----------
    filters
        ``salt``, ``cation``, ``anion``, ``model_id``, ``campaign`` (one value or several), ``electrolyte_ids``,
        ``molality`` and ``temperature`` ranges, and per headline property ``P``: ``P=(min, max)``, ``P_min``,
        ``P_max``, ``P_status``; the model-trust verdict: ``model_trust``, ``committee_id``, ``refine_round`` (one
        value or several), ``frac_flagged`` and ``sigma_F_max_p95`` (ranges, or ``_min``/``_max``), and
        ``include_superseded`` (sent only when true). ``None`` values are left out.
    fields, sort, all_fields
        ``_fields``, ``_sort_fields`` and ``_all_fields``.

    Raises
    ------
    TypeError
        An unknown filter (named in the message).
    """
    filters = dict(filters)
    ids = filters.pop("electrolyte_ids", None) or filters.pop("electrolyte_id", None)
    params: dict[str, Any] = {k: joined(filters.pop(k, None)) for k in ("salt", "cation", "anion", "model_id")}
    params["campaign"] = joined(filters.pop("campaign", None))
    params["electrolyte_id"] = joined(ids)
    params.update(range_params("molality", filters.pop("molality", None)))
    params.update(range_params("temperature", filters.pop("temperature", None)))
    for key in ("model_trust", "committee_id", "refine_round"):
        params[key] = joined(filters.pop(key, None))
    if filters.pop("include_superseded", False):
        params["include_superseded"] = "true"
    for key in TRUST_RANGES:
        params.update(range_params(key, filters.pop(key, None)))
    for key, value in filters.items():
        if key.endswith("_status") and key.removesuffix("_status") in SUMMARY_PROPERTIES:
            params[key] = joined(value)
            continue
        base = key.removesuffix("_min").removesuffix("_max")
        if base not in SUMMARY_PROPERTIES and base not in ("molality", "temperature", *TRUST_RANGES):
            raise TypeError(
                f"unknown search parameter {key!r}; properties are {', '.join(SUMMARY_PROPERTIES)} "
                "(as P=(min, max), P_min=, P_max= or P_status=); model trust: model_trust=, committee_id=, "
                "refine_round=, frac_flagged=(min, max), sigma_F_max_p95=(min, max), include_superseded=True"
            )
        if key == base:
            params.update(range_params(key, value))
        elif value is not None:
            params[key] = float(value)
    if fields:
        params["_fields"] = joined(fields)
    if sort:
        params["_sort_fields"] = joined(sort)
    if all_fields:
        params["_all_fields"] = "true"
    return params


def frame_columns(collection: str, fields: Sequence[str] | str | None, all_fields: bool = False) -> list[str]:
    """The columns of a DataFrame of ``collection``'s documents, known before any document is seen.

    Parameters
    ----------
    collection
        The list route (``electrolytes``, ``structure``, ...).
    fields
        The fields requested (``_fields``): the collection's key, then their top-level names in the order asked
        (``provenance.model_id`` is the column ``provenance``); ignored with ``all_fields``.
    all_fields
        Every field was requested (``_all_fields``).

    Returns
    -------
    list of str
        Without ``fields``: the collection's known top-level fields as the server serves them by default (every
        one with ``all_fields``); empty for collections whose fields are not fixed (``models``, ``thermo``, ...).
    """
    from electrodb.documents.registry import COLLECTIONS
    from electrodb.store.query_specs import SPECS, summary_fields  # the field tables: only when a frame is made

    spec = SPECS.get(collection)
    if fields and not all_fields:
        tops = [f.strip().split(".", 1)[0] for f in (fields.split(",") if isinstance(fields, str) else fields)]
        return list(dict.fromkeys([spec.key, *tops] if spec is not None else tops))
    if spec is None or spec.fields is None:
        return []
    document = getattr(COLLECTIONS.get(collection), "document", None)
    order = summary_fields() if collection == "electrolytes" else list(getattr(document, "model_fields", ()))
    known = [f for f in order if f in spec.fields] + sorted(spec.fields.difference(order))
    return [f for f in known if all_fields or f not in spec.heavy]


def data_frame(
    collection: str, docs: list[dict[str, Any]], fields: Sequence[str] | str | None, all_fields: bool = False
) -> Any:
    """``docs`` as a pandas DataFrame; with no documents, an empty one with the columns of :func:`frame_columns`.

    With ``fields`` every requested column is there, in the order asked, also when a document lacks it (NaN), so
    a query's frame has the same columns whether it matched no document, one or many.
    """
    import pandas as pd

    columns = frame_columns(collection, fields, all_fields)
    if not docs:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(docs)
    if fields and not all_fields:
        return frame.reindex(columns=list(dict.fromkeys([*columns, *frame.columns])))
    return frame
