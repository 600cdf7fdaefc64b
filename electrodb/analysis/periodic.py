"""Periodic cells and minimum-image distances, shared by every analysis that measures distances.

Two flavours: single-cell dense distances that are exact up to half the smallest perpendicular cell width
(what RDFs need, and they refuse larger ranges), and frame-vectorised vectors/distances that also search the 27
neighbouring images, exact at any distance in reasonably reduced triclinic cells (what shell membership needs).
Cells are lattice vectors as rows, Å.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "as_cells",
    "cell_widths",
    "check_cutoff",
    "frame_chunk",
    "frame_distances",
    "is_orthorhombic",
    "max_cutoff",
    "minimum_image",
    "minimum_image_distances",
    "minimum_image_vectors",
    "smallest_widths",
]

FloatArray = NDArray[np.float64]
_SHIFTS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.float64)  # (27, 3)


def is_orthorhombic(cells: np.ndarray) -> bool:
    """True if every cell of a (3, 3) or (n, 3, 3) array has vanishing off-diagonal elements (to 1e-12)."""
    c = np.asarray(cells, dtype=np.float64)
    off = c - c * np.eye(3)
    return bool(np.all(np.abs(off) <= 1e-12 * np.abs(c).max()))


def as_cells(cells: ArrayLike, n_frames: int | None = None) -> FloatArray:
    """Cells as ``(n_frames, 3, 3)`` (or ``(3, 3)`` if ``n_frames`` is None); also accepts lengths ``(3,)``."""
    c = np.asarray(cells, dtype=np.float64)
    if c.shape == (3,):
        c = np.diag(c)
    if c.shape == (3, 3):
        return c if n_frames is None else np.broadcast_to(c, (n_frames, 3, 3))
    if c.ndim != 3 or c.shape[1:] != (3, 3):
        raise ValueError(f"cells must have shape (3, 3) or (n_frames, 3, 3); got {c.shape}")
    if n_frames is not None and c.shape[0] != n_frames:
        raise ValueError(f"cells has {c.shape[0]} frames but positions has {n_frames}")
    return c


def cell_widths(cells: ArrayLike) -> FloatArray:
    """Perpendicular widths ``w_k = V / |a_i x a_j|`` of cells (rows = lattice vectors, Å); shape ``(..., 3)``."""
    c = np.asarray(cells, dtype=np.float64)
    a, b, cc = c[..., 0, :], c[..., 1, :], c[..., 2, :]
    crosses = np.stack([np.cross(b, cc), np.cross(cc, a), np.cross(a, b)], axis=-2)
    vol = np.abs(np.einsum("...i,...i->...", a, crosses[..., 0, :]))
    if np.any(vol <= 0):
        raise ValueError("degenerate cell (zero volume)")
    return vol[..., None] / np.linalg.norm(crosses, axis=-1)


def smallest_widths(cells: ArrayLike) -> FloatArray:
    """Smallest perpendicular width (Å) of each cell, ``(...,)``; 0 for a degenerate (zero-volume) cell.

    Unlike :func:`cell_widths` it never raises, so validators can report *which* frame is degenerate.
    """
    c = np.asarray(cells, dtype=np.float64)
    a, b, cc = c[..., 0, :], c[..., 1, :], c[..., 2, :]
    crosses = np.stack([np.cross(b, cc), np.cross(cc, a), np.cross(a, b)], axis=-2)
    vol = np.abs(np.einsum("...i,...i->...", a, crosses[..., 0, :]))
    norms = np.linalg.norm(crosses, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        widths = np.where(norms > 0, vol[..., None] / np.where(norms > 0, norms, 1.0), 0.0)
    return np.where(vol > 0, widths.min(axis=-1), 0.0)


def max_cutoff(cells: ArrayLike) -> float:
    """Largest cutoff (Å) for which the minimum-image pair search is exact: ``min(cell_widths) / 2`` over frames."""
    return float(np.min(cell_widths(cells)) / 2.0)


def check_cutoff(cells: FloatArray, r_max: float) -> None:
    limit = max_cutoff(cells)
    if r_max > limit * (1.0 + 1e-12):
        raise ValueError(
            f"r_max={r_max:g} Å exceeds half the smallest perpendicular cell width ({limit:g} Å); the "
            "minimum-image pair search is only exact up to that distance"
        )


def minimum_image(vectors: ArrayLike, cell: ArrayLike) -> FloatArray:
    """Minimum image of difference vectors ``(..., 3)`` (Å) in a (3, 3) cell: ``(s - rint(s)) @ cell``.

    Exact whenever the result is not longer than ``min(cell_widths(cell)) / 2`` (any triclinic cell).
    """
    h = np.asarray(cell, dtype=np.float64)
    s = np.asarray(vectors, dtype=np.float64) @ np.linalg.inv(h)
    s -= np.rint(s)
    return s @ h


def minimum_image_distances(
    pos_a: ArrayLike, pos_b: ArrayLike, cell: ArrayLike, r_max: float | None = None
) -> FloatArray:
    """Dense minimum-image distance matrix ``(n_a, n_b)`` (Å) in one periodic cell.

    Parameters
    ----------
    pos_a, pos_b : array_like, shape (n_a, 3) and (n_b, 3)
        Cartesian positions, Å (wrapped or unwrapped).
    cell : array_like, shape (3, 3)
        Lattice vectors as rows, Å (orthorhombic or triclinic).
    r_max : float, optional
        Largest distance the caller will use; ``ValueError`` if it exceeds ``min(cell_widths(cell)) / 2``, the range
        in which every returned distance ``<= r_max`` is the true minimum-image distance.

    Returns
    -------
    numpy.ndarray, shape (n_a, n_b)
        Distances, Å.  Memory ``O(n_a n_b)``; use :func:`rdf` for histograms of large sets.
    """
    h = as_cells(cell)
    if h.ndim != 2:
        raise ValueError("minimum_image_distances takes a single (3, 3) cell")
    if r_max is not None:
        check_cutoff(h, float(r_max))
    inv = np.linalg.inv(h)
    sa = np.asarray(pos_a, dtype=np.float64).reshape(-1, 3) @ inv
    sb = np.asarray(pos_b, dtype=np.float64).reshape(-1, 3) @ inv
    ds = sa[:, None, :] - sb[None, :, :]
    ds -= np.rint(ds)
    d = ds @ h
    return np.sqrt(np.einsum("ijk,ijk->ij", d, d))


def minimum_image_vectors(dr: np.ndarray, cells: np.ndarray) -> np.ndarray:
    r"""Minimum-image version of difference vectors, orthorhombic or triclinic.

    Orthorhombic cells: :math:`\mathbf d - \mathbf L\,\mathrm{rint}(\mathbf d/\mathbf L)` (exact).  Triclinic
    cells: reduce in fractional coordinates, then test the 27 neighbouring lattice translations and keep the
    shortest vector, which is the exact minimum image for any reasonably reduced (e.g. Niggli/LAMMPS-style)
    cell.

    Parameters
    ----------
    dr : (n_frames, ..., 3) array, Å
        Difference vectors; the leading axis runs over frames.
    cells : (n_frames, 3, 3) or (3, 3) array, Å, lattice vectors as rows.

    Returns
    -------
    ndarray with the shape of ``dr``, Å
    """
    d = np.asarray(dr, dtype=np.float64)
    n_frames = d.shape[0]
    H = as_cells(cells, n_frames)
    extra = (1,) * (d.ndim - 2)
    if is_orthorhombic(H):
        L = np.diagonal(H, axis1=1, axis2=2).reshape((n_frames, *extra, 3))
        return d - L * np.rint(d / L)
    Hinv = np.linalg.inv(H)
    f = np.einsum("f...j,fjk->f...k", d, Hinv)
    f -= np.rint(f)
    v = np.einsum("f...j,fjk->f...k", f, H)
    shifts = np.einsum("sj,fjk->fsk", _SHIFTS, H).reshape((n_frames, *extra, 27, 3))
    cand = v[..., None, :] + shifts  # (F, ..., 27, 3)
    best = np.argmin(np.einsum("...k,...k->...", cand, cand), axis=-1)
    return np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]


def frame_distances(pos_a: np.ndarray, pos_b: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Periodic distances between two atom groups in every frame.

    Parameters
    ----------
    pos_a : (n_frames, n_a, 3) array, Å
    pos_b : (n_frames, n_b, 3) array, Å
    cells : (n_frames, 3, 3) or (3, 3) array, Å

    Returns
    -------
    (n_frames, n_a, n_b) float64 array, Å
    """
    a = np.asarray(pos_a, dtype=np.float64)
    b = np.asarray(pos_b, dtype=np.float64)
    d = minimum_image_vectors(b[:, None, :, :] - a[:, :, None, :], cells)
    return np.sqrt(np.einsum("fabk,fabk->fab", d, d))


def frame_chunk(n_frames: int, n_pairs: int, triclinic: bool, max_bytes: int = 128 * 2**20) -> int:
    per_frame = max(1, n_pairs) * 3 * 8 * (4 + (56 if triclinic else 0))
    return int(min(n_frames, max(1, max_bytes // per_frame)))
