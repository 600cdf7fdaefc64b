"""Query parameters of the API: typed, patterned and bounded, so that the OpenAPI schema is what is accepted.

Every parameter a route takes is declared here with its type, pattern (list filters, ``_fields`` and
``_sort_fields`` patterns enumerate the real fields) and bounds; :func:`query_params` turns a list of names
into a FastAPI dependency that also refuses parameters the route does not declare (HTTP 422).

Conventions follow emmet-api / mp-api: ``_fields`` / ``_all_fields``, ``_sort_fields``, ``_skip`` / ``_limit``
or ``_page`` / ``_per_page``, comma-separated lists for equality filters; ``_sort`` is the deprecated name of
``_sort_fields`` (still accepted, with a warning).
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.dependencies.utils import get_dependant
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticUndefined

from electrodb.analysis.convergence import STATUSES
from electrodb.api.errors import Accepts, register, unknown_names
from electrodb.documents.committee import TRUST_STATUSES
from electrodb.documents.registry import SUMMARY_PROPERTIES
from electrodb.store import query as q

__all__ = [
    "DEPRECATED",
    "MAX_ARRAY_POINTS",
    "MAX_FRAMES",
    "MAX_FRAME_ATOMS",
    "PAGE",
    "declared_dependencies",
    "fast_dependencies",
    "given",
    "guard_query_string",
    "query_params",
    "route_params",
]

MAX_ARRAY_POINTS = 5000
#: Most frames and most frames × atoms one ``GET /trajectories/{id}/frames`` answer carries (1e6 atom-frames:
#: 12 MB of float32 positions before compression).
MAX_FRAMES = 10_000
MAX_FRAME_ATOMS = 1_000_000
PAGE = ("_limit", "_skip", "_page", "_per_page", "_sort_fields", "_sort", "_fields", "_all_fields")
#: Deprecated parameter → its replacement.
DEPRECATED = {"_sort": "_sort_fields"}
_QUERY_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_LIST_NOTE = "; one value or a comma-separated list (any of them matches)"


def _kw(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _list_q(
    name: str, item: str, description: str, item_length: int, accepts: Accepts | None = None
) -> inspect.Parameter:
    max_length = q.MAX_LIST * (item_length + 1)
    pattern = register(name, q.list_pattern(item), accepts or Accepts(description, max_items=q.MAX_LIST))
    return _kw(
        name,
        str | None,
        Query(None, pattern=pattern, max_length=max_length, description=description + _LIST_NOTE),
    )


def _enum_list_q(name: str, values: tuple[str, ...], description: str, what: str = "status") -> inspect.Parameter:
    item = "(?:" + "|".join(values) + ")"
    accepts = Accepts(what, values=values, max_items=q.MAX_LIST)
    return _list_q(name, item, f"{description}: {', '.join(values)}", max(map(len, values)), accepts)


def _float_q(name: str, description: str) -> inspect.Parameter:
    return _kw(name, float | None, Query(None, allow_inf_nan=False, description=description))


def _filter_param(spec: q.CollectionSpec, name: str) -> inspect.Parameter:
    ids = {
        "model_id": "model id (sha256:… or name:…)",
        "campaign": "campaign id (matches documents whose campaign_ids contain it)",
        "trajectory_id": "trajectory id",
        "electrolyte_id": "electrolyte summary id",
        "system_id": "system id",
        "campaign_id": "campaign id",
        "thermo_id": "thermo document id",
        "solvation_id": "solvation document id",
        "committee_id": "committee id (committee:…; on summaries: the committee whose audits gave model_trust)",
        "parent_id": "committee id of the committee a refine round started from",
    }
    ranges = {
        "frac_flagged": "fraction of audited frames whose max committee force disagreement σ_F is above the "
        "committee's threshold (0–1)",
        "sigma_F_max_p95": "95th percentile over audited frames of the per-frame max σ_F (eV/Å)",
    }
    if name == "salt":
        return _list_q(name, q.SALT_ITEM, "salt formula (NaCl, Ca(NO3)2, LiTFSI) or cation/anion", 40)
    if name in ("cation", "anion"):
        return _list_q(name, q.ION_ITEM, f"{name} name or formula (Li+, Li, Cl-, SO4)", 24)
    if name in ids:
        return _list_q(name, q.ID_ITEM, ids[name], 200)
    if name == "kind":
        return _list_q(name, r"[A-Za-z0-9_\-]{1,40}", "model kind", 40)
    if name == "status":
        return _enum_list_q(name, spec.statuses, f"{spec.name} status")
    if name == "model_trust":
        text = "model-trust verdict of the committee audits (trusted, extrapolating, insufficient, unaudited)"
        return _enum_list_q(name, TRUST_STATUSES, text, what="model-trust verdict")
    if name == "refine_round":
        accepts = Accepts("refine round (a whole number: 0 for a first committee, 1 after one refine round …)")
        text = "refine round of the committee (0: the first committee)"
        return _list_q(name, r"[0-9]{1,4}", text, 4, accepts=accepts)
    if name == "include_superseded":
        return _kw(
            name,
            bool,
            Query(
                False,
                description="true: also results superseded by a refined committee's model (superseded_by set; "
                "left out by default)",
            ),
        )
    if name.endswith("_status") and name[: -len("_status")] in SUMMARY_PROPERTIES:
        prop = name[: -len("_status")]
        return _enum_list_q(name, STATUSES, f"convergence status of {prop}")
    base, _, bound = name.rpartition("_")
    if bound in ("min", "max"):
        if base in SUMMARY_PROPERTIES:
            unit, text = SUMMARY_PROPERTIES[base]
            suffix = f" ({unit})" if unit else ""
            what = f"{text}{suffix}"
        elif base in ranges:
            what = ranges[base]
        elif base.endswith("_needs_ps") and base[: -len("_needs_ps")] in SUMMARY_PROPERTIES:
            what = f"production (ps) {base[: -len('_needs_ps')]} still needs to converge (0: converged)"
        else:
            what = {"molality": "molality, mol/kg", "temperature": "temperature, K"}[base]
        return _float_q(name, f"{'minimum' if bound == 'min' else 'maximum'} {what} (inclusive)")
    raise KeyError(name)


def _page_param(spec: q.CollectionSpec | None, name: str) -> inspect.Parameter:
    if name == "_limit":
        return _kw(
            name,
            int,
            Query(q.DEFAULT_LIMIT, ge=0, le=q.MAX_LIMIT, description=f"page size (≤ {q.MAX_LIMIT}; 0: only the total)"),
        )
    if name == "_skip":
        return _kw(name, int, Query(0, ge=0, le=q.MAX_SKIP, description="documents to skip"))
    if name == "_page":
        return _kw(
            name,
            int | None,
            Query(
                None,
                ge=1,
                le=q.MAX_SKIP // q.MAX_LIMIT,
                description="page number, from 1 (with _per_page; takes precedence over _skip/_limit)",
            ),
        )
    if name == "_per_page":
        return _kw(
            name,
            int | None,
            Query(None, ge=1, le=q.MAX_LIMIT, description=f"page size with _page (≤ {q.MAX_LIMIT}; default 100)"),
        )
    if name == "_all_fields":
        return _kw(name, bool, Query(False, description="return every field (overrides _fields)"))
    assert spec is not None
    if name in ("_sort_fields", "_sort"):
        deprecated = name == "_sort"
        text = f"up to {q.MAX_SORT_KEYS} comma-separated fields, -field for descending; one of: " + ", ".join(
            spec.sortable
        )
        accepts = Accepts("sort field", values=spec.sortable, max_items=q.MAX_SORT_KEYS, signed=True)
        return _kw(
            name,
            str | None,
            Query(
                None,
                pattern=register(name, q.sort_pattern(spec), accepts),
                max_length=300,
                deprecated=deprecated,
                description=("deprecated, use _sort_fields: " if deprecated else "") + text,
            ),
        )
    if name == "_fields":
        known = "" if spec.fields is None else "; one of: " + ", ".join(sorted(spec.fields))
        if spec.fields is None:
            accepts = Accepts("field name (letters, digits and _, dotted sub-paths)", max_items=10**6, subpaths=True)
        else:
            accepts = Accepts("field", values=tuple(sorted(spec.fields)), max_items=10**6, subpaths=True)
        return _kw(
            name,
            str | None,
            Query(
                None,
                pattern=register(name, q.fields_pattern(spec), accepts),
                max_length=4000,
                description="fields to return, comma-separated (dotted sub-paths allowed, e.g. provenance.model_id)"
                + known,
            ),
        )
    raise KeyError(name)


def _other_param(name: str) -> inspect.Parameter:
    if name == "pairs":
        return _kw(
            name,
            str | None,
            Query(
                None,
                pattern=register(
                    name,
                    r"^[A-Za-z_\-]{1,32}(,[A-Za-z_\-]{1,32}){0,15}$",
                    Accepts("RDF pair name (letters, _ and -; e.g. cation-O_w)", max_items=16),
                ),
                max_length=600,
                description="RDF pairs, comma-separated (cation-O_w,anion-O_w); default all",
            ),
        )
    if name == "species":
        return _kw(
            name,
            str | None,
            Query(
                None,
                pattern=register(
                    name,
                    r"^[A-Za-z_]{1,32}(,[A-Za-z_]{1,32}){0,7}$",
                    Accepts("species name (cation, anion or water)", max_items=8),
                ),
                max_length=300,
                description="species, comma-separated (cation,anion,water); default all",
            ),
        )
    if name == "max_points":
        return _kw(
            name,
            int,
            Query(1000, ge=2, le=MAX_ARRAY_POINTS, description="arrays longer than this are decimated"),
        )
    if name == "format":
        from typing import Literal

        return _kw(name, Literal["csv", "jsonl"], Query("csv", description="export format"))
    if name == "with_arrays":
        return _kw(name, bool, Query(False, description="add g(r)/MSD array columns"))
    if name == "frame_skip":
        return _kw("_skip", int, Query(0, ge=0, le=q.MAX_SKIP, description="frames to skip (frame paging)"))
    if name == "frame_limit":
        return _kw(
            "_limit",
            int | None,
            Query(
                None,
                ge=1,
                le=MAX_FRAMES,
                description=f"frames per answer (≤ {MAX_FRAMES} and ≤ {MAX_FRAME_ATOMS:,} frames × atoms; "
                "default: as many as that bound allows)",
            ),
        )
    if name == "reference_salt":
        return _kw(
            "salt",
            str,
            Query(
                ...,
                pattern=register("salt", q.SALT_PATTERN, Accepts("salt formula (NaCl, CaCl2, ...)")),
                max_length=40,
                description="salt formula (NaCl, CaCl2, ...)",
            ),
        )
    raise KeyError(name)


def route_params(spec: q.CollectionSpec | None, names: tuple[str, ...]) -> list[inspect.Parameter]:
    out = []
    for name in names:
        if name in PAGE:
            out.append(_page_param(spec, name))
        elif spec is not None and name in spec.filters:
            out.append(_filter_param(spec, name))
        else:
            out.append(_other_param(name))
    return out


def query_params(spec: q.CollectionSpec | None, *names: str) -> Callable[..., dict[str, Any]]:
    """A FastAPI dependency declaring the named query parameters; undeclared parameters are a 422."""
    params = route_params(spec, names)
    allowed = {p.name for p in params}

    def check_names(request: Request) -> None:
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise q.QueryError(*unknown_names(unknown, allowed))

    def dependency(request: Request, **values: Any) -> dict[str, Any]:
        check_names(request)
        return values

    request_param = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    dependency.__signature__ = inspect.Signature([request_param, *params])  # type: ignore[attr-defined]
    adapters = {p.name: TypeAdapter(Annotated[p.annotation, p.default]) for p in params}
    defaults = {p.name: p.default.default for p in params}

    def validate(request: Request) -> dict[str, Any]:
        """What ``dependency`` returns, validating only the parameters given (see :func:`fast_dependencies`)."""
        check_names(request)
        given, values, errors = request.query_params, dict(defaults), []
        for name, adapter in adapters.items():
            if name in given:
                try:
                    values[name] = adapter.validate_python(given[name], from_attributes=True)
                except ValidationError as exc:
                    errors += [{**e, "loc": ("query", name, *e["loc"])} for e in exc.errors(include_url=False)]
            elif values[name] is PydanticUndefined:
                errors.append({"type": "missing", "loc": ("query", name), "msg": "Field required", "input": None})
            else:
                values[name] = copy.deepcopy(values[name])
        if errors:
            raise RequestValidationError(errors)
        return values

    async def fast(request: Request) -> dict[str, Any]:  # async: pure CPU, microseconds; no thread-pool hop
        return validate(request)

    dependency.fast = fast  # type: ignore[attr-defined]
    dependency.validate = validate  # type: ignore[attr-defined]
    return dependency


def given(dependency: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Wrap a :func:`query_params` dependency so that its values also say which parameters were given
    (``values["_given"]``: a frozenset of names)."""

    def wrapped(request: Request, values: dict = Depends(dependency)) -> dict[str, Any]:
        return {**values, "_given": frozenset(request.query_params)}

    async def fast(request: Request) -> dict[str, Any]:
        values = dependency.validate(request)  # type: ignore[attr-defined]
        return {**values, "_given": frozenset(request.query_params)}

    wrapped.fast = fast  # type: ignore[attr-defined]
    return wrapped


