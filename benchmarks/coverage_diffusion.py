"""Do the error bars of D cover the truth? Synthetic runs with known answers, many seeds, one table.

For every case of ``tests/analysis/transport_cases.py`` and every seed, :func:`self_diffusion` gives D, D_err and a
status; against the exact answer (``truth``) the z-score is z = (D − truth)/D_err. Honest error bars give a z spread
(standard deviation) of 1.0, about 5 % of |z| beyond 2 and essentially none beyond 4. Cases without a usable answer
(caged ions: the long-time D is 0; a mobility that jumps halfway: no single D) must never be converged.

    .venv/bin/python benchmarks/coverage_diffusion.py [--seeds 200]

:func:`coverage_rows` returns the table as a list of dicts (importable: ``from coverage_diffusion import
coverage_rows`` with ``benchmarks/`` on the path).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.analysis.transport_cases

from electrodb.analysis.transport import self_diffusion
from tests.analysis import transport_cases as cases

#: (case, species) -> generator of one seed's run. Sizes: 200 ps at 0.1 ps per frame.
CASES: dict[tuple[str, str], Callable[[int], cases.Case]] = {
    ("brownian", "cation"): cases.brownian_box,
    ("brownian", "anion"): cases.brownian_box,
    ("brownian", "water"): cases.brownian_box,
    ("heterogeneous", "ion"): cases.heterogeneous_mobility,
    ("lattice_start", "ion"): cases.lattice_start,
    ("caged", "ion"): cases.caged_ions,
    ("drift_halfway", "ion"): cases.drift_halfway,
}


def _row(name: str, species: str, results: list[tuple[float | None, float | None, str, float | None]]) -> dict:
    """One table row from ``(D, D_err, status, truth)`` per seed."""
    z = np.array([(d - t) / e for d, e, _, t in results if d is not None and e and t is not None])
    conv = np.array([s == "converged" for _, _, s, _ in results])
    conv_z = np.array(
        [(d - t) / e for d, e, s, t in results if s == "converged" and d is not None and e and t is not None]
    )
    return {
        "case": f"{name}/{species}",
        "seeds": len(results),
        "z_spread": float(z.std(ddof=1)) if z.size > 1 else None,
        "z_mean": float(z.mean()) if z.size else None,
        "out_2sigma": float(np.mean(np.abs(z) > 2)) if z.size else None,
        "out_4sigma": float(np.mean(np.abs(z) > 4)) if z.size else None,
        "converged": float(conv.mean()),
        "converged_beyond_4sigma": int(np.sum(np.abs(conv_z) > 4)) if conv_z.size else 0,
    }


def coverage_rows(seeds: int, first_seed: int = 0) -> list[dict]:
    """The coverage table over ``seeds`` seeds per case.

    Returns
    -------
    list of dict
        One row per case and species: ``case``, ``seeds``, ``z_spread`` (standard deviation of z), ``z_mean``,
        ``out_2sigma`` and ``out_4sigma`` (fractions of runs with |z| > 2, > 4), ``converged`` (fraction of runs
        converged), ``converged_beyond_4sigma`` (converged runs with |z| > 4: must be 0). z is None where the
        case has no single true D (a jump halfway).
    """
    collected: dict[tuple[str, str], list] = {key: [] for key in CASES}
    for seed in range(first_seed, first_seed + seeds):
        made: dict[str, cases.Case] = {}
        for (name, species), make in CASES.items():
            case = made.setdefault(name, make(seed))
            res = self_diffusion(case.positions, case.times, case.selections[species], masses=case.masses)
            collected[(name, species)].append((res.D, res.D_err, res.status, case.truth[species]))
    return [_row(name, species, rows) for (name, species), rows in collected.items()]


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200, help="seeds per case (default 200)")
    ap.add_argument("--first-seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = coverage_rows(args.seeds, args.first_seed)
    print("| case | seeds | z spread | z mean | \\|z\\| > 2 | \\|z\\| > 4 | converged | converged, \\|z\\| > 4 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['seeds']} | {_fmt(r['z_spread'], '.3f')} | {_fmt(r['z_mean'], '+.2f')} | "
            f"{_fmt(r['out_2sigma'], '.3f')} | {_fmt(r['out_4sigma'], '.3f')} | {r['converged']:.2f} | "
            f"{r['converged_beyond_4sigma']} |"
        )
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
