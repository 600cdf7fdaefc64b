"""Tests for electrodb.analysis.structure (RDFs, coordination numbers, first-shell analysis)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from electrodb.analysis.periodic import cell_widths, max_cutoff, minimum_image, minimum_image_distances
from electrodb.analysis.shells import ShellAnalysis, first_minimum, first_peak, shell_analysis
from electrodb.analysis.structure import pair_rdfs, rdf

TRICLINIC = np.array([[14.0, 0.0, 0.0], [4.0, 13.0, 0.0], [-3.0, 3.5, 12.0]])


def _wrap(pos: np.ndarray, cell: np.ndarray) -> np.ndarray:
    s = pos @ np.linalg.inv(cell)
    return (s - np.floor(s)) @ cell


def _brute_counts(pos, cells, a, b, r_max, n_bins):
    """Ordered-pair histogram over the 27 nearest periodic images (positions wrapped first)."""
    edges = np.linspace(0.0, r_max, n_bins + 1)
    counts = np.zeros(n_bins)
    for frame, cell in zip(pos, np.broadcast_to(cells, (len(pos), 3, 3)), strict=True):
        shifts = np.array(list(itertools.product([-1, 0, 1], repeat=3))) @ cell
        w = _wrap(frame, cell)
        d = np.linalg.norm(w[a][:, None, None, :] - w[b][None, :, None, :] + shifts[None, None], axis=-1)
        self_pair = (a[:, None] == b[None, :])[:, :, None] & np.all(shifts == 0, axis=1)[None, None, :]
        d = d[~self_pair]
        counts += np.histogram(d[d <= r_max], bins=edges)[0]
    return counts


# ------------------------------------------------------------------------------------------------ ideal gas
@pytest.mark.parametrize("cell", [np.diag([20.0, 21.0, 22.0]), TRICLINIC * 1.5], ids=["ortho", "triclinic"])
def test_ideal_gas_is_flat(cell):
    rng = np.random.default_rng(0)
    n_frames, n_atoms = 20, 300
    pos = rng.uniform(0, 1, (n_frames, n_atoms, 3)) @ cell
    r_max = min(9.0, max_cutoff(cell))
    res = pair_rdfs(pos, cell, {"A": np.arange(200), "B": np.arange(200, 300)}, [("A", "A"), ("A", "B")], r_max, 60)
    vol = abs(np.linalg.det(cell))
    for (a, b), r in res.items():
        like = a == b
        expected = n_frames * r.n_pairs * 4 / 3 * np.pi * np.diff(r.edges**3) / vol
        sigma = np.sqrt((2.0 if like else 1.0) / expected)  # like pairs: each distinct pair counted twice
        ok = r.r > 2.0
        assert abs(np.average(r.g[ok], weights=expected[ok]) - 1.0) < 0.02
        assert np.all(np.abs(r.g[expected > 20] - 1.0) < 5 * sigma[expected > 20])
        assert r.n_pairs == (200 * 199 if like else 200 * 100)
        # running coordination number -> density * sphere volume
        rho = r.n_pairs / r.n_a / vol
        assert r.coordination[-1] == pytest.approx(rho * 4 / 3 * np.pi * r_max**3, rel=0.03)


# ------------------------------------------------------------------------------------------------ lattice
def test_simple_cubic_lattice_shells():
    a, n = 3.0, 5
    grid = np.array(list(itertools.product(range(n), repeat=3)), dtype=float) * a
    pos = grid[None] + 0.01  # one frame
    cell = np.eye(3) * a * n
    res = rdf(pos, cell, np.arange(len(grid)), np.arange(len(grid)), 7.2, 140)
    assert res.n_pairs == 125 * 124
    assert res.coordination_at(2.9) == 0.0
    assert res.coordination_at(3.2) == pytest.approx(6.0)
    assert res.coordination_at(4.1) == pytest.approx(6.0)
    assert res.coordination_at(4.4) == pytest.approx(18.0)
    assert res.coordination_at(5.4) == pytest.approx(26.0)
    assert res.coordination_at(6.2) == pytest.approx(32.0)
    assert res.coordination[-1] == pytest.approx(56.0)
    nonzero = res.r[res.counts > 0]
    shells = a * np.sqrt([1, 2, 3, 4, 5])
    np.testing.assert_allclose(nonzero, shells, atol=res.edges[1] / 2)
    np.testing.assert_array_equal(res.counts[res.counts > 0], 125 * np.array([6, 12, 8, 6, 24]))
    s = shell_analysis(res, smooth=0.0, threshold=1.0)
    assert s.detection == "ok" and s.r_peak == pytest.approx(a, abs=0.05)
    assert s.status == "unconverged" and "block error" in s.reason  # one frame: no blocks
    assert a < s.r_min < a * np.sqrt(2) and s.cn == pytest.approx(6.0)


# ------------------------------------------------------------------------------------------------ triclinic
@pytest.mark.parametrize("chunk", [7, 1 << 16])
def test_triclinic_matches_27_image_brute_force(chunk):
    rng = np.random.default_rng(3)
    n_frames, n_atoms = 3, 50
    pos = rng.uniform(0, 1, (n_frames, n_atoms, 3)) @ TRICLINIC + rng.normal(0, 8, (n_frames, n_atoms, 3))
    r_max = max_cutoff(TRICLINIC)
    a, b = np.arange(0, 30), np.arange(20, 50)  # overlapping selections
    for sa, sb in [(a, a), (a, b), (b, a), (a[:5], b[20:])]:
        res = rdf(pos, TRICLINIC, sa, sb, r_max, 25, chunk_pairs=chunk)
        np.testing.assert_array_equal(res.counts, _brute_counts(pos, TRICLINIC, sa, sb, r_max, 25))
        assert res.n_pairs == sa.size * sb.size - np.intersect1d(sa, sb).size


def test_minimum_image_helpers_skewed_cell():
    cell = np.array([[10.0, 0.0, 0.0], [9.0, 3.0, 0.0], [4.5, 1.0, 2.5]])  # strongly skewed
    w = cell_widths(cell)
    assert w == pytest.approx(
        [
            abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[1], cell[2])),
            abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[2], cell[0])),
            abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[0], cell[1])),
        ]
    )
    rng = np.random.default_rng(1)
    pa, pb = rng.uniform(0, 1, (40, 3)) @ cell, rng.uniform(0, 1, (40, 3)) @ cell
    d = minimum_image_distances(pa, pb, cell, r_max=max_cutoff(cell))
    shifts = np.array(list(itertools.product(range(-4, 5), repeat=3))) @ cell
    exact = np.linalg.norm(pa[:, None, None] - pb[None, :, None] + shifts[None, None], axis=-1).min(axis=-1)
    inside = exact <= max_cutoff(cell)
    assert inside.sum() > 0
    np.testing.assert_allclose(d[inside], exact[inside], rtol=1e-12)
    assert np.all(d >= exact - 1e-12)  # never shorter than the true minimum image
    v = minimum_image(pa - pb, cell)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), np.diag(d), rtol=1e-12)
    with pytest.raises(ValueError, match="exceeds half"):
        minimum_image_distances(pa, pb, cell, r_max=max_cutoff(cell) * 1.01)
    with pytest.raises(ValueError, match="exceeds half"):
        rdf(pa[None], cell, np.arange(40), np.arange(40), max_cutoff(cell) * 1.01, 10)


# ------------------------------------------------------------------------------------------------ API behaviour
def test_pair_rdfs_consistency_blocks_workers_and_methods():
    rng = np.random.default_rng(5)
    n_frames, n_atoms = 12, 120
    cells = np.diag([15.0, 16.0, 17.0])[None] * rng.uniform(0.98, 1.02, (n_frames, 1, 1))  # NPT-like
    pos = rng.uniform(0, 1, (n_frames, n_atoms, 3)) @ cells
    groups = {
        "cat": np.arange(10),
        "an": np.arange(10, 20),
        "O": np.arange(20, 60),
        "H": np.arange(60, 120),
        "all": np.arange(120),
    }
    pairs = [("cat", "O"), ("O", "cat"), ("cat", "H"), ("O", "O"), ("cat", "cat"), ("cat", "all"), ("all", "all")]
    res = pair_rdfs(pos, cells, groups, pairs, 7.0, 70, n_blocks=4)
    for a, b in pairs:
        single = rdf(pos, cells, groups[a], groups[b], 7.0, 70, n_blocks=4)
        np.testing.assert_array_equal(res[(a, b)].counts, single.counts)
        np.testing.assert_allclose(res[(a, b)].g, single.g, rtol=1e-12)
        np.testing.assert_array_equal(res[(a, b)].counts, _brute_counts(pos, cells, groups[a], groups[b], 7.0, 70))
    np.testing.assert_array_equal(res[("cat", "O")].counts, res[("O", "cat")].counts)
    np.testing.assert_allclose(res[("O", "cat")].coordination * 40, res[("cat", "O")].coordination * 10)
    # blocks: equal-size blocks -> per-block coordination averages to the total
    r = res[("O", "O")]
    assert r.g_blocks.shape == (4, 70) and r.g_err.shape == (70,) and np.all(r.g_err >= 0)
    np.testing.assert_allclose(r.coordination_blocks.mean(axis=0), r.coordination, rtol=1e-12)
    # threads, chunk size and kd-tree give identical counts
    for kw in ({"n_workers": 3}, {"chunk_pairs": 5}, {"method": "kdtree"}):
        other = pair_rdfs(pos, cells, groups, pairs, 7.0, 70, n_blocks=4, **kw)
        for p in pairs:
            np.testing.assert_array_equal(other[p].counts, res[p].counts)
            np.testing.assert_allclose(other[p].g_err, res[p].g_err, rtol=1e-10, atol=1e-14)
    # frame selections
    sub = pair_rdfs(pos[2:8], cells[2:8], groups, pairs, 7.0, 70)
    for frames in (slice(2, 8), np.arange(2, 8), np.isin(np.arange(n_frames), np.arange(2, 8))):
        sel = pair_rdfs(pos, cells, groups, pairs, 7.0, 70, frames=frames)
        for p in pairs:
            np.testing.assert_array_equal(sel[p].counts, sub[p].counts)
            np.testing.assert_allclose(sel[p].g, sub[p].g, rtol=1e-12)
    # per-frame vs mean volume normalisation differ slightly under NPT, agree in a fixed cell
    mean = pair_rdfs(pos, cells, groups, [("O", "O")], 7.0, 70, volume_norm="mean")[("O", "O")]
    assert np.nanmax(np.abs(mean.g - r.g)) > 0
    np.testing.assert_allclose(mean.g, r.g, rtol=0.05, atol=0.2)


def test_overlapping_groups_match_brute_force():
    rng = np.random.default_rng(11)
    cell = np.diag([12.0, 13.0, 14.0])
    pos = rng.uniform(0, 12, (2, 40, 3))
    groups = {"x": np.arange(0, 25), "y": np.arange(15, 40), "z": np.array([3, 17, 30])}
    pairs = [("x", "y"), ("y", "x"), ("x", "x"), ("z", "y"), ("x", "z")]
    res = pair_rdfs(pos, cell, groups, pairs, 6.0, 30)
    for a, b in pairs:
        np.testing.assert_array_equal(res[(a, b)].counts, _brute_counts(pos, cell, groups[a], groups[b], 6.0, 30))


def test_input_validation():
    pos = np.zeros((2, 4, 3))
    cell = np.eye(3) * 10
    with pytest.raises(ValueError):
        rdf(pos, cell, [], [1], 4.0, 10)
    with pytest.raises(ValueError):
        rdf(pos, cell, [0, 0], [1], 4.0, 10)
    with pytest.raises(ValueError):
        rdf(pos, cell, [0], [9], 4.0, 10)
    with pytest.raises(ValueError):
        rdf(pos, cell, [0], [1], 4.0, 10, n_blocks=3)
    with pytest.raises(KeyError):
        pair_rdfs(pos, cell, {"a": [0]}, [("a", "b")], 4.0, 10)
    with pytest.raises(ValueError):
        rdf(pos, TRICLINIC, [0], [1], 4.0, 10, method="kdtree")
    single = rdf(pos + np.arange(4)[None, :, None], cell, [0], [0], 4.0, 10)  # one atom: no pairs, no crash
    assert single.n_pairs == 0 and np.all(np.isnan(single.g))


# ------------------------------------------------------------------------------------------------ shells
def _model(r):
    onset = 0.5 * (1 + np.tanh((r - 1.75) / 0.05))
    return onset * (1 + 2.5 * np.exp(-((r - 2.0) ** 2) / (2 * 0.12**2)) - 0.7 * np.exp(-((r - 2.7) ** 2) / 0.08))


def test_first_minimum_noisy_curve():
    r = np.arange(0.025, 8.0, 0.05)
    clean = _model(r)
    fine = np.linspace(2.2, 3.5, 20001)
    true_min = fine[np.argmin(_model(fine))]
    noisy = clean + np.random.default_rng(2).normal(0, 0.05, r.size)
    s = first_minimum(r, noisy)
    assert isinstance(s, ShellAnalysis) and s.detection == "ok", s.detection_reason
    assert s.r_peak == pytest.approx(2.0, abs=0.06)
    assert s.g_peak == pytest.approx(3.5, abs=0.2)
    assert s.r_min == pytest.approx(true_min, abs=0.08)
    assert s.g_min < 1.0
    assert first_peak(r, noisy)[0] == pytest.approx(s.r_peak)
    cn_r = np.linspace(0, 8, r.size + 1)
    s2 = first_minimum(r, noisy, cn_r=cn_r, cn=cn_r**2, cn_blocks=np.stack([cn_r**2 * 0.9, cn_r**2 * 1.1]))
    assert s2.cn == pytest.approx(s.r_min**2, rel=1e-3) and s2.cn_err == pytest.approx(0.1 * s.r_min**2, rel=1e-2)


@pytest.mark.parametrize(
    "g, detection",
    [
        (np.ones(200), "no_peak"),
        (np.zeros(200), "no_peak"),
        (1 + np.random.default_rng(4).normal(0, 0.02, 200), "no_peak"),
        (np.full(200, np.nan), "no_peak"),
        (np.r_[np.zeros(40), 3.0 * np.exp(-np.linspace(0, 5, 160))], "no_minimum"),
    ],
    ids=["flat", "zero", "flat-noisy", "nan", "no-minimum"],
)
def test_first_minimum_degenerate_curves_do_not_raise(g, detection):
    r = np.arange(200) * 0.05 + 0.025
    s = first_minimum(r, g)
    assert s.detection == detection and s.detection_reason
    expected = "no first peak" if detection == "no_peak" else "no first minimum"
    assert s.status == "insufficient" and s.reason.startswith(expected)
    assert np.isnan(s.r_min) and np.isnan(s.cn)
    if detection == "no_peak":
        assert np.isnan(s.r_peak) and all(np.isnan(first_peak(r, g)))
    assert first_minimum(r[:2], g[:2]).detection == "no_peak"


def test_insignificant_peak_rejected_with_errors():
    r = np.arange(0.025, 8.0, 0.05)
    g = _model(r)
    assert first_minimum(r, g).detection == "ok"
    assert first_minimum(r, g, g_err=np.full(r.size, 2.0)).detection == "no_peak"


# ------------------------------------------------------------------------------------------------ MDAnalysis
def _universe(pos, dims):
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    u = mda.Universe.empty(pos.shape[1], trajectory=True)
    u.load_new(pos, format=MemoryReader, dimensions=dims)
    return u


def test_agrees_with_mdanalysis_interrdf():
    import MDAnalysis  # noqa: F401
    from MDAnalysis.analysis.rdf import InterRDF

    rng = np.random.default_rng(7)
    box = np.array([16.0, 16.0, 32.0])  # powers of two and a 2^-10 Å grid: float32 arithmetic in MDA is exact
    pos = (np.round(rng.uniform(0, 1, (6, 400, 3)) * box * 1024) / 1024 % box).astype(np.float32)
    u = _universe(pos, np.r_[box, 90.0, 90.0, 90.0])
    groups = {"A": np.arange(0, 150), "B": np.arange(150, 400)}
    for r_max, n_bins in [(7.9, 79), (8.0, 160)]:
        ours = pair_rdfs(pos, np.diag(box), groups, [("A", "A"), ("A", "B"), ("B", "B")], r_max, n_bins)
        for a, b in ours:
            kw = {"exclusion_block": (1, 1)} if a == b else {}
            ref = InterRDF(u.atoms[groups[a]], u.atoms[groups[b]], nbins=n_bins, range=(0, r_max), **kw).run()
            np.testing.assert_allclose(ours[(a, b)].g, ref.results.rdf, rtol=0, atol=1e-6)
            np.testing.assert_array_equal(ours[(a, b)].counts, ref.results.count)
            np.testing.assert_allclose(ours[(a, b)].edges, ref.results.edges, rtol=1e-15)
            np.testing.assert_allclose(ours[(a, b)].r, ref.results.bins, rtol=1e-15)


def test_agrees_with_mdanalysis_mean_volume_npt():
    import MDAnalysis  # noqa: F401
    from MDAnalysis.analysis.rdf import InterRDF

    rng = np.random.default_rng(8)
    boxes = np.array([[16.0, 16.0, 16.0], [32.0, 16.0, 16.0], [16.0, 32.0, 32.0]])
    frac = np.round(rng.uniform(0, 1, (3, 300, 3)) * 1024) / 1024 % 1.0
    pos = (frac * boxes[:, None, :]).astype(np.float32)
    u = _universe(pos, np.c_[boxes, np.full((3, 3), 90.0)])
    sel, cells = np.arange(300), boxes[:, :, None] * np.eye(3)
    ref = InterRDF(u.atoms, u.atoms, nbins=60, range=(0, 7.7), exclusion_block=(1, 1)).run()
    mean = rdf(pos, cells, sel, sel, 7.7, 60, volume_norm="mean")
    np.testing.assert_allclose(mean.g, ref.results.rdf, rtol=0, atol=1e-6)
    per_frame = rdf(pos, cells, sel, sel, 7.7, 60)
    assert np.max(np.abs(per_frame.g - mean.g)) > 1e-3  # per-frame volume differs when V fluctuates
