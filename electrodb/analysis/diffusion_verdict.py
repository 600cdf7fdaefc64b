"""Convergence verdict of a self-diffusion coefficient: every criterion a D must pass, each with a plain reason.

The result judged is a :class:`electrodb.analysis.transport.DiffusionResult` (read by attribute, so this module
does not import ``transport``, which calls it); the targets are :class:`ConvergenceTargets`. The criteria and why
each exists are in the user guide of :mod:`electrodb.analysis.transport` and in ``docs/methods.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from electrodb.analysis.convergence import ConvergenceTargets, Verdict, combine_run_factors
from electrodb.analysis.run_factor import count_factor, rms_factor
from electrodb.analysis.sampling import sampling_problems, student_t_error_factor

__all__ = ["BALLISTIC_END_PS", "D_CRITERION", "MAX_EQUILIBRATION_FRACTION", "diffusion_verdict"]

#: Largest part of a run the equilibration cut may take for D to converge. A run must show its equilibrium for at
#: least three times as long as it took to get there: a mobility that changes halfway through the run looks to
#: the equilibration detection like a transient half the run long, and is a drift, not an equilibration.
MAX_EQUILIBRATION_FRACTION = 0.25

#: Criterion string of the D verdict (targets filled in by :func:`diffusion_verdict`).
D_CRITERION = (
    "D: fit window from the start of the diffusive regime to run/{D_min_origins:g}; log-log MSD slope within "
    "{D_slope_tol:g} of 1 and early/late-lag D within {stationarity_sigma:g} sigma over it; window >= "
    "{D_min_window_ps:g} ps; RMS displacement at window end >= {D_min_rms_A:g} A; D > 0, 0 < D_err/D <= "
    "{D_rel_err:g}; n_eff >= {min_n_eff:g}; equilibration cut <= {max_equil:g} of the run; first and second "
    "half of the rest within {stationarity_sigma:g} sigma"
)


#: Lag (ps) beyond which a liquid's MSD has left its ballistic start (0.1–1 ps for ions and water at room
#: temperature): a window that ends earlier and looks ballistic needs at least a run that puts its end here.
BALLISTIC_END_PS = 1.0

Problem = tuple[str, float | None]


def _regime_problems(res: Any, tg: ConvergenceTargets) -> list[Problem]:
    """Reasons the fit window is not a diffusive regime reaching run/``D_min_origins``, each with its run factor.

    The window ends at t1 = run/``D_min_origins`` (∝ T) and starts where the diffusive regime does (t0, set by the
    physics): a window too short needs T ≥ ``D_min_origins`` (t0 + ``D_min_window_ps``), a window that cannot be
    split needs t1 ≥ 3 t0, a diffusive RMS displacement at t1 grows as √T. A slope above 1 (ballistic) needs at
    least a window end at :data:`BALLISTIC_END_PS`; a caged or sub-diffusive MSD has no known scaling (None).
    """
    out: list[Problem] = []
    t0, t1 = res.window_ps
    slope = res.loglog_slope
    ballistic = slope is not None and np.isfinite(slope) and slope > 1.0 + tg.D_slope_tol
    f_ballistic = count_factor(BALLISTIC_END_PS, t1, floor=1e-12) if ballistic and t1 < BALLISTIC_END_PS else None
    if not res.window_found:
        out.append(
            (
                f"no lag range where the MSD grows linearly in time (local log-log slope within {tg.D_slope_tol:g} of "
                "1)",
                f_ballistic,
            )
        )
    if slope is None or not np.isfinite(slope) or abs(slope - 1.0) > tg.D_slope_tol:
        shown = "undefined" if slope is None or not np.isfinite(slope) else f"{slope:.2f}"
        out.append(
            (
                f"the MSD does not grow linearly over {t0:.3g}-{t1:.3g} ps (log-log slope {shown}, not within "
                f"{tg.D_slope_tol:g} of 1): caged, sub-diffusive or ballistic motion, not diffusion",
                f_ballistic,
            )
        )
    z = res.flatness_z
    if res.D_early is None:
        out.append(
            (
                f"the diffusive regime starts at {t0:.3g} ps, too late to check it up to run/{tg.D_min_origins:g} = "
                f"{t1:.3g} ps (the window must span a factor 3)",
                count_factor(3.0 * t0, t1, floor=1e-12),
            )
        )
    elif z is not None and z > tg.stationarity_sigma:
        out.append(
            (
                f"MSD/6t is not flat over {t0:.3g}-{t1:.3g} ps: D from the early lags ({res.D_early:.3g}) and from "
                f"the late lags ({res.D_late:.3g}) differ by {z:.1f} standard errors (> {tg.stationarity_sigma:g}): "
                "the particles are caged or sub-diffusive on the time scale of the run",
                None,
            )
        )
    if t1 - t0 < tg.D_min_window_ps:
        out.append(
            (
                f"fit window {t1 - t0:.3g} ps < {tg.D_min_window_ps:g} ps",
                count_factor(t0 + tg.D_min_window_ps, t1, floor=1e-12),
            )
        )
    rms = res.rms_displacement_A
    if rms is None or rms < tg.D_min_rms_A:
        out.append(
            (
                f"RMS displacement at window end {rms or 0.0:.2f} A < {tg.D_min_rms_A:g} A (the particles have not "
                "left their first neighbours)",
                rms_factor(tg.D_min_rms_A, rms),
            )
        )
    return out


def _precision_at(res: Any, f: float) -> tuple[float, float]:
    """``(D_err/D, n_eff)`` the same system would give after a run ``f`` times as long (transport.py, step 4).

    The scatter between atoms (``err_atoms``) does not shrink: the window ends at a fixed fraction of the run, and
    each atom's slope over it scatters by a fixed fraction of D. The shared part (``err_shared``, from the
    variance of the mean of the mobility series) shrinks as 1/f and its degrees of freedom grow as f.
    """
    n = res.n_atoms
    va, vg = (res.err_atoms or 0.0) ** 2, (res.err_shared or 0.0) ** 2 / f
    nu_g = max(float(res.shared_dof or 1.0), 1.0) * f
    var = va + vg
    denom = va**2 / max(n - 1.0, 1.0) + vg**2 / nu_g
    n_eff = (var**2 / denom if denom > 0 else n - 1.0) + 1.0
    return math.sqrt(var) * student_t_error_factor(n_eff) / res.D, n_eff


def _precision_factor(res: Any, ok: Callable[[float, float], bool]) -> float:
    """Smallest run factor at which :func:`_precision_at` passes ``ok(rel_err, n_eff)`` (3 % steps up to 10⁶;
    inf when even the longest run fails: the number of atoms, not the run length, sets it)."""
    for f in np.geomspace(1.0, 1e6, 469):
        if ok(*_precision_at(res, float(f))):
            return float(f)
    return math.inf


def _precision_problems(res: Any, tg: ConvergenceTargets) -> list[Problem]:
    """Reasons the error bar of D is missing, zero, too large or rests on too few independent samples, each with
    its run factor (:func:`_precision_factor`; inf where the atoms' scatter alone fails the target)."""
    out: list[Problem] = []
    if res.D <= 0:
        out.append((f"D = {res.D:.3g} <= 0", None))
    elif res.D_err is None:
        out.append(
            (f"no error estimate: {res.n_atoms} atom(s), and the scatter between atoms is the error of D", math.inf)
        )
    elif res.D_err == 0.0:
        out.append(("the error of D is exactly 0: the atoms all moved identically, so nothing was sampled", None))
    elif res.D_err / res.D > tg.D_rel_err:
        f = _precision_factor(res, lambda rel, _: rel <= tg.D_rel_err)
        more = (
            f" (the scatter between the {res.n_atoms} atoms alone gives more: a longer run does not reduce it, more "
            "atoms do)"
            if math.isinf(f)
            else ""
        )
        out.append((f"relative error {res.D_err / res.D:.2f} > {tg.D_rel_err:g}{more}", f))
    if res.D > 0 and res.err_atoms is not None and res.err_atoms <= 1e-12 * res.D:
        out.append(
            (
                f"the {res.n_atoms} atoms all gave the same D (scatter between atoms exactly 0): atoms that move "
                "together are one sample, not many",
                None,
            )
        )
    if res.n_eff < tg.min_n_eff:
        few = res.n_atoms < tg.min_n_eff
        f = math.inf if few else None if res.D <= 0 else _precision_factor(res, lambda _, n: n >= tg.min_n_eff)
        more = f" (at most {res.n_atoms} however long the run)" if few else ""
        out.append(
            (
                f"the error of D rests on {res.n_eff:.1f} independent samples ({res.n_atoms} atoms, mobility shared "
                f"over time included) < {tg.min_n_eff:g}: the error bar itself is too uncertain{more}",
                f,
            )
        )
    return out


def diffusion_verdict(res: Any, targets: ConvergenceTargets | None = None) -> Verdict:
    r"""Convergence verdict of a :class:`~electrodb.analysis.transport.DiffusionResult`.

    ``insufficient`` when no D could be computed (too few frames, no atoms). Otherwise ``converged`` only if
    every criterion holds (targets from :class:`ConvergenceTargets`):

    * **diffusive regime up to a quarter of the run** — the fit window runs from the start of the linear regime
      to run/``D_min_origins``; over it the log-log slope is within ``D_slope_tol`` of 1 and D from the early and
      the late half of the window (log scale) agree within ``stationarity_sigma`` standard errors;
    * **window and displacement** — window ≥ ``D_min_window_ps``, RMS displacement at its end ≥ ``D_min_rms_A``;
    * **precision** — D > 0, an error that is neither missing nor exactly zero, ``D_err / D ≤ D_rel_err``;
    * **independent samples** — ``n_eff ≥ min_n_eff`` (the degrees of freedom of the error, plus one);
    * **stationarity** — the equilibration cut takes at most :data:`MAX_EQUILIBRATION_FRACTION` of the run, the
      atoms' mobility in the first and second half of the rest agree within ``stationarity_sigma`` combined
      errors, and it changed at all.

    Each failed criterion is named in ``reason`` in a plain sentence with its measured value and target.

    ``run_factor`` (:mod:`electrodb.analysis.run_factor`), the largest over the failed criteria that have one:

    * fixed by running longer: the window length (T ≥ ``D_min_origins`` × (window start + ``D_min_window_ps``)),
      a window too short to split (its end ≥ 3 × its start), the RMS displacement at the window end (∝ √T), a
      ballistic-looking window ending before :data:`BALLISTIC_END_PS` (a lower bound), and the part of the error
      and of ``n_eff`` that comes from the mobility shared over time (:func:`_precision_at`);
    * not fixed by running longer (inf): a relative error that the scatter between atoms alone exceeds (that
      scatter, over a window ending at a fixed fraction of the run, does not shrink with T: D's relative error
      tends to about const/√n_atoms), fewer atoms than ``min_n_eff``, a single atom;
    * unknown (None): caged or sub-diffusive motion on the run's time scale, a drift, an equilibration that takes
      too much of the run, D ≤ 0, atoms that all moved identically.
    """
    tg = targets or ConvergenceTargets()
    criterion = D_CRITERION.format(**tg.as_dict(), max_equil=MAX_EQUILIBRATION_FRACTION)
    if res.D is None or res.window_ps is None:
        return Verdict("insufficient", criterion, f"no D: {res.message}" if res.message else "no D")
    fails = _regime_problems(res, tg) + _precision_problems(res, tg)
    total = res.t_equil_ps + res.run_length_ps
    if res.t_equil_ps > MAX_EQUILIBRATION_FRACTION * total:
        fails.append(
            (
                f"the mobility drifts: it settles only after {res.t_equil_ps:.3g} ps, {res.t_equil_ps / total:.0%} of "
                f"the run (an equilibration longer than {MAX_EQUILIBRATION_FRACTION:.0%} of the run is a change, not "
                "a start)",
                None,
            )
        )
    if res.mobility is not None:
        what = f"the atoms' mobility (MSD over {res.segment_ps:.3g} ps)"
        fails += [(p, None) for p in sampling_problems(res.mobility, 0.0, tg.stationarity_sigma, what)]
    if fails:
        factor = combine_run_factors(*(f for _, f in fails))
        return Verdict("unconverged", criterion, "; ".join(r for r, _ in fails), factor)
    return Verdict("converged", criterion)
