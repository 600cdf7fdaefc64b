"""One pathological trajectory cannot take a build down: it is skipped with its reason, the others are built."""

from __future__ import annotations

import numpy as np

from electrodb.builders import run_builders
from electrodb.store.frames import iter_chunks
from tests.synthetic import write_brownian_trajectory


def _corrupt(stores, tid: str, frame: int, what: str) -> None:
    """Rewrite the chunk holding ``frame``: collapse its cell or put NaN in its positions."""
    from electrodb.store.frames import decode_array, encode_array

    for chunk in iter_chunks(stores.data, tid):
        start = int(chunk.get("frame_start", 0))
        n = int(chunk.get("n_frames", 0))
        if not start <= frame < start + n:
            continue
        key = "cells" if what == "cell" else "positions"
        arr = decode_array(chunk[key]).copy()
        if what == "cell":
            arr[frame - start] = np.eye(3) * 1e-8
        else:
            arr[frame - start, 0, 0] = np.nan
        chunk[key] = encode_array(arr)
        chunk.pop("_id", None)
        stores.data.update([chunk], key="blob_uuid")
        return
    raise AssertionError("frame not found in any chunk")


def test_collapsed_cell_and_nan_frames_are_skipped_with_reasons(stores):
    good = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=31)
    cell = write_brownian_trajectory(stores, "NaCl", 2.0, n_frames=120, seed=32)
    nan = write_brownian_trajectory(stores, "LiCl", 1.0, n_frames=120, seed=33)
    _corrupt(stores, cell.trajectory_id, 10, "cell")
    _corrupt(stores, nan.trajectory_id, 50, "positions")
    counts = run_builders(stores)
    assert counts["properties"] == 3
    reasons = {d["trajectory_id"]: d["reason"] for d in stores.builds.query({"builder": "properties"})}
    assert "degenerate cell in frame 10" in reasons[cell.trajectory_id]
    assert "non-finite positions in frame 50" in reasons[nan.trajectory_id]
    assert stores.structure.query_one({"trajectory_id": good.trajectory_id}) is not None
    assert stores.electrolytes.count() == 1


def test_a_source_that_reads_as_empty_prunes_nothing_unless_rebuild(stores):
    from electrodb.builders import make_builders

    for seed, m in ((41, 1.0), (42, 2.0), (43, 3.0)):
        write_brownian_trajectory(stores, "NaCl", m, n_frames=120, seed=seed)
    run_builders(stores)
    derived = ("structure", "transport", "pairing", "kinetics", "electrolytes", "thermo")
    before = {n: stores[n].count() for n in derived}
    assert before["electrolytes"] == 3 and before["thermo"] == 1
    saved = list(stores.trajectories.query({}))
    stores.trajectories.remove_docs({})  # a lost source, as an emptied or recreated file reads
    lines: list[str] = []
    run_builders(stores, log=lines.append)
    assert {n: stores[n].count() for n in derived} == before
    assert any("trajectories reads as empty: kept the 12 property documents" in x for x in lines), lines
    builder = make_builders(stores)["properties"]
    assert builder.prune() == 0 and "run `electrodb build --rebuild` to remove them" in builder.prune_withheld
    for doc in saved:
        doc.pop("_id", None)
    stores.trajectories.update(saved, key="trajectory_id")
    run_builders(stores)
    assert {n: stores[n].count() for n in derived} == before
    stores.trajectories.remove_docs({})
    run_builders(stores, rebuild=True)  # said deliberately: everything derived goes
    assert all(stores[n].count() == 0 for n in derived)
