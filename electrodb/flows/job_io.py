"""The stores a running job may touch: those of the JobStore its jobflow manager handed it.

Every ElectroDB job (box, equilibration, production, batched production, TI windows, training) reads and writes
through :func:`job_stores`, never through the process settings. Under ``run_locally`` that is the JobStore the
caller passed (``ElectroDBStores.job_store()``: the campaign's database); under FireWorks it is the JobStore
serialised into each Firework; under jobflow-remote it is the worker's file-based copy of every additional store,
which the runner copies into the real stores when the job completes. Documents land where the engine puts the job's
outputs, so ``electrodb build`` on the submitting machine finds them.
"""

from __future__ import annotations

from typing import Any

from jobflow import CURRENT_JOB, JobConfig, job
from maggma.core import Store

from electrodb.store.stores import COLLECTIONS, JOB_COLLECTIONS, ElectroDBStores

__all__ = ["NoJobStoreError", "job_stores", "output_document", "store_job"]

#: ``@store_job`` in place of jobflow's ``@job`` for jobs that call :func:`job_stores`: jobflow exposes the JobStore
#: in ``CURRENT_JOB.store`` only when the job's config says so (each job gets its own copy of this config).
store_job = job(config=JobConfig(expose_store=True))


def output_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as a job may return it: without the store's ``_id`` and the job-collection key
    ``blob_uuid`` (:class:`JobCollection`), which jobflow's JobStore would take for a blob reference when a later
    job resolves the output."""
    return {k: v for k, v in doc.items() if k not in ("_id", "blob_uuid")}


class NoJobStoreError(RuntimeError):
    """An ElectroDB job was called outside a jobflow manager, so no JobStore was handed to it."""


def job_stores(*names: str) -> ElectroDBStores:
    """The current job's stores (``data`` and :data:`~electrodb.store.stores.JOB_COLLECTIONS`), connected.

    Parameters
    ----------
    *names
        Collections to connect (all the job's when none are given).

    Raises
    ------
    NoJobStoreError
        When no job is running (``jobflow.CURRENT_JOB.store`` is unset), or the JobStore lacks an additional
        store the job needs (it was not built by ``ElectroDBStores.job_store()``).
    """
    job_store = CURRENT_JOB.store
    if job_store is None:
        raise NoJobStoreError(
            "no JobStore is exposed to this job (decorate it with electrodb.flows.job_io.store_job); ElectroDB "
            "jobs read and write only the JobStore their manager hands them; run the flow with "
            "jobflow's run_locally(flow, store=ElectroDBStores.job_store()), FireWorks or jobflow-remote"
        )
    wanted = names or ("data", *JOB_COLLECTIONS)
    missing = [n for n in wanted if n not in job_store.additional_stores]
    if missing:
        raise NoJobStoreError(
            f"the JobStore lacks the additional store(s) {missing} that ElectroDB jobs write; build it with "
            "ElectroDBStores.job_store() (or add stores named "
            f"{['data', *JOB_COLLECTIONS]} to jobflow's JOB_STORE)"
        )
    stores = ElectroDBStores.from_job_store(job_store)
    for name in JOB_COLLECTIONS:
        if name in stores._stores:
            stores._stores[name] = JobCollection(stores._stores[name], COLLECTIONS[name])  # type: ignore[assignment]
    for name in wanted:
        stores[name].connect()
    return stores


class JobCollection:
    """A job's view of one of :data:`~electrodb.store.stores.JOB_COLLECTIONS`: every document it writes also carries
    ``blob_uuid`` (= its natural key), and upserts use the natural key.

    jobflow's ``JobStore`` keys every additional store by ``blob_uuid``; a jobflow-remote worker's file store
    reloads its own file by that key and the runner copies the documents back with it. ElectroDB's own stores keep
    their natural keys (``stores._PinnedKeyMixin``), so the extra field is only ever a copy of the key.
    """

    def __init__(self, store: Store, natural_key: str) -> None:
        self._store = store
        self._natural_key = natural_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def update(self, docs: list[dict] | dict, key: list | str | None = None) -> None:
        docs = [docs] if isinstance(docs, dict) else list(docs)
        tagged = [{**d, "blob_uuid": str(d[self._natural_key])} if self._natural_key in d else d for d in docs]
        self._store.update(tagged, key=key or self._natural_key)
