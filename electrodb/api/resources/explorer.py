"""The web explorer: ``GET /`` (its page) and ``/static/...`` (its scripts and styles, from ``electrodb/api/static``).

Neither is part of the OpenAPI document; the page reads the data through the API's own routes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from electrodb.api.resources.base import Resource

__all__ = ["STATIC_DIR", "ExplorerResource"]

#: The explorer's files.
STATIC_DIR = Path(__file__).parent.parent / "static"


class ExplorerResource(Resource):
    """``GET /`` and the static files under ``/static``."""

    def register(self, router: APIRouter) -> None:
        """Add ``/`` and mount :data:`STATIC_DIR` at ``/static``."""
        router.add_api_route("/", self.index, methods=["GET"], include_in_schema=False)
        router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def index(self) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
