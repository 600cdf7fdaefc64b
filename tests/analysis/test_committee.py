"""committee: model deviation σ_F, its calibration against true errors, the model-trust verdict and label selection.

Analytic cases (identical members, two members a known vector apart, Gaussian member noise of known std), hand-made
energy spreads and verdicts, synthetic calibration data with a known scale α, and clusters of near-duplicate
configurations for the farthest-point selection.
"""

from __future__ import annotations

import numpy as np
import pytest

from electrodb.analysis import committee
from electrodb.analysis.committee import (
    atom_disagreement,
    calibrate_threshold,
    energy_spread,
    frame_disagreement,
    select_diverse,
    structure_fingerprint,
    trust_verdict,
    worst_frames,
)


# ---------------------------------------------------------------------------------------------------- disagreement
def test_identical_members_do_not_disagree() -> None:
    f = np.random.default_rng(0).normal(size=(7, 50, 3))
    sigma = atom_disagreement(np.stack([f] * 4))
    assert sigma.shape == (7, 50)
    np.testing.assert_allclose(sigma, 0.0, atol=1e-12)


def test_two_members_a_vector_apart_disagree_by_half_its_length() -> None:
    rng = np.random.default_rng(1)
    f = rng.normal(size=(30, 3))
    d = rng.normal(size=(30, 3))
    sigma = atom_disagreement(np.stack([f, f + d]))  # one frame: (K, N, 3) -> (N,)
    assert sigma.shape == (30,)
    np.testing.assert_allclose(sigma, np.linalg.norm(d, axis=1) / 2.0, rtol=1e-12)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_gaussian_member_noise_gives_the_population_spread(k: int) -> None:
    s = 0.07
    rng = np.random.default_rng(k)
    truth = rng.normal(size=(1, 4, 5000, 3))
    forces = truth + s * rng.normal(size=(k, 4, 5000, 3))
    sigma = atom_disagreement(forces.astype(np.float32))
    expected = s * np.sqrt(3.0 * (k - 1) / k)  # E[σ_F²] = 3 s² (K − 1)/K
    assert np.sqrt(np.mean(sigma**2)) == pytest.approx(expected, rel=0.02)


def test_chunked_frames_give_the_same_sigma(monkeypatch: pytest.MonkeyPatch) -> None:
    forces = np.random.default_rng(2).normal(size=(3, 9, 11, 3))
    whole = atom_disagreement(forces)
    monkeypatch.setattr(committee, "_CHUNK_BYTES", 1)  # one frame at a time
    np.testing.assert_allclose(atom_disagreement(forces), whole, rtol=1e-14)


def test_a_committee_of_one_or_a_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 members"):
        atom_disagreement(np.zeros((1, 5, 4, 3)))
    with pytest.raises(ValueError, match="shape"):
        atom_disagreement(np.zeros((3, 5, 4)))


def test_a_member_that_blew_up_gives_nan_and_frame_summaries_point_at_it() -> None:
    forces = np.zeros((3, 2, 4, 3))
    forces[1, 1, 2] = np.nan
    sigma = atom_disagreement(forces)
    assert np.isnan(sigma[1, 2]) and np.isfinite(np.delete(sigma.ravel(), 6)).all()
    frames = frame_disagreement(sigma)
    assert frames["argmax"][1] == 2 and np.isnan(frames["max"][1]) and frames["max"][0] == 0.0


def test_frame_summaries_by_hand() -> None:
    sigma = np.array([[0.1, 0.5, 0.2, 0.2], np.linspace(0.0, 1.0, 4)])
    frames = frame_disagreement(sigma)
    np.testing.assert_allclose(frames["max"], [0.5, 1.0])
    np.testing.assert_allclose(frames["mean"], [0.25, 0.5])
    np.testing.assert_allclose(frames["p95"], np.percentile(sigma, 95, axis=1))
    np.testing.assert_array_equal(frames["argmax"], [1, 3])


