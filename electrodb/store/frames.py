"""Compact trajectory storage: metadata in ``trajectories``, frames as chunked blobs in the ``data`` store.

A 1,000-frame, 1,500-atom trajectory is 18 MB of float32 positions alone, beyond MongoDB's 16 MB document
limit (the failure of atomate2 #515). Frames are therefore written in chunks of ``chunk_frames`` frames, each a
small document of zlib-compressed, base64-encoded arrays (JSON-safe, so the same chunks go to montydb, MongoDB or
GridFS). Positions are stored **unwrapped** (float32), so diffusion analysis needs no unwrapping; the cell is
stored per frame (NPT-safe). Loading decodes chunk by chunk into one preallocated array per field, so a load
never holds two copies of the trajectory.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from maggma.core import Store
from maggma.stores import GridFSStore

from electrodb.systems.boxes import ROLE_NAMES
from electrodb.utils.provenance import utcnow

__all__ = [
    "CHUNK_METADATA",
    "TrajectoryArrays",
    "TrajectoryError",
    "TrajectoryWriter",
    "decode_array",
    "delete_chunks",
    "encode_array",
    "iter_chunks",
    "list_chunks",
    "load_trajectory",
    "move_chunks",
    "put_chunks",
    "truncate_chunks",
]

FRAME_FIELDS = ("positions", "cells", "times_ps", "potential_energy_eV", "temperature_K", "stress_eV_A3")
_FRAME_DTYPES = {
    "positions": np.float32,
    "cells": np.float32,
    "times_ps": np.float64,
    "potential_energy_eV": np.float64,
    "temperature_K": np.float64,
    "stress_eV_A3": np.float64,
}
#: Per-frame shapes other than (F,); N is the number of atoms.
_FRAME_SHAPES = {"positions": ("N", 3), "cells": (3, 3), "stress_eV_A3": (3, 3)}
#: Frame fields that older trajectories may lack: loaded as all-NaN arrays.
_OPTIONAL_FRAME_FIELDS = ("stress_eV_A3",)


class TrajectoryError(RuntimeError):
    """A stored trajectory is missing, incomplete or inconsistent."""


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """JSON-safe encoding: ``{"dtype", "shape", "zb64"}`` with zlib-compressed bytes in base64."""
    array = np.ascontiguousarray(array)
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "zb64": base64.b64encode(zlib.compress(array.tobytes(), 1)).decode("ascii"),
    }


def decode_array(blob: dict[str, Any], out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`encode_array`; decodes into ``out`` when given (no extra full-size copy)."""
    raw = zlib.decompress(base64.b64decode(blob["zb64"]))
    array = np.frombuffer(raw, dtype=np.dtype(blob["dtype"])).reshape(blob["shape"])
    if out is None:
        return array.copy()
    out[...] = array
    return out


@dataclass
class TrajectoryArrays:
    """A trajectory loaded back as arrays (Å, ps, eV, K)."""

    trajectory_id: str
    positions: np.ndarray  # (F, N, 3) float32, unwrapped
    cells: np.ndarray  # (F, 3, 3) float32, lattice vectors as rows
    times_ps: np.ndarray  # (F,)
    potential_energy_eV: np.ndarray  # (F,) NaN where not recorded
    temperature_K: np.ndarray  # (F,) NaN where not recorded
    symbols: list[str]
    masses: np.ndarray
    role: np.ndarray
    mol_id: np.ndarray
    ion_center: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    #: (F, 3, 3) full stress incl. the kinetic (ideal-gas) part, eV/Å³, ASE sign convention (pressure
    #: P = −tr(σ)/3); NaN where not recorded (all NaN for trajectories written before it existed); an empty
    #: array when not requested in ``fields``.
    stress_eV_A3: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    def selection(self, role: str, centers_only: bool = True) -> np.ndarray:
        """Atom indices of a role (``cation``, ``anion``, ``water_O``, ``water_H``); ions by centre atom."""
        mask = self.role == ROLE_NAMES.index(role)
        if centers_only and role in ("cation", "anion"):
            mask &= self.ion_center
        return np.flatnonzero(mask)


