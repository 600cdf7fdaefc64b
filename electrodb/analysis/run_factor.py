r"""How much longer a run must be for a failed criterion to pass: the ``run_factor`` of a Verdict.

``run_factor`` (:class:`electrodb.analysis.convergence.Verdict`) is the production length the failed criteria
need over the production length analysed, from how each criterion's measure grows with the run length T:

==========================================================  ==========================  =============================
measure                                                      grows as                    factor
==========================================================  ==========================  =============================
independent samples (N_eff), exchange / contact events,      ∝ T                         target / measured
turnovers, centre·ps, ideal-gas counts, fit-window length
standard error, relative error                               ∝ 1/√T                      (error / target)² (Student-t
                                                                                         factor followed)
RMS displacement (diffusive)                                 ∝ √T                        (target / measured)²
==========================================================  ==========================  =============================

* A count of zero is read as the bound one event (or one sample) would give: ``target / max(measured, 1)``, a
  lower bound on what the run needs.
* ``math.inf`` where running longer cannot make the criterion pass: it is set by the system (too few atoms or
  ions for an error target, a box too small, no ions of a kind) or by the settings (an integration range).
* None where the scaling is unknown: a drift (halves that disagree, an equilibration that takes too much of the
  run), a series that never changed, a regime that is caged or sub-diffusive on the run's time scale, a shell
  that is not resolved. **A drift gives None, not a guessed factor**: whether it is a transient that a longer
  run cuts off or a change that continues cannot be told from one run; where other criteria of the same value
  give factors, the combined factor (:func:`~electrodb.analysis.convergence.combine_run_factors`) is then a
  lower bound.

The helpers below return the factor of one criterion (≥ 1); the verdict functions next to the science attach
them (:func:`with_run_factor`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from electrodb.analysis.convergence import FAILED_STATUSES, Verdict, combine_run_factors
from electrodb.analysis.sampling import SeriesReport, student_t_error_factor, student_t_std_factor

__all__ = [
    "count_factor",
    "error_factor",
    "rms_factor",
    "series_factor",
    "with_run_factor",
]


def count_factor(target: float, measured: float | None, floor: float = 1.0) -> float | None:
    """Factor for a measure ∝ T (samples, events, turnovers, centre·ps, window length): ``target / measured``.

    ``measured`` below ``floor`` (zero events) is read as ``floor`` (one event), so the factor is then the lower
    bound one event would give. None when ``measured`` is None or not finite; 1 when the target is met.
    """
    if measured is None or not math.isfinite(measured) or not math.isfinite(target):
        return None
    return max(1.0, float(target) / max(float(measured), floor))


def error_factor(
    err: float | None,
    max_err: float,
    n_eff: float | None = None,
    t_factor: Callable[[float], float] = student_t_error_factor,
) -> float | None:
    """Factor for a standard error ∝ 1/√T to reach ``max_err``: ``(err / max_err)²``.

    With ``n_eff`` given, ``err`` is taken to carry the Student-t factor ``t_factor`` of ``n_eff`` samples
    (default :func:`~electrodb.analysis.sampling.student_t_error_factor`), which shrinks as the run
    (and ``n_eff`` with it) grows; the factor solves ``err/t(n) · t(f n) / √f = max_err`` (a few fixed-point
    steps). None when ``err`` is None or not finite; inf when ``max_err`` ≤ 0; 1 when the target is met.
    """
    if err is None or not math.isfinite(err):
        return None
    if not max_err > 0:
        return math.inf
    if err <= max_err:
        return 1.0
    f = (err / max_err) ** 2
    if n_eff is not None and n_eff > 0:
        plain = err / t_factor(n_eff)
        for _ in range(20):
            f = max(1.0, (plain * t_factor(f * n_eff) / max_err) ** 2)
    return max(1.0, f)


def rms_factor(target: float, measured: float | None) -> float | None:
    """Factor for a diffusive RMS displacement ∝ √T to reach ``target``: ``(target / measured)²``.

    None when nothing moved (``measured`` None, not finite or ≤ 0): no scaling can be read from it.
    """
    if measured is None or not math.isfinite(measured) or measured <= 0:
        return None
    return max(1.0, (float(target) / float(measured)) ** 2)


def _series_t_factor(n: float) -> float:
    """The Student-t factor of a series' error (:func:`~electrodb.analysis.sampling.student_t_std_factor`) for
    ``n`` = dof + 1 samples."""
    return student_t_std_factor(n - 1.0)


def series_factor(report: SeriesReport | None, min_n_eff: float, max_err: float | None = None) -> float | None:
    """Factor for the sampling criteria of a series (:func:`~electrodb.analysis.sampling.sampling_problems`) and,
    with ``max_err``, its error target.

    Too few independent samples: ``min_n_eff / n_eff`` (N_eff ∝ T); an error above ``max_err``:
    :func:`error_factor` with the series' Student-t factor. A drift or an error of exactly 0 has no known scaling
    and adds nothing (None when nothing else failed), so with one of them the factor is a lower bound.
    """
    if report is None:
        return None
    factors: list[float | None] = []
    if report.n_eff < min_n_eff:
        factors.append(count_factor(min_n_eff, report.n_eff, floor=1e-12))
    if max_err is not None and report.err > 0 and report.err > max_err:
        factors.append(error_factor(report.err, max_err, report.t_samples, _series_t_factor))  # its t's samples
    return combine_run_factors(*factors)


def with_run_factor(verdict: Verdict, *factors: float | None) -> Verdict:
    """``verdict`` with the run factor of its failed criteria (:func:`combine_run_factors` of ``factors``);
    a converged or input verdict is returned unchanged (it needs no more run)."""
    if verdict.status not in FAILED_STATUSES:
        return verdict
    return replace(verdict, run_factor=combine_run_factors(*factors))
