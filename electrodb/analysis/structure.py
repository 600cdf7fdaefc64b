"""Radial distribution functions, running coordination numbers and first-shell analysis.

Pure numpy/scipy; no I/O.  Lengths in Å; ``positions`` ``(n_frames, n_atoms, 3)``; ``cells`` ``(n_frames, 3, 3)``
or ``(3, 3)`` with the lattice vectors as **rows** (ASE); selections are integer index arrays.

Normalisation
-------------
For selections *a* and *b* the partial radial distribution function is

.. math::

    g_{ab}(r_k) = \\frac{V}{N_a N_b'} \\frac{\\langle n_{ab}(k) \\rangle}{\\tfrac{4}{3}\\pi (r_{k+1}^3 - r_k^3)},

where :math:`n_{ab}(k)` counts the **ordered** pairs ``(i, j)`` with ``i`` in *a*, ``j`` in *b*, ``i != j`` and
:math:`r_k \\le |\\mathbf r_{ij}| < r_{k+1}` (minimum image), and :math:`N_a N_b' = N_a N_b - |a \\cap b|` is the
number of such distinct ordered pairs.  For a like pair (``a == b``) this is :math:`N_a (N_a - 1)`: each of the
:math:`N_a (N_a - 1)/2` distinct pairs counts twice and self-pairs are excluded.  This is what MDAnalysis
``InterRDF(g, g, exclusion_block=(1, 1), norm='rdf')`` computes (and ``InterRDF`` without exclusions for disjoint
groups).  ``volume_norm='frame'`` (default) applies :math:`V` frame by frame (exact under NPT); ``'mean'`` uses the
mean volume like ``InterRDF``; both agree for a fixed cell.

This is the one definition of the g(r) normalisation in ElectroDB: the reference density of partners is
:math:`(N_b - \\delta_{ab})/V`, so an ideal gas gives :math:`g \\equiv 1` for like and unlike pairs, and
:mod:`electrodb.analysis.kirkwood_buff` (every Kirkwood–Buff estimator and its finite-size corrections) takes its
input in exactly this convention.

The running coordination number :math:`n_{ab}(r) = 4\\pi\\rho_b'\\int_0^r g_{ab}(s) s^2 ds` is evaluated from the pair
counts as the mean number of *b* atoms within ``r`` of an *a* atom, ``cumsum(counts) / (n_frames N_a)``.

Periodic images
---------------
Pair vectors are reduced by rounding fractional coordinates (``s - rint(s)``).  For any, also strongly skewed,
triclinic cell this yields the true minimum image of every pair whose minimum-image distance is at most
``w_min / 2``, where ``w_min`` is the smallest perpendicular width of the cell (a displacement ``d`` has fractional
components ``|s_k| <= |d| / w_k``).  Beyond that distances may be over-estimated and several images of one atom
may lie within the cutoff, so every routine raises ``ValueError`` if ``r_max > w_min / 2`` (:func:`max_cutoff`).

The pair counting of one frame (which class pairs to histogram, the dense and KD-tree kernels) is
:mod:`electrodb.analysis.rdf_kernel`; this module normalises the counts, splits them into time blocks and holds
the public API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from electrodb.analysis.periodic import FloatArray, as_cells, check_cutoff, is_orthorhombic
from electrodb.analysis.rdf_kernel import FrameKernel, IntArray, make_pair_plan
from electrodb.analysis.statistics import block_standard_error

__all__ = ["RDFResult", "block_coordination", "pair_rdfs", "rdf", "regroup_blocks"]

FrameSelection = slice | Sequence[int] | NDArray[np.integer] | None

_DEFAULT_CHUNK = 1 << 16  # pair distances processed at once (~0.5 MiB per float64 buffer, 7 buffers)
_KDTREE_MAX_FILL = 0.03  # 'auto': cKDTree for like class pairs when (4/3 pi r_max^3) / V is below this
_KDTREE_MIN_ATOMS = 1000  # ... and the class has at least this many atoms (orthorhombic cells only)


# --------------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------------
@dataclass
class RDFResult:
    """Partial radial distribution function between selections *a* (centres) and *b*.

    Attributes
    ----------
    r : numpy.ndarray, shape (n_bins,)
        Bin centres, Å.
    edges : numpy.ndarray, shape (n_bins + 1,)
        Bin edges ``linspace(0, r_max, n_bins + 1)``, Å.
    g : numpy.ndarray, shape (n_bins,)
        :math:`g_{ab}(r)`, normalised as in the module docstring.
    counts : numpy.ndarray, shape (n_bins,)
        Ordered-pair counts (``i in a, j in b, i != j``) per bin summed over frames; like pairs count each distinct
        pair twice (same as MDAnalysis ``InterRDF.results.count``).
    coordination : numpy.ndarray, shape (n_bins,)
        Running coordination number at the upper bin edges ``edges[1:]``: mean number of *b* within ``r`` of an *a*.
    n_frames, n_a, n_b, n_pairs : int
        Frames used, selection sizes and distinct ordered pairs per frame ``N_a N_b - |a ∩ b|``.
    mean_volume : float
        Mean cell volume, Å^3.
    volume_norm : str
        ``'frame'`` or ``'mean'``.
    n_blocks : int
        Contiguous time blocks used for the uncertainties.
    g_blocks, coordination_blocks : numpy.ndarray or None, shape (n_blocks, n_bins)
        Per-block ``g`` and running coordination number (None if ``n_blocks < 2``).
    g_err, coordination_err : numpy.ndarray or None, shape (n_bins,)
        Standard error of the mean over blocks, ``std(blocks, ddof=1) / sqrt(n_blocks)`` (None if ``n_blocks < 2``);
        meaningful when blocks are longer than the correlation time.
    block_frames : numpy.ndarray or None, shape (n_blocks,)
        Frames in each block (None if ``n_blocks < 2``); ``block_start`` the index (within the frames used) of
        each block's first frame.  :func:`regroup_blocks` merges blocks with them.
    """

    r: FloatArray
    edges: FloatArray
    g: FloatArray
    counts: FloatArray
    coordination: FloatArray
    n_frames: int
    n_a: int
    n_b: int
    n_pairs: int
    mean_volume: float
    volume_norm: str = "frame"
    n_blocks: int = 1
    g_blocks: FloatArray | None = None
    g_err: FloatArray | None = None
    coordination_blocks: FloatArray | None = None
    coordination_err: FloatArray | None = None
    block_frames: NDArray[np.int64] | None = None
    block_start: NDArray[np.int64] | None = None

    @property
    def density_b(self) -> float:
        """Partner density seen by an *a* atom, ``n_pairs / (n_a <V>)``, Å^-3."""
        return self.n_pairs / self.n_a / self.mean_volume

    def coordination_at(self, r: float) -> float:
        """Running coordination number at ``r`` (Å), linearly interpolated between bin edges."""
        return float(np.interp(r, self.edges, np.concatenate([[0.0], self.coordination])))


# --------------------------------------------------------------------------------------------------------------
# Public RDF API
# --------------------------------------------------------------------------------------------------------------
def _frame_indices(n_frames: int, frames: FrameSelection) -> IntArray:
    if frames is None:
        return np.arange(n_frames)
    if isinstance(frames, slice):
        return np.arange(n_frames)[frames]
    idx = np.asarray(frames)
    if idx.dtype == bool:
        if idx.shape != (n_frames,):
            raise ValueError("boolean frame mask must have length n_frames")
        return np.flatnonzero(idx)
    idx = idx.astype(np.intp).ravel()
    if idx.size and (idx.min() < -n_frames or idx.max() >= n_frames):
        raise ValueError("frame index out of range")
    return np.where(idx < 0, idx + n_frames, idx)


def _as_selection(name: str, sel: ArrayLike, n_atoms: int) -> IntArray:
    idx = np.asarray(sel)
    idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.intp).ravel()
    if idx.size == 0:
        raise ValueError(f"selection {name!r} is empty")
    if idx.min() < 0 or idx.max() >= n_atoms:
        raise ValueError(f"selection {name!r} has indices outside [0, {n_atoms})")
    if np.unique(idx).size != idx.size:
        raise ValueError(f"selection {name!r} contains duplicate indices")
    return idx


def _normalise(
    counts: NDArray[np.int64],
    wcounts: FloatArray,
    n_frames: float,
    volume: float,
    n_pairs: int,
    shell: FloatArray,
    volume_norm: str,
) -> FloatArray:
    """``g_k = <V n_k> / (n_frames n_pairs shell_k)``, V per frame (``wcounts``) or the mean ``volume``."""
    num = wcounts if volume_norm == "frame" else counts.astype(np.float64) * volume
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / (float(n_frames) * n_pairs * shell)


def pair_rdfs(
    positions: ArrayLike,
    cells: ArrayLike,
    groups: Mapping[str, ArrayLike],
    pairs: Sequence[tuple[str, str]],
    r_max: float,
    n_bins: int,
    n_blocks: int = 1,
    frames: FrameSelection = None,
    *,
    volume_norm: Literal["frame", "mean"] = "frame",
    n_workers: int = 1,
    chunk_pairs: int = _DEFAULT_CHUNK,
    method: Literal["auto", "dense", "kdtree"] = "auto",
) -> dict[tuple[str, str], RDFResult]:
    """Several partial RDFs in one pass over the frames.

    Atoms are partitioned into classes of identical group membership; the distances of every needed class pair are
    computed once per frame and shared by all requested pairs (``(a, b)`` and ``(b, a)`` cost one; overlapping groups
    are handled exactly).  Normalisation: see the module docstring and :func:`rdf`.

    Parameters
    ----------
    positions : array_like, shape (n_frames, n_atoms, 3)
        Cartesian positions, Å (wrapped or unwrapped, float32 or float64).  Frames are read one at a time, so a
        memory map works.
    cells : array_like, shape (n_frames, 3, 3) or (3, 3)
        Lattice vectors as rows, Å; orthorhombic box lengths ``(3,)`` are accepted.
    groups : mapping of str to int array
        Named selections, e.g. ``{'cation': idx, 'anion': idx, 'O_w': idx, 'H_w': idx}``.
    pairs : sequence of (str, str)
        Requested ``(a, b)``; *a* is the centre (matters for the coordination number only).
    r_max : float
        Histogram range ``[0, r_max]``, Å; at most :func:`max_cutoff` of every cell.
    n_bins : int
        Number of bins, edges ``linspace(0, r_max, n_bins + 1)``.
    n_blocks : int, default 1
        Contiguous time blocks for ``g_err`` / ``coordination_err``.
    frames : slice, int array or bool mask, optional
        Frames to use (default all).
    volume_norm : {'frame', 'mean'}
        Cell volume per frame (default, exact under NPT) or the mean volume (MDAnalysis ``InterRDF``).
    n_workers : int, default 1
        Threads working on disjoint frame ranges (numpy and BLAS release the GIL).
    chunk_pairs : int
        Pair distances held at once; memory is ``~7 * 8 * chunk_pairs`` bytes plus ``O(n_atoms)``.
    method : {'auto', 'dense', 'kdtree'}
        ``'dense'``: chunked all-pairs minimum image (any cell).  ``'kdtree'``: ``scipy.spatial.cKDTree`` with
        periodic ``boxsize`` (orthorhombic cells only; pays off for large dilute boxes).  ``'auto'`` uses the tree
        for like class pairs of >= 1000 atoms when ``4/3 π r_max^3 / V < 0.03`` and all cells are orthorhombic.

    Returns
    -------
    dict
        ``{(a, b): RDFResult}`` for every requested pair.

    Notes
    -----
    Bins are ``[r_k, r_{k+1})`` with the last bin closed, like ``numpy.histogram``; distances within rounding error
    of an edge may land in either neighbouring bin.
    """
    pos = positions if isinstance(positions, np.ndarray) else np.asarray(positions)
    if pos.ndim != 3 or pos.shape[2] != 3:
        raise ValueError(f"positions must have shape (n_frames, n_atoms, 3); got {pos.shape}")
    n_frames_all, n_atoms = pos.shape[:2]
    r_max, n_bins, n_blocks = float(r_max), int(n_bins), int(n_blocks)
    if not r_max > 0 or n_bins < 1:
        raise ValueError("need r_max > 0 and n_bins >= 1")
    if volume_norm not in ("frame", "mean") or method not in ("auto", "dense", "kdtree"):
        raise ValueError("volume_norm must be 'frame'/'mean' and method 'auto'/'dense'/'kdtree'")
    pairs = [(str(a), str(b)) for a, b in pairs]
    if not pairs:
        raise ValueError("no pairs requested")
    missing = {n for p in pairs for n in p} - set(groups)
    if missing:
        raise KeyError(f"pairs use unknown groups {sorted(missing)}")
    sels = {n: _as_selection(n, groups[n], n_atoms) for n in dict.fromkeys(x for p in pairs for x in p)}
    fidx = _frame_indices(n_frames_all, frames)
    if not 1 <= n_blocks <= fidx.size:
        raise ValueError(f"need 1 <= n_blocks <= number of frames ({fidx.size})")
    cell_sel = np.array(as_cells(cells, n_frames_all)[fidx], dtype=np.float64)
    check_cutoff(cell_sel, r_max)
    volumes = np.abs(np.linalg.det(cell_sel))

    all_ortho = all(is_orthorhombic(c) for c in cell_sel)
    fill = 4.0 / 3.0 * np.pi * r_max**3 / float(volumes.min())
    if method == "kdtree" and not all_ortho:
        raise ValueError("method='kdtree' needs orthorhombic cells")

    def use_kd(n_rows: int, like: bool) -> bool:
        if method != "auto":
            return method == "kdtree"
        return all_ortho and like and fill < _KDTREE_MAX_FILL and n_rows >= _KDTREE_MIN_ATOMS

    plan = make_pair_plan(sels, pairs, use_kd)
    block_of = np.repeat(np.arange(n_blocks), [len(x) for x in np.array_split(fidx, n_blocks)])
    n_req = len(pairs)

    def work(lo: int, hi: int) -> tuple[NDArray[np.int64], FloatArray]:
        kernel = FrameKernel(plan, r_max, n_bins, chunk_pairs)
        counts = np.zeros((n_blocks, n_req, n_bins), dtype=np.int64)
        wcounts = np.zeros((n_blocks, n_req, n_bins))
        hist = np.zeros((plan.n_blocks, n_bins + 1), dtype=np.int64)
        for i in range(lo, hi):
            cell = cell_sel[i]
            xyz = np.asarray(pos[fidx[i]][plan.union], dtype=np.float64)
            if not np.isfinite(xyz).all():
                raise ValueError(f"non-finite positions in frame {fidx[i]}")
            frac = xyz @ np.linalg.inv(cell)
            frac -= np.floor(frac)
            hist[:] = 0
            kernel.histograms(frac, cell, hist)
            hist[:, n_bins - 1] += hist[:, n_bins]  # d == r_max belongs to the closed last bin
            c = plan.mult @ hist[:, :n_bins]
            counts[block_of[i]] += c
            wcounts[block_of[i]] += c * volumes[i]
        return counts, wcounts

    n_workers = max(1, min(int(n_workers), fidx.size))
    if n_workers == 1:
        counts, wcounts = work(0, fidx.size)
    else:
        cuts = np.linspace(0, fidx.size, n_workers + 1).astype(int)
        with ThreadPoolExecutor(n_workers) as ex:
            parts = list(ex.map(work, cuts[:-1], cuts[1:]))
        counts = sum(p[0] for p in parts)
        wcounts = sum(p[1] for p in parts)

    edges = np.linspace(0.0, r_max, n_bins + 1)
    shell = 4.0 / 3.0 * np.pi * np.diff(edges**3)
    block_nf = np.bincount(block_of, minlength=n_blocks).astype(np.float64)
    block_vol = np.bincount(block_of, weights=volumes, minlength=n_blocks) / block_nf
    results: dict[tuple[str, str], RDFResult] = {}
    for p, (a, b) in enumerate(pairs):
        n_a, n_b = sels[a].size, sels[b].size
        n_pairs = n_a * n_b - np.intersect1d(sels[a], sels[b]).size
        tot = counts[:, p].sum(axis=0)
        res = RDFResult(
            r=0.5 * (edges[1:] + edges[:-1]),
            edges=edges,
            g=_normalise(tot, wcounts[:, p].sum(axis=0), fidx.size, volumes.mean(), n_pairs, shell, volume_norm),
            counts=tot.astype(np.float64),
            coordination=np.cumsum(tot) / (fidx.size * n_a),
            n_frames=int(fidx.size),
            n_a=n_a,
            n_b=n_b,
            n_pairs=int(n_pairs),
            mean_volume=float(volumes.mean()),
            volume_norm=volume_norm,
            n_blocks=n_blocks,
        )
        if n_blocks >= 2:
            res.g_blocks = np.stack(
                [
                    _normalise(counts[k, p], wcounts[k, p], block_nf[k], block_vol[k], n_pairs, shell, volume_norm)
                    for k in range(n_blocks)
                ]
            )
            res.coordination_blocks = np.cumsum(counts[:, p], axis=1) / (block_nf[:, None] * n_a)
            res.g_err = block_standard_error(res.g_blocks)
            res.coordination_err = block_standard_error(res.coordination_blocks)
            res.block_frames = block_nf.astype(np.int64)
            res.block_start = np.concatenate([[0], np.cumsum(res.block_frames)[:-1]])
        results[(a, b)] = res
    return results


def rdf(
    positions: ArrayLike,
    cells: ArrayLike,
    sel_a: ArrayLike,
    sel_b: ArrayLike,
    r_max: float,
    n_bins: int,
    frames: FrameSelection = None,
    *,
    n_blocks: int = 1,
    volume_norm: Literal["frame", "mean"] = "frame",
    n_workers: int = 1,
    chunk_pairs: int = _DEFAULT_CHUNK,
    method: Literal["auto", "dense", "kdtree"] = "auto",
) -> RDFResult:
    """Partial radial distribution function :math:`g_{ab}(r)` between two index selections.

    .. math::

        g_{ab}(r_k) = \\frac{V}{N_a N_b'} \\frac{\\langle n_{ab}(k)\\rangle}{\\tfrac43\\pi(r_{k+1}^3 - r_k^3)},
        \\qquad N_a N_b' = N_a N_b - |a \\cap b|,

    with :math:`n_{ab}(k)` the number of ordered pairs ``(i in a, j in b, i != j)`` with ``r_k <= d_ij < r_{k+1}``.
    Identical selections give the like-pair RDF (self-pairs excluded, :math:`N_a(N_a-1)` ordered pairs), matching
    MDAnalysis ``InterRDF(..., nbins=n_bins, range=(0, r_max), norm='rdf')`` (with ``exclusion_block=(1, 1)`` for
    identical groups).

    Parameters
    ----------
    positions : array_like, shape (n_frames, n_atoms, 3)
        Cartesian positions, Å.
    cells : array_like, shape (n_frames, 3, 3) or (3, 3)
        Lattice vectors as rows, Å (orthorhombic or triclinic; NPT allowed).
    sel_a, sel_b : int array or bool mask
        Centre (*a*) and partner (*b*) atoms; may be identical or overlap.
    r_max : float
        Upper end of the histogram, Å (``<= max_cutoff(cells)``).
    n_bins : int
        Number of bins, edges ``linspace(0, r_max, n_bins + 1)``.
    frames : slice, int array or bool mask, optional
        Frames to use (default all).
    n_blocks : int, default 1
        Contiguous time blocks for ``g_err`` and ``coordination_err``.
    volume_norm, n_workers, chunk_pairs, method
        See :func:`pair_rdfs`.

    Returns
    -------
    RDFResult
    """
    opts = {"volume_norm": volume_norm, "n_workers": n_workers, "chunk_pairs": chunk_pairs, "method": method}
    groups = {"a": sel_a, "b": sel_b}
    return pair_rdfs(positions, cells, groups, [("a", "b")], r_max, n_bins, n_blocks, frames, **opts)[("a", "b")]


def regroup_blocks(result: RDFResult, n_blocks: int, start: int = 0) -> RDFResult:
    """The RDF of blocks ``start:`` of ``result``, regrouped into ``n_blocks`` contiguous blocks.

    A long run is first histogrammed in many short blocks (a time series of g(r)); this gives the RDF, the running
    coordination number and their block errors over the frames left after an equilibration cut of ``start``
    blocks, without a second pass over the frames.  With ``volume_norm='frame'`` (the default of :func:`pair_rdfs`)
    g and n of merged blocks are the frame-weighted means of the block values, exactly what :func:`pair_rdfs` on
    those frames returns; with ``'mean'`` they agree to the spread of the cell volume.

    Parameters
    ----------
    result : RDFResult
        With time blocks (``block_frames`` set, at least 2 blocks).
    n_blocks : int
        Blocks of the returned result (at most the number of blocks left; 1 gives no block errors).
    start : int
        First block kept (blocks before it are dropped, e.g. as equilibration).

    Returns
    -------
    RDFResult
        ``n_frames`` is the number of frames kept; ``counts`` the ordered-pair counts over them.
    """
    if result.g_blocks is None or result.coordination_blocks is None or result.block_frames is None:
        raise ValueError("regroup_blocks needs an RDFResult with time blocks (n_blocks >= 2)")
    nf = result.block_frames[start:].astype(np.float64)
    if nf.size == 0:
        raise ValueError(f"start = {start} leaves no block of {result.n_blocks}")
    n_blocks = int(min(max(n_blocks, 1), nf.size))
    groups = np.array_split(np.arange(nf.size), n_blocks)
    g_in = result.g_blocks[start:]
    c_in = result.coordination_blocks[start:]

    def merge(rows: FloatArray, idx: IntArray) -> FloatArray:
        return np.asarray((rows[idx] * nf[idx, None]).sum(axis=0) / nf[idx].sum())

    g_blocks = np.stack([merge(g_in, ix) for ix in groups])
    c_blocks = np.stack([merge(c_in, ix) for ix in groups])
    nf_out = np.array([nf[ix].sum() for ix in groups])
    g = (g_blocks * nf_out[:, None]).sum(axis=0) / nf_out.sum()
    coordination = (c_blocks * nf_out[:, None]).sum(axis=0) / nf_out.sum()
    n_frames = int(nf.sum())
    counts = np.diff(np.concatenate([[0.0], coordination])) * n_frames * result.n_a
    out = RDFResult(
        r=result.r,
        edges=result.edges,
        g=g,
        counts=counts,
        coordination=coordination,
        n_frames=n_frames,
        n_a=result.n_a,
        n_b=result.n_b,
        n_pairs=result.n_pairs,
        mean_volume=result.mean_volume,
        volume_norm=result.volume_norm,
        n_blocks=n_blocks,
    )
    if n_blocks >= 2:
        out.g_blocks, out.coordination_blocks = g_blocks, c_blocks
        out.g_err = block_standard_error(g_blocks)
        out.coordination_err = block_standard_error(c_blocks)
        out.block_frames = nf_out.astype(np.int64)
        out.block_start = np.concatenate([[0], np.cumsum(out.block_frames)[:-1]])
    return out


def block_coordination(result: RDFResult, r: float) -> FloatArray:
    """Running coordination number at ``r`` (Å) in every time block of ``result``, shape ``(n_blocks,)``.

    The time series behind a coordination number: the mean number of *b* within ``r`` of an *a* in each block,
    linearly interpolated between bin edges like :meth:`RDFResult.coordination_at`.
    """
    if result.coordination_blocks is None:
        raise ValueError("block_coordination needs an RDFResult with time blocks (n_blocks >= 2)")
    padded = np.hstack([np.zeros((result.coordination_blocks.shape[0], 1)), result.coordination_blocks])
    i = int(np.clip(np.searchsorted(result.edges, r, side="right") - 1, 0, result.edges.size - 2))
    w = (float(r) - result.edges[i]) / (result.edges[i + 1] - result.edges[i])
    w = float(np.clip(w, 0.0, 1.0))
    return np.asarray((1.0 - w) * padded[:, i] + w * padded[:, i + 1])
