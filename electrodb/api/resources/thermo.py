"""Thermodynamics: ``GET /thermo``, ``GET /solvation`` and the experimental ``GET /reference/activity``.

``/thermo`` lists the activity/osmotic coefficients computed over concentration series (a status per document
and system), ``/solvation`` the solvation free energies; ``/reference/activity`` gives the experimental mean
activity coefficient γ± and osmotic coefficient φ of a salt at 25 °C (Hamer & Wu / CRC) they are compared with,
and ``/reference/conductivity`` the experimental conductivity κ (S/m) of a salt at 25 °C vs molality (McCleskey's
equations, NIST KCl standards) that σ is compared with.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import APIRouter, Depends, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from electrodb.analysis import activity
from electrodb.api import schemas
from electrodb.api.jsonout import SafeJSONResponse
from electrodb.api.params import query_params
from electrodb.api.resources.base import CollectionResource
from electrodb.builders.reference import reference_conductivity
from electrodb.store import query as q

__all__ = ["ThermoResource"]

REFERENCE_PARAMS = query_params(None, "reference_salt")
#: Temperature of the experimental reference data, K.
REFERENCE_TEMPERATURE = 298.15


class ThermoResource(CollectionResource):
    """``GET /thermo``, ``GET /solvation`` and ``GET /reference/activity``."""

    collections: ClassVar[dict[str, str]] = {
        "thermo": "Activity/osmotic coefficients over concentration series (status per document and system)",
        "solvation": "Solvation free energies",
    }

    def register(self, router: APIRouter) -> None:
        """Add the list routes, then the experimental reference."""
        super().register(router)
        router.add_api_route(
            "/reference/activity",
            self.reference_activity,
            methods=["GET"],
            tags=["meta"],
            summary="Experimental γ± and φ at 25 °C (Hamer & Wu / CRC)",
            responses={200: {"model": schemas.Document}, **schemas.error_responses(404)},
        )
        router.add_api_route(
            "/reference/conductivity",
            self.reference_conductivity,
            methods=["GET"],
            tags=["meta"],
            summary="Experimental conductivity κ (S/m) vs molality at 25 °C (McCleskey 2011; NIST KCl standards)",
            responses={200: {"model": schemas.Document}, **schemas.error_responses(404)},
        )

    def reference_conductivity(self, params: dict = Depends(REFERENCE_PARAMS)) -> Response:
        salt = q.canonical_salt(params["salt"])
        points = reference_conductivity(salt)
        if not points:
            raise StarletteHTTPException(404, f"no reference conductivity data at 25 °C for {salt!r}")
        body = {
            "salt": salt,
            "temperature": REFERENCE_TEMPERATURE,
            "molality": [p.molality for p in points],
            "value": [p.kappa_S_m for p in points],
            "unit": "S/m",
            "source": [p.source for p in points],
        }
        return SafeJSONResponse({"data": body})

    def reference_activity(self, params: dict = Depends(REFERENCE_PARAMS)) -> Response:
        salt = q.canonical_salt(params["salt"])
        try:
            data = activity.reference_activity(salt)
        except (KeyError, ValueError):
            raise StarletteHTTPException(404, f"no reference activity data for {salt!r}") from None
        body = {
            "salt": salt,
            "temperature": REFERENCE_TEMPERATURE,
            "gamma_pm": _series(data.gamma),
            "phi": _series(data.phi),
        }
        return SafeJSONResponse({"data": body})


def _series(series: activity.ReferenceSeries) -> dict[str, Any]:
    """One experimental series as JSON lists: molalities, values and the source of each value."""
    return {"molality": series.molality.tolist(), "value": series.value.tolist(), "source": list(series.source)}
