"""How much a time series really knows: its equilibration cut, effective sample size, error and stationarity.

Every per-frame or per-block series behind a stored property (a coordination number per frame, a_cc per block,
pairing fractions per frame, D per block, ...) goes through :func:`analyse_series`, which applies the estimators of
:mod:`electrodb.analysis.statistics` in one fixed order:

1. **Equilibration cut** (Chodera, JCTC 12, 1799 (2016)): the number of effectively independent samples
   :math:`N_\\mathrm{eff}(t_0) = (N - t_0)/g(t_0)` is evaluated on 100 candidate starts in :math:`[0, N/2]`, and the
   earliest start within 10 % of the best is taken; a transient (a lattice start, a box still relaxing) is cut
   instead of averaged in. Taking the arg-max itself (pymbar's choice) selects the start whose :math:`g` happened
   to come out low, and on a stationary AR(1) series with :math:`g \\approx 19` and 1,000 samples that made the
   errors 17 % too small (z spread 1.18 over 300 seeds); the earliest near-optimal start gives 1.08 and still cuts
   a linear transient (mean bias 0.04 standard errors). The cut is reported in samples (and in ps by the
   caller).
2. **Statistical inefficiency** :math:`g` of the production part :math:`x[t_0:]`
   (:func:`~electrodb.analysis.statistics.inefficiency`: pymbar's truncated autocorrelation sum over M lags,
   corrected for the sample mean by :math:`N/(N - 1 - 2M + M(M+1)/N)`), and :math:`N_\\mathrm{eff} = (N - t_0)/g`.
   The same g serves the cut (step 1) and the halves (step 4).
3. **Standard error** :math:`\\sigma_{\\bar x} = k_\\nu\\, s \\sqrt{g/(N - t_0)}` with
   :math:`\\nu = \\min((N - t_0)/(2M + 1), N_\\mathrm{eff} - 1)` degrees of freedom (``dof``), those of the
   estimated g: a sum of M + 1 estimated autocovariances is uncertain by about :math:`\\sqrt{2(2M+1)/N}`
   relative, far more than :math:`1/\\sqrt{2 N_\\mathrm{eff}}` when the series decorrelates slowly. The factor
   :math:`k_\\nu = \\sqrt{\\nu/(\\nu - 2)}` (:func:`student_t_std_factor`) is the standard deviation of Student's
   t: with an error estimated from ν degrees of freedom, (mean − truth)/σ follows t, so the error that makes
   z = (mean − truth)/error spread by 1 is this, not the 68 % quantile :math:`t_{0.841,\\nu}` (1.07 against
   1.12 at ν = 10, 1.11 against 1.29 at ν = 5: the quantile covers 68 %, but t's tails made z spread 1.1–1.2
   wherever ν was 5–10). On ideal gases sampled at 1 Å per frame the plain sum with :math:`N_\\mathrm{eff} - 1`
   made the errors 5–15 % small (z spread 1.07–1.15 over 200 runs); with the mean correction and ν,
   0.94–1.10 (``benchmarks/error_bars.py``, ``docs/methods.md``). With ``g_floor`` (a finite-range correlation
   known from how the series was made) the plain sum is compared with the floor, and a floor above it is used
   with :math:`N_\\mathrm{eff} - 1` degrees of freedom (it is exact; only the variance is estimated), and the
   error keeps the quantile :math:`t_{0.841,\\nu}`: g is then a bound at or above the estimate, and those errors
   cover already (collective transport of Brownian ions, z spread 0.87–0.99; t's standard deviation took them
   to 0.84–0.95). See "Statistical inefficiency for error bars" in :mod:`electrodb.analysis.statistics`.
4. **Stationarity**: the production part is split into halves, each with its own mean and error; their
   difference in units of the combined error, :math:`z = |\\bar x_1 - \\bar x_2| / \\sqrt{\\sigma_1^2 +
   \\sigma_2^2}`, is large when the series drifts (a property that changes over the run has no single value).

:func:`sampling_problems` turns a report into the reasons a value cannot be converged: too few independent
samples (target ``min_n_eff``), halves that disagree (target ``stationarity_sigma``), or an error of exactly zero
(a series that never changed measures nothing, it is not infinitely precise).

Units follow the series; ``dt`` (the sample spacing, e.g. ps per frame) only scales the reported cut.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([np.linspace(5.0, 1.0, 50), 1.0 + rng.normal(0, 0.1, 950)])  # transient, then noise
>>> rep = analyse_series(x)
>>> rep.t0 >= 40 and abs(rep.mean - 1.0) < 0.02
True

References
----------
* J. D. Chodera, J. Chem. Theory Comput. 12, 1799 (2016) — automated equilibration detection.
* J. D. Chodera et al., J. Chem. Theory Comput. 3, 26 (2007); pymbar ``timeseries`` — statistical inefficiency.
* H. Flyvbjerg, H. G. Petersen, J. Chem. Phys. 91, 461 (1989) — errors of correlated averages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from electrodb.analysis.statistics import SeriesEstimate, inefficiency

__all__ = [
    "SeriesReport",
    "analyse_series",
    "equilibration_start",
    "halves_z",
    "mean_estimate",
    "sampling_problems",
    "student_t_dof_factor",
    "student_t_error_factor",
    "student_t_std_factor",
]


@dataclass(frozen=True)
class SeriesReport:
    """What a series knows, after its equilibration cut.

    Attributes
    ----------
    mean : float
        Mean of the production part ``x[t0:]`` (units of the series).
    err : float
        Its standard error, widened to the standard deviation of Student's t on ``dof`` degrees of freedom
        (:func:`student_t_std_factor`; units of the series).
    g : float
        Statistical inefficiency of ``x[t0:]`` (samples per independent sample, ≥ 1).
    n_eff : float
        Effectively independent samples, ``(n - t0) / g``.
    t0 : int
        First sample of the production part (samples cut as equilibration).
    n : int
        Samples in the whole series.
    halves_z : float | None
        Difference of the two halves' means in combined standard errors (None with fewer than 8 samples).
    std : float
        Standard deviation of ``x[t0:]``; 0 for a series that never changed.
    dof : float | None
        Degrees of freedom of ``err``'s Student-t factor (None: ``n_eff - 1``, a report made elsewhere).
    """

    mean: float
    err: float
    g: float
    n_eff: float
    t0: int
    n: int
    halves_z: float | None
    std: float
    dof: float | None = None

    @property
    def t_samples(self) -> float:
        """The sample count whose Student-t factor ``err`` carries: ``dof + 1``."""
        return self.n_eff if self.dof is None else self.dof + 1.0

    def as_dict(self, dt: float = 1.0) -> dict[str, float | int | None]:
        """The fields stored beside a property: ``n_eff``, ``g``, ``t_equil`` (``t0 × dt``) and ``halves_z``."""
        return {
            "n_eff": float(self.n_eff),
            "g": float(self.g),
            "t_equil": float(self.t0 * dt),
            "halves_z": None if self.halves_z is None else float(self.halves_z),
        }


def student_t_error_factor(n_eff: float) -> float:
    """:math:`t_{0.841,\\nu}` for ν = n_eff − 1 (≥ 1) degrees of freedom: the factor that makes a one-sigma error
    from few independent samples cover 68 % (1.84 for 2 samples, 1.03 for 20, → 1)."""
    return student_t_dof_factor(float(n_eff) - 1.0)


def student_t_dof_factor(dof: float) -> float:
    """:math:`t_{0.841,\\nu}` for ν = ``dof`` (at least 1) degrees of freedom of an error estimate."""
    return float(stats.t.ppf(stats.norm.cdf(1.0), max(float(dof), 1.0)))


def student_t_std_factor(dof: float) -> float:
    """:math:`\\sqrt{\\nu/(\\nu - 2)}`, the standard deviation of Student's t with ν = ``dof`` degrees of freedom
    (ν floored at 3, so at most √3), and never less than :func:`student_t_dof_factor`: the factor that makes a
    series' error the standard deviation of (mean − truth) when the error was estimated from ν degrees of
    freedom (module text, step 3): 1.29 for ν = 5, 1.12 for 10, 1.05 for 20, → 1."""
    nu = max(float(dof), 3.0)
    return max(math.sqrt(nu / (nu - 2.0)), student_t_dof_factor(dof))


def _mean_err(x: np.ndarray, g_floor: float = 1.0, std: bool = True) -> tuple[float, float, float, float, float]:
    """``(mean, Student-t error, g, n_eff, dof)`` of a production series (module text, steps 2 and 3); ``std``
    False: the error with the 68 % quantile :math:`t_{0.841,\\nu}` instead of t's standard deviation (the halves
    test, a significance scale)."""
    n = x.size
    if n < 2:
        return float(x.mean()), 0.0, 1.0, float(n), 0.0
    est = inefficiency(x)
    if g_floor > 1.0:  # a finite-range correlation known from how the series was made: compare the plain sum
        g, dof = est.g_sum, min(n / (2 * est.window + 1), n / est.g_sum - 1.0)
        if g_floor > g:  # the floor is exact, not estimated: only the variance is
            g, dof = float(g_floor), n / g_floor - 1.0
    else:
        g, dof = est.g, est.dof
    # with g_floor the g is a bound, not an estimate, and errors were already wide (module text, step 3)
    factor = student_t_std_factor(dof) if std and g_floor <= 1.0 else student_t_dof_factor(dof)
    err = float(x.std()) * math.sqrt(g / n) * factor
    return float(x.mean()), err, g, n / g, float(dof)


def halves_z(x: np.ndarray | Sequence[float], g_floor: float = 1.0) -> float | None:
    """Difference of the means of the two halves of ``x`` in units of their combined (correlation-corrected)
    standard error; None with fewer than 8 samples, ``inf`` when the halves differ but both are constant.
    ``g_floor``: the least statistical inefficiency of each half (see :func:`analyse_series`)."""
    x = np.asarray(x, dtype=float)
    if x.size < 8:
        return None
    half = x.size // 2
    m1, e1, *_ = _mean_err(x[:half], g_floor, std=False)
    m2, e2, *_ = _mean_err(x[half : 2 * half], g_floor, std=False)
    scale = math.hypot(e1, e2)
    if scale == 0.0:
        return 0.0 if m1 == m2 else math.inf
    return abs(m1 - m2) / scale


def equilibration_start(x: np.ndarray, n_candidates: int = 100, tolerance: float = 0.9) -> tuple[int, float]:
    """Earliest start whose effective sample count is within ``tolerance`` of the best (see the module text).

    Returns
    -------
    t0 : int
        First sample of the production part.
    n_eff : float
        :math:`(N - t_0)/g(t_0)`.
    """
    n = x.size
    candidates = np.unique(np.linspace(0, n // 2, n_candidates).astype(int))
    n_eff = np.array([(n - t0) / inefficiency(x[t0:]).g for t0 in candidates])
    first = int(np.flatnonzero(n_eff >= tolerance * n_eff.max())[0])
    return int(candidates[first]), float(n_eff[first])


def analyse_series(
    x: np.ndarray | Sequence[float],
    detect_start: bool = True,
    n_candidates: int = 100,
    g_floor: float = 1.0,
) -> SeriesReport:
    """Equilibration cut, statistical inefficiency, effective samples, Student-t error and the halves test.

    Parameters
    ----------
    x : (N,) array_like
        The series in time order (per frame or per block), transient included.
    detect_start : bool
        Cut the equilibration transient (Chodera 2016); False keeps every sample (a series already known to be
        in equilibrium, or one too short to cut).
    n_candidates
        See :func:`equilibration_start`.
    g_floor : float
        Least statistical inefficiency of the production part (and of each half), for series whose correlation
        is known from how they were made: per-time-origin slopes over overlapping lag windows are correlated
        over at least the window (:func:`electrodb.analysis.collective.brownian_inefficiency`), and an estimate
        from a series only some 30 windows long scatters below that. Such a correlation ends sharply, so the
        plain truncated sum (not corrected for the sample mean, see step 3 of the module text) is compared with
        the floor. 1 (default): the corrected estimate alone.

    Returns
    -------
    SeriesReport
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"analyse_series needs a non-empty 1-D series, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("analyse_series: the series has non-finite values")
    t0 = 0
    if detect_start and x.size >= 8 and x.std() > 0:
        t0, _ = equilibration_start(x, n_candidates=n_candidates)
    prod = x[t0:]
    mean, err, g, n_eff, dof = _mean_err(prod, g_floor)
    return SeriesReport(
        mean=mean,
        err=err,
        g=g,
        n_eff=n_eff,
        t0=int(t0),
        n=int(x.size),
        halves_z=halves_z(prod, g_floor),
        std=float(prod.std()),
        dof=dof,
    )


