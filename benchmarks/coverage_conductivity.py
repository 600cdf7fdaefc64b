"""Do the error bars of σ, σ_NE, σ/σ_NE and t₊ cover the truth? Synthetic ions with known answers, many seeds.

For every case of ``tests/analysis/conductivity_cases.py`` and every seed,
:func:`~electrodb.analysis.conductivity.collective_transport` gives each quantity, its error and a verdict; against
the exact answer z = (value − truth)/error. Honest error bars give a z spread of 1.0, about 5 % of |z| beyond 2
and essentially none beyond 4. Cases without a usable σ (caged ions, a mobility that changes halfway, two ion
pairs in a box) must never have a converged σ.

σ is a mean of squared displacements over some 30 independent time origins: a run that came out low also has a
small spread, so its symmetric error is small exactly when it is low, and about 0.3 % of runs fall beyond 4σ below
the truth (a mean of 28 χ²₃ samples does the same). The stored 68 % interval ``sigma_ci68_S_m``,
[σ/(1+κ), σ/(1−κ)] with κ = err/σ, is the one for the tails: for σ, "beyond 4σ" counts runs whose truth lies more
than 4 half-widths of that interval away (the lower half-width when the truth is below, the upper one above), and
"beyond 4σ (symmetric)" the same with the plain error.

    .venv/bin/python benchmarks/coverage_conductivity.py [--seeds 200]

:func:`coverage_rows` returns the table as a list of dicts (``benchmarks/error_bars.py`` prints it with the others).
Sizes: 32–40 ion pairs, 4000 frames of 0.1 ps (400 ps), D₊ = 0.1 and D₋ = 0.2 Å²/ps, a 30 Å box, 300 K.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.analysis

from tests.analysis import conductivity_cases as cases

#: Quantity -> (result attribute of the value, of its error, verdict name).
QUANTITIES = {
    "sigma": ("sigma_S_m", "sigma_err_S_m", "sigma"),
    "sigma_ne": ("sigma_ne_S_m", "sigma_ne_err_S_m", "nernst_einstein"),
    "ionicity": ("ionicity", "ionicity_err", "ionicity"),
    "t_plus": ("t_plus", "t_plus_err", "transference"),
    "t_plus_ne": ("t_plus_ne", "t_plus_ne_err", "nernst_einstein"),
}
#: Positive cases (error bars judged).
POSITIVE: dict[str, Callable[[int], cases.IonCase]] = {
    "brownian": cases.brownian_ions,
    "bound pairs f=0.5": cases.bound_pairs,
    "2:1 salt": lambda seed: cases.brownian_ions(seed, n_cations=20, z_cation=2),
}
#: Cases whose σ must never converge.
NEGATIVE: dict[str, Callable[[int], cases.IonCase]] = {
    "caged": cases.caged_ions,
    "drift halfway": cases.drift_halfway,
    "two ion pairs": lambda seed: cases.brownian_ions(seed, n_cations=2, n_frames=8000),
}


def _interval_z(value: float, truth: float, ci: tuple[float, float | None]) -> float:
    """(value − truth) in half-widths of the 68 % interval ``ci`` on the truth's side (0 for an open upper end)."""
    lo, hi = ci
    if truth <= value:
        return (value - truth) / (value - lo)
    return 0.0 if hi is None else (value - truth) / (hi - value)


def _row(case: str, quantity: str, runs: list[tuple]) -> dict:
    """One table row from ``(value, error, converged, truth[, 68 % interval])`` per seed."""
    z = np.array([(v - t) / e for v, e, _, t, *_ in runs if v is not None and e and t is not None])
    conv_z = np.array([(v - t) / e for v, e, c, t, *_ in runs if c and v is not None and e and t is not None])
    sym_beyond = int(np.sum(np.abs(conv_z) > 4)) if conv_z.size else 0
    with_ci = [r for r in runs if len(r) > 4 and r[4] is not None and r[2] and r[3] is not None]
    if with_ci:
        conv_z = np.array([_interval_z(v, t, ci) for v, _, _, t, ci in with_ci])
    return {
        "case": f"ions/{case}: {quantity}",
        "seeds": len(runs),
        "converged": float(np.mean([r[2] for r in runs])),
        "z_spread": float(z.std(ddof=1)) if z.size > 1 else None,
        "z_mean": float(z.mean()) if z.size else None,
        "out_2sigma": float(np.mean(np.abs(z) > 2)) if z.size else None,
        "out_4sigma": float(np.mean(np.abs(z) > 4)) if z.size else None,
        "converged_beyond_4sigma": int(np.sum(np.abs(conv_z) > 4)) if conv_z.size else 0,
        "converged_beyond_4sigma_symmetric": sym_beyond,
        "must_refuse": False,
    }


def coverage_rows(seeds: int, first_seed: int = 0) -> list[dict]:
    """The coverage table: one row per positive case and quantity, one per negative case (σ only)."""
    rows = []
    for name, make in POSITIVE.items():
        runs: dict[str, list] = {q: [] for q in QUANTITIES}
        for seed in range(first_seed, first_seed + seeds):
            case = make(seed)
            res = case.run()
            for q, (value, err, verdict) in QUANTITIES.items():
                run = (getattr(res, value), getattr(res, err), res.verdicts[verdict].converged, case.truth.get(q))
                runs[q].append((*run, res.sigma_ci68_S_m) if q == "sigma" else run)
        rows += [_row(name, q, r) for q, r in runs.items()]
    for name, make in NEGATIVE.items():
        runs_s = []
        for seed in range(first_seed, first_seed + max(seeds // 4, 10)):
            res = make(seed).run()
            runs_s.append((res.sigma_S_m, res.sigma_err_S_m, res.verdicts["sigma"].converged, None))
        rows.append({**_row(name, "sigma", runs_s), "must_refuse": True})
    return rows


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = coverage_rows(args.seeds)
    print(
        "| case | seeds | converged | z mean | z spread | abs(z)>2 | abs(z)>4 | converged beyond 4σ "
        "| beyond 4σ (symmetric) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['seeds']} | {r['converged']:.2f} | {_fmt(r['z_mean'], '.2f')} | "
            f"{_fmt(r['z_spread'], '.2f')} | {_fmt(r['out_2sigma'], '.3f')} | {_fmt(r['out_4sigma'], '.3f')} | "
            f"{r['converged_beyond_4sigma']} | {r['converged_beyond_4sigma_symmetric']} |"
        )
    print(f"{time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
