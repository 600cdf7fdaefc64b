"""What the API says about itself and the database: ``GET /health``, ``/facets`` and ``/properties``.

``/health`` reports the backend and the document count of every served collection (503 with the error shape
when the database cannot be read); ``/facets`` the distinct salts, models (with readable names), temperatures,
campaigns and model-trust verdicts of the summaries that ``/electrolytes`` answers by default (superseded ones
left out), what the explorer's filters offer; ``/properties`` each headline property as the registry describes it
(:func:`electrodb.documents.registry.property_table`: unit, meaning, explorer label, figure, whether experiment
exists), the convergence status vocabulary and the model-trust fields with their vocabulary.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response

from electrodb import __version__
from electrodb.analysis.convergence import STATUSES
from electrodb.api import schemas
from electrodb.api.database import Database
from electrodb.api.jsonout import SafeJSONResponse
from electrodb.api.resources.base import Resource
from electrodb.documents.committee import TRUST_STATUSES
from electrodb.documents.properties import ElectrolyteSummary
from electrodb.documents.registry import property_table
from electrodb.settings import ElectroDBSettings
from electrodb.store import query as q
from electrodb.store.check import file_problems

__all__ = ["MetaResource", "model_name", "trust_fields"]


def trust_fields() -> dict[str, str]:
    """``{field: description}`` of a summary's model-trust fields (the schema's descriptions)."""
    fields = ElectrolyteSummary.model_fields
    extra = {"committee_name": "readable name of that committee"}
    return {name: fields[name].description or extra.get(name, "") for name in q.TRUST_FIELDS}


class MetaResource(Resource):
    """``GET /health``, ``/facets`` and ``/properties`` (tag ``meta``).

    Parameters
    ----------
    db
        The database the routes read.
    settings
        The database settings (``/health`` describes the MongoDB database it names).
    """

    def __init__(self, db: Database, settings: ElectroDBSettings) -> None:
        self.db = db
        self.settings = settings

    def register(self, router: APIRouter) -> None:
        """Add ``/health``, ``/facets`` and ``/properties``."""
        router.add_api_route(
            "/health",
            self.health,
            methods=["GET"],
            tags=["meta"],
            summary="Database status",
            responses={200: {"model": schemas.Document}, **schemas.error_responses(503)},
        )
        router.add_api_route(
            "/facets",
            self.facets,
            methods=["GET"],
            tags=["meta"],
            summary="Distinct salts, models (with readable names), temperatures, campaigns and model-trust "
            "verdicts of the summaries (superseded ones left out, as /electrolytes does by default)",
            responses={200: {"model": schemas.Document}},
        )
        router.add_api_route(
            "/properties",
            self.properties,
            methods=["GET"],
            tags=["meta"],
            summary="Headline properties (unit, meaning, explorer label, figure); the status vocabulary; the "
            "model-trust fields and verdicts",
            responses={200: {"model": schemas.Document}},
        )

    def health(self) -> Response:
        db = self.db
        info = {
            "backend": "embedded" if db.embedded else "mongodb",
            "database": "embedded (SQLite)" if db.embedded else self.settings.describe(),
            "read_only": True,
            "version": __version__,
        }
        try:
            damaged = file_problems(self.settings) if db.embedded else []
            if damaged:  # any collection file, served or not: a build or a job would meet it
                names = ", ".join(f"{p.collection!r} is {p.state}" for p in damaged)
                raise HTTPException(503, f"database unavailable: collection {names}; restore from a backup")
            counts = db.counts()
        except Exception as exc:  # report, do not crash; an unreadable collection is named (HTTPException 503)
            cause = exc.__cause__ if isinstance(exc, HTTPException) and exc.__cause__ is not None else exc
            message = exc.detail if isinstance(exc, HTTPException) else "database unavailable"
            return SafeJSONResponse(
                {
                    "error": {"status": 503, "message": message, "detail": {"type": type(cause).__name__}},
                    "status": "error",
                    **info,
                },
                status_code=503,
            )
        return SafeJSONResponse({"status": "ok", **info, "counts": counts})

    def facets(self) -> Response:
        # the default answer of /electrolytes: a filter offered here never leads to only superseded results
        default = q.build_criteria(q.SPECS["electrolytes"], {})
        fields = ("salt", "model_id", "temperature", "campaign_ids", "model_trust")
        found = self.db.distinct("electrolytes", fields, default)
        data: dict[str, Any] = {f: sorted(found[f], key=str) for f in ("salt", "model_id", "temperature")}
        data["campaign"] = sorted(found["campaign_ids"], key=str)
        data["model_trust"] = [s for s in TRUST_STATUSES if s in found["model_trust"]]
        data["model_name"] = {mid: model_name(self.db, mid) for mid in data["model_id"]}
        return SafeJSONResponse({"data": data})

    def properties(self) -> Response:
        data = property_table()
        meta = {"statuses": list(STATUSES), "trust_statuses": list(TRUST_STATUSES), "trust_fields": trust_fields()}
        return SafeJSONResponse({"data": data, "meta": meta})


def model_name(db: Database, model_id: str) -> str | None:
    """Readable name of a model: the ``models`` collection's ``name`` (what ``GET /models`` shows), else the
    summaries' ``model_name`` (a model without a document in ``models``).

    Parameters
    ----------
    db
        The database read.
    model_id
        Id of the model.
    """
    model = db.one("models", {"model_id": model_id}, {"name": 1})
    if model and model.get("name"):
        return str(model["name"])
    doc = db.one("electrolytes", {"model_id": model_id}, {"model_name": 1})
    return str(doc["model_name"]) if doc and doc.get("model_name") else None
