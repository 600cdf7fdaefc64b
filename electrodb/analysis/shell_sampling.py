"""How well a first shell was sampled: its excluded core, its exchange events, its coordination-number series.

Pure numpy/scipy, no I/O.  The verdict parts that :mod:`electrodb.analysis.structure_sampling` adds to a first shell
found by :mod:`electrodb.analysis.shells` (where the resolution verdict uses :func:`excluded_core`):

* :func:`excluded_core`: a solvation shell exists because partners are kept out of the space inside it; an ideal
  gas has no such core, and its noise bumps are not shells;
* :func:`shell_exchange_verdict`: a coordination number averages over the members a shell takes in and lets go
  (events from :func:`electrodb.analysis.kinetics.shell_exchange`); target ``cn_min_exchange_events``;
* :func:`cn_sampling_verdict`: the CN's block series (:func:`electrodb.analysis.sampling.analyse_series`) must hold
  ``min_n_eff`` independent samples, be stationary, not be constant, and give an error within ``cn_max_err``.

Lengths in Å; counts dimensionless.
"""

from __future__ import annotations

import numpy as np

from electrodb.analysis.convergence import ConvergenceTargets, Verdict
from electrodb.analysis.run_factor import count_factor, series_factor
from electrodb.analysis.sampling import SeriesReport, sampling_problems
from electrodb.analysis.structure import RDFResult

__all__ = [
    "CORE_MAX_FRACTION",
    "CORE_MIN_COUNTS",
    "cn_sampling_verdict",
    "excluded_core",
    "shell_exchange_verdict",
]

#: Largest ratio of observed to ideal-gas pair counts inside an excluded core.
CORE_MAX_FRACTION = 0.1
#: Fewest ideal-gas pair counts (centres × frames × ρ_b' 4π r³/3) inside the core for it to be evidence.
CORE_MIN_COUNTS = 30.0


def excluded_core(result: RDFResult, r_peak: float, max_fraction: float = CORE_MAX_FRACTION) -> tuple[float, float]:
    """The excluded core before a first peak: how far out pairs are (almost) absent, and how many an ideal gas
    would have put there.

    A solvation shell exists because something keeps partners out of the space inside it: in a liquid every pair
    has an excluded core (g ≈ 0 below 1.5–3 Å).  An ideal gas has none, and its noise bumps are not shells.  The
    core radius is the largest bin edge below ``r_peak`` where the running count is at most ``max_fraction`` of the
    ideal-gas count :math:`\\rho_b' \\tfrac43\\pi r^3` per centre.

    Returns
    -------
    r_core : float
        Core radius, Å (NaN when there is none).
    n_ideal : float
        Pair counts an ideal gas would have inside ``r_core`` over the run (centres × frames × ρ_b' 4π r³/3);
        the evidence of the core (0 without one).
    """
    edges = result.edges[1:]
    ideal = result.density_b * 4.0 / 3.0 * np.pi * edges**3
    ok = (edges < r_peak) & (result.coordination <= max_fraction * ideal)
    if not np.isfinite(r_peak) or not ok.any():
        return float("nan"), 0.0
    k = int(np.flatnonzero(ok)[-1])
    return float(edges[k]), float(ideal[k] * result.n_a * result.n_frames)


def shell_exchange_verdict(
    n_events: int,
    n_frames: int,
    shell: str,
    partner: str,
    targets: ConvergenceTargets | None = None,
    members: float | None = None,
) -> Verdict:
    """Whether the first shell exchanged members often enough for its CN to be an average over them.

    ``insufficient`` with fewer than ``targets.cn_min_exchange_events`` entries + exits
    (:func:`electrodb.analysis.kinetics.shell_exchange`), or, with ``members`` given, when the shell turned over
    fewer than ``targets.cn_min_turnovers`` times per member (turnovers = events / (2 × members): an exit and an
    entry renew one member); else ``converged``.

    Parameters
    ----------
    n_events : int
        Members that entered or left the shell over the run (summed over the centres examined).
    n_frames : int
        Frames examined (for the reason).
    shell, partner : str
        Names for the reason, e.g. ``"Na–O"`` and ``"water"``.
    members : float, optional
        Members of the shells examined: CN × centres examined.
    """
    t = targets or ConvergenceTargets()
    crit = (
        f"first-shell exchange events (entries + exits) >= {t.cn_min_exchange_events} and >= "
        f"{t.cn_min_turnovers:g} turnovers per member"
    )
    turnovers = n_events / (2.0 * members) if members and members > 0 else float("inf")
    # events and turnovers grow ∝ T; no event at all is read as one (a lower bound on the run needed)
    factor = count_factor(t.cn_min_exchange_events, n_events)
    if turnovers < t.cn_min_turnovers:
        one = 1.0 / (2.0 * members) if members and members > 0 else 0.0
        factor = max(factor or 1.0, count_factor(t.cn_min_turnovers, turnovers, floor=one) or 1.0)
    if n_events == 0:
        return Verdict(
            "insufficient",
            crit,
            f"no {partner} left or entered the {shell} first shell in {n_frames} frames: the coordination number "
            "was not sampled",
            factor,
        )
    if n_events < t.cn_min_exchange_events:
        return Verdict(
            "insufficient",
            crit,
            f"only {n_events} {partner} entries/exits of the {shell} first shell in {n_frames} frames "
            f"(< {t.cn_min_exchange_events}): the coordination number was barely sampled",
            factor,
        )
    if turnovers < t.cn_min_turnovers:
        return Verdict(
            "insufficient",
            crit,
            f"the {shell} first shell turned over {turnovers:.2g} times per member in {n_frames} frames "
            f"(< {t.cn_min_turnovers:g}): its coordination number is that of a few arrangements, not an average",
            factor,
        )
    return Verdict("converged", crit)


def cn_sampling_verdict(report: SeriesReport | None, what: str, targets: ConvergenceTargets | None = None) -> Verdict:
    """Verdict of a coordination-number series: its Student-t error against ``cn_max_err`` and the sampling
    problems of :func:`~electrodb.analysis.sampling.sampling_problems` (``unconverged``); ``insufficient``
    without a series."""
    t = targets or ConvergenceTargets()
    crit = (
        f"CN standard error <= {t.cn_max_err:g}, >= {t.min_n_eff:g} independent samples, halves within "
        f"{t.stationarity_sigma:g} sigma"
    )
    if report is None:
        return Verdict("insufficient", crit, f"no series of {what}")
    reasons = sampling_problems(report, t.min_n_eff, t.stationarity_sigma, what)
    if report.err > t.cn_max_err:
        reasons.append(f"standard error of {what} {report.err:.3g} > {t.cn_max_err:g}")
    if not reasons:
        return Verdict("converged", crit)
    return Verdict("unconverged", crit, "; ".join(reasons), series_factor(report, t.min_n_eff, t.cn_max_err))
