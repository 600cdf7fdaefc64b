"""Convergence verdict of a self-diffusion coefficient: every criterion a D must pass, each with a plain reason.

The result judged is a :class:`electrodb.analysis.transport.DiffusionResult` (read by attribute, so this module
does not import ``transport``, which calls it); the targets are :class:`ConvergenceTargets`. The criteria and why
each exists are in the user guide of :mod:`electrodb.analysis.transport` and in ``docs/methods.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from electrodb.analysis.convergence import ConvergenceTargets, Verdict
from electrodb.analysis.sampling import sampling_problems

__all__ = ["D_CRITERION", "MAX_EQUILIBRATION_FRACTION", "diffusion_verdict"]

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


def _regime_problems(res: Any, tg: ConvergenceTargets) -> list[str]:
    """Reasons the fit window is not a diffusive regime reaching run/``D_min_origins``."""
    out = []
    t0, t1 = res.window_ps
    slope = res.loglog_slope
    if not res.window_found:
        out.append(
            f"no lag range where the MSD grows linearly in time (local log-log slope within {tg.D_slope_tol:g} of 1)"
        )
    if slope is None or not np.isfinite(slope) or abs(slope - 1.0) > tg.D_slope_tol:
        shown = "undefined" if slope is None or not np.isfinite(slope) else f"{slope:.2f}"
        out.append(
            f"the MSD does not grow linearly over {t0:.3g}-{t1:.3g} ps (log-log slope {shown}, not within "
            f"{tg.D_slope_tol:g} of 1): caged, sub-diffusive or ballistic motion, not diffusion"
        )
    z = res.flatness_z
    if res.D_early is None:
        out.append(
            f"the diffusive regime starts at {t0:.3g} ps, too late to check it up to run/{tg.D_min_origins:g} = "
            f"{t1:.3g} ps (the window must span a factor 3)"
        )
    elif z is not None and z > tg.stationarity_sigma:
        out.append(
            f"MSD/6t is not flat over {t0:.3g}-{t1:.3g} ps: D from the early lags ({res.D_early:.3g}) and from the "
            f"late lags ({res.D_late:.3g}) differ by {z:.1f} standard errors (> {tg.stationarity_sigma:g}): the "
            "particles are caged or sub-diffusive on the time scale of the run"
        )
    if t1 - t0 < tg.D_min_window_ps:
        out.append(f"fit window {t1 - t0:.3g} ps < {tg.D_min_window_ps:g} ps")
    rms = res.rms_displacement_A
    if rms is None or rms < tg.D_min_rms_A:
        out.append(
            f"RMS displacement at window end {rms or 0.0:.2f} A < {tg.D_min_rms_A:g} A (the particles have not left "
            "their first neighbours)"
        )
    return out


def _precision_problems(res: Any, tg: ConvergenceTargets) -> list[str]:
    """Reasons the error bar of D is missing, zero, too large or rests on too few independent samples."""
    out = []
    if res.D <= 0:
        out.append(f"D = {res.D:.3g} <= 0")
    elif res.D_err is None:
        out.append(f"no error estimate: {res.n_atoms} atom(s), and the scatter between atoms is the error of D")
    elif res.D_err == 0.0:
        out.append("the error of D is exactly 0: the atoms all moved identically, so nothing was sampled")
    elif res.D_err / res.D > tg.D_rel_err:
        out.append(f"relative error {res.D_err / res.D:.2f} > {tg.D_rel_err:g}")
    if res.D > 0 and res.err_atoms is not None and res.err_atoms <= 1e-12 * res.D:
        out.append(
            f"the {res.n_atoms} atoms all gave the same D (scatter between atoms exactly 0): atoms that move together "
            "are one sample, not many"
        )
    if res.n_eff < tg.min_n_eff:
        out.append(
            f"the error of D rests on {res.n_eff:.1f} independent samples ({res.n_atoms} atoms, mobility shared "
            f"over time included) < {tg.min_n_eff:g}: the error bar itself is too uncertain"
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
    """
    tg = targets or ConvergenceTargets()
    criterion = D_CRITERION.format(**tg.as_dict(), max_equil=MAX_EQUILIBRATION_FRACTION)
    if res.D is None or res.window_ps is None:
        return Verdict("insufficient", criterion, f"no D: {res.message}" if res.message else "no D")
    fails = _regime_problems(res, tg) + _precision_problems(res, tg)
    total = res.t_equil_ps + res.run_length_ps
    if res.t_equil_ps > MAX_EQUILIBRATION_FRACTION * total:
        fails.append(
            f"the mobility drifts: it settles only after {res.t_equil_ps:.3g} ps, {res.t_equil_ps / total:.0%} of the "
            f"run (an equilibration longer than {MAX_EQUILIBRATION_FRACTION:.0%} of the run is a change, not a start)"
        )
    if res.mobility is not None:
        what = f"the atoms' mobility (MSD over {res.segment_ps:.3g} ps)"
        fails += sampling_problems(res.mobility, 0.0, tg.stationarity_sigma, what)
    if fails:
        return Verdict("unconverged", criterion, "; ".join(fails))
    return Verdict("converged", criterion)
