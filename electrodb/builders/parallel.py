"""Run the per-trajectory analysis of :class:`~electrodb.builders.trajectory.TrajectoryPropertiesBuilder` in
worker processes; the parent alone writes.

Why not maggma's own ``maggma.cli.multiprocessing.multi``: its ``safe_dispatch`` logs an exception raised in
``process_item`` and drops the item (a crash would look like success), and it ships the whole builder through
its MSONable round trip. Here each worker rebuilds only the two stores it reads (``trajectories`` and the blob
store, pickled by their init arguments) and runs :func:`~electrodb.builders.trajectory.analyse_item`; the parent
keeps at most ``2 × workers`` items in flight and writes every result through the builder's ``update_targets``
as soon as it arrives, so a crash loses only the items in flight. Results are the serial build's: the same
function on the same inputs.

Workers read the stores themselves, so the stores must be ones another process can open: the embedded SQLite
store or MongoDB/GridFS. Stores that live in the parent's memory (``MemoryStore``, mongomock) are refused.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from maggma.core import Store
from maggma.stores import GridFSStore, MemoryStore, MongoStore

from electrodb.builders.analysis_settings import AnalysisSettings
from electrodb.builders.trajectory import TrajectoryPropertiesBuilder, analyse_item
from electrodb.store.sqlite import SQLiteStore

__all__ = ["ParallelBuildError", "run_properties_parallel", "shareable"]

_WORKER: dict[str, Any] = {}


class ParallelBuildError(ValueError):
    """A parallel build was asked for stores that worker processes cannot open."""


def shareable(store: Store) -> bool:
    """Whether another process can open ``store`` from its init arguments and see the same data."""
    if isinstance(store, MemoryStore):  # MemoryStore and mongomock live in this process only
        return False
    return isinstance(store, (SQLiteStore, MongoStore, GridFSStore))


def _init_worker(trajectories: Store, blobs: Store, settings: AnalysisSettings) -> None:
    trajectories.connect()
    blobs.connect()
    _WORKER.update(trajectories=trajectories, blobs=blobs, settings=settings)


def _analyse(meta: dict[str, Any]) -> dict[str, Any]:
    logger = logging.getLogger(TrajectoryPropertiesBuilder.__name__)
    return analyse_item(meta, _WORKER["trajectories"], _WORKER["blobs"], _WORKER["settings"], logger)


def run_properties_parallel(
    builder: TrajectoryPropertiesBuilder,
    items: Iterable[dict[str, Any]],
    workers: int,
    log: Callable[[str], None] | None = None,
    start_method: str = "spawn",
) -> int:
    """Analyse ``items`` (trajectory metadata from ``builder.get_items()``) in ``workers`` processes.

    Parameters
    ----------
    builder
        The properties builder; its ``update_targets`` writes each result in this (the parent) process.
    items
        Trajectory metadata documents, consumed lazily (at most ``2 × workers`` are held at a time).
    workers
        Number of worker processes (>= 2).
    log
        Progress callback (one line per 10 % of a known total).
    start_method
        ``multiprocessing`` start method; ``spawn`` (default) never forks a parent that holds threads or
        database connections.

    Returns
    -------
    int
        Number of items processed and written.

    Raises
    ------
    ParallelBuildError
        When the builder's stores cannot be opened by other processes.
    """
    if workers < 2:
        raise ParallelBuildError(f"run_properties_parallel needs workers >= 2, got {workers}; use the serial build")
    for store in (builder.trajectories, builder.blobs):
        if not shareable(store):
            raise ParallelBuildError(
                f"--workers {workers} needs stores that worker processes can open (the embedded SQLite store or "
                f"MongoDB); {type(store).__name__} {store.name!r} lives in this process only: use workers=1"
            )
    done_count = 0
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(start_method),
        initializer=_init_worker,
        initargs=(builder.trajectories, builder.blobs, builder.settings),
    )
    pending: set[Future] = set()
    source = iter(items)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < 2 * workers:
                meta = next(source, None)
                if meta is None:
                    exhausted = True
                    break
                pending.add(pool.submit(_analyse, meta))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            failures = []
            for future in finished:
                try:
                    result = future.result()
                except Exception as exc:  # a store error in a worker: write the others, then stop
                    failures.append(exc)
                    continue
                builder.update_targets([result])
                done_count += 1
                total = builder.total  # known once get_items has made its selection
                if log and total and done_count % max(1, total // 10) == 0:
                    log(f"properties: {done_count}/{total} trajectories")
            if failures:
                raise failures[0]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return done_count
