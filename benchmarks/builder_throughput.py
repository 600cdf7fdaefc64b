"""Builder throughput: trajectories/s of the per-trajectory properties builder, serial vs ``--workers N``.

Writes ``--trajectories`` synthetic Brownian trajectories (``tests/synthetic.py``; by default 1,484 atoms x
1,000 frames, i.e. 1 ns at 1 ps per frame) into a temporary embedded database, then runs the whole build
(``run_builders``) serially and again with ``--workers N`` (``rebuild=True``: every trajectory reanalysed), in the
same run, and prints trajectories/s for both and their ratio. The properties builder dominates the build; the
summary and thermo builders are timed too. Ratios only mean something against the CPU cores actually free:
``os.cpu_count()`` and the load average are printed beside them.

    python benchmarks/builder_throughput.py [--trajectories 4] [--frames 1000] [--frame-ps 1.0] [--waters 480]
        [--workers 2]

The analysis cost grows about linearly with frames x atoms: time two ``--frames`` values to extrapolate.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.synthetic


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished child processes (the build's workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _worker_startup(workers: int) -> tuple[float, float]:
    """Wall and CPU seconds (incl. children) to start ``workers`` spawned workers that import the analysis."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    c0, t0 = _cpu_s(), time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_import_analysis, range(workers)))
    return time.perf_counter() - t0, _cpu_s() - c0


def _import_analysis(_: int) -> int:
    import electrodb.builders.parallel  # noqa: F401  (what a build worker imports before its first trajectory)

    return os.getpid()


def _build(stores, rebuild: bool, workers: int) -> tuple[float, dict[str, float], dict[str, int]]:
    """Wall time of one full build (s); wall time per builder and CPU time incl. workers (``cpu_s``); counts."""
    from electrodb.builders import run_builders

    marks: list[tuple[str, str, float]] = []
    c0 = _cpu_s()
    t0 = time.perf_counter()
    counts = run_builders(
        stores,
        log=lambda line: marks.append((line.split(":")[0], line, time.perf_counter())),
        rebuild=rebuild,
        workers=workers,
    )
    total = time.perf_counter() - t0
    per, last = {"cpu_s": _cpu_s() - c0}, t0
    for name, line, t in marks:
        if name in counts and "inputs processed" in line:  # the line run_builders logs when a builder is done
            per[name], last = t - last, t
    return total, per, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectories", type=int, default=4)
    ap.add_argument("--frames", type=int, default=1000, help="frames per trajectory")
    ap.add_argument("--frame-ps", type=float, default=1.0, help="time between frames (ps); 1,000 x 1 ps = 1 ns")
    ap.add_argument("--waters", type=int, default=480, help="waters per box (480 at 1 m NaCl: 1,458 atoms)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="electrodb-builder-bench-") as tmp:
        os.environ["ELECTRODB_DATA_DIR"] = tmp
        os.environ.pop("ELECTRODB_DB_URI", None)
        from electrodb.settings import ElectroDBSettings
        from electrodb.store.stores import get_stores
        from tests.synthetic import write_brownian_trajectory

        with get_stores(ElectroDBSettings()) as stores:
            t0 = time.perf_counter()
            n_atoms = 0
            for i in range(args.trajectories):
                doc = write_brownian_trajectory(
                    stores,
                    "NaCl",
                    1.0 + 0.5 * i,
                    n_waters=args.waters,
                    n_frames=args.frames,
                    frame_ps=args.frame_ps,
                    seed=100 + i,
                )
                n_atoms = doc.n_atoms
            t_write = time.perf_counter() - t0
            print(
                f"{args.trajectories} trajectories x {args.frames} frames ({args.frame_ps} ps apart) x {n_atoms} atoms "
                f"written in {t_write:.1f} s; cpu_count {os.cpu_count()}, "
                f"load average {os.getloadavg()[0]:.2f} at start"
            )
            serial, serial_per, counts = _build(stores, rebuild=False, workers=1)
            parallel, parallel_per, counts_p = _build(stores, rebuild=True, workers=args.workers)
            startup_wall, startup_cpu = _worker_startup(args.workers)
            load = os.getloadavg()[0]
    n = counts["properties"]
    assert n == counts_p["properties"] == args.trajectories, (counts, counts_p)
    t_s, t_p = serial_per.get("properties", serial), parallel_per.get("properties", parallel)
    print(
        f"serial:     build {serial:.1f} s; properties {t_s:.1f} s = {n / t_s:.3f} trajectories/s "
        f"({t_s / n:.1f} s each)"
    )
    print(
        f"workers {args.workers}:  build {parallel:.1f} s; properties {t_p:.1f} s = {n / t_p:.3f} trajectories/s "
        f"({t_p / n:.1f} s each)"
    )
    print(
        f"CPU time of the whole build (incl. workers): serial {serial_per['cpu_s']:.1f} s = "
        f"{serial_per['cpu_s'] / n:.1f} CPU-s per trajectory; workers {args.workers} {parallel_per['cpu_s']:.1f} s = "
        f"{parallel_per['cpu_s'] / n:.1f} CPU-s per trajectory (worker start-up included)"
    )
    print(
        f"worker start-up (spawn + imports, {args.workers} workers): {startup_wall:.1f} s wall, "
        f"{startup_cpu:.1f} CPU-s in all; per trajectory without it: "
        f"{(parallel_per['cpu_s'] - startup_cpu) / n:.1f} CPU-s"
    )
    others = {k: round(v, 2) for k, v in serial_per.items() if k not in ("properties", "cpu_s")}
    print(f"other builders, serial (s): {others}")
    print(
        f"ratio workers{args.workers}/serial throughput: {t_s / t_p:.2f}x "
        f"(ideal {min(args.workers, os.cpu_count() or 1)}x on free cores; load average {load:.2f} at the end)"
    )


if __name__ == "__main__":
    main()
