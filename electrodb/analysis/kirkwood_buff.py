"""Kirkwood–Buff integrals from radial distribution functions, with finite-size corrections.

Inputs are g(r) arrays on a grid ``r`` (Å, increasing, r >= 0) **normalised as in** :mod:`electrodb.analysis.structure`
(the one place where the convention is defined): by the number of distinct ordered pairs, N_a N_b − |a ∩ b|, i.e.
the density of *partners* seen by an a particle is rho_b' = (N_b − δ_ab) / V, with δ_ab = 1 for a like pair and 0
for disjoint selections. An ideal gas in a closed box therefore has g ≡ 1 for like and unlike pairs (MDAnalysis
``InterRDF`` with ``exclusion_block=(1, 1)`` for like pairs). An RDF normalised by N_b / V for like pairs (ideal gas
g = 1 − 1/N_b) must be multiplied by N_b / (N_b − 1) first. With g ≡ 1 every estimator here returns exactly 0.
All Kirkwood–Buff integrals G_ab are in Å^3 (1 Å^3 = 0.6022 cm^3/mol).

Estimators (equations and references in ``docs/methods-thermodynamics.md``):

* the building blocks, in :mod:`electrodb.analysis.kb_finite_size`: ``kb_integral_running``, the running integral
  G(R) = 4π ∫_0^R [g(r) − 1] r^2 dr; ``ganguly_correction``, the closed-system (finite N) correction of g(r),
  Ganguly & van der Vegt, J. Chem. Theory Comput. 9, 1347 (2013), written for the convention above;
  ``finite_volume_kb`` / ``kruger_extrapolate``, the finite-subvolume integral with the sphere weight of
  Krüger et al., J. Phys. Chem. Lett. 4, 235 (2013), extrapolated linearly in 1/L.
* ``kb_integral``: one call doing the above (optionally over blocks of g(r) for an error bar).
* ``salt_component_integrals`` / ``activity_derivative``: the salt as one electroneutral component
  (Weerasinghe & Smith, J. Chem. Phys. 119, 11342 (2003)): a_cc = 1 + d ln y± / d ln c_s.
* ``kb_tail_normalised``: the tail-normalised integral of Zhang et al. (2023), for comparison only.
* ``acc_verdict``: convergence status of a_cc (box size, ion counts, error, integration range).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.constants import N_A
from scipy.integrate import trapezoid

from electrodb.analysis.convergence import ConvergenceTargets, Verdict, combine_run_factors
from electrodb.analysis.kb_finite_size import (
    check_kb_grid,
    finite_volume_kb,
    ganguly_correction,
    kb_integral_running,
    kruger_extrapolate,
)
from electrodb.analysis.run_factor import error_factor
from electrodb.analysis.statistics import block_standard_error

__all__ = [
    "A3_TO_CM3_PER_MOL",
    "KB_MIN_RANGE_A",
    "KB_MIN_RANGE_FRACTION",
    "METHODS",
    "MOL_PER_L_TO_PER_A3",
    "KBResult",
    "acc_verdict",
    "activity_derivative",
    "kb_integral",
    "kb_tail_normalised",
    "salt_component_integrals",
]

#: 1 Å^3 per molecule expressed in cm^3/mol.
A3_TO_CM3_PER_MOL: float = 1e-24 * N_A
#: 1 mol/L expressed in molecules per Å^3.
MOL_PER_L_TO_PER_A3: float = N_A * 1e-27

METHODS = ("raw", "ganguly", "kruger", "both")


def _window_mean(r: np.ndarray, y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Average of y(r) over r in [lo, hi] (trapezoid-weighted), along the last axis."""
    mask = (r >= lo) & (r <= hi)
    if mask.sum() < 2:
        raise ValueError(f"window [{lo}, {hi}] Å holds fewer than 2 grid points")
    rs = r[mask]
    return trapezoid(y[..., mask], rs, axis=-1) / (rs[-1] - rs[0])


