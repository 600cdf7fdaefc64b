"""Displacements from MD trajectories: unwrapping, centre-of-mass drift, FFT mean-squared displacement.

Pure numpy/scipy, vectorised over atoms (processed in chunks to bound memory).  Positions in Å, shape
``(n_frames, n_atoms, 3)``; cells ``(n_frames, 3, 3)`` or ``(3, 3)`` with lattice vectors as *rows*.  Besides the
MSD itself, the two pieces a diffusion fit is built from: the lag range where the MSD grows linearly
(:func:`diffusive_window`, from the local log-log slope) and each atom's own MSD slope over a lag window
(:func:`msd_slopes`).  D, its error and its verdict are :mod:`electrodb.analysis.transport`.

Pipeline::

    unwrapped = unwrap_positions(wrapped, cells)           # toroidal-view-preserving (TOR) displacements
    drift_free = remove_com_drift(unwrapped, masses)        # system centre of mass fixed at frame 0
    msd = msd_fft(drift_free[:, li_indices])                # Å², index = lag in frames
    win = diffusive_window(np.arange(len(msd)) * dt, msd)   # lags where d ln MSD / d ln t is near 1
    slopes = msd_slopes(drift_free[:, li_indices], [(win.i_start, win.i_end)], dt)  # per atom, Å²/ps

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
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy.signal import savgol_filter

from electrodb.analysis.periodic import as_cells

__all__ = [
    "DiffusiveWindow",
    "com_displacement",
    "diffusive_window",
    "msd_fft",
    "msd_slopes",
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


def msd_slopes(
    positions: np.ndarray,
    windows: list[tuple[int, int]],
    dt: float,
    *,
    max_bytes: int = 64 * 2**20,
    workers: int | None = None,
) -> np.ndarray:
    r"""Least-squares slope of every atom's own MSD over each lag window: one independent D sample per atom.

    For atom :math:`i` and a window of lags :math:`m_0 \dots m_1` (frames, inclusive), ordinary least squares of
    :math:`\mathrm{MSD}_i(t) = s_i t + b_i` over :math:`t = m\,\Delta t`.  The slope is linear in the MSD, so the
    mean of the per-atom slopes equals the slope of the atom-averaged MSD, and their scatter measures how well that
    mean is determined.  Atoms are processed in chunks (``max_bytes`` of per-atom MSD at a time).

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Å, **unwrapped**.
    windows : list of (m0, m1)
        Inclusive lag windows in frames, ``0 <= m0 < m1 < n_frames``.
    dt : float
        Frame interval, ps.
    max_bytes : int
        Memory bound of one chunk of per-atom MSDs.
    workers : int, optional
        Threads for ``scipy.fft``.

    Returns
    -------
    (n_windows, n_atoms) float64 array
        Slopes, Å²/ps (6 D for three-dimensional diffusion).
    """
    x = np.asarray(positions)
    n_frames, n_atoms = x.shape[:2]
    for m0, m1 in windows:
        if not 0 <= m0 < m1 < n_frames:
            raise ValueError(f"lag window ({m0}, {m1}) is not inside 0 ... {n_frames - 1} with m0 < m1")
    top = max(m1 for _, m1 in windows) + 1
    out = np.empty((len(windows), n_atoms))
    chunk = _atom_chunk(n_frames, 8 * 4, max_bytes)
    for a0 in range(0, n_atoms, chunk):
        a1 = min(n_atoms, a0 + chunk)
        msd = msd_fft(x[:, a0:a1], per_atom=True, workers=workers)[:top]  # (lags, c)
        for k, (m0, m1) in enumerate(windows):
            t = np.arange(m0, m1 + 1) * dt
            tc = t - t.mean()
            y = msd[m0 : m1 + 1]
            out[k, a0:a1] = tc @ (y - y.mean(axis=0)) / (tc @ tc)
    return out


# ----------------------------------------------------------------------------------------- fit window
@dataclass(frozen=True)
class DiffusiveWindow:
    """Fitting window chosen from the log–log slope of the MSD.

    Attributes
    ----------
    t_start, t_end : float
        Window bounds, ps (lag times).
    i_start, i_end : int
        Inclusive indices into the lag-time array.
    slope : float
        Least-squares slope of ln MSD vs ln t over the window (1 for normal diffusion).
    found : bool
        False when no range satisfied the criterion and the fallback window was used.
    local_slope_t : ndarray
        Log-spaced lag times (ps) at which the smoothed local slope was evaluated.
    local_slope : ndarray
        Smoothed :math:`d\\ln\\mathrm{MSD}/d\\ln t` on ``local_slope_t``.
    """

    t_start: float
    t_end: float
    i_start: int
    i_end: int
    slope: float
    found: bool
    local_slope_t: np.ndarray = field(repr=False)
    local_slope: np.ndarray = field(repr=False)


def _loglog_slope(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ln y vs ln t over the points with t, y > 0 (NaN with fewer than two)."""
    ok = (t > 0) & (y > 0)
    return float(np.polyfit(np.log(t[ok]), np.log(y[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")


def diffusive_window(
    times: np.ndarray,
    msd: np.ndarray,
    *,
    tol: float = 0.15,
    max_lag_fraction: float = 1.0 / 3.0,
    min_span: float = 3.0,
    points_per_decade: int = 20,
    smooth_decades: float = 0.3,
    min_points: int = 5,
) -> DiffusiveWindow:
    r"""Choose the linear (diffusive) MSD regime from the data.

    The local exponent :math:`\alpha(t) = d\ln\mathrm{MSD}/d\ln t` is evaluated on a log-spaced grid
    (``points_per_decade``) as a Savitzky–Golay first derivative (linear local fit over ``smooth_decades``).
    Candidate ranges are contiguous stretches with :math:`|\alpha-1| <` ``tol`` among lags
    :math:`0 < t \le` ``max_lag_fraction`` × (longest lag); this excludes the ballistic start
    (:math:`\alpha \to 2`), the cage/sub-diffusive region and the poorly averaged long-lag tail.  The stretch
    spanning the most decades wins (ties: the later one); it must cover a factor ``min_span`` in time and
    ``min_points`` data points.  Otherwise ``found=False`` and the fallback window
    [max_lag/10, max_lag] is returned.

    Parameters
    ----------
    times : (n_lags,) array, ps
        Lag times, ``times[0] == 0``, uniformly spaced.
    msd : (n_lags,) array, Å²
    tol, max_lag_fraction, min_span, points_per_decade, smooth_decades, min_points
        Criterion parameters as described above.

    Returns
    -------
    DiffusiveWindow
    """
    t = np.asarray(times, dtype=np.float64)
    y = np.asarray(msd, dtype=np.float64)
    valid = (t > 0) & (t <= max_lag_fraction * t[-1] * (1 + 1e-12)) & (y > 0) & np.isfinite(y)
    idx = np.nonzero(valid)[0]
    grid_t, local = np.empty(0), np.empty(0)
    best: tuple[float, int, int] | None = None
    if len(idx) >= min_points:
        lt, ly = np.log(t[idx]), np.log(y[idx])
        n_grid = max(int(np.ceil((lt[-1] - lt[0]) / np.log(10) * points_per_decade)) + 1, 3)
        grid = np.linspace(lt[0], lt[-1], n_grid)
        dx = grid[1] - grid[0]
        win = min(max(3, round(smooth_decades * np.log(10) / dx) | 1), n_grid - (n_grid % 2 == 0))
        local = savgol_filter(np.interp(grid, lt, ly), win, polyorder=1, deriv=1, delta=dx, mode="interp")
        grid_t = np.exp(grid)
        edges = np.diff(np.concatenate([[0], (np.abs(local - 1.0) < tol).astype(np.int8), [0]]))
        for g0, g1 in zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1, strict=True):
            span = grid[g1] - grid[g0]
            inside = idx[(t[idx] >= grid_t[g0] * (1 - 1e-12)) & (t[idx] <= grid_t[g1] * (1 + 1e-12))]
            if span < np.log(min_span) * (1 - 1e-9) or len(inside) < min_points:
                continue
            if best is None or span >= best[0]:  # longest stretch; ties -> the later one
                best = (span, int(inside[0]), int(inside[-1]))
    if best is not None:
        i0, i1 = best[1], best[2]
    elif len(idx):
        sel = idx[t[idx] >= t[idx[-1]] / 10.0]  # fallback: [max_lag / 10, max_lag]
        i0, i1 = int(sel[0]), int(sel[-1])
    else:
        return DiffusiveWindow(float("nan"), float("nan"), 0, -1, float("nan"), False, grid_t, local)
    slope = _loglog_slope(t[i0 : i1 + 1], y[i0 : i1 + 1])
    return DiffusiveWindow(float(t[i0]), float(t[i1]), i0, i1, slope, best is not None, grid_t, local)
