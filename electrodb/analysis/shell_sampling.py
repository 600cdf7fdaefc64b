r"""How well a first shell was sampled: its excluded core, its exchange events, its coordination-number series.

Pure numpy/scipy, no I/O.  The verdict parts that :mod:`electrodb.analysis.structure_sampling` adds to a first shell
found by :mod:`electrodb.analysis.shells` (where the resolution verdict uses :func:`excluded_core`):

* :func:`excluded_core`: a solvation shell exists because partners are kept out of the space inside it; an ideal
  gas has no such core, and its noise bumps are not shells;
* :func:`shell_exchange_verdict`: a coordination number averages over the members a shell takes in and lets go
  (events from :func:`electrodb.analysis.kinetics.shell_exchange`); target ``cn_min_exchange_events``;
* :func:`cn_sampling_verdict`: the CN's block series (:func:`electrodb.analysis.sampling.analyse_series`) must hold
  ``min_n_eff`` independent samples, be stationary, not be constant, and give an error within ``cn_max_err``;
* :func:`relaxation_verdict`: after a transient was cut, the rest of the run must outlast the box's slowest
  density relaxation; target ``transient_min_relaxations``.

Why a run that started out of equilibrium needs more than a cut
---------------------------------------------------------------
A lattice start, or any start far from equilibrium, leaves density inhomogeneities that relax by diffusion;
the slowest, a wave of the box length L, takes :math:`\tau_L = L^2/(4\pi^2 D)`.  The equilibration cut
(:func:`electrodb.analysis.structure_sampling.significant_cut`) removes what differs from the rest by more than
the noise, but when :math:`\tau_L` is comparable to the run the part kept is still relaxing, too slowly for the
halves test to see within it, yet far from where it is going: coordination numbers at a fixed radius in the
300-frame lattice-start ideal gas of ``benchmarks/coverage_structure.py`` passed every other test in 4–7 of 50
runs and lay 4–11 errors from the truth.  A series cannot tell that tail from a plateau; the motion can.  With
D from the RMS displacement :math:`\Delta` over the production time T (:math:`D = \Delta^2/6T`), the run spans
:math:`T/\tau_L = 4\pi^2\Delta^2/(6L^2)` relaxation times, and a value averaged over k of them keeps about
1/k of the amplitude left at the cut.  A run that started in equilibrium (no cut) is not held to this: its
density waves are already at equilibrium, and a coordination number is local.

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
    "box_relaxations",
    "cn_sampling_verdict",
    "excluded_core",
    "relaxation_verdict",
    "rms_travel",
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


def rms_travel(start: np.ndarray, end: np.ndarray) -> float:
    """RMS displacement (Å) between the unwrapped positions ``start`` and ``end`` ``(n_atoms, 3)`` (Å) of the same
    atoms; 0 without atoms."""
    if len(start) == 0:
        return 0.0
    step = np.asarray(end, dtype=float) - np.asarray(start, dtype=float)
    return float(np.sqrt(np.mean(np.sum(step**2, axis=1))))


def box_relaxations(travel_A: float, box_A: float) -> float:
    """Relaxation times of the box's slowest density wave that a run spans, :math:`4\\pi^2\\Delta^2/(6L^2)`, from
    the RMS displacement ``travel_A`` (Å) over the run and the smallest box width ``box_A`` (Å); see the module
    text."""
    return 4.0 * np.pi**2 * float(travel_A) ** 2 / (6.0 * float(box_A) ** 2)


def relaxation_verdict(
    t_cut_ps: float,
    travel_A: float | None,
    box_A: float,
    what: str,
    targets: ConvergenceTargets | None = None,
) -> Verdict:
    """Whether the production part after a transient (cut at ``t_cut_ps`` > 0) outlasted the box's slowest density
    relaxation ``targets.transient_min_relaxations`` times (module text); ``converged`` when nothing was cut.

    Parameters
    ----------
    t_cut_ps : float
        Equilibration cut (ps); 0: the run started in equilibrium and the criterion does not apply.
    travel_A : float or None
        RMS displacement (Å) over the production part of the slower of the groups the value counts (None: not
        measured).
    box_A : float
        Smallest box width (Å).
    what : str
        Name for the reason, e.g. ``"CN(Na–O)"``.
    """
    t = targets or ConvergenceTargets()
    k = t.transient_min_relaxations
    need = box_A * np.sqrt(6.0 * k) / (2.0 * np.pi)
    crit = f"after a cut transient: RMS travel >= {need:.3g} Å ({k:g} relaxations of a box-length density wave)"
    if not t_cut_ps > 0 or k <= 0:
        return Verdict("converged", crit)
    spans = 0.0 if travel_A is None else box_relaxations(travel_A, box_A)
    if spans >= k:
        return Verdict("converged", crit)
    moved = "an unmeasured distance" if travel_A is None else f"{travel_A:.3g} Å (RMS)"
    return Verdict(
        "unconverged",
        crit,
        f"the run started out of equilibrium (a transient was cut at {t_cut_ps:.3g} ps) and after it the atoms "
        f"behind {what} moved {moved}: {spans:.2g} relaxation times of the box's slowest density wave "
        f"(L = {box_A:.3g} Å), < {k:g}; what is left of the transient can look flat and still bias the value "
        "(equilibrate longer or run longer)",
        None if travel_A is None or travel_A <= 0 else max(1.0, k / spans),
    )
