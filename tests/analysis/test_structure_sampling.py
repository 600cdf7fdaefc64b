"""Structure over time (electrodb.analysis.structure_sampling): the cut, n_eff, shell exchange, a_cc per block.

The negative cases are those of the issue "Error bars you can bet on", on synthetic runs whose answers are known
(tests/analysis/structure_cases.py): ideal gases (g = 1, a_cc = 1, no first shell) and a frozen structure.
"""

from __future__ import annotations

import numpy as np
import pytest

from electrodb.analysis.convergence import ConvergenceTargets
from electrodb.analysis.kb_series import acc_block_series
from electrodb.analysis.kinetics import shell_exchange
from electrodb.analysis.kirkwood_buff import MOL_PER_L_TO_PER_A3, activity_derivative, kb_integral
from electrodb.analysis.shell_sampling import box_relaxations, excluded_core, relaxation_verdict
from electrodb.analysis.structure import block_coordination, pair_rdfs, regroup_blocks
from electrodb.analysis.structure_sampling import significant_cut
from tests.analysis.structure_cases import (
    COVERAGE_CASES,
    KB_PAIRS,
    analyse_case,
    ideal_gas,
    ideal_gas_outcomes,
    static_structure,
    z_table,
)


# ------------------------------------------------------------------------------------------- building blocks
def test_regroup_blocks_is_the_rdf_of_the_frames_kept() -> None:
    rng = np.random.default_rng(0)
    pos = rng.uniform(0.0, 12.0, (37, 30, 3))
    groups = {"a": np.arange(10), "b": np.arange(10, 30)}
    fine = pair_rdfs(pos, np.eye(3) * 12.0, groups, [("a", "b"), ("b", "b")], 5.9, 59, n_blocks=37)
    for pair in fine:
        kept = regroup_blocks(fine[pair], 4, start=9)
        direct = pair_rdfs(pos[9:], np.eye(3) * 12.0, groups, [pair], 5.9, 59, n_blocks=4)[pair]
        np.testing.assert_allclose(kept.g, direct.g, rtol=1e-12)
        np.testing.assert_allclose(kept.coordination, direct.coordination, rtol=1e-12)
        np.testing.assert_allclose(kept.counts, direct.counts, rtol=1e-9)
        np.testing.assert_allclose(kept.g_blocks, direct.g_blocks, rtol=1e-12)  # 28 frames: the same 4 blocks
        assert kept.n_frames == 28 and kept.block_frames.tolist() == [7, 7, 7, 7]
        per_block = block_coordination(fine[pair], 2.5)
        np.testing.assert_allclose(per_block.mean(), fine[pair].coordination_at(2.5), rtol=1e-12)


def test_shell_exchange_counts_from_core_to_core() -> None:
    """Rattling across the cutoff is not an exchange; leaving the band on the other side is."""
    d = np.array([2.0, 2.9, 3.05, 2.95, 3.05, 3.5, 3.2, 2.9, 3.1, 3.4, 3.1, 2.5])
    pos = np.zeros((d.size, 2, 3))
    pos[:, 1, 0] = d
    ex = shell_exchange(pos, np.eye(3) * 20.0, [0], [1], 3.0, 3.3)
    assert (ex.n_exits, ex.n_entries) == (2, 2)  # out at 3.5 and 3.4, in at 2.9 and 2.5
    assert shell_exchange(pos, np.eye(3) * 20.0, [0], [1], 3.0).n_events == 6  # no band: every crossing of 3 Å
    band_start = shell_exchange(pos[2:5], np.eye(3) * 20.0, [0], [1], 3.0, 3.3)
    assert band_start.n_events == 0  # first seen in the band, then in: a state, not an event


def test_excluded_core_tells_a_shell_from_an_ideal_gas() -> None:
    case = static_structure(n_frames=10)
    res = pair_rdfs(case.positions, case.cell, case.groups, [("cation", "O_w")], 8.0, 400, n_blocks=2)
    r_core, n_ideal = excluded_core(res[("cation", "O_w")], 2.68)
    assert 2.3 < r_core < 2.68 and n_ideal > 100
    gas = ideal_gas(n_frames=50, step_A=2.0, with_h=False)
    res = pair_rdfs(gas.positions, gas.cell, gas.groups, [("cation", "O_w")], 8.0, 400, n_blocks=2)
    r_core, n_ideal = excluded_core(res[("cation", "O_w")], 3.0)
    assert n_ideal < 30  # at most the first bins, where an ideal gas has nothing to count


