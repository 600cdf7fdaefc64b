"""Benchmark: wall time of one tiny campaign run sequentially, in 1 worker process and in k worker processes.

The same campaign (NaCl at ``--systems`` concentration × temperature points, ``--waters`` waters, a randomly
initialised tiny MACE from ``tests/model_factory.py``, ``--production-ps`` of NVT) runs three ways, each into a
fresh embedded (SQLite) database:

* ``sequential``: :func:`electrodb.flows.campaign.run_campaign` in this process (what ``campaign run`` does);
* ``1 worker``: :func:`electrodb.managers.workers.run_campaign_workers` with one worker (the process overhead);
* ``k workers``: the same with ``--workers`` k (one device each: GPUs when visible, else ``cores // k`` threads).

Printed: each wall time, the ratios sequential / k workers and 1 worker / k workers measured in the same run, and
the load average before and after (other processes on the same cores distort wall times: read the ratio together
with the load). Model loading in this process (the campaign's cutoff check) happens once, before timing; each
worker process pays its own start (imports, torch, loading the model: seconds), so very short campaigns gain
little and longer ones approach k× on k free devices.

Usage::

    .venv/bin/python benchmarks/campaign_workers.py [--workers 2] [--systems 4] [--waters 32] [--production-ps 0.1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.model_factory


def _campaign(model: Path, n_systems: int, n_waters: int, production_ps: float):  # type: ignore[no-untyped-def]
    from electrodb.systems.campaign import Campaign, MDSettings, StabilitySettings

    points = [(c, t) for t in (298.15, 310.0, 320.0, 330.0) for c in (2.0, 3.5)][:n_systems]
    if len(points) < n_systems:
        raise SystemExit(f"--systems {n_systems}: at most 8 systems are defined")
    md = MDSettings(
        minimize_steps=5,
        nvt_warmup_ps=0.005,
        npt=False,
        production_ps=production_ps,
        sample_every_steps=10,
        checkpoint_every_steps=20,
        nve_drift_steps=0,
        # a random model has no bonds: loose distance checks (the benchmark measures cost, not physics)
        stability=StabilitySettings(min_distance_h_A=0.1, min_distance_heavy_A=0.5),
    )
    concentrations = sorted({c for c, _ in points})
    temperatures = sorted({t for _, t in points})
    return Campaign(
        name="bench-workers",
        salts=["NaCl"],
        concentrations=concentrations,
        temperatures=temperatures,
        size={"n_waters": n_waters},
        model=str(model),
        model_cutoff_A=4.0,
        md=md,
    )


def _timed(kind: str, campaign, root: Path, workers: int) -> float:  # type: ignore[no-untyped-def]
    from electrodb.flows.campaign import run_campaign
    from electrodb.managers.workers import run_campaign_workers
    from electrodb.settings import ElectroDBSettings, get_settings
    from electrodb.store.stores import get_stores

    data = root / kind.replace(" ", "-")
    shutil.rmtree(data, ignore_errors=True)
    os.environ["ELECTRODB_DATA_DIR"] = str(data)
    get_settings.cache_clear()
    with get_stores(ElectroDBSettings()) as stores:
        started = time.perf_counter()
        if kind == "sequential":
            summary = run_campaign(campaign, stores)
        else:
            summary = run_campaign_workers(campaign, stores, workers)
        wall = time.perf_counter() - started
    if summary.failed or summary.unstable:
        raise SystemExit(f"{kind}: not every system completed: {summary}")
    print(f"{kind:>12}: {wall:7.1f} s for {len(summary.completed)} systems", flush=True)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--systems", type=int, default=4)
    parser.add_argument("--waters", type=int, default=32)
    parser.add_argument("--production-ps", type=float, default=0.1)
    args = parser.parse_args()

    from electrodb.flows.campaign import with_model_cutoff
    from electrodb.managers.devices import plan_devices
    from tests.model_factory import build_random_mace

    root = Path(tempfile.mkdtemp(prefix="electrodb-bench-workers-"))
    try:
        model = build_random_mace(root / "random-tiny.model")
        campaign = _campaign(model, args.systems, args.waters, args.production_ps)
        with_model_cutoff(campaign)  # loads the model here once (cached), outside the timings
        devices = plan_devices(args.workers)
        print(f"{args.systems} systems, {args.waters} waters, {args.production_ps} ps each; cores {os.cpu_count()}")
        print(f"{args.workers} workers: " + "; ".join(d.name for d in devices))
        load_before = os.getloadavg()
        seq = _timed("sequential", campaign, root, 1)
        one = _timed("1 worker", campaign, root, 1)
        many = _timed(f"{args.workers} workers", campaign, root, args.workers)
        load_after = os.getloadavg()
        k = f"{args.workers} workers"
        print(f"sequential / {k}: {seq / many:.2f}x; 1 worker / {k}: {one / many:.2f}x")
        print(f"load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
