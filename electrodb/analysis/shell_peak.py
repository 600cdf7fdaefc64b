r"""First-peak position of a g(r) as a time series: its error, its N_eff and a verdict of its own.

Pure numpy/scipy, no I/O.  Lengths in Å.

Why a peak position has its own verdict
---------------------------------------
A coordination number averages over the members a shell takes in and lets go: it needs exchange events
(:func:`~electrodb.analysis.shell_sampling.shell_exchange_verdict`), which a strongly bound shell (water around
Li⁺: tens of ps) may not show in a short run.  The position of the first peak is sampled by the *vibration* of
the shell members against their centre, which a run samples within picoseconds whether or not a member ever
leaves.  So ``r_peak`` can converge where the CN cannot, and is judged on its own series.

The estimator and its series
----------------------------
The peak position is the vertex of the parabola through the three grid points around the maximum of the
production g(r) smoothed with a Gaussian of :data:`PEAK_SMOOTH_A` (0.05 Å), searched within
:data:`PEAK_SEARCH_A` of the detected peak (:func:`~electrodb.analysis.shells.first_minimum`).  Smoothing moves
the peak of an asymmetric shell by about :math:`\sigma^2 g'''/(2|g''|)`: under 0.01 Å at 0.05 Å for first
peaks 0.1–0.2 Å wide (0.1 Å, the detection's smoothing, would move it by up to 0.03 Å).  Its error comes from
the time blocks of the g(r) series (:mod:`electrodb.analysis.structure_sampling`, up to 200 blocks), each turned
into a *linearised* peak position (the delta method, as for a_cc in :mod:`electrodb.analysis.kb_series`):

.. math::

    r_k = r_p + \Delta r\,\frac{\delta a_k\, b - a\, \delta b_k}{2 b^2},\qquad
    a = \tilde g_{i-1} - \tilde g_{i+1},\quad b = \tilde g_{i-1} - 2\tilde g_i + \tilde g_{i+1},

with :math:`\tilde g` the smoothed mean over the production blocks, :math:`\delta` a block's deviation from it
and :math:`\Delta r` the bin width.  The frame-weighted mean of the :math:`r_k` is :math:`r_p` exactly, and they
fluctuate as the estimator does, so :func:`electrodb.analysis.sampling.analyse_series` gives its N_eff,
Student-t error and halves test.  (A peak found in each short block on its own would be the peak of noise.)

Verdict (:func:`peak_verdict`, the worst of)
--------------------------------------------
* the shell is resolved (:func:`~electrodb.analysis.shells.shell_resolution_verdict`: a first peak, a first
  minimum at most ``shell_max_width_A`` beyond it and an excluded core);
* the peak-position series holds ≥ ``min_n_eff`` independent samples, its halves agree within
  ``stationarity_sigma``, its error is not exactly 0 and at most ``r_max_err_A`` (0.02 Å);
* **the centres moved**: their RMS displacement over the production frames is at least ``r_min_travel_A``
  (1 Å), else ``insufficient``.

The last criterion is what refuses a static structure.  Frozen frames with noise (a lattice with 0.05 Å per
frame, labelled 1 ps apart) give a white peak-position series with 40 "independent" samples and an error of a
few mÅ: the series fluctuates, but only with the noise around *one* configuration, and its error says how well
that configuration's peak is known, not the liquid's.  In a liquid the shell is sampled in many surroundings
(its orientation, distortion and second shell renew while its centre moves), and every atom moves farther than
a vibration takes it (0.1–0.3 Å RMS at room temperature); a centre that moved 1 Å has left its starting
surroundings.  "The run spans several vibrational periods" is then what N_eff checks: frames closer than a
vibrational period are correlated and count for less, and with frames farther apart than a period (where a
white series is what real MD gives too) the displacement test tells a liquid from copies of one structure.

``run_factor``: N_eff ∝ T, the error ∝ 1/√T, the centres' displacement ∝ √T (diffusive); a drift has no known
scaling (:mod:`electrodb.analysis.run_factor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from electrodb.analysis.convergence import ConvergenceTargets, Verdict, worst
from electrodb.analysis.run_factor import rms_factor, series_factor
from electrodb.analysis.sampling import SeriesReport, analyse_series, sampling_problems
from electrodb.analysis.shell_sampling import rms_travel
from electrodb.analysis.structure import RDFResult

__all__ = ["PEAK_SEARCH_A", "PEAK_SMOOTH_A", "PeakSampling", "peak_series", "peak_verdict", "shell_peak"]

#: Gaussian smoothing (Å) of the g(r) whose maximum is the peak position.
PEAK_SMOOTH_A = 0.05
#: Half-width (Å) of the search for the maximum around the detected first peak.
PEAK_SEARCH_A = 0.15


@dataclass(frozen=True)
class PeakSampling:
    """First-peak position of one pair over the production frames, with its series and verdict.

    Attributes
    ----------
    r_peak, r_peak_err : float or None
        Peak position (Å) and its Student-t error (Å); None when no interior maximum was found.
    report : SeriesReport or None
        The linearised peak-position series (one value per time block after the cut).
    travel_A : float or None
        RMS displacement of the centres over the production frames (Å; unwrapped positions).
    verdict : Verdict
    """

    r_peak: float | None
    r_peak_err: float | None
    report: SeriesReport | None
    travel_A: float | None
    verdict: Verdict

    def as_dict(self, t_equil_ps: float) -> dict[str, Any]:
        """The ``peak`` entry of a stored shell: value, error, series record and verdict."""
        rep = self.report
        return {
            "r_peak": self.r_peak,
            "r_peak_err": self.r_peak_err,
            "n_eff": None if rep is None else float(rep.n_eff),
            "stat_inefficiency": None if rep is None else float(rep.g),
            "halves_z": None if rep is None or rep.halves_z is None else float(rep.halves_z),
            "t_equil_ps": float(t_equil_ps),
            "travel_A": self.travel_A,
            "smooth_A": PEAK_SMOOTH_A,
            **self.verdict.as_dict(),
        }


def peak_series(
    r: np.ndarray,
    g_blocks: np.ndarray,
    weights: np.ndarray | None,
    r_guess: float,
    smooth_A: float = PEAK_SMOOTH_A,
    search_A: float = PEAK_SEARCH_A,
) -> tuple[float, np.ndarray] | None:
    """Peak position of the frame-weighted mean of ``g_blocks`` and its linearised value per block (module text).

    Parameters
    ----------
    r : (n,) array
        Uniform grid of bin centres, Å.
    g_blocks : (n_blocks, n) array
        g(r) per time block.
    weights : (n_blocks,) array or None
        Frames per block (default equal).
    r_guess : float
        The detected first peak, Å; the maximum is searched within ``search_A`` of it.

    Returns
    -------
    (r_peak, series) or None
        None when the smoothed mean has no maximum strictly inside the search window.
    """
    r = np.asarray(r, dtype=float)
    gb = np.atleast_2d(np.asarray(g_blocks, dtype=float))
    if r.size < 3 or not np.isfinite(r_guess) or not np.isfinite(gb).all():
        return None
    dr = float(r[1] - r[0])
    sigma = smooth_A / dr
    pad = int(4.0 * sigma + 0.5) + 2  # the kernel's reach (truncated at 4 σ): the window is smoothed exactly
    near = np.flatnonzero(np.abs(r - r_guess) <= search_A)
    if near.size < 3:
        return None
    lo, hi = max(int(near[0]) - pad, 0), min(int(near[-1]) + pad + 1, r.size)
    ys = gaussian_filter1d(gb[:, lo:hi], sigma, axis=-1, mode="nearest", truncate=4.0) if sigma > 0 else gb[:, lo:hi]
    wt = np.ones(gb.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    mean = wt @ ys / wt.sum()
    win = near - lo
    i = int(win[np.argmax(mean[win])])
    if i in (int(win[0]), int(win[-1])) or i == 0 or i == mean.size - 1:
        return None
    y = mean[i - 1 : i + 2]
    a, b = y[0] - y[2], y[0] - 2.0 * y[1] + y[2]
    if not b < 0:
        return None
    r_p = float(r[lo + i] + 0.5 * a / b * dr)
    d = ys[:, i - 1 : i + 2] - y
    da, db = d[:, 0] - d[:, 2], d[:, 0] - 2.0 * d[:, 1] + d[:, 2]
    return r_p, r_p + dr * (da * b - a * db) / (2.0 * b * b)


def _criterion(t: ConvergenceTargets) -> str:
    return (
        f"first shell resolved; peak-position series: >= {t.min_n_eff:g} independent samples, halves within "
        f"{t.stationarity_sigma:g} sigma, 0 < error <= {t.r_max_err_A:g} Å; centres' RMS displacement >= "
        f"{t.r_min_travel_A:g} Å"
    )


def peak_verdict(
    resolution: Verdict,
    report: SeriesReport | None,
    travel_A: float | None,
    what: str,
    targets: ConvergenceTargets | None = None,
) -> Verdict:
    """Verdict of a first-peak position (the worst of the criteria in the module text).

    Parameters
    ----------
    resolution : Verdict
        :func:`~electrodb.analysis.shells.shell_resolution_verdict` of the shell.
    report : SeriesReport or None
        The peak-position series (:func:`peak_series` through :func:`~electrodb.analysis.sampling.analyse_series`).
    travel_A : float or None
        RMS displacement of the centres over the production frames, Å.
    what : str
        Name for the reasons, e.g. ``"the Na–O first-peak position"``.
    """
    t = targets or ConvergenceTargets()
    crit = _criterion(t)
    parts = [Verdict(resolution.status, crit, resolution.reason, resolution.run_factor)]
    if report is None:
        parts.append(Verdict("insufficient", crit, f"no series of {what} (no maximum of the smoothed g(r) near it)"))
        return worst(*parts)
    reasons = sampling_problems(report, t.min_n_eff, t.stationarity_sigma, what)
    if report.err > t.r_max_err_A:
        reasons.append(f"standard error of {what} {report.err:.3g} Å > {t.r_max_err_A:g} Å")
    if reasons:
        parts.append(
            Verdict("unconverged", crit, "; ".join(reasons), series_factor(report, t.min_n_eff, t.r_max_err_A))
        )
    if travel_A is None or not travel_A >= t.r_min_travel_A:
        moved = "not measured" if travel_A is None else f"{travel_A:.2g} Å"
        parts.append(
            Verdict(
                "insufficient",
                crit,
                f"the centres moved {moved} (RMS) over the production frames, < {t.r_min_travel_A:g} Å: the frames "
                "show the shell in one configuration (vibration or noise around it), not sampled in the liquid",
                rms_factor(t.r_min_travel_A, travel_A),
            )
        )
    return worst(*parts)


def shell_peak(
    fine: RDFResult,
    start: int,
    r_guess: float,
    resolution: Verdict,
    centres_start: np.ndarray | None,
    centres_end: np.ndarray | None,
    what: str,
    targets: ConvergenceTargets | None = None,
) -> PeakSampling:
    """Peak position of ``fine``'s production blocks (``start:``) near ``r_guess``, its series and verdict.

    ``centres_start`` and ``centres_end`` are the centres' unwrapped positions (n, 3) at the first and last
    production frame, for their RMS displacement (None: not measured).
    """
    travel = None
    if centres_start is not None and centres_end is not None and len(centres_start):
        travel = rms_travel(centres_start, centres_end)
    found = None
    if fine.g_blocks is not None and np.isfinite(r_guess):
        weights = None if fine.block_frames is None else fine.block_frames[start:]
        found = peak_series(fine.r, fine.g_blocks[start:], weights, r_guess)
    report = None
    if found is not None and found[1].size >= 2:
        report = analyse_series(found[1], detect_start=False)
    verdict = peak_verdict(resolution, report, travel, what, targets)
    r_p = None if found is None else found[0]
    return PeakSampling(r_p, None if report is None else float(report.err), report, travel, verdict)