def _chunk_uuid(trajectory_id: str, index: int) -> str:
    return f"{trajectory_id}:chunk:{index:06d}"


#: Fields of a chunk document that stay queryable without reading its frames. On GridFS they are copied into
#: the file's ``metadata`` (maggma's ``GridFSStore`` keeps only its ``searchable_fields`` there otherwise).
CHUNK_METADATA: tuple[str, ...] = (
    "blob_uuid",
    "kind",
    "trajectory_id",
    "chunk_index",
    "frame_start",
    "n_frames",
    "staged_as",
    "last_updated",
)
_CHUNK_KIND = "trajectory_chunk"


def put_chunks(blobs: Store, docs: list[dict[str, Any]]) -> None:
    """Upsert chunk documents by ``blob_uuid`` so that their :data:`CHUNK_METADATA` stays queryable everywhere.

    On maggma's ``GridFSStore`` the fields go into the file's metadata (``additional_metadata``), so that
    :func:`truncate_chunks` can filter on ``frame_start`` and :func:`iter_chunks` can list and order the chunks
    without downloading them; other stores keep every field of the document queryable anyway.
    """
    if isinstance(blobs, GridFSStore):
        blobs.update(docs, key="blob_uuid", additional_metadata=list(CHUNK_METADATA))
    else:
        blobs.update(docs, key="blob_uuid")


def list_chunks(blobs: Store, trajectory_id: str) -> list[dict[str, Any]]:
    """The chunks of ``trajectory_id`` in frame order, as metadata only (no frames are read).

    Each entry has ``blob_uuid``, ``chunk_index`` (from the document, else from its ``blob_uuid``),
    ``frame_start`` and ``n_frames`` (None for chunks written to GridFS before that metadata was kept). Ordered
    by ``frame_start`` when every chunk has one, else by ``chunk_index`` (the writer numbers chunks in frame order).
    """
    criteria = {"trajectory_id": trajectory_id, "kind": _CHUNK_KIND}
    if isinstance(blobs, GridFSStore):
        # Only top-level fields of the files collection can be projected without a download: take ``metadata``.
        metas = [d.get("metadata") or {} for d in blobs.query(criteria, properties=["metadata"])]
    else:
        metas = list(blobs.query(criteria, properties=["blob_uuid", "chunk_index", "frame_start", "n_frames"]))
    entries = []
    for m in metas:
        uuid = str(m["blob_uuid"])
        index = m.get("chunk_index")
        if index is None:
            tail = uuid.rsplit(":chunk:", 1)[-1]
            index = int(tail) if tail.isdigit() else 0
        entries.append(
            {
                "blob_uuid": uuid,
                "chunk_index": int(index),
                "frame_start": None if m.get("frame_start") is None else int(m["frame_start"]),
                "n_frames": None if m.get("n_frames") is None else int(m["n_frames"]),
            }
        )
    if all(e["frame_start"] is not None for e in entries):
        entries.sort(key=lambda e: (e["frame_start"], e["chunk_index"]))
    else:
        entries.sort(key=lambda e: e["chunk_index"])
    return entries


