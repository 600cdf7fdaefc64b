"""Is an ingest the same run as a stored trajectory? Copies and prefixes, found by their frames.

An ingest whose frames are those of a stored trajectory is the same run stored twice, which the summary would
merge as two replicas. Two trajectories are taken as the same run when, over the frames they share (frames
0 … m − 1, m the shorter length), every atom's position agrees within :data:`POSITION_TOL_A` (0.01 Å, by the
nearest image: a wrapped and an unwrapped file of one run agree) in frames 0, 1, m − 1 and evenly spaced frames
between (:data:`SAMPLE_FRAMES` in all). Two runs from one starting configuration part within a frame or two
(atoms move about 0.05 Å per fs); the rounding of text formats (5 decimals or more) is far below 0.01 Å.

What :func:`resolve_overlaps` does with a stored trajectory X that the ingest overlaps:

* X holds the first frames of this file (X was cut short, e.g. a copy interrupted at a frame boundary) and is
  an ingest labelled the same (salt, temperature, timestep, interval, source label): X is **replaced** by the
  longer run, which keeps X's campaigns, with a message;
* this file is a copy of X, or X's first frames: **refused**, nothing ingested (X already holds the run);
* labels that differ: **refused**, naming them;
* ``replace=True`` (``--replace``) replaces X in every case (e.g. to correct the labels of a stored run).

Replaced trajectories are retired by the staging switch (:func:`~electrodb.io.ingest_staging.finish_switch`); their
property documents go at the next ``electrodb build``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.io.ingest_checks import IngestError
from electrodb.store.frames import decode_array, list_chunks
from electrodb.store.stores import ElectroDBStores

__all__ = ["POSITION_TOL_A", "SAMPLE_FRAMES", "Overlap", "find_overlaps", "frames_at", "resolve_overlaps"]

POSITION_TOL_A = 0.01
SAMPLE_FRAMES = 8
_LABELS = (
    ("salt", "salt"),
    ("temperature", "temperature (K)"),
    ("timestep_fs", "timestep (fs)"),
    ("sample_interval_steps", "interval (steps)"),
    ("model_id", "source"),
)


@dataclass(frozen=True)
class Overlap:
    """A stored trajectory that is the same run as the ingest: its id, both frame counts, what differs."""

    trajectory_id: str
    n_stored: int
    n_new: int
    source: str
    source_file: str
    campaign_ids: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """How the two relate, for messages."""
        stored = f"stored trajectory {self.trajectory_id} ({self.source_file})"
        if self.n_new == self.n_stored:
            return f"its {self.n_new} frames are those of {stored}"
        if self.n_new < self.n_stored:
            return f"its {self.n_new} frames are the first {self.n_new} of the {self.n_stored} frames of {stored}"
        return f"{stored} holds the first {self.n_stored} of its {self.n_new} frames"


def frames_at(stores: ElectroDBStores, trajectory_id: str, frames: list[int]) -> dict[int, tuple[np.ndarray, ...]]:
    """Positions and cells (Å) of the given frames of a stored (or staged) trajectory, reading only their chunks."""
    wanted = sorted(set(frames))
    out: dict[int, tuple[np.ndarray, ...]] = {}
    for entry in list_chunks(stores.data, trajectory_id):
        start, n = entry["frame_start"], entry["n_frames"]
        if start is None or n is None:
            continue
        inside = [f for f in wanted if start <= f < start + n]
        if not inside:
            continue
        chunk = stores.data.query_one({"blob_uuid": entry["blob_uuid"]})
        if chunk is None:
            continue
        positions, cells = decode_array(chunk["positions"]), decode_array(chunk["cells"])
        for f in inside:
            out[f] = (positions[f - start].astype(np.float64), cells[f - start].astype(np.float64))
    return out


def _same(a: tuple[np.ndarray, ...] | None, b: tuple[np.ndarray, ...] | None) -> bool:
    """Do two frames hold the same positions within :data:`POSITION_TOL_A`, by the nearest image?"""
    if a is None or b is None:
        return False
    cell = a[1]
    frac = np.linalg.solve(cell.T, (a[0] - b[0]).T).T
    frac -= np.round(frac)
    return bool(np.linalg.norm(frac @ cell, axis=1).max() <= POSITION_TOL_A)


def _sample(m: int) -> list[int]:
    return sorted({0, min(1, m - 1), m - 1, *np.linspace(0, m - 1, SAMPLE_FRAMES - 3).round().astype(int).tolist()})


def find_overlaps(stores: ElectroDBStores, staging_id: str, doc: TrajectoryDocument) -> list[Overlap]:
    """Stored trajectories (other than ``doc``'s own id) that are the same run as the frames staged under
    ``staging_id`` (``doc``: their final document, with ``n_frames``)."""
    heads = stores.trajectories.query(
        {"n_atoms": doc.n_atoms, "trajectory_id": {"$ne": doc.trajectory_id}},
        properties=["trajectory_id", "symbols", "n_frames", "source", "model", "campaign_ids"]
        + [key for key, _ in _LABELS],
    )
    new_first = frames_at(stores, staging_id, [0]).get(0)
    found = []
    for head in heads:
        n_stored = int(head.get("n_frames") or 0)
        if n_stored < 1 or list(head.get("symbols") or []) != list(doc.symbols):
            continue
        if not _same(new_first, frames_at(stores, head["trajectory_id"], [0]).get(0)):
            continue
        sample = _sample(min(n_stored, doc.n_frames))
        new, old = frames_at(stores, staging_id, sample), frames_at(stores, head["trajectory_id"], sample)
        if all(_same(new.get(f), old.get(f)) for f in sample):
            found.append(_overlap(head, doc, n_stored))
    return found


def _overlap(head: dict[str, Any], doc: TrajectoryDocument, n_stored: int) -> Overlap:
    ingested = head.get("source") == "ingest"
    differences = [
        f"{label} {head.get(key)!r} stored, {getattr(doc, key)!r} now"
        for key, label in _LABELS
        if head.get(key) != getattr(doc, key)
    ]
    source_file = (head.get("model") or {}).get("source_file") if ingested else None
    return Overlap(
        trajectory_id=head["trajectory_id"],
        n_stored=n_stored,
        n_new=doc.n_frames,
        source=str(head.get("source") or "electrodb-md"),
        source_file=f"from {Path(source_file).name}" if source_file else "a run of ElectroDB's own MD",
        campaign_ids=list(head.get("campaign_ids") or []),
        differences=differences,
    )


def resolve_overlaps(overlaps: list[Overlap], path: Path, replace: bool) -> tuple[list[str], list[str]]:
    """Decide what an ingest that overlaps stored trajectories does; return (ids it replaces, messages).

    Raises :class:`IngestError` (nothing ingested) for a copy or a prefix of a stored run, and for an overlap whose
    labels differ, unless ``replace``; see the module docstring.
    """
    replaced, messages = [], []
    for o in overlaps:
        extends = o.n_new > o.n_stored and o.source == "ingest" and not o.differences
        if not (replace or extends):
            differs = f"; labels differ: {', '.join(o.differences)}" if o.differences else ""
            raise IngestError(
                f"{path}: nothing ingested: {o.describe()}: the same run, which must not be counted twice{differs}; "
                "to replace the stored trajectory by this file (e.g. to correct its labels), pass --replace "
                "(Python: replace=True)"
            )
        replaced.append(o.trajectory_id)
        why = "the same run, cut short" if extends else "--replace"
        messages.append(
            f"replaced stored trajectory {o.trajectory_id}: {o.describe()} ({why}); its property documents go at "
            "the next `electrodb build`"
        )
    return replaced, messages
