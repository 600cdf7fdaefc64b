"""Read-only HTTP API of an ElectroDB database (FastAPI), plus the web explorer at ``/``.

``create_app(settings)`` opens the stores with ``get_stores(settings, read_only=True)`` (the embedded SQLite
store or MongoDB) and serves them through GET routes only. Every query parameter is typed, patterned and bounded
(:mod:`electrodb.api.params`), so the OpenAPI schema describes what is accepted; filters become Mongo criteria
in :mod:`electrodb.store.query` and are never passed through. Only find / count / sort / skip / limit / distinct are
used, and both backends do them in the database (indexes), thread-safely.

List answers: ``{"data": [...], "meta": {"total_doc", "limit", "skip", "max_limit", "api_version",
"warnings", "total" (deprecated)}}``. Errors share one JSON shape:
``{"error": {"status": int, "message": str, "detail": ...}}``. No absolute server path is ever served: path
strings are reduced to their file name (:func:`jsonable`). CORS is off unless ``settings.cors_origins`` lists
origins.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from electrodb import __version__
from electrodb.api import schemas
from electrodb.api.cache import ResponseCache
from electrodb.api.compress import GZipMiddleware
from electrodb.api.database import SERVED, Database
from electrodb.api.jsonout import SafeJSONResponse, dumps, jsonable, strip_path
from electrodb.api.params import (
    DEPRECATED,
    MAX_FRAME_ATOMS,
    MAX_FRAMES,
    PAGE,
    fast_dependencies,
    given,
    guard_query_string,
    query_params,
)
from electrodb.documents.registry import SUMMARY_PROPERTIES
from electrodb.settings import ElectroDBSettings, get_settings
from electrodb.store import query as q

__all__ = ["SERVED", "Database", "create_app", "jsonable", "serve", "strip_path"]

STATIC_DIR = Path(__file__).parent / "static"
MAX_TRAJECTORIES = 64
#: Default bound of the response cache (MiB of answer bytes; ``0`` disables it).
CACHE_MB = 64.0


def error_response(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> SafeJSONResponse:
    return SafeJSONResponse(
        {"error": {"status": status, "message": message, "detail": detail}}, status_code=status, headers=headers
    )


# ------------------------------------------------------------------------------------------ paging


def _page_args(spec: q.CollectionSpec, params: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Pop the paging parameters: ``(args {skip, limit, sort, properties, page?, per_page?}, warnings, deprecated)``.

    ``_page``/``_per_page`` (emmet style) take precedence over ``_skip``/``_limit``; ``_sort_fields`` over the
    deprecated ``_sort``; ``_all_fields=true`` over ``_fields``. Every override is reported in the warnings.
    """
    named: frozenset[str] = params.pop("_given")
    warnings: list[str] = []
    deprecated = [name for name in DEPRECATED if name in named]
    for name in deprecated:
        warnings.append(f"parameter {name} is deprecated; use {DEPRECATED[name]}")
    page, per_page = params.pop("_page", None), params.pop("_per_page", None)
    limit, skip = params.pop("_limit", q.DEFAULT_LIMIT), params.pop("_skip", 0)
    args: dict[str, Any] = {}
    if page is not None or per_page is not None:
        per_page = per_page or q.DEFAULT_LIMIT
        page = page or 1
        ignored = [n for n in ("_skip", "_limit") if n in named]
        if ignored:
            warnings.append(f"{' and '.join(ignored)} ignored: _page/_per_page given")
        skip, limit = min((page - 1) * per_page, q.MAX_SKIP), per_page
        args.update(page=page, per_page=per_page)
    sort_value = params.pop("_sort_fields", None)
    old_sort = params.pop("_sort", None)
    if sort_value and old_sort:
        warnings.append("_sort ignored: _sort_fields given")
    sort = q.parse_sort(spec, sort_value or old_sort, "_sort_fields" if sort_value or not old_sort else "_sort")
    fields_value, all_fields = params.pop("_fields", None), params.pop("_all_fields", False)
    if all_fields and fields_value:
        warnings.append("_fields ignored: _all_fields=true given")
    fields = None if all_fields else q.parse_fields(spec, fields_value)
    args.update(skip=skip, limit=limit, sort=sort, properties=q.projection(spec, fields))
    return args, warnings, deprecated


def _deprecation_headers(deprecated: list[str]) -> dict[str, str] | None:
    if not deprecated:
        return None
    text = "; ".join(f"{n} is deprecated, use {DEPRECATED[n]}" for n in deprecated)
    return {"Deprecation": "true", "Warning": f'299 electrodb "{text}"'}


