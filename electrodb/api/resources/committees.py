"""Model committees and their audits: ``GET /committees``, ``/committees/{committee_id}`` and ``GET /audits``.

A committee is K MACE models registered as one reference (:class:`~electrodb.documents.committee.CommitteeDocument`:
members, driver, σ_F threshold and its calibration, held-out errors, refine lineage); every committee is listed,
superseded ones included (``superseded_by`` names the refined one). An audit
(:class:`~electrodb.documents.committee.AuditDocument`) is one trajectory evaluated by one committee: the
per-system numbers (``frac_flagged``, ``sigma_F_max_p95``, ``worst`` frames, ``verdict``) always, the per-frame
lists (``frames``, ``times_ps``, ``sigma_F_max`` …) only when named in ``_fields`` (or with ``_all_fields``).
"""

from __future__ import annotations

from typing import ClassVar

from fastapi import APIRouter, Depends, Response
from fastapi import Path as PathParam
from starlette.exceptions import HTTPException as StarletteHTTPException

from electrodb.api import schemas
from electrodb.api.jsonout import SafeJSONResponse
from electrodb.api.params import given, query_params
from electrodb.api.resources.base import CollectionResource, page_args
from electrodb.store import query as q

__all__ = ["CommitteeResource"]

COMMITTEES = q.SPECS["committees"]
ONE_COMMITTEE = given(query_params(COMMITTEES, "_fields", "_all_fields"))
COMMITTEE_ID = PathParam(..., pattern=q.PATH_ID_PATTERN, max_length=200, description="committee_id")


class CommitteeResource(CollectionResource):
    """``GET /committees``, ``/committees/{committee_id}`` and ``GET /audits``."""

    collections: ClassVar[dict[str, str]] = {
        "committees": "Model committees (K members as one reference): σ_F threshold, calibration, held-out errors, "
        "refine lineage; superseded ones included",
        "audits": "Committee audits of trajectories: fraction of frames flagged, σ_F percentiles, worst frames and "
        "the model-trust verdict (per-frame lists only via _fields)",
    }

    def register(self, router: APIRouter) -> None:
        """Add the list routes, then one committee."""
        super().register(router)
        router.add_api_route(
            "/committees/{committee_id}",
            self.get_committee,
            methods=["GET"],
            tags=["committees"],
            summary="One committee",
            responses={200: {"model": schemas.one_response("committees")}, **schemas.error_responses(404)},
        )

    def get_committee(self, committee_id: str = COMMITTEE_ID, params: dict = Depends(ONE_COMMITTEE)) -> Response:
        args, _, _ = page_args(COMMITTEES, params)
        doc = self.db.one("committees", {"committee_id": committee_id}, args["properties"])
        if doc is None:
            raise StarletteHTTPException(
                404, f"no committee {committee_id!r}; GET /committees lists the registered ones"
            )
        return SafeJSONResponse({"data": doc})
