"""Benchmark: electrodb FFT MSD (batched rfft over atom chunks) vs MDAnalysis ``EinsteinMSD(fft=True)``.

MDAnalysis loops over atoms in Python and calls ``tidynamics.msd`` per atom; ``msd_fft`` batches the FFTs.
Both get the same in-memory synthetic (Brownian) trajectory; results must agree to 1e-6 relative.

Usage::

    .venv/bin/python benchmarks/analysis_msd.py [n_frames] [n_atoms]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from electrodb.analysis.transport import msd_fft


def _best_times(fns: list, repeats: int) -> tuple[list[float], list[object]]:
    """Minimum wall time of each function over ``repeats`` interleaved rounds (robust to background load)."""
    best, outs = [np.inf] * len(fns), [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best, outs


def run(n_frames: int = 1000, n_atoms: int = 1500, repeats: int = 5, seed: int = 0) -> dict:
    """Time ``msd_fft`` and MDAnalysis ``EinsteinMSD(fft=True).run()`` on one synthetic trajectory.

    Returns
    -------
    dict with ``n_frames``, ``n_atoms``, ``t_electrodb_s``, ``t_mdanalysis_s`` (whole ``run()``),
    ``t_mdanalysis_conclude_s`` (its FFT part only), ``speedup`` (= t_mdanalysis / t_electrodb),
    ``speedup_vs_conclude`` and ``max_rel_diff``.
    """
    import MDAnalysis as mda
    from MDAnalysis.analysis.msd import EinsteinMSD
    from MDAnalysis.coordinates.memory import MemoryReader

    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0.0, 0.15, size=(n_frames, n_atoms, 3)), axis=0).astype(np.float32)
    u = mda.Universe.empty(n_atoms, trajectory=False)
    u.load_new(x, format=MemoryReader, order="fac")

    def mda_run() -> EinsteinMSD:
        return EinsteinMSD(u, select="all", msd_type="xyz", fft=True).run()

    msd_fft(x[:10, :10])  # warm-up (FFT plan cache)
    (t_ours, t_mda), (ours, m) = _best_times([lambda: msd_fft(x), mda_run], repeats)
    (t_concl,), _ = _best_times([m._conclude], repeats)  # MDAnalysis' per-atom tidynamics loop only
    ref = m.results.timeseries
    rel = float(np.max(np.abs(ours[1:] - ref[1:]) / np.abs(ref[1:])))
    assert rel < 1e-6, f"msd_fft disagrees with MDAnalysis: max relative difference {rel:.2e}"
    return {
        "n_frames": n_frames,
        "n_atoms": n_atoms,
        "t_electrodb_s": t_ours,
        "t_mdanalysis_s": t_mda,
        "t_mdanalysis_conclude_s": t_concl,
        "speedup": t_mda / t_ours,
        "speedup_vs_conclude": t_concl / t_ours,
        "max_rel_diff": rel,
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    r = run(*args)
    print(
        f"MSD {r['n_frames']} frames x {r['n_atoms']} atoms: electrodb {r['t_electrodb_s'] * 1e3:.1f} ms, "
        f"MDAnalysis EinsteinMSD(fft=True) {r['t_mdanalysis_s'] * 1e3:.1f} ms "
        f"(FFT part {r['t_mdanalysis_conclude_s'] * 1e3:.1f} ms); "
        f"speedup {r['speedup']:.1f}x ({r['speedup_vs_conclude']:.1f}x vs FFT part); "
        f"max rel diff {r['max_rel_diff']:.1e}"
    )
