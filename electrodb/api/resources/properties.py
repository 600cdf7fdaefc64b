"""The per-trajectory property collections (structure, transport, pairing, kinetics) and a summary's curves.

``GET /structure``, ``/transport``, ``/pairing`` and ``/kinetics`` list the property documents of each
trajectory; ``GET /electrolytes/{electrolyte_id}/rdf`` and ``/msd`` gather the g(r) and MSD curves (decimated
to ``max_points``) with their shells and diffusion fits from the structure and transport documents of the
summary's trajectories.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from fastapi import APIRouter, Depends, Response

from electrodb.api import schemas
from electrodb.api.jsonout import SafeJSONResponse
from electrodb.api.params import query_params
from electrodb.api.resources.base import CollectionResource
from electrodb.api.resources.summaries import SUMMARY_ID, find_summary

__all__ = ["MAX_TRAJECTORIES", "PropertyResource"]

#: Most trajectories of one summary whose curves one answer carries.
MAX_TRAJECTORIES = 64
RDF_PARAMS = query_params(None, "pairs", "max_points")
MSD_PARAMS = query_params(None, "species", "max_points")


class PropertyResource(CollectionResource):
    """The property collections' list routes and the summaries' ``/rdf`` and ``/msd`` routes."""

    collections: ClassVar[dict[str, str]] = {
        "structure": "RDFs and first-shell analysis per trajectory",
        "transport": "Self-diffusion and MSDs per trajectory",
        "pairing": "Ion-pair fractions per trajectory",
        "kinetics": "Water residence times per trajectory",
    }

    def register(self, router: APIRouter) -> None:
        """Add ``/electrolytes/{electrolyte_id}/rdf`` and ``/msd``, then the list routes."""
        responses = {200: {"model": schemas.Document}, **schemas.error_responses(404)}
        router.add_api_route(
            "/electrolytes/{electrolyte_id}/rdf",
            self.get_rdf,
            methods=["GET"],
            tags=["electrolytes"],
            summary="g(r), running coordination n(r) and shells (with statuses) of the summary's trajectories",
            responses=responses,
        )
        router.add_api_route(
            "/electrolytes/{electrolyte_id}/msd",
            self.get_msd,
            methods=["GET"],
            tags=["electrolytes"],
            summary="Mean-squared displacements and diffusion fits (with statuses) of the summary's trajectories",
            responses=responses,
        )
        super().register(router)

    def get_rdf(self, electrolyte_id: str = SUMMARY_ID, params: dict = Depends(RDF_PARAMS)) -> Response:
        pairs = _select(params["pairs"])
        data = self.curves(electrolyte_id, "structure", "rdf", ("shells",), pairs, params["max_points"])
        return SafeJSONResponse({"data": data})

    def get_msd(self, electrolyte_id: str = SUMMARY_ID, params: dict = Depends(MSD_PARAMS)) -> Response:
        species = _select(params["species"])
        data = self.curves(electrolyte_id, "transport", "msd", ("diffusion",), species, params["max_points"])
        return SafeJSONResponse({"data": data})

    def curves(
        self,
        electrolyte_id: str,
        collection: str,
        field: str,
        extra: tuple[str, ...],
        select: set[str] | None,
        max_points: int,
    ) -> dict[str, Any]:
        """The curves ``field`` of the summary's trajectories, from their documents in ``collection``.

        Parameters
        ----------
        electrolyte_id
            The summary (HTTP 404 if there is none).
        collection, field
            Where the curves are: ``structure`` / ``rdf`` or ``transport`` / ``msd`` (name → ``{array: [...]}``).
        extra
            Further fields of the documents (name → value), given beside the curves.
        select
            Names of the curves (and of the entries of ``extra``) to give; ``None``: all.
        max_points
            Longer arrays are decimated to at most this many points.

        Returns
        -------
        dict
            The summary's identity, its ``trajectory_ids`` (at most :data:`MAX_TRAJECTORIES`) and
            ``trajectories``: ``[{trajectory_id, field: curves, **extra}]``.
        """
        summary = find_summary(
            self.db,
            electrolyte_id,
            {"electrolyte_id": 1, "salt": 1, "molality": 1, "temperature": 1, "model_id": 1, "trajectory_ids": 1},
        )
        tids = list(summary.get("trajectory_ids") or [])[:MAX_TRAJECTORIES]
        props = {"trajectory_id": 1, field: 1, **{e: 1 for e in extra}}
        docs = self.db.find(collection, {"trajectory_id": {"$in": tids}}, props, sort={"trajectory_id": 1})
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


def _decimate(curve: dict[str, Any], max_points: int) -> dict[str, Any]:
    """Every k-th point of each equal-length array in ``curve`` so that at most ``max_points`` remain."""
    lengths = {len(v) for v in curve.values() if isinstance(v, list)}
    n = max(lengths, default=0)
    if n <= max_points:
        return curve
    step = math.ceil(n / max_points)
    return {k: v[::step] if isinstance(v, list) and len(v) == n else v for k, v in curve.items()}


def _select(names: str | None) -> set[str] | None:
    """The names of a comma-separated list, or ``None`` (all) for none given."""
    return {s.strip() for s in names.split(",")} if names else None