def test_energy_spread_by_hand() -> None:
    energies = np.array([[-500.0, -500.3], [-500.2, -500.3]])  # eV, K=2, F=2
    np.testing.assert_allclose(energy_spread(energies, 100), [1e3 * 0.1 / 100, 0.0], atol=1e-9)  # meV/atom
    with pytest.raises(ValueError, match="K >= 2"):
        energy_spread(energies[:1], 100)


# --------------------------------------------------------------------------------------------------------- verdict
def _frames(n: int, n_high: int, threshold: float = 0.3) -> np.ndarray:
    x = np.full(n, 0.5 * threshold)
    x[:n_high] = 2.0 * threshold
    return x


def test_a_run_with_few_flagged_frames_is_trusted() -> None:
    v = trust_verdict(_frames(40, 2), 0.3)  # exactly 5 %: allowed
    assert v["status"] == "trusted" and v["reason"] == "" and v["note"] == ""
    assert (v["n_frames"], v["n_flagged"], v["frac_flagged"]) == (40, 2, 0.05)
    assert v["sigma_F_max_max"] == pytest.approx(0.6) and v["threshold_eV_per_A"] == 0.3
    assert v["criterion"] == "at most 5 % of audited frames with max σ_F > 0.30 eV/Å (at least 10 frames audited)"


def test_an_extrapolating_run_says_by_how_much() -> None:
    v = trust_verdict(_frames(40, 12), 0.3)
    assert v["status"] == "extrapolating" and v["n_flagged"] == 12
    assert v["reason"] == (
        "the committee disagreed by more than 0.30 eV/Å on 12 of 40 audited frames (30 %, above the 5 % allowed): "
        "there the model's expected force error is above the committee's target and its members disagree more "
        "than on their held-out data, so the run left the configurations the model describes reliably"
    )


def test_too_few_frames_are_insufficient() -> None:
    v = trust_verdict(_frames(4, 0), 0.3)
    assert v["status"] == "insufficient"
    assert "only 4 frames audited" in v["reason"] and "at least 10" in v["reason"]
    assert "only 3 frames audited (1 flagged);" in trust_verdict(_frames(3, 1), 0.3)["reason"]
    empty = trust_verdict(np.array([]), 0.3)
    assert empty["status"] == "insufficient" and empty["sigma_F_max_p95"] is None


def test_non_finite_sigma_counts_as_flagged_and_is_said() -> None:
    x = _frames(40, 0)
    x[[3, 9, 20]] = [np.nan, np.inf, np.nan]
    v = trust_verdict(x, 0.3)
    assert v["status"] == "extrapolating" and v["n_flagged"] == 3 and v["n_nonfinite"] == 3
    assert "3 frames had non-finite σ_F" in v["reason"] and v["note"]
    assert np.isfinite(v["sigma_F_max_max"])


@pytest.mark.parametrize("bad", [0.0, -0.1, np.nan, np.inf])
def test_a_meaningless_threshold_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        trust_verdict(_frames(40, 0), bad)


def test_worst_frames_largest_first_with_the_atom_and_its_element() -> None:
    frame_max = np.array([0.1, 0.9, np.nan, 0.4, 0.9])
    worst = worst_frames(frame_max, np.array([0, 1, 2, 3, 0]), np.arange(5) * 0.5, ["Li", "O", "H", "F"], n=3)
    assert [w["frame"] for w in worst] == [2, 1, 4]
    assert worst[1] == {"frame": 1, "time_ps": 0.5, "sigma_F_max": 0.9, "atom": 1, "element": "O"}
    assert worst_frames(frame_max, np.zeros(5, int), np.zeros(5), ["Li"], n=0) == []


