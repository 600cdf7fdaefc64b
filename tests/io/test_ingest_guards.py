"""Ingest refuses what would mislead and loses nothing: atoms that jump, a file clock that disagrees with the
stated interval, the same run stored twice, a disk that fills up (issue "Nothing lost, nothing misleading")."""

from __future__ import annotations

import errno
import re
import sqlite3

import numpy as np
import pytest

from electrodb.io.ingest import IngestError, ingest_trajectory
from electrodb.store.frames import load_trajectory
from tests.io.test_ingest import build_box, frames_of, nacl_frames, write_frames

ARGS = ("NaCl", None, 298.15, 0.5, 10)  # salt, molality, K, fs, steps per frame: 5 fs between frames


def _nothing_stored(stores) -> bool:
    return stores.trajectories.count() == 0 and stores.data.count() == 0


# ------------------------------------------------------------------------------------------- atom jumps (row 3)


def test_an_atom_far_away_in_one_frame_is_refused(stores, tmp_path):
    frames = nacl_frames(12)
    frames[7].positions[4] = [1e12, 5.0, 5.0]
    path = write_frames(tmp_path / "a.extxyz", frames)
    pattern = (
        r"frame 7: atom 4 \(\w+\) moves 1e\+12 Å \(more than one box length: no boundary crossing explains "
        r"it\) from frame 6, farther than any atom can in 5 fs \(at most 1 Å/fs × 5 fs = 5 Å\); the file is corrupt "
        r"at that frame \(keep the frames before it: index=':7'\).*--allow-atom-jumps"
    )
    with pytest.raises(IngestError, match=pattern):
        ingest_trajectory(path, *ARGS, stores, chunk_frames=3)
    assert _nothing_stored(stores)
    doc = ingest_trajectory(path, *ARGS, stores, allow_atom_jumps=True)
    assert doc.n_frames == 12 and "frame 7: atom 4" in doc.validation_overrides["allow_atom_jumps"]


def test_a_jump_inside_the_box_is_refused_and_wrapped_crossings_pass(stores, tmp_path):
    frames = nacl_frames(12)
    frames[5].positions[3] += [3.0, 0.0, 0.0]  # 3 Å in one 1 fs frame (a teleport), then back
    frames[5].wrap()
    path = write_frames(tmp_path / "a.extxyz", frames)
    with pytest.raises(
        IngestError, match=r"frame 5: atom 3 \(H\) moves 3.0\d+ Å \(nearest image\) from frame 4.*= 1 Å\)"
    ):
        ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 2, stores)
    assert _nothing_stored(stores)
    # the same frames 5 fs apart: a 3 Å step is possible; wrapped boundary crossings are no jumps
    doc = ingest_trajectory(path, *ARGS, stores)
    assert doc.validation_overrides == {}
    back = load_trajectory(doc.trajectory_id, stores.trajectories, stores.data)
    assert np.abs(np.diff(back.positions, axis=0)).max() < 3.5  # unwrapped: no box-length steps


# ------------------------------------------------------------------------------- the file's clock (row 11)


def test_frame_times_must_match_interval_times_timestep(stores, tmp_path):
    frames = nacl_frames(6)
    for k, f in enumerate(frames):
        f.info["time"] = 2.0 * k  # fs: frames 4 steps of 0.5 fs apart
    path = write_frames(tmp_path / "a.extxyz", frames)
    pattern = (
        r"frame 1: the file's 'time' goes 0 -> 2 over 1 frame\(s\), 2 fs or ps \('time' has no unit\) per frame, "
        r"but --interval × --timestep-fs is 10 × 0.5 fs = 5 fs per frame; fix --interval or --timestep-fs \(the "
        r"file's times say 4 steps of 0.5 fs per frame, if its time is in fs\).*--allow-irregular-steps"
    )
    with pytest.raises(IngestError, match=pattern):
        ingest_trajectory(path, *ARGS, stores)
    assert _nothing_stored(stores)
    assert ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 4, stores).n_frames == 6


