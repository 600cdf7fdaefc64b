"""Builders that scale: chunked writes survive a crash, ``--rebuild`` never empties what readers see, documents
whose source is gone are pruned, and ``--workers 2`` gives the serial build's documents."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from electrodb.builders import run_builders
from electrodb.builders.trajectory import TrajectoryPropertiesBuilder
from tests.synthetic import write_brownian_trajectory

PROPERTY_STORES = ("structure", "transport", "pairing", "kinetics")


def _three(stores) -> list[Any]:
    return [write_brownian_trajectory(stores, "NaCl", m, n_frames=60, seed=40 + i) for i, m in enumerate((1, 2, 3))]


def _snapshot(stores, names: tuple[str, ...]) -> dict[str, dict[str, dict]]:
    """Every document of the named collections, keyed by their store key, without write times and row ids."""
    out = {}
    for name in names:
        store = stores[name]
        docs = {}
        for d in store.query({}):
            d = {k: v for k, v in d.items() if k not in ("_id", "last_updated")}
            docs[str(d[store.key])] = d
        out[name] = docs
    return out


def test_a_crash_mid_build_keeps_the_finished_items(stores, monkeypatch):
    trajectories = _three(stores)
    original = TrajectoryPropertiesBuilder.process_item
    calls = []

    def crash_on_third(self, meta):
        calls.append(meta["trajectory_id"])
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return original(self, meta)

    monkeypatch.setattr(TrajectoryPropertiesBuilder, "process_item", crash_on_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_builders(stores)
    finished = set(calls[:2])
    for name in PROPERTY_STORES:  # the two finished trajectories were written as they completed
        assert set(stores[name].distinct("trajectory_id")) == finished, name
    monkeypatch.setattr(TrajectoryPropertiesBuilder, "process_item", original)
    counts = run_builders(stores)  # the next build continues with what is left
    assert counts["properties"] == 1
    assert stores.kinetics.count() == 3 and stores.electrolytes.count() == 3
    assert {t.trajectory_id for t in trajectories} == set(stores.kinetics.distinct("trajectory_id"))


def test_rebuild_never_shows_readers_fewer_documents(settings, stores):
    from typer.testing import CliRunner

    from electrodb.cli.main import app
    from electrodb.store.stores import get_stores

    _three(stores)
    run_builders(stores)
    before = _snapshot(stores, ("electrolytes",))["electrolytes"]
    assert len(before) == 3
    first_written = {d["electrolyte_id"]: d["last_updated"] for d in stores.electrolytes.query({})}
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def reader() -> None:
        with get_stores(settings, read_only=True) as ro:
            while not stop.is_set():
                seen.append((ro.electrolytes.count(), ro.structure.count()))
                time.sleep(0.002)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = CliRunner().invoke(app, ["build", "--rebuild"])
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0, result.output
    assert "'properties': 3" in result.output and "'summary': 3" in result.output
    assert len(seen) >= 5  # the reader really ran during the rebuild
    assert min(n for n, _ in seen) == 3 and min(n for _, n in seen) == 3
    rewritten = {d["electrolyte_id"]: d["last_updated"] for d in stores.electrolytes.query({})}
    assert all(rewritten[k] > first_written[k] for k in first_written)  # every summary was recomputed
    assert _snapshot(stores, ("electrolytes",))["electrolytes"] == before  # ... to the same values


def test_documents_of_vanished_trajectories_are_pruned(stores):
    a = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=60, seed=51)
    b = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=60, seed=52)
    bad = write_brownian_trajectory(stores, "LiCl", 1.0, n_frames=60, seed=53, status="unstable")
    run_builders(stores)
    assert stores.electrolytes.query_one({})["n_runs"] == 2 and stores.builds.count() == 1
    stores.trajectories.remove_docs({"trajectory_id": {"$in": [b.trajectory_id, bad.trajectory_id]}})
    run_builders(stores)
    for name in PROPERTY_STORES:
        assert stores[name].distinct("trajectory_id") == [a.trajectory_id], name
    assert stores.builds.count() == 0
    summary = stores.electrolytes.query_one({})
    assert summary["n_runs"] == 1 and summary["trajectory_ids"] == [a.trajectory_id]
    assert stores.thermo.count() == 1
    stores.trajectories.remove_docs({})
    run_builders(stores, rebuild=True)
    assert all(stores[name].count() == 0 for name in (*PROPERTY_STORES, "electrolytes", "thermo"))


def test_two_workers_build_what_the_serial_build_builds(stores, monkeypatch):
    _three(stores)
    write_brownian_trajectory(stores, "LiCl", 1.0, n_frames=10, seed=60)  # too short: a skip, in parallel too
    names = (*PROPERTY_STORES, "electrolytes", "thermo", "builds")
    serial = run_builders(stores)
    expected = _snapshot(stores, names)

    def not_in_the_parent(self, meta):
        raise AssertionError("the parallel build analysed in the parent process")

    monkeypatch.setattr(TrajectoryPropertiesBuilder, "process_item", not_in_the_parent)
    parallel = run_builders(stores, rebuild=True, workers=2)
    assert parallel["properties"] == serial["properties"] == 4
    got = _snapshot(stores, names)
    for name in names:
        assert got[name] == expected[name], name


def test_workers_refuse_stores_other_processes_cannot_open():
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    from electrodb.builders.parallel import ParallelBuildError
    from electrodb.store.stores import ElectroDBStores

    stores = ElectroDBStores.from_job_store(JobStore(MemoryStore("jobs", key="uuid")))
    with pytest.raises(ParallelBuildError, match="MemoryStore.*use workers=1"):
        run_builders(stores, workers=2)
