"""maggma builder: stored trajectories -> ``structure``, ``transport``, ``pairing`` and ``kinetics`` documents.

Incremental and idempotent: a trajectory is (re)processed only when it has no documents yet, when it changed
after its documents were built (``last_updated``), or when the analysis settings changed (their digest is in
each document's provenance); ``rebuild=True`` reprocesses every trajectory. Unstable or too-short trajectories
produce no property document; the reason is recorded in the ``builds`` collection instead, and stale property
documents of a trajectory that turned unstable are removed. Documents are only ever upserted, never emptied
first: :meth:`TrajectoryPropertiesBuilder.prune` removes, after a build, those of trajectories that no longer
exist. :func:`analyse_item` is the whole per-trajectory work (it reads the trajectory, writes nothing), so it can
run in worker processes (:mod:`electrodb.builders.parallel`).
"""

from __future__ import annotations

import traceback
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
from maggma.core import Builder, Store

from electrodb.analysis.periodic import smallest_widths
from electrodb.builders.analysis_settings import AnalysisSettings
from electrodb.builders.properties import analyse_trajectory
from electrodb.store.frames import TrajectoryArrays, TrajectoryError, load_trajectory
from electrodb.utils.provenance import as_datetime

__all__ = ["MIN_CELL_WIDTH_A", "TrajectoryPropertiesBuilder", "analyse_item", "frame_problems"]

#: Smallest perpendicular cell width (Å) a frame may have: below it no ion–water box is physical, and analysis
#: grids sized from it would be meaningless (a collapsed cell once drove a build to 24 GB).
MIN_CELL_WIDTH_A = 4.0


def frame_problems(traj: TrajectoryArrays) -> str | None:
    """Why a stored trajectory cannot be analysed (non-finite data, a degenerate cell), or None."""
    finite_pos = np.isfinite(traj.positions).all(axis=(1, 2))
    if not finite_pos.all():
        return f"non-finite positions in frame {int(np.flatnonzero(~finite_pos)[0])}"
    cells = traj.cells.astype(np.float64)
    finite_cell = np.isfinite(cells).all(axis=(1, 2))
    if not finite_cell.all():
        return f"non-finite cell in frame {int(np.flatnonzero(~finite_cell)[0])}"
    widths = smallest_widths(cells)
    small = widths < MIN_CELL_WIDTH_A
    if small.any():
        k = int(np.flatnonzero(small)[0])
        return f"degenerate cell in frame {k}: perpendicular width {widths[k]:.3g} Å < {MIN_CELL_WIDTH_A} Å"
    if not np.isfinite(traj.times_ps).all() or np.any(np.diff(traj.times_ps) <= 0):
        return "frame times are not finite and strictly increasing"
    return None


TARGETS = ("structure", "transport", "pairing", "kinetics")


def analyse_item(
    meta: dict[str, Any], trajectories: Store, blobs: Store, settings: AnalysisSettings, logger: Any = None
) -> dict[str, Any]:
    """Property documents of one trajectory (``{"trajectory_id", "docs"}``) or why it is skipped (``"skip"``).

    Reads the trajectory's frames from ``blobs`` and writes nothing. A trajectory whose data cannot be decoded,
    is not analysable, or whose analysis raises is skipped with the reason; an error of the stores themselves
    (connection, permissions) propagates, so a build stops instead of recording wrong skips.
    """
    tid = meta["trajectory_id"]
    reason = None
    if meta["status"] != "completed":
        reason = f"trajectory is {meta['status']}: {meta.get('status_reason') or 'no reason recorded'}"
    elif int(meta.get("n_frames", 0)) < settings.min_frames:
        reason = f"too short: {meta.get('n_frames', 0)} frames < {settings.min_frames}"
    if reason is not None:
        return {"trajectory_id": tid, "skip": reason}
    try:
        traj = load_trajectory(meta, trajectories, blobs)
    except (TrajectoryError, zlib.error, KeyError, ValueError) as exc:
        return {"trajectory_id": tid, "skip": f"not loadable: {exc}"}
    try:
        problem = frame_problems(traj)
        if problem is not None:
            return {"trajectory_id": tid, "skip": f"not analysable: {problem}"}
        docs = analyse_trajectory(traj, settings)
    except Exception as exc:
        if logger is not None:
            logger.warning(f"analysis of {tid} failed: {exc}")
        return {"trajectory_id": tid, "skip": f"analysis failed: {exc}", "traceback": traceback.format_exc()}
    return {"trajectory_id": tid, "docs": {k: getattr(docs, k).model_dump(mode="json") for k in TARGETS}}


