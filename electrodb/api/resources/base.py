"""What the API's resources share: the resource interface and the paged list route of one collection.

A resource (maggma's API resource pattern) is one family of GET routes with what they need (the
:class:`~electrodb.api.database.Database`, the settings); ``register(router)`` adds its routes.
:class:`CollectionResource` gives each of its collections the list route ``GET /{name}``: filters, paging,
sorting and projection, answered from the rendered documents of :meth:`Database.page_json`. On the embedded
store a page the read model already holds is answered in the event loop, anything that reads SQLite in the
thread pool; on MongoDB every read runs in the thread pool. :func:`page_args` also serves the single-document
routes (``_fields`` / ``_all_fields``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from fastapi import APIRouter, Depends, Response
from starlette.concurrency import run_in_threadpool

from electrodb import __version__
from electrodb.api import schemas
from electrodb.api.database import Database
from electrodb.api.jsonout import dumps
from electrodb.api.params import DEPRECATED, PAGE, given, query_params
from electrodb.store import query as q

__all__ = ["CollectionResource", "Resource", "deprecation_headers", "list_meta", "page_args"]


class Resource(ABC):
    """A family of GET routes of the API.

    Endpoint methods carry no docstring: FastAPI would publish it as the operation's description in the OpenAPI
    document; a route's text is its ``summary`` / ``description`` argument.
    """

    @abstractmethod
    def register(self, router: APIRouter) -> None:
        """Add this resource's routes to ``router`` (``app.router`` in :func:`electrodb.api.app.create_app`)."""


class CollectionResource(Resource):
    """A resource over collections of the database, each served as a paged list at ``GET /{name}``.

    Parameters
    ----------
    db
        The database the routes read.
    """

    #: Collection name → summary of its list route (in the order the routes are registered).
    collections: ClassVar[dict[str, str]] = {}

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, router: APIRouter) -> None:
        """Add the list route of each of :attr:`collections`."""
        for name, summary in self.collections.items():
            self.add_list_route(router, name, summary)

    def add_list_route(self, router: APIRouter, name: str, summary: str) -> None:
        """Add ``GET /{name}``: the collection's documents matching the filters, paged, as ``{data, meta}``."""
        router.add_api_route(
            f"/{name}",
            self.list_endpoint(name),
            methods=["GET"],
            tags=[name],
            summary=summary,
            name=f"list_{name}",
            responses={200: {"model": schemas.list_response(name), "description": "`{data: [documents], meta}`"}},
        )

    def list_endpoint(self, name: str) -> Callable[..., Any]:
        """The endpoint of ``GET /{name}``: a coroutine on the embedded store, a plain function on MongoDB."""
        db, spec = self.db, q.SPECS[name]
        dependency = given(query_params(spec, *spec.filters, *PAGE))
        if db.embedded:
            # A page the read model holds (match list and rendered documents cached) is answered in the event
            # loop, in well under a millisecond, with no thread-pool hop and no GIL hand-offs between threads
            # (up to 5 ms each under load); anything that reads SQLite goes to the thread pool, so a slow query
            # never holds up the answers that are ready.
            async def endpoint(params: dict = Depends(dependency)) -> Response:
                args, read, warnings, deprecated = _prepare(spec, params)
                page = db.page_json(*read, cached_only=True)
                if page is None:
                    page = await run_in_threadpool(db.page_json, *read)
                return _respond(page, args, warnings, deprecated)
        else:  # MongoDB: network reads, in FastAPI's thread pool so that the event loop never waits on them

            def endpoint(params: dict = Depends(dependency)) -> Response:
                args, read, warnings, deprecated = _prepare(spec, params)
                return _respond(db.page_json(*read), args, warnings, deprecated)

        endpoint.__name__ = f"list_{name}"
        return endpoint


def page_args(spec: q.CollectionSpec, params: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Pop the paging parameters: ``(args {skip, limit, sort, properties, page?, per_page?}, warnings, deprecated)``.

    ``_page``/``_per_page`` (emmet style) take precedence over ``_skip``/``_limit``; ``_sort_fields`` over the
    deprecated ``_sort``; ``_all_fields=true`` over ``_fields``. Every override is reported in the warnings.

    Parameters
    ----------
    spec
        The collection's query specification.
    params
        The route's parameter values with ``_given`` (:func:`~electrodb.api.params.given`); the paging
        parameters and ``_given`` are removed from it, the filters are left.
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


def deprecation_headers(deprecated: list[str]) -> dict[str, str] | None:
    """``Deprecation`` and ``Warning`` headers naming the deprecated parameters given, or ``None``."""
    if not deprecated:
        return None
    text = "; ".join(f"{n} is deprecated, use {DEPRECATED[n]}" for n in deprecated)
    return {"Deprecation": "true", "Warning": f'299 electrodb "{text}"'}


def list_meta(total: int, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The ``meta`` of a list answer: total, paging (from :func:`page_args`), bounds, version, warnings."""
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


def _prepare(spec: q.CollectionSpec, params: dict) -> tuple[dict[str, Any], tuple, list[str], list[str]]:
    """The page's arguments, the read's arguments for :meth:`Database.page_json`, warnings, deprecated names."""
    args, warnings, deprecated = page_args(spec, params)
    criteria = q.build_criteria(spec, params)
    warnings += q.empty_ranges(criteria)
    read = (spec.name, criteria, args["properties"], args["sort"], args["skip"], args["limit"])
    return args, read, warnings, deprecated


def _respond(page: tuple[list[bytes], int], args: dict, warnings: list[str], deprecated: list[str]) -> Response:
    """The list answer from the page's rendered documents, spliced into ``{"data": [...], "meta": {...}}``."""
    docs, total = page
    body = b'{"data":[' + b",".join(docs) + b'],"meta":' + dumps(list_meta(total, args, warnings)) + b"}"
    return Response(body, media_type="application/json", headers=deprecation_headers(deprecated))
