"""Benchmark: MD throughput (atom-steps per second) of three ways to run NVT Langevin with one MACE model.

(a) ElectroDB's sequential ASE path: :func:`electrodb.md.dynamics.run_production` with a
    :class:`~electrodb.store.frames.TrajectoryWriter` into a temporary embedded (SQLite) store;
(b) atomate2's ``ForceFieldMDMaker`` (NVT Langevin) run with jobflow ``run_locally`` into a JobStore with a
    ``data`` additional store;
(c) torch-sim (:func:`electrodb.flows.batched.run_batched_nvt`): k boxes in one batched integration versus the
    same k boxes one after the other.

Same model, same packed box (default NaCl 1 mol/kg with 64 waters, 194 atoms), same time step, friction,
temperature, sampling interval and number of steps. Warm-up is excluded: (a) and (c) run ``--warmup`` steps in
a separate untimed call first; for (b), whose job loads its own calculator, the timed quantity is the MD loop
time atomate2 reports (``elapsed_time``) of a run of warmup + steps minus that of a run of warmup steps (its
end-to-end job times are printed too). Throughput = atoms × steps / wall time, and atoms × steps per CPU-second
of this process (``time.process_time``, all threads; for (b) the difference of the two whole jobs). CPU time
is much less sensitive than wall time to other processes sharing the cores; with ``--threads 1`` it measures
the computational efficiency of each path. The paths are timed in ``--repeats`` interleaved rounds and the
best round of each is kept.

The model is ``--model PATH`` (a MACE file), or by default a randomly initialised MACE of realistic size for a
demo water/salt model (16 channels, L_max 1, correlation 3, max_ell 2, 2 interactions, r_max 4.5 Å: 21 k
parameters; the weights do not affect the cost). The device is chosen like ElectroDB does (``--device auto``: CUDA
when available, else CPU) and printed.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/md_throughput.py [--steps 100] [--warmup 20] [--batch 4]
        [--mixed-sizes] [--model PATH] [--device auto|cpu|cuda] [--threads N] [--repeats 2] [--skip-atomate2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
import mace  # noqa: F401  (before e3nn: torch >= 2.6 weights-only loading pitfall)
import numpy as np
import torch
from ase import Atoms
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

from electrodb.systems.boxes import box_counts, pack_box
from electrodb.systems.campaign import MDSettings, StabilitySettings

ELEMENTS = (1, 3, 8, 11, 17)  # H, Li, O, Na, Cl
# Very loose thresholds: a random model has no bonds (H atoms collide); the benchmark measures cost, not
# physics. The checks still run (every 10 steps) in both ElectroDB paths, so their cost is included.
STABILITY = StabilitySettings(
    min_distance_h_A=0.1, min_distance_heavy_A=0.3, max_temperature_factor=10.0, max_force_eV_A=1000.0
)


@dataclass
class Timing:
    """One timed run: wall time (s), CPU time of this process (s, all threads) and atoms × steps integrated."""

    wall_s: float
    cpu_s: float
    atom_steps: int


def build_mace(
    path: Path,
    channels: int = 16,
    max_L: int = 1,
    correlation: int = 3,
    max_ell: int = 2,
    interactions: int = 2,
    r_max: float = 4.5,
    seed: int = 0,
) -> Path:
    """A randomly initialised MACE (ScaleShiftMACE with ZBL repulsion) of the given size, saved like a trained one."""
    from e3nn import o3
    from mace.modules import ScaleShiftMACE, interaction_classes

    torch.manual_seed(seed)
    hidden = " + ".join(f"{channels}x{ell}{'e' if ell % 2 == 0 else 'o'}" for ell in range(max_L + 1))
    model = ScaleShiftMACE(
        r_max=r_max,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=max_ell,
        interaction_cls=interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=interactions,
        num_elements=len(ELEMENTS),
        hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(ELEMENTS)),
        avg_num_neighbors=20.0,
        atomic_numbers=list(ELEMENTS),
        correlation=correlation,
        gate=torch.nn.functional.silu,
        pair_repulsion=True,
        radial_MLP=[32, 32, 32],
        atomic_inter_scale=0.01,
        atomic_inter_shift=0.0,
    )
    torch.save(model.float(), path)
    return path


def make_boxes(salt: str, molality: float, waters: list[int], temperature: float, seed: int) -> list[Atoms]:
    """Packed boxes with Maxwell–Boltzmann momenta at ``temperature`` (the same start for every engine)."""
    boxes = []
    for k, n in enumerate(waters):
        atoms = pack_box(box_counts(salt, molality, "mol/kg", temperature, n_waters=n), seed=1).atoms
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed + k))
        Stationary(atoms)
        boxes.append(atoms)
    return boxes


def prepare_ase_electrodb(
    atoms: Atoms, model_path: Path, md: MDSettings, args: argparse.Namespace, workdir: Path
) -> Callable[[], Timing]:
    """(a) ``run_production`` (ASE Langevin + MACECalculator) streaming frames into an embedded store."""
    from electrodb.md.dynamics import run_production
    from electrodb.models.loader import load_model
    from electrodb.settings import ElectroDBSettings
    from electrodb.store.frames import TrajectoryWriter
    from electrodb.store.stores import get_stores

    stores = get_stores(ElectroDBSettings(data_dir=workdir / "electrodb-data")).connect("data")
    calc = load_model(model_path, device=args.device).calculator()
    counter = iter(range(10**6))

    def once(n_steps: int) -> Timing:
        a = atoms.copy()
        a.calc = calc
        writer = TrajectoryWriter(stores.data, f"ase-{next(counter)}", len(a), chunk_frames=200)
        t0, c0 = time.perf_counter(), time.process_time()
        run_production(a, md, args.temperature, writer, md.timestep_fs, md.sample_every_steps, n_steps)
        return Timing(time.perf_counter() - t0, time.process_time() - c0, len(a) * n_steps)

    once(args.warmup)
    return lambda: once(args.steps)


def prepare_atomate2(atoms: Atoms, model_path: Path, md: MDSettings, args: argparse.Namespace) -> Callable[[], Timing]:
    """(b) atomate2 ``ForceFieldMDMaker`` via ``run_locally``; MD loop time of (warmup+steps) − (warmup)."""
    from atomate2.forcefields.md import ForceFieldMDMaker
    from jobflow import JobStore, run_locally
    from maggma.stores import MemoryStore
    from pymatgen.io.ase import AseAtomsAdaptor

    structure = AseAtomsAdaptor.get_structure(atoms)
    structure.add_site_property("velocities", [list(v) for v in atoms.get_velocities()])

    def once(n_steps: int) -> tuple[float, float, float]:
        maker = ForceFieldMDMaker(
            force_field_name="MACE_MP_0",
            calculator_kwargs={"model": str(model_path), "device": args.device, "default_dtype": "float32"},
            ensemble="nvt",
            dynamics="langevin",
            time_step=md.timestep_fs,
            n_steps=n_steps,
            temperature=args.temperature,
            ase_md_kwargs={"friction": md.friction_per_fs / units_fs()},
            traj_interval=md.sample_every_steps,
        )
        store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
        job = maker.make(structure)
        t0, c0 = time.perf_counter(), time.process_time()
        responses = run_locally(job, store=store, ensure_success=True, log=False)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        doc = responses[job.uuid][1].output
        elapsed = getattr(doc.output, "elapsed_time", None) or getattr(doc, "elapsed_time", None)
        return float(elapsed if elapsed is not None else np.nan), total, cpu

    runs_w: list[tuple[float, float, float]] = []
    runs_n: list[tuple[float, float, float]] = []

    def timed() -> Timing:
        runs_w.append(once(args.warmup))
        runs_n.append(once(args.warmup + args.steps))
        job_times.append((runs_w[-1][1], runs_n[-1][1]))
        return final()

    def final() -> Timing:
        # Best (warmup + steps) run minus best (warmup) run, each over all rounds so far. Wall: atomate2's own
        # MD-loop timer; CPU: whole jobs (calculator loading and job overhead cancel in the difference).
        loop = min(r[0] for r in runs_n) - min(r[0] for r in runs_w)
        cpu = min(r[2] for r in runs_n) - min(r[2] for r in runs_w)
        return Timing(loop, cpu, len(atoms) * args.steps)

    job_times: list[tuple[float, float]] = []
    timed.job_times = job_times  # type: ignore[attr-defined]
    timed.final = final  # type: ignore[attr-defined]
    return timed


def units_fs() -> float:
    from ase import units

    return float(units.fs)


def prepare_torchsim(
    boxes: list[Atoms], model_path: Path, md: MDSettings, args: argparse.Namespace, batched: bool
) -> Callable[[], Timing]:
    """(c) ``run_batched_nvt``: all boxes in one batch, or each box alone (sequential)."""
    from maggma.stores import MemoryStore

    from electrodb.flows.batched import run_batched_nvt
    from electrodb.models.loader import load_model
    from electrodb.store.frames import TrajectoryWriter

    module = load_model(model_path, device=args.device).torch_model()
    store = MemoryStore()
    store.connect()
    counter = iter(range(10**6))

    def once(group: list[Atoms], n_steps: int) -> Timing:
        tag = next(counter)
        writers = [TrajectoryWriter(store, f"ts-{tag}-{k}", len(a)) for k, a in enumerate(group)]
        t0, c0 = time.perf_counter(), time.process_time()
        result = run_batched_nvt(
            group,
            module,
            [args.temperature] * len(group),
            md.timestep_fs,
            n_steps,
            md.sample_every_steps,
            writers,
            friction_per_fs=md.friction_per_fs,
            seed=md.seed,
            device=args.device,
            dtype=torch.float32,
            monitor=md.stability,
        )
        if result.n_unstable:  # throughput still counts only the atom-steps actually integrated
            print(f"  WARNING: torch-sim run unstable: {[o.reason for o in result.outcomes]}", flush=True)
        store.remove_docs({})
        return Timing(time.perf_counter() - t0, time.process_time() - c0, result.atom_steps)

    groups = [boxes] if batched else [[b] for b in boxes]
    once(groups[0], args.warmup)

    def timed() -> Timing:
        runs = [once(group, args.steps) for group in groups]
        return Timing(sum(r.wall_s for r in runs), sum(r.cpu_s for r in runs), sum(r.atom_steps for r in runs))

    return timed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="MACE model file (default: a random MACE of realistic size)")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--max-L", type=int, default=1)
    parser.add_argument("--interactions", type=int, default=2)
    parser.add_argument("--r-max", type=float, default=4.5)
    parser.add_argument("--salt", default="NaCl")
    parser.add_argument("--molality", type=float, default=1.0)
    parser.add_argument("--waters", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4, help="k boxes for the torch-sim comparison")
    parser.add_argument("--mixed-sizes", action="store_true", help="batch boxes of 64, 48, 80, 32, ... waters")
    parser.add_argument("--steps", type=int, default=100, help="timed steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed warm-up steps")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best per path is kept")
    parser.add_argument("--skip-atomate2", action="store_true")
    parser.add_argument("--skip-sequential-torchsim", action="store_true")
    args = parser.parse_args(argv)

    from electrodb.flows.batched import resolve_device, should_batch

    args.device = str(resolve_device(args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    md = MDSettings(timestep_fs=args.timestep, friction_per_fs=0.01, sample_every_steps=20, stability=STABILITY)
    workdir = Path(tempfile.mkdtemp(prefix="electrodb-md-bench-"))
    model_path = args.model or build_mace(
        workdir / "bench.model",
        channels=args.channels,
        max_L=args.max_L,
        interactions=args.interactions,
        r_max=args.r_max,
    )
    n_params = sum(p.numel() for p in torch.load(model_path, weights_only=False).parameters())
    sizes = [args.waters] * args.batch
    if args.mixed_sizes:
        cycle = [args.waters, 48, 80, 32, 96, 64]
        sizes = [cycle[k % len(cycle)] for k in range(args.batch)]
    boxes = make_boxes(args.salt, args.molality, sizes, args.temperature, seed=11)
    main_box = boxes[0]

    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(
        f"device: {args.device} ({device_name}); torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    if not args.device.startswith("cuda"):
        print("NOTE: CPU run - no GPU measured here; batching is expected to pay only on a GPU")
    print(
        f"model: {model_path.name}, {n_params} parameters, float32; box: {args.salt} {args.molality} mol/kg, "
        f"{args.waters} waters, {len(main_box)} atoms; batch sizes (atoms): {[len(b) for b in boxes]}"
    )
    print(
        f"NVT Langevin {args.temperature} K, dt {args.timestep} fs, friction 0.01/fs, sample every "
        f"{md.sample_every_steps} steps; {args.steps} timed steps after {args.warmup} warm-up steps\n"
    )

    k = len(boxes)
    names = {
        "a": "a: ElectroDB ASE run_production (1 box)",
        "b": "b: atomate2 ForceFieldMDMaker (1 box)",
        "c1": "c1: torch-sim, 1 box",
        "c2": f"c2: torch-sim sequential, {k} boxes",
        "c3": f"c3: torch-sim batched, {k} boxes",
    }
    timers: dict[str, Callable[[], Timing]] = {}
    t = time.perf_counter()
    timers[names["a"]] = prepare_ase_electrodb(main_box, model_path, md, args, workdir)
    if not args.skip_atomate2:
        timers[names["b"]] = prepare_atomate2(main_box, model_path, md, args)
    timers[names["c1"]] = prepare_torchsim([main_box], model_path, md, args, batched=True)
    if not args.skip_sequential_torchsim:
        timers[names["c2"]] = prepare_torchsim(boxes, model_path, md, args, batched=False)
    timers[names["c3"]] = prepare_torchsim(boxes, model_path, md, args, batched=True)
    print(f"set-up and warm-up: {time.perf_counter() - t:.0f} s", flush=True)
    # Interleaved rounds, best of --repeats per path: robust to other processes sharing the CPU.
    results: dict[str, dict[str, Any]] = {}
    for r in range(args.repeats):
        for name, timer in timers.items():
            timing = timer()
            best = results.setdefault(name, {"wall_s": np.inf, "cpu_s": np.inf, "atom_steps": timing.atom_steps})
            best["wall_s"] = min(best["wall_s"], timing.wall_s)
            best["cpu_s"] = min(best["cpu_s"], timing.cpu_s)
        print(f"round {r + 1}/{args.repeats} done, load average {os.getloadavg()[0]:.1f}", flush=True)
    for name, timer in timers.items():
        if hasattr(timer, "final"):  # (b): a difference of two runs, each taken at its best over the rounds
            timing = timer.final()
            results[name].update(wall_s=timing.wall_s, cpu_s=timing.cpu_s)
    print()

    ref = results[names["a"]]
    print(
        f"{'path':44s} {'wall (s)':>9s} {'atom-steps/s':>13s} {'vs (a)':>7s} {'CPU (s)':>9s} "
        f"{'atom-steps/CPU-s':>17s} {'vs (a)':>7s}"
    )
    for name, r in results.items():
        r["atom_steps_per_s"] = r["atom_steps"] / r["wall_s"]
        r["atom_steps_per_cpu_s"] = r["atom_steps"] / r["cpu_s"]
        r["ratio_vs_a"] = r["atom_steps_per_s"] / (ref["atom_steps"] / ref["wall_s"])
        r["cpu_ratio_vs_a"] = r["atom_steps_per_cpu_s"] / (ref["atom_steps"] / ref["cpu_s"])
        print(
            f"{name:44s} {r['wall_s']:9.2f} {r['atom_steps_per_s']:13.0f} {r['ratio_vs_a']:7.2f} {r['cpu_s']:9.2f} "
            f"{r['atom_steps_per_cpu_s']:17.0f} {r['cpu_ratio_vs_a']:7.2f}"
        )
    seq = results.get(names["c2"])
    bat = results[names["c3"]]
    if seq:
        gain = bat["atom_steps_per_s"] / seq["atom_steps_per_s"]
        gain_cpu = bat["atom_steps_per_cpu_s"] / seq["atom_steps_per_cpu_s"]
        print(f"\nbatched / sequential torch-sim (k={len(boxes)}): {gain:.2f} (wall), {gain_cpu:.2f} (CPU time)")
    if names["b"] in timers:
        job_times = timers[names["b"]].job_times  # type: ignore[attr-defined]
        print(
            "atomate2 end-to-end job times (warm-up run, full run), per round: "
            + ", ".join(f"({a:.1f} s, {b:.1f} s)" for a, b in job_times)
        )
    print(f"should_batch({args.device!r}) = {should_batch(args.device)}; load average {os.getloadavg()[0]:.1f} at end")
    shutil.rmtree(workdir, ignore_errors=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
