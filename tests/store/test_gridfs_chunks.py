"""Trajectory chunks on maggma's GridFSStore (on mongomock's GridFS) and on the embedded SQLite store.

Chunk metadata (frame_start, chunk_index, trajectory_id, kind) stays queryable, ``truncate_chunks`` deletes what
it should, and ``iter_chunks`` / ``load_trajectory`` read every chunk exactly once, in frame order.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from electrodb.store.frames import (
    TrajectoryWriter,
    delete_chunks,
    iter_chunks,
    list_chunks,
    load_trajectory,
    truncate_chunks,
)

N_ATOMS = 4
CHUNK = 5


@pytest.fixture
def gridfs_store(monkeypatch):
    """maggma ``GridFSStore`` configured as ``electrodb.store.stores`` makes it, on an in-memory mongomock server."""
    import maggma.stores.gridfs as maggma_gridfs
    import mongomock
    import mongomock.gridfs
    from maggma.stores import GridFSStore

    from electrodb.store.stores import INDEXED_FIELDS

    mongomock.gridfs.enable_gridfs_integration()
    client = mongomock.MongoClient()
    monkeypatch.setattr(maggma_gridfs, "MongoClient", lambda *a, **k: client)
    store = GridFSStore(
        "electrodb",
        "data",
        uri="mongodb://localhost/electrodb",
        key="blob_uuid",
        compression=True,
        searchable_fields=INDEXED_FIELDS["data"],
    )
    store.connect()
    yield store
    store.close()


@pytest.fixture
def sqlite_store(tmp_path):
    from electrodb.store.stores import INDEXED_FIELDS, EmbeddedStore

    store = EmbeddedStore(
        "data",
        str(tmp_path),
        "db",
        indexed_fields=INDEXED_FIELDS["data"],
        key="blob_uuid",
        last_updated_field="last_updated",
    )
    store.connect()
    yield store
    store.close()


@pytest.fixture(params=["gridfs", "sqlite"])
def blobs(request):
    return request.getfixturevalue(f"{request.param}_store")


class DownloadCounter:
    """Counts, per ``blob_uuid``, the chunk documents a store hands out with their frames (``positions``)."""

    def __init__(self, store: Any) -> None:
        self.reads: Counter[str] = Counter()
        original = store.query

        def query(*args: Any, **kwargs: Any):
            for doc in original(*args, **kwargs):
                if "positions" in doc:
                    self.reads[doc["blob_uuid"]] += 1
                yield doc

        store.query = query  # query_one goes through query too


def _write(blobs, tid: str = "t1", n_chunks: int = 3) -> dict[str, Any]:
    writer = TrajectoryWriter(blobs, tid, N_ATOMS, chunk_frames=CHUNK)
    rng = np.random.default_rng(0)
    for f in range(n_chunks * CHUNK):
        writer.append(rng.normal(size=(N_ATOMS, 3)), np.eye(3) * 10.0, 0.1 * f, -1.0 * f, 300.0)
    writer.flush()
    return {
        "trajectory_id": tid,
        "n_frames": writer.n_frames,
        "n_atoms": N_ATOMS,
        "symbols": ["O", "H", "H", "Na"],
        "masses": [16.0, 1.0, 1.0, 23.0],
        "role": [0, 1, 1, 2],
        "mol_id": [0, 0, 0, 1],
        "ion_center": [False, False, False, True],
    }


def test_chunk_metadata_is_queryable_without_reading_frames(blobs):
    _write(blobs)
    counter = DownloadCounter(blobs)
    entries = list_chunks(blobs, "t1")
    assert [e["frame_start"] for e in entries] == [0, 5, 10]
    assert [e["chunk_index"] for e in entries] == [0, 1, 2]
    assert [e["n_frames"] for e in entries] == [5, 5, 5]
    assert blobs.count({"trajectory_id": "t1", "kind": "trajectory_chunk", "frame_start": {"$gte": 5}}) == 2
    assert not counter.reads  # listing the chunks read no frames


def test_truncate_keeps_only_the_chunks_before_the_checkpoint(blobs):
    _write(blobs)
    _write(blobs, tid="other")  # another trajectory's chunks are never touched
    assert truncate_chunks(blobs, "t1", 5) == 1
    assert [e["frame_start"] for e in list_chunks(blobs, "t1")] == [0]
    assert blobs.count({"trajectory_id": "other", "kind": "trajectory_chunk"}) == 3
    assert truncate_chunks(blobs, "t1", 0) == 0


def test_each_chunk_is_read_once_and_in_frame_order(blobs):
    meta = _write(blobs)
    counter = DownloadCounter(blobs)
    starts = [int(c["frame_start"]) for c in iter_chunks(blobs, "t1")]
    assert starts == [0, 5, 10]
    assert counter.reads == {f"t1:chunk:{i:06d}": 1 for i in range(3)}
    counter.reads.clear()
    traj = load_trajectory(meta, None, blobs)
    assert traj.n_frames == 15 and np.allclose(traj.times_ps, 0.1 * np.arange(15))
    assert np.allclose(traj.potential_energy_eV, -1.0 * np.arange(15))
    assert counter.reads == {f"t1:chunk:{i:06d}": 1 for i in range(3)}


def test_write_three_truncate_to_one_read_back(blobs):
    meta = _write(blobs)
    assert truncate_chunks(blobs, "t1", 5) == 1
    counter = DownloadCounter(blobs)
    traj = load_trajectory({**meta, "n_frames": 5}, None, blobs)
    assert traj.n_frames == 5 and np.allclose(traj.times_ps, 0.1 * np.arange(5))
    assert sum(counter.reads.values()) == 1


def test_delete_chunks_by_index(blobs):
    _write(blobs)
    assert delete_chunks(blobs, "t1", keep_first=2) == 1
    assert [e["chunk_index"] for e in list_chunks(blobs, "t1")] == [0, 1]
    assert delete_chunks(blobs, "t1") == 2 and list_chunks(blobs, "t1") == []


def test_legacy_gridfs_chunks_without_frame_metadata(gridfs_store):
    """Chunks stored before their frame metadata was kept (only the searchable fields) still work."""
    meta = _write(gridfs_store)
    docs = [gridfs_store.query_one({"blob_uuid": f"t1:chunk:{i:06d}"}) for i in (2, 0, 1)]
    gridfs_store.remove_docs({"trajectory_id": "t1"})
    gridfs_store.update(docs, key="blob_uuid")  # what the old writer did: metadata = key + searchable fields
    assert all(e["frame_start"] is None for e in list_chunks(gridfs_store, "t1"))
    counter = DownloadCounter(gridfs_store)
    assert [int(c["frame_start"]) for c in iter_chunks(gridfs_store, "t1")] == [0, 5, 10]
    assert sum(counter.reads.values()) == 3
    assert load_trajectory(meta, None, gridfs_store).n_frames == 15
    assert truncate_chunks(gridfs_store, "t1", 10) == 2


def test_gridfs_files_are_downloaded_once_each(gridfs_store):
    """Counted at GridFS itself (file reads), not only at the maggma Store interface."""
    meta = _write(gridfs_store)
    fs = gridfs_store._coll
    reads: Counter[Any] = Counter()

    class CountingGridFS:
        def find_one(self, filter: dict, *args: Any, **kwargs: Any) -> Any:
            reads[filter["_id"]] += 1
            return fs.find_one(filter, *args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(fs, name)

    gridfs_store._coll = CountingGridFS()
    assert load_trajectory(meta, None, gridfs_store).n_frames == 15
    assert len(reads) == 3 and set(reads.values()) == {1}
    reads.clear()
    assert truncate_chunks(gridfs_store, "t1", 5) == 1 and not reads  # decided from metadata alone
