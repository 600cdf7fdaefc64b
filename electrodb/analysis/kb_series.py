r"""a_cc as a time series: one linearised Kirkwood–Buff a_cc per time block, for its N_eff, error and cut.

Pure numpy/scipy, no I/O.  :func:`electrodb.analysis.kirkwood_buff.activity_derivative` turns five
Kirkwood–Buff integrals into the salt's activity derivative

.. math::

    a_{cc} = \frac{1}{1 + \rho_c (G_{cc} - G_{cw})}, \qquad
    G_{cc} = \frac{\rho_+^2 G_{++} + \rho_-^2 G_{--} + 2\rho_+\rho_- G_{+-}}{\rho_c^2}, \qquad
    G_{cw} = \frac{\rho_+ G_{+w} + \rho_- G_{-w}}{\rho_c},

with :math:`\rho_\pm = N_\pm / V` and :math:`\rho_c = \rho_+ + \rho_-` (Å⁻³; Weerasinghe & Smith 2003).  Its error
bar has to come from how the g(r) behind it fluctuate *in time*: 30 frames of a slowly moving ideal gas hold one
configuration, whose a_cc is 1.4 rather than 1, and five blocks of six nearly identical frames agree with each
other to ±0.01.  So the run is cut into many short blocks (one g(r) per block), and each block gets its own
a_cc on the *linearised* estimator,

.. math::

    a_k = A(\bar g) + \frac{A(\bar g + \epsilon (g_k - \bar g)) - A(\bar g)}{\epsilon}, \qquad \epsilon = 10^{-3},

where :math:`A` is the whole chain (Ganguly closed-system correction, Krüger 1/L extrapolation of the
finite-volume integral, salt component) and :math:`\bar g` the frame-weighted mean over the blocks.  The
linearisation (the delta method, in the form of an influence series) is needed because a single short block's
g(r) is far too noisy to be fed through the nonlinear correction on its own (the Ganguly denominator can
vanish); to first order the :math:`a_k` average to :math:`A(\bar g)` and fluctuate as the estimator does, so
:func:`electrodb.analysis.sampling.analyse_series` on :math:`a_k` gives the equilibration cut, the statistical
inefficiency, :math:`N_\mathrm{eff}` and the Student-t error of :math:`a_{cc}`.

Warnings
--------
* The KB integrals decorrelate when particles have moved a good part of the integration range (≈ L/2), much
  more slowly than a first shell; correlated blocks are what :math:`N_\mathrm{eff}` counts, not frames.
* The value is :math:`A(\bar g)`, not the mean of per-block a_cc (which the nonlinearity would bias).
* Vibration alone makes a series look sampled: a frozen structure with 0.05 Å noise gives a white a_cc series
  (40 "independent" samples of a_cc = 1.72 ± 0.003).  And the pair counts out to L/2 relax by diffusion, with a
  long (t^-3/2) tail that the truncated autocorrelation sum misses when the run is only a few relaxation times
  long: on ideal gases whose ions travelled 3.3 × the KB range the z spread of a_cc was 1.3–1.5 with 1–2 %
  beyond 4σ; at 4.7 × it was 1.09–1.14 (none beyond 4σ), at 6.6 × 0.95–1.17.  :func:`acc_travel_verdict`
  requires the ions' RMS displacement over the production run to reach ``acc_min_travel`` (4) × the KB range.

References
----------
* S. Weerasinghe, P. E. Smith, J. Chem. Phys. 119, 11342 (2003) — the salt as one component.
* Estimators and finite-size corrections: :mod:`electrodb.analysis.kirkwood_buff`,
  :mod:`electrodb.analysis.kb_finite_size`, ``docs/methods-thermodynamics.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from electrodb.analysis.convergence import ConvergenceTargets, Verdict
from electrodb.analysis.kb_finite_size import check_kb_grid, finite_volume_kb, ganguly_correction, kruger_extrapolate
from electrodb.analysis.run_factor import rms_factor, series_factor
from electrodb.analysis.sampling import SeriesReport, sampling_problems

__all__ = ["KB_KEYS", "AccSeries", "acc_block_series", "acc_sampling_verdict", "acc_travel_verdict"]

#: The five integrals of a_cc: cation–cation, anion–anion, cation–anion, cation–water, anion–water.
KB_KEYS: tuple[str, ...] = ("pp", "mm", "pm", "pw", "mw")
_LIKE = {"pp": True, "mm": True, "pm": False, "pw": False, "mw": False}


@dataclass(frozen=True)
class AccSeries:
    """a_cc of the mean g(r) of a set of time blocks, and its linearised value in every block.

    Attributes
    ----------
    a_cc : float
        :math:`A(\\bar g)`, the a_cc of the frame-weighted mean g(r) of the blocks.
    series : (n_blocks,) array
        Linearised a_cc of each block (time order); its mean is ``a_cc`` to first order.
    G : dict[str, float]
        The five Kirkwood–Buff integrals of the mean g(r), Å³ (keys :data:`KB_KEYS`).
    G_series : dict[str, (n_blocks,) array]
        Their linearised values per block, Å³.
    """

    a_cc: float
    series: np.ndarray = field(repr=False)
    G: dict[str, float]
    G_series: dict[str, np.ndarray] = field(repr=False)


def acc_block_series(
    r: np.ndarray,
    g_blocks: Mapping[str, np.ndarray],
    n_partners: Mapping[str, float],
    n_plus: float,
    n_minus: float,
    volume: float,
    weights: np.ndarray | None = None,
    *,
    eps: float = 1e-3,
    n_lengths: int = 60,
) -> AccSeries:
    """Linearised a_cc of every time block (see the module text).

    Parameters
    ----------
    r : (n_r,) array, Å
        Grid of the g(r), up to about half the box (the KB integration range).
    g_blocks : mapping of str to (n_blocks, n_r) arrays
        g(r) per time block of the five pairs, keys :data:`KB_KEYS`, normalised as in
        :mod:`electrodb.analysis.structure`.
    n_partners : mapping of str to float
        Number of *b* particles of each pair (``pp``: cations, ``mm``/``pm``: anions, ``pw``/``mw``: waters).
    n_plus, n_minus : float
        Cations and anions in the box.
    volume : float, Å³
        Mean box volume.
    weights : (n_blocks,) array, optional
        Frames per block (default equal).
    eps : float
        Size of the linearisation step.
    n_lengths : int
        Sphere diameters L in the 1/L fit window (r[-1]/2, r[-1]).

    The estimator of each integral is that of ``kb_integral(..., method="both")`` with its default windows:
    the Ganguly closed-system correction, then the Krüger finite-volume integral extrapolated in 1/L.

    Returns
    -------
    AccSeries

    Raises
    ------
    ValueError
        Fewer than 2 blocks, a missing pair, or an estimator that is undefined (range too short, too few ions).
    """
    missing = [k for k in KB_KEYS if k not in g_blocks]
    if missing:
        raise ValueError(f"a_cc needs the g(r) blocks of {missing}")
    n_blocks = int(np.shape(g_blocks["pp"])[0])
    if n_blocks < 2:
        raise ValueError("a_cc series needs at least 2 time blocks")
    w = np.ones(n_blocks) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.sum()
    r, _ = check_kb_grid(r, np.asarray(g_blocks["pp"]))
    lengths = np.linspace(0.5 * r[-1], r[-1], n_lengths)
    G: dict[str, float] = {}
    G_series: dict[str, np.ndarray] = {}
    for key in KB_KEYS:
        gb = np.asarray(g_blocks[key], dtype=float)
        mean = w @ gb
        rows = np.vstack([mean, mean + eps * (gb - mean)])  # the mean, then each block a step eps towards it
        corrected = ganguly_correction(r, rows, float(n_partners[key]), volume, _LIKE[key])
        values, _ = kruger_extrapolate(lengths, finite_volume_kb(r, corrected, lengths))
        G[key] = float(values[0])
        G_series[key] = values[0] + (values[1:] - values[0]) / eps
    rho_p, rho_m = n_plus / volume, n_minus / volume
    rho_c = rho_p + rho_m

    def difference(g: Mapping[str, float | np.ndarray]) -> float | np.ndarray:
        g_cc = (rho_p**2 * g["pp"] + rho_m**2 * g["mm"] + 2.0 * rho_p * rho_m * g["pm"]) / rho_c**2
        g_cw = (rho_p * g["pw"] + rho_m * g["mw"]) / rho_c
        return g_cc - g_cw

    d = float(difference(G))
    a_cc = 1.0 / (1.0 + rho_c * d)
    series = a_cc - rho_c * a_cc**2 * (np.asarray(difference(G_series)) - d)
    return AccSeries(a_cc=a_cc, series=np.asarray(series, dtype=float), G=G, G_series=G_series)


def acc_sampling_verdict(report: SeriesReport | None, targets: ConvergenceTargets | None = None) -> Verdict:
    """Whether the a_cc series holds enough independent, stationary samples.

    ``insufficient`` without a series (no time blocks); ``unconverged`` when
    :func:`~electrodb.analysis.sampling.sampling_problems` finds fewer than ``targets.min_n_eff`` independent
    samples, halves that differ by more than ``targets.stationarity_sigma`` or an error of exactly 0
    (``run_factor`` ``min_n_eff / n_eff``; None for a drift or a constant series); else ``converged``.  Combine
    with :func:`~electrodb.analysis.kirkwood_buff.acc_verdict` (box, ions, error, range).
    """
    t = targets or ConvergenceTargets()
    crit = f"a_cc series: >= {t.min_n_eff:g} independent samples, halves within {t.stationarity_sigma:g} sigma"
    if report is None:
        return Verdict("insufficient", crit, "no time series of a_cc (fewer than 2 time blocks)")
    problems = sampling_problems(report, t.min_n_eff, t.stationarity_sigma, "a_cc")
    if problems:
        return Verdict("unconverged", crit, "; ".join(problems), series_factor(report, t.min_n_eff))
    return Verdict("converged", crit)


def acc_travel_verdict(
    rms_displacement_A: float, kb_range_A: float, n_frames: int, targets: ConvergenceTargets | None = None
) -> Verdict:
    """Whether the ions travelled far enough over the run for the ion pairs the KB integrals count to be renewed.

    ``insufficient`` when the ions' root-mean-square displacement over the production frames is below
    ``targets.acc_min_travel`` × the KB integration range (Å), with ``run_factor`` (need / moved)² (diffusive
    travel grows as √T); else ``converged``.

    Parameters
    ----------
    rms_displacement_A : float
        √⟨|r_i(t_end) − r_i(t_0)|²⟩ over the ions (unwrapped positions), Å.
    kb_range_A : float
        Upper end of the KB integration (about L/2), Å.
    n_frames : int
        Production frames (for the reason).
    """
    t = targets or ConvergenceTargets()
    need = t.acc_min_travel * kb_range_A
    crit = f"ions' RMS displacement >= {t.acc_min_travel:g} × the KB range"
    if not rms_displacement_A >= need:
        return Verdict(
            "insufficient",
            crit,
            f"the ions moved {rms_displacement_A:.3g} Å (RMS) in {n_frames} frames, < {t.acc_min_travel:g} × the "
            f"{kb_range_A:.3g} Å KB range = {need:.3g} Å: the ion pairs a_cc counts were not renewed often enough "
            "for its error bar to hold",
            rms_factor(need, rms_displacement_A),  # diffusive travel grows as √T
        )
    return Verdict("converged", crit)
