"""Running the builders: :func:`make_builders` in data-flow order over connected stores, :func:`run_builders` chunk
by chunk (each chunk processed and written before the next is read)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from itertools import islice
from typing import Any

from maggma.core import Builder

from electrodb import __version__
from electrodb.builders.analysis_settings import AnalysisSettings
from electrodb.builders.solvation import SolvationBuilder
from electrodb.builders.summary import ElectrolyteSummaryBuilder
from electrodb.builders.thermo import ThermoBuilder
from electrodb.builders.trajectory import TrajectoryPropertiesBuilder
from electrodb.store.stores import ElectroDBStores

__all__ = ["RUN_BUILDER", "make_builders", "run_builder", "run_builders"]

#: ``builder`` of the record each recorded run of the builders leaves in ``builds`` (skip records name theirs).
RUN_BUILDER = "run"


def make_builders(stores: ElectroDBStores, settings: object | None = None, rebuild: bool = False) -> dict[str, Builder]:
    """The builders in data-flow order over connected ``stores`` (``rebuild``: reprocess every input)."""

    s = stores
    return {
        "properties": TrajectoryPropertiesBuilder(
            s.trajectories,
            s.data,
            s.structure,
            s.transport,
            s.pairing,
            s.kinetics,
            s.builds,
            settings=settings if isinstance(settings, AnalysisSettings) else None,
            rebuild=rebuild,
        ),
        "summary": ElectrolyteSummaryBuilder(
            s.structure,
            s.transport,
            s.pairing,
            s.kinetics,
            s.trajectories,
            s.electrolytes,
            rebuild=rebuild,
            models=s.models,
            audits=s.audits,
            committees=s.committees,
        ),
        "thermo": ThermoBuilder(s.electrolytes, s.structure, s.trajectories, s.thermo, rebuild=rebuild),
        "solvation": SolvationBuilder(s.data, s.solvation, rebuild=rebuild),
    }


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, max(1, size))):
        yield chunk


def run_builder(builder: Builder) -> int:
    """Run one builder serially, writing each chunk as soon as it is processed; return the items processed."""
    n = 0
    for chunk in _chunks(builder.get_items(), builder.chunk_size):
        results = [r for r in (builder.process_item(item) for item in chunk) if r is not None]
        if results:
            builder.update_targets(results)
        n += len(chunk)
    return n


def run_builders(
    stores: ElectroDBStores,
    log: Callable[[str], None] | None = None,
    settings: object | None = None,
    rebuild: bool = False,
    workers: int = 1,
    record: bool = False,
) -> dict[str, int]:
    """Run every builder in data-flow order; return how many items each processed.

    Parameters
    ----------
    stores
        The database (connected here).
    log
        Progress callback, one line per builder.
    settings
        :class:`~electrodb.builders.analysis_settings.AnalysisSettings` of the properties builder (default settings
        otherwise).
    rebuild
        Reprocess every input, upserting in place; then prune documents whose source is gone. Never empties a
        collection first, so concurrent readers see no gap.
    workers
        Processes for the per-trajectory analysis (:mod:`electrodb.builders.parallel`; 1 = serial, in this
        process). The other builders are light and run serially.
    record
        Leave one record of this run in ``builds`` (``builder: "run"``: when, what each builder processed and
        pruned, what it kept and why), what ``electrodb build`` does, so ``db info`` counts the builds run.

    A builder whose source reads as empty prunes nothing unless ``rebuild`` (its ``prune_withheld`` is logged).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    s = stores.connect()
    started = datetime.now(timezone.utc)
    counts: dict[str, int] = {}
    pruned_by: dict[str, int] = {}
    kept: dict[str, str] = {}
    for name, builder in make_builders(s, settings, rebuild).items():
        if name == "properties" and workers > 1:
            from electrodb.builders.parallel import run_properties_parallel

            counts[name] = run_properties_parallel(builder, builder.get_items(), workers, log=log)
        else:
            counts[name] = run_builder(builder)
        pruned = pruned_by[name] = builder.prune() if hasattr(builder, "prune") else 0
        if log:
            log(f"{name}: {counts[name]} new or changed inputs processed" + (f", {pruned} pruned" if pruned else ""))
        withheld = getattr(builder, "prune_withheld", None)
        if withheld:
            kept[name] = withheld
            if log:
                log(f"{name}: nothing pruned: {withheld}")
    if record:
        finished = datetime.now(timezone.utc)
        s.builds.update(
            [
                {
                    "build_id": f"{RUN_BUILDER}:{started.isoformat()}:{os.getpid()}",
                    "builder": RUN_BUILDER,
                    "started": started,
                    "finished": finished,
                    "rebuild": rebuild,
                    "workers": workers,
                    "processed": counts,
                    "pruned": pruned_by,
                    "kept": kept,
                    "code_version": __version__,
                    "last_updated": finished,
                }
            ],
            key="build_id",
        )
    return counts