def test_significant_cut_removes_a_transient_and_nothing_else() -> None:
    rng = np.random.default_rng(1)
    stationary = rng.normal(0.0, 1.0, 200)
    transient = np.concatenate([np.linspace(8.0, 0.0, 30), rng.normal(0.0, 1.0, 170)])
    assert significant_cut(stationary) == 0
    assert 20 <= significant_cut(transient) <= 60
    cuts = [significant_cut(np.convolve(rng.normal(size=230), np.ones(30) / 30, "valid")) for _ in range(40)]
    assert np.mean(np.array(cuts) > 0) < 0.15  # a correlated excursion is not a transient


def test_acc_block_series_is_the_linearised_estimator() -> None:
    gas = ideal_gas(n_formula=12, n_waters=64, box_A=20.5, n_frames=80, step_A=2.0, with_h=False, seed=2)
    pairs = list(dict.fromkeys(KB_PAIRS.values()))
    fine = pair_rdfs(gas.positions, gas.cell, gas.groups, pairs, 10.2, 510, n_blocks=40)
    g_blocks = {k: fine[p].g_blocks for k, p in KB_PAIRS.items()}
    n_b = {k: len(gas.groups[p[1]]) for k, p in KB_PAIRS.items()}
    acc = acc_block_series(fine[pairs[0]].r, g_blocks, n_b, 12, 12, gas.volume_A3, fine[pairs[0]].block_frames)
    kb = {k: kb_integral(fine[p].r, fine[p].g, n_b[k], gas.volume_A3, p[0] == p[1]) for k, p in KB_PAIRS.items()}
    c = 12 / (gas.volume_A3 * MOL_PER_L_TO_PER_A3)
    direct, _ = activity_derivative(c, *(kb[k] for k in ("pp", "mm", "pm", "pw", "mw")))
    assert acc.a_cc == pytest.approx(direct, rel=1e-10)
    assert acc.series.size == 40 and acc.series.mean() == pytest.approx(acc.a_cc, abs=1e-4)
    ones = {k: np.ones_like(v) for k, v in g_blocks.items()}
    exact = acc_block_series(fine[pairs[0]].r, ones, n_b, 12, 12, gas.volume_A3)
    assert exact.a_cc == pytest.approx(1.0, abs=1e-12) and np.ptp(exact.series) < 1e-9


# ------------------------------------------------------------------------------------ the negatives
def test_static_structure_coordination_numbers_are_not_sampled() -> None:
    out = analyse_case(static_structure(n_frames=40, noise_A=0.05, frame_ps=1.0))
    for pair, name in ((("cation", "O_w"), "Na–O"), (("anion", "O_w"), "Cl–O")):
        sh = out.shells[pair]
        assert sh.resolution.converged and sh.shell.cn == pytest.approx(8.0)
        assert sh.verdict.status == "insufficient" and sh.exchange.n_events == 0
        assert f"no water left or entered the {name} first shell in 40 frames" in sh.verdict.reason
        assert "error exactly 0" in sh.verdict.reason  # never "converged" with an error of 0
    assert out.acc.verdict.status == "insufficient" and "× the 12.4 Å KB range" in out.acc.verdict.reason


@pytest.mark.parametrize("start", ["lattice", "uniform"])
def test_thirty_correlated_frames_give_no_converged_acc(start: str) -> None:
    out = analyse_case(ideal_gas(n_frames=30, step_A=0.3, start=start, seed=7, with_h=False))
    assert not out.acc.verdict.converged and out.acc.report.n_eff < 20
    assert "independent samples" in out.acc.verdict.reason
    assert not any(sh.verdict.converged for sh in out.shells.values())


def test_a_lattice_transient_is_cut() -> None:
    out = analyse_case(ideal_gas(n_formula=12, n_waters=64, box_A=20.5, n_frames=300, step_A=0.7, start="lattice"))
    assert out.t_equil_ps > 0 or not out.acc.verdict.converged
    assert not any(sh.verdict.converged for sh in out.shells.values())


def test_box_relaxations_of_a_run() -> None:
    # one relaxation time L²/(4π²D) of the box's slowest density wave: 6 D T = Δ² with Δ = √6 L / 2π
    assert box_relaxations(np.sqrt(6.0) * 25.0 / (2.0 * np.pi), 25.0) == pytest.approx(1.0)
    assert box_relaxations(2.0 * np.sqrt(6.0) * 25.0 / (2.0 * np.pi), 25.0) == pytest.approx(4.0)


