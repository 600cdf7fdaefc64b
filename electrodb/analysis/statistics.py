r"""Time-series statistics shared by every property: how precise is the mean of a correlated series?

Pure numpy/scipy, no I/O.  Every property is an average over correlated MD frames; this module holds the one
implementation of each estimator that turns such a series into a mean and an honest error bar.

Units
-----
Every function works in **samples** of a series taken at a fixed interval :math:`\Delta t` (lags, block sizes,
correlation and equilibration times; multiply by :math:`\Delta t` for a time).  Means and errors carry the unit of
the series; g, effective sample sizes and Student-t factors are dimensionless.

Autocorrelation
---------------
For a series :math:`x_0 \dots x_{N-1}` with mean :math:`\bar x` and :math:`\delta x_i = x_i - \bar x`,

.. math::

    C(t) = \frac{1}{\sigma^2}\,\frac{1}{N - t}\sum_{i=0}^{N-t-1} \delta x_i\,\delta x_{i+t},
    \qquad \sigma^2 = \frac{1}{N}\sum_i \delta x_i^2 ,

the normalised autocorrelation averaged over all :math:`N - t` time origins (:func:`autocorrelation`; by FFT,
zero-padded to :math:`2N - 1` points).  :func:`autocovariance` is the same sum without centring or normalisation,
averaged over the columns of a multi-component series (the off-diagonal stresses of a Green–Kubo integral).

Statistical inefficiency and integrated autocorrelation time
------------------------------------------------------------
The variance of the mean of :math:`N` correlated samples is :math:`\sigma^2 g / N` with the statistical
inefficiency

.. math::

    g = 1 + 2\sum_{t=1}^{N-1}\Big(1 - \frac{t}{N}\Big)\,C(t) = 1 + 2\tau ,

the number of samples per independent one (:math:`g \ge 1`; :math:`N/g` is the effective sample size).  In
Sokal's convention the integrated autocorrelation time is :math:`\tau_\mathrm{int} = \tfrac12 + \sum_{t \ge 1}
C(t) = g/2`; here :math:`\tau = (g - 1)/2` (Chodera et al. 2007).  For a first-order autoregressive (AR(1))
series :math:`x_i = \varphi x_{i-1} + \epsilon_i`, :math:`C(t) = \varphi^t` and
:math:`g = (1 + \varphi)/(1 - \varphi)` (:func:`ar1_statistical_inefficiency`); an exponential correlation
:math:`e^{-t\Delta t/\tau_c}` sampled every :math:`\Delta t` is AR(1) with :math:`\varphi = e^{-\Delta t/\tau_c}`,
:math:`g \approx 2\tau_c/\Delta t` for :math:`\Delta t \ll \tau_c`.

**Truncation rule.** The tail of the estimated :math:`C(t)` is pure noise whose summed variance grows with the number
of lags, so the sum must be cut. :func:`statistical_inefficiency` stops at the first lag :math:`t >` ``mintime``
(default 3) with :math:`C(t) \le 0` and excludes that lag: pymbar's ``timeseries.statistical_inefficiency`` (unit
increments), the reference this module follows. Sokal's self-consistent window is the common alternative (compared
below); both need runs many correlation times long.

**When it applies.**  Stationary series at least ~50 correlation times long; a shorter one cannot reveal a
correlation longer than itself (:math:`C(t)` crosses zero early, g near 1).  Where a lower bound on the correlation
time is known, floor g with :func:`ar1_statistical_inefficiency` (:func:`electrodb.analysis.md_checks`).

Statistical inefficiency for error bars
---------------------------------------
:func:`inefficiency`, behind every property's error bar (:mod:`electrodb.analysis.sampling`), starts from the same
truncated sum (pymbar's value, ``g_sum``) and changes three things: the first two made the errors of series only
some 20–100 correlation times long too small (ideal gases at 1 Å per frame: z spread 1.07–1.15), the third those
of nearly white series too large:

* **The sample mean.**  Every :math:`\hat C(t)` is computed about :math:`\bar x`, not the true mean, and is low
  by :math:`\mathrm{Var}(\bar x)/\sigma^2` on average; over a window of M lags the summed deficit is
  :math:`E[\hat g\,s^2] = N\,\mathrm{Var}(\bar x)\,(N - 1 - 2M + M(M+1)/N)/N` (exact for a fixed window;
  the same algebra makes :math:`s^2/(N-1)` the variance of the mean of white noise, M = 0).  So

  .. math::

      g = g_\mathrm{sum}\,\frac{N}{N - 1 - 2M + M(M+1)/N}

  (2 % for M = 15 lags of N = 1500, 15 % for 13 lags of 200).  On a series with a diffusive tail
  (:math:`C(t) = (1 + t/3)^{-3/2} e^{-t/30}`, 400 samples, g = 7.1) the plain sum gave 0.92 of the variance of
  the mean, the corrected one 1.03 (``tests/analysis/test_sampling.py``).
* **How well the error itself is known.**  A sum of M + 1 estimated autocovariances scatters with
  :math:`\mathrm{Var}(\hat g)/g^2 \approx 2(2M+1)/N` (Priestley, *Spectral Analysis and Time Series* (1981)
  §6.2; Madras & Sokal, J. Stat. Phys. 50, 109 (1988)), a :math:`\chi^2` with :math:`\nu = N/(2M + 1)` degrees
  of freedom, not :math:`N/g - 1`: the Student-t factor of the error takes :math:`\nu` (at most N/g − 1).  An
  AR(1) series with φ = 0.8 and 200 samples (N_eff ≈ 23) has ν ≈ 4–15 (median 8); over 1000 such series the
  z spread was 1.13 with the plain sum and N_eff − 1, 1.01 with ν, 0.95 with t's standard deviation
  :math:`\sqrt{\nu/(\nu-2)}` for its 68 % quantile (:func:`~electrodb.analysis.sampling.student_t_std_factor`).
* **No floor at 1.**  A nearly white series' estimate scatters around 1 (26 % for the 3 lags always summed of
  200 samples), and pymbar's floor at 1 kept only the half above: z spread 0.93 on 1,000 white series of 200
  samples, 0.98 with :data:`G_MIN` = 0.5 (an N_eff above N is then noise around N, as a g below 1 is).

The window is pymbar's, so that ``g_sum`` is pymbar's number (before the floor). Tried on the same series (white
noise, AR(1), diffusive tails cut off by a box, an exponential plus white noise, moving averages, and the ideal-gas
and hydrated-ion series of ``benchmarks/coverage_structure.py``), each with the same correction and degrees of
freedom: Geyer's initial positive sequence came within 0.02 of it (its pairs keep a little more positive noise on
nearly white series), Geyer's convex sequence and Sokal's self-consistent window (:math:`M \ge c\,\tau(M)`, c = 4–6)
left the slowest ideal-gas series less covered (z spread up to 1.12–1.15 against 1.10 over 400 seeds). What no
window fixes: a series whose true N_eff is near the target passes the N_eff test when its g came out low, and then
its error is small (the converged runs' z spread is 1.2–1.3 there, with every estimator tried).

A finite-range correlation known from how a series was made (overlapping windows, ``g_floor`` of
:func:`electrodb.analysis.sampling.analyse_series`) is compared with the plain sum: where the correlation ends
sharply, the truncation rule runs on into the noise beyond and keeps positive noise, which offsets the mean deficit
(moving averages of 10–50 samples with N_eff 30–60: the plain sum gives 1.05–1.09 of the true variance of the mean,
the corrected one 1.16–1.25).

Standard error of a correlated mean
-----------------------------------
.. math::

    \mathrm{SEM} = \sigma\sqrt{g/N}

(:func:`timeseries_error`, returning a :class:`SeriesEstimate`): pymbar's numbers, for comparison with it.
Every stored error, the run temperature (:mod:`electrodb.analysis.md_checks`) and the
:math:`\langle\partial U/\partial\lambda\rangle` of every thermodynamic-integration window
(:mod:`electrodb.analysis.ti_paths`) use :func:`inefficiency` instead, through
:func:`electrodb.analysis.sampling.mean_estimate` and :func:`~electrodb.analysis.sampling.analyse_series`.

Block averages and the blocking curve
-------------------------------------
Cut the series into :math:`B` contiguous blocks of :math:`n_b = \lfloor N/B \rfloor` samples (trailing
:math:`N \bmod B` samples are dropped) with means :math:`\bar x_k`.  When the blocks are much longer than the
correlation time their means are independent and

.. math::

    \mathrm{SEM} = \frac{s(\bar x_k)}{\sqrt B}, \qquad
    s^2(\bar x_k) = \frac{1}{B - 1}\sum_k (\bar x_k - \bar{\bar x})^2

(:func:`block_mean_error`, :func:`block_average`; :func:`block_standard_error` for per-block values of any
derived quantity).  Blocks need no estimate of :math:`C(t)` and extend to quantities that are not means of a
frame series: ElectroDB evaluates D, the residence time τ, g(r) and the running coordination number, the
Green–Kubo viscosity, Kirkwood–Buff integrals and :math:`a_{cc}` once per block and reports the standard error of
the block values.  The blocking curve (:func:`blocking_curve`, Flyvbjerg & Petersen 1989) is the block SEM
against block size :math:`1, 2, 4, \dots`: it rises while the blocks are shorter than the correlation time and
levels off at the true SEM; a curve still rising at its largest block sizes means the run is too short for
its error bar.

**Few blocks.**  :math:`s(\bar x_k)` from :math:`B` blocks is itself uncertain (relative standard deviation
:math:`\approx 1/\sqrt{2(B-1)}`, 35 % for 5 blocks), and :math:`(\bar{\bar x} - \mu)\sqrt B / s` follows Student's
t with :math:`B - 1` degrees of freedom, so the half-width of the 68.3 % (one-sigma) confidence interval is

.. math::

    t_{0.841,\,B-1}\; s/\sqrt B

(:func:`student_t_factor`: 1.14 for 5 blocks, 1.06 for 10, :math:`\to 1` for many).  D and the Green–Kubo η
report this inflated half-width; the other block errors are the plain standard error.

Equilibration detection
-----------------------
The initial transient of a run biases every average.  :func:`detect_equilibration` picks the start of
production :math:`t_0` that maximises the number of effectively independent samples left,

.. math::

    t_0 = \arg\max_{t_0}\; \frac{N - t_0}{g(t_0)},

:math:`g(t_0)` the statistical inefficiency of :math:`x_{t_0} \dots x_{N-1}` (Chodera 2016): discarding the
transient lowers :math:`g` (the drift looks like a long correlation) more than it costs samples.  Candidates are
evenly spaced in :math:`[0, N/2]`.

Example
-------
>>> import numpy as np
>>> from scipy.signal import lfilter
>>> from electrodb.analysis.statistics import ar1_statistical_inefficiency, timeseries_error
>>> rng = np.random.default_rng(0)
>>> phi = 0.9                                              # AR(1): g = 19
>>> noise = rng.standard_normal(100_000)
>>> noise[0] /= np.sqrt(1 - phi**2)                        # start in the stationary distribution
>>> x = lfilter([1.0], [1.0, -phi], noise)
>>> est = timeseries_error(x)
>>> round(ar1_statistical_inefficiency(phi)), bool(abs(est.statistical_inefficiency / 19 - 1) < 0.15)
(19, True)

References
----------
* J. D. Chodera, W. C. Swope, J. W. Pitera, C. Seok, K. A. Dill, J. Chem. Theory Comput. 3, 26 (2007) —
  statistical inefficiency of correlated series; pymbar's ``timeseries`` module.
* J. D. Chodera, J. Chem. Theory Comput. 12, 1799 (2016) — automated equilibration detection.
* H. Flyvbjerg, H. G. Petersen, J. Chem. Phys. 91, 461 (1989) — block averaging, the blocking curve.
* A. D. Sokal, in *Functional Integration* (Cargèse 1996), NATO ASI Series B 361, 131 (1997) — integrated
  autocorrelation time and its windowing.
* M. R. Shirts, J. D. Chodera, pymbar, ``pymbar.timeseries`` (https://github.com/choderalab/pymbar) — the
  reference implementation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import stats

__all__ = [
    "G_MIN",
    "Inefficiency",
    "SeriesEstimate",
    "ar1_statistical_inefficiency",
    "autocorrelation",
    "autocovariance",
    "block_average",
    "block_mean_error",
    "block_means",
    "block_standard_error",
    "blocking_curve",
    "detect_equilibration",
    "inefficiency",
    "statistical_inefficiency",
    "student_t_factor",
    "timeseries_error",
]


@dataclass(frozen=True)
class SeriesEstimate:
    """Mean of a correlated time series with its standard error.

    Attributes
    ----------
    mean : float
        Mean of the series, unit of the series.
    sem : float
        Standard error of ``mean``, unit of the series.
    statistical_inefficiency : float
        :math:`g = 1 + 2\\tau` (samples per independent sample, >= 1 for :func:`timeseries_error`).
    n_effective : float
        Effective number of independent samples, :math:`N/g`.
    """

    mean: float
    sem: float
    statistical_inefficiency: float
    n_effective: float


# ------------------------------------------------------------------------------------------- autocorrelation
def _fft_autocovariance(x: np.ndarray, n_fft: int, real_power: bool) -> np.ndarray:
    """``sum_k x_k x_{k+m} / (C (N - m))`` of (N,) or (N, C) ``x`` by an ``n_fft``-point FFT (columns averaged).

    ``real_power`` keeps only the real part of the power spectrum :math:`F\\bar F` before the inverse transform
    (needed to sum the spectra of several columns); with False the complex product, whose imaginary part is
    rounding noise, is transformed as it is.  The two agree to rounding (~1e-16 relative); each caller keeps the
    variant it has always used so that its stored numbers do not move.
    """
    n = x.shape[0]
    f = scipy.fft.rfft(x, n=n_fft, axis=0)
    power = f * f.conj()
    if real_power:
        power = power.real
    if power.ndim == 2:
        power = power.sum(axis=1)
    acov = scipy.fft.irfft(power, n=n_fft)[:n]
    n_columns = 1 if x.ndim == 1 else x.shape[1]
    return acov / (n_columns * (n - np.arange(n)))


def autocovariance(x: np.ndarray, n_fft: int | None = None) -> np.ndarray:
    """Unbiased autocovariance :math:`\\langle x_k x_{k+m}\\rangle` over all :math:`N - m` time origins, by FFT.

    Not centred: subtract the mean first when it is not zero (and subtract the mean of the *whole* run, not of a
    block, when blocks are compared: per-block means bias :math:`C(t)` by :math:`-\\mathrm{Var}(\\bar x)`).

    Parameters
    ----------
    x : (N,) or (N, C) array
        Series, or C component series sampled together; the C autocovariances are averaged.
    n_fft : int, optional
        FFT length, at least 2N − 1 (zero padding, no wrap-around); default ``scipy.fft.next_fast_len(2N)``.

    Returns
    -------
    (N,) array
        Autocovariance at lags 0 … N − 1 (samples), unit of ``x`` squared.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n_fft is None:
        n_fft = scipy.fft.next_fast_len(2 * n, real=True)
    if n_fft < 2 * n - 1:
        raise ValueError(f"n_fft = {n_fft} < 2N - 1 = {2 * n - 1}: the autocovariance would wrap around")
    return _fft_autocovariance(x, n_fft, real_power=True)


