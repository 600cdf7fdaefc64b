"""Ionic conductivity, Nernst–Einstein ratio, Onsager coefficients and transference numbers on analytic cases.

The cases and their derivations are in ``tests/analysis/conductivity_cases.py``; the many-seed coverage table is
``benchmarks/coverage_conductivity.py`` (also in ``benchmarks/error_bars.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from electrodb.analysis.collective import brownian_inefficiency, origin_slopes, self_origin_slopes
from electrodb.analysis.conductivity import collective_transport, conductivity_factor
from electrodb.analysis.convergence import ConvergenceTargets
from tests.analysis import conductivity_cases as cases


def test_units_on_a_hand_case():
    # one cation and one anion (z = ±1), each D = 1e-9 m²/s = 0.1 Å²/ps, V = 1e4 Å³, 300 K:
    # σ = e² (D₊ + D₋) / (V k_B T) = (1.602176634e-19)² × 2e-9 / (1e-26 × 1.380649e-23 × 300) S/m
    by_hand = 1.602176634e-19**2 * 2e-9 / (1e-26 * 1.380649e-23 * 300.0)
    assert by_hand == pytest.approx(1.2395, abs=1e-4)
    slope = 6 * (0.1 + 0.1)  # d<|Δr₊ − Δr₋|²>/dt, Å²/ps
    assert conductivity_factor(1e4, 300.0) * slope == pytest.approx(by_hand, rel=1e-12)


def test_origin_slopes_match_the_direct_sum():
    rng = np.random.default_rng(3)
    a, b = np.cumsum(rng.normal(size=(2, 150, 3)), axis=1) + 500.0  # large coordinates: no cancellation
    x = np.cumsum(rng.normal(size=(150, 5, 3)), axis=0)
    k0, k1, dt = 2, 17, 0.5
    t = np.arange(k0, k1 + 1) * dt
    w = (t - t.mean()) / ((t - t.mean()) @ (t - t.mean()))
    direct = [sum(w[j] * (a[o + k0 + j] - a[o]) @ (b[o + k0 + j] - b[o]) for j in range(len(w))) for o in range(133)]
    assert origin_slopes(a, b, k0, k1, dt) == pytest.approx(direct, rel=1e-9, abs=1e-9)
    self_direct = [sum(w[j] * np.sum((x[o + k0 + j] - x[o]) ** 2) for j in range(len(w))) for o in range(133)]
    assert self_origin_slopes(x, k0, k1, dt, max_bytes=2000) == pytest.approx(self_direct, rel=1e-9, abs=1e-9)


def test_brownian_inefficiency_of_overlapping_windows():
    # ≈ 0.6 k1 for a window from near 0 (module text), and measured on white-noise increments it holds
    assert brownian_inefficiency(2, 199) == pytest.approx(0.62 * 199, rel=0.03)
    rng = np.random.default_rng(0)
    runs = [origin_slopes(np.cumsum(rng.normal(size=(3000, 3)), 0), None, 2, 60, 1.0) for _ in range(400)]
    g_measured = np.var([r.mean() for r in runs]) * runs[0].size / np.mean([r.var() for r in runs])
    assert g_measured == pytest.approx(brownian_inefficiency(2, 60), rel=0.15)  # 37 frames


def test_independent_brownian_ions_give_sigma_equal_to_sigma_ne():
    case = cases.brownian_ions(seed=11, n_cations=40, n_frames=6000)
    res = case.run()
    t = case.truth
    assert res.status == "converged", res.verdicts["sigma"].reason
    assert abs(res.sigma_S_m - t["sigma"]) < 3 * res.sigma_err_S_m
    assert abs(res.sigma_ne_S_m - t["sigma_ne"]) < 3 * res.sigma_ne_err_S_m
    assert abs(res.ionicity - 1.0) < 3 * res.ionicity_err
    assert abs(res.t_plus - t["t_plus"]) < 3 * res.t_plus_err
    assert abs(res.t_plus_ne - t["t_plus_ne"]) < 3 * res.t_plus_ne_err
    assert res.reports["sigma"].n_eff >= 20 and res.n_origins > 5000
    # the error says it rests on time origins, not on ions: ~30 independent samples, 10–20 % relative
    assert 0.08 < res.sigma_err_S_m / res.sigma_S_m < 0.25
    assert "time origin" in res.verdicts["sigma"].criterion


def test_bound_neutral_pairs_carry_no_current():
    # f = 0.5 of the cations move rigidly with an anion: σ/σ_NE = (1−f)(D₊+D₋)/[(1−f)(D₊+D₋) + 2f D_pair] = 0.75
    case = cases.bound_pairs(seed=5, f=0.5, n=48, n_frames=6000)
    t = case.truth
    assert t["ionicity"] == pytest.approx(0.5 * 0.3 / (0.5 * 0.3 + 2 * 0.5 * 0.05))
    res = case.run()
    assert abs(res.sigma_S_m - t["sigma"]) < 3 * res.sigma_err_S_m
    assert abs(res.sigma_ne_S_m - t["sigma_ne"]) < 3 * res.sigma_ne_err_S_m
    assert abs(res.ionicity - t["ionicity"]) < 3 * res.ionicity_err
    assert abs(res.t_plus - t["t_plus"]) < 3 * res.t_plus_err
    assert abs(res.t_plus_ne - t["t_plus_ne"]) < 3 * res.t_plus_ne_err
    pm = res.onsager["cation-anion"]
    assert abs(pm["L_S_m"] - t["L_pm"]) < 3 * pm["L_err_S_m"] and pm["L_S_m"] > 0  # pairs move together


def test_onsager_coefficients_sum_to_the_collective_quantities():
    case = cases.bound_pairs(seed=2, f=0.3, n=30, n_frames=2000)
    res = case.run()
    o = res.onsager
    zp, zm = case.z_cation, case.z_anion
    total = zp**2 * o["cation-cation"]["L_S_m"] + 2 * zp * zm * o["cation-anion"]["L_S_m"]
    total += zm**2 * o["anion-anion"]["L_S_m"]
    assert total == pytest.approx(res.sigma_S_m, rel=1e-10)
    for pair in ("cation-cation", "anion-anion"):
        assert o[pair]["self_S_m"] + o[pair]["distinct_S_m"] == pytest.approx(o[pair]["L_S_m"], rel=1e-10)
    ne = zp**2 * o["cation-cation"]["self_S_m"] + zm**2 * o["anion-anion"]["self_S_m"]
    assert ne == pytest.approx(res.sigma_ne_S_m, rel=1e-10)
    t_plus = (zp**2 * o["cation-cation"]["L_S_m"] + zp * zm * o["cation-anion"]["L_S_m"]) / res.sigma_S_m
    assert t_plus == pytest.approx(res.t_plus, rel=1e-10)


def test_charges_enter_squared_for_a_two_one_salt():
    case = cases.brownian_ions(seed=4, n_cations=24, z_cation=2, n_frames=5000)
    res = case.run()
    assert case.truth["t_plus"] == pytest.approx(4 * 24 * 0.1 / (4 * 24 * 0.1 + 48 * 0.2))
    assert abs(res.sigma_S_m - case.truth["sigma"]) < 3 * res.sigma_err_S_m
    assert abs(res.t_plus - case.truth["t_plus"]) < 3 * res.t_plus_err


def test_barycentric_frame_leaves_sigma_unchanged():
    case = cases.brownian_ions(seed=8, n_cations=12, n_frames=1500)
    masses = np.r_[np.full(12, 7.0), np.full(12, 35.0)]
    plain, com = case.run(), case.run(masses=masses)
    assert com.sigma_S_m == pytest.approx(plain.sigma_S_m, rel=1e-9)  # a neutral box: no frame dependence
    assert com.onsager["cation-anion"]["L_S_m"] != pytest.approx(plain.onsager["cation-anion"]["L_S_m"], rel=1e-6)


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda c: c.__setattr__("positions", c.positions[:30]), "too few"),
        (lambda c: c.__setattr__("n_anions", 0), "no charged species"),
        (lambda c: c.__setattr__("z_anion", 0), "no charged species"),
        (lambda c: c.__setattr__("positions", np.mod(c.positions, 30.0)), "unwrapped"),
        (lambda c: c.__setattr__("positions", [f for f in c.positions[:-1]] + [c.positions[-1, :-1]]), "changes"),
        (lambda c: c.__setattr__("z_cation", 2), "not neutral"),
    ],
    ids=["too short", "no anions", "neutral", "wrapped", "changing ion count", "charged box"],
)
def test_bad_input_is_refused_with_a_reason(mutate, words):
    case = cases.brownian_ions(seed=1, n_cations=12, n_frames=1200)
    mutate(case)
    if isinstance(case.positions, np.ndarray):
        case.times = case.times[: len(case.positions)]
    res = case.run()
    assert res.status == "insufficient" and words in res.reason
    assert res.sigma_S_m is None and res.sigma_err_S_m is None and res.t_plus is None
    assert all(v.status == "insufficient" for v in res.verdicts.values())


def test_positions_declared_wrapped_are_refused():
    res = cases.brownian_ions(seed=1, n_cations=12, n_frames=1200).run(unwrapped=False)
    assert res.status == "insufficient" and "unwrapped" in res.reason and res.sigma_S_m is None


def test_few_ions_and_short_runs_are_not_converged():
    few = cases.brownian_ions(seed=3, n_cations=2, n_frames=8000).run()
    assert few.status == "unconverged" and "fewer than 10" in few.verdicts["sigma"].reason
    assert few.verdicts["transference"].status == "unconverged"
    short = cases.brownian_ions(seed=3, n_cations=32, n_frames=200).run()  # window ends at 1 ps: not diffusive
    assert short.status in ("unconverged", "insufficient")
    assert short.status == "insufficient" or short.reports["sigma"].n_eff < 40


def test_caged_ions_and_a_mobility_that_changes_are_never_converged():
    for seed in range(3):
        assert cases.caged_ions(seed).run().status == "unconverged"
        drift = cases.drift_halfway(seed).run()
        assert drift.status == "unconverged" and "mobility drifts" in drift.verdicts["sigma"].reason


def test_the_sigma_interval_is_asymmetric_and_targets_apply():
    res = cases.brownian_ions(seed=6, n_cations=20, n_frames=3000).run()
    lo, hi = res.sigma_ci68_S_m
    assert lo < res.sigma_S_m < hi and hi - res.sigma_S_m > res.sigma_S_m - lo
    strict = cases.brownian_ions(seed=6, n_cations=20, n_frames=3000).run(
        targets=ConvergenceTargets(sigma_rel_err=0.01)
    )
    assert strict.status == "unconverged" and "relative error of sigma" in strict.verdicts["sigma"].reason


def test_stored_curves_show_the_fit():
    res = cases.brownian_ions(seed=9, n_cations=16, n_frames=2000).run()
    t0, t1 = res.window_ps
    assert res.lag_times_ps[0] == 0 and res.lag_times_ps[-1] >= t1 and len(res.lag_times_ps) <= 400
    inside = (res.lag_times_ps >= t0) & (res.lag_times_ps <= t1)
    line = res.fit_intercept_A2 + res.fit_slope_A2_ps * res.lag_times_ps[inside]
    assert np.median(np.abs(line - res.mscd_A2[inside]) / res.mscd_A2[inside]) < 0.3
    assert collective_transport is not None and res.self_A2[inside].min() > 0


def test_run_factors_say_how_much_longer_a_run_must_be():
    few = cases.brownian_ions(seed=3, n_cations=2, n_frames=8000).run()
    assert few.verdicts["sigma"].run_factor == float("inf")  # more run cannot add ions
    assert few.verdicts["sigma"].as_dict()["run_longer_helps"] is False
    res = cases.brownian_ions(seed=6, n_cations=20, n_frames=3000).run(targets=ConvergenceTargets(sigma_rel_err=0.05))
    rel = res.sigma_err_S_m / res.sigma_S_m
    assert res.verdicts["sigma"].run_factor == pytest.approx(max((rel / 0.05) ** 2, 1.0), rel=1e-9)
    assert res.verdicts["sigma"].run_factor > 4  # errors ∝ 1/√T