class TrajectoryWriter:
    """Buffers frames and writes them as chunks to the blob store.

    ``flush()`` writes the buffered frames as one chunk (also called at checkpoints so that a checkpoint never
    refers to frames that exist only in memory).
    """

    def __init__(
        self,
        blobs: Store,
        trajectory_id: str,
        n_atoms: int,
        chunk_frames: int = 200,
        start_frame: int = 0,
        start_chunk: int = 0,
    ) -> None:
        self.blobs = blobs
        self.trajectory_id = trajectory_id
        self.n_atoms = n_atoms
        self.chunk_frames = chunk_frames
        self.n_frames = start_frame
        self.n_chunks = start_chunk
        self._buffer: dict[str, list[np.ndarray]] = {k: [] for k in FRAME_FIELDS}

    @property
    def next_frame(self) -> int:
        """Index the next appended frame will get (written plus buffered frames)."""
        return self.n_frames + len(self._buffer["positions"])

    def append(
        self,
        positions: np.ndarray,
        cell: np.ndarray,
        time_ps: float,
        potential_energy: float = np.nan,
        temperature: float = np.nan,
        stress: np.ndarray | None = None,
    ) -> None:
        """Buffer one frame; ``stress`` is the (3, 3) stress in eV/Å³ (NaN when None: not recorded)."""
        if positions.shape != (self.n_atoms, 3):
            raise TrajectoryError(f"frame has shape {positions.shape}, expected ({self.n_atoms}, 3)")
        if stress is None:
            stress = np.full((3, 3), np.nan)
        elif np.shape(stress) != (3, 3):
            raise TrajectoryError(f"stress has shape {np.shape(stress)}, expected (3, 3)")
        values = (positions, cell, time_ps, potential_energy, temperature, stress)
        for key, value in zip(FRAME_FIELDS, values, strict=True):
            self._buffer[key].append(np.asarray(value, dtype=_FRAME_DTYPES[key]))
        if len(self._buffer["positions"]) >= self.chunk_frames:
            self.flush()

    def flush(self) -> None:
        n = len(self._buffer["positions"])
        if n == 0:
            return
        doc: dict[str, Any] = {
            "blob_uuid": _chunk_uuid(self.trajectory_id, self.n_chunks),
            "kind": _CHUNK_KIND,
            "trajectory_id": self.trajectory_id,
            "chunk_index": self.n_chunks,
            "frame_start": self.n_frames,
            "n_frames": n,
            "last_updated": utcnow(),
        }
        for key in FRAME_FIELDS:
            doc[key] = encode_array(np.stack(self._buffer[key]))
            self._buffer[key].clear()
        put_chunks(self.blobs, [doc])
        self.n_frames += n
        self.n_chunks += 1


def truncate_chunks(blobs: Store, trajectory_id: str, keep_frames: int) -> int:
    """Delete the chunks of ``trajectory_id`` that start at or after frame ``keep_frames`` (resume after a crash).

    Works from the chunks' metadata (:func:`list_chunks`); only a chunk stored on GridFS before its
    ``frame_start`` was kept as metadata is read to learn where it starts. Returns how many chunks remain.
    """
    entries = list_chunks(blobs, trajectory_id)
    doomed = []
    for entry in entries:
        start = entry["frame_start"]
        if start is None:  # legacy GridFS chunk: its start is only in the document itself
            chunk = blobs.query_one({"blob_uuid": entry["blob_uuid"]})
            start = None if chunk is None else int(chunk.get("frame_start", 0))
        if start is not None and start >= keep_frames:
            doomed.append(entry["blob_uuid"])
    if doomed:
        blobs.remove_docs({"blob_uuid": {"$in": doomed}})
    return blobs.count({"trajectory_id": trajectory_id, "kind": _CHUNK_KIND})


def iter_chunks(blobs: Store, trajectory_id: str) -> Iterator[dict[str, Any]]:
    """Yield the chunk documents of ``trajectory_id`` in frame order, reading each chunk exactly once.

    The order comes from metadata (:func:`list_chunks`), so one chunk is held in memory at a time.
    """
    for entry in list_chunks(blobs, trajectory_id):
        chunk = blobs.query_one({"blob_uuid": entry["blob_uuid"]})
        if chunk is None:
            raise TrajectoryError(f"chunk {entry['blob_uuid']} vanished while loading")
        yield chunk


