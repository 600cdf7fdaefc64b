"""Staged writes of an ingest that never destroy a stored trajectory, and recovery after interrupted ingests.

Chunks are written under a staging id ``<id>.staging.<token>``, announced by a manifest blob
(``kind: "ingest_staging"``) in the ``data`` store (:func:`open_staging`, refreshed by :func:`heartbeat` at every
chunk). Only when every frame is written and validated is the manifest marked complete (:func:`mark_complete`)
and the switch made (:func:`finish_switch`): chunks re-keyed to the trajectory id, surplus old chunks deleted,
trajectory document upserted, manifest deleted. A failed ingest deletes its staging data
(:func:`discard_staging`); one killed while writing leaves the stored trajectory untouched and its staging data
is deleted (with a message) by the next ingest; one killed during the switch is finished by the next ingest
(:func:`recover_interrupted`). While a switch replaces an existing trajectory its document reads ``running`` (the
builders skip it) until the switch ends. A switch may also retire other trajectories that the new one supersedes
(the manifest's ``replaces``: a stored prefix of the same run, :mod:`electrodb.io.ingest_overlap`): their
documents and then their chunks are deleted after the switch, by the same idempotent step.

A full disk never leaves a traceback or a half-written trajectory: :func:`check_free_space` stops the ingest
while :data:`MIN_FREE_BYTES` (and a few chunks' worth) are still free on the disk of the embedded database, so
that the staged chunks can still be deleted (SQLite's secure delete writes every freed page once more), and
:func:`storage_failure` turns a write that fails anyway (``ENOSPC``, SQLite's "database or disk is full", any
other ``OSError`` or SQLite error) into one :class:`~electrodb.io.ingest_checks.IngestError` naming the database.
:func:`discard_staging` deletes chunk by chunk, so a nearly full disk needs room for one chunk at a time.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.io.ingest_checks import IngestError
from electrodb.store.frames import delete_chunks, list_chunks, move_chunks
from electrodb.store.stores import ElectroDBStores
from electrodb.utils.provenance import utcnow

__all__ = [
    "MIN_FREE_BYTES",
    "STAGING_KIND",
    "STALE_AFTER_S",
    "check_free_space",
    "discard_after_failure",
    "discard_staging",
    "finish_switch",
    "heartbeat",
    "mark_complete",
    "open_staging",
    "recover_interrupted",
    "stop_for_test",
    "storage_failure",
]

STAGING_KIND = "ingest_staging"
STALE_AFTER_S = 600.0  # staging data of another host whose heartbeat is older than this is abandoned
MIN_FREE_BYTES = 16 * 2**20  # kept free on the embedded database's disk (+ 4 chunks): room to delete staged data
_TEST_STOP_ENV = "ELECTRODB_INGEST_TEST_STOP"  # tests only: "<point>:<n>:<marker file>" parks the process


_STOPS_SEEN: Counter[str] = Counter()


def stop_for_test(point: str) -> None:
    """Tests only: with ELECTRODB_INGEST_TEST_STOP="<point>:<n>:<marker>", park at the n-th ``point``."""
    spec = os.environ.get(_TEST_STOP_ENV)
    if not spec:
        return
    name, nth, marker = spec.split(":", 2)
    _STOPS_SEEN[point] += 1
    if name == point and _STOPS_SEEN[point] == int(nth):
        Path(marker).write_text(str(os.getpid()))
        time.sleep(600)


def _manifest_key(staging_id: str) -> str:
    return f"ingest-staging:{staging_id}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_staging(stores: ElectroDBStores, tid: str, source_file: Path) -> dict[str, Any]:
    """Announce a new staging copy of trajectory ``tid``: store and return its manifest (state ``writing``)."""
    staging = f"{tid}.staging.{uuid.uuid4().hex[:12]}"
    manifest: dict[str, Any] = {
        "blob_uuid": _manifest_key(staging),
        "kind": STAGING_KIND,
        "staging_id": staging,
        "target_trajectory_id": tid,
        "state": "writing",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "source_file": str(source_file.resolve()),
        "heartbeat": time.time(),
        "last_updated": utcnow(),
    }
    stores.data.update([manifest], key="blob_uuid")
    return manifest


def heartbeat(stores: ElectroDBStores, manifest: dict[str, Any]) -> None:
    """The writer is alive: refresh the manifest's heartbeat (called at every chunk written)."""
    manifest.update(heartbeat=time.time(), last_updated=utcnow())
    stores.data.update([manifest], key="blob_uuid")
    stop_for_test("chunk")


def mark_complete(
    stores: ElectroDBStores,
    manifest: dict[str, Any],
    doc: TrajectoryDocument,
    n_chunks: int,
    replaces: list[str] | None = None,
) -> None:
    """Every frame is staged and valid: record the final document in the manifest, ready for the switch.

    ``replaces``: ids of stored trajectories that the switch retires (their documents and chunks are deleted).
    """
    manifest.update(
        state="complete",
        n_chunks=n_chunks,
        document=_stored(doc),
        replaces=list(replaces or []),
        last_updated=utcnow(),
    )
    stores.data.update([manifest], key="blob_uuid")


