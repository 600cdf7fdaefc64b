"""Read-only HTTP API of an ElectroDB database (FastAPI), plus the web explorer at ``/``.

``create_app(settings)`` opens the stores with ``get_stores(settings, read_only=True)`` (embedded montydb or
MongoDB) and serves them through GET routes only. Every query parameter is typed and validated; filters are
turned into Mongo criteria by :mod:`electrodb.api.queries` and never passed through. Only find / count /
sort / skip / limit / distinct are used (montydb has no aggregation). The embedded backend is not
thread-safe, so its store calls are serialised with a lock (montydb scans the collection on every query
anyway, so this costs little).

Errors share one JSON shape: ``{"error": {"status": int, "message": str, "detail": ...}}``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from electrodb import __version__
from electrodb.api import queries as q
from electrodb.builders.documents import SUMMARY_PROPERTIES
from electrodb.settings import ElectroDBSettings, get_settings
from electrodb.stores import get_stores

__all__ = ["Database", "create_app", "serve"]

STATIC_DIR = Path(__file__).parent / "static"
MAX_ARRAY_POINTS = 5000
MAX_TRAJECTORIES = 64
SERVED = (
    "electrolytes",
    "structure",
    "transport",
    "pairing",
    "kinetics",
    "trajectories",
    "models",
    "campaigns",
    "thermo",
    "solvation",
)
_QUERY_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


# ------------------------------------------------------------------------------------------ JSON


def jsonable(value: Any) -> Any:
    """JSON-safe copy: Mongo ``_id`` dropped, NaN/inf → ``None``, datetimes as ISO 8601, numpy → Python."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if k != "_id"}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist())
    return str(value)


