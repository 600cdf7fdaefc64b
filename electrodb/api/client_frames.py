"""Frames of one stored trajectory fetched over the API in pages (``GET /trajectories/{id}/frames``) and put
back together as :class:`~electrodb.store.frames.TrajectoryArrays` (for :meth:`ElectroDBClient.get_trajectory
<electrodb.api.client.ElectroDBClient.get_trajectory>`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from electrodb.store.frames import TrajectoryArrays, decode_array

__all__ = ["fetch_frames"]


def fetch_frames(
    get: Callable[[str, dict[str, Any]], Any], path: str, start: int, stop: int | None, chunk_frames: int | None
) -> TrajectoryArrays:
    """Page through ``path`` with ``get`` (the client's JSON GET) and return the frames ``start:stop``.

    Parameters
    ----------
    get
        ``get(path, params) -> body`` of the API's JSON answers.
    path
        ``/trajectories/{id}/frames``.
    start, stop
        Frame window (``stop=None``: to the end).
    chunk_frames
        Frames per request (default and upper bound: the server's ``meta.max_limit``).
    """
    keys = ("positions", "cells", "times_ps", "potential_energy_eV", "temperature_K")
    parts: dict[str, list[Any]] = {k: [] for k in keys}
    skip, meta, total, max_limit = max(0, int(start)), None, None, None
    while total is None or skip < total:
        size = chunk_frames
        if max_limit is not None:  # stay within the server's bound (no reduced-_limit warning)
            size = min(size or max_limit, max_limit)
        if stop is not None:
            size = min(size or max(1, stop - skip), max(1, stop - skip))
        body = get(path, {"_skip": skip, "_limit": size})
        meta, max_limit = body["data"]["trajectory"], int(body["meta"]["max_limit"])
        total = int(body["meta"]["total_doc"])
        total = total if stop is None else min(total, int(stop))
        frames = body["data"]["frames"]
        n_keep = min(int(frames["n_frames"]), max(0, total - skip))
        if n_keep == 0:
            break
        for k in keys:
            parts[k].append(decode_array(frames[k])[:n_keep])
        skip += n_keep
    assert meta is not None
    n_atoms = int(meta["n_atoms"])
    empty = {"positions": (0, n_atoms, 3), "cells": (0, 3, 3)}
    return TrajectoryArrays(
        trajectory_id=meta["trajectory_id"],
        **{k: np.concatenate(v) if v else np.zeros(empty.get(k, (0,))) for k, v in parts.items()},
        symbols=list(meta["symbols"]),
        masses=np.asarray(meta["masses"], dtype=np.float64),
        role=np.asarray(meta["role"], dtype=np.int8),
        mol_id=np.asarray(meta["mol_id"], dtype=np.int64),
        ion_center=np.asarray(meta["ion_center"], dtype=bool),
        metadata={k: v for k, v in meta.items() if k not in ("symbols", "masses", "role", "mol_id", "ion_center")},
    )
