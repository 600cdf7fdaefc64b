"""The per-trajectory property collections (structure, transport, pairing, kinetics) and a summary's curves.

``GET /structure``, ``/transport``, ``/pairing`` and ``/kinetics`` list the property documents of each
trajectory; ``GET /electrolytes/{electrolyte_id}/rdf`` and ``/msd`` gather the g(r) and MSD curves (decimated
to ``max_points``) with their shells and diffusion fits from the structure and transport documents of the
summary's trajectories. Each trajectory's RDFs come with their histogram ``grid`` (:func:`rdf_grid`): range,
number and width of bins and the bin edges, so that the same histogram can be rebuilt elsewhere.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from fastapi import APIRouter, Depends, Response

from electrodb.api import schemas
from electrodb.api.jsonout import SafeJSONResponse
from electrodb.api.params import query_params
from electrodb.api.resources.base import CollectionResource
from electrodb.api.resources.summaries import SUMMARY_ID, find_summary

__all__ = ["MAX_TRAJECTORIES", "PropertyResource", "rdf_grid"]

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
            summary="g(r), running coordination n(r), shells (with statuses) and histogram grid (r_max, bin edges) "
            "of the summary's trajectories",
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
            ``trajectories``: ``[{trajectory_id, field: curves, **extra}]``, with the RDFs' ``grid``
            (:func:`rdf_grid`).
        """
        summary = find_summary(
            self.db,
            electrolyte_id,
            {"electrolyte_id": 1, "salt": 1, "molality": 1, "temperature": 1, "model_id": 1, "trajectory_ids": 1},
        )
        tids = list(summary.get("trajectory_ids") or [])[:MAX_TRAJECTORIES]
        props = {"trajectory_id": 1, field: 1, **{e: 1 for e in extra}}
        if field == "rdf":
            props["provenance"] = 1  # the histogram's r_max_A and n_bins (analysis parameters)
        docs = self.db.find(collection, {"trajectory_id": {"$in": tids}}, props, sort={"trajectory_id": 1})
        out = []
        for doc in docs:
            grid = {"grid": rdf_grid(doc, max_points)} if field == "rdf" else {}
            curves = {
                k: _decimate(v, max_points)
                for k, v in (doc.get(field) or {}).items()
                if isinstance(v, dict) and (select is None or k in select)
            }
            extras = {e: {k: v for k, v in (doc.get(e) or {}).items() if select is None or k in select} for e in extra}
            out.append({"trajectory_id": doc["trajectory_id"], field: curves, **grid, **extras})
        summary.pop("trajectory_ids", None)
        return {**summary, "trajectory_ids": tids, "trajectories": out}


def rdf_grid(doc: dict[str, Any], max_points: int) -> dict[str, Any] | None:
    """The histogram grid of a structure document's RDFs: what a peer needs to rebuild the same histograms.

    The structure builder bins distances in ``[0, r_max_A]`` into ``n_bins`` equal bins (edges
    ``numpy.linspace(0, r_max_A, n_bins + 1)``, the last bin closed) and records ``r_max_A`` and ``n_bins`` in the
    document's ``provenance.analysis``; the stored ``r`` are the bin centres rounded to 1e-4 Å, too coarse to
    recover the grid from.

    Parameters
    ----------
    doc
        The structure document (``rdf`` and ``provenance``).
    max_points
        The answer's bound on curve points (to say which bins a decimated curve keeps).

    Returns
    -------
    dict or None
        ``{r_min_A, r_max_A, n_bins, bin_width_A, edges_A (n_bins + 1 values), stride, source}``: ``stride`` k
        means the served points are the bins 0, k, 2k, … (1: every bin); ``source`` is ``"provenance"`` (exact)
        or, for a document without those parameters, ``"bin centres"`` (estimated from the rounded centres,
        ±1e-4 Å). ``None`` when the document has no RDF.
    """
    curves = [v for v in (doc.get("rdf") or {}).values() if isinstance(v, dict) and isinstance(v.get("r"), list)]
    if not curves or not curves[0]["r"]:
        return None
    n_points = len(curves[0]["r"])
    analysis = (doc.get("provenance") or {}).get("analysis") or {}
    r_max, n_bins = analysis.get("r_max_A"), analysis.get("n_bins")
    if isinstance(r_max, (int, float)) and isinstance(n_bins, int) and n_bins == n_points and r_max > 0:
        r_min, source = 0.0, "provenance"
    else:  # older documents: from the stored centres (equal bins)
        r = np.asarray(curves[0]["r"], dtype=float)
        width = float(r[-1] - r[0]) / (n_points - 1) if n_points > 1 else 2.0 * float(r[0])
        r_min, r_max, n_bins, source = float(r[0]) - width / 2, float(r[-1]) + width / 2, n_points, "bin centres"
    edges = np.linspace(r_min, float(r_max), n_bins + 1)
    return {
        "r_min_A": r_min,
        "r_max_A": float(r_max),
        "n_bins": n_bins,
        "bin_width_A": (float(r_max) - r_min) / n_bins,
        "edges_A": edges.tolist(),
        "stride": math.ceil(n_points / max_points) if n_points > max_points else 1,
        "source": source,
    }


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
