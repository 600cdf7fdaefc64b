"""The per-frame work of an RDF: which atom pairs to histogram (the pair plan) and the distance-histogram kernel.

Pure numpy/scipy; no I/O.  Used by :func:`electrodb.analysis.structure.pair_rdfs`, which owns the normalisation,
time blocks and the public RDF API; this module only counts pair distances.  Lengths in Å; cells ``(3, 3)`` with
the lattice vectors as rows; fractional coordinates in [0, 1).

Pair plan
---------
The atoms of all requested groups are partitioned into *classes* of identical group membership (an atom in
``cation`` only, an atom in both ``O_w`` and ``water``, ...).  Every requested pair ``(a, b)`` is a sum over class
pairs, so the distances of each needed class pair — a *block* of the plan (a class-pair histogram, not a time
block) — are histogrammed once per frame and shared by every requested pair that contains it: ``(a, b)`` and
``(b, a)`` cost one, overlapping groups are handled exactly.  :attr:`PairPlan.mult` maps the block histograms to
the ordered-pair counts of each requested pair (2 for a like class pair, whose unordered distances are counted
once).

Kernel
------
Per chunk of rows the fractional differences :math:`s_i - s_j` of all three axes come from one batched rank-2
matrix product ``[s_i, 1] @ [1, -s_j]`` (exactly rounded), are reduced to the minimum image with ``rint``
(exact up to half the smallest perpendicular cell width, which the caller enforces) and squared; only distances
``<= r_max`` are square-rooted and counted with ``np.bincount``.  Like class pairs keep only ``j > i``.  Large,
dilute like classes in orthorhombic cells can use ``scipy.spatial.cKDTree`` with periodic ``boxsize`` instead.
Histograms have ``n_bins + 1`` columns: bin ``k`` holds ``k Δr <= d < (k + 1) Δr`` with ``Δr = r_max / n_bins``,
the last column ``d == r_max`` (folded into the closed last bin by the caller).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from electrodb.analysis.periodic import FloatArray, is_orthorhombic

__all__ = ["FrameKernel", "IntArray", "PairPlan", "PairTask", "make_pair_plan"]

IntArray = NDArray[np.intp]


@dataclass
class PairTask:
    """One rectangular piece of dense work: a row class against a contiguous run of column classes.

    Indices are positions in :attr:`PairPlan.union` (not atom indices).
    """

    rows: tuple[int, int]  # slice of the union order (one class)
    cols: tuple[int, int]  # contiguous run of classes; starts at rows[0] for a diagonal task
    diag: bool
    segments: list[tuple[int, int, int]]  # (col_start, col_end, block id) in union order


@dataclass
class PairPlan:
    """Which class-pair histograms ("blocks") one frame needs, and how they add up to the requested pairs.

    Attributes
    ----------
    union : (n_union,) int array
        Atom indices of all requested groups, sorted by class.
    tasks : list of PairTask
        Blocks histogrammed by the dense kernel.
    kd_blocks : list of ((row_start, row_end), (col_start, col_end), block id)
        Blocks histogrammed with ``cKDTree``.
    mult : (n_pairs, n_blocks) int array
        Ordered-pair multiplicity of each block histogram in each requested pair.
    n_blocks : int
        Number of block histograms.
    """

    union: IntArray  # atom indices, sorted by class
    tasks: list[PairTask]  # dense blocks
    kd_blocks: list[tuple[tuple[int, int], tuple[int, int], int]]  # (rows, cols, block id) done with cKDTree
    mult: NDArray[np.int64]  # (n_pairs, n_blocks): ordered-pair multiplicity of each block histogram
    n_blocks: int


def make_pair_plan(
    groups: Mapping[str, IntArray], pairs: Sequence[tuple[str, str]], use_kd: Callable[[int, bool], bool]
) -> PairPlan:
    """Plan the distance histograms of ``pairs`` over the classes of identical membership in ``groups``.

    Parameters
    ----------
    groups : mapping of str to int array
        Named, validated atom selections (unique indices).
    pairs : sequence of (str, str)
        Requested ``(a, b)`` pairs of group names.
    use_kd : callable
        ``use_kd(n_rows, like)``: whether the block of a row class with ``n_rows`` atoms (``like``: against
        itself) is done with ``cKDTree`` instead of the dense kernel.

    Returns
    -------
    PairPlan
    """
    names = list(dict.fromkeys(n for p in pairs for n in p))
    atoms = np.unique(np.concatenate([groups[n] for n in names]))
    member = np.zeros((atoms.size, len(names)), dtype=bool)
    for k, n in enumerate(names):
        member[np.searchsorted(atoms, groups[n]), k] = True
    sig, cls = np.unique(member, axis=0, return_inverse=True)  # class signatures (n_classes, n_names)
    cls = cls.ravel()
    union = atoms[np.argsort(cls, kind="stable")]
    bounds = [int(x) for x in np.concatenate([[0], np.cumsum(np.bincount(cls, minlength=len(sig)))])]
    pidx = [(names.index(a), names.index(b)) for a, b in pairs]
    span = [(bounds[c], bounds[c + 1]) for c in range(len(sig))]

    tasks: list[PairTask] = []
    kd_blocks: list[tuple[tuple[int, int], tuple[int, int], int]] = []
    mults: list[list[int]] = []
    for c1 in range(len(sig)):
        dense: list[tuple[int, int]] = []  # (class, block id)
        for c2 in range(c1, len(sig)):
            if c1 == c2:
                m = [2 * int(sig[c1, a] and sig[c1, b]) for a, b in pidx]
            else:
                m = [int(sig[c1, a] and sig[c2, b]) + int(sig[c2, a] and sig[c1, b]) for a, b in pidx]
            if not any(m):
                continue
            if use_kd(span[c1][1] - span[c1][0], c1 == c2):
                kd_blocks.append((span[c1], span[c2], len(mults)))
            else:
                dense.append((c2, len(mults)))
            mults.append(m)
        run: list[tuple[int, int]] = []  # contiguous runs of column classes -> one rectangular task each
        for item in [*dense, (-1, -1)]:
            if run and item[0] != run[-1][0] + 1:
                first, last = run[0][0], run[-1][0]
                segs = [(*span[c], bid) for c, bid in run]
                tasks.append(PairTask(span[c1], (span[first][0], span[last][1]), first == c1, segs))
                run = []
            if item[0] >= 0:
                run.append(item)
    mult = np.array(mults, dtype=np.int64).T.reshape(len(pairs), len(mults))
    return PairPlan(union=union, tasks=tasks, kd_blocks=kd_blocks, mult=mult, n_blocks=len(mults))


class FrameKernel:
    """Histograms of unordered pair distances for every block of a plan, one frame at a time.

    Per chunk of rows the fractional differences ``s_i - s_j`` of all three axes come from one batched rank-2
    matrix product ``[s_i, 1] @ [1, -s_j]`` (exactly rounded, much faster than broadcasting), are reduced with
    ``rint`` and squared; only distances ``<= r_max`` are square-rooted and counted with ``np.bincount``.
    """

    def __init__(self, plan: PairPlan, r_max: float, n_bins: int, chunk: int) -> None:
        self.plan, self.r_max, self.n_bins = plan, float(r_max), int(n_bins)
        self.chunk = max(int(chunk), 1)
        n_u = plan.union.size
        cap = self.chunk + n_u  # at least one full row always fits
        self._t, self._u, self._acc = np.empty((3, cap)), np.empty((3, cap)), np.empty(cap)
        self._rows, self._cols = np.ones((3, n_u, 2)), np.ones((3, 2, n_u))
        b = max(min(int(np.sqrt(self.chunk)) + 1, n_u), 1)  # diagonal chunks have h <= sqrt(chunk) rows
        self._pen = np.where(np.arange(b)[None, :] > np.arange(b)[:, None], 0.0, np.inf)

    def _bin(self, dist: FloatArray, scale: float, out: NDArray[np.int64]) -> None:
        """Add ``floor(dist * scale)`` (clipped to ``n_bins``) to the histogram ``out``; ``dist`` is overwritten."""
        if dist.size:
            np.multiply(dist, scale, out=dist)
            k = dist.astype(np.intp)
            np.minimum(k, self.n_bins, out=k)
            out += np.bincount(k, minlength=self.n_bins + 1)

    def histograms(self, frac: FloatArray, cell: FloatArray, out: NDArray[np.int64]) -> None:
        """Add this frame's block histograms (``(n_blocks, n_bins + 1)``; last column: ``d == r_max``) to ``out``.

        ``frac`` holds the fractional coordinates (wrapped to [0, 1)) of the plan's union atoms.
        """
        diag = np.diag(cell)
        ortho = is_orthorhombic(cell)
        if ortho:  # squared distances in units of a_x^2
            ref = diag[0]
            scales = (diag / ref)[:, None]
            cubic = bool(np.all(scales == 1.0))
            thr, fac = (self.r_max / ref) ** 2, ref * self.n_bins / self.r_max
        else:
            thr, fac = self.r_max**2, self.n_bins / self.r_max
        rows, cols = self._rows, self._cols
        rows[:, :, 0] = frac.T
        np.negative(frac.T, out=cols[:, 1, :])
        for task in self.plan.tasks:
            r0, r1 = task.rows
            s = r0
            while s < r1:
                c0 = s if task.diag else task.cols[0]
                h = min(max(self.chunk // (task.cols[1] - c0), 1), r1 - s)
                segs: list[tuple[int, int, int]] = []  # (offset, size, block id): contiguous region per segment
                total = 0
                for g0, g1, bid in task.segments:
                    a = max(g0, c0)
                    size = h * (g1 - a)
                    dst = self._t[:, total : total + size].reshape(3, h, g1 - a)
                    np.matmul(rows[:, s : s + h], cols[:, :, a:g1], out=dst)
                    segs.append((total, size, bid))
                    total += size
                t, u, acc = self._t[:, :total], self._u[:, :total], self._acc[:total]
                np.rint(t, out=u)
                np.subtract(t, u, out=t)
                if ortho:
                    if not cubic:
                        np.multiply(t, scales, out=t)
                    sq = t
                else:
                    sq = u
                    np.matmul(cell.T, t, out=sq)
                np.multiply(sq, sq, out=sq)
                np.add(sq[0], sq[1], out=acc)
                np.add(acc, sq[2], out=acc)
                if task.diag:  # keep only j > i inside the leading (h, h) square
                    lead = acc[: segs[0][1]].reshape(h, -1)[:, :h]
                    np.add(lead, self._pen[:h, :h], out=lead)
                for off, size, bid in segs:
                    view = acc[off : off + size]
                    sel = np.compress(view <= thr, view)
                    self._bin(np.sqrt(sel, out=sel), fac, out[bid])
                s += h
        if self.plan.kd_blocks:
            self._kd_histograms(frac, diag, out)

    def _kd_histograms(self, frac: FloatArray, lengths: FloatArray, out: NDArray[np.int64]) -> None:
        """Blocks of large, dilute systems: ``cKDTree`` with periodic ``boxsize`` (orthorhombic only)."""
        x = frac * lengths
        x[x >= lengths] = 0.0  # rounding of frac * L to L
        trees: dict[tuple[int, int], cKDTree] = {}

        def tree(span: tuple[int, int]) -> cKDTree:
            if span not in trees:
                trees[span] = cKDTree(x[span[0] : span[1]], boxsize=lengths)
            return trees[span]

        fac = self.n_bins / self.r_max
        for rspan, cspan, bid in self.plan.kd_blocks:
            if rspan == cspan:
                p = tree(rspan).query_pairs(self.r_max, output_type="ndarray")
                ds = frac[rspan[0] + p[:, 0]] - frac[rspan[0] + p[:, 1]]
                ds -= np.rint(ds)
                ds *= lengths
                dist = np.sqrt(np.einsum("ij,ij->i", ds, ds))
            else:
                dist = tree(rspan).sparse_distance_matrix(tree(cspan), self.r_max, output_type="ndarray")["v"]
                dist = np.ascontiguousarray(dist)
            self._bin(dist, fac, out[bid])
