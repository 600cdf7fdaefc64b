"""Trajectory analysis vs MDAnalysis on the same ~1,000-frame, ~1,500-atom trajectory, in one run.

Times the RDFs of all 8 builder pairs (``benchmarks/analysis_rdf.py``; freud too if installed) and the MSD of all
atoms (``benchmarks/analysis_msd.py``), checks that the results agree, and prints the speed ratios and the memory
of one RDF call. Target: >= 5x faster than MDAnalysis at equal results, memory per frame O(atoms).

    python benchmarks/analysis.py [--frames 1000] [--atoms 1500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import analysis_msd
import analysis_rdf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--atoms", type=int, default=1500)
    args = ap.parse_args()
    print(f"== RDF, 8 pairs, {args.frames} frames x {args.atoms} atoms ==")
    rdf = analysis_rdf.run(args.frames, args.atoms, n_workers=1)
    print(f"\n== MSD, all atoms, {args.frames} frames x {args.atoms} atoms ==")
    msd = analysis_msd.run(args.frames, args.atoms, repeats=3)
    print(
        f"electrodb {msd['t_electrodb_s']:.3f} s, MDAnalysis EinsteinMSD(fft=True) {msd['t_mdanalysis_s']:.3f} s, "
        f"max relative difference {msd['max_rel_diff']:.1e}"
    )
    print("\n== summary (ratio = MDAnalysis time / ElectroDB time, same trajectory, same run) ==")
    print(
        f"RDF: {rdf['speedup']:.1f}x (CPU-time ratio {rdf.get('speedup_cpu', float('nan')):.1f}x), "
        f"peak memory of one RDF call {rdf['peak_mem_mib']:.1f} MiB"
    )
    print(f"MSD: {msd['speedup']:.1f}x")
    ok = rdf["speedup"] >= 5 and msd["speedup"] >= 5
    print("target >= 5x:", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
