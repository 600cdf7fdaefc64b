"""RDF benchmark: electrodb ``pair_rdfs`` vs MDAnalysis ``InterRDF`` (and freud if importable).

A synthetic water-like electrolyte (``n_atoms`` ~ 1,500: waters on a noisy lattice with random orientations plus
cations and anions) is generated in memory for ``n_frames`` frames; the 8 partial RDFs the database builder needs
(cation-O_w, cation-H_w, anion-O_w, anion-H_w, cation-anion, cation-cation, anion-anion, O_w-O_w) are computed by
electrodb in one pass and by MDAnalysis with one ``InterRDF`` per pair (``exclusion_block=(1, 1)`` for like pairs).
Results are compared bin by bin; times, the speed ratio and the peak traced memory of ``pair_rdfs`` are printed.

Usage::

    python benchmarks/analysis_rdf.py [--frames 1000] [--atoms 1500] [--workers 2] [--no-mda]

``run(n_frames, n_atoms) -> dict`` is importable by a combined benchmark.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from electrodb.analysis.structure import pair_rdfs
from electrodb.builders.properties import PAIRS  # the 8 pairs the builder computes


def make_trajectory(
    n_frames: int, n_atoms: int = 1500, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Synthetic water-like electrolyte trajectory.

    Molecule sites (waters and ions) sit on a random subset of a cubic lattice (spacing ~2.9 Å, water density
    0.0334 molecules/Å^3) with Gaussian thermal noise (0.3 Å) in every frame; each water gets a random orientation
    (O-H 0.9572 Å, H-O-H 104.52°).  Positions are wrapped into the box and rounded to a 2^-10 Å grid (float32).

    Returns
    -------
    positions : (n_frames, n_atoms, 3) float32, Å
    cell : (3, 3) float64, Å
    groups : dict with index arrays 'cation', 'anion', 'O_w', 'H_w'
    """
    rng = np.random.default_rng(seed)
    n_ion = max(1, n_atoms // 50)  # per species
    n_w = (n_atoms - 2 * n_ion) // 3
    n_atoms = 2 * n_ion + 3 * n_w
    n_mol = n_w + 2 * n_ion
    box = (n_mol / 0.0334) ** (1 / 3)
    m = int(np.ceil(n_mol ** (1 / 3)))
    sites = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3)
    sites = sites[rng.choice(len(sites), n_mol, replace=False)] * (box / m)
    pos = np.empty((n_frames, n_atoms, 3), dtype=np.float32)
    half = np.deg2rad(104.52) / 2
    for f in range(n_frames):
        centres = sites + rng.normal(0.0, 0.3, sites.shape)
        o = centres[2 * n_ion :]
        u = rng.normal(size=(n_w, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        v = np.cross(u, rng.normal(size=(n_w, 3)))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        h1 = o + 0.9572 * (np.cos(half) * u + np.sin(half) * v)
        h2 = o + 0.9572 * (np.cos(half) * u - np.sin(half) * v)
        frame = np.concatenate([centres[: 2 * n_ion], o, h1, h2])
        frame = np.round(np.mod(frame, box) * 1024) / 1024
        pos[f] = np.where(frame >= box, frame - box, frame)
    idx = np.arange(n_atoms)
    groups = {
        "cation": idx[:n_ion],
        "anion": idx[n_ion : 2 * n_ion],
        "O_w": idx[2 * n_ion : 2 * n_ion + n_w],
        "H_w": idx[2 * n_ion + n_w :],
    }
    return pos, np.eye(3) * box, groups


def _exact_counts(pos, cell, groups, r_max, n_bins):
    """Reference ordered-pair counts with float64 numpy (orthorhombic minimum image + ``np.histogram``)."""
    lengths, edges = np.diag(cell), np.linspace(0.0, r_max, n_bins + 1)
    out = {}
    for a, b in PAIRS:
        cnt = np.zeros(n_bins)
        for frame in pos.astype(np.float64):
            d = frame[groups[a]][:, None] - frame[groups[b]][None]
            d -= lengths * np.rint(d / lengths)
            r = np.sqrt((d * d).sum(-1))
            if a == b:
                r = r[~np.eye(len(r), dtype=bool)]
            cnt += np.histogram(r[r <= r_max], bins=edges)[0]
        out[(a, b)] = cnt
    return out


def _mdanalysis(pos, cell, groups, r_max, n_bins):
    import MDAnalysis as mda
    from MDAnalysis.analysis.rdf import InterRDF
    from MDAnalysis.coordinates.memory import MemoryReader

    u = mda.Universe.empty(pos.shape[1], trajectory=True)
    u.load_new(pos, format=MemoryReader, dimensions=np.r_[np.diag(cell), 90.0, 90.0, 90.0])
    out, times, cpu = {}, {}, 0.0
    for a, b in PAIRS:
        kw = {"exclusion_block": (1, 1)} if a == b else {}
        t0, c0 = time.perf_counter(), time.process_time()
        r = InterRDF(u.atoms[groups[a]], u.atoms[groups[b]], nbins=n_bins, range=(0.0, r_max), **kw).run()
        times[(a, b)] = time.perf_counter() - t0
        cpu += time.process_time() - c0
        out[(a, b)] = (r.results.rdf, r.results.count)
    return out, times, cpu


def _freud(pos, cell, groups, r_max, n_bins):
    import freud  # optional: the benchmark skips it when missing

    freud.parallel.set_num_threads(1)  # compare single-threaded
    box = freud.box.Box.from_matrix(cell.T)
    shift = cell.sum(axis=0) / 2  # freud boxes are centred on the origin
    out = {}
    t0 = time.perf_counter()
    for a, b in PAIRS:
        calc = freud.density.RDF(bins=n_bins, r_max=r_max)
        for frame in pos:
            pts = box.wrap(frame - shift)
            if a == b:
                calc.compute(system=(box, pts[groups[a]]), reset=False)
            else:
                calc.compute(system=(box, pts[groups[b]]), query_points=pts[groups[a]], reset=False)
        out[(a, b)] = np.asarray(calc.rdf)
    return out, time.perf_counter() - t0


def run(
    n_frames: int = 1000,
    n_atoms: int = 1500,
    r_max: float = 10.0,
    n_bins: int = 200,
    n_workers: int = 2,
    compare_mdanalysis: bool = True,
    verbose: bool = True,
) -> dict:
    """Time ``pair_rdfs`` for the 8 builder pairs against MDAnalysis (and freud); return the numbers.

    Returns a dict with wall times ``t_electrodb_s`` (1 thread), ``t_electrodb_threads_s`` (``n_workers``
    threads), ``t_mdanalysis_s``, ``t_freud_s``, the CPU times ``cpu_electrodb_s`` / ``cpu_mdanalysis_s`` (robust on
    a shared machine), ``speedup`` (MDAnalysis / electrodb wall time, 1 thread), ``speedup_cpu``,
    ``speedup_threads``,
    ``max_abs_dg`` and ``rel_count_diff`` (vs MDAnalysis), ``peak_mem_mib`` (tracemalloc peak of one
    ``pair_rdfs`` call, independent of the number of frames) and the sizes.
    """
    say = print if verbose else (lambda *a, **k: None)
    pos, cell, groups = make_trajectory(n_frames, n_atoms)
    res: dict = {"n_frames": n_frames, "n_atoms": int(pos.shape[1]), "r_max": r_max, "n_bins": n_bins}
    say(
        f"system: {pos.shape[1]} atoms ({', '.join(f'{k}={len(v)}' for k, v in groups.items())}), "
        f"box {cell[0, 0]:.2f} Å, {n_frames} frames, r_max {r_max} Å, {n_bins} bins, 8 pairs"
    )

    pair_rdfs(pos[:2], cell, groups, PAIRS, r_max, n_bins)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    ours = pair_rdfs(pos, cell, groups, PAIRS, r_max, n_bins)
    res["t_electrodb_s"], res["cpu_electrodb_s"] = time.perf_counter() - t0, time.process_time() - c0
    say(
        f"electrodb pair_rdfs (1 thread):   {res['t_electrodb_s']:8.2f} s  "
        f"({1e3 * res['t_electrodb_s'] / n_frames:.2f} ms/frame; CPU {res['cpu_electrodb_s']:.2f} s)"
    )
    if n_workers > 1:
        t0 = time.perf_counter()
        threaded = pair_rdfs(pos, cell, groups, PAIRS, r_max, n_bins, n_workers=n_workers)
        res["t_electrodb_threads_s"] = time.perf_counter() - t0
        assert all(np.array_equal(threaded[p].counts, ours[p].counts) for p in PAIRS)
        say(
            f"electrodb pair_rdfs ({n_workers} threads):  {res['t_electrodb_threads_s']:8.2f} s  "
            f"({1e3 * res['t_electrodb_threads_s'] / n_frames:.2f} ms/frame)"
        )

    exact = _exact_counts(pos[:5], cell, groups, r_max, n_bins)
    head = pair_rdfs(pos[:5], cell, groups, PAIRS, r_max, n_bins)
    res["exact_match"] = all(np.array_equal(head[p].counts, exact[p]) for p in PAIRS)
    say(f"first 5 frames identical to a float64 numpy/np.histogram reference: {res['exact_match']}")
    if not res["exact_match"]:
        raise AssertionError("pair_rdfs differs from the float64 reference")

    n_mem = min(n_frames, 20)
    tracemalloc.start()
    pair_rdfs(pos[:n_mem], cell, groups, PAIRS, r_max, n_bins)
    res["peak_mem_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    say(
        f"peak traced memory of pair_rdfs (per frame working set, {n_mem} frames): {res['peak_mem_mib']:.2f} MiB "
        f"(trajectory itself: {pos.nbytes / 2**20:.1f} MiB)"
    )

    if compare_mdanalysis:
        try:
            ref, times, res["cpu_mdanalysis_s"] = _mdanalysis(pos, cell, groups, r_max, n_bins)
        except ImportError:
            say("MDAnalysis not installed: skipped")
        else:
            res["t_mdanalysis_s"] = sum(times.values())
            res["speedup"] = res["t_mdanalysis_s"] / res["t_electrodb_s"]
            res["speedup_cpu"] = res["cpu_mdanalysis_s"] / res["cpu_electrodb_s"]
            say(
                f"MDAnalysis InterRDF x 8 pairs:    {res['t_mdanalysis_s']:8.2f} s  "
                f"({1e3 * res['t_mdanalysis_s'] / n_frames:.2f} ms/frame; CPU {res['cpu_mdanalysis_s']:.2f} s)"
            )
            for p, t in times.items():
                say(f"    {p[0]:>7s}-{p[1]:<7s} {t:7.2f} s")
            say(f"speed-up vs MDAnalysis: {res['speedup']:.1f}x wall, {res['speedup_cpu']:.1f}x CPU time (1 thread)")
            if "t_electrodb_threads_s" in res:
                res["speedup_threads"] = res["t_mdanalysis_s"] / res["t_electrodb_threads_s"]
                say(f"speed-up vs MDAnalysis: {res['speedup_threads']:.1f}x ({n_workers} threads)")
            dg = max(float(np.max(np.abs(ours[p].g - ref[p][0]))) for p in PAIRS)
            dc = sum(float(np.abs(ours[p].counts - ref[p][1]).sum()) for p in PAIRS)
            res["max_abs_dg"] = dg
            res["rel_count_diff"] = dc / sum(float(ref[p][1].sum()) for p in PAIRS)
            say(
                f"agreement: max |g - g_MDA| = {dg:.2e}; pair counts moved between neighbouring bins: "
                f"{res['rel_count_diff']:.1e} of all (MDAnalysis rounds with a float32 inverse box)"
            )
            if res["rel_count_diff"] > 2e-4:
                raise AssertionError("electrodb and MDAnalysis RDFs disagree")
    res["t_freud_s"] = None
    try:
        fr, res["t_freud_s"] = _freud(pos, cell, groups, r_max, n_bins)
        dg = max(float(np.max(np.abs(ours[p].g - fr[p]))) for p in PAIRS)
        say(f"freud density.RDF x 8 pairs:      {res['t_freud_s']:8.2f} s (max |g - g_freud| = {dg:.2e})")
    except ImportError:
        say("freud: not installed, skipped")
    except Exception as exc:  # optional peer; never fail the benchmark on it
        say(f"freud: failed ({exc!r}), skipped")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--atoms", type=int, default=1500)
    ap.add_argument("--r-max", type=float, default=10.0)
    ap.add_argument("--bins", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-mda", action="store_true")
    args = ap.parse_args()
    run(args.frames, args.atoms, args.r_max, args.bins, args.workers, not args.no_mda)


if __name__ == "__main__":
    main()
