"""What the collective-transport analysis (σ, σ_NE, Onsager coefficients, t₊) adds to a build: target ≤ 20 %.

Writes synthetic Brownian trajectories shaped like the demo's (``tests/synthetic.py``: NaCl and LiCl at 1, 2 and
3 mol/kg in 64 waters, frames 2 fs apart) into a temporary embedded database and runs the whole build
(``run_builders``, serial, ``rebuild=True``) with the conductivity entry and with it replaced by an empty one,
alternating, ``--repeats`` times each, in CPU seconds of this process (other processes on a shared machine inflate
wall times, not these); the best of each is compared. Inside the builds with it, the CPU time of the
conductivity entry itself is also summed, a second measure of the same share that needs no difference of two
noisy totals. A larger box (``--waters``) shows how the share scales: the collective analysis touches only the ions,
the rest of the build every atom.

    python benchmarks/conductivity_cost.py [--frames 2000] [--waters 64] [--repeats 3]

Prints both build times, the difference and the share it adds, with the CPU count and load average beside them
(other processes on the machine inflate both times alike, not the ratio).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.synthetic

SYSTEMS = [(salt, m) for salt in ("NaCl", "LiCl") for m in (1.0, 2.0, 3.0)]


def _timed_build(stores, with_conductivity: bool) -> tuple[float, float]:
    """CPU seconds of one full serial rebuild, with the real conductivity entry or an empty one, and of the
    conductivity entries inside it."""
    import electrodb.builders.properties as props
    from electrodb.builders import run_builders

    real = props.conductivity_entry
    spent = [0.0]

    def timed(*args, **kwargs):
        c0 = time.process_time()
        try:
            return real(*args, **kwargs)
        finally:
            spent[0] += time.process_time() - c0

    props.conductivity_entry = timed if with_conductivity else (lambda *args, **kwargs: {})
    try:
        c0 = time.process_time()
        run_builders(stores, rebuild=True)
        return time.process_time() - c0, spent[0]
    finally:
        props.conductivity_entry = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000, help="frames per trajectory (2000 x 2 fs = 4 ps)")
    ap.add_argument("--frame-ps", type=float, default=0.002)
    ap.add_argument("--waters", type=int, default=64, help="waters per box (the demo's 64)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="electrodb-sigma-cost-") as tmp:
        os.environ["ELECTRODB_DATA_DIR"] = tmp
        os.environ.pop("ELECTRODB_DB_URI", None)
        from electrodb.settings import ElectroDBSettings
        from electrodb.store.stores import get_stores
        from tests.synthetic import write_brownian_trajectory

        with get_stores(ElectroDBSettings()) as stores:
            atoms = [
                write_brownian_trajectory(
                    stores, salt, m, n_waters=args.waters, n_frames=args.frames, frame_ps=args.frame_ps, seed=i
                ).n_atoms
                for i, (salt, m) in enumerate(SYSTEMS)
            ]
            _timed_build(stores, True)  # warm-up: imports, caches
            with_s, without_s, inside = [], [], []
            for _ in range(args.repeats):
                without_s.append(round(_timed_build(stores, False)[0], 2))
                total, entry = _timed_build(stores, True)
                with_s.append(round(total, 2))
                inside.append(entry / (total - entry))
    base, full = min(without_s), min(with_s)
    print(
        f"{len(SYSTEMS)} trajectories x {args.frames} frames ({args.frame_ps * 1e3:g} fs apart), "
        f"{min(atoms)}-{max(atoms)} atoms; cpu_count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"build without the conductivity entry: {base:.2f} CPU-s (best of {args.repeats}: {without_s})")
    print(f"build with it:                        {full:.2f} CPU-s (best of {args.repeats}: {with_s})")
    print(f"difference: {full - base:.2f} CPU-s = {100 * (full - base) / base:.1f} % of the build without it")
    shares = ", ".join(f"{100 * x:.1f}" for x in inside)
    print(f"the conductivity entries' own CPU time: {shares} % of the rest of each build (target <= 20 %)")


if __name__ == "__main__":
    main()
