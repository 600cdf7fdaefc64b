"""Distributed execution through existing workflow engines (FireWorks, jobflow-remote); never a home-made scheduler.

:mod:`electrodb.managers.stages` says which worker kind each job needs (packing and analysis on CPU workers, MD on
GPU workers); each engine module turns a campaign's per-system flows into that engine's own objects, with routing,
chunked and idempotent submission and a per-system state read back from the engine.
"""