class SafeJSONResponse(JSONResponse):
    """JSON response that never fails on NaN, datetimes or ObjectIds."""

    def render(self, content: Any) -> bytes:
        return json.dumps(jsonable(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def error_response(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> SafeJSONResponse:
    return SafeJSONResponse(
        {"error": {"status": status, "message": message, "detail": detail}}, status_code=status, headers=headers
    )


# ------------------------------------------------------------------------------------------ database


class Database:
    """The API's read-only stores with a lock around every store call on the embedded backend."""

    def __init__(self, settings: ElectroDBSettings) -> None:
        self.settings = settings
        self.stores = get_stores(settings, read_only=True)
        self.embedded = settings.embedded
        self.lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.embedded else contextlib.nullcontext()
        )
        self._connected: set[str] = set()

    def store(self, name: str) -> Any:
        store = self.stores[name]
        if name not in self._connected:
            store.connect()
            self._connected.add(name)
        return store

    def page(
        self, name: str, criteria: dict, properties: dict | None, sort: dict[str, int], skip: int, limit: int
    ) -> tuple[list[dict], int]:
        """Documents ``skip``…``skip+limit`` in ``sort`` order and the total count matching ``criteria``.

        MongoDB: ``count_documents`` plus an index-backed ``find`` with sort/skip/limit. Embedded: one scan
        gives both, keeping only the best ``skip + limit`` documents in a heap; the ordering is done here
        because montydb orders wrongly by three or more keys (it forgets the first key's groups).
        """
        with self.lock:
            store = self.store(name)
            if not self.embedded:
                total = store.count(criteria)
                if limit == 0:
                    return [], total
                return list(store.query(criteria, properties=properties, sort=sort, skip=skip, limit=limit)), total
            added: list[str] = []
            if properties and any(properties.values()):  # inclusion projection: sort keys must come along
                added = [k for k in sort if k not in properties]
                properties = {**properties, **{k: 1 for k in added}}
            docs, total = q.sorted_page(store.query(criteria, properties=properties), sort, skip, limit)
            for key in added:
                for doc in docs:
                    doc.pop(key, None)
            return docs, total

    def one(self, name: str, criteria: dict, properties: dict | None = None) -> dict | None:
        with self.lock:
            return self.store(name).query_one(criteria, properties=properties)

    def find(
        self, name: str, criteria: dict, properties: dict | None = None, sort: dict | None = None, limit: int = 0
    ) -> list[dict]:
        with self.lock:
            return list(self.store(name).query(criteria, properties=properties, sort=sort, limit=limit))

    def distinct(self, name: str, fields: tuple[str, ...]) -> dict[str, list[Any]]:
        """Distinct non-null values of each field (array fields contribute their elements).

        MongoDB: one (index-backed) ``distinct`` per field. Embedded: one scan for all fields, because montydb
        scans per ``distinct`` call and compares every value with every distinct value found so far.
        """
        with self.lock:
            store = self.store(name)
            if not self.embedded:
                return {f: [v for v in store.distinct(f) if v is not None] for f in fields}
            found: dict[str, set[Any]] = {f: set() for f in fields}
            for doc in store.query({}, properties={f: 1 for f in fields}):
                for f in fields:
                    value = doc.get(f)
                    for v in value if isinstance(value, list) else [value]:
                        if v is not None and not isinstance(v, (dict, list)):
                            found[f].add(v)
            return {f: list(values) for f, values in found.items()}

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {name: self.store(name).count() for name in SERVED}

    def close(self) -> None:
        with self.lock:
            self.stores.close()
            self._connected.clear()


# ------------------------------------------------------------------------------------------ parameters


def _kw(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _str_q(name: str, pattern: str, description: str, max_length: int = 200) -> inspect.Parameter:
    return _kw(name, str | None, Query(None, pattern=pattern, max_length=max_length, description=description))


def _float_q(name: str, description: str) -> inspect.Parameter:
    return _kw(name, float | None, Query(None, allow_inf_nan=False, description=description))


def _param_registry() -> dict[str, inspect.Parameter]:
    reg = {
        "salt": _str_q("salt", q.SALT_PATTERN, "salt formula (NaCl, Ca(NO3)2, LiTFSI) or cation/anion", 40),
        "cation": _str_q("cation", q.ION_PATTERN, "cation name or formula (Li+, Li)", 24),
        "anion": _str_q("anion", q.ION_PATTERN, "anion name or formula (Cl-, SO4)", 24),
        "molality_min": _float_q("molality_min", "minimum molality, mol/kg (inclusive)"),
        "molality_max": _float_q("molality_max", "maximum molality, mol/kg (inclusive)"),
        "temperature_min": _float_q("temperature_min", "minimum temperature, K (inclusive)"),
        "temperature_max": _float_q("temperature_max", "maximum temperature, K (inclusive)"),
        "status": _kw(
            "status",
            Literal["running", "completed", "unstable", "failed"] | None,
            Query(None, description="trajectory status"),
        ),
        "kind": _str_q("kind", r"^[A-Za-z0-9_\-]{1,40}$", "model kind", 40),
        "_limit": _kw(
            "_limit",
            int,
            Query(
                q.DEFAULT_LIMIT,
                ge=0,
                le=q.MAX_LIMIT,
                description=f"page size (≤ {q.MAX_LIMIT}; 0 returns only the total)",
            ),
        ),
        "_skip": _kw("_skip", int, Query(0, ge=0, le=q.MAX_SKIP, description="documents to skip")),
        "_sort": _kw(
            "_sort",
            str | None,
            Query(None, max_length=300, description="sort fields, comma-separated; -field descending"),
        ),
        "_fields": _kw(
            "_fields", str | None, Query(None, max_length=4000, description="fields to return, comma-separated")
        ),
        "pairs": _str_q(
            "pairs",
            r"^[A-Za-z_\-]{1,32}(,[A-Za-z_\-]{1,32}){0,15}$",
            "RDF pairs, comma-separated (cation-O_w,anion-O_w); default all",
            600,
        ),
        "species": _str_q(
            "species",
            r"^[A-Za-z_]{1,32}(,[A-Za-z_]{1,32}){0,7}$",
            "species, comma-separated (cation,anion,water); default all",
            300,
        ),
        "max_points": _kw(
            "max_points",
            int,
            Query(1000, ge=2, le=MAX_ARRAY_POINTS, description="arrays longer than this are decimated"),
        ),
        "format": _kw("format", Literal["csv", "jsonl"], Query("csv", description="export format")),
        "with_arrays": _kw("with_arrays", bool, Query(False, description="add g(r)/MSD array columns")),
    }
    for name, pattern, text in (
        ("model_id", q.ID_PATTERN, "model id"),
        ("campaign", q.ID_PATTERN, "campaign id"),
        ("trajectory_id", q.ID_PATTERN, "trajectory id"),
        ("electrolyte_id", q.ID_PATTERN, "electrolyte summary id"),
        ("system_id", q.ID_PATTERN, "system id"),
        ("campaign_id", q.ID_PATTERN, "campaign id"),
        ("thermo_id", q.ID_PATTERN, "thermo id"),
        ("solvation_id", q.ID_PATTERN, "id"),
    ):
        reg[name] = _str_q(name, pattern, text)
    for prop, (unit, text) in SUMMARY_PROPERTIES.items():
        suffix = f" ({unit})" if unit else ""
        reg[f"{prop}_min"] = _float_q(f"{prop}_min", f"minimum {text}{suffix}")
        reg[f"{prop}_max"] = _float_q(f"{prop}_max", f"maximum {text}{suffix}")
    return reg


PARAMS = _param_registry()
PAGE = ("_limit", "_skip", "_sort", "_fields")


def query_params(*names: str) -> Callable[..., dict[str, Any]]:
    """A FastAPI dependency declaring the named query parameters; unknown parameters are a 422."""
    allowed = set(names)

    def dependency(request: Request, **values: Any) -> dict[str, Any]:
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise q.QueryError(
                f"unknown query parameter(s): {', '.join(k[:40] for k in unknown)}",
                {"unknown": unknown, "allowed": sorted(allowed)},
            )
        return values

    request_param = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    dependency.__signature__ = inspect.Signature([request_param, *(PARAMS[n] for n in names)])  # type: ignore
    return dependency


async def guard_query_string(request: Request) -> None:
    """App-wide: refuse operator-like values (``$…``, ``{…}``) and odd parameter names before any route."""
    for key, value in request.query_params.multi_items():
        if not _QUERY_KEY.match(key):
            raise q.QueryError(f"query parameter name {key[:40]!r} is not allowed", {"parameter": key[:40]})
        q.check_value(key, value)
    for key in set(request.query_params):
        if len(request.query_params.getlist(key)) > 1:
            raise q.QueryError(f"query parameter {key!r} given more than once", {"parameter": key})


def _decimate(curve: dict[str, Any], max_points: int) -> dict[str, Any]:
    """Every k-th point of each equal-length array in ``curve`` so that at most ``max_points`` remain."""
    lengths = {len(v) for v in curve.values() if isinstance(v, list)}
    n = max(lengths, default=0)
    if n <= max_points:
        return curve
    step = math.ceil(n / max_points)
    return {k: v[::step] if isinstance(v, list) and len(v) == n else v for k, v in curve.items()}


def _select(names: str | None) -> set[str] | None:
    return {s.strip() for s in names.split(",")} if names else None


# ------------------------------------------------------------------------------------------ app


def create_app(settings: ElectroDBSettings | None = None) -> FastAPI:
    """The ElectroDB read-only API over the database of ``settings`` (default: process settings)."""
    settings = settings or get_settings()
    db = Database(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        db.close()

    app = FastAPI(
        title="ElectroDB API",
        version=__version__,
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        dependencies=[Depends(guard_query_string)],
        description="Read-only access to electrolyte properties computed by ElectroDB (NNP molecular dynamics). "
        "Units: Å, ps, K, mol/kg, diffusion in 1e-9 m²/s.",
    )
    app.state.db = db
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    _add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/health", tags=["meta"], summary="Database status")
    def health() -> Response:
        info = {
            "backend": "embedded" if db.embedded else "mongodb",
            "database": settings.describe(),
            "read_only": True,
            "version": __version__,
        }
        try:
            counts = db.counts()
        except Exception as exc:  # report, do not crash
            return SafeJSONResponse(
                {"status": "error", **info, "error": f"{type(exc).__name__}: {exc}"}, status_code=503
            )
        return SafeJSONResponse({"status": "ok", **info, "counts": counts})

    @app.get("/facets", tags=["meta"], summary="Distinct salts, models and temperatures of the summaries")
    def facets() -> Response:
        found = db.distinct("electrolytes", ("salt", "model_id", "temperature", "campaign_ids"))
        data = {f: sorted(found[f], key=str) for f in ("salt", "model_id", "temperature")}
        data["campaign"] = sorted(found["campaign_ids"], key=str)
        return SafeJSONResponse({"data": data})

    @app.get("/properties", tags=["meta"], summary="Headline properties of the summaries: unit and meaning")
    def properties() -> Response:
        data = {p: {"unit": u, "description": d} for p, (u, d) in SUMMARY_PROPERTIES.items()}
        return SafeJSONResponse({"data": data})

    _add_collection_route(
        app,
        db,
        "/electrolytes",
        "electrolytes",
        "Electrolyte summaries (one per salt, molality, temperature, model) with headline properties and experiment",
    )

    summary_path = PathParam(..., pattern=q.PATH_ID_PATTERN, description="electrolyte_id")

    def _summary(electrolyte_id: str, properties: dict | None = None) -> dict:
        doc = db.one("electrolytes", {"electrolyte_id": electrolyte_id}, properties)
        if doc is None:
            raise StarletteHTTPException(404, f"no electrolyte summary {electrolyte_id!r}")
        return doc

    @app.get("/electrolytes/{electrolyte_id}", tags=["electrolytes"], summary="One electrolyte summary")
    def get_electrolyte(
        electrolyte_id: str = summary_path, params: dict = Depends(query_params("_fields"))
    ) -> Response:
        fields = q.parse_fields(q.SPECS["electrolytes"], params["_fields"])
        return SafeJSONResponse({"data": _summary(electrolyte_id, q.projection(q.SPECS["electrolytes"], fields))})

    def _arrays(
        electrolyte_id: str,
        collection: str,
        field: str,
        extra: tuple[str, ...],
        select: set[str] | None,
        max_points: int,
    ) -> dict[str, Any]:
        summary = _summary(
            electrolyte_id,
            {"electrolyte_id": 1, "salt": 1, "molality": 1, "temperature": 1, "model_id": 1, "trajectory_ids": 1},
        )
        tids = list(summary.get("trajectory_ids") or [])[:MAX_TRAJECTORIES]
        props = {"trajectory_id": 1, field: 1, **{e: 1 for e in extra}}
        docs = db.find(collection, {"trajectory_id": {"$in": tids}}, props, sort={"trajectory_id": 1})
        out = []
        for doc in docs:
            curves = {
                k: _decimate(v, max_points)
                for k, v in (doc.get(field) or {}).items()
                if isinstance(v, dict) and (select is None or k in select)
            }
            extras = {e: {k: v for k, v in (doc.get(e) or {}).items() if select is None or k in select} for e in extra}
            out.append({"trajectory_id": doc["trajectory_id"], field: curves, **extras})
        summary.pop("trajectory_ids", None)
        return {**summary, "trajectory_ids": tids, "trajectories": out}

    @app.get(
        "/electrolytes/{electrolyte_id}/rdf",
        tags=["electrolytes"],
        summary="g(r), running coordination n(r) and shells of the summary's trajectories",
    )
    def get_rdf(
        electrolyte_id: str = summary_path, params: dict = Depends(query_params("pairs", "max_points"))
    ) -> Response:
        data = _arrays(electrolyte_id, "structure", "rdf", ("shells",), _select(params["pairs"]), params["max_points"])
        return SafeJSONResponse({"data": data})

    @app.get(
        "/electrolytes/{electrolyte_id}/msd",
        tags=["electrolytes"],
        summary="Mean-squared displacements and diffusion fits of the summary's trajectories",
    )
    def get_msd(
        electrolyte_id: str = summary_path, params: dict = Depends(query_params("species", "max_points"))
    ) -> Response:
        data = _arrays(
            electrolyte_id, "transport", "msd", ("diffusion",), _select(params["species"]), params["max_points"]
        )
        return SafeJSONResponse({"data": data})

    for coll, text in (
        ("structure", "RDFs and first-shell analysis per trajectory"),
        ("transport", "Self-diffusion and MSDs per trajectory"),
        ("pairing", "Ion-pair fractions per trajectory"),
        ("kinetics", "Water residence times per trajectory"),
        ("trajectories", "MD trajectory metadata (no frames; per-atom lists only via _fields)"),
        ("models", "Model identities and errors"),
        ("campaigns", "Campaign specifications"),
        ("thermo", "Activity/osmotic coefficients over concentration series"),
        ("solvation", "Solvation free energies"),
    ):
        _add_collection_route(app, db, f"/{coll}", coll, text)

    @app.get("/trajectories/{trajectory_id}", tags=["trajectories"], summary="One trajectory's metadata")
    def get_trajectory(
        trajectory_id: str = PathParam(..., pattern=q.PATH_ID_PATTERN), params: dict = Depends(query_params("_fields"))
    ) -> Response:
        spec = q.SPECS["trajectories"]
        fields = q.parse_fields(spec, params["_fields"])  # one document: per-atom lists included by default
        doc = db.one("trajectories", {"trajectory_id": trajectory_id}, q.projection(spec, fields) if fields else None)
        if doc is None:
            raise StarletteHTTPException(404, f"no trajectory {trajectory_id!r}")
        return SafeJSONResponse({"data": doc})

    @app.get("/reference/activity", tags=["meta"], summary="Experimental γ± and φ at 25 °C (Hamer & Wu / CRC)")
    def reference_activity(params: dict = Depends(query_params("salt"))) -> Response:
        from electrodb.analysis.activity import reference_activity as ref

        if not params["salt"]:
            raise q.QueryError("parameter 'salt' is required", {"parameter": "salt"})
        salt = q.canonical_salt(params["salt"])
        try:
            data = ref(salt)
        except KeyError:
            raise StarletteHTTPException(404, f"no reference activity data for {salt!r}") from None

        def series(s: Any) -> dict[str, Any]:
            return {"molality": s.molality.tolist(), "value": s.value.tolist(), "source": list(s.source)}

        return SafeJSONResponse(
            {"data": {"salt": salt, "temperature": 298.15, "gamma_pm": series(data.gamma), "phi": series(data.phi)}}
        )

    export_names = ("format", "with_arrays", *q.SPECS["electrolytes"].filters)

    @app.get(
        "/export",
        tags=["export"],
        summary="Stream the flat ML table of matching summaries (CSV / JSONL)",
        response_class=StreamingResponse,
    )
    def export(params: dict = Depends(query_params(*export_names))) -> StreamingResponse:
        from electrodb.export import iter_csv, iter_jsonl, iter_rows

        fmt, with_arrays = params.pop("format"), params.pop("with_arrays")
        criteria = q.build_criteria(q.SPECS["electrolytes"], params)
        with db.lock:
            for name in ("electrolytes", "structure", "transport"):
                db.store(name)
        rows = iter_rows(db.stores, criteria, with_arrays=with_arrays, lock=db.lock)
        body: Iterator[str] = iter_csv(rows, with_arrays) if fmt == "csv" else iter_jsonl(rows)
        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse(
            body, media_type=media, headers={"Content-Disposition": f'attachment; filename="electrolytes.{fmt}"'}
        )

    return app


def _add_collection_route(app: FastAPI, db: Database, path: str, name: str, summary: str) -> None:
    spec = q.SPECS[name]
    dependency = query_params(*spec.filters, *PAGE)

    def endpoint(params: dict = Depends(dependency)) -> Response:
        limit, skip = params.pop("_limit"), params.pop("_skip")
        sort = q.parse_sort(spec, params.pop("_sort"))
        fields = q.parse_fields(spec, params.pop("_fields"))
        criteria = q.build_criteria(spec, params)
        docs, total = db.page(name, criteria, q.projection(spec, fields), sort, skip, limit)
        return SafeJSONResponse({"data": docs, "meta": {"total": total, "limit": limit, "skip": skip}})

    endpoint.__name__ = f"list_{name}"
    app.add_api_route(
        path,
        endpoint,
        methods=["GET"],
        tags=[name],
        summary=summary,
        name=f"list_{name}",
        responses={200: {"description": "`{data: [documents], meta: {total, limit, skip}}`"}},
    )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        detail = None if isinstance(exc.detail, str) else exc.detail
        return error_response(exc.status_code, message, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        where = ", ".join(".".join(map(str, d["loc"][1:] or d["loc"])) for d in detail)
        return error_response(422, f"invalid request parameter(s): {where}", detail)

    @app.exception_handler(q.QueryError)
    async def query_error(_: Request, exc: q.QueryError) -> Response:
        return error_response(422, exc.message, exc.detail)

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> Response:
        return error_response(500, "internal server error", {"type": type(exc).__name__})


def serve(
    host: str = "127.0.0.1", port: int = 8000, settings: ElectroDBSettings | None = None, log_level: str = "info"
) -> None:
    """Run the API with uvicorn (blocking) on ``host:port`` over the database of ``settings``."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