# ----------------------------------------------------------------------------------------------------- calibration
def _held_out(alpha: float, n_conf: int = 40, n_atoms: int = 150, seed: int = 3, correlated: bool = True):
    rng = np.random.default_rng(seed)
    sig, err = [], []

    def spread(n: int) -> np.ndarray:  # σ_F over a decade within a configuration, and a decade between them
        return 0.01 * np.exp(rng.uniform(0.0, np.log(10.0)) + rng.uniform(0.0, np.log(10.0), n))

    for c in range(n_conf):
        n = n_atoms + c % 7  # configurations of different sizes
        s = spread(n)
        chi = np.linalg.norm(rng.normal(size=(n, 3)), axis=1) / np.sqrt(3.0)  # E[chi²] = 1
        sig.append(s)
        err.append(alpha * (s if correlated else spread(n)) * chi)
    return sig, err


def test_calibration_recovers_the_scale_and_ranks_errors() -> None:
    sig, err = _held_out(alpha=2.5)
    cal = calibrate_threshold(sig, err, 0.5, domain_quantile=None)
    assert cal["method"] == "rms_scaling"
    assert cal["scale"] == pytest.approx(2.5, rel=0.04)
    assert cal["threshold_eV_per_A"] == pytest.approx(0.5 / cal["scale"])
    assert cal["spearman_atom"] > 0.8 and cal["spearman_frame"] > 0.9
    assert cal["n_configurations"] == 40 and cal["n_atoms"] == sum(s.size for s in sig)
    assert cal["recall"] is not None and cal["recall"] > 0.5 and cal["precision"] is not None


def test_uncorrelated_sigma_has_no_rank_correlation_but_a_finite_threshold() -> None:
    sig, err = _held_out(alpha=2.0, correlated=False)
    cal = calibrate_threshold(sig, err, 0.5)
    assert abs(cal["spearman_atom"]) < 0.1
    assert np.isfinite(cal["threshold_eV_per_A"]) and cal["threshold_eV_per_A"] > 0


def test_threshold_grows_with_the_target_and_recall_precision_can_be_undefined() -> None:
    sig, err = _held_out(alpha=2.0, n_conf=10)
    cals = [calibrate_threshold(sig, err, t, domain_quantile=None) for t in (0.05, 0.2, 1.0, 100.0)]
    thresholds = [c["threshold_eV_per_A"] for c in cals]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == 4
    assert cals[-1]["recall"] is None and cals[-1]["precision"] is None  # nothing bad, nothing flagged


def test_calibration_refuses_bad_inputs() -> None:
    sig, err = _held_out(alpha=1.0, n_conf=6)
    with pytest.raises(ValueError, match="only 3 labelled configurations"):
        calibrate_threshold(sig[:3], err[:3], 0.1)
    with pytest.raises(ValueError, match="configuration 2"):
        calibrate_threshold(sig, [*err[:2], err[2][:-1], *err[3:]], 0.1)
    with pytest.raises(ValueError, match="σ_F arrays"):
        calibrate_threshold(sig, err[:-1], 0.1)
    with pytest.raises(ValueError, match="zero on every held-out atom"):
        calibrate_threshold([np.zeros_like(s) for s in sig], err, 0.1)
    with pytest.raises(ValueError, match="target"):
        calibrate_threshold(sig, err, 0.0)