def autocorrelation(x: np.ndarray | Sequence[float]) -> np.ndarray:
    """Normalised autocorrelation of a series, averaged over the N − t pairs at each lag (FFT).

    :math:`C(t) = \\langle\\delta x_i\\,\\delta x_{i+t}\\rangle/\\langle\\delta x^2\\rangle`, see the module docstring.

    Parameters
    ----------
    x : (N,) array_like
        Series at a fixed sampling interval.

    Returns
    -------
    (N,) array
        :math:`C(t)` at lags t = 0 … N − 1 (samples), ``C[0] == 1``; all ones for a constant series.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    dx = x - x.mean()
    acov = _fft_autocovariance(dx, 1 << (2 * n - 1).bit_length(), real_power=False)
    if acov[0] <= 0:
        return np.ones(n)
    return acov / acov[0]


# ------------------------------------------------------------------------------- statistical inefficiency
def statistical_inefficiency(x: np.ndarray | Sequence[float], mintime: int = 3) -> float:
    """Statistical inefficiency :math:`g = 1 + 2\\sum_{t=1}^{N-1}(1 - t/N)\\,C(t)` of a correlated series.

    The sum stops at the first lag :math:`t >` ``mintime`` with :math:`C(t) \\le 0` (that lag excluded): pymbar's
    ``timeseries.statistical_inefficiency`` with unit increments (Chodera et al., J. Chem. Theory Comput. 3, 26
    (2007)).

    Parameters
    ----------
    x : (N,) array_like
        Series at a fixed sampling interval, N >= 2.
    mintime : int
        Lags up to ``mintime`` are always summed, whatever the sign of :math:`C(t)`.

    Returns
    -------
    float
        g in samples per independent sample (dimensionless): 1 for a constant series, never less than 1.
    """
    return _truncated_sum(np.asarray(x, dtype=float), mintime)[0]


def _truncated_sum(x: np.ndarray, mintime: int, floor: float = 1.0) -> tuple[float, int]:
    """pymbar's truncated sum: ``(g, M)`` with g = 1 + 2 Σ_{t=1}^{M} (1 − t/N) C(t) (at least ``floor``) and M
    the lags summed (the sum stops before the first t > ``mintime`` with C(t) ≤ 0); ``(1, 0)`` for a constant
    series."""
    n = x.size
    if n < 2:
        raise ValueError("need at least 2 samples")
    if np.ptp(x) == 0:
        return 1.0, 0
    c = autocorrelation(x)
    t = np.arange(1, n - 1)
    stop = np.nonzero((c[1 : n - 1] <= 0) & (t > mintime))[0]
    last = int(stop[0]) if stop.size else t.size
    g = 1.0 + 2.0 * np.sum((1.0 - t[:last] / n) * c[1 : n - 1][:last])
    return max(floor, float(g)), last


#: Least g :func:`inefficiency` returns; not pymbar's 1 (module text, "No floor at 1").
G_MIN = 0.5


@dataclass(frozen=True)
class Inefficiency:
    """Statistical inefficiency of a series with the window it was summed over and the precision it has.

    Attributes
    ----------
    g : float
        Statistical inefficiency (samples per independent sample, >= :data:`G_MIN`), corrected for the sample
        mean.
    g_sum : float
        The truncated sum before that correction: pymbar's statistical inefficiency of the same series.
    window : int
        Lags summed, M (samples): the autocovariances at lags 1 … M entered the sum.
    dof : float
        Degrees of freedom of the variance-of-the-mean estimate, :math:`N/(2M + 1)` (at most N/g − 1): the
        number of samples whose Student-t factor the error of the mean needs.
    """

    g: float
    g_sum: float
    window: int
    dof: float


def inefficiency(x: np.ndarray | Sequence[float], mintime: int = 3) -> Inefficiency:
    """Statistical inefficiency for an error bar: pymbar's truncated sum corrected for the sample mean, with the
    degrees of freedom of the error it gives (see "Statistical inefficiency for error bars" in the module text).

    Parameters
    ----------
    x : (N,) array_like
        Series at a fixed sampling interval, N >= 2.
    mintime : int
        See :func:`statistical_inefficiency`.

    Returns
    -------
    Inefficiency
        ``g`` (>= :data:`G_MIN`, at most N), the lags summed and the degrees of freedom of the error; a
        constant series gives g = 1, window 0 and N − 1 degrees of freedom.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    g_sum, window = _truncated_sum(x, mintime, floor=G_MIN)
    if window == 0:
        return Inefficiency(1.0, 1.0, 0, float(n - 1))
    # E[sum] = N Var(x̄) (N − 1 − 2M + M(M+1)/N)/N for a fixed window M: every C(t) is low by Var(x̄)/σ²
    denominator = n - 1 - 2 * window + window * (window + 1) / n
    g = min(max(g_sum * n / max(denominator, 1.0), G_MIN), float(n))
    return Inefficiency(float(g), g_sum, window, float(min(n / (2 * window + 1), n / g - 1.0)))


