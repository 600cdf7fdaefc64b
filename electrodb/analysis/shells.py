"""First solvation shell from a g(r): first peak, first minimum and the coordination number there.

Robust by construction: the curve is smoothed (Gaussian, width ``smooth`` Å), a peak must rise above
``threshold`` with a prominence above noise (``n_sigma`` × the block error when known), and the minimum is the
first valley after it. Flat, noisy, all-zero or NaN curves return a status and a reason instead of raising
(the failure mode reported in solvation_analysis issues #43, #63 and #89).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from electrodb.analysis.structure import FloatArray, RDFResult

__all__ = ["ShellAnalysis", "first_minimum", "first_peak", "shell_analysis"]


@dataclass
class ShellAnalysis:
    """First peak / first minimum of a g(r) and the coordination number of the first shell.

    Attributes
    ----------
    r_peak, g_peak : float
        Position (Å) and height of the first peak (NaN if ``status == 'no_peak'``).
    r_min, g_min : float
        Position (Å) and smoothed value of the first minimum after it (NaN unless ``status == 'ok'``).
    cn : float
        Running coordination number at ``r_min`` (NaN if unavailable).
    cn_err : float or None
        Its standard error from time blocks (None without blocks).
    status : {'ok', 'no_peak', 'no_minimum'}
    reason : str
        Human-readable explanation when ``status != 'ok'``.
    """

    r_peak: float = float("nan")
    g_peak: float = float("nan")
    r_min: float = float("nan")
    g_min: float = float("nan")
    cn: float = float("nan")
    cn_err: float | None = None
    status: Literal["ok", "no_peak", "no_minimum"] = "no_peak"
    reason: str = ""


def _refine(x: FloatArray, y: FloatArray, i: int) -> tuple[float, float]:
    """Vertex of the parabola through ``(x, y)[i-1:i+2]`` (falls back to the sample itself)."""
    if 0 < i < len(y) - 1:
        y0, y1, y2 = y[i - 1], y[i], y[i + 1]
        den = y0 - 2.0 * y1 + y2
        if den != 0.0:
            off = 0.5 * (y0 - y2) / den
            if abs(off) <= 1.0:
                return float(x[i] + off * (x[i + 1] - x[i])), float(y1 - 0.25 * (y0 - y2) * off)
    return float(x[i]), float(y[i])


def first_minimum(
    r: ArrayLike,
    g: ArrayLike,
    *,
    g_err: ArrayLike | None = None,
    cn_r: ArrayLike | None = None,
    cn: ArrayLike | None = None,
    cn_blocks: ArrayLike | None = None,
    threshold: float = 1.0,
    smooth: float = 0.1,
    peak_prominence: float = 0.2,
    min_prominence: float = 0.05,
    n_sigma: float = 3.0,
) -> ShellAnalysis:
    """Locate the first peak and the first minimum after it, robustly; never raises on flat or noisy data.

    ``g`` is smoothed with a Gaussian of standard deviation ``smooth`` (Å); the first peak is the first local
    maximum of the smoothed curve higher than ``threshold`` with prominence ``>= peak_prominence`` (and
    ``>= n_sigma * g_err`` at the peak when ``g_err`` is given); the first minimum is the first local minimum after
    it with prominence ``>= min_prominence`` (a genuine dip followed by a rise, not the end of the range).

    Parameters
    ----------
    r, g : array_like, shape (n,)
        Increasing radii (Å; bin centres) and g(r).  Non-finite g values are treated as 0.
    g_err : array_like, optional
        Uncertainty of g (e.g. ``RDFResult.g_err``) used to reject insignificant peaks.
    cn_r, cn : array_like, optional
        Running coordination number ``cn`` at radii ``cn_r`` (e.g. ``edges`` and ``[0, *coordination]``).
    cn_blocks : array_like, shape (n_blocks, len(cn_r)), optional
        Per-block running coordination numbers for ``cn_err``.
    threshold, smooth, peak_prominence, min_prominence, n_sigma : float
        Detection parameters (see above).

    Returns
    -------
    ShellAnalysis
        Peak position and height are taken from the raw curve (largest sample within ``max(2 bins, smooth)`` of the
        smoothed peak); the minimum position is the parabola vertex of the smoothed curve; ``cn`` is ``cn``
        interpolated at ``r_min``.
    """
    r = np.asarray(r, dtype=np.float64).ravel()
    y = np.nan_to_num(np.asarray(g, dtype=np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
    if r.shape != y.shape:
        raise ValueError("r and g must have the same length")
    if r.size < 3:
        return ShellAnalysis(reason="fewer than 3 points")
    if np.any(np.diff(r) <= 0):
        raise ValueError("r must be strictly increasing")
    dr = (r[-1] - r[0]) / (r.size - 1)
    r_in = r
    if not np.allclose(np.diff(r), dr, rtol=1e-6, atol=0.0):  # smooth on a uniform grid
        grid = np.linspace(r[0], r[-1], r.size)
        y, r = np.interp(grid, r, y), grid
    ys = gaussian_filter1d(y, smooth / dr, mode="nearest") if smooth > 0 else y
    peaks, props = find_peaks(ys, height=threshold, prominence=peak_prominence)
    if g_err is not None and peaks.size:
        err = np.interp(r[peaks], r_in, np.nan_to_num(np.asarray(g_err, dtype=np.float64).ravel()))
        keep = props["prominences"] >= n_sigma * err
        peaks = peaks[keep]
    if peaks.size == 0:
        return ShellAnalysis(
            reason=f"no maximum of smoothed g above {threshold:g} with prominence >= {peak_prominence:g} "
            f"(max smoothed g = {ys.max():.3g})"
        )
    ip = int(peaks[0])
    w = max(2, int(np.ceil(smooth / dr)))
    lo = max(ip - w, 0)
    j = lo + int(np.argmax(y[lo : ip + w + 1]))
    out = ShellAnalysis(r_peak=float(r[j]), g_peak=float(y[j]), status="no_minimum")
    valleys, _ = find_peaks(-ys[ip:], prominence=min_prominence)
    if valleys.size == 0:
        out.reason = f"no minimum with prominence >= {min_prominence:g} after the peak at {out.r_peak:.3g} Å"
        return out
    out.r_min, out.g_min = _refine(r, ys, ip + int(valleys[0]))
    out.status, out.reason = "ok", ""
    if cn_r is not None and cn is not None:
        cr = np.asarray(cn_r, dtype=np.float64)
        out.cn = float(np.interp(out.r_min, cr, np.asarray(cn, dtype=np.float64)))
        if cn_blocks is not None:
            cb = np.atleast_2d(np.asarray(cn_blocks, dtype=np.float64))
            if cb.shape[0] >= 2:
                vals = np.array([np.interp(out.r_min, cr, row) for row in cb])
                out.cn_err = float(vals.std(ddof=1) / np.sqrt(vals.size))
    return out


def first_peak(r: ArrayLike, g: ArrayLike, **kwargs: Any) -> tuple[float, float]:
    """``(r_peak, g_peak)`` of the first significant peak (NaNs if none); options as in :func:`first_minimum`."""
    s = first_minimum(r, g, **kwargs)
    return s.r_peak, s.g_peak


def shell_analysis(result: RDFResult, **kwargs: Any) -> ShellAnalysis:
    """:func:`first_minimum` of an :class:`RDFResult` with its running coordination number and block errors."""
    cn_blocks = None
    if result.coordination_blocks is not None:
        cn_blocks = np.hstack([np.zeros((result.coordination_blocks.shape[0], 1)), result.coordination_blocks])
    return first_minimum(
        result.r,
        result.g,
        g_err=result.g_err,
        cn_r=result.edges,
        cn=np.concatenate([[0.0], result.coordination]),
        cn_blocks=cn_blocks,
        **kwargs,
    )