def load_trajectory(
    trajectory: str | dict[str, Any],
    trajectories: Store,
    blobs: Store,
    fields: tuple[str, ...] = FRAME_FIELDS,
) -> TrajectoryArrays:
    """Load a stored trajectory as arrays, decoding chunk by chunk into preallocated arrays.

    Raises :class:`TrajectoryError` when the metadata is missing or chunks do not tile the frames exactly.
    Chunks written before a frame field existed (``stress_eV_A3``) leave that field NaN for their frames.
    """
    meta = trajectory if isinstance(trajectory, dict) else trajectories.query_one({"trajectory_id": trajectory})
    if meta is None:
        raise TrajectoryError(f"no trajectory {trajectory!r} in the trajectories store")
    tid, n_frames, n_atoms = meta["trajectory_id"], int(meta["n_frames"]), int(meta["n_atoms"])
    shapes = {k: (n_frames, *(n_atoms if d == "N" else d for d in shape)) for k, shape in _FRAME_SHAPES.items()}
    out = {k: np.full(shapes.get(k, (n_frames,)), np.nan, dtype=_FRAME_DTYPES[k]) for k in fields}
    filled = 0
    for chunk in iter_chunks(blobs, tid):
        start, n = int(chunk["frame_start"]), int(chunk["n_frames"])
        if start != filled or start + n > n_frames:
            raise TrajectoryError(
                f"trajectory {tid}: chunk at frame {start} (expected {filled}) does not fit "
                f"{n_frames} frames; the stored trajectory is incomplete"
            )
        for key in fields:
            if key in chunk or key not in _OPTIONAL_FRAME_FIELDS:
                decode_array(chunk[key], out=out[key][start : start + n])
        filled += n
    if filled != n_frames:
        raise TrajectoryError(f"trajectory {tid}: {filled} frames stored, metadata says {n_frames}")
    return TrajectoryArrays(
        trajectory_id=tid,
        positions=out.get("positions", np.empty(0)),
        cells=out.get("cells", np.empty(0)),
        times_ps=out.get("times_ps", np.empty(0)),
        potential_energy_eV=out.get("potential_energy_eV", np.empty(0)),
        temperature_K=out.get("temperature_K", np.empty(0)),
        symbols=list(meta["symbols"]),
        masses=np.asarray(meta["masses"]),
        role=np.asarray(meta["role"], dtype=np.int8),
        mol_id=np.asarray(meta["mol_id"]),
        ion_center=np.asarray(meta["ion_center"], dtype=bool),
        metadata={k: v for k, v in meta.items() if k not in ("symbols", "masses", "role", "mol_id", "ion_center")},
        stress_eV_A3=out.get("stress_eV_A3", np.empty(0)),
    )


def delete_chunks(blobs: Store, trajectory_id: str, keep_first: int = 0) -> int:
    """Delete the chunks of ``trajectory_id`` with ``chunk_index >= keep_first`` (all by default); return how many.

    Selects from the chunks' metadata (:func:`list_chunks`; no frames are read) and deletes them in one call, so
    it works the same on every backend (SQLite, montydb, MongoDB, GridFS).
    """
    doomed = [e["blob_uuid"] for e in list_chunks(blobs, trajectory_id) if e["chunk_index"] >= keep_first]
    if doomed:
        blobs.remove_docs({"blob_uuid": {"$in": doomed}})
    return len(doomed)


def move_chunks(blobs: Store, from_id: str, to_id: str) -> list[str]:
    """Re-key the chunks of ``from_id`` as chunks of ``to_id``; return the new keys of the chunks moved now.

    Chunk by chunk: write the copy under ``to_id`` (``blob_uuid`` as :class:`TrajectoryWriter` names it,
    replacing a chunk of ``to_id`` with the same index), then delete the original. Interrupted at any point,
    every frame is still stored under one of the two ids, and calling it again finishes the move.
    """
    moved = []
    for chunk in iter_chunks(blobs, from_id):
        old_uuid = chunk["blob_uuid"]
        copy = {k: v for k, v in chunk.items() if k != "_id"}
        copy.update(
            blob_uuid=_chunk_uuid(to_id, int(chunk["chunk_index"])),
            trajectory_id=to_id,
            staged_as=from_id,
            last_updated=utcnow(),
        )
        put_chunks(blobs, [copy])
        blobs.remove_docs({"blob_uuid": old_uuid})
        moved.append(copy["blob_uuid"])
    return moved