def test_frame_times_in_ps_and_a_restart_are_checked(stores, tmp_path):
    frames = nacl_frames(8, seed=5)
    for k, f in enumerate(frames):
        f.info["time_ps"] = 0.002 * k  # as ElectroDB's own export writes them
    path = write_frames(tmp_path / "ps.extxyz", frames)
    with pytest.raises(IngestError, match=r"'time_ps' goes 0 -> 0.002 over 1 frame\(s\), 0.002 ps per frame.*= 5 fs"):
        ingest_trajectory(path, *ARGS, stores)
    assert ingest_trajectory(path, "NaCl", None, 298.15, 0.5, 4, stores).n_frames == 8
    frames = nacl_frames(8, seed=6)
    for k, f in enumerate(frames):
        f.info["time_fs"] = 5.0 * (k if k < 5 else k - 1)  # frame 4 written twice (a restart)
    path = write_frames(tmp_path / "restart.extxyz", frames)
    with pytest.raises(IngestError, match=r"frame 5: the file's 'time_fs' goes 0 -> 20 over 5 frame\(s\), 4 fs"):
        ingest_trajectory(path, *ARGS, stores)


# ---------------------------------------------------------------------------- the same run twice (row 4)


def test_the_same_run_is_never_stored_twice(stores, tmp_path):
    frames = nacl_frames(120)
    full = write_frames(tmp_path / "full.extxyz", frames)
    cut = write_frames(tmp_path / "cut.extxyz", frames[:84])  # a copy cut at a frame boundary
    short = ingest_trajectory(cut, *ARGS, stores, chunk_frames=50, campaign="c1")
    doc = ingest_trajectory(full, *ARGS, stores, chunk_frames=50)
    assert stores.trajectories.count() == 1 and doc.n_frames == 120 and doc.campaign_ids == ["c1"]
    assert any(
        f"replaced stored trajectory {short.trajectory_id}: stored trajectory {short.trajectory_id} (from "
        "cut.extxyz) holds the first 84 of its 120 frames (the same run, cut short)" in m
        for m in doc.ingest_messages
    ), doc.ingest_messages
    assert stores.data.count({"trajectory_id": short.trajectory_id}) == 0
    assert load_trajectory(doc.trajectory_id, stores.trajectories, stores.data).n_frames == 120
    # the cut file again (or a copy under other labels): refused, nothing changes
    with pytest.raises(
        IngestError,
        match=r"nothing ingested: its 84 frames are the first 84 of the 120 frames of stored trajectory "
        rf"{doc.trajectory_id} \(from full.extxyz\): the same run.*pass --replace",
    ):
        ingest_trajectory(cut, *ARGS, stores)
    with pytest.raises(IngestError, match=r"its 120 frames are those of .*labels differ: temperature \(K\) 298.15"):
        ingest_trajectory(full, "NaCl", None, 310.0, 0.5, 10, stores)
    assert stores.trajectories.count() == 1 and stores.data.count({"kind": "ingest_staging"}) == 0
    assert stores.data.count({"kind": "trajectory_chunk"}) == 3
    relabelled = ingest_trajectory(full, "NaCl", None, 310.0, 0.5, 10, stores, replace=True)
    assert stores.trajectories.count() == 1 and relabelled.temperature == 310.0
    # another run from the same starting configuration is not the same run
    start = build_box("NaCl", 30, 11.0, free_formula_units=1, seed=3)
    other = ingest_trajectory(write_frames(tmp_path / "other.extxyz", frames_of(start, 20, seed=9)), *ARGS, stores)
    assert other.ingest_action == "created" and stores.trajectories.count() == 2


def test_cli_refuses_a_prefix_in_one_line(settings, tmp_path):
    from typer.testing import CliRunner

    from electrodb.cli.main import app

    frames = nacl_frames(30)
    full, cut = write_frames(tmp_path / "full.extxyz", frames), write_frames(tmp_path / "cut.extxyz", frames[:21])
    args = ["--salt", "NaCl", "--temperature", "298.15", "--timestep-fs", "0.5", "--interval", "10"]
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(full), *args]).exit_code == 0
    refused = runner.invoke(app, ["ingest", str(cut), *args], env={"COLUMNS": "80"})
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    (line,) = [x for x in refused.output.splitlines() if x.startswith("error:")]
    assert "its 21 frames are the first 21 of the 30 frames" in line and "--replace" in line