def fast_dependencies(app: FastAPI) -> int:
    """Serve the routes' parameter dependencies through their fast twins; return how many were switched.

    FastAPI resolves a dependency declaring N query parameters by visiting all N on every request (~70 on
    ``/electrolytes``: several ms, the largest cost of an answer after the database). The declared dependency
    stays what the OpenAPI schema is generated from (generated here, before the switch, and kept by FastAPI);
    at request time the route's dependency is its twin (``dependency.fast``), which takes only the request and
    validates the parameters actually given with the very same constraints (one pydantic ``TypeAdapter`` per
    parameter, built from the declared ``Query``), with FastAPI's error format (``RequestValidationError``,
    ``loc = ("query", name)``) and the declared defaults for the rest.

    The twin replaces the declared dependency in the route's dependency list (the declared ones are kept in
    ``route.declared_dependencies``; :func:`declared_dependencies` puts them back), not through
    ``app.dependency_overrides``: with any override present, FastAPI re-inspects the signature of every
    dependency of every request (measured: ~10 % of the server's CPU per cached answer).
    """
    app.openapi()  # from the declared parameters; FastAPI keeps it in app.openapi_schema
    n = 0
    for route in app.routes:
        dependant = getattr(route, "dependant", None)
        if dependant is None or hasattr(route, "declared_dependencies"):
            continue
        route.declared_dependencies = list(dependant.dependencies)  # type: ignore[attr-defined]
        for i, dep in enumerate(dependant.dependencies):
            fast = getattr(dep.call, "fast", None)
            if fast is not None:
                dependant.dependencies[i] = get_dependant(
                    path=dep.path or route.path, call=fast, name=dep.name, use_cache=dep.use_cache, scope=dep.scope
                )
                n += 1
    return n


def declared_dependencies(app: FastAPI) -> None:
    """Undo :func:`fast_dependencies`: every route resolves its declared dependencies again (FastAPI's own
    parameter handling; what tests compare the twins with)."""
    for route in app.routes:
        declared = getattr(route, "declared_dependencies", None)
        if declared is not None:
            route.dependant.dependencies[:] = declared  # type: ignore[attr-defined]
            del route.declared_dependencies  # type: ignore[attr-defined]


async def guard_query_string(request: Request) -> None:
    """App-wide: refuse operator-like values (``$…``, ``{…}``) and odd parameter names before any route."""
    for key, value in request.query_params.multi_items():
        if not _QUERY_KEY.match(key):
            raise q.QueryError(f"query parameter name {key[:40]!r} is not allowed", {"parameter": key[:40]})
        q.check_value(key, value)
    for key in set(request.query_params):
        if len(request.query_params.getlist(key)) > 1:
            raise q.QueryError(
                f"query parameter {key!r} given more than once (give a comma-separated list instead)",
                {"parameter": key},
            )
