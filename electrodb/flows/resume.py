"""A production run that outlives its job folder: frames and checkpoints kept in a worker-local working copy.

Production MD resumes from its last checkpoint when a killed job is run again (:class:`~electrodb.flows.md.
ProductionMDMaker`). That needs the checkpoint to be where the restarted job looks. Under ``run_locally``,
FireWorks and ``campaign run --workers`` the job's stores are the database itself, so checkpoints written there
survive. A jobflow-remote worker has no database: its JobStore is a set of files in the job's run folder, copied
into the real stores only when the job succeeds, and ``jf job rerun`` deletes that folder before the job starts
again (its default ``delete_files``). A killed production would then restart from frame 0.

For such stores (:func:`volatile`), the production writes its trajectory document, chunks and checkpoints into
a :class:`WorkingCopy`: an embedded database in ``<resume_dir>/<trajectory id>/`` (settings ``resume_dir``,
``ELECTRODB_RESUME_DIR``; the generated jobflow-remote project sets it to a folder beside the workers' job
folders). A restarted job finds the copy, truncates chunks past its checkpoint and continues; when the run ends
(completed or unstable) the copy is published into the job's stores in one write per store (a jobflow-remote
file store rewrites its whole file on every write) and then removed. A job that fails with an exception keeps its
copy for the next attempt.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from maggma.core import Store

from electrodb.settings import ElectroDBSettings, get_settings
from electrodb.store.frames import iter_chunks, put_chunks
from electrodb.store.stores import COLLECTIONS, ElectroDBStores

__all__ = ["WorkingCopy", "open_working_copy", "produce_in_working_copy", "volatile"]

T = TypeVar("T")

#: Collections a production writes; everything else it reads or writes goes to the job's own stores.
WORKING_COLLECTIONS = ("trajectories", "data")


def _inner(store: Any) -> Any:
    """The store behind ElectroDB's job-collection views (:class:`electrodb.flows.job_io.JobCollection`)."""
    return getattr(store, "_store", store)


def volatile(store: Store) -> bool:
    """True for a store that lives in the job's own folder and reaches the database only if the job succeeds:
    the file stores jobflow-remote gives its workers (``jobflow_remote.remote.data``)."""
    return type(_inner(store)).__module__.startswith("jobflow_remote.")


def _folder_name(trajectory_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", trajectory_id)[:200]


class WorkingCopy:
    """The trajectory document, chunks and checkpoints of one production, in an embedded database of its own.

    Parameters
    ----------
    job
        The job's stores (its JobStore's view).
    trajectory_id
        The production's trajectory id (its folder name under ``root``).
    root
        Folder holding the working copies (settings ``resume_dir``).
    """

    def __init__(self, job: ElectroDBStores, trajectory_id: str, root: Path) -> None:
        self.job = job
        self.trajectory_id = trajectory_id
        self.folder = root / _folder_name(trajectory_id)
        self.resumed = (self.folder / "db").is_dir()
        local = ElectroDBStores(ElectroDBSettings(data_dir=self.folder))
        self._local = local
        view = {**job._stores, **{name: local[name] for name in WORKING_COLLECTIONS}}
        self.stores = ElectroDBStores(job.settings, _stores=view, owns_connections=False)
        local.connect(*WORKING_COLLECTIONS)

    def finished(self) -> bool:
        """True when the copy holds a run that has ended (``completed`` or ``unstable``): time to publish it."""
        doc = self._local.trajectories.query_one({"trajectory_id": self.trajectory_id}, properties=["status"])
        return doc is not None and doc.get("status") in ("completed", "unstable")

    def publish(self) -> None:
        """Copy the trajectory document and its chunks into the job's stores (one write each); nothing when the
        copy holds no document. Checkpoints stay behind: the run they resume has ended."""
        doc = self._local.trajectories.query_one({"trajectory_id": self.trajectory_id})
        if doc is None:
            return
        doc.pop("_id", None)
        chunks = []
        for chunk in iter_chunks(self._local.data, self.trajectory_id):
            chunk.pop("_id", None)
            chunks.append(chunk)
        if chunks:
            put_chunks(self.job.data, chunks)
        self.job.trajectories.update([doc], key=COLLECTIONS["trajectories"])

    def remove(self) -> None:
        """Delete the working copy (after :meth:`publish`)."""
        self._local.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def close(self) -> None:
        self._local.close()


def open_working_copy(
    job: ElectroDBStores, trajectory_id: str, settings: ElectroDBSettings | None = None
) -> WorkingCopy | None:
    """A :class:`WorkingCopy` of ``trajectory_id`` when the job's stores are :func:`volatile`, else None (the job
    writes straight into its stores, which survive it).

    The copy lives in ``settings.resume_dir`` (default ``<data_dir>/resume``). A folder inside the current working
    directory (the job's run folder, which ``jf job rerun`` deletes) is used with a warning naming the fix.
    """
    if not (volatile(job.data) or volatile(job.trajectories)):
        return None
    settings = settings or get_settings()
    root = settings.resume_folder
    if root.is_relative_to(Path.cwd()):
        warnings.warn(
            f"production checkpoints are kept in {root}, inside this job's folder, which a jobflow-remote rerun "
            "deletes: a killed job would restart from frame 0. Set ELECTRODB_RESUME_DIR (or ELECTRODB_DATA_DIR) "
            "on the worker to a folder outside its job folders (electrodb's generated project does).",
            stacklevel=2,
        )
    root.mkdir(parents=True, exist_ok=True)
    return WorkingCopy(job, trajectory_id, root)


def produce_in_working_copy(
    job: ElectroDBStores,
    trajectory_id: str,
    produce: Callable[[ElectroDBStores], T],
    report: Callable[[str], None] | None = None,
    label: str | None = None,
    keep: bool = False,
) -> T:
    """``produce(stores)`` on the job's stores, or, when those are :func:`volatile`, on a :class:`WorkingCopy`
    that is published into them and removed once its run has ended (kept for the next attempt otherwise).

    ``report`` is told (with ``label``, default the trajectory id) when a copy left by an earlier attempt is
    resumed. ``keep``: a finished copy is published but kept, for the convergence check and the next segment of
    a campaign with ``until`` (:mod:`electrodb.flows.segments`, which removes it when the system stops).
    """
    copy = open_working_copy(job, trajectory_id)
    if copy is None:
        return produce(job)
    try:
        if copy.resumed and report is not None:
            report(f"{label or trajectory_id}: resuming from the working copy in {copy.folder}")
        out = produce(copy.stores)
        if copy.finished():
            copy.publish()
            if not keep:
                copy.remove()
        return out
    finally:
        copy.close()
