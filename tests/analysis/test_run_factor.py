"""run_factor: how much longer a run must be for a failed verdict to pass (issue 20, "how much more").

For each family of criteria: a run that fails, its predicted factor, and the same run continued by that factor
(10–20 % over, the estimate's own scatter) passing the criterion; the cases where running longer cannot help
(``inf``) or where the scaling is unknown (None); and converged verdicts carrying no factor.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from electrodb.analysis.convergence import ConvergenceTargets, Verdict, worst
from electrodb.analysis.diffusion_verdict import BALLISTIC_END_PS
from electrodb.analysis.kb_series import acc_travel_verdict
from electrodb.analysis.kinetics import residence_verdict
from electrodb.analysis.kirkwood_buff import acc_verdict
from electrodb.analysis.md_checks import check_temperature
from electrodb.analysis.pairing import contact_shell_verdict, pairing_verdict
from electrodb.analysis.run_factor import count_factor, error_factor, rms_factor, series_factor, with_run_factor
from electrodb.analysis.sampling import SeriesReport, analyse_series
from electrodb.analysis.shell_sampling import cn_sampling_verdict, shell_exchange_verdict
from electrodb.analysis.shells import shell_sampling_verdict
from electrodb.analysis.structure_sampling import analyse_structure
from electrodb.analysis.transport import self_diffusion
from tests.analysis.structure_cases import analyse_case, hydrated_ions, hydrated_peak, ideal_gas, static_structure

T = ConvergenceTargets()


def _ar1(n: int, phi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n) * np.sqrt(1.0 - phi**2)
    e[0] = rng.normal()
    return 6.0 + 0.3 * lfilter([1.0], [1.0, -phi], e)


def _report(n_eff: float, err: float = 0.05, halves_z: float | None = 0.5) -> SeriesReport:
    return SeriesReport(mean=6.0, err=err, g=200 / n_eff, n_eff=n_eff, t0=0, n=200, halves_z=halves_z, std=0.3)


# ------------------------------------------------------------------------------------------------- helpers
def test_factors_of_one_criterion() -> None:
    assert count_factor(20, 10) == 2.0 and count_factor(20, 0) == 20.0  # no event: the bound of one
    assert count_factor(20, 30) == 1.0 and count_factor(20, None) is None
    assert error_factor(0.4, 0.2) == pytest.approx(4.0) and error_factor(0.1, 0.2) == 1.0
    assert error_factor(None, 0.2) is None and error_factor(0.4, 0.0) == math.inf
    # with few samples the Student-t factor shrinks as the run grows: less than (err/max)²
    assert 1.0 < error_factor(0.4, 0.2, n_eff=5.0) < 4.0
    assert rms_factor(3.0, 1.5) == pytest.approx(4.0) and rms_factor(3.0, 0.0) is None
    assert series_factor(_report(10.0), 20) == pytest.approx(2.0)  # N_eff 10 -> as long again
    assert series_factor(_report(40.0, halves_z=9.0), 20) is None  # a drift alone: no known scaling


def test_a_converged_verdict_has_no_run_factor() -> None:
    ok = Verdict("converged", "c")
    assert with_run_factor(ok, 3.0) is ok and "run_factor" not in ok.as_dict()
    assert "run_factor" not in Verdict("converged", "c", "", 2.0).as_dict()
    bad = with_run_factor(Verdict("unconverged", "c", "x"), 2.0, None, 1.5)
    assert bad.run_factor == 2.0 and bad.as_dict()["run_factor"] == 2.0
    assert worst(ok, bad).run_factor == 2.0


# ----------------------------------------------------------------------------- independent samples, errors
def test_ar1_series_with_n_eff_10_needs_twice_the_run() -> None:
    """AR(1) with g = 20 over 200 samples (N_eff 10): the factor predicts the estimated N_eff, and the same run
    continued by it (10 % over) reaches ``min_n_eff`` in most seeds (the N_eff estimate itself scatters by ±30 %
    at 10 correlation times)."""
    phi, n = 19.0 / 21.0, 200
    factors, after = [], []
    for seed in range(40):
        x = _ar1(8 * n, phi, seed)
        verdict = cn_sampling_verdict(analyse_series(x[:n], detect_start=False), "CN", T)
        f = verdict.run_factor or 1.0
        factors.append(f)
        after.append(analyse_series(x[: math.ceil(1.1 * f * n)], detect_start=False).n_eff)
    assert 1.2 < np.median(factors) < 2.6, np.median(factors)
    assert np.median(after) >= T.min_n_eff and np.mean(np.array(after) >= T.min_n_eff) >= 0.6


def test_an_error_twice_the_target_needs_four_times_the_run() -> None:
    rng = np.random.default_rng(3)
    x = 6.0 + rng.normal(0.0, 1.0, 4000)  # white: the error falls as 1/√N
    rep = analyse_series(x[:400], detect_start=False)
    t = ConvergenceTargets(cn_max_err=rep.err / 2.0)
    verdict = cn_sampling_verdict(rep, "CN", t)
    # 4 × the run, less the shrinking Student-t factor of the error (√(ν/(ν − 2)): 1.018 at ν ≈ 57, 1.004 at 4ν)
    assert verdict.status == "unconverged" and verdict.run_factor == pytest.approx(4.0, rel=0.04)
    assert verdict.run_factor < 4.0
    # the g of 400 white samples itself scatters by ±19 % (√(2(2M + 1)/N), 3 lags summed): a margin for it
    longer = analyse_series(x[: math.ceil(1.3 * verdict.run_factor * 400)], detect_start=False)
    assert cn_sampling_verdict(longer, "CN", t).converged


# --------------------------------------------------------------------------------------------------- counts
def test_event_and_centre_counts_grow_with_the_run() -> None:
    assert shell_exchange_verdict(10, 100, "Na–O", "water", T).run_factor == 2.0
    # no event at all: the bound of one event, for the events and for the turnovers (10 per member of 48)
    assert shell_exchange_verdict(0, 100, "Na–O", "water", T, members=48.0).run_factor == 960.0
    assert shell_exchange_verdict(40, 100, "Na–O", "water", T, members=4.0).run_factor == 2.0  # 5 turnovers
    assert shell_sampling_verdict(2, 5.0, T).run_factor == 2.0  # 10 centre·ps of 20
    assert shell_sampling_verdict(0, 5.0, T).run_factor == math.inf  # no centres: no run helps
    assert pairing_verdict(5, 4, 4, T).run_factor == 4.0
    assert pairing_verdict(0, 4, 0, T).run_factor == math.inf
    resolution = Verdict("insufficient", "c", "no excluded core", 3.0)
    assert contact_shell_verdict(resolution).run_factor == 3.0
    assert residence_verdict(10.0, 20.0, 1.0, targets=T).run_factor == pytest.approx(2.5)  # 5 tau of 20 ps
    assert residence_verdict(10.0, 80.0, None, targets=T).run_factor is None  # no block error: unknown


def test_temperature_offset_is_not_fixed_by_running_longer() -> None:
    rng = np.random.default_rng(0)
    hot = check_temperature(310.0 + rng.normal(0.0, 5.0, 500), 298.15)
    assert hot.verdict.status == "unconverged" and hot.verdict.run_factor == math.inf
    assert hot.verdict.as_dict()["run_longer_helps"] is False and "run_factor" not in hot.verdict.as_dict()
    few = check_temperature([298.0, 299.0], 298.15)
    assert few.verdict.status == "insufficient" and few.verdict.run_factor > 1


# ------------------------------------------------------------------------------------------------ diffusion
def _walk(n_atoms: int, d_a2_ps: float, t_ps: float, dt: float = 0.02, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, np.sqrt(2.0 * d_a2_ps * dt), (round(t_ps / dt) + 1, n_atoms, 3))
    steps[0] = 0.0
    return np.cumsum(steps, axis=0)


def _d(x: np.ndarray, dt: float = 0.02):
    return self_diffusion(x, np.arange(x.shape[0]) * dt)


def test_brownian_rms_displacement_short_of_3_A_needs_twice_the_run() -> None:
    x = _walk(64, 0.15, 60.0)  # RMS at run/4 = √(6 D T/4): 2.1 Å after 20 ps
    short = _d(x[: round(20.0 / 0.02) + 1])
    assert short.verdict.status == "unconverged" and "RMS displacement" in short.verdict.reason
    assert short.verdict.run_factor == pytest.approx((3.0 / short.rms_displacement_A) ** 2)
    assert 1.6 < short.verdict.run_factor < 2.4
    longer = _d(x[: round(1.1 * short.verdict.run_factor * 20.0 / 0.02) + 1])
    assert longer.verdict.converged, longer.verdict.reason
    assert longer.verdict.run_factor is None and "run_factor" not in longer.verdict.as_dict()


def test_brownian_fit_window_short_of_1_ps() -> None:
    """The window ends at run/4: T ≥ 4 × (window start + 1 ps)."""
    x = _walk(64, 3.0, 10.0)
    short = _d(x[: round(2.4 / 0.02) + 1])
    assert "fit window" in short.verdict.reason and "RMS" not in short.verdict.reason
    t0, t1 = short.window_ps
    assert short.verdict.run_factor == pytest.approx((t0 + 1.0) / t1)
    longer = _d(x[: round(1.1 * short.verdict.run_factor * 2.4 / 0.02) + 1])
    assert longer.verdict.converged, longer.verdict.reason


def test_too_few_atoms_for_the_error_of_d_is_not_fixed_by_running() -> None:
    """Over a window ending at run/4 the per-atom D scatter does not shrink with T: D_err/D ≈ const/√N."""
    res = _d(_walk(8, 0.5, 40.0))
    assert res.verdict.status == "unconverged" and res.verdict.run_factor == math.inf
    assert "a longer run does not reduce it, more atoms do" in res.verdict.reason
    assert "at most 8 however long the run" in res.verdict.reason
    assert res.verdict.as_dict()["run_longer_helps"] is False
    assert _d(_walk(1, 0.5, 40.0)).verdict.run_factor == math.inf  # one atom: no error at all


def test_too_few_frames_and_ballistic_windows_for_d() -> None:
    x = _walk(64, 0.5, 0.1)  # 6 frames
    res = _d(x)
    assert res.verdict.status == "insufficient" and res.verdict.run_factor == pytest.approx(39 / 5)
    # velocities correlated over 0.5 ps (Langevin): a 1.6 ps run has a ballistic window ending at 0.4 ps
    rng = np.random.default_rng(1)
    dt, tau = 0.02, 0.5
    v = lfilter([1.0], [1.0, -np.exp(-dt / tau)], rng.normal(0.0, 1.0, (81, 64, 3)), axis=0)
    res = _d(np.cumsum(v * dt, axis=0))
    assert res.loglog_slope > 1.0 + T.D_slope_tol
    assert res.verdict.run_factor >= BALLISTIC_END_PS / res.window_ps[1] * 0.999


# -------------------------------------------------------------------------------------------- Kirkwood–Buff
def test_small_box_and_few_ions_are_not_fixed_by_running() -> None:
    ions = {"cations": 12, "anions": 12}
    small = acc_verdict(1.0, 0.01, 12.4, ions, 6.19, T)
    assert small.status == "unconverged" and small.run_factor == math.inf and "does not help" in small.reason
    assert acc_verdict(1.0, 0.01, 25.0, {"cations": 4, "anions": 4}, 12.49, T).run_factor == math.inf
    noisy = acc_verdict(1.0, 0.2, 25.0, ions, 12.49, T)
    assert noisy.status == "unconverged" and noisy.run_factor == pytest.approx(4.0)  # error ∝ 1/√T
    assert acc_travel_verdict(10.0, 10.0, 100, T).run_factor == pytest.approx(16.0)  # travel ∝ √T


def test_acc_travel_of_a_random_walk_as_predicted() -> None:
    """Ions random-walking 1 Å per axis per frame in a 21 Å box must travel 4 × the 10.5 Å KB range: 300 frames
    take them about 30 Å, half the squared distance. The RMS over 96 ions scatters by about 4 %, the factor by
    8 %: the run continued by 1.2 × the factor gets there."""
    kw = {"n_formula": 48, "n_waters": 64, "box_A": 21.0, "step_A": 1.0, "with_h": False}
    case = ideal_gas(n_frames=1000, seed=2, **kw)
    short = analyse_case(case.frames(0, 300)).acc
    travel = [p for p in short.verdict.reason.split("; ") if "KB range" in p]
    assert travel and 1.5 < short.verdict.run_factor < 2.6, short.verdict
    longer = analyse_case(case.frames(0, math.ceil(1.2 * short.verdict.run_factor * 300))).acc
    assert "KB range" not in longer.verdict.reason, longer.verdict.reason


# ----------------------------------------------------------------------------------- first shells and peaks
def _hydrated(case):
    r_max = 0.999 * case.box_A / 2
    names = {("cation", "O_w"): ("Na–O", "water")}
    out = analyse_structure(
        case.positions, case.cell, case.times_ps, case.groups, [("cation", "O_w")], r_max, round(r_max / 0.02),
        names=names,
    )  # fmt: skip
    return out.shells[("cation", "O_w")]


def test_peak_position_converges_where_the_cn_cannot() -> None:
    """Shells that never exchange a member (CN insufficient, with a factor) but vibrate while their ions move:
    the peak position is converged, within its error of the truth."""
    sh = _hydrated(hydrated_ions(seed=0))
    assert sh.verdict.status == "insufficient" and "no water left or entered" in sh.verdict.reason
    assert sh.verdict.run_factor > 1
    peak = sh.peak
    assert peak.verdict.converged, peak.verdict.reason
    assert peak.verdict.run_factor is None and "run_factor" not in peak.verdict.as_dict()
    assert abs(peak.r_peak - hydrated_peak()) < 4 * peak.r_peak_err and 0 < peak.r_peak_err < T.r_max_err_A
    entry = peak.as_dict(0.0)
    assert entry["status"] == "converged" and entry["n_eff"] >= T.min_n_eff and entry["travel_A"] >= 1.0


def test_peak_position_error_bars_cover_the_truth() -> None:
    """40 runs of the hydrated ions: z = (r_peak − truth)/err has spread 1.0 ± 0.25 and none beyond 4σ."""
    z = []
    for seed in range(40):
        peak = _hydrated(hydrated_ions(seed=seed)).peak
        if peak.verdict.converged:
            z.append((peak.r_peak - hydrated_peak()) / peak.r_peak_err)
    z = np.array(z)
    assert z.size >= 30 and np.all(np.abs(z) < 4) and 0.75 < np.sqrt(np.mean(z**2)) < 1.25, z


def test_static_structure_never_gives_a_converged_peak_position() -> None:
    """40 frozen frames with 0.05 Å noise: a white peak-position series with an error of a few mÅ, refused
    because the centres did not move (the noise around one configuration is not the liquid's shell)."""
    out = analyse_case(static_structure(n_frames=40, noise_A=0.05, frame_ps=1.0))
    for pair in (("cation", "O_w"), ("anion", "O_w")):
        peak = out.shells[pair].peak
        assert peak.r_peak == pytest.approx(2.68, abs=0.02) and peak.r_peak_err < 0.005  # a "precise" number ...
        assert peak.verdict.status == "insufficient" and "the centres moved" in peak.verdict.reason  # ... refused
        assert peak.verdict.run_factor == pytest.approx((1.0 / peak.travel_A) ** 2)


def test_ideal_gas_never_gives_a_converged_peak_position() -> None:
    out = analyse_case(ideal_gas(n_formula=12, n_waters=128, box_A=21.0, n_frames=200, step_A=2.0, with_h=False))
    for sh in out.shells.values():
        assert not sh.peak.verdict.converged and not sh.resolution.converged
        if "no excluded core" in sh.resolution.reason and "no r with" in sh.resolution.reason:
            assert sh.resolution.run_factor == math.inf  # pairs at every distance: no run makes a core


def test_peak_position_whose_centres_moved_too_little_as_predicted() -> None:
    """27 ions moving 0.02 Å per axis per frame: 0.7 Å in 400 frames, half the squared distance they need (their
    RMS over 27 ions scatters by about 8 %, the factor by 16 %; over 12 seeds all passed at 1.15 × the factor)."""
    case = hydrated_ions(n_ions=27, box_A=39.0, step_A=0.02, n_frames=1200, seed=1)
    short = _hydrated(case.frames(0, 400)).peak
    assert short.verdict.status == "insufficient" and "the centres moved" in short.verdict.reason
    assert 1.5 < short.verdict.run_factor < 3.0
    longer = _hydrated(case.frames(0, math.ceil(1.15 * short.verdict.run_factor * 400))).peak
    assert longer.verdict.converged, longer.verdict.reason


# ---------------------------------------------------------------------------------------------- stored documents
def test_run_factors_reach_the_stored_documents(stores) -> None:
    """The builders store verdicts through ``Verdict.as_dict``: the shells, the peak positions, the a_cc of the
    thermo builder and the diffusion entries carry ``run_factor`` (or ``run_longer_helps``) where they fail, and
    the summary reads the r_* properties from the peak position's own entry."""
    from electrodb.builders import run_builders
    from electrodb.builders.analysis_settings import AnalysisSettings
    from tests.analysis.structure_cases import write_case

    doc = write_case(stores, static_structure(n_frames=40, noise_A=0.05, frame_ps=1.0))
    run_builders(stores, settings=AnalysisSettings())
    structure = stores.structure.query_one({"trajectory_id": doc.trajectory_id})
    shell = structure["shells"]["cation-O_w"]
    assert shell["status"] == "insufficient" and shell["run_factor"] > 1  # the CN: no exchange in 40 frames
    peak = shell["peak"]
    assert peak["status"] == "insufficient" and "the centres moved" in peak["reason"] and peak["run_factor"] > 1
    assert peak["r_peak"] == pytest.approx(2.68, abs=0.02) and peak["n_eff"] > 0
    transport = stores.transport.query_one({"trajectory_id": doc.trajectory_id})
    d = transport["diffusion"]["cation"]
    assert d["status"] != "converged" and ("run_factor" in d or "run_longer_helps" in d)
    system = stores.thermo.query_one({})["systems"][0]
    assert system["a_cc_status"] != "converged" and "a_cc_run_factor" in system
    summary = stores.electrolytes.query_one({})
    assert summary["r_cation_O_status"] == "insufficient" and "the centres moved" in summary["r_cation_O_reason"]
