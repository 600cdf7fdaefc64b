"""The electrolyte summaries: ``GET /electrolytes`` (filtered, paged) and ``GET /electrolytes/{electrolyte_id}``.

One summary per (salt, molality, temperature, model): the headline properties with errors, convergence
statuses and experiment. :func:`find_summary` (a summary or 404) also serves the summaries' array routes
(:mod:`electrodb.api.resources.properties`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import APIRouter, Depends, Response
from fastapi import Path as PathParam
from starlette.exceptions import HTTPException as StarletteHTTPException

from electrodb.api import schemas
from electrodb.api.database import Database
from electrodb.api.jsonout import SafeJSONResponse
from electrodb.api.params import given, query_params
from electrodb.api.resources.base import CollectionResource, page_args
from electrodb.store import query as q

__all__ = ["SUMMARY_ID", "SummaryResource", "find_summary"]

ELECTROLYTES = q.SPECS["electrolytes"]
#: The ``{electrolyte_id}`` path parameter of every route under ``/electrolytes/``.
SUMMARY_ID = PathParam(..., pattern=q.PATH_ID_PATTERN, max_length=200, description="electrolyte_id")
ONE_SUMMARY = given(query_params(ELECTROLYTES, "_fields", "_all_fields"))


def find_summary(db: Database, electrolyte_id: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary ``electrolyte_id`` (only ``properties`` if given); HTTP 404 if there is none.

    Parameters
    ----------
    db
        The database read.
    electrolyte_id
        Id of the summary.
    properties
        Mongo projection (``None``: every field).
    """
    doc = db.one("electrolytes", {"electrolyte_id": electrolyte_id}, properties)
    if doc is None:
        raise StarletteHTTPException(404, f"no electrolyte summary {electrolyte_id!r}")
    return doc


class SummaryResource(CollectionResource):
    """``GET /electrolytes`` and ``GET /electrolytes/{electrolyte_id}``."""

    collections: ClassVar[dict[str, str]] = {
        "electrolytes": "Electrolyte summaries (one per salt, molality, temperature, model): headline properties "
        "with errors, convergence statuses and experiment",
    }

    def register(self, router: APIRouter) -> None:
        """Add the list route, then the single-summary route."""
        super().register(router)
        router.add_api_route(
            "/electrolytes/{electrolyte_id}",
            self.get_electrolyte,
            methods=["GET"],
            tags=["electrolytes"],
            summary="One electrolyte summary",
            responses={200: {"model": schemas.one_response("electrolytes")}, **schemas.error_responses(404)},
        )

    def get_electrolyte(self, electrolyte_id: str = SUMMARY_ID, params: dict = Depends(ONE_SUMMARY)) -> Response:
        args, _, _ = page_args(ELECTROLYTES, params)
        return SafeJSONResponse({"data": find_summary(self.db, electrolyte_id, args["properties"])})