class TrajectoryPropertiesBuilder(Builder):
    """Analyse every completed trajectory once per (trajectory version, analysis settings)."""

    def __init__(
        self,
        trajectories: Store,
        blobs: Store,
        structure: Store,
        transport: Store,
        pairing: Store,
        kinetics: Store,
        builds: Store,
        settings: AnalysisSettings | None = None,
        query: dict | None = None,
        rebuild: bool = False,
        **kwargs: Any,
    ) -> None:
        """``query`` restricts the trajectories considered; ``rebuild`` reprocesses them even when built."""
        self.trajectories, self.blobs = trajectories, blobs
        self.structure, self.transport, self.pairing, self.kinetics = structure, transport, pairing, kinetics
        self.builds = builds
        self.settings = settings or AnalysisSettings()
        self.query = query or {}
        self.rebuild = rebuild
        super().__init__(
            sources=[trajectories, blobs],
            targets=[structure, transport, pairing, kinetics, builds],
            chunk_size=1,
            **kwargs,
        )

    def _targets(self) -> dict[str, Store]:
        return {
            "structure": self.structure,
            "transport": self.transport,
            "pairing": self.pairing,
            "kinetics": self.kinetics,
        }

    def get_items(self) -> Iterator[dict[str, Any]]:
        """Metadata of every trajectory to (re)process, read one at a time (the selection reads light fields)."""
        digest = self.settings.digest
        # kinetics is written last in update_targets, so its presence means all four exist.
        built = {
            d["trajectory_id"]: d
            for d in self.kinetics.query(
                {}, properties=["trajectory_id", "last_updated", "provenance.analysis.settings_digest"]
            )
        }
        skipped = {
            d["trajectory_id"]: d
            for d in self.builds.query(
                {"builder": "properties"}, properties=["trajectory_id", "last_updated", "settings_digest"]
            )
        }
        criteria = {"status": {"$in": ["completed", "unstable", "failed"]}, **self.query}
        light = ["trajectory_id", "last_updated"]
        todo = []
        for meta in self.trajectories.query(criteria, properties=light):
            tid = meta["trajectory_id"]
            source_time = as_datetime(meta.get("last_updated"))
            done = built.get(tid)
            if self.rebuild:
                todo.append(meta)
                continue
            if (
                done
                and as_datetime(done.get("last_updated")) >= source_time
                and done.get("provenance", {}).get("analysis", {}).get("settings_digest") == digest
            ):
                continue
            skip = skipped.get(tid)
            if (
                skip
                and not done
                and as_datetime(skip.get("last_updated")) >= source_time
                and skip.get("settings_digest") == digest
            ):
                continue
            todo.append(meta)
        self.total = len(todo)
        for stub in todo:
            meta = self.trajectories.query_one({**criteria, "trajectory_id": stub["trajectory_id"]})
            if meta is None:  # deleted or restarted since it was selected: the next build sees it
                continue
            self.logger.info(
                f"processing trajectory {stub['trajectory_id']} ({meta.get('salt')} {meta.get('molality', 0):.2f} m)"
            )
            yield meta

    def process_item(self, meta: dict[str, Any]) -> dict[str, Any]:
        """See :func:`analyse_item` (pure with respect to the stores: it only reads)."""
        return analyse_item(meta, self.trajectories, self.blobs, self.settings, self.logger)

    def update_targets(self, items: list[dict[str, Any]]) -> None:
        now = datetime.now(timezone.utc)
        for item in items:
            tid = item["trajectory_id"]
            if "skip" in item:
                for store in self._targets().values():  # never leave stale properties of a now-bad trajectory
                    store.remove_docs({"trajectory_id": tid})
                self.builds.update(
                    [
                        {
                            "build_id": f"properties:{tid}",
                            "builder": "properties",
                            "trajectory_id": tid,
                            "reason": item["skip"],
                            "settings_digest": self.settings.digest,
                            "last_updated": now,
                        }
                    ],
                    key="build_id",
                )
                continue
            for name in TARGETS:  # kinetics last: see get_items
                self._targets()[name].update([{**item["docs"][name], "last_updated": now}], key="trajectory_id")
            self.builds.remove_docs({"build_id": f"properties:{tid}"})

    def prune(self) -> int:
        """Remove property and skip documents of trajectories that no longer exist; return how many trajectories.

        Runs after the build has upserted everything, so readers never see a document vanish that is rebuilt.
        A ``trajectories`` collection that reads as empty prunes nothing unless ``rebuild`` (a lost or truncated
        source must not take every derived document with it); the builder's ``prune_withheld`` then says why.
        """
        existing = set(self.trajectories.distinct("trajectory_id"))
        self.prune_withheld = None
        if not existing and not self.rebuild:
            derived = sum(self._targets()[name].count() for name in TARGETS)
            if derived:
                self.prune_withheld = (
                    f"trajectories reads as empty: kept the {derived} property documents derived from it; restore "
                    "it, or run `electrodb build --rebuild` to remove them"
                )
                return 0
        stale: set[str] = set()
        for name in reversed(TARGETS):  # kinetics first: its absence marks a trajectory as not built
            store = self._targets()[name]
            gone = sorted(set(store.distinct("trajectory_id")) - existing)
            if gone:
                store.remove_docs({"trajectory_id": {"$in": gone}})
                stale.update(gone)
        gone = sorted(set(self.builds.distinct("trajectory_id", {"builder": "properties"})) - existing)
        if gone:
            self.builds.remove_docs({"builder": "properties", "trajectory_id": {"$in": gone}})
            stale.update(gone)
        return len(stale)
