"""maggma builders: stored trajectories -> property documents -> summaries (-> thermodynamics).

:func:`run_builders` drives them chunk by chunk: each chunk of ``builder.chunk_size`` items is processed and
written (``update_targets``) before the next is read, so a crash loses at most the chunk in progress and the
next build continues where it stopped (the builders are incremental). Nothing is ever emptied first: a rebuild
reprocesses everything and upserts in place, then each builder's ``prune`` removes only documents whose source is
gone, so readers see the old or the new document of every item, never a missing one.
"""

from electrodb.builders.run import make_builders, run_builder, run_builders

__all__ = ["make_builders", "run_builder", "run_builders"]
