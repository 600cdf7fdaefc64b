"""Convergence statuses: one vocabulary for every stored property, and the targets each is judged against.

Every property ElectroDB stores carries a :class:`Verdict`:

* ``converged`` — the number passed every documented criterion for its kind and is reported as a result;
* ``unconverged`` — it was computed, but at least one criterion failed (error too large, no diffusive regime,
  run too short for the relaxation time, run not at its labelled temperature, error exactly zero, ...); it is
  kept for inspection and never shown as a plain result;
* ``insufficient`` — there was not enough data to compute it at all (no first minimum, too few frames,
  too few ions, too few concentrations); the value and its error are None wherever it is served (summaries,
  API, export, explorer, client), even where a per-trajectory document keeps a raw number for inspection;
* ``input`` — the value was not computed from the run but taken from a correlation or given as an input (η
  from Laliberté's correlation, a user-set η, the fixed density of an NVT run). It is neither a result nor a
  failure: it is shown as an input, never as ``converged``. A quantity computed *with* an input (D corrected
  by Yeh–Hummer with an input η) is judged by its own criteria and can be ``converged``.

Analysis modules only ever produce the first three; ``input`` is assigned where a value is known to come from
outside the run (the summary builder). The criteria themselves live next to the science that defines them
(``transport.py`` for D, ``shells.py`` for first shells, ...); this module only holds the shared vocabulary and
the default targets. Targets can be set per campaign (``targets:`` in the campaign YAML) and are part of every
document's provenance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

__all__ = [
    "FAILED_STATUSES",
    "STATUSES",
    "ConvergenceTargets",
    "Status",
    "Verdict",
    "combine_run_factors",
    "worst",
]

Status = Literal["converged", "unconverged", "insufficient", "input"]
#: Every status a stored property can carry (the API's ``P_status`` filters accept exactly these).
STATUSES: tuple[str, ...] = ("converged", "unconverged", "insufficient", "input")
#: Statuses that say the value failed (is not a usable number): what :func:`worst` ranks.
FAILED_STATUSES: tuple[str, ...] = ("unconverged", "insufficient")


@dataclass(frozen=True)
class Verdict:
    """Status of one property, the criterion it was judged by, and why it failed (empty when converged; where the
    value came from when it is an ``input``).

    ``run_factor`` says how much longer the run would have to be for the failed criteria to pass: the production
    length they need over the length analysed (≥ 1), from how each criterion's measure grows with run length
    (independent samples, exchange events and fit windows ∝ T, standard errors ∝ 1/√T, RMS displacement ∝ √T).
    ``math.inf`` when running longer cannot make it pass (too few ions for the error target, a box too small for
    a Kirkwood–Buff range); None when it is not estimated (a converged value, or a criterion whose scaling with
    run length is unknown, e.g. a drift). Campaigns with ``until:`` use it to size the next segment
    (``needs_ps``). :meth:`as_dict` stores a finite factor as ``run_factor`` and an infinite one as
    ``run_longer_helps: false`` (JSON has no infinity).
    """

    status: Status
    criterion: str
    reason: str = ""
    run_factor: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "criterion": self.criterion, "reason": self.reason}
        if self.run_factor is not None and self.status in FAILED_STATUSES:
            if math.isinf(self.run_factor):  # JSON has no infinity: stored as "running longer does not help"
                out["run_longer_helps"] = False
            else:
                out["run_factor"] = float(self.run_factor)
        return out

    @property
    def converged(self) -> bool:
        return self.status == "converged"


def worst(*verdicts: Verdict) -> Verdict:
    """The least favourable of several verdicts on one value, criteria joined.

    A failure wins (insufficient > unconverged), with the reasons of the failures only. ``input`` is not a
    failure of the value: without failures, one ``input`` part makes the whole an input (with the input
    reasons: where the value came from); only all ``converged`` is ``converged``.
    """
    if not verdicts:
        raise ValueError("worst() needs at least one verdict")
    criteria = "; ".join(dict.fromkeys(v.criterion for v in verdicts))
    failed = [v for v in verdicts if v.status in FAILED_STATUSES]
    if failed:
        top = max(failed, key=lambda v: FAILED_STATUSES.index(v.status))
        reason = "; ".join(dict.fromkeys(v.reason for v in failed if v.reason))
        return Verdict(top.status, criteria, reason, combine_run_factors(*(v.run_factor for v in failed)))
    inputs = [v for v in verdicts if v.status == "input"]
    if inputs:
        return Verdict("input", criteria, "; ".join(dict.fromkeys(v.reason for v in inputs if v.reason)))
    return Verdict("converged", criteria)


def combine_run_factors(*factors: float | None) -> float | None:
    """The run factor of several failed criteria on one value: the largest (all must pass), ≥ 1.

    Unknown factors (None) are skipped, so the result is a lower bound when some are unknown; None when all are.
    """
    known = [float(f) for f in factors if f is not None]
    return max(1.0, *known) if known else None


@dataclass(frozen=True)
class ConvergenceTargets:
    """Default convergence targets (units in the names). Set per campaign with ``targets: {name: value}``.

    Attributes
    ----------
    D_rel_err : float
        Largest accepted relative standard error of a self-diffusion coefficient.
    D_slope_tol : float
        Accepted deviation of the log-log MSD slope from 1 over the fit window (diffusive regime).
    D_min_window_ps : float
        Shortest accepted fit window (ps).
    D_min_rms_A : float
        Smallest accepted root-mean-square displacement at the end of the fit window (Å).
    D_min_origins : int
        Independent time origins per D fit window: the window ends at (production run length) / ``D_min_origins``,
        and MSD/6t must be flat up to there. 4 (a quarter of the run) reaches lags where a cage or a sub-diffusive
        regime that relaxes within the run shows (ions caged for 20 ps passed for diffusion with windows ending at a
        fifteenth of a 200 ps run); 3 would see further at 1.4 times the error (the per-atom MSD slope scatter
        grows with the window end: 0.37 D at a quarter, 0.51 D at a third of the run).
    cn_max_err : float
        Largest accepted standard error of a coordination number (absolute).
    cn_min_centre_ps : float
        Fewest centre-particle picoseconds (number of centres × run length) behind a coordination number. A
        first shell exchanges its members on a 5–50 ps scale (water around Cl⁻ to Li⁺); in a shorter, few-ion run
        every time block sees the same shell, so the block error is near zero whatever the CN is. Below this
        the CN is ``insufficient`` (seen: 2 Li⁺ over 0.68 ps gave CN(Li–O) = 3.00 with a block error under 0.2).
    cn_min_exchange_events : int
        Fewest first-shell exchange events (members entering or leaving, counted with hysteresis over the
        production part of the run, :func:`electrodb.analysis.kinetics.shell_exchange`) behind a coordination
        number. A CN averages over the members a shell takes in and lets go; a shell that kept its members
        sampled one arrangement (seen: a static structure with 0.05 Å noise, 40 frames labelled 1 ps apart, gave
        CN 8.00 with a block error of exactly 0). With 20 events every centre-averaged block sees on the order of
        ten membership changes.
    cn_min_turnovers : float
        Fewest turnovers per shell member (exchange events / (2 × CN × centres examined)) behind a coordination
        number: the run must span that many lifetimes of a shell's composition, or the CN series shows only the
        jitter at the shell's edge on top of a composition it never renewed, and its N_eff counts the jitter.
        Seen: 30 frames of a slowly moving ideal gas (about 3 turnovers) gave CNs at a fixed radius that passed
        the N_eff test in 2–6 % of runs with errors 4–8 times too small. Ten lifetimes is twice the five a
        residence time needs (``residence_min_run_over_tau``).
    r_max_err_A : float
        Largest accepted standard error (Å) of a first-peak position (``r_peak``; its own verdict,
        :mod:`electrodb.analysis.shell_peak`). Experimental first-shell distances are quoted to 0.01–0.05 Å and
        differ between methods (X-ray, neutron) by about as much; 0.02 Å resolves the differences between ions
        and models that a comparison with them can show.
    r_min_travel_A : float
        Smallest RMS displacement (Å) of the centres over the production frames behind a converged peak position.
        A vibration takes an atom 0.1–0.3 Å from its mean position at room temperature; a centre that moved 1 Å has
        left its starting surroundings, so the frames sample the shell in the liquid rather than one configuration
        with noise (seen: a frozen structure with 0.05 Å noise gave a peak position of ± 0.002 Å from 40 white
        "independent" samples).
    transient_min_relaxations : float
        Relaxation times of the box's slowest density wave, :math:`L^2/(4\\pi^2 D)`, that the production part
        must span after an equilibration cut (a transient) for a coordination number to count
        (:func:`electrodb.analysis.shell_sampling.relaxation_verdict`). A run that starts out of equilibrium relaxes
        last on the box scale, and a tail slower than the run looks flat: CNs at a fixed radius after a lattice
        start passed every other test in 4–7 of 50 runs, 4–11 errors from the truth, having spanned 0.4–0.7 such
        times. Two leave about half the amplitude left at the cut in the average. Not applied when nothing was
        cut.
    shell_max_width_A : float
        Largest distance (Å) from the first peak to the first minimum of a resolved first shell. Ion–water,
        ion–ion and water–water first shells are 0.5–1 Å wide (0.7–0.9 Å on the published LiCl g(r)); a
        "minimum" found further out is a later shell or noise, and its CN is not a first-shell CN.
    pairing_min_events : int
        Fewest ion–ion contact formation or breaking events for pairing fractions to count as sampled.
    residence_min_run_over_tau : float
        Shortest accepted run length in units of the residence time being measured.
    acc_min_box_A : float
        Smallest box edge (Å) for which a Kirkwood–Buff a_cc is reported as converged.
    acc_min_like_ions : int
        Fewest ions of each species for like-pair Kirkwood–Buff integrals.
    acc_max_err : float
        Largest accepted standard error of a_cc.
    acc_min_travel : float
        Smallest root-mean-square displacement of the ions over the production frames, in units of the
        Kirkwood–Buff integration range (about L/2), behind a converged a_cc. The KB integrals count ion pairs out
        to L/2, and those counts relax only as the ions diffuse across that range, with a long tail the
        autocorrelation estimate of N_eff misses in short runs. Measured on equilibrated ideal gases (a_cc = 1):
        ions that travelled 3.3 × the range gave a_cc z-scores with spread 1.3–1.5 and 1–2 % beyond 4σ; 4.7 ×
        gave 1.09–1.14 and none beyond 4σ, 6.6 × 0.95–1.17 (the larger with strongly correlated frames, where the
        truncated autocorrelation sum runs short). A frozen structure with 0.05 Å noise gave a_cc = 1.72 ± 0.003 from 40
        "independent" samples of pure vibration.
    temperature_tol_K : float
        Accepted deviation of a run's mean temperature from its target, in K (see ``temperature_n_sigma``).
    temperature_n_sigma : float
        ... or this many standard errors of the mean, whichever is larger.
    min_n_eff : float
        Fewest effectively independent samples (after the equilibration cut, N/g;
        :mod:`electrodb.analysis.sampling`) behind a converged value. Frames are not samples: 30 frames of a run
        whose structure decorrelates over 10 frames hold about 3.
    stationarity_sigma : float
        Largest accepted difference between the two halves of the run, in their combined standard errors; a
        value that drifts over the run has no single converged value.
    sigma_min_origins : int
        Time origins per collective fit window (ionic conductivity, Onsager coefficients, transference numbers):
        the window ends at (production run length) / ``sigma_min_origins``. A collective quantity has one sample
        per time origin, and overlapping windows leave about 1.5 × this many independent ones, so it sets
        ``n_eff`` (at 20: about 30, at 4 as for D: about 6, which can never reach ``min_n_eff``).
    sigma_rel_err : float
        Largest accepted relative error of σ and σ_NE. Twice ``D_rel_err``: σ has one sample per time origin,
        not one per ion, and 30 independent samples of a squared displacement give about 15 %.
    t_plus_max_err : float
        Largest accepted (absolute) error of a transference number (t₊ can be near 0 or negative, so a
        relative error means nothing).
    sigma_min_ions : int
        Fewest ions of each sign behind a converged σ, σ/σ_NE or t₊: with fewer, the ion–ion correlations they
        measure come from a handful of pairs in a tiny box (the same count as ``acc_min_like_ions``).
    """

    D_rel_err: float = 0.10
    D_slope_tol: float = 0.15
    D_min_window_ps: float = 1.0
    D_min_rms_A: float = 3.0
    D_min_origins: int = 4
    cn_max_err: float = 0.2
    cn_min_centre_ps: float = 20.0
    cn_min_exchange_events: int = 20
    cn_min_turnovers: float = 10.0
    r_max_err_A: float = 0.02
    r_min_travel_A: float = 1.0
    transient_min_relaxations: float = 2.0
    shell_max_width_A: float = 1.5
    pairing_min_events: int = 20
    residence_min_run_over_tau: float = 5.0
    acc_min_box_A: float = 20.0
    acc_min_like_ions: int = 10
    acc_max_err: float = 0.1
    acc_min_travel: float = 4.0
    temperature_tol_K: float = 5.0
    temperature_n_sigma: float = 3.0
    min_n_eff: float = 20.0
    stationarity_sigma: float = 3.0
    sigma_min_origins: int = 20
    sigma_rel_err: float = 0.2
    t_plus_max_err: float = 0.1
    sigma_min_ions: int = 10

    def with_overrides(self, overrides: dict[str, Any] | None) -> ConvergenceTargets:
        """A copy with ``overrides`` applied; an unknown name raises ``ValueError`` listing the known ones."""
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown convergence target(s) {unknown}; known targets: {sorted(known)}")
        return replace(self, **{k: type(getattr(self, k))(v) for k, v in overrides.items()})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
