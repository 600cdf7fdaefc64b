"""Coverage of the structure, pairing and a_cc error bars on synthetic runs whose answers are known.

For every case of ``tests/analysis/structure_cases.py`` (``COVERAGE_CASES``, a frozen structure and the
``HYDRATED_CASES``) and every checked quantity it runs ``seeds`` independent runs through the same analysis the
properties builder uses (:func:`electrodb.analysis.structure_sampling.analyse_structure`, the pairing series, the
a_cc verdict, the first-peak position) and prints
one row: case, quantity, number of runs, fraction converged, and over the converged values the z-scores
(value − truth)/error: their spread (root mean square; 1 for honest error bars), mean, and the fractions beyond 2σ
(4.6 % for a normal distribution) and 4σ (none expected). Truths of an ideal gas in a closed box: a_cc = 1;
CN(r) = (N_b − δ_ab)·4πr³/3V; pairing fractions binomial(N_−, 4πr³/3V); no first shell at all. Ions that keep
their vibrating shells (``hydrated_ions``) give the first-peak position whose truth is the maximum of
N(r; d0, σ)/r². The negative cases (a lattice start, 30 correlated frames, a slice, a transient, a frozen
structure) should show 0 converged.

Usage::

    python benchmarks/coverage_structure.py [--seeds 50] [--cases "ideal gas, 2 Å/frame, 400 frames" ...]

``coverage_rows(seeds) -> list[dict]`` is importable by another script (one dict per case and quantity with the
keys ``case``, ``quantity``, ``n``, ``converged``, ``z_spread``, ``z_mean``, ``out2``, ``out4``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.analysis.structure_cases

from tests.analysis.structure_cases import COVERAGE_CASES, HYDRATED_CASES, coverage_case, z_table

STATIC = "static structure, 40 frames"
CASES: tuple[str, ...] = (*COVERAGE_CASES, STATIC, *HYDRATED_CASES)
#: Positive cases (error bars judged): every seed.
POSITIVE = ("ideal gas", "hydrated ions")
#: Negative cases (no converged value expected) run with fewer seeds: they cost more (hydrogens, 512 waters).
NEGATIVE_SEEDS_FRACTION = 0.25


def coverage_rows(seeds: int, cases: Sequence[str] = CASES) -> list[dict]:
    """One row per (case, quantity): n runs, fraction converged, z spread, z mean, fraction beyond 2σ and 4σ."""
    out = []
    for name in cases:
        n = seeds if name.startswith(POSITIVE) else max(2, int(seeds * NEGATIVE_SEEDS_FRACTION))
        for quantity, d in z_table(coverage_case(name, range(n))).items():
            out.append(
                {
                    "case": name,
                    "quantity": quantity,
                    "n": d["n"],
                    "converged": d["converged"],
                    "z_spread": d["z_spread"],
                    "z_mean": d["z_mean"],
                    "out2": d["out2"],
                    "out4": d["out4"],
                }
            )
    return out


def _fmt(x: float) -> str:
    return "   —  " if x != x else f"{x:6.3f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=50, help="runs per ideal-gas case (negatives: a quarter)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), help="case names (default: all)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = coverage_rows(args.seeds, args.cases)
    print(f"| case | quantity | n | converged | z spread | z mean | >2σ | >4σ |\n|{'---|' * 8}")
    for r in rows:
        print(
            f"| {r['case']} | {r['quantity']} | {r['n']} | {r['converged']:.2f} | {_fmt(r['z_spread'])} | "
            f"{_fmt(r['z_mean'])} | {_fmt(r['out2'])} | {_fmt(r['out4'])} |"
        )
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