@dataclass(frozen=True)
class KBResult:
    """Kirkwood–Buff integral of one pair, with the per-method estimates.

    Attributes
    ----------
    value : float, Å^3
        Estimate of the selected ``method``.
    uncertainty : float, Å^3
        Standard error of ``value`` over blocks of g(r) (NaN when no blocks were given).
    method : str
        'raw' | 'ganguly' | 'kruger' | 'both'.
    values, uncertainties : dict[str, float], Å^3
        Every estimator: 'raw' (plateau of the uncorrected running integral), 'ganguly' (plateau of the
        running integral of the closed-system-corrected g), 'kruger' (1/L extrapolation of the
        finite-volume integral of the uncorrected g), 'both' (1/L extrapolation after the Ganguly correction).
    fit_stderr : dict[str, float], Å^3
        Regression standard error of the intercept for 'kruger' and 'both'.
    block_values : array or None
        (n_blocks,) estimates of the selected method, one per block (for propagation into a_cc).
    r, running, running_corrected : arrays
        Grid (Å) and G(R) before/after the Ganguly correction (Å^3), from the mean g.
    lengths, finite_volume, finite_volume_corrected : arrays
        L values in the fit window (Å) and G(L) without/with the Ganguly correction (Å^3).
    plateau, fit_window : tuple[float, float], Å
        Windows used for the running-integral plateau and for the 1/L fit.
    """

    value: float
    uncertainty: float
    method: str
    values: dict[str, float]
    uncertainties: dict[str, float]
    fit_stderr: dict[str, float]
    block_values: np.ndarray | None
    r: np.ndarray = field(repr=False)
    running: np.ndarray = field(repr=False)
    running_corrected: np.ndarray = field(repr=False)
    lengths: np.ndarray = field(repr=False)
    finite_volume: np.ndarray = field(repr=False)
    finite_volume_corrected: np.ndarray = field(repr=False)
    plateau: tuple[float, float]
    fit_window: tuple[float, float]

    @property
    def kb_range(self) -> float:
        """Upper end of the integration range, r[-1] (Å): the largest R and the largest sphere diameter L used."""
        return float(self.r[-1])

    @property
    def value_cm3_per_mol(self) -> float:
        """``value`` in cm^3/mol."""
        return self.value * A3_TO_CM3_PER_MOL

    @property
    def uncertainty_cm3_per_mol(self) -> float:
        """``uncertainty`` in cm^3/mol."""
        return self.uncertainty * A3_TO_CM3_PER_MOL


def _estimates(
    r: np.ndarray,
    g: np.ndarray,
    n_b: float,
    volume: float,
    same_species: bool,
    plateau: tuple[float, float],
    lengths: np.ndarray,
    cubic: bool,
) -> dict[str, tuple[np.ndarray, ...]]:
    g_corr = ganguly_correction(r, g, n_b, volume, same_species)
    running = kb_integral_running(r, g)
    running_corr = kb_integral_running(r, g_corr)
    fv = finite_volume_kb(r, g, lengths)
    fv_corr = finite_volume_kb(r, g_corr, lengths)
    kr, kr_se = kruger_extrapolate(lengths, fv, cubic)
    both, both_se = kruger_extrapolate(lengths, fv_corr, cubic)
    return {
        "raw": (_window_mean(r, running, *plateau),),
        "ganguly": (_window_mean(r, running_corr, *plateau),),
        "kruger": (kr, kr_se),
        "both": (both, both_se),
        "_curves": (running, running_corr, fv, fv_corr),
    }


