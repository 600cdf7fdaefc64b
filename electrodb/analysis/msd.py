"""Displacements from MD trajectories: unwrapping, centre-of-mass drift, FFT mean-squared displacement.

Pure numpy/scipy, vectorised over atoms (processed in chunks to bound memory).  Positions in Å, shape
``(n_frames, n_atoms, 3)``; cells ``(n_frames, 3, 3)`` or ``(3, 3)`` with lattice vectors as *rows*.  The
diffusion fit on top of these MSDs (window, blocks, verdict) is :mod:`electrodb.analysis.transport`.

Pipeline::

    unwrapped = unwrap_positions(wrapped, cells)           # toroidal-view-preserving (TOR) displacements
    drift_free = remove_com_drift(unwrapped, masses)        # system centre of mass fixed at frame 0
    msd = msd_fft(drift_free[:, li_indices])                # Å², index = lag in frames

References
----------
* V. Calandrini, E. Pellegrini, P. Calligari, K. Hinsen, G. R. Kneller, "nMoldyn – interfacing spectroscopic
  experiments, molecular dynamics simulations and models for time correlation functions",
  Collection SFN 12, 201 (2011) — FFT algorithm for the MSD (also used by MDAnalysis ``EinsteinMSD(fft=True)``
  via ``tidynamics.msd``).
* S. von Bülow, J. T. Bullerjahn, G. Hummer, J. Chem. Phys. 153, 021101 (2020) and J. T. Bullerjahn,
  S. von Bülow, M. Heidari, J. Hénin, G. Hummer, J. Chem. Theory Comput. 19, 3406 (2023) — unwrapping of
  constant-pressure trajectories (the "toroidal-view-preserving", TOR, scheme).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.fft

from electrodb.analysis.periodic import as_cells

__all__ = [
    "com_displacement",
    "msd_fft",
    "remove_com_drift",
    "unwrap_positions",
]

_DEFAULT_MEMORY_BYTES = 256 * 2**20
_MSD_CHUNK_BYTES = 16 * 2**20


def _atom_chunk(n_frames: int, bytes_per_frame_atom: int, max_bytes: int = _DEFAULT_MEMORY_BYTES) -> int:
    return max(1, int(max_bytes // max(1, n_frames * bytes_per_frame_atom)))


# ----------------------------------------------------------------------------------------------- unwrapping
def unwrap_positions(wrapped: np.ndarray, cells: np.ndarray) -> np.ndarray:
    r"""Unwrap periodic coordinates frame to frame with minimum-image displacements (TOR scheme).

    .. math::

        \mathbf u_0 = \mathbf w_0, \qquad
        \mathbf u_{t+1} = \mathbf u_t + \Delta_t - \operatorname{rint}(\Delta_t H_{t+1}^{-1})\,H_{t+1},
        \qquad \Delta_t = \mathbf w_{t+1} - \mathbf w_t ,

    with row vectors and ``H`` the cell matrix (lattice vectors as rows), i.e. each step adds the
    minimum-image displacement evaluated in fractional coordinates of the *new* cell.  This is the
    "toroidal-view-preserving" (TOR) scheme of von Bülow, Bullerjahn & Hummer (JCP 2020; JCTC 2023), which is
    correct also for constant-pressure (NPT) runs: the lattice-based heuristic ``u_t = w_t + n_t H_t`` (image
    counting in the current box, as in older ``gmx trjconv -pbc nojump``) multiplies box fluctuations by the
    image count ``n_t`` and produces a spurious, growing contribution to the MSD for long runs.  Works for
    triclinic cells; the rounding in fractional coordinates is the exact minimum image as long as every
    per-frame displacement is shorter than half the smallest perpendicular width of the cell (a warning is
    issued when a fractional step comes close to 1/2, which means frames are saved too rarely for unwrapping
    to be unambiguous).

    Pitfall (MDAnalysis issue #3179, "MSDs are incorrect for wrapped coordinates"): ``EinsteinMSD`` and other
    MSD codes silently accept wrapped coordinates and return an MSD that plateaus near the box size;
    coordinates must be unwrapped (as here) before any MSD.

    Parameters
    ----------
    wrapped : (n_frames, n_atoms, 3) array, Å
        Coordinates as written by the MD code (any periodic image per frame, typically in the primary cell).
    cells : (n_frames, 3, 3) or (3, 3) array, Å
        Cell matrices with lattice vectors as rows; pass the per-frame cells for NPT.

    Returns
    -------
    (n_frames, n_atoms, 3) float64 array, Å
        Unwrapped coordinates, identical to ``wrapped`` at frame 0.
    """
    w = np.asarray(wrapped)
    if w.ndim != 3 or w.shape[2] != 3:
        raise ValueError(f"wrapped must have shape (n_frames, n_atoms, 3), got {w.shape}")
    n_frames, n_atoms, _ = w.shape
    out = np.empty(w.shape, dtype=np.float64)
    if n_frames == 0:
        return out
    H = as_cells(cells, n_frames)
    Hn = H[1:]
    Hn_inv = np.linalg.inv(Hn)
    max_frac = 0.0
    chunk = _atom_chunk(n_frames, 3 * 8 * 3)
    for a0 in range(0, n_atoms, chunk):
        a1 = min(n_atoms, a0 + chunk)
        x = np.asarray(w[:, a0:a1], dtype=np.float64)
        d = np.diff(x, axis=0)  # (F-1, c, 3)
        f = np.einsum("fnj,fjk->fnk", d, Hn_inv)
        f -= np.rint(f)
        if f.size:
            max_frac = max(max_frac, float(np.abs(f).max()))
        d = np.einsum("fnj,fjk->fnk", f, Hn)
        out[0, a0:a1] = x[0]
        np.cumsum(d, axis=0, out=out[1:, a0:a1])
        out[1:, a0:a1] += x[0]
    if max_frac > 0.4:
        warnings.warn(
            f"unwrap_positions: a per-frame displacement reaches {max_frac:.2f} of a cell vector; "
            "frames may be too far apart for unambiguous minimum-image unwrapping",
            RuntimeWarning,
            stacklevel=2,
        )
    return out


# ------------------------------------------------------------------------------------------- COM drift
def com_displacement(positions: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    r"""Centre-of-mass displacement of the whole system relative to frame 0.

    :math:`\Delta\mathbf R(t) = \sum_i m_i (\mathbf r_i(t) - \mathbf r_i(0)) / \sum_i m_i`.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Å (unwrapped)
    masses : (n_atoms,) array, any unit; ``None`` gives equal weights.

    Returns
    -------
    (n_frames, 3) float64 array, Å
    """
    x = np.asarray(positions)
    n_atoms = x.shape[1]
    m = np.ones(n_atoms) if masses is None else np.asarray(masses, dtype=np.float64)
    if m.shape != (n_atoms,):
        raise ValueError(f"masses must have shape ({n_atoms},), got {m.shape}")
    w = m / m.sum()
    com = np.einsum("fnk,n->fk", x, w, dtype=np.float64)
    return com - com[0]


def remove_com_drift(positions: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """Subtract the system centre-of-mass displacement (relative to frame 0) from every atom in every frame.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Å, unwrapped, containing *all* atoms of the system.
    masses : (n_atoms,) array or None (equal weights).

    Returns
    -------
    (n_frames, n_atoms, 3) float64 array, Å
    """
    return np.asarray(positions, dtype=np.float64) - com_displacement(positions, masses)[:, None, :]


# ---------------------------------------------------------------------------------------------------- MSD
def msd_fft(
    positions: np.ndarray,
    *,
    per_atom: bool = False,
    chunk_size: int | None = None,
    workers: int | None = None,
) -> np.ndarray:
    r"""Mean-squared displacement over all time origins with the FFT algorithm, O(F log F) per atom.

    For each atom, with :math:`F` frames and lag :math:`m`,

    .. math::

        \mathrm{MSD}(m) = \frac{1}{F-m}\sum_{k=0}^{F-m-1} |\mathbf r_{k+m}-\mathbf r_k|^2
                        = S_1(m) - 2 S_2(m),

    :math:`S_2(m) = \frac{1}{F-m}\sum_k \mathbf r_k\cdot\mathbf r_{k+m}` (autocorrelation by zero-padded FFT)
    and :math:`S_1(m) = \frac{1}{F-m}\sum_{k=0}^{F-m-1}(|\mathbf r_k|^2 + |\mathbf r_{k+m}|^2)` by a
    cumulative sum (Calandrini et al., nMoldyn; identical to MDAnalysis ``EinsteinMSD(fft=True)`` /
    ``tidynamics.msd``).  Atoms are processed in chunks (one batched ``rfft`` per chunk) to bound memory;
    for the atom average the power spectra are summed over atoms before a single inverse FFT (linearity).
    Coordinates are centred per atom first (the MSD is shift invariant), which avoids cancellation for large
    unwrapped coordinates.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Å, **unwrapped**.
    per_atom : bool
        Return the MSD of every atom, shape ``(n_frames, n_atoms)``, instead of the atom average.
    chunk_size : int, optional
        Atoms per FFT batch; default keeps the FFT work buffer near 16 MiB (cache friendly; smaller chunks
        measured faster than one large batch).
    workers : int, optional
        Threads for ``scipy.fft`` (default 1).

    Returns
    -------
    (n_frames,) or (n_frames, n_atoms) float64 array, Å², index = lag in frames (``msd[0] == 0``).
    """
    x_all = np.asarray(positions)
    if x_all.ndim != 3 or x_all.shape[2] != 3:
        raise ValueError(f"positions must have shape (n_frames, n_atoms, 3), got {x_all.shape}")
    n_frames, n_atoms, _ = x_all.shape
    if n_frames == 0 or n_atoms == 0:
        raise ValueError("positions must contain at least one frame and one atom")
    nfft = scipy.fft.next_fast_len(2 * n_frames, real=True)
    chunk = chunk_size or _atom_chunk(nfft, 3 * 8 * 3, _MSD_CHUNK_BYTES)  # small chunks stay in cache
    n_orig = (n_frames - np.arange(n_frames)).astype(np.float64)  # F - m
    if per_atom:
        out = np.empty((n_frames, n_atoms))
    else:
        power_sum = np.zeros(nfft // 2 + 1)  # sum over atoms and xyz of |FFT|^2 (linear -> one irfft)
        sq_sum = np.zeros(n_frames)  # sum over atoms and xyz of r_k^2
    buf = np.zeros((min(chunk, n_atoms), 3, nfft))  # zero-padded work buffer, reused
    for a0 in range(0, n_atoms, chunk):
        a1 = min(n_atoms, a0 + chunk)
        c = a1 - a0
        x = buf[:c, :, :n_frames]
        x[...] = x_all[:, a0:a1, :].transpose(1, 2, 0)
        x -= x.mean(axis=-1, keepdims=True)
        rows = buf[:c].reshape(3 * c, nfft)
        fx = scipy.fft.rfft(rows, axis=-1, workers=workers)  # (3c, nfft//2 + 1)
        v = fx.view(np.float64)
        np.square(v, out=v)
        if per_atom:
            power = v.reshape(c, 3, -1, 2).sum(axis=(1, 3))  # (c, nf)
            acf = scipy.fft.irfft(power, n=nfft, axis=-1, workers=workers)[:, :n_frames]
            d = np.einsum("ckf,ckf->cf", x, x)
            csum = np.cumsum(d + d[:, ::-1], axis=-1)
            q = 2.0 * d.sum(axis=-1, keepdims=True) - np.concatenate([np.zeros((c, 1)), csum[:, :-1]], -1)
            out[:, a0:a1] = ((q - 2.0 * acf) / n_orig).T
        else:
            power_sum += v.sum(axis=0).reshape(-1, 2).sum(axis=-1)
            xr = x.reshape(3 * c, n_frames)
            sq_sum += np.einsum("rf,rf->f", xr, xr)
    if per_atom:
        out[0] = 0.0
        return out
    acf = scipy.fft.irfft(power_sum, n=nfft)[:n_frames]
    csum = np.cumsum(sq_sum + sq_sum[::-1])
    q = 2.0 * sq_sum.sum() - np.concatenate([[0.0], csum[:-1]])
    msd = (q - 2.0 * acf) / n_orig / n_atoms
    msd[0] = 0.0
    return msd