# ------------------------------------------------------------------------------------------------------- selection
def _configuration(seed: int, n: int = 120, box: float = 13.0):
    rng = np.random.default_rng(seed)
    symbols = ["Li"] * 4 + ["F"] * 4 + ["O"] * (n // 3) + ["H"] * (n - 8 - n // 3)
    return rng.uniform(0.0, box, size=(n, 3)), np.diag([box, box, box]), symbols


def test_fingerprint_is_invariant_to_permutation_translation_and_replication() -> None:
    pos, cell, sym = _configuration(4)
    fp = structure_fingerprint(pos, cell, sym)
    assert fp.shape == (10 * 24,) and np.all(fp >= 0)  # 4 elements -> 10 pairs
    perm = np.random.default_rng(5).permutation(len(sym))
    moved = pos[perm] + np.array([3.1, -7.4, 20.2])  # permuted (within and across elements), translated, unwrapped
    np.testing.assert_allclose(structure_fingerprint(moved, cell, [sym[i] for i in perm]), fp, atol=1e-12)
    double = np.concatenate([pos, pos + cell[0]])  # the same liquid in a cell twice as long: per atom, unchanged
    np.testing.assert_allclose(structure_fingerprint(double, cell * [[2], [1], [1]], sym * 2), fp, atol=1e-12)
    with pytest.raises(ValueError, match="r_max"):
        structure_fingerprint(pos, cell, sym, r_max=7.0)


def test_fingerprint_separates_near_duplicates_from_other_configurations() -> None:
    pos, cell, sym = _configuration(4)
    fp = structure_fingerprint(pos, cell, sym)
    rng = np.random.default_rng(9)
    other = [np.linalg.norm(structure_fingerprint(_configuration(s)[0], cell, sym) - fp) for s in (6, 7, 8)]
    near = [
        np.linalg.norm(structure_fingerprint(pos + rng.normal(0.0, j, pos.shape), cell, sym) - fp)
        for j in (0.01, 0.03, 0.1)
    ]
    assert near == sorted(near) and near[-1] > 0
    assert near[0] < 0.1 * min(other) and near[1] < 0.2 * min(other)


def test_select_diverse_picks_one_of_each_cluster_of_near_duplicates() -> None:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(4, 16)) * 3.0
    fps = np.repeat(centres, 5, axis=0) + 1e-3 * rng.normal(size=(20, 16))
    scores = rng.uniform(0.3, 1.0, 20)
    picks = select_diverse(fps, scores, 10, min_distance=0.1)
    assert sorted(picks // 5) == [0, 1, 2, 3]  # duplicates skipped, so only 4 although 10 asked for
    assert picks[0] == np.argmax(scores)
    np.testing.assert_array_equal(select_diverse(fps, scores, 10, min_distance=0.1), picks)  # deterministic
    two = select_diverse(fps, scores, 2)
    assert two.size == 2 and two[0] == np.argmax(scores) and len(set(two // 5)) == 2


def test_select_diverse_respects_the_threshold() -> None:
    rng = np.random.default_rng(8)
    fps = rng.normal(size=(30, 5))
    scores = np.linspace(0.0, 1.5, 30)
    scores[4] = np.nan  # a member blew up: most uncertain of all
    picks = select_diverse(fps, scores, 100, threshold=1.0)
    assert picks[0] == 4
    assert set(picks.tolist()) == {4, *np.flatnonzero(scores > 1.0).tolist()}
    np.testing.assert_array_equal(select_diverse(fps, scores, 3, threshold=2.0), [4])
    assert select_diverse(fps, np.nan_to_num(scores), 3, threshold=2.0).size == 0


def test_a_committee_that_disagrees_everywhere_flags_only_beyond_its_held_out_disagreement() -> None:
    """Weak members disagree on every configuration, so target/α alone would flag frames like the held-out ones;
    the domain quantile keeps those trusted and still flags frames whose disagreement goes beyond them."""
    sig, err = _held_out(alpha=2.5)
    strict = calibrate_threshold(sig, err, 0.05)  # target far below the model's typical error
    maxima = np.array([s.max() for s in sig])
    assert strict["method"] == "rms_scaling+domain" and strict["error_threshold_eV_per_A"] < maxima.min()
    assert strict["threshold_eV_per_A"] == strict["domain_threshold_eV_per_A"] == np.quantile(maxima, 0.99)
    assert np.sum(maxima > strict["threshold_eV_per_A"]) <= 1  # the 99th percentile of 40 configurations
    assert trust_verdict(maxima, strict["threshold_eV_per_A"])["status"] == "trusted"
    assert trust_verdict(2 * maxima, strict["threshold_eV_per_A"])["status"] == "extrapolating"
    lenient = calibrate_threshold(sig, err, 100.0)  # a target above every error: the error condition decides
    assert lenient["method"] == "rms_scaling" and lenient["threshold_eV_per_A"] == 100.0 / lenient["scale"]
    with pytest.raises(ValueError, match="domain_quantile"):
        calibrate_threshold(sig, err, 0.5, domain_quantile=1.5)
