"""What a committee audit costs beside the MD it audits: target a few per cent (issue 23).

Packs a demo box (NaCl at 1 mol/kg in 64 waters by default), runs ``--steps`` velocity-Verlet steps with the
demo committee's driver (the shipped demo MACE, the same calculator a campaign uses) and times them, then times
:func:`electrodb.models.committee.evaluate_members` of all K members on ``--frames`` frames of that run, in CPU
seconds of this process (other processes on a shared machine inflate wall times, not these). The audit evaluates
K members on every ``every_frames``-th stored frame, and a frame is stored every ``sample_every_steps`` MD steps,
so its share of the MD cost is

    K · t_eval / (every_frames · sample_every_steps · t_step)

with t_eval the time of one member on one frame (loading the members once per call included, as in an audit)
and t_step one MD step. The table prints it for the demo's
settings (every 20th frame, a frame every 4 steps) and a few others.

    python benchmarks/committee_cost.py [--waters 64] [--steps 40] [--frames 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from importlib import resources
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--salt", default="NaCl")
    ap.add_argument("--molality", type=float, default=1.0)
    ap.add_argument("--waters", type=int, default=64)
    ap.add_argument("--steps", type=int, default=48, help="MD steps timed")
    ap.add_argument("--frames", type=int, default=24, help="frames the committee is timed on (one call, as an audit)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from electrodb.models.committee import evaluate_members
    from electrodb.models.loader import load_model
    from electrodb.models.reference import ModelRef
    from electrodb.systems.boxes import box_counts, pack_box

    folder = resources.files("electrodb.data")
    card = json.loads(folder.joinpath("demo-mace-committee.json").read_text(encoding="utf-8"))
    paths = [Path(str(folder.joinpath(name))) for name in card["member_files"]]
    atoms = pack_box(box_counts(args.salt, args.molality, n_waters=args.waters), seed=1).atoms.copy()
    atoms.calc = load_model(ModelRef.parse(str(paths[0]), device=args.device)).calculator()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300)
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    dyn.run(2)  # warm-up: the first call builds the graph
    frames = []
    dyn.attach(lambda: frames.append(atoms.copy()), interval=max(1, args.steps // args.frames))
    c0 = time.process_time()
    dyn.run(args.steps)
    t_step = (time.process_time() - c0) / args.steps
    frames = frames[: args.frames]
    for f in frames:
        f.calc = None
    evaluate_members(paths, frames[:1], args.device, expected_ids=card["member_ids"])  # warm-up
    c0 = time.process_time()
    evaluate_members(paths, frames, args.device, expected_ids=card["member_ids"])
    t_eval = (time.process_time() - c0) / (len(paths) * len(frames))
    k = len(paths)
    print(
        f"{args.salt} {args.molality:g} m, {len(atoms)} atoms, {k} members, {os.cpu_count()} CPUs, device "
        f"{args.device}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"one MD step {1e3 * t_step:.1f} ms CPU; one member on one frame {1e3 * t_eval:.1f} ms CPU "
        f"(ratio {t_eval / t_step:.2f})"
    )
    print(f"{'every_frames':>12} {'sample_every_steps':>18} {'audit / MD':>10}")
    for every, sample in ((20, 4), (10, 4), (10, 10), (5, 20), (1, 4)):
        share = k * t_eval / (every * sample * t_step)
        print(f"{every:>12} {sample:>18} {100 * share:>9.1f}%")


if __name__ == "__main__":
    main()