def ar1_statistical_inefficiency(phi: float) -> float:
    """Exact statistical inefficiency :math:`g = (1 + \\varphi)/(1 - \\varphi)` of an AR(1) series, |φ| < 1.

    φ is the lag-one autocorrelation; for an exponential correlation time :math:`\\tau_c` sampled every
    :math:`\\Delta t`, :math:`\\varphi = e^{-\\Delta t/\\tau_c}` (same units for both).
    """
    return (1.0 + phi) / (1.0 - phi)


def timeseries_error(x: np.ndarray | Sequence[float], mintime: int = 3) -> SeriesEstimate:
    """Mean and autocorrelation-corrected standard error :math:`\\mathrm{SEM} = \\sigma\\sqrt{g/N}`.

    Parameters
    ----------
    x : (N,) array_like
        Stationary series at a fixed sampling interval, N >= 2.
    mintime : int
        See :func:`statistical_inefficiency`.

    Returns
    -------
    SeriesEstimate
        Mean and SEM in the unit of ``x`` (σ² the variance with 1/N), g and N/g.
    """
    x = np.asarray(x, dtype=float)
    g = statistical_inefficiency(x, mintime)
    n = x.size
    return SeriesEstimate(float(x.mean()), float(x.std() * math.sqrt(g / n)), g, n / g)