def mean_estimate(x: np.ndarray | Sequence[float]) -> SeriesEstimate:
    """Mean, standard error, g and N_eff of a series taken as stationary (steps 2 and 3, no cut), as a
    :class:`~electrodb.analysis.statistics.SeriesEstimate`: the same estimator as every property, for the checks
    and intermediate means that report one (the run temperature, a TI window's ⟨∂U/∂λ⟩)."""
    rep = analyse_series(x, detect_start=False)
    return SeriesEstimate(rep.mean, rep.err, rep.g, rep.n_eff)


def sampling_problems(
    report: SeriesReport, min_n_eff: float, stationarity_sigma: float, what: str = "the series"
) -> list[str]:
    """Reasons (plain sentences) why a value from ``report`` cannot be a converged result; empty when none.

    * fewer than ``min_n_eff`` effectively independent samples: correlated frames are not independent data;
    * halves that differ by more than ``stationarity_sigma`` combined standard errors: the value drifts;
    * an error of exactly zero: the series never changed, so it measured nothing.
    """
    out = []
    if report.std == 0.0 or report.err == 0.0:
        out.append(f"{what} never changed over the run (error exactly 0): nothing was sampled")
    if report.n_eff < min_n_eff:
        out.append(
            f"{what} holds {report.n_eff:.1f} independent samples (statistical inefficiency {report.g:.1f} over "
            f"{report.n - report.t0} samples) < {min_n_eff:g}"
        )
    if report.halves_z is not None and report.halves_z > stationarity_sigma:
        out.append(
            f"{what} drifts: the two halves of the run differ by {report.halves_z:.1f} standard errors "
            f"(> {stationarity_sigma:g})"
        )
    return out