def finish_switch(stores: ElectroDBStores, manifest: dict[str, Any]) -> TrajectoryDocument:
    """Make a complete staging copy the stored trajectory (idempotent: safe to repeat after a crash)."""
    tid, staging = manifest["target_trajectory_id"], manifest["staging_id"]
    doc = TrajectoryDocument(**manifest["document"])
    existing = stores.trajectories.query_one({"trajectory_id": tid})
    if existing is not None and existing.get("status") != "running":
        existing.pop("_id", None)
        stores.trajectories.update(
            [
                {
                    **existing,
                    "status": "running",
                    "status_reason": f"frames being replaced by a re-ingest (staging {staging}); if this "
                    "persists, run the same ingest again to finish",
                    "last_updated": utcnow(),
                }
            ],
            key="trajectory_id",
        )
    move_chunks(stores.data, staging, tid)
    stop_for_test("switch")
    delete_chunks(stores.data, tid, keep_first=int(manifest["n_chunks"]))
    doc = doc.model_copy(update={"last_updated": utcnow()})
    stores.trajectories.update([_stored(doc)], key="trajectory_id")
    for old in manifest.get("replaces") or []:  # the document first: no reader meets one without its frames
        if old != tid:
            stores.trajectories.remove_docs({"trajectory_id": old})
            delete_chunks(stores.data, old)
    stores.data.remove_docs({"blob_uuid": _manifest_key(staging)})
    return doc


def discard_staging(stores: ElectroDBStores, staging_id: str) -> int:
    """Delete the staged chunks of ``staging_id`` (one at a time, last first) and its manifest; return how many.

    One chunk per deletion: on a nearly full disk SQLite's secure delete needs room for one chunk, not for all.
    """
    entries = list_chunks(stores.data, staging_id)
    for entry in reversed(entries):
        stores.data.remove_docs({"blob_uuid": entry["blob_uuid"]})
    stores.data.remove_docs({"blob_uuid": _manifest_key(staging_id)})
    return len(entries)


def discard_after_failure(stores: ElectroDBStores, staging_id: str, exc: BaseException) -> None:
    """Delete the staging data of an ingest that failed with ``exc``; if that fails too (a full disk), raise one
    :class:`IngestError` saying both (the next ingest deletes the data, :func:`recover_interrupted`)."""
    try:
        discard_staging(stores, staging_id)
    except (OSError, sqlite3.Error) as cleanup:
        first = storage_failure(exc, stores) or exc
        raise IngestError(
            f"{first}; its staging data ({staging_id}) could not be deleted now ({cleanup}): the next ingest deletes it"
        ) from None


def _database(stores: ElectroDBStores) -> str:
    settings = getattr(stores, "settings", None)
    return settings.describe() if settings is not None else "the database"


def check_free_space(stores: ElectroDBStores, chunk_bytes: int) -> None:
    """Raise :class:`IngestError` when the embedded database's disk has less than :data:`MIN_FREE_BYTES` plus
    four chunks of ``chunk_bytes`` free (MongoDB: no check; its server reports a full disk itself)."""
    settings = getattr(stores, "settings", None)
    if settings is None or not settings.embedded:
        return
    free = shutil.disk_usage(settings.database_path).free
    need = MIN_FREE_BYTES + 4 * chunk_bytes
    if free < need:
        raise IngestError(
            f"the disk of the database ({settings.database_path}) has only {free / 2**20:.1f} MiB free, below "
            f"the {need / 2**20:.1f} MiB an ingest keeps free; nothing stored was changed: free space there (or "
            "point ELECTRODB_DATA_DIR at a larger disk) and ingest again"
        )


def storage_failure(exc: BaseException, stores: ElectroDBStores) -> IngestError | None:
    """The one-line :class:`IngestError` for a failed write to the store (``OSError``, SQLite error), else None."""
    if not isinstance(exc, (OSError, sqlite3.Error)):
        return None
    where = _database(stores)
    text = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__
    full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or "full" in str(exc).lower()
    if full:
        return IngestError(
            f"the disk of {where} is full ({text}); nothing stored was changed: free space there (or point "
            "ELECTRODB_DATA_DIR at a larger disk) and ingest again"
        )
    return IngestError(f"could not write to {where} ({text}); nothing stored was changed: fix that and ingest again")


def recover_interrupted(stores: ElectroDBStores, tid: str, messages: list[str]) -> None:
    """Clean up after interrupted ingests: finish complete switches, delete abandoned staging data.

    A writer counts as alive when its process still runs on this host, or, on another host, when its heartbeat
    (refreshed at every chunk) is younger than ``STALE_AFTER_S``. Staging data of ``tid`` whose writer is alive
    is an error (a concurrent ingest of the same file); staging data with a dead writer is deleted.
    """
    host = socket.gethostname()
    for manifest in list(stores.data.query({"kind": STAGING_KIND})):
        staging, target = manifest["staging_id"], manifest["target_trajectory_id"]
        if manifest.get("host") == host:
            pid = int(manifest.get("pid", -1))
            alive = pid != os.getpid() and _pid_alive(pid)
        else:
            alive = time.time() - float(manifest.get("heartbeat", 0.0)) < STALE_AFTER_S
        if alive and target == tid and manifest.get("state") != "complete":
            raise IngestError(
                f"another ingest of this file is running (pid {manifest.get('pid')} on {manifest.get('host')}, "
                f"staging {staging}); wait for it to finish"
            )
        if alive:
            continue
        if manifest.get("state") == "complete":
            finish_switch(stores, manifest)
            messages.append(f"finished the interrupted switch of trajectory {target} to its new frames ({staging})")
        else:
            n = discard_staging(stores, staging)
            messages.append(f"removed stale staging data of an interrupted ingest of {target} ({n} chunks, {staging})")


def _stored(doc: TrajectoryDocument) -> dict[str, Any]:
    data = doc.model_dump(mode="json")
    for key in ("ingest_action", "ingest_messages"):
        data.pop(key, None)
    return data