# ------------------------------------------------------------------------------------------------ blocks
def block_means(series: np.ndarray, n_blocks: int, block_size: int | None = None) -> np.ndarray:
    """Means of ``n_blocks`` contiguous blocks of ``block_size`` samples (default ``N // n_blocks``).

    Trailing samples that do not fill a block are dropped.

    Parameters
    ----------
    series : (N, ...) array
        Series along the first axis; further axes are carried along.
    n_blocks : int
    block_size : int, optional
        ``n_blocks * block_size`` must not exceed N.

    Returns
    -------
    (n_blocks, ...) array
        Block means, unit of ``series``.
    """
    s = np.asarray(series, dtype=np.float64)
    size = s.shape[0] // n_blocks if block_size is None else block_size
    return s[: size * n_blocks].reshape(n_blocks, size, *s.shape[1:]).mean(axis=1)


def block_standard_error(values: np.ndarray, axis: int = 0) -> np.ndarray | np.floating:
    """Standard error of the mean of independent block values, :math:`s/\\sqrt B` (s with ddof = 1).

    Parameters
    ----------
    values : array, B >= 2 entries along ``axis``
        One estimate per block (block means, or a quantity evaluated per block: D, τ, g(r), G, ...).
    axis : int
        Axis that runs over the blocks.

    Returns
    -------
    array or numpy scalar
        Standard error, unit of ``values``; the 68.3 % half-width is this times :func:`student_t_factor`.
    """
    v = np.asarray(values, dtype=np.float64)
    return np.std(v, axis=axis, ddof=1) / np.sqrt(v.shape[axis])


