"""``campaign run --workers k``: device plans, worker deaths re-queued and resumed, and (slow) two CPU workers
running real MD with one worker SIGKILLed mid-production: every system completes, no frame lost or duplicated,
no duplicate document anywhere.

The makers the worker processes run (and unpickle) are the doubles of :mod:`tests.managers.doubles`.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import numpy as np
import pytest

from electrodb.flows.system import ElectrolyteFlowMaker
from tests.campaigns import assert_no_duplicates, worker_campaign
from tests.managers.doubles import FakeMaker, KillingProductionMaker


def test_device_plan_gives_each_worker_its_own_gpu_or_a_share_of_the_cores(monkeypatch):
    from electrodb.managers.devices import plan_devices

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    gpus = plan_devices(2, gpus=["3", "5", "6"], cores=16)
    assert [d.env["CUDA_VISIBLE_DEVICES"] for d in gpus] == ["3", "5"]
    assert all(d.env["OMP_NUM_THREADS"] == "8" for d in gpus) and gpus[1].name == "GPU 5"
    cpus = plan_devices(3, gpus=[], cores=2)
    assert [d.env["OMP_NUM_THREADS"] for d in cpus] == ["1"] * 3 and cpus[0].env["CUDA_VISIBLE_DEVICES"] == ""
    assert cpus[0].name == "CPU, 1 thread"
    with pytest.raises(ValueError, match=r"--workers 3 needs one GPU per worker, but 2 are visible.*--workers 2"):
        plan_devices(3, gpus=["0", "1"])
    with pytest.raises(ValueError, match="at least 1"):
        plan_devices(0, gpus=[])
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's limit for one process caps each worker's share
    assert plan_devices(2, gpus=[], cores=16)[0].env["OMP_NUM_THREADS"] == "3"


@pytest.mark.parametrize(("value", "expected"), [("0,2", ["0", "2"]), ("", []), ("-1", []), ("1,-1,2", ["1"])])
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch, value, expected):
    from electrodb.managers.devices import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert visible_gpus() == expected


def test_memory_stores_are_refused_with_the_fix(settings):
    from maggma.stores import MemoryStore

    from electrodb.managers.devices import plan_devices
    from electrodb.managers.workers import WorkerError, run_campaign_workers
    from electrodb.store.stores import JOB_COLLECTIONS, ElectroDBStores

    memory = ElectroDBStores(settings, _stores={n: MemoryStore(n) for n in ("jobs", "data", *JOB_COLLECTIONS)})
    campaign = worker_campaign("no-such.model", [2.0], [298.15])
    with pytest.raises(WorkerError, match="cannot open the stores.*MemoryStore.*workers=1"):
        run_campaign_workers(campaign, memory, 2, devices=plan_devices(2, gpus=[], cores=2))


def test_dead_workers_are_replaced_and_their_systems_rerun(settings, stores, tmp_path, monkeypatch):
    """Two workers, four systems: one worker is SIGKILLed once (its system reruns on a fresh worker), another
    system kills every worker that takes it (failed after ``max_deaths``); each worker had its own device."""
    from electrodb.flows.campaign import run_campaign
    from electrodb.managers.devices import plan_devices
    from electrodb.managers.workers import run_campaign_workers

    campaign = worker_campaign(str(tmp_path / "no-such.model"), [2.0, 3.5], [298.15, 310.0])
    ids = [s.system_id for s in campaign.systems()]
    maker = FakeMaker(marker_dir=str(tmp_path), kill_once=ids[1], always_die=ids[2])
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    events = []
    summary = run_campaign_workers(
        campaign,
        stores,
        2,
        maker=maker,
        on_event=events.append,
        max_deaths=2,
        devices=plan_devices(2, gpus=["7", "9"], cores=4),
    )
    assert summary.completed == [ids[0], ids[1], ids[3]] and summary.failed == [ids[2]]
    assert "died 2 times" in summary.reasons[ids[2]] and "SIGKILL" in summary.reasons[ids[2]]
    assert [len(summary.worker_deaths[i]) for i in (ids[1], ids[2])] == [1, 2] and len(summary.worker_deaths) == 2
    assert (tmp_path / "killed").read_text() == ids[1]
    kinds = [e.kind for e in events]
    assert kinds.count("died") == 3 and kinds.count("finish") == 3 and kinds.count("start") == 6
    resumed = [e for e in events if e.kind == "start" and e.system.system_id == ids[1]]
    assert "resumed" in resumed[-1].message
    for doc in stores.trajectories.query({"trajectory_id": {"$in": summary.completed}}):
        assert doc["env"] in ({"CUDA_VISIBLE_DEVICES": g, "OMP_NUM_THREADS": "2"} for g in ("7", "9"))
        assert doc["pid"] != os.getpid()
    assert_no_duplicates(stores)
    again = run_campaign(campaign, stores, maker=FakeMaker(marker_dir=str(tmp_path)))  # sequential, in-process
    assert again.skipped == summary.completed and again.completed == [ids[2]]


@pytest.mark.parametrize(
    ("temperatures", "production_ps"),
    [
        pytest.param([298.15], 0.05, id="2-systems"),
        pytest.param([298.15, 310.0], 0.1, id="4-systems", marks=pytest.mark.slow),
    ],
)
def test_two_cpu_workers_one_killed_mid_production_lose_and_duplicate_nothing(
    settings, stores, random_mace, tmp_path, temperatures, production_ps
):
    """Real MD (tiny random MACE, 32 waters) in 2 CPU workers; one SIGKILLs itself mid-production once."""
    from electrodb.managers.workers import run_campaign_workers
    from electrodb.md.dynamics import checkpoint_interval
    from electrodb.store.frames import list_chunks, load_trajectory

    campaign = worker_campaign(str(random_mace), [2.0, 3.5], temperatures, production_ps=production_ps)
    ids = [s.system_id for s in campaign.systems()]
    md = campaign.md
    n_steps = md.n_production_steps
    every = checkpoint_interval(md.checkpoint_every_steps, n_steps, md.sample_every_steps)
    marker = tmp_path / "killed.json"
    killing = KillingProductionMaker(marker=str(marker), kill_at_step=n_steps // 2)
    events = []
    summary = run_campaign_workers(
        campaign, stores, 2, maker=ElectrolyteFlowMaker(production_maker=killing), on_event=events.append
    )
    assert summary.completed == ids and not summary.failed and not summary.unstable
    killed = json.loads(marker.read_text())
    tid, killed_at = killed["system_id"], datetime.fromtimestamp(killed["time"], UTC)
    assert list(summary.worker_deaths) == [tid] and "SIGKILL" in summary.worker_deaths[tid][0]
    n_expected = n_steps // md.sample_every_steps + 1  # frame 0 and one every sample_every_steps
    for sid in ids:
        doc = stores.trajectories.query_one({"trajectory_id": sid})
        traj = load_trajectory(sid, stores.trajectories, stores.data)
        assert doc["status"] == "completed" and doc["n_frames"] == traj.n_frames == n_expected, sid
        assert np.allclose(np.diff(traj.times_ps), doc["frame_interval_ps"]), sid  # no gap, no duplicate
        assert np.linalg.norm(np.diff(traj.positions, axis=0), axis=2).max() < 1.0  # continuous positions
        chunks = list_chunks(stores.data, sid)
        starts = [c["frame_start"] for c in chunks]
        assert starts == sorted(set(starts)) and sum(c["n_frames"] for c in chunks) == n_expected
    # The killed system resumed from its last stored checkpoint, not from scratch: the chunks before it were
    # written before the kill and kept; the ones after it (among them frames flushed just before the kill) were
    # written again after the kill.
    ckpt_frames = (killed["step"] - every) // md.sample_every_steps + 1
    chunks = list(stores.data.query({"trajectory_id": tid, "kind": "trajectory_chunk"}))
    assert any(c["frame_start"] >= ckpt_frames for c in chunks) and any(c["frame_start"] < ckpt_frames for c in chunks)
    for chunk in chunks:
        written = chunk["last_updated"].replace(tzinfo=UTC)
        assert (written < killed_at) == (chunk["frame_start"] < ckpt_frames), chunk["frame_start"]
    job_counts = {sid: stores.jobs.count({"metadata.electrodb_system_id": sid}) for sid in ids}
    assert len(set(job_counts.values())) == 1, job_counts  # the killed attempt's job documents were replaced
    assert_no_duplicates(stores)
    starts = [e for e in events if e.kind == "start"]
    assert len(starts) == len(ids) + 1 and sum(e.kind == "died" for e in events) == 1


def test_cli_refuses_more_workers_than_gpus_before_running_anything(settings, stores, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from electrodb.cli.main import app

    spec = tmp_path / "c.yaml"
    spec.write_text(
        "name: cli\nsalts: [NaCl]\nconcentrations: [2.0]\nsize: {n_waters: 32}\nmodel: no-such.model\n"
        "model_cutoff_A: 4.0\n"
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    result = CliRunner().invoke(app, ["campaign", "run", str(spec), "--workers", "3"], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "--workers 3 needs one GPU per worker, but 2 are visible" in result.output
    assert "use --workers 2 or fewer" in result.output
    assert stores.campaigns.count() == 0  # nothing was recorded


@pytest.mark.parametrize(("batch", "noted"), [(2, True), ("off", False), ("auto", False)])  # auto: CPU here
def test_workers_say_when_they_set_md_batch_aside(random_mace, monkeypatch, batch, noted):
    """``--workers k`` runs one system per worker: a campaign asking for batches is told so, never silently."""
    import io

    from rich.console import Console

    from electrodb.cli.reporting import run_with_progress
    from electrodb.flows.campaign import CampaignRunSummary
    from electrodb.managers import workers

    campaign = worker_campaign(str(random_mace), [2.0], [298.15], batch=batch, thermostat="langevin")
    calls = []
    monkeypatch.setattr(
        workers, "run_campaign_workers", lambda c, s, k, **kw: calls.append(k) or CampaignRunSummary(total=1)
    )
    out = io.StringIO()
    run_with_progress(campaign, None, Console(file=out, width=80), workers=2)
    assert calls == [2]
    text = " ".join(out.getvalue().split())
    assert ("md.batch: 2 is not used with --workers 2" in text) is noted, text