def kb_integral(
    r: np.ndarray,
    g: np.ndarray,
    n_b: float,
    volume: float,
    same_species: bool,
    method: str = "both",
    *,
    g_blocks: np.ndarray | None = None,
    plateau: tuple[float, float] | None = None,
    fit_window: tuple[float, float] | None = None,
    n_lengths: int = 60,
    cubic: bool = False,
) -> KBResult:
    """Kirkwood–Buff integral G_ab (Å^3) of one pair from g_ab(r), with finite-size corrections.

    Parameters
    ----------
    r : (n_r,) array, Å
        Grid, increasing; r[-1] should not exceed half the smallest box width. The integration range is the
        whole grid: to use the full box, compute g(r) up to about half the box (``kb_range`` in ``KBResult``).
    g : (n_r,) or (n_blocks, n_r) array
        g_ab(r) normalised as in ``structure.py`` (partner density (N_b − δ_ab)/V; ideal gas g ≡ 1). A 2-D
        array is taken as blocks (``g_blocks``) and its mean used.
    n_b : float
        Number of b particles in the box (for a like pair: of that species).
    volume : float, Å^3
        (Mean) box volume.
    same_species : bool
        True for like pairs (a = b).
    method : {'both', 'ganguly', 'kruger', 'raw'}
        Estimator reported as ``value``: 'ganguly' = plateau of the running integral of the corrected g;
        'kruger' = 1/L extrapolation of the finite-volume integral; 'both' = Ganguly correction first,
        then Krüger extrapolation (Milzetti et al., J. Chem. Inf. Model. 58, 1574 (2018)); 'raw' = plateau
        of the uncorrected running integral. All four are returned in ``values``.
    g_blocks : (n_blocks, n_r) array, optional
        g(r) of independent trajectory blocks; each estimator is evaluated per block and its standard
        error (std with ddof=1 over sqrt(n_blocks)) reported.
    plateau : (R_lo, R_hi), Å
        Window averaged for the running-integral plateau. Default (r[-1]/2, r[-1]).
    fit_window : (L_lo, L_hi), Å
        Range of sphere diameters L used in the 1/L fit. Default (r[-1]/2, r[-1]).
    n_lengths : int
        Number of evenly spaced L values in the fit window.
    cubic : bool
        Add a 1/L^3 term to the extrapolation (see ``kruger_extrapolate``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    r, g = check_kb_grid(r, g)
    if g.ndim == 2:
        if g_blocks is None:
            g_blocks = g
        g = g.mean(axis=0)
    if g.ndim != 1:
        raise ValueError("g must be 1-D (or 2-D blocks)")
    r_max = float(r[-1])
    plateau = plateau if plateau is not None else (0.5 * r_max, r_max)
    fit_window = fit_window if fit_window is not None else (0.5 * r_max, r_max)
    if not (r[0] < fit_window[0] < fit_window[1] <= r_max):
        raise ValueError(f"fit_window {fit_window} must lie inside ({r[0]}, {r_max}] Å")
    lengths = np.linspace(fit_window[0], fit_window[1], n_lengths)

    est = _estimates(r, g, n_b, volume, same_species, plateau, lengths, cubic)
    values = {k: float(est[k][0]) for k in METHODS}
    fit_stderr = {k: float(est[k][1]) for k in ("kruger", "both")}
    uncertainties = dict.fromkeys(METHODS, float("nan"))
    block_values = None
    if g_blocks is not None:
        g_blocks = np.asarray(g_blocks, dtype=float)
        if g_blocks.ndim != 2 or g_blocks.shape[1] != r.size or g_blocks.shape[0] < 2:
            raise ValueError("g_blocks must have shape (n_blocks >= 2, n_r)")
        est_b = _estimates(r, g_blocks, n_b, volume, same_species, plateau, lengths, cubic)
        for k in METHODS:
            uncertainties[k] = float(block_standard_error(est_b[k][0]))
        block_values = np.asarray(est_b[method][0], dtype=float)
    running, running_corr, fv, fv_corr = est["_curves"]
    return KBResult(
        value=values[method],
        uncertainty=uncertainties[method],
        method=method,
        values=values,
        uncertainties=uncertainties,
        fit_stderr=fit_stderr,
        block_values=block_values,
        r=r,
        running=running,
        running_corrected=running_corr,
        lengths=lengths,
        finite_volume=fv,
        finite_volume_corrected=fv_corr,
        plateau=(float(plateau[0]), float(plateau[1])),
        fit_window=(float(fit_window[0]), float(fit_window[1])),
    )


def kb_tail_normalised(r: np.ndarray, g: np.ndarray, tail_width: float = 1.0) -> np.ndarray:
    """KB integral after normalising g by its mean over the last ``tail_width`` Å (Å^3).

    G = 4π ∫_0^R [g(r)/ḡ_tail − 1] r^2 dr,  ḡ_tail = mean of g over r in [R − tail_width, R],  R = r[-1].

    The recipe of Zhang, Pagotto, Gould & Duignan (arXiv:2310.12535) with R = L/2: a crude finite-size
    correction that forces h(R) = 0 instead of modelling the closed-system tail (Ganguly). Kept for comparison
    with published numbers (``benchmarks/licl_kb_authors.py``), not used by the builders.

    Parameters
    ----------
    r : (n_r,) array, Å
    g : (..., n_r) array
    tail_width : float, Å
        Width of the normalisation window ending at r[-1] (unweighted mean of the grid values in it).
    """
    r, g = check_kb_grid(r, g)
    tail = r >= r[-1] - tail_width
    if tail.sum() < 2:
        raise ValueError(f"tail window of {tail_width} Å holds fewer than 2 grid points")
    mean = g[..., tail].mean(axis=-1, keepdims=True)
    return kb_integral_running(r, g / mean)[..., -1]


# --------------------------------------------------------------------------- salt as one component

_PAIRS = ("pp", "mm", "pm", "pw", "mw")


def salt_component_integrals(
    c_salt: float,
    g_pp: float,
    g_mm: float,
    g_pm: float,
    g_pw: float,
    g_mw: float,
    nu_plus: int = 1,
    nu_minus: int = 1,
) -> tuple[float, float]:
    """Ion–ion and ion–water KB integrals of the salt treated as one component (Å^3).

    With rho_± = nu_± c_s and rho_c = rho_+ + rho_- (number-weighted averages, Weerasinghe & Smith 2003):

    G_cc = (rho_+^2 G_++ + rho_-^2 G_-- + 2 rho_+ rho_- G_+-) / rho_c^2,
    G_cw = (rho_+ G_+w + rho_- G_-w) / rho_c.

    Parameters
    ----------
    c_salt : float, mol/L
        Salt molarity (only the ratio rho_+/rho_- matters here).
    g_pp, g_mm, g_pm, g_pw, g_mw : float, Å^3
        G_++, G_--, G_+-, G_+w, G_-w.
    nu_plus, nu_minus : int
        Stoichiometry of the salt (cations, anions per formula unit).
    """
    rp = nu_plus * c_salt
    rm = nu_minus * c_salt
    rc = rp + rm
    g_cc = (rp**2 * g_pp + rm**2 * g_mm + 2.0 * rp * rm * g_pm) / rc**2
    g_cw = (rp * g_pw + rm * g_mw) / rc
    return g_cc, g_cw


def _acc(c_salt: float, nu_plus: int, nu_minus: int, gs: Sequence) -> np.ndarray:
    g_cc, g_cw = salt_component_integrals(c_salt, *gs, nu_plus=nu_plus, nu_minus=nu_minus)
    rho_c = (nu_plus + nu_minus) * c_salt * MOL_PER_L_TO_PER_A3
    return 1.0 / (1.0 + rho_c * (np.asarray(g_cc) - np.asarray(g_cw)))


def activity_derivative(
    c_salt: float,
    g_pp: float | KBResult,
    g_mm: float | KBResult,
    g_pm: float | KBResult,
    g_pw: float | KBResult,
    g_mw: float | KBResult,
    nu_plus: int = 1,
    nu_minus: int = 1,
    errors: dict[str, float] | None = None,
    propagation: str = "auto",
) -> tuple[float, float]:
    """Salt activity derivative a_cc = 1 + (∂ ln y± / ∂ ln c_s)_{T,p} from KB integrals.

    a_cc = 1 / [1 + rho_c (G_cc − G_cw)],  rho_c = (nu_+ + nu_-) c_s N_A (Weerasinghe & Smith 2003),
    with G_cc, G_cw from ``salt_component_integrals``. For a 1:1 salt this is identical to
    a_cc = 1 / [1 + 2 rho_s (G'_cc − G_co)], G'_cc = (G_++ + G_-- + 2 G_+-)/4, G_co = (G_+w + G_-w)/2.

    Parameters
    ----------
    c_salt : float, mol/L
        Salt molarity of the simulation box (N_salt / (N_A V)).
    g_pp, g_mm, g_pm, g_pw, g_mw : float or KBResult, Å^3
        G_++, G_--, G_+-, G_+w, G_-w. A KBResult supplies its value, uncertainty and block values.
    nu_plus, nu_minus : int
        Stoichiometry.
    errors : dict, optional
        Standard errors (Å^3) keyed 'pp', 'mm', 'pm', 'pw', 'mw'; override those of KBResults.
    propagation : {'auto', 'linear', 'blocks'}
        'blocks': a_cc evaluated per block (all five inputs must be KBResults with the same number of
        blocks, from the same trajectory blocks) and err = std(ddof=1)/sqrt(n_blocks), which keeps the
        correlations between the five integrals. 'linear': first-order propagation assuming independent
        errors. 'auto': blocks when available, else linear.

    Returns
    -------
    a_cc : float
    err : float
        Standard error (0 when no errors are known).
    """
    inputs = (g_pp, g_mm, g_pm, g_pw, g_mw)
    vals = [x.value if isinstance(x, KBResult) else float(x) for x in inputs]
    a_cc = float(_acc(c_salt, nu_plus, nu_minus, vals))

    blocks = [x.block_values if isinstance(x, KBResult) else None for x in inputs]
    have_blocks = all(b is not None for b in blocks) and len({len(b) for b in blocks}) == 1
    if propagation == "blocks" and not have_blocks:
        raise ValueError("propagation='blocks' needs five KBResults with the same number of block values")
    if propagation not in ("auto", "linear", "blocks"):
        raise ValueError("propagation must be 'auto', 'linear' or 'blocks'")
    if have_blocks and propagation in ("auto", "blocks"):
        a_blocks = _acc(c_salt, nu_plus, nu_minus, blocks)
        return a_cc, float(block_standard_error(a_blocks))

    errs = [x.uncertainty if isinstance(x, KBResult) else 0.0 for x in inputs]
    if errors:
        errs = [errors.get(k, e) for k, e in zip(_PAIRS, errs, strict=True)]
    errs = [0.0 if not np.isfinite(e) else float(e) for e in errs]
    rp, rm = float(nu_plus), float(nu_minus)
    rc = rp + rm
    # dD/dG for D = G_cc - G_cw
    d_d = np.array([rp**2 / rc**2, rm**2 / rc**2, 2 * rp * rm / rc**2, -rp / rc, -rm / rc])
    rho_c = rc * c_salt * MOL_PER_L_TO_PER_A3
    grad = -(a_cc**2) * rho_c * d_d
    return a_cc, float(np.sqrt(np.sum((grad * np.asarray(errs)) ** 2)))


# --------------------------------------------------------------------------------------------------------------- status

#: Shortest RDF range (Å) over which a KB integral is attempted at all (about two hydration shells).
KB_MIN_RANGE_A: float = 5.0
#: The integration range should reach this fraction of half the box edge (the most a periodic box allows).
KB_MIN_RANGE_FRACTION: float = 0.9


def acc_verdict(
    a_cc: float | None,
    a_cc_err: float | None,
    box_length_A: float,
    ion_counts: dict[str, int],
    kb_range_A: float,
    targets: ConvergenceTargets | None = None,
    *,
    min_range_A: float = KB_MIN_RANGE_A,
    min_range_fraction: float = KB_MIN_RANGE_FRACTION,
) -> Verdict:
    """Convergence status of a Kirkwood–Buff a_cc of one box.

    * ``insufficient``: no finite a_cc, or the RDF range ``kb_range_A`` < ``min_range_A`` (too short to
      integrate at all).
    * ``unconverged``: box edge < ``targets.acc_min_box_A``; fewer than ``targets.acc_min_like_ions`` ions of
      any species (like-pair g(r) of a few ions is dominated by noise and by the closed-system correction);
      standard error of a_cc unknown or > ``targets.acc_max_err``; or the integration range stops short of
      ``min_range_fraction`` × L/2.
    * ``converged`` otherwise.

    ``run_factor``: ``inf`` for the box edge, the ion counts and the range (set by the system and the settings,
    not by the run length); (error / ``acc_max_err``)² for the error (∝ 1/√T); None without an error.

    Parameters
    ----------
    a_cc, a_cc_err : float or None
        a_cc and its standard error.
    box_length_A : float, Å
        Box edge (cube root of the volume for a non-cubic cell).
    ion_counts : dict
        Number of ions of each species, e.g. ``{"cations": 12, "anions": 12}``.
    kb_range_A : float, Å
        Upper end of the KB integration range (``KBResult.kb_range``).
    targets : ConvergenceTargets, optional
        Default ``ConvergenceTargets()``.
    min_range_A : float, Å
        Shortest range attempted (default ``KB_MIN_RANGE_A`` = 5 Å).
    min_range_fraction : float
        Fraction of L/2 the range must reach (default ``KB_MIN_RANGE_FRACTION`` = 0.9).
    """
    t = targets if targets is not None else ConvergenceTargets()
    criterion = (
        f"KB a_cc: box edge >= {t.acc_min_box_A:g} Å, >= {t.acc_min_like_ions} ions of each species, "
        f"standard error <= {t.acc_max_err:g}, integration to >= {min_range_fraction:g} L/2"
    )
    inf = float("inf")  # set by the box, the ions or the settings: no run length helps
    if not np.isfinite(kb_range_A) or kb_range_A < min_range_A:
        why = f"RDF range {kb_range_A:.3g} Å < {min_range_A:g} Å: too short to integrate (a longer run does not help)"
        return Verdict("insufficient", criterion, why, inf)
    if a_cc is None or not np.isfinite(a_cc):
        return Verdict("insufficient", criterion, "no finite a_cc")
    reasons, factors = [], []
    if box_length_A < t.acc_min_box_A:
        reasons.append(
            f"box edge {box_length_A:.3g} Å < {t.acc_min_box_A:g} Å (acc_min_box_A; a longer run does not help)"
        )
        factors.append(inf)
    for name, n in ion_counts.items():
        if n < t.acc_min_like_ions:
            reasons.append(f"{n} {name} < {t.acc_min_like_ions} (acc_min_like_ions; a longer run does not help)")
            factors.append(inf)
    if a_cc_err is None or not np.isfinite(a_cc_err):
        reasons.append("no standard error of a_cc (needs g(r) blocks)")
    elif a_cc_err > t.acc_max_err:
        reasons.append(f"standard error of a_cc {a_cc_err:.3g} > {t.acc_max_err:g} (acc_max_err)")
        factors.append(error_factor(a_cc_err, t.acc_max_err))  # the error shrinks as 1/√T
    if kb_range_A < min_range_fraction * 0.5 * box_length_A:
        reach = min_range_fraction * 0.5 * box_length_A
        reasons.append(f"KB range {kb_range_A:.3g} Å < {min_range_fraction:g} L/2 = {reach:.3g} Å")
        factors.append(inf)
    if reasons:
        return Verdict("unconverged", criterion, "; ".join(reasons), combine_run_factors(*factors))
    return Verdict("converged", criterion)
