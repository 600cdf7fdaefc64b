"""ElectroDB's ionic conductivity beside kinisi's on the same trajectory (value and error), with the exact answer.

The trajectory is a synthetic 1:1 electrolyte with a known σ (``tests/analysis/conductivity_cases.py``,
``bound_pairs``: 40 cations and 40 anions in a 30 Å box, half of them in rigid neutral pairs, 4000 frames of
0.1 ps, 300 K). ElectroDB: :func:`electrodb.analysis.conductivity.collective_transport` (window from the ions'
diffusive regime to a twentieth of the run, Student-t error over time origins). kinisi 2.1
(``ConductivityAnalyzer``, Bayesian regression of the mean-squared charge displacement with its covariance; value
and error are the mean and standard deviation of the posterior samples), given the same window start and once
the same window end, once half the run (its usual range).

kinisi 2.1 multiplies the summed displacement of the selected ions by one scalar charge (it was written for one
mobile species in a framework); for a 1:1 electrolyte the anions' coordinates are passed mirrored (r → −r, then
wrapped into the box), so that its summed displacement is exactly Σ zᵢ Δrᵢ with z = +1.

    python benchmarks/kinisi_conductivity.py [--seeds 1]

Needs ``kinisi`` (the dev extra). Prints a markdown table, one row per seed and method: σ, error, (σ − truth)/error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.analysis

from tests.analysis import conductivity_cases as cases

#: 1 mS/cm in S/m.
MS_CM = 0.1


def _kinisi(case: cases.IonCase, start_ps: float, end_ps: float, seed: int) -> tuple[float, float, float, float]:
    """kinisi's σ and its error (S/m) over lags start_ps … end_ps (lags every 0.5 ps: the first lag at or after
    ``start_ps`` is the start it used, returned third), and the seconds it took."""
    import scipp as sc
    from ase import Atoms
    from kinisi.analyze import ConductivityAnalyzer

    box = float(np.cbrt(case.volume_A3))
    x = case.positions.copy()
    x[:, case.anions] *= -1.0  # mirrored anions: the summed displacement is the charge displacement
    n = case.n_cations + case.n_anions
    symbols = ["Na"] * case.n_cations + ["Cl"] * case.n_anions
    frames = [Atoms(symbols, positions=np.mod(f, box), cell=[box] * 3, pbc=True) for f in x]
    dt_ps = float(case.times[1] - case.times[0])
    stride = max(1, round(0.5 / dt_ps))  # lags every 0.5 ps
    lags = np.arange(stride, round(end_ps / dt_ps) + 1, stride) * dt_ps
    t0 = time.perf_counter()
    analyzer = ConductivityAnalyzer.from_ase(
        frames,
        species_indices=sc.array(dims=["particle"], values=np.arange(n)),  # every ion; no framework to drift
        time_step=sc.scalar(dt_ps, unit="ps"),
        step_skip=sc.scalar(1),
        ionic_charge=1 * sc.Unit("e"),
        dt=sc.array(dims=["time interval"], values=lags, unit="ps"),
        progress=False,
    )
    start_ps = float(lags[np.searchsorted(lags, start_ps - 1e-9)])
    analyzer.conductivity(
        start_dt=sc.scalar(start_ps, unit="ps"),
        temperature=sc.scalar(cases.T_K, unit="K"),
        progress=False,
        random_state=np.random.RandomState(seed),
    )
    samples = np.asarray(analyzer.sigma.values) * MS_CM
    return float(samples.mean()), float(samples.std(ddof=1)), start_ps, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args()
    print("| seed | method | fit window (ps) | σ (S/m) | error (S/m) | (σ − truth)/error | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        case = cases.bound_pairs(seed=seed)
        truth = case.truth["sigma"]
        t0 = time.perf_counter()
        res = case.run()
        took = time.perf_counter() - t0
        start, end = res.window_ps
        rows = [("ElectroDB", start, end, res.sigma_S_m, res.sigma_err_S_m, took, res.status)]
        run_ps = float(case.times[-1] - case.times[0])
        for end_ps in (end, run_ps / 2):
            value, err, used_start, took = _kinisi(case, start, end_ps, seed)
            rows.append(("kinisi 2.1", used_start, end_ps, value, err, took, ""))
        print(f"| {seed} | truth | – | {truth:.3f} | – | – | – |")
        for name, a, b, value, err, took, status in rows:
            label = f"{name} ({status})" if status else name
            print(
                f"| {seed} | {label} | {a:g}–{b:g} | {value:.3f} | {err:.3f} | {(value - truth) / err:+.2f} | "
                f"{took:.1f} |"
            )


if __name__ == "__main__":
    main()