def _meta(total: int, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    meta = {
        "total_doc": total,
        "total": total,  # deprecated alias (emmet-api / mp-api name: total_doc)
        "limit": args["limit"],
        "skip": args["skip"],
        "max_limit": q.MAX_LIMIT,
        "api_version": __version__,
        "warnings": warnings,
    }
    if "page" in args:
        meta.update(page=args["page"], per_page=args["per_page"])
    return meta


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
    import os

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
        title="ElectroDB API",
        version=__version__,
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        dependencies=[Depends(guard_query_string)],
        responses=schemas.error_responses(422, 500),
        description="Read-only access to electrolyte properties computed by ElectroDB (NNP molecular dynamics). "
        "Units: Å, ps, K, mol/kg, diffusion in 1e-9 m²/s. Every headline property P comes with P_err, "
        "P_status (converged | unconverged | insufficient), P_reason and P_criterion; filter with P_status. "
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
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET"], allow_headers=["*"])
    _add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get(
        "/health",
        tags=["meta"],
        summary="Database status",
        responses={200: {"model": schemas.Document}, **schemas.error_responses(503)},
    )
    def health() -> Response:
        info = {
            "backend": "embedded" if db.embedded else "mongodb",
            "database": "embedded (SQLite)" if db.embedded else settings.describe(),
            "read_only": True,
            "version": __version__,
        }
        try:
            counts = db.counts()
        except Exception as exc:  # report, do not crash
            return SafeJSONResponse(
                {
                    "error": {"status": 503, "message": "database unavailable", "detail": {"type": type(exc).__name__}},
                    "status": "error",
                    **info,
                },
                status_code=503,
            )
        return SafeJSONResponse({"status": "ok", **info, "counts": counts})

    @app.get(
        "/facets",
        tags=["meta"],
        summary="Distinct salts, models (with readable names) and temperatures of the summaries",
        responses={200: {"model": schemas.Document}},
    )
    def facets() -> Response:
        found = db.distinct("electrolytes", ("salt", "model_id", "temperature", "campaign_ids"))
        data: dict[str, Any] = {f: sorted(found[f], key=str) for f in ("salt", "model_id", "temperature")}
        data["campaign"] = sorted(found["campaign_ids"], key=str)
        data["model_name"] = {mid: _model_name(db, mid) for mid in data["model_id"]}
        return SafeJSONResponse({"data": data})

    @app.get(
        "/properties",
        tags=["meta"],
        summary="Headline properties of the summaries: unit and meaning; the status vocabulary",
        responses={200: {"model": schemas.Document}},
    )
    def properties() -> Response:
        from electrodb.analysis.convergence import STATUSES

        data = {p: {"unit": u, "description": d} for p, (u, d) in SUMMARY_PROPERTIES.items()}
        return SafeJSONResponse({"data": data, "meta": {"statuses": list(STATUSES)}})

    _add_collection_route(
        app,
        db,
        "/electrolytes",
        "electrolytes",
        "Electrolyte summaries (one per salt, molality, temperature, model): headline properties with errors, "
        "convergence statuses and experiment",
    )

    summary_path = PathParam(..., pattern=q.PATH_ID_PATTERN, max_length=200, description="electrolyte_id")
    one_responses = {**schemas.error_responses(404)}

    def _summary(electrolyte_id: str, properties: dict | None = None) -> dict:
        doc = db.one("electrolytes", {"electrolyte_id": electrolyte_id}, properties)
        if doc is None:
            raise StarletteHTTPException(404, f"no electrolyte summary {electrolyte_id!r}")
        return doc

    electrolytes = q.SPECS["electrolytes"]

    @app.get(
        "/electrolytes/{electrolyte_id}",
        tags=["electrolytes"],
        summary="One electrolyte summary",
        responses={200: {"model": schemas.one_response("electrolytes")}, **one_responses},
    )
    def get_electrolyte(
        electrolyte_id: str = summary_path,
        params: dict = Depends(given(query_params(electrolytes, "_fields", "_all_fields"))),
    ) -> Response:
        args, _, _ = _page_args(electrolytes, params)
        return SafeJSONResponse({"data": _summary(electrolyte_id, args["properties"])})

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
        summary="g(r), running coordination n(r) and shells (with statuses) of the summary's trajectories",
        responses={200: {"model": schemas.Document}, **one_responses},
    )
    def get_rdf(
        electrolyte_id: str = summary_path, params: dict = Depends(query_params(None, "pairs", "max_points"))
    ) -> Response:
        data = _arrays(electrolyte_id, "structure", "rdf", ("shells",), _select(params["pairs"]), params["max_points"])
        return SafeJSONResponse({"data": data})

    @app.get(
        "/electrolytes/{electrolyte_id}/msd",
        tags=["electrolytes"],
        summary="Mean-squared displacements and diffusion fits (with statuses) of the summary's trajectories",
        responses={200: {"model": schemas.Document}, **one_responses},
    )
    def get_msd(
        electrolyte_id: str = summary_path, params: dict = Depends(query_params(None, "species", "max_points"))
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
        ("thermo", "Activity/osmotic coefficients over concentration series (status per document and system)"),
        ("solvation", "Solvation free energies"),
    ):
        _add_collection_route(app, db, f"/{coll}", coll, text)

    trajectories = q.SPECS["trajectories"]

    @app.get(
        "/trajectories/{trajectory_id}",
        tags=["trajectories"],
        summary="One trajectory's metadata",
        responses={200: {"model": schemas.one_response("trajectories")}, **one_responses},
    )
    def get_trajectory(
        trajectory_id: str = PathParam(..., pattern=q.PATH_ID_PATTERN, max_length=200),
        params: dict = Depends(given(query_params(trajectories, "_fields", "_all_fields"))),
    ) -> Response:
        args, _, _ = _page_args(trajectories, params)
        # one document: per-atom lists included unless _fields selects fields
        props = args["properties"] if args["properties"] and all(args["properties"].values()) else None
        doc = db.one("trajectories", {"trajectory_id": trajectory_id}, props)
        if doc is None:
            raise StarletteHTTPException(404, f"no trajectory {trajectory_id!r}")
        return SafeJSONResponse({"data": doc})

    @app.get(
        "/trajectories/{trajectory_id}/frames",
        tags=["trajectories"],
        summary="Frames of one trajectory (unwrapped positions, cells, times), paged with _skip/_limit",
        description="Arrays are zlib-compressed little-endian bytes in base64 (`{dtype, shape, zb64}`; "
        f"`electrodb.store.frames.decode_array`). One answer carries at most {MAX_FRAMES} frames and "
        f"{MAX_FRAME_ATOMS:,} frames × atoms; `meta.total_doc` is the number of frames, `meta.max_limit` the "
        "most frames per answer for this trajectory. 404 for an unknown id or frames that are not stored.",
        responses={200: {"model": schemas.FramesResponse}, **one_responses},
    )
    def get_trajectory_frames(
        trajectory_id: str = PathParam(..., pattern=q.PATH_ID_PATTERN, max_length=200),
        params: dict = Depends(query_params(None, "frame_skip", "frame_limit")),
    ) -> Response:
        from electrodb.io.export import load_frames
        from electrodb.store.frames import TrajectoryError, encode_array

        meta = db.one("trajectories", {"trajectory_id": trajectory_id})
        if meta is None:
            raise StarletteHTTPException(404, f"no trajectory {trajectory_id!r}")
        n_total, n_atoms = int(meta.get("n_frames") or 0), max(1, int(meta.get("n_atoms") or 1))
        max_limit = max(1, min(MAX_FRAMES, MAX_FRAME_ATOMS // n_atoms))
        warnings = []
        limit = params["_limit"] or max_limit
        if limit > max_limit:
            warnings.append(f"_limit reduced to {max_limit}: at most {MAX_FRAME_ATOMS:,} frames × atoms per answer")
            limit = max_limit
        start = min(params["_skip"], n_total)
        try:
            arrays = load_frames(meta, db.store("data"), start, start + limit)
        except TrajectoryError:
            raise StarletteHTTPException(404, f"frames of trajectory {trajectory_id!r} are not stored") from None
        frames = {"start": start, "stop": start + arrays.n_frames, "n_frames": arrays.n_frames}
        body = jsonable(
            {
                "data": {"trajectory": meta, "frames": frames},
                "meta": {
                    "total_doc": n_total,
                    "skip": start,
                    "limit": limit,
                    "max_limit": max_limit,
                    "max_frame_atoms": MAX_FRAME_ATOMS,
                    "api_version": __version__,
                    "warnings": warnings,
                },
            }
        )
        # the encoded arrays are added after jsonable: base64 text may contain '/', never to be path-stripped
        for key in ("positions", "cells", "times_ps", "potential_energy_eV", "temperature_K"):
            body["data"]["frames"][key] = encode_array(getattr(arrays, key))
        return Response(json.dumps(body, allow_nan=False, separators=(",", ":")), media_type="application/json")

    @app.get(
        "/reference/activity",
        tags=["meta"],
        summary="Experimental γ± and φ at 25 °C (Hamer & Wu / CRC)",
        responses={200: {"model": schemas.Document}, **schemas.error_responses(404)},
    )
    def reference_activity(params: dict = Depends(query_params(None, "reference_salt"))) -> Response:
        from electrodb.analysis.activity import reference_activity as ref

        salt = q.canonical_salt(params["salt"])
        try:
            data = ref(salt)
        except (KeyError, ValueError):
            raise StarletteHTTPException(404, f"no reference activity data for {salt!r}") from None

        def series(s: Any) -> dict[str, Any]:
            return {"molality": s.molality.tolist(), "value": s.value.tolist(), "source": list(s.source)}

        return SafeJSONResponse(
            {"data": {"salt": salt, "temperature": 298.15, "gamma_pm": series(data.gamma), "phi": series(data.phi)}}
        )

    export_names = ("format", "with_arrays", *electrolytes.filters)
    text_body = {"schema": {"type": "string"}}

    @app.get(
        "/export",
        tags=["export"],
        summary="Stream the flat ML table of matching summaries (CSV / JSONL), statuses beside every value",
        response_class=StreamingResponse,
        responses={
            200: {"description": "the table", "content": {"text/csv": text_body, "application/x-ndjson": text_body}}
        },
    )
    def export(params: dict = Depends(query_params(electrolytes, *export_names))) -> StreamingResponse:
        import itertools

        from electrodb.io.export import EXPORT_STORES, iter_csv, iter_jsonl, iter_rows

        fmt, with_arrays = params.pop("format"), params.pop("with_arrays")
        criteria = q.build_criteria(electrolytes, params)
        for name in EXPORT_STORES:
            db.store(name)
        rows = iter_rows(db.stores, criteria, with_arrays=with_arrays)
        first = list(itertools.islice(rows, 1))  # a failing query is an error answer, not a truncated table
        rows = itertools.chain(first, rows)
        body: Iterator[str] = iter_csv(rows, with_arrays) if fmt == "csv" else iter_jsonl(rows)
        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse(
            body, media_type=media, headers={"Content-Disposition": f'attachment; filename="electrolytes.{fmt}"'}
        )

    fast_dependencies(app)
    return app


def _model_name(db: Database, model_id: str) -> str | None:
    """Readable name of a model: the summaries' ``model_name``, else the ``models`` collection's ``name``."""
    doc = db.one("electrolytes", {"model_id": model_id}, {"model_name": 1})
    if doc and doc.get("model_name"):
        return str(doc["model_name"])
    model = db.one("models", {"model_id": model_id}, {"name": 1})
    return str(model["name"]) if model and model.get("name") else None


def _add_collection_route(app: FastAPI, db: Database, path: str, name: str, summary: str) -> None:
    spec = q.SPECS[name]
    dependency = given(query_params(spec, *spec.filters, *PAGE))

    def prepare(params: dict) -> tuple[dict[str, Any], tuple, list[str], list[str]]:
        """The page's arguments, the read's arguments for :meth:`Database.page_json`, warnings, deprecated names."""
        args, warnings, deprecated = _page_args(spec, params)
        criteria = q.build_criteria(spec, params)
        warnings += q.empty_ranges(criteria)
        read = (name, criteria, args["properties"], args["sort"], args["skip"], args["limit"])
        return args, read, warnings, deprecated

    def respond(page: tuple[list[bytes], int], args: dict, warnings: list[str], deprecated: list[str]) -> Response:
        docs, total = page
        body = b'{"data":[' + b",".join(docs) + b'],"meta":' + dumps(_meta(total, args, warnings)) + b"}"
        return Response(body, media_type="application/json", headers=_deprecation_headers(deprecated))

    if db.embedded:
        # A page the read model holds (match list and rendered documents cached) is answered in the event loop,
        # in well under a millisecond, with no thread-pool hop and no GIL hand-offs between threads (up to 5 ms
        # each under load); anything that reads SQLite goes to the thread pool, so a slow query never holds
        # up the answers that are ready.
        async def endpoint(params: dict = Depends(dependency)) -> Response:
            args, read, warnings, deprecated = prepare(params)
            page = db.page_json(*read, cached_only=True)
            if page is None:
                page = await run_in_threadpool(db.page_json, *read)
            return respond(page, args, warnings, deprecated)
    else:  # MongoDB: network reads, in FastAPI's thread pool so that the event loop never waits on them

        def endpoint(params: dict = Depends(dependency)) -> Response:
            args, read, warnings, deprecated = prepare(params)
            return respond(db.page_json(*read), args, warnings, deprecated)

    endpoint.__name__ = f"list_{name}"
    app.add_api_route(
        path,
        endpoint,
        methods=["GET"],
        tags=[name],
        summary=summary,
        name=f"list_{name}",
        responses={200: {"model": schemas.list_response(name), "description": "`{data: [documents], meta}`"}},
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
        names = [".".join(map(str, d["loc"][1:] or d["loc"])) for d in detail]
        reasons = "; ".join(f"{n}: {d['msg']}" for n, d in zip(names, detail, strict=True))
        body = {"parameter": names[0] if names else None, "errors": detail}
        return error_response(422, f"invalid request parameter(s): {reasons}"[:500], body)

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
    import os

    import uvicorn

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
