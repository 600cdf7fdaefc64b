"""The download of the summaries as one flat ML table: ``GET /export`` (CSV or JSON lines, streamed).

The rows are :func:`electrodb.io.export.iter_rows` of the summaries matching the electrolyte filters: every
value with its status beside it, the g(r)/MSD arrays as extra columns with ``with_arrays=true``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from electrodb.api.database import Database
from electrodb.api.params import query_params
from electrodb.api.resources.base import Resource
from electrodb.io.export import EXPORT_STORES, iter_csv, iter_jsonl, iter_rows
from electrodb.store import query as q

__all__ = ["ExportResource"]

ELECTROLYTES = q.SPECS["electrolytes"]
EXPORT_PARAMS = query_params(ELECTROLYTES, "format", "with_arrays", *ELECTROLYTES.filters)
TEXT_BODY = {"schema": {"type": "string"}}


class ExportResource(Resource):
    """``GET /export``.

    Parameters
    ----------
    db
        The database the table is read from.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, router: APIRouter) -> None:
        """Add ``/export``."""
        router.add_api_route(
            "/export",
            self.export,
            methods=["GET"],
            tags=["export"],
            summary="Stream the flat ML table of matching summaries (CSV / JSONL), statuses beside every value",
            response_class=StreamingResponse,
            responses={
                200: {"description": "the table", "content": {"text/csv": TEXT_BODY, "application/x-ndjson": TEXT_BODY}}
            },
        )

    def export(self, params: dict = Depends(EXPORT_PARAMS)) -> StreamingResponse:
        fmt, with_arrays = params.pop("format"), params.pop("with_arrays")
        criteria = q.build_criteria(ELECTROLYTES, params)
        for name in EXPORT_STORES:
            self.db.store(name)
        rows = iter_rows(self.db.stores, criteria, with_arrays=with_arrays)
        first = list(itertools.islice(rows, 1))  # a failing query is an error answer, not a truncated table
        rows = itertools.chain(first, rows)
        body: Iterator[str] = iter_csv(rows, with_arrays) if fmt == "csv" else iter_jsonl(rows)
        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse(
            body, media_type=media, headers={"Content-Disposition": f'attachment; filename="electrolytes.{fmt}"'}
        )
