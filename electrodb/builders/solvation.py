"""maggma builder: TI runs and windows in the ``data`` store → ``solvation`` documents
(:func:`electrodb.documents.solvation.assemble_solvation_document`, incrementally by ``last_updated``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from maggma.core import Builder, Store

from electrodb.documents.solvation import assemble_solvation_document, solvation_record
from electrodb.utils.provenance import as_datetime

__all__ = ["SolvationBuilder"]


# --------------------------------------------------------------------------- builder


class SolvationBuilder(Builder):
    """``data`` (kinds ``ti_run`` + ``ti_window``) → ``solvation``, incrementally by ``last_updated``.

    A run is (re)processed when it has no ``solvation`` document, or when its run document or any of its windows
    is newer than that document. ``analysis`` overrides the run's analysis settings (then every run is rebuilt
    when ``rebuild=True``).
    """

    def __init__(
        self,
        runs: Store,
        solvation: Store,
        analysis: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        rebuild: bool = False,
        **kwargs: Any,
    ) -> None:
        self.runs, self.solvation = runs, solvation
        self.analysis, self.query, self.rebuild = analysis or {}, query or {}, rebuild
        super().__init__(sources=[runs], targets=[solvation], **kwargs)

    def ensure_indexes(self) -> None:
        for store, key in ((self.runs, "kind"), (self.solvation, "solvation_id")):
            try:
                store.ensure_index(key)
            except Exception:
                pass

    def get_items(self) -> Iterator[dict[str, Any]]:
        self.ensure_indexes()
        runs = list(self.runs.query({"kind": "ti_run", **self.query}))
        ids = [r["solvation_id"] for r in runs]
        done = {
            d["solvation_id"]: as_datetime(d.get("last_updated"))
            for d in self.solvation.query({"solvation_id": {"$in": ids}}, properties=["solvation_id", "last_updated"])
        }
        self.total = len(runs)
        for run in runs:
            sid = run["solvation_id"]
            windows = list(self.runs.query({"kind": "ti_window", "solvation_id": sid}))
            newest = max([as_datetime(run.get("last_updated"))] + [as_datetime(w.get("last_updated")) for w in windows])
            if self.rebuild or sid not in done or newest > done[sid]:
                yield {"run": run, "windows": windows}

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        doc = assemble_solvation_document(item["run"], item["windows"], self.analysis, builder=type(self).__name__)
        return solvation_record(doc)

    def update_targets(self, items: list[dict[str, Any]]) -> None:
        if items:
            self.solvation.update(items, key="solvation_id")
