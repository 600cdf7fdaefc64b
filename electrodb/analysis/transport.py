"""Self-diffusion from MD trajectories: diffusive fit window, block errors and the convergence verdict of D.

Pure numpy/scipy.  Positions in Å, shape ``(n_frames, n_atoms, 3)``, **unwrapped**; times in ps; diffusion
coefficients in 1e-9 m²/s (1 Å²/ps = 10 × 1e-9 m²/s).  Unwrapping, centre-of-mass drift and the FFT MSD live
in :mod:`electrodb.analysis.msd` (re-exported here); the Yeh–Hummer finite-size correction in
:mod:`electrodb.analysis.finite_size`.

Pipeline::

    unwrapped = unwrap_positions(wrapped, cells)           # toroidal-view-preserving (TOR) displacements
    res = self_diffusion(unwrapped, times, li_indices, masses=masses)      # res.verdict: converged or not
    eta = solution_viscosity("LiCl", 2.0, 298.15)                           # viscosity.py
    corr = yeh_hummer_correction(res.D, 298.15, L, eta.eta_Pa_s, D_pbc_err=res.D_err,
                                 viscosity_err_Pa_s=eta.eta_err_Pa_s, viscosity_source=eta.source)

References
----------
* I.-C. Yeh, G. Hummer, J. Phys. Chem. B 108, 15873 (2004) — finite-size correction.
* H. Flyvbjerg, H. G. Petersen, J. Chem. Phys. 91, 461 (1989) — block averaging.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import savgol_filter

from electrodb.analysis.convergence import ConvergenceTargets, Verdict
from electrodb.analysis.msd import com_displacement, msd_fft, remove_com_drift, unwrap_positions
from electrodb.analysis.statistics import block_standard_error, student_t_factor

__all__ = [
    "D_CRITERION",
    "DiffusionResult",
    "DiffusiveWindow",
    "com_displacement",
    "diffusion_verdict",
    "diffusive_window",
    "msd_fft",
    "remove_com_drift",
    "self_diffusion",
    "unwrap_positions",
]

#: 1 Å²/ps expressed in the reporting unit 1e-9 m²/s.
A2_PER_PS_IN_1E9_M2_PER_S = 10.0


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
    lt, ly = np.log(t), np.log(y)
    return float(np.polyfit(lt, ly, 1)[0]) if len(t) >= 2 else float("nan")


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


# ------------------------------------------------------------------------------------- self-diffusion
#: Criterion string of the D verdict (targets filled in by :func:`diffusion_verdict`).
D_CRITERION = (
    "D: |dlnMSD/dlnt - 1| <= {D_slope_tol:g} over the fit window, window >= {D_min_window_ps:g} ps, "
    "RMS displacement at window end >= {D_min_rms_A:g} A, run/window end >= {D_min_origins:g} origins, "
    "D_err/D <= {D_rel_err:g}, atoms x blocks >= {min_samples:d}"
)


@dataclass
class DiffusionResult:
    r"""Self-diffusion coefficient with block-analysis uncertainty and its convergence verdict.

    Attributes
    ----------
    D : float or None
        Self-diffusion coefficient, 1e-9 m²/s: mean of the per-block values (None when
        ``flag == 'too_short'``).  Present also when unconverged: ``verdict`` says whether it is a result.
    D_err : float or None
        Uncertainty of ``D``: half-width of the 68.3 % Student-t interval of the block mean,
        :math:`t_{0.841,B-1}\, s(D_k)/\sqrt{B}` (1.14 × the plain standard error for 5 blocks, → 1 for many),
        1e-9 m²/s; None for a single block.
    D_err_sem : float or None
        The plain standard error :math:`s(D_k)/\sqrt{B}`, 1e-9 m²/s.
    flag : str
        Outcome of the fit: ``'ok'`` (a diffusive window was found), ``'no_diffusive_regime'`` (fallback
        window) or ``'too_short'``.  Not a convergence statement — see ``verdict``.
    verdict : Verdict
        ``converged`` / ``unconverged`` / ``insufficient`` with the failed criteria (:func:`diffusion_verdict`).
    D_blocks : ndarray
        Per-block diffusion coefficients, 1e-9 m²/s.
    window_ps : tuple of float or None
        Lag-time window of the linear fit, ps.
    loglog_slope : float or None
        Slope of ln MSD vs ln t over the window (≈ 1 for normal diffusion).
    rms_displacement_A : float or None
        :math:`\sqrt{\mathrm{MSD}}` at the end of the window, Å.
    n_origins : float or None
        Run length / window end: the number of independent time origins.
    run_length_ps : float
        Length of the analysed run, ps.
    n_blocks, n_atoms : int
    block_length_ps : float
    lag_times_ps : ndarray
        Lag times of the block-averaged MSD, ps.
    msd_A2 : ndarray
        Block-averaged MSD, Å² (the curve used to choose the window).
    intercept_A2 : float or None
        Mean intercept of the per-block fits ``MSD = 6 D t + b``, Å².
    message : str
        Human-readable note on the fit.
    """

    D: float | None
    D_err: float | None
    flag: str
    D_blocks: np.ndarray = field(default_factory=lambda: np.empty(0))
    window_ps: tuple[float, float] | None = None
    loglog_slope: float | None = None
    n_blocks: int = 0
    n_atoms: int = 0
    block_length_ps: float = 0.0
    lag_times_ps: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    msd_A2: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    intercept_A2: float | None = None
    message: str = ""
    D_err_sem: float | None = None
    rms_displacement_A: float | None = None
    n_origins: float | None = None
    run_length_ps: float = 0.0
    verdict: Verdict = field(default_factory=lambda: Verdict("insufficient", "D", "not evaluated"))

    @property
    def status(self) -> str:
        return self.verdict.status


def _uniform_dt(times: np.ndarray) -> float:
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2:
        raise ValueError("times must be a 1-D array with at least two frames")
    dts = np.diff(t)
    dt = float(np.mean(dts))
    if dt <= 0 or np.max(np.abs(dts - dt)) > 1e-6 * max(dt, 1e-300) + 1e-9:
        raise ValueError("times must be strictly increasing and uniformly spaced")
    return dt


def diffusion_verdict(
    res: DiffusionResult, targets: ConvergenceTargets | None = None, *, min_samples: int = 20
) -> Verdict:
    r"""Convergence verdict of a self-diffusion result.

    ``insufficient`` when no D could be computed (too few frames per block, fewer than 3 lags in the window).
    Otherwise ``converged`` only if every criterion holds (targets from :class:`ConvergenceTargets`):

    * **diffusive regime** — the log-log MSD slope over the fit window is within ``D_slope_tol`` of 1
      (and the window was found by :func:`diffusive_window`, not the fallback);
    * **window length** — :math:`t_\mathrm{end} - t_\mathrm{start} \ge` ``D_min_window_ps``;
    * **displacement** — :math:`\sqrt{\mathrm{MSD}(t_\mathrm{end})} \ge` ``D_min_rms_A`` (the particles have
      left their cage: a molecular diameter);
    * **time origins** — run length / :math:`t_\mathrm{end} \ge` ``D_min_origins``;
    * **precision** — ``D_err / D ≤ D_rel_err`` (``D_err`` the t-inflated block error), and D > 0;
    * **samples** — ``n_atoms × n_blocks ≥ min_samples`` (default 20; not in ``ConvergenceTargets``): with a
      single ion and 5 blocks the block scatter of a single-particle MSD is a 4-degree-of-freedom estimate of
      a skewed (χ²-like) quantity, and the error itself is uncertain by ~35 %; such a D is never "converged".

    Each failed criterion is named in ``reason`` with its measured value and target.
    """
    tg = targets or ConvergenceTargets()
    criterion = D_CRITERION.format(**tg.as_dict(), min_samples=min_samples)
    if res.D is None or res.window_ps is None:
        return Verdict("insufficient", criterion, f"no D: {res.message}" if res.message else "no D")
    fails: list[str] = []
    slope = res.loglog_slope
    if slope is None or not np.isfinite(slope) or abs(slope - 1.0) > tg.D_slope_tol:
        fails.append(f"log-log MSD slope {slope:.2f} not within {tg.D_slope_tol:g} of 1 (no diffusive regime)")
    elif res.flag == "no_diffusive_regime":
        fails.append("no lag range with a local log-log slope near 1 (fallback window)")
    width = res.window_ps[1] - res.window_ps[0]
    if width < tg.D_min_window_ps:
        fails.append(f"fit window {width:.3g} ps < {tg.D_min_window_ps:g} ps")
    rms = res.rms_displacement_A
    if rms is None or rms < tg.D_min_rms_A:
        fails.append(f"RMS displacement at window end {rms or 0.0:.2f} A < {tg.D_min_rms_A:g} A")
    if res.n_origins is None or res.n_origins < tg.D_min_origins:
        fails.append(f"{res.n_origins or 0.0:.1f} independent time origins < {tg.D_min_origins}")
    if res.D <= 0:
        fails.append(f"D = {res.D:.3g} <= 0")
    elif res.D_err is None:
        fails.append("no error estimate (a single block)")
    elif res.D_err / res.D > tg.D_rel_err:
        fails.append(f"relative error {res.D_err / res.D:.2f} > {tg.D_rel_err:g}")
    if res.n_atoms * res.n_blocks < min_samples:
        fails.append(f"{res.n_atoms} atoms x {res.n_blocks} blocks = {res.n_atoms * res.n_blocks} < {min_samples}")
    if fails:
        return Verdict("unconverged", criterion, "; ".join(fails))
    return Verdict("converged", criterion)


def self_diffusion(
    positions: np.ndarray,
    times: np.ndarray,
    selection: np.ndarray | None = None,
    masses: np.ndarray | None = None,
    n_blocks: int = 5,
    *,
    tol: float | None = None,
    max_lag_fraction: float = 1.0 / 3.0,
    min_block_frames: int = 20,
    workers: int | None = None,
    targets: ConvergenceTargets | None = None,
    min_samples: int = 20,
) -> DiffusionResult:
    r"""Self-diffusion coefficient from the Einstein relation with block-analysis uncertainty and verdict.

    1. If ``masses`` is given, the system centre-of-mass drift (all atoms in ``positions``) is removed.
    2. The run is split into ``n_blocks`` contiguous, non-overlapping time blocks (the last
       ``n_frames mod n_blocks`` frames are dropped); the FFT MSD of the selection is computed in each block.
    3. The fit window is chosen by :func:`diffusive_window` on the block-averaged MSD (lags up to
       ``max_lag_fraction`` of a block).
    4. In every block, ordinary least squares ``MSD(t) = 6 D t + b`` over the window gives :math:`D_k`;
       :math:`D = \overline{D_k}`, :math:`\sigma_D = t_{0.841,B-1}\,s(D_k)/\sqrt{B}` (68.3 % Student-t
       half-width: with few blocks the plain standard error undercovers).  The OLS parameter error of a single
       MSD fit is not used: MSD points at different lags are strongly correlated and that error is far too
       small.  With fewer than ``min_block_frames`` frames per block the result is flagged ``'too_short'``
       and ``D`` is None.
    5. The verdict (:func:`diffusion_verdict`) judges the result against ``targets``.

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Å, **unwrapped** (see :func:`unwrap_positions`).
    times : (n_frames,) array, ps, uniformly spaced.
    selection : int index array, optional
        Atoms whose self-diffusion is measured (default: all).
    masses : (n_atoms,) array, optional
        Masses of all atoms in ``positions`` for COM-drift removal; None = no removal.
    n_blocks : int
    tol : float, optional
        Slope tolerance for :func:`diffusive_window`; default ``targets.D_slope_tol``.
    max_lag_fraction : float
        Passed to :func:`diffusive_window`.
    min_block_frames : int
    workers : int, optional
        Threads for the FFT.
    targets : ConvergenceTargets, optional
        Convergence targets (default :class:`ConvergenceTargets`).
    min_samples : int
        Fewest atoms × blocks for a converged D (see :func:`diffusion_verdict`).

    Returns
    -------
    DiffusionResult
        ``D`` and ``D_err`` in 1e-9 m²/s, with ``verdict``.
    """
    tg = targets or ConvergenceTargets()
    tol = tg.D_slope_tol if tol is None else tol
    x = np.asarray(positions)
    n_frames = x.shape[0]
    dt = _uniform_dt(times)
    if len(times) != n_frames:
        raise ValueError("times and positions disagree on the number of frames")
    sel = np.arange(x.shape[1]) if selection is None else np.asarray(selection, dtype=np.intp)
    if n_blocks < 1:
        raise ValueError("n_blocks must be >= 1")
    n_b = n_frames // n_blocks
    run_length = float(times[-1] - times[0])
    too_short = DiffusionResult(
        None,
        None,
        "too_short",
        n_blocks=n_blocks,
        n_atoms=len(sel),
        block_length_ps=n_b * dt,
        run_length_ps=run_length,
    )

    def finish(r: DiffusionResult) -> DiffusionResult:
        r.verdict = diffusion_verdict(r, tg, min_samples=min_samples)
        return r

    if n_b < max(min_block_frames, 3) or len(sel) == 0:
        too_short.message = f"{n_frames} frames / {n_blocks} blocks < {min_block_frames} frames per block"
        return finish(too_short)
    xs = np.asarray(x[:, sel], dtype=np.float64)
    if masses is not None:
        xs = xs - com_displacement(x, masses)[:, None, :]
    msds = np.stack([msd_fft(xs[k * n_b : (k + 1) * n_b], workers=workers) for k in range(n_blocks)])
    lags = np.arange(n_b) * dt
    mean_msd = msds.mean(axis=0)
    win = diffusive_window(lags, mean_msd, tol=tol, max_lag_fraction=max_lag_fraction)
    if win.i_end - win.i_start + 1 < 3:
        too_short.lag_times_ps, too_short.msd_A2 = lags, mean_msd
        too_short.message = "fewer than 3 lag points in the fit window"
        return finish(too_short)
    tw = lags[win.i_start : win.i_end + 1]
    yw = msds[:, win.i_start : win.i_end + 1]  # (B, W)
    tc = tw - tw.mean()
    slopes = (yw - yw.mean(axis=1, keepdims=True)) @ tc / (tc @ tc)  # Å²/ps
    intercepts = yw.mean(axis=1) - slopes * tw.mean()
    d_blocks = slopes / 6.0 * A2_PER_PS_IN_1E9_M2_PER_S
    d_mean = float(d_blocks.mean())
    d_sem = float(block_standard_error(d_blocks)) if n_blocks > 1 else None
    d_err = d_sem * student_t_factor(n_blocks) if d_sem is not None else None
    flag = "ok" if win.found else "no_diffusive_regime"
    msg = (
        f"linear fit over {win.t_start:g}-{win.t_end:g} ps (log-log slope {win.slope:.3f})"
        if win.found
        else f"no lag range with |dlnMSD/dlnt - 1| < {tol}; fallback window {win.t_start:g}-{win.t_end:g} ps"
    )
    return finish(
        DiffusionResult(
            D=d_mean,
            D_err=d_err,
            D_err_sem=d_sem,
            D_blocks=d_blocks,
            flag=flag,
            window_ps=(win.t_start, win.t_end),
            loglog_slope=win.slope,
            rms_displacement_A=float(np.sqrt(max(mean_msd[win.i_end], 0.0))),
            n_origins=run_length / win.t_end if win.t_end > 0 else None,
            run_length_ps=run_length,
            n_blocks=n_blocks,
            n_atoms=len(sel),
            block_length_ps=n_b * dt,
            lag_times_ps=lags,
            msd_A2=mean_msd,
            intercept_A2=float(intercepts.mean()),
            message=msg,
        )
    )