# -------------------------------------------------------------------------------------- a full disk (row 6)


def _fail_chunk_writes_after(monkeypatch, n_ok: int, error: BaseException) -> None:
    from electrodb.store import frames as frames_module

    real, calls = frames_module.put_chunks, []

    def put_chunks(blobs, docs):
        calls.append(1)
        if len(calls) > n_ok:
            raise error
        real(blobs, docs)

    monkeypatch.setattr(frames_module, "put_chunks", put_chunks)


def test_a_full_disk_is_one_line_and_leaves_no_staging(settings, stores, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from electrodb.cli.main import app

    path = write_frames(tmp_path / "a.extxyz", nacl_frames(12))
    first = ingest_trajectory(path, *ARGS, stores, chunk_frames=3)
    before = load_trajectory(first.trajectory_id, stores.trajectories, stores.data)
    _fail_chunk_writes_after(monkeypatch, 2, OSError(errno.ENOSPC, "No space left on device"))
    where = re.escape(str(settings.database_path))
    with pytest.raises(IngestError, match=rf"^the disk of embedded SQLite at {where} is full \(No space left"):
        ingest_trajectory(path, *ARGS, stores, chunk_frames=3, force=True)
    assert stores.data.count({"kind": "ingest_staging"}) == 0 and stores.data.count() == 4  # staging deleted
    after = load_trajectory(first.trajectory_id, stores.trajectories, stores.data)
    assert np.array_equal(after.positions, before.positions) and after.metadata["status"] == "completed"
    other = write_frames(tmp_path / "b.extxyz", nacl_frames(12, seed=8))
    args = ["--salt", "NaCl", "--temperature", "298.15", "--timestep-fs", "0.5", "--interval", "10"]
    result = CliRunner().invoke(app, ["ingest", str(other), *args], env={"COLUMNS": "80"})
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert str(settings.database_path) in line and "is full" in line and "free space there" in line
    assert stores.data.count() == 4 and stores.trajectories.count() == 1


def test_staging_that_cannot_be_deleted_on_a_full_disk_goes_at_the_next_ingest(stores, tmp_path, monkeypatch):
    path = write_frames(tmp_path / "a.extxyz", nacl_frames(12))
    full = sqlite3.OperationalError("database or disk is full")
    _fail_chunk_writes_after(monkeypatch, 2, full)

    def remove_fails(*args, **kwargs):
        raise full

    monkeypatch.setattr(stores.data, "remove_docs", remove_fails)
    with pytest.raises(IngestError, match=r"is full \(database or disk is full\).*could not be deleted now.*next"):
        ingest_trajectory(path, *ARGS, stores, chunk_frames=3)
    assert stores.trajectories.count() == 0 and stores.data.count({"kind": "trajectory_chunk"}) == 2
    monkeypatch.undo()
    doc = ingest_trajectory(path, *ARGS, stores, chunk_frames=3)
    assert any("removed stale staging data" in m for m in doc.ingest_messages)
    assert stores.data.count() == 4 and doc.n_frames == 12


def test_ingest_stops_while_there_is_room_to_clean_up(stores, tmp_path, monkeypatch):
    import shutil

    from electrodb.io.ingest_staging import MIN_FREE_BYTES

    path = write_frames(tmp_path / "a.extxyz", nacl_frames(12))
    real, calls = shutil.disk_usage, []

    def disk_usage(where):
        calls.append(1)
        usage = real(where)
        return usage._replace(free=MIN_FREE_BYTES // 2) if len(calls) > 2 else usage

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    with pytest.raises(IngestError, match=r"has only 8.0 MiB free, below the [\d.]+ MiB an ingest keeps free"):
        ingest_trajectory(path, *ARGS, stores, chunk_frames=3)
    assert _nothing_stored(stores)
