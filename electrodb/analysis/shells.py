r"""First solvation shell from a g(r): first peak, first minimum, the coordination number there, and its Verdict.

Detection (:func:`first_minimum`), whatever the peak height (a contact peak may lie below 1, e.g. Li–Cl at
2.4 M):

1. g is smoothed with a Gaussian of standard deviation ``smooth`` (Å); the kernel is at most as long as the curve
   and applied by FFT, so memory and time stay O(n) for any grid.
2. Candidate peaks are the local maxima of the smoothed curve :math:`\tilde g` with topographic prominence
   ``>= min_prominence`` (units of g; no height threshold unless ``threshold`` is given).
3. For each candidate, in order of r, the first minimum after it is the first local minimum of :math:`\tilde g`
   followed by a genuine rise, ``>= max(min_prominence, n_sigma σ̃)`` (not the end of the range).
4. The candidate is the first shell when the drop to that minimum is significant,

   .. math:: \tilde g(r_\mathrm{peak}) - \tilde g(r_\mathrm{min}) \ge
             \max\bigl(p_\mathrm{min},\; n_\sigma \sqrt{\tilde\sigma^2(r_\mathrm{peak})
             + \tilde\sigma^2(r_\mathrm{min})}\bigr)

   when errors are known (``p_min`` = ``min_prominence``), else :math:`\ge` ``peak_prominence`` (absolute);
   :math:`\tilde\sigma` is the standard error of the *smoothed* curve: from the smoothed time blocks when
   ``g_blocks`` are given, else propagated from ``g_err`` for independent bins,
   :math:`\tilde\sigma^2 = \sum_k w_k^2 \sigma_k^2` (w the smoothing kernel).  Comparing the smoothed prominence
   with the raw per-bin error (as before) rejected sharp, few-count first peaks and let a later, broader peak be
   taken instead.
5. An insignificant candidate is skipped only if it is a shoulder (its minimum stays above half its height, e.g.
   noise on a rising flank).  An insignificant but *separated* candidate (the curve drops below half its height)
   is a real peak that is not resolved: detection stops with ``no_peak`` rather than promote a later peak (a
   solvent-separated peak must never be reported as the contact shell).

The coordination number is the running CN :math:`n(r) = \rho_b \int_0^r 4\pi s^2 g(s)\,ds` interpolated at
:math:`r_\mathrm{min}`, its standard error from time blocks.  Verdict (:class:`~electrodb.analysis.convergence.
Verdict`): ``insufficient`` without a peak or a minimum, ``unconverged`` when the CN block error exceeds
``ConvergenceTargets.cn_max_err`` or no block error is available, else ``converged``.  Flat, noisy, all-zero or
NaN curves return a status and a reason instead of raising (solvation_analysis issues #43, #63 and #89).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.signal import fftconvolve, find_peaks

from electrodb.analysis.convergence import ConvergenceTargets, Status, Verdict, worst
from electrodb.analysis.periodic import FloatArray
from electrodb.analysis.run_factor import count_factor, error_factor
from electrodb.analysis.shell_sampling import CORE_MAX_FRACTION, CORE_MIN_COUNTS
from electrodb.analysis.statistics import block_standard_error
from electrodb.analysis.structure import RDFResult

__all__ = [
    "ShellAnalysis",
    "first_minimum",
    "first_peak",
    "shell_analysis",
    "shell_resolution_verdict",
    "shell_sampling_verdict",
    "shell_verdict",
]

Detection = Literal["ok", "no_peak", "no_minimum"]


@dataclass
class ShellAnalysis:
    """First peak / first minimum of a g(r), the coordination number of the first shell, and its Verdict.

    Attributes
    ----------
    r_peak, g_peak : float
        Position (Å) and raw height of the first peak (NaN if ``detection == 'no_peak'``).
    r_min, g_min : float
        Position (Å) and smoothed value of the first minimum after it (NaN unless ``detection == 'ok'``).
    cn : float
        Running coordination number at ``r_min`` (NaN if unavailable).
    cn_err : float or None
        Its standard error from time blocks (None without blocks).
    significance : float or None
        Drop from the smoothed peak to the minimum in units of its standard error (None without errors).
    detection : {'ok', 'no_peak', 'no_minimum'}
        Outcome of the peak/minimum search.
    detection_reason : str
        Why detection failed, or notes (e.g. skipped insignificant shoulders); empty otherwise.
    status : {'converged', 'unconverged', 'insufficient'}
        Verdict status (see :func:`shell_verdict`).
    criterion, reason : str
        Verdict criterion and reason (empty when converged).
    run_factor : float or None
        How much longer the run must be for it to pass (:class:`~electrodb.analysis.convergence.Verdict`).
    """

    r_peak: float = float("nan")
    g_peak: float = float("nan")
    r_min: float = float("nan")
    g_min: float = float("nan")
    cn: float = float("nan")
    cn_err: float | None = None
    significance: float | None = None
    detection: Detection = "no_peak"
    detection_reason: str = ""
    status: Status = "insufficient"
    criterion: str = ""
    reason: str = ""
    run_factor: float | None = None

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.status, self.criterion, self.reason, self.run_factor)


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


def _kernel(sigma_bins: float, n: int) -> FloatArray:
    """Normalised Gaussian weights, radius ``min(round(4 σ), n)`` bins (bounded by the curve length)."""
    if not sigma_bins > 0.0 or n < 2:
        return np.ones(1)
    radius = int(min(4.0 * sigma_bins + 0.5, n)) if np.isfinite(sigma_bins) else n
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (k / sigma_bins) ** 2) if np.isfinite(sigma_bins) else np.ones(k.size)
    return w / w.sum()


def _convolve(y: FloatArray, w: FloatArray) -> FloatArray:
    """``y`` (…, n) convolved with ``w`` along the last axis, edges extended ('nearest'), via FFT."""
    if w.size == 1:
        return y * w[0]
    radius = (w.size - 1) // 2
    pad = [(0, 0)] * (y.ndim - 1) + [(radius, radius)]
    out = fftconvolve(np.pad(y, pad, mode="edge"), w.reshape((1,) * (y.ndim - 1) + (-1,)), mode="valid", axes=-1)
    return np.asarray(out, dtype=np.float64)


def _fill(row: FloatArray, x: FloatArray) -> FloatArray:
    """Non-finite samples replaced by linear interpolation between finite neighbours (all non-finite -> 0)."""
    ok = np.isfinite(row)
    if ok.all():
        return row
    if not ok.any():
        return np.zeros_like(row)
    out = row.copy()
    out[~ok] = np.interp(x[~ok], x[ok], row[ok])
    return out


def _as_curve(v: ArrayLike, r_in: FloatArray, r: FloatArray) -> FloatArray:
    """Non-finite samples filled (:func:`_fill`), then interpolated from ``r_in`` onto ``r`` along the last axis."""
    a = np.apply_along_axis(_fill, -1, np.asarray(v, dtype=np.float64), r_in)
    if r is r_in:
        return a
    return np.apply_along_axis(lambda row: np.interp(r, r_in, row), -1, a)


def _join(notes: list[str], keep: int = 3) -> str:
    """Notes joined with '; ', the middle ones summarised when there are more than ``keep``."""
    if len(notes) <= keep:
        return "; ".join(notes)
    return "; ".join([*notes[: keep - 1], f"({len(notes) - keep} more skipped)", notes[-1]])


def _resolution_criterion(t: ConvergenceTargets) -> str:
    return f"first peak and first minimum of g(r) found, minimum <= {t.shell_max_width_A:g} Å beyond the peak"


def shell_resolution_verdict(
    s: ShellAnalysis, targets: ConvergenceTargets | None = None, core: tuple[float, float] | None = None
) -> Verdict:
    """Whether the first shell itself is resolved: a first peak, a first minimum no further than
    ``targets.shell_max_width_A`` beyond it, and (when ``core`` is given) an excluded core before it.

    ``insufficient`` without a peak or a minimum, or without evidence of an excluded core (``core``, from
    :func:`~electrodb.analysis.shell_sampling.excluded_core`: fewer than ``CORE_MIN_COUNTS`` ideal-gas pairs
    where the observed count is below ``CORE_MAX_FRACTION`` of it); ``unconverged`` when the minimum is too far
    out (a later shell or noise); else ``converged``.  Only the minimum of a resolved shell may serve as a cutoff
    (contact pairs, residence times); the CN's own precision is judged by :func:`shell_verdict` and
    :mod:`electrodb.analysis.structure_sampling`.
    """
    t = targets or ConvergenceTargets()
    crit = _resolution_criterion(t)
    if s.detection == "no_peak":
        return Verdict("insufficient", crit, f"no first peak: {s.detection_reason}")
    if s.detection == "no_minimum":
        return Verdict("insufficient", crit, f"no first minimum: {s.detection_reason}")
    width = s.r_min - s.r_peak
    if not np.isfinite(width):
        return Verdict("insufficient", crit, "no first peak and minimum")
    if core is not None:
        crit += f"; an excluded core before the peak (>= {CORE_MIN_COUNTS:g} ideal-gas pairs)"
        r_core, n_ideal = core
        if not n_ideal >= CORE_MIN_COUNTS:
            where = "no r" if not np.isfinite(r_core) else f"only {n_ideal:.3g} ideal-gas pairs within {r_core:.2f} Å"
            # ideal-gas counts grow ∝ T; without any core, pairs sit at every r below the peak: no run length helps
            factor = count_factor(CORE_MIN_COUNTS, n_ideal, floor=1e-12) if np.isfinite(r_core) else float("inf")
            return Verdict(
                "insufficient",
                crit,
                f"no excluded core before the peak at {s.r_peak:.2f} Å ({where} with at most "
                f"{CORE_MAX_FRACTION:g} of the ideal-gas count, < {CORE_MIN_COUNTS:g}): g(r) has no solvation shell, "
                "only structure that noise or an ideal gas also shows",
                factor,
            )
    if width > t.shell_max_width_A:
        return Verdict(
            "unconverged",
            crit,
            f"first minimum at {s.r_min:.2f} Å is {width:.2f} Å beyond the peak at {s.r_peak:.2f} Å "
            f"(> {t.shell_max_width_A:g} Å): the first shell is not resolved",
        )
    return Verdict("converged", crit)


def shell_verdict(s: ShellAnalysis, targets: ConvergenceTargets | None = None) -> Verdict:
    """Verdict of a first shell (r_peak, CN).

    ``insufficient`` when no peak or no minimum was found, or no running CN was given; ``unconverged`` when
    the minimum lies more than ``targets.shell_max_width_A`` beyond the peak (the first shell is not resolved),
    when the CN block error exceeds ``targets.cn_max_err`` or no block error is available; else ``converged``.
    """
    t = targets or ConvergenceTargets()
    crit = f"{_resolution_criterion(t)}; CN block error <= {t.cn_max_err:g}"
    if s.detection == "ok" and not np.isfinite(s.cn):
        return Verdict("insufficient", crit, "no running coordination number given")
    resolved = shell_resolution_verdict(s, t)
    if not resolved.converged:
        return Verdict(resolved.status, crit, resolved.reason, resolved.run_factor)
    if s.cn_err is None or not np.isfinite(s.cn_err):
        return Verdict("unconverged", crit, "no block error for the CN (fewer than 2 time blocks)")
    if s.cn_err > t.cn_max_err:
        return Verdict(
            "unconverged",
            crit,
            f"CN block error {s.cn_err:.3g} > {t.cn_max_err:g}",
            error_factor(s.cn_err, t.cn_max_err),
        )
    return Verdict("converged", crit)


def shell_sampling_verdict(n_centres: int, duration_ps: float, targets: ConvergenceTargets | None = None) -> Verdict:
    """Whether a run samples enough first-shell exchange for a CN's block error to mean anything.

    ``insufficient`` when ``n_centres × duration_ps`` (centre-particle ps) is below ``targets.cn_min_centre_ps``,
    else ``converged``. Combine with :func:`shell_verdict` through :func:`~electrodb.analysis.convergence.worst`.
    """
    t = targets or ConvergenceTargets()
    crit = f"n_centres × run length >= {t.cn_min_centre_ps:g} centre·ps"
    sampled = n_centres * duration_ps
    if not np.isfinite(sampled) or sampled < t.cn_min_centre_ps:
        # centre·ps grow ∝ T; without centres no run length helps
        factor = count_factor(t.cn_min_centre_ps, sampled, floor=1e-12) if sampled > 0 else None
        return Verdict(
            "insufficient",
            crit,
            f"{n_centres} centre(s) × {duration_ps:.3g} ps = {sampled:.3g} centre·ps < {t.cn_min_centre_ps:g}: "
            "the shells cannot have exchanged, so the CN block error is not an error bar",
            float("inf") if n_centres == 0 else factor,
        )
    return Verdict("converged", crit)


def _finish(s: ShellAnalysis, targets: ConvergenceTargets | None) -> ShellAnalysis:
    v = shell_verdict(s, targets)
    s.status, s.criterion, s.reason, s.run_factor = v.status, v.criterion, v.reason, v.run_factor
    return s


def first_minimum(
    r: ArrayLike,
    g: ArrayLike,
    *,
    g_err: ArrayLike | None = None,
    g_blocks: ArrayLike | None = None,
    cn_r: ArrayLike | None = None,
    cn: ArrayLike | None = None,
    cn_blocks: ArrayLike | None = None,
    threshold: float | None = None,
    smooth: float = 0.1,
    peak_prominence: float = 0.1,
    min_prominence: float = 0.05,
    n_sigma: float = 3.0,
    targets: ConvergenceTargets | None = None,
) -> ShellAnalysis:
    r"""Locate the first peak and the first minimum after it, robustly; never raises on flat or noisy data.

    See the module docstring for the algorithm and the significance test.

    Parameters
    ----------
    r, g : array_like, shape (n,)
        Increasing radii (Å; bin centres) and g(r).  Non-finite g values are interpolated between finite
        neighbours (an all-NaN curve is treated as 0).
    g_err : array_like, shape (n,), optional
        Standard error of g per bin (e.g. ``RDFResult.g_err``), propagated to the smoothed curve assuming
        independent bins.
    g_blocks : array_like, shape (n_blocks, n), optional
        Per-block g (e.g. ``RDFResult.g_blocks``); when given (>= 2 blocks) the error of the smoothed curve is
        the standard error of the smoothed blocks, which includes the correlation between bins.
    cn_r, cn : array_like, optional
        Running coordination number ``cn`` at radii ``cn_r`` (e.g. ``edges`` and ``[0, *coordination]``).
    cn_blocks : array_like, shape (n_blocks, len(cn_r)), optional
        Per-block running coordination numbers for ``cn_err``.
    threshold : float, optional
        Minimum smoothed peak height (None, the default: any height).
    smooth : float
        Gaussian smoothing width (Å; 0 = none).
    peak_prominence : float
        Smallest accepted peak-to-minimum drop of smoothed g when no errors are given (units of g).
    min_prominence : float
        Smallest prominence of a candidate peak, smallest rise after a minimum, and floor of the drop when
        errors are given (units of g).
    n_sigma : float
        Significance level of the peak-to-minimum drop and of the rise after the minimum.
    targets : ConvergenceTargets, optional
        Convergence targets for the Verdict (``cn_max_err``); defaults to ``ConvergenceTargets()``.

    Returns
    -------
    ShellAnalysis
        Peak position and height are taken from the raw curve (largest sample within ``max(2 bins, smooth)`` of the
        smoothed peak); the minimum position is the parabola vertex of the smoothed curve; ``cn`` is ``cn``
        interpolated at ``r_min``.
    """
    r = np.asarray(r, dtype=np.float64).ravel()
    y = np.asarray(g, dtype=np.float64).ravel()
    if r.shape != y.shape:
        raise ValueError("r and g must have the same length")
    if not (np.isfinite(smooth) and smooth >= 0):
        raise ValueError("smooth must be a finite width >= 0 (Å)")
    if r.size < 3:
        return _finish(ShellAnalysis(detection_reason="fewer than 3 points"), targets)
    if not np.all(np.isfinite(r)) or np.any(np.diff(r) <= 0):
        raise ValueError("r must be finite and strictly increasing")
    dr = (r[-1] - r[0]) / (r.size - 1)
    y = _fill(y, r)
    r_in = r
    if not np.allclose(np.diff(r), dr, rtol=1e-6, atol=0.0):  # smooth on a uniform grid
        r = np.linspace(r[0], r[-1], r.size)
        y = np.interp(r, r_in, y)
    w = _kernel(smooth / dr, r.size)
    ys = _convolve(y, w)
    sig: FloatArray | None = None
    if g_blocks is not None and np.ndim(g_blocks) == 2 and np.shape(g_blocks)[0] >= 2:
        gb = _convolve(_as_curve(g_blocks, r_in, r), w)
        sig = block_standard_error(gb)
    elif g_err is not None:
        var = _as_curve(np.asarray(g_err, dtype=np.float64).ravel(), r_in, r) ** 2
        sig = np.sqrt(np.maximum(_convolve(var, w**2), 0.0))
    zero = np.zeros_like(ys)
    s_ = sig if sig is not None else zero
    height = None if threshold is None else threshold
    peaks, _ = find_peaks(ys, height=height, prominence=min_prominence)
    if peaks.size == 0:
        above = "" if threshold is None else f" above {threshold:g}"
        return _finish(
            ShellAnalysis(
                detection_reason=f"no maximum of smoothed g{above} with prominence >= {min_prominence:g} "
                f"(max smoothed g = {ys.max():.3g})"
            ),
            targets,
        )
    notes: list[str] = []
    for ip in (int(p) for p in peaks):
        tail = -ys[ip:]
        valleys, vprops = find_peaks(tail, prominence=min_prominence)
        ok = vprops["prominences"] >= n_sigma * s_[ip + valleys]
        valleys = valleys[ok]
        half = max(2, int(np.ceil(smooth / dr)))
        lo = max(ip - half, 0)
        j = lo + int(np.argmax(y[lo : ip + half + 1]))
        r_peak, g_peak = float(r[j]), float(y[j])
        # only minima before the curve climbs above this peak again belong to it; without one, the drop is
        # judged to the lowest point of that stretch (a shoulder of a higher peak, or a peak without minimum)
        higher = np.nonzero(ys[ip:] > ys[ip])[0]
        end = int(higher[0]) if higher.size else ys.size - ip
        valleys = valleys[valleys < end]
        iv = ip + int(valleys[0]) if valleys.size else ip + int(np.argmin(ys[ip : ip + end]))
        depth = float(ys[ip] - ys[iv])
        err = float(np.hypot(s_[ip], s_[iv]))
        need = max(min_prominence, n_sigma * err) if sig is not None else peak_prominence
        if depth >= need and valleys.size == 0:
            notes.append(
                f"no minimum with a rise >= {min_prominence:g}"
                + (f" and >= {n_sigma:g} sigma" if sig is not None else "")
                + f" after the peak at {r_peak:.3g} Å"
            )
            return _finish(
                ShellAnalysis(r_peak=r_peak, g_peak=g_peak, detection="no_minimum", detection_reason=_join(notes)),
                targets,
            )
        if depth >= need:
            out = ShellAnalysis(
                r_peak=r_peak,
                g_peak=g_peak,
                significance=(depth / err if sig is not None and err > 0 else None),
                detection="ok",
                detection_reason=_join(notes),
            )
            out.r_min, out.g_min = _refine(r, ys, iv)
            break
        msg = (
            f"peak at {r[ip]:.3g} Å (smoothed g = {ys[ip]:.3g}) not significant: drop to the minimum at "
            f"{r[iv]:.3g} Å is {depth:.3g} < {need:.3g}"
            + (f" ({n_sigma:g} sigma = {n_sigma * err:.3g})" if sig is not None else " (no errors given)")
        )
        if ys[iv] < 0.5 * ys[ip]:  # a separated peak that is not resolved: never promote a later one
            notes.append(msg + "; not replaced by a later peak")
            return _finish(ShellAnalysis(detection_reason=_join(notes)), targets)
        notes.append(msg + " (shoulder skipped)")
    else:
        return _finish(ShellAnalysis(detection_reason=_join(notes)), targets)
    if cn_r is not None and cn is not None:
        cr = np.asarray(cn_r, dtype=np.float64)
        out.cn = float(np.interp(out.r_min, cr, np.asarray(cn, dtype=np.float64)))
        if cn_blocks is not None:
            cb = np.atleast_2d(np.asarray(cn_blocks, dtype=np.float64))
            if cb.shape[0] >= 2:
                vals = np.array([np.interp(out.r_min, cr, row) for row in cb])
                out.cn_err = float(block_standard_error(vals))
    return _finish(out, targets)


def first_peak(r: ArrayLike, g: ArrayLike, **kwargs: Any) -> tuple[float, float]:
    """``(r_peak, g_peak)`` of the first significant peak (NaNs if none); options as in :func:`first_minimum`."""
    s = first_minimum(r, g, **kwargs)
    return s.r_peak, s.g_peak


def shell_analysis(
    result: RDFResult,
    targets: ConvergenceTargets | None = None,
    frame_interval_ps: float | None = None,
    **kwargs: Any,
) -> ShellAnalysis:
    """:func:`first_minimum` of an :class:`RDFResult` with its running coordination number and block errors.

    With ``frame_interval_ps`` (ps between the frames the RDF used) the verdict also requires enough sampled
    shell exchange (:func:`shell_sampling_verdict` with ``result.n_a`` centres over the run).
    """
    cn_blocks = None
    if result.coordination_blocks is not None:
        cn_blocks = np.hstack([np.zeros((result.coordination_blocks.shape[0], 1)), result.coordination_blocks])
    s = first_minimum(
        result.r,
        result.g,
        g_err=result.g_err,
        g_blocks=result.g_blocks,
        cn_r=result.edges,
        cn=np.concatenate([[0.0], result.coordination]),
        cn_blocks=cn_blocks,
        targets=targets,
        **kwargs,
    )
    if frame_interval_ps is not None:
        duration = max(result.n_frames - 1, 0) * float(frame_interval_ps)
        v = worst(s.verdict, shell_sampling_verdict(result.n_a, duration, targets))
        s.status, s.criterion, s.reason, s.run_factor = v.status, v.criterion, v.reason, v.run_factor
    return s
