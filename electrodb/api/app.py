"""Read-only HTTP API of an ElectroDB database (FastAPI), plus the web explorer at ``/``.

``create_app(settings)`` opens the stores with ``get_stores(settings, read_only=True)`` (the embedded SQLite
store or MongoDB) and serves them through GET routes only, defined by the resources of
:mod:`electrodb.api.resources` (one class per family of routes); this module builds the app around them: the
response cache, gzip and CORS middleware, the error handlers and the fast parameter dependencies. Every query
parameter is typed, patterned and bounded (:mod:`electrodb.api.params`), so the OpenAPI schema describes what
is accepted; filters become Mongo criteria in :mod:`electrodb.store.query` and are never passed through. Only
find / count / sort / skip / limit / distinct are used, and both backends do them in the database (indexes),
thread-safely.

List answers: ``{"data": [...], "meta": {"total_doc", "limit", "skip", "max_limit", "api_version",
"warnings", "total" (deprecated)}}``. Errors share one JSON shape:
``{"error": {"status": int, "message": str, "detail": ...}}``. No absolute server path is ever served: path
strings are reduced to their file name (:func:`jsonable`). CORS is off unless ``settings.cors_origins`` lists
origins.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from electrodb import __version__
from electrodb.api import schemas
from electrodb.api.cache import ResponseCache
from electrodb.api.compress import GZipMiddleware
from electrodb.api.database import SERVED, Database
from electrodb.api.errors import validation_message
from electrodb.api.jsonout import SafeJSONResponse, jsonable, strip_path
from electrodb.api.params import fast_dependencies, guard_query_string
from electrodb.api.resources import (
    CommitteeResource,
    DocsResource,
    ExplorerResource,
    ExportResource,
    MetaResource,
    ModelResource,
    PropertyResource,
    Resource,
    SummaryResource,
    ThermoResource,
    TrajectoryResource,
)
from electrodb.settings import ElectroDBSettings, get_settings
from electrodb.store import query as q

__all__ = ["SERVED", "Database", "create_app", "jsonable", "serve", "strip_path"]

TITLE = "ElectroDB API"
#: Default bound of the response cache (MiB of answer bytes; ``0`` disables it).
CACHE_MB = 64.0


def error_response(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> SafeJSONResponse:
    """An error answer in the API's one error shape: ``{"error": {"status", "message", "detail"}}``."""
    return SafeJSONResponse(
        {"error": {"status": status, "message": message, "detail": detail}}, status_code=status, headers=headers
    )


def create_app(settings: ElectroDBSettings | None = None, cache_mb: float | None = None) -> FastAPI:
    """The ElectroDB read-only API over the database of ``settings`` (default: process settings).

    Parameters
    ----------
    settings
        Database settings (default: the process settings).
    cache_mb
        Bound of each of the two read caches of the list routes, MiB: the answers (:mod:`electrodb.api.cache`)
        and the rendered documents (:meth:`Database.page_json`); embedded store only, every use checked
        against the collection's version token; ``0``: no caches.
        Default: the ``ELECTRODB_API_CACHE_MB`` environment variable if set (how ``serve --workers`` passes
        it on), else :data:`CACHE_MB`.
    """
    settings = settings or get_settings()
    if cache_mb is None:
        text = os.environ.get("ELECTRODB_API_CACHE_MB", "")
        cache_mb = _cache_mb(text) if text else CACHE_MB
    if not (math.isfinite(cache_mb) and cache_mb >= 0):
        raise ValueError(f"cache_mb must be a finite number ≥ 0 (MiB), not {cache_mb!r}")
    db = Database(settings, doc_cache_bytes=int(cache_mb * 2**20))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        db.close()

    app = FastAPI(
        title=TITLE,
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from DocsResource, with their files served here (no CDN)
        redoc_url=None,
        default_response_class=SafeJSONResponse,
        dependencies=[Depends(guard_query_string)],
        responses=schemas.error_responses(422, 500),
        description="Read-only access to electrolyte properties computed by ElectroDB (NNP molecular dynamics). "
        "Units: Å, ps, K, mol/kg, diffusion in 1e-9 m²/s. Every headline property P comes with P_err, "
        "P_status (converged | unconverged | insufficient: P null | input: from a correlation or an input, not "
        "computed), P_reason, P_criterion, P_n_eff (independent samples behind P_err) and P_t_equil_ps; filter "
        "with P_status. "
        "Conventions of emmet-api / mp-api: _fields, _all_fields, _sort_fields, _skip/_limit or "
        "_page/_per_page, comma-separated lists, meta.total_doc.",
    )
    app.state.db = db
    # level 1: ~5x faster than zlib's default 9 for JSON pages; ISA-L where installed (electrodb.api.compress)
    app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=1)
    # outside gzip: a cached answer is replayed as sent (compressed or not), before any routing or validation
    list_routes = {f"/{name}": name for name in SERVED}
    app.add_middleware(ResponseCache, routes=list_routes, version=db.version, max_bytes=int(cache_mb * 2**20))
    origins = list(getattr(settings, "cors_origins", None) or [])
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET"], allow_headers=["*"])
    _add_error_handlers(app)
    for resource in _resources(db, settings):
        resource.register(app.router)
    # after every route: the OpenAPI document is generated from the declared parameters, then the twins serve
    fast_dependencies(app)
    return app


def _resources(db: Database, settings: ElectroDBSettings) -> list[Resource]:
    """The API's resources, in the order their routes are registered (and listed in the OpenAPI document)."""
    return [
        ExplorerResource(),
        MetaResource(db, settings),
        SummaryResource(db),
        PropertyResource(db),
        TrajectoryResource(db),
        ModelResource(db),
        CommitteeResource(db),
        ThermoResource(db),
        ExportResource(db),
        DocsResource(TITLE),
    ]


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        detail = None if isinstance(exc.detail, str) else exc.detail
        return error_response(exc.status_code, message, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        # one line naming the parameter and its value, with close matches; never a pattern's regex
        return error_response(422, *validation_message(exc.errors()))

    @app.exception_handler(q.QueryError)
    async def query_error(_: Request, exc: q.QueryError) -> Response:
        return error_response(422, exc.message, exc.detail)

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> Response:
        return error_response(500, "internal server error", {"type": type(exc).__name__})


def _cache_mb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"ELECTRODB_API_CACHE_MB={text!r} is not a number; give MiB, e.g. 64 (0: no cache)") from None
    return value


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ElectroDBSettings | None = None,
    log_level: str = "info",
    workers: int = 1,
    cache_mb: float = CACHE_MB,
) -> None:
    """Run the API with uvicorn (blocking) on ``host:port`` over the database of ``settings``.

    ``workers > 1`` starts that many uvicorn worker processes (each with its own connections and response
    cache); they read the database from the process settings (environment / config file), so ``settings``
    must then be left ``None``.
    """
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, not {workers}")
    if not (math.isfinite(cache_mb) and cache_mb >= 0):
        raise ValueError(f"cache_mb must be a finite number ≥ 0 (MiB), not {cache_mb!r}")
    if workers == 1:
        uvicorn.run(create_app(settings, cache_mb), host=host, port=port, log_level=log_level)
        return
    if settings is not None:
        raise ValueError("workers > 1 read the database from the process settings; pass settings=None")
    os.environ["ELECTRODB_API_CACHE_MB"] = repr(float(cache_mb))
    uvicorn.run(
        "electrodb.api.app:create_app", factory=True, host=host, port=port, log_level=log_level, workers=workers
    )
