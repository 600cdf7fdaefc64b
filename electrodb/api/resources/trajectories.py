"""The MD trajectories: ``GET /trajectories`` (metadata, paged), one trajectory, and its frames.

``GET /trajectories/{trajectory_id}`` gives one trajectory's metadata (per-atom lists included unless
``_fields`` selects fields); ``GET /trajectories/{trajectory_id}/frames`` pages through its stored frames
(unwrapped positions, cells, times, energies, temperatures) as compressed base64 arrays, bounded per answer
by :data:`~electrodb.api.params.MAX_FRAMES` and :data:`~electrodb.api.params.MAX_FRAME_ATOMS`.
"""

from __future__ import annotations

import json
from typing import ClassVar

from fastapi import APIRouter, Depends, Response
from fastapi import Path as PathParam
from starlette.exceptions import HTTPException as StarletteHTTPException

from electrodb import __version__
from electrodb.api import schemas
from electrodb.api.jsonout import SafeJSONResponse, jsonable
from electrodb.api.params import MAX_FRAME_ATOMS, MAX_FRAMES, given, query_params
from electrodb.api.resources.base import CollectionResource, page_args
from electrodb.io.export import load_frames
from electrodb.store import query as q
from electrodb.store.frames import TrajectoryError, encode_array

__all__ = ["TrajectoryResource"]

TRAJECTORIES = q.SPECS["trajectories"]
ONE_TRAJECTORY = given(query_params(TRAJECTORIES, "_fields", "_all_fields"))
FRAME_PARAMS = query_params(None, "frame_skip", "frame_limit")
#: The arrays of a frames answer (attributes of :func:`~electrodb.io.export.load_frames`'s result).
FRAME_ARRAYS = ("positions", "cells", "times_ps", "potential_energy_eV", "temperature_K")
FRAMES_DESCRIPTION = (
    "Arrays are zlib-compressed little-endian bytes in base64 (`{dtype, shape, zb64}`; "
    f"`electrodb.store.frames.decode_array`). One answer carries at most {MAX_FRAMES} frames and "
    f"{MAX_FRAME_ATOMS:,} frames × atoms; `meta.total_doc` is the number of frames, `meta.max_limit` the "
    "most frames per answer for this trajectory. 404 for an unknown id or frames that are not stored."
)

TRAJECTORY_ID = PathParam(..., pattern=q.PATH_ID_PATTERN, max_length=200)


class TrajectoryResource(CollectionResource):
    """``GET /trajectories``, ``/trajectories/{trajectory_id}`` and ``/trajectories/{trajectory_id}/frames``."""

    collections: ClassVar[dict[str, str]] = {
        "trajectories": "MD trajectory metadata (no frames; per-atom lists only via _fields)",
    }

    def register(self, router: APIRouter) -> None:
        """Add the list route, then one trajectory's metadata and its frames."""
        super().register(router)
        router.add_api_route(
            "/trajectories/{trajectory_id}",
            self.get_trajectory,
            methods=["GET"],
            tags=["trajectories"],
            summary="One trajectory's metadata",
            responses={200: {"model": schemas.one_response("trajectories")}, **schemas.error_responses(404)},
        )
        router.add_api_route(
            "/trajectories/{trajectory_id}/frames",
            self.get_trajectory_frames,
            methods=["GET"],
            tags=["trajectories"],
            summary="Frames of one trajectory (unwrapped positions, cells, times), paged with _skip/_limit",
            description=FRAMES_DESCRIPTION,
            responses={200: {"model": schemas.FramesResponse}, **schemas.error_responses(404)},
        )

    def get_trajectory(self, trajectory_id: str = TRAJECTORY_ID, params: dict = Depends(ONE_TRAJECTORY)) -> Response:
        args, _, _ = page_args(TRAJECTORIES, params)
        # one document: per-atom lists included unless _fields selects fields
        props = args["properties"] if args["properties"] and all(args["properties"].values()) else None
        doc = self.db.one("trajectories", {"trajectory_id": trajectory_id}, props)
        if doc is None:
            raise StarletteHTTPException(404, f"no trajectory {trajectory_id!r}")
        return SafeJSONResponse({"data": doc})

    def get_trajectory_frames(
        self, trajectory_id: str = TRAJECTORY_ID, params: dict = Depends(FRAME_PARAMS)
    ) -> Response:
        meta = self.db.one("trajectories", {"trajectory_id": trajectory_id})
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
            arrays = load_frames(meta, self.db.store("data"), start, start + limit)
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
        for key in FRAME_ARRAYS:
            body["data"]["frames"][key] = encode_array(getattr(arrays, key))
        return Response(json.dumps(body, allow_nan=False, separators=(",", ":")), media_type="application/json")