def student_t_factor(n_blocks: int) -> float:
    """Student-t factor :math:`t_{0.841,B-1}` turning :math:`s/\\sqrt B` into the 68.3 % interval half-width.

    0.841 = Φ(1), the one-sigma quantile of the normal distribution; the factor is 1.84 for 2 blocks, 1.14 for
    5, 1.06 for 10 and tends to 1 for many blocks.

    Parameters
    ----------
    n_blocks : int
        Number of independent blocks B >= 2 (B − 1 degrees of freedom).

    Returns
    -------
    float
        Dimensionless factor >= 1.
    """
    return float(stats.t.ppf(stats.norm.cdf(1.0), n_blocks - 1))


def block_mean_error(series: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over all samples and its standard error from ``n_blocks`` contiguous blocks.

    Parameters
    ----------
    series : (N, ...) array
        Series along the first axis (e.g. per-frame fractions, shape (N, 3)).
    n_blocks : int
        Number of non-overlapping blocks (trailing ``N mod n_blocks`` samples are dropped for the error).

    Returns
    -------
    mean : ndarray
        Mean over all N samples, unit of ``series``.
    error : ndarray or None
        ``std(block means, ddof=1) / sqrt(n_blocks)``; None if fewer than 2 blocks of at least one sample fit.
    """
    s = np.asarray(series, dtype=np.float64)
    mean = s.mean(axis=0)
    n_b = s.shape[0] // n_blocks if n_blocks >= 2 else 0
    if n_b < 1:
        return mean, None
    return mean, block_standard_error(block_means(s, n_blocks, n_b))


def block_average(x: np.ndarray | Sequence[float], n_blocks: int = 10) -> SeriesEstimate:
    """Block-averaged mean and standard error of a 1-D series as a :class:`SeriesEstimate`.

    SEM = std(block means, ddof = 1)/√n_blocks; trailing samples that do not fill a block are dropped for the
    error (the mean uses all samples).  ``statistical_inefficiency`` reports the implied
    :math:`g = N\\,\\mathrm{SEM}^2/\\sigma^2` (may be below 1 by noise).

    Parameters
    ----------
    x : (N,) array_like
    n_blocks : int
        At least 2, with at least one sample per block.
    """
    x = np.asarray(x, dtype=float)
    if n_blocks < 2 or x.size // n_blocks < 1:
        raise ValueError("need n_blocks >= 2 and at least one sample per block")
    _, err = block_mean_error(x, n_blocks)
    sem = float(err)
    var = x.var()
    g = x.size * sem**2 / var if var > 0 else 1.0
    return SeriesEstimate(float(x.mean()), sem, float(g), x.size / g if g > 0 else float(x.size))


def blocking_curve(x: np.ndarray | Sequence[float], min_blocks: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Block SEM against block size 1, 2, 4, ... while at least ``min_blocks`` blocks fit (Flyvbjerg–Petersen).

    The SEM rises with block size and plateaus at the true standard error once the blocks are longer than the
    correlation time (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461 (1989)).

    Parameters
    ----------
    x : (N,) array_like
    min_blocks : int
        Fewest blocks of the largest block size.

    Returns
    -------
    block_sizes : (n,) int array, samples
    sems : (n,) array, unit of ``x``
    """
    x = np.asarray(x, dtype=float)
    sizes, sems = [], []
    size = 1
    while x.size // size >= min_blocks:
        nb = x.size // size
        sizes.append(size)
        sems.append(block_standard_error(block_means(x, nb, size)))
        size *= 2
    return np.array(sizes), np.array(sems)


# ------------------------------------------------------------------------------------------ equilibration
def detect_equilibration(
    x: np.ndarray | Sequence[float], n_candidates: int = 100, mintime: int = 3
) -> tuple[int, float, float]:
    """Start of production by maximising :math:`N_\\mathrm{eff}(t_0) = (N - t_0)/g(t_0)` (Chodera 2016).

    Parameters
    ----------
    x : (N,) array_like
        Whole series, transient included.
    n_candidates : int
        Candidate :math:`t_0` are this many evenly spaced indices in [0, N/2] (duplicates removed).
    mintime : int
        See :func:`statistical_inefficiency`.

    Returns
    -------
    t0 : int
        First sample of production (samples).
    g : float
        Statistical inefficiency of ``x[t0:]``.
    n_effective : float
        :math:`(N - t_0)/g`.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    candidates = np.unique(np.linspace(0, n // 2, n_candidates).astype(int))
    best = (0, 1.0, -1.0)
    for t0 in candidates:
        g = statistical_inefficiency(x[t0:], mintime)
        n_eff = (n - t0) / g
        if n_eff > best[2]:
            best = (int(t0), g, n_eff)
    return best
