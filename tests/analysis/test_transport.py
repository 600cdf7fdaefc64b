"""Tests for electrodb.analysis.transport against analytic Brownian motion, reference MSD codes and synthetic runs
with known answers (``tests/analysis/transport_cases.py``): error bars that cover the truth, and negative cases
(caged, drifting, heterogeneous, lattice start, static) that are never converged."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from electrodb.analysis.convergence import ConvergenceTargets
from electrodb.analysis.finite_size import BOLTZMANN_J_PER_K, water_viscosity, yeh_hummer_correction
from electrodb.analysis.transport import (
    com_displacement,
    diffusion_verdict,
    diffusive_window,
    msd_fft,
    msd_slopes,
    remove_com_drift,
    self_diffusion,
    unwrap_positions,
)
from electrodb.analysis.viscosity import solution_viscosity
from tests.analysis.transport_cases import (
    brownian_box,
    caged_ions,
    com_removed_D,
    drift_halfway,
    heterogeneous_mobility,
    lattice_start,
    static_ions,
)

D_TRUE_A2_PS = 0.1  # Å²/ps  == 1.0e-9 m²/s
D_TRUE = 1.0  # 1e-9 m²/s
DT = 0.1  # ps


def brownian(seed: int, n_frames: int = 2000, n_atoms: int = 200, d: float = D_TRUE_A2_PS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, np.sqrt(2 * d * DT), size=(n_frames, n_atoms, 3))
    steps[0] = rng.uniform(0, 15.0, size=(n_atoms, 3))
    return np.cumsum(steps, axis=0)


def wrap(x: np.ndarray, cells: np.ndarray) -> np.ndarray:
    H = np.broadcast_to(cells, (x.shape[0], 3, 3))
    s = np.einsum("fnj,fjk->fnk", x, np.linalg.inv(H))
    s -= np.floor(s)
    return np.einsum("fnj,fjk->fnk", s, H)


def msd_direct(x: np.ndarray) -> np.ndarray:
    """O(F²) windowed MSD averaged over atoms (reference)."""
    n = x.shape[0]
    out = np.zeros(n)
    for m in range(1, n):
        d = x[m:] - x[:-m]
        out[m] = np.mean(np.sum(d * d, axis=-1))
    return out


# ------------------------------------------------------------------------------------------------ unwrap
def test_unwrap_cubic_exact() -> None:
    x = brownian(1, n_frames=500, n_atoms=50)
    L = 12.0
    w = wrap(x, np.eye(3) * L)
    assert w.min() >= 0 and w.max() < L
    u = unwrap_positions(w, np.eye(3) * L)
    np.testing.assert_allclose(u - u[0], x - x[0], atol=1e-10)
    np.testing.assert_array_equal(u[0], w[0])


def test_unwrap_triclinic_exact() -> None:
    H = np.array([[12.0, 0.0, 0.0], [3.0, 11.0, 0.0], [2.0, -2.0, 10.0]])
    rng = np.random.default_rng(2)
    x = np.cumsum(rng.normal(0, 0.3, size=(800, 40, 3)), axis=0)
    w = wrap(x, H)
    u = unwrap_positions(w, np.broadcast_to(H, (800, 3, 3)).copy())
    np.testing.assert_allclose(u - u[0], x - x[0], atol=1e-9)


@pytest.mark.parametrize("triclinic", [False, True])
def test_unwrap_npt_fluctuating_box(triclinic: bool) -> None:
    """Box changes every frame: the TOR displacement scheme recovers the true displacements exactly,
    while the lattice heuristic u_t = (s_t + n_t) H_t (image counting in the current box) does not."""
    rng = np.random.default_rng(3)
    n_frames, n_atoms = 1000, 30
    H0 = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]])
    if triclinic:
        H0 = np.array([[10.0, 0, 0], [2.0, 9.5, 0], [-1.5, 1.0, 10.5]])
    scale = 1 + 0.02 * np.sin(2 * np.pi * np.arange(n_frames) / 97) + 0.003 * rng.normal(size=n_frames)
    cells = scale[:, None, None] * H0
    steps = rng.normal(0, 0.5, size=(n_frames, n_atoms, 3))
    w = np.empty((n_frames, n_atoms, 3))
    w[0] = wrap(rng.uniform(0, 1, (1, n_atoms, 3)) @ cells[0], cells[:1])[0]
    for t in range(1, n_frames):
        w[t] = wrap((w[t - 1] + steps[t])[None], cells[t : t + 1])[0]
    truth = np.cumsum(steps[1:], axis=0)
    u = unwrap_positions(w, cells)
    np.testing.assert_allclose(u[1:] - u[0], truth, atol=1e-9)
    # the naive lattice scheme accumulates n_t * (H_t - H_0)-type errors: the test has teeth
    s = np.einsum("fnj,fjk->fnk", w, np.linalg.inv(cells))
    n = np.concatenate([np.zeros((1, n_atoms, 3)), np.cumsum(-np.rint(np.diff(s, axis=0)), axis=0)])
    naive = np.einsum("fnj,fjk->fnk", s + n, cells)
    assert np.abs((naive[1:] - naive[0]) - truth).max() > 0.1


def test_unwrap_warns_on_large_steps() -> None:
    rng = np.random.default_rng(4)
    w = rng.uniform(0, 10, size=(20, 10, 3))
    with pytest.warns(RuntimeWarning, match="too far apart"):
        unwrap_positions(w, np.eye(3) * 10)


# --------------------------------------------------------------------------------------------------- MSD
def test_msd_fft_equals_direct() -> None:
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(size=(300, 17, 3)), axis=0) + 500.0  # large offsets: cancellation check
    ref = msd_direct(x)
    got = msd_fft(x, chunk_size=5)  # several chunks
    np.testing.assert_allclose(got[1:], ref[1:], rtol=1e-10)
    assert got[0] == 0.0
    per = msd_fft(x, per_atom=True)
    assert per.shape == (300, 17)
    np.testing.assert_allclose(per.mean(axis=1), got, rtol=1e-12, atol=1e-12)
    m = 7
    np.testing.assert_allclose(per[m, 3], np.mean(np.sum((x[m:, 3] - x[:-m, 3]) ** 2, -1)), rtol=1e-10)


def test_msd_fft_equals_mdanalysis() -> None:
    import MDAnalysis as mda
    import tidynamics  # noqa: F401  (MDAnalysis EinsteinMSD(fft=True) needs it)
    from MDAnalysis.analysis.msd import EinsteinMSD
    from MDAnalysis.coordinates.memory import MemoryReader

    x = brownian(6, n_frames=400, n_atoms=60).astype(np.float32)
    u = mda.Universe.empty(x.shape[1], trajectory=False)
    u.load_new(x, format=MemoryReader, order="fac")
    ref = EinsteinMSD(u, select="all", msd_type="xyz", fft=True).run().results.timeseries
    got = msd_fft(x.astype(np.float64))
    np.testing.assert_allclose(got[1:], ref[1:], rtol=1e-6)


def test_com_drift_removal() -> None:
    rng = np.random.default_rng(7)
    x = brownian(7, n_frames=100, n_atoms=20)
    drift = np.cumsum(rng.normal(size=(100, 3)), axis=0)
    drift -= drift[0]
    masses = rng.uniform(1, 40, size=20)
    y = x + drift[:, None, :]
    com_before = com_displacement(x, masses)
    out = remove_com_drift(y, masses)
    np.testing.assert_allclose(com_displacement(out, masses), 0.0, atol=1e-10)
    np.testing.assert_allclose(out, x - com_before[:, None, :], atol=1e-10)


# ------------------------------------------------------------------------------------------------ window
def test_diffusive_window_langevin_excludes_ballistic() -> None:
    """Analytic Ornstein–Uhlenbeck MSD 6D[t - tau_v(1 - exp(-t/tau_v))]: ballistic (slope 2) at t << tau_v."""
    tau_v, d = 1.0, 0.2
    t = np.arange(20000) * 0.01
    msd = 6 * d * (t - tau_v * (1 - np.exp(-t / tau_v)))
    win = diffusive_window(t, msd)
    assert win.found
    assert win.t_start > 3 * tau_v
    assert win.t_end <= t[-1] / 3 + 1e-9
    assert abs(win.slope - 1) < 0.15
    sl = slice(win.i_start, win.i_end + 1)
    assert np.polyfit(t[sl], msd[sl], 1)[0] / 6 == pytest.approx(d, rel=0.01)


def test_diffusive_window_subdiffusive_not_found() -> None:
    t = np.arange(1000) * 0.1
    win = diffusive_window(t, t**0.5)
    assert not win.found
    assert win.i_end > win.i_start


# ---------------------------------------------------------------------------------------- per-atom slopes
def test_msd_slopes_average_to_the_fit_of_the_mean_msd() -> None:
    x = brownian(8, n_frames=400, n_atoms=30)
    slopes = msd_slopes(x, [(2, 100), (10, 40)], DT, max_bytes=400 * 8 * 7)  # several chunks
    assert slopes.shape == (2, 30)
    t = np.arange(2, 101) * DT
    assert slopes[0].mean() == pytest.approx(np.polyfit(t, msd_fft(x)[2:101], 1)[0], rel=1e-10)
    per = msd_fft(x[:, 5:6], per_atom=True)[:, 0]
    assert slopes[0, 5] == pytest.approx(np.polyfit(t, per[2:101], 1)[0], rel=1e-10)
    with pytest.raises(ValueError, match="lag window"):
        msd_slopes(x, [(5, 400)], DT)


def test_com_removed_truth_is_exact() -> None:
    """(1 − μ_i)² D_i + Σ_{j≠i} μ_j² D_j: D(1 − 1/N) for N equal molecules; checked on 4 walkers × 300 seeds."""
    assert com_removed_D(np.full(4, 0.2), np.ones(4)) == pytest.approx(np.full(4, 0.15))
    slopes = []
    for seed in range(300):
        x = brownian(seed, n_frames=400, n_atoms=4, d=0.2)
        slopes.append(msd_slopes(remove_com_drift(x, np.ones(4)), [(1, 40)], DT).mean() / 6)
    assert np.mean(slopes) == pytest.approx(0.15, rel=0.02)


# --------------------------------------------------------------------------------------------- diffusion
def test_self_diffusion_wrapped_brownian_recovers_D() -> None:
    L = 15.0
    x = brownian(11)
    u = unwrap_positions(wrap(x, np.eye(3) * L), np.eye(3) * L)
    times = np.arange(x.shape[0]) * DT
    res = self_diffusion(u, times, np.arange(x.shape[1]))
    assert res.flag == "ok" and res.status == "converged", res.verdict.reason
    assert res.D == pytest.approx(D_TRUE, rel=0.03)
    assert abs(res.D - D_TRUE) < 3 * res.D_err
    assert res.loglog_slope == pytest.approx(1.0, abs=0.05)
    assert res.window_ps[1] == pytest.approx(res.run_length_ps / 4, abs=DT)  # the window reaches a quarter
    assert res.n_eff == pytest.approx(200, rel=0.01) and len(res.D_atoms) == 200
    assert res.D == pytest.approx(res.D_atoms.mean()) and res.err_shared < 0.2 * res.err_atoms


def test_brownian_error_bars_cover_the_truth() -> None:
    """40 seeds of ions and water (groups of 32 atoms): z = (D − truth)/D_err has spread 1.0 ± 0.1.

    The truth is the walkers' D corrected exactly for the centre-of-mass removal (``com_removed_D``). Measured
    before this estimator (5 time blocks × Student-t): 1.13 for ions, 1.24 for water (the z of a 4-degree-of-
    freedom error has spread √2/1.14 = 1.24 however well its t factor is chosen). Groups of 32 give 480 z-scores,
    so that the spread itself is known to ±0.05.
    """
    z: dict[str, list[float]] = {"ions": [], "water": []}
    converged_z = []
    for seed in range(40):
        case = brownian_box(seed, n_cations=64, n_anions=64, n_waters=256, n_frames=1000)
        for species in ("cation", "anion", "water"):
            sel = case.selections[species]
            for group in np.split(sel, len(sel) // 32):
                res = self_diffusion(case.positions, case.times, group, masses=case.masses)
                zi = (res.D - case.truth[species]) / res.D_err
                z["water" if species == "water" else "ions"].append(zi)
                if res.status == "converged":
                    converged_z.append(zi)
    for kind, values in z.items():
        assert 0.9 <= np.std(values, ddof=1) <= 1.1, (kind, np.std(values, ddof=1))
    assert len(converged_z) >= 0.95 * 480 and np.abs(converged_z).max() < 4


def test_self_diffusion_selection_and_com_removal() -> None:
    x = brownian(12, n_frames=1000, n_atoms=100)
    drift = 0.05 * np.arange(1000)[:, None, None] * np.array([1.0, 0.0, 0.0])  # 0.05 Å/ps flow
    times = np.arange(1000) * DT
    masses = np.ones(100)
    with_drift = self_diffusion(x + drift, times, np.arange(50))
    fixed = self_diffusion(x + drift, times, np.arange(50), masses=masses)
    assert with_drift.D > 1.1 * D_TRUE and with_drift.status == "unconverged"  # ballistic flow, not diffusion
    assert fixed.D == pytest.approx(D_TRUE * (1 - 1 / 100), rel=0.1)
    assert fixed.n_atoms == 50


def test_self_diffusion_flags() -> None:
    x = brownian(13, n_frames=30, n_atoms=10)
    res = self_diffusion(x, np.arange(30) * DT)
    assert res.flag == "too_short" and res.D is None
    rng = np.random.default_rng(14)
    # caged particles (AR(1) positions with fast relaxation): the MSD plateaus, no linear regime
    y = np.zeros((1000, 50, 3))
    for t in range(1, 1000):
        y[t] = 0.3 * y[t - 1] + rng.normal(size=(50, 3))
    res = self_diffusion(y, np.arange(1000) * DT)
    assert res.flag == "no_diffusive_regime" and res.status == "unconverged"
    assert "no lag range where the MSD grows linearly" in res.verdict.reason
    with pytest.raises(ValueError, match="uniformly"):
        self_diffusion(x, np.r_[0.0, np.cumsum(np.linspace(0.1, 0.2, 29))])


# ------------------------------------------------------------------------------------- negative cases
@pytest.mark.parametrize("seed", range(5))
def test_caged_ions_are_never_converged(seed: int) -> None:
    """Harmonic cages (τ = 20 ps, plateau 64 Å², long-time D = 0) over 200 ps: a fit ending at a fifteenth of the
    run gave D = 4.6 ± 0.17 'converged'; the window now reaches a quarter of the run, where MSD/6t has fallen."""
    case = caged_ions(seed)
    res = self_diffusion(case.positions, case.times, case.selections["ion"])
    assert res.status == "unconverged"
    assert res.window_ps[1] == pytest.approx(50.0, abs=0.2)
    assert "MSD/6t is not flat" in res.verdict.reason and "caged or sub-diffusive" in res.verdict.reason
    assert res.D_early > 2 * res.D_late and res.flatness_z > 6


@pytest.mark.parametrize("seed", range(5))
def test_a_mobility_jump_halfway_is_a_drift(seed: int) -> None:
    """D × 1.3 halfway through the run (was 1.48 ± 0.13 'converged'): no single D, the reason says it drifts."""
    case = drift_halfway(seed)
    res = self_diffusion(case.positions, case.times, case.selections["ion"])
    assert res.status == "unconverged"
    assert "the mobility drifts" in res.verdict.reason
    # without the equilibration cut the halves test itself sees it
    whole = self_diffusion(case.positions, case.times, case.selections["ion"], detect_equilibration=False)
    assert whole.status == "unconverged" and "drifts: the two halves of the run differ" in whole.verdict.reason


def test_heterogeneous_mobility_error_covers_the_truth() -> None:
    """Each ion fast or slow for ~50 ps (log-normal mobility, σ = 0.6): the error is the scatter between ions, so the
    truth stays inside the bar; 5 time blocks that agreed gave errors 2× too small (z spread 1.9 on these runs)."""
    z = []
    for seed in range(20):
        case = heterogeneous_mobility(seed)
        res = self_diffusion(case.positions, case.times, case.selections["ion"])
        z.append((res.D - case.truth["ion"]) / res.D_err)
        assert res.n_eff == pytest.approx(64, rel=0.05)
        assert res.status != "converged" or abs(z[-1]) < 3, (seed, z[-1])
    assert np.std(z, ddof=1) < 1.4


def test_few_persistent_ions_are_not_a_result() -> None:
    """8 ions that keep their mobility all run long: every time block averages the same 8 ions and agrees, but
    the error rests on 8 independent samples."""
    case = heterogeneous_mobility(3, n_ions=8, tau_fraction=20.0)
    res = self_diffusion(case.positions, case.times, case.selections["ion"])
    assert res.status == "unconverged"
    assert "rests on 8.0 independent samples (8 atoms" in res.verdict.reason
    assert abs(res.D - case.truth["ion"]) < 3 * res.D_err


@pytest.mark.parametrize("seed", range(4))
def test_a_lattice_start_transient_is_cut(seed: int) -> None:
    """Mobility 5× too high at the start, relaxing over 10 ps: cut (t_equil_ps), not averaged in."""
    case = lattice_start(seed)
    res = self_diffusion(case.positions, case.times, case.selections["ion"])
    truth = case.truth["ion"]
    assert 10.0 <= res.t_equil_ps <= 50.0 and res.t_equil_ps + res.run_length_ps == pytest.approx(199.9)
    assert abs(res.D - truth) < 3 * res.D_err
    assert "cut as equilibration" in res.message
    # averaged in, the transient is a mobility change all ions share: few independent samples, never converged
    kept = self_diffusion(case.positions, case.times, case.selections["ion"], detect_equilibration=False)
    assert kept.t_equil_ps == 0.0 and kept.n_eff < 20 and kept.status == "unconverged"


def test_zero_error_is_never_converged() -> None:
    case = static_ions()
    res = self_diffusion(case.positions, case.times, case.selections["ion"])
    assert abs(res.D) < 1e-12 and res.D_err < 1e-12 and res.status == "unconverged"  # FFT rounding, ~1e-46
    assert "never changed over the run (error exactly 0)" in res.verdict.reason
    # a positive D with an error of exactly 0 (atoms that all moved identically) is not a result either
    x = brownian(31, n_atoms=64)
    ok = self_diffusion(x, np.arange(2000) * DT)
    assert ok.status == "converged"
    zero = diffusion_verdict(replace(ok, D_err=0.0))
    assert zero.status == "unconverged" and "exactly 0" in zero.reason
    # 32 copies of one walker: no scatter between atoms, one sample
    copies = np.repeat(brownian(32, n_atoms=1), 32, axis=1)
    res = self_diffusion(copies, np.arange(2000) * DT)
    assert res.err_atoms == 0.0 and res.status == "unconverged"
    assert "the 32 atoms all gave the same D (scatter between atoms exactly 0)" in res.verdict.reason


def test_too_few_atoms_for_an_error_bar() -> None:
    x = brownian(33, n_atoms=10, d=0.2)
    res = self_diffusion(x, np.arange(2000) * DT)
    assert res.n_eff == pytest.approx(10, rel=0.05) and res.status == "unconverged"
    assert "rests on 10.0 independent samples (10 atoms" in res.verdict.reason and "< 20" in res.verdict.reason


# ------------------------------------------------------------------------------------------- verdicts
def test_verdict_converged_for_long_brownian_run() -> None:
    x = brownian(21, d=0.2)  # 200 ps, 200 atoms, D = 2e-9 m²/s
    res = self_diffusion(x, np.arange(x.shape[0]) * DT)
    assert res.status == "converged", res.verdict.reason
    assert res.verdict.reason == "" and "D_err/D <= 0.1" in res.verdict.criterion
    assert "run/4" in res.verdict.criterion and "n_eff >= 20" in res.verdict.criterion
    assert res.D == pytest.approx(2.0, rel=0.05)
    assert res.rms_displacement_A == pytest.approx(np.sqrt(6 * 0.2 * res.window_ps[1]), rel=0.05)
    # a stricter target fails with the measured value and the target in the reason
    strict = self_diffusion(x, np.arange(x.shape[0]) * DT, targets=ConvergenceTargets(D_min_rms_A=10.0))
    assert strict.status == "unconverged"
    assert strict.verdict.reason.startswith(f"RMS displacement at window end {strict.rms_displacement_A:.2f} A < 10 A")


def test_verdict_ballistic_short_run_is_unconverged() -> None:
    """Free flight for 0.4 ps: MSD ~ t², nothing diffusive — every relevant criterion is named."""
    rng = np.random.default_rng(22)
    t = np.arange(400) * 0.001
    x = t[:, None, None] * rng.normal(0, 1, (50, 3))[None] + rng.uniform(0, 10, (1, 50, 3))
    res = self_diffusion(x, t)
    assert res.D is not None and res.status == "unconverged"
    reason = res.verdict.reason
    assert "log-log slope 2.00, not within 0.15 of 1" in reason
    assert "fit window" in reason and "< 1 ps" in reason
    assert "RMS displacement at window end" in reason and "< 3 A" in reason


def test_verdict_single_ion_is_unconverged() -> None:
    """One ion (the D(Li+) = 15.7 ± 7.2 case): no scatter between atoms, so no error bar, and never a result."""
    x = brownian(23, n_frames=400, n_atoms=1, d=1.5)
    res = self_diffusion(x, np.arange(400) * 0.001)
    assert res.D is not None and res.D_err is None and res.status == "unconverged"
    assert "no error estimate: 1 atom(s)" in res.verdict.reason and "fit window 0.099 ps < 1 ps" in res.verdict.reason
    long = self_diffusion(brownian(24, n_frames=2000, n_atoms=1, d=0.2), np.arange(2000) * DT)
    assert long.status == "unconverged" and "rests on 1.0 independent samples" in long.verdict.reason


def test_verdict_insufficient_without_D() -> None:
    x = brownian(25, n_frames=30, n_atoms=10)
    res = self_diffusion(x, np.arange(30) * DT)
    assert res.D is None and res.status == "insufficient" and "30 frames < 40" in res.verdict.reason
    assert diffusion_verdict(res).status == "insufficient"


@pytest.mark.slow
def test_coverage_study() -> None:
    """The full table of benchmarks/coverage_diffusion.py over 200 seeds (a few minutes)."""
    spec = importlib.util.spec_from_file_location(
        "coverage_diffusion", Path(__file__).resolve().parents[2] / "benchmarks" / "coverage_diffusion.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = {r["case"]: r for r in module.coverage_rows(200)}
    for case in ("brownian/cation", "brownian/anion", "brownian/water"):
        assert 0.9 <= rows[case]["z_spread"] <= 1.1, rows[case]
        assert rows[case]["out_4sigma"] <= 0.005 and rows[case]["converged"] >= 0.95, rows[case]
    # the transient is cut: no bias left (mean z), errors that cover (32 ions: spread 1.03 on seeds 200-599)
    lattice = rows["lattice_start/ion"]
    assert abs(lattice["z_mean"]) < 0.15 and lattice["z_spread"] < 1.2 and lattice["converged"] >= 0.8, lattice
    assert rows["heterogeneous/ion"]["z_spread"] < 1.25
    assert rows["caged/ion"]["converged"] == 0.0 and rows["drift_halfway/ion"]["converged"] == 0.0
    assert all(r["converged_beyond_4sigma"] == 0 for r in rows.values())


# -------------------------------------------------------------------------------------------- Yeh-Hummer
def test_yeh_hummer_known_case() -> None:
    # by hand: k_B T xi / (6 pi eta L) with T = 298 K, L = 30 Å, eta = 0.89 mPa s
    expected = 1.380649e-23 * 298.0 * 2.837297 / (6 * np.pi * 0.89e-3 * 30e-10) / 1e-9
    assert expected == pytest.approx(0.2319, abs=2e-4)  # ~0.23e-9 m²/s, TIP3P-sized box
    res = yeh_hummer_correction(2.0, 298.0, 30.0, 0.89e-3)
    assert res.correction == pytest.approx(expected, rel=1e-12)
    assert res.D_inf == pytest.approx(2.0 + expected, rel=1e-12)
    assert res.viscosity_source == "user" and res.D_inf_err is None and res.correction_err == 0.0
    assert BOLTZMANN_J_PER_K == 1.380649e-23


def test_yeh_hummer_scaling_and_error_propagation() -> None:
    assert water_viscosity(298.15) == pytest.approx(0.8900e-3, rel=2e-3)  # IAPWS 2008: 0.8900 mPa s
    assert water_viscosity(353.15) == pytest.approx(0.3544e-3, rel=0.03)
    eta_w = water_viscosity(298.15)
    res = yeh_hummer_correction(1.0, 298.15, 25.0, eta_w, viscosity_source="experimental_water_vogel")
    assert res.viscosity_source == "experimental_water_vogel" and res.viscosity_Pa_s == eta_w
    # scales as T / (eta L): twice the box or twice the viscosity halves the correction
    assert yeh_hummer_correction(1.0, 298.15, 50.0, eta_w).correction == pytest.approx(res.correction / 2)
    assert yeh_hummer_correction(1.0, 298.15, 25.0, 2 * eta_w).correction == pytest.approx(res.correction / 2)
    # sigma_D_inf² = sigma_D_pbc² + (dD sigma_eta / eta)²
    err = yeh_hummer_correction(1.0, 298.15, 25.0, 1e-3, D_pbc_err=0.03, viscosity_err_Pa_s=0.1e-3)
    assert err.correction_err == pytest.approx(0.1 * err.correction, rel=1e-12)
    assert err.D_inf_err == pytest.approx(np.hypot(0.03, 0.1 * err.correction), rel=1e-12)
    with pytest.raises(ValueError, match="positive"):
        yeh_hummer_correction(1.0, 298.15, 25.0, 0.0)


def test_yeh_hummer_licl_64_water_box() -> None:
    """64 waters + 3 LiCl (2.6 mol/kg; 1.054 g/cm³ interpolated from electrodb/data/density_25C.csv): L = 12.6 Å.

    Pure-water η over-corrects by η_solution/η_water = 1.38 (Laliberté)."""
    mass_g = (64 * 18.015 + 3 * 42.39) / 6.02214076e23
    box = (mass_g / 1.054 * 1e24) ** (1 / 3)  # Å
    assert box == pytest.approx(12.63, abs=0.01)
    old = yeh_hummer_correction(0.0, 298.15, box, water_viscosity(298.15)).correction
    eta = solution_viscosity("LiCl", 2.6, 298.15)
    new = yeh_hummer_correction(0.0, 298.15, box, eta.eta_Pa_s, viscosity_err_Pa_s=eta.eta_err_Pa_s)
    assert old == pytest.approx(0.551, abs=0.002)  # ~ D(Li+) itself (1.03e-9 m²/s at infinite dilution)
    assert eta.source == "laliberte_correlation"
    assert new.correction == pytest.approx(old * water_viscosity(298.15) / eta.eta_Pa_s, rel=1e-12)
    assert new.correction == pytest.approx(0.400, abs=0.002)
    assert new.correction_err == pytest.approx(0.03 * new.correction, rel=1e-9)