def test_relaxation_applies_only_after_a_cut_transient() -> None:
    t = ConvergenceTargets()
    assert relaxation_verdict(0.0, 1.0, 25.0, "CN(Na–O)", t).converged  # started in equilibrium: not applied
    far = 25.0 * np.sqrt(6.0 * t.transient_min_relaxations) / (2.0 * np.pi)
    assert relaxation_verdict(3.0, 1.01 * far, 25.0, "CN(Na–O)", t).converged
    v = relaxation_verdict(3.0, far / 2.0, 25.0, "CN(Na–O)", t)
    assert v.status == "unconverged" and "a transient was cut at 3 ps" in v.reason and "CN(Na–O)" in v.reason
    assert v.run_factor == pytest.approx(4.0)  # travel² ∝ T: half the distance needs four times the run
    assert relaxation_verdict(3.0, None, 25.0, "CN", t).status == "unconverged"
    off = ConvergenceTargets().with_overrides({"transient_min_relaxations": 0})
    assert relaxation_verdict(3.0, 0.1, 25.0, "CN", off).converged


@pytest.mark.parametrize(("seed", "quantity"), [(3, "CN(Na–O)"), (24, "CN(Na–O)"), (11, "CN(Na–Na)")])
def test_a_cn_after_a_slow_lattice_transient_is_not_converged(seed: int, quantity: str) -> None:
    """The lattice-start transient of benchmarks/coverage_structure.py (300 frames, the ions travel about 9 Å in
    a 25 Å box): these seeds' CNs at a fixed radius passed every other test 5–8 errors from the truth; what is
    left of the transient after the cut relaxes over the box's slowest density wave, longer than the run."""
    kw, _, _ = COVERAGE_CASES["lattice-start transient, 300 frames"]
    case = ideal_gas(seed=seed, **kw)
    rows = {r["quantity"]: r for r in ideal_gas_outcomes(case)}
    assert not rows[quantity]["converged"]
    off = ConvergenceTargets().with_overrides({"transient_min_relaxations": 0})
    before = {r["quantity"]: r for r in ideal_gas_outcomes(case, targets=off)}[quantity]  # the criterion refuses it
    assert before["converged"] and abs(before["value"] - before["truth"]) > 4 * before["err"]


# ---------------------------------------------------------------------------------------------- calibration
def _calibration(seeds: range, **kw) -> dict[str, dict]:
    rows = []
    for seed in seeds:
        rows += ideal_gas_outcomes(ideal_gas(seed=seed, with_h=False, **kw))
    return z_table(rows)


EQUILIBRATED = {"n_formula": 12, "n_waters": 128, "box_A": 21.0, "n_frames": 400, "step_A": 2.0}


def test_error_bars_cover_the_ideal_gas_truth_fast() -> None:
    """Few seeds, pooled: a_cc, CN(Na–O), CN(Na–Na), free and CIP fractions against their exact ideal-gas values;
    no first shell (an ideal gas has none) and no pairing (no contact shell) may be converged. Without the
    excluded-core test 7–17 % of such runs had a 'converged' noise shell for each ion pair."""
    table = _calibration(range(8, 18), **EQUILIBRATED)
    pooled = ("a_cc", "CN(Na–O)", "CN(Na–Na)", "free fraction")  # CIP mirrors the free fraction
    z = np.concatenate([table[q]["z"] for q in pooled])
    assert z.size >= 35 and np.all(np.abs(z) < 4), z
    assert 0.65 < np.sqrt(np.mean(z**2)) < 1.35  # 40 z-scores: the spread itself scatters by about ±0.15
    assert all(d["converged"] == 0 for q, d in table.items() if q.startswith("shell") or q == "pairing"), table


@pytest.mark.slow
def test_error_bars_cover_the_ideal_gas_truth_full() -> None:
    """200 seeds per quantity: z spread 1.0 ± 0.1, none beyond 4σ; no shell in an ideal gas is converged."""
    table = _calibration(range(200), **EQUILIBRATED)
    for q, d in table.items():
        if q.startswith("shell") or q == "pairing":
            assert d["converged"] == 0, q
            continue
        assert d["converged"] > 0.9, q
        assert abs(d["z_spread"] - 1.0) <= 0.1 and d["out4"] == 0, (q, d["z_spread"], d["out4"])


def test_targets_can_be_set() -> None:
    t = ConvergenceTargets().with_overrides({"cn_min_exchange_events": 5, "acc_min_travel": 2})
    assert (t.cn_min_exchange_events, t.acc_min_travel) == (5, 2.0)
