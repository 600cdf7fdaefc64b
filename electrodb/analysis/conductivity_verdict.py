"""Input checks and convergence verdicts of the collective transport coefficients: σ, σ_NE (with t₊ᴺᴱ), σ/σ_NE, t₊.

The result judged is a :class:`electrodb.analysis.conductivity.ConductivityResult` (read by attribute, so this
module does not import ``conductivity``, which calls it); the targets are :class:`ConvergenceTargets`. Why each
criterion exists is in the user guide of :mod:`electrodb.analysis.conductivity` and in ``docs/methods.md``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from electrodb.analysis.convergence import ConvergenceTargets, Verdict, combine_run_factors, worst
from electrodb.analysis.run_factor import count_factor, error_factor, rms_factor
from electrodb.analysis.sampling import sampling_problems

__all__ = ["SIGMA_CRITERION", "T_PLUS_CRITERION", "conductivity_verdicts", "frame_interval", "input_problem", "refused"]

#: Criterion of σ, σ_NE and σ/σ_NE (targets filled in by :func:`conductivity_verdicts`).
SIGMA_CRITERION = (
    "sigma (Einstein-Helfand): fit window from the start of the ions' diffusive regime to run/"
    "{sigma_min_origins:g}; self-MSD log-log slope within {D_slope_tol:g} of 1 and early/late-lag sigma within "
    "{stationarity_sigma:g} sigma over it; window >= {D_min_window_ps:g} ps; ion RMS displacement at window end >= "
    "{D_min_rms_A:g} A; >= {sigma_min_ions:g} ions of each sign; value > 0, 0 < err/value <= {sigma_rel_err:g}; "
    "n_eff (time origins) >= {min_n_eff:g}; first and second half of the origins within {stationarity_sigma:g} sigma"
)
#: Criterion of the Onsager transference number.
T_PLUS_CRITERION = (
    "t+ (Onsager): the sigma fit window and its checks; error <= {t_plus_max_err:g}; n_eff (time origins) >= "
    "{min_n_eff:g}; first and second half of the origins within {stationarity_sigma:g} sigma"
)
_NE_CRITERION = (
    "sigma_NE and t+_NE (self parts): the sigma fit window, self-MSD checks; 0 < err/sigma_NE <= {sigma_rel_err:g}; "
    "t+_NE error <= {t_plus_max_err:g}; n_eff (time origins) >= {min_n_eff:g}"
)
_NAMES = ("sigma", "nernst_einstein", "ionicity", "transference")


def frame_interval(times: np.ndarray) -> float | None:
    """The uniform frame interval (ps), or None when times are not strictly increasing and uniform."""
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        return None
    dts = np.diff(t)
    dt = float(dts.mean())
    if dt <= 0 or np.max(np.abs(dts - dt)) > 1e-6 * dt + 1e-9:
        return None
    return dt


def input_problem(
    positions: Any, cations: np.ndarray, anions: np.ndarray, z_cation: int, z_anion: int, volume_A3: float
) -> str:
    """Why σ cannot be computed from this input at all ('' when it can): the refusals of the module text, step 1.

    Parameters
    ----------
    positions
        ``(n_frames, n_atoms, 3)`` unwrapped positions (Å), or a sequence of per-frame arrays.
    cations, anions
        Indices of the ions' centre atoms.
    z_cation, z_anion
        Formal charges (e).
    volume_A3
        Box volume, Å³.
    """
    if not isinstance(positions, np.ndarray):
        shapes = {np.shape(frame) for frame in positions}
        if len(shapes) > 1:
            counts = sorted({s[0] for s in shapes if len(s)})
            return (
                f"the number of atoms changes during the run ({counts[0]} to {counts[-1]}): the collective charge "
                "displacement needs the same ions in every frame"
            )
        positions = np.asarray(positions)
    if positions.ndim != 3 or positions.shape[2] != 3:
        return f"positions must have shape (n_frames, n_atoms, 3), got {positions.shape}"
    n_c, n_a = len(cations), len(anions)
    if n_c == 0 or n_a == 0 or z_cation == 0 or z_anion == 0:
        return (
            f"no charged species to carry a current ({n_c} cations of charge {z_cation:+d}, {n_a} anions of charge "
            f"{z_anion:+d}): a neutral system has no ionic conductivity to report"
        )
    if z_cation * n_c + z_anion * n_a != 0:
        return (
            f"the box is not neutral ({n_c} × {z_cation:+d} + {n_a} × {z_anion:+d} e): the collective charge "
            "displacement of a charged box depends on the reference frame"
        )
    if not volume_A3 > 0:
        return f"box volume {volume_A3} Å³ is not positive"
    ions = np.concatenate([cations, anions])
    steps = np.abs(np.diff(positions[:, ions].astype(np.float64), axis=0)).max(initial=0.0)
    half_box = 0.5 * float(np.cbrt(volume_A3))
    if steps > half_box:
        return (
            f"an ion moves {steps:.1f} Å between two frames, more than half the box ({half_box:.1f} Å): the positions "
            "are wrapped into the box, and σ needs unwrapped positions"
        )
    return ""


def refused(res: Any, reason: str, targets: ConvergenceTargets | None = None) -> Any:
    """Mark ``res`` as not computable: every verdict ``insufficient`` with ``reason`` (returns ``res``)."""
    tg = targets or ConvergenceTargets()
    res.reason = reason
    criteria = _criteria(tg)
    res.verdicts = {name: Verdict("insufficient", criteria[name], reason) for name in _NAMES}
    return res


def _criteria(tg: ConvergenceTargets) -> dict[str, str]:
    sigma = SIGMA_CRITERION.format(**tg.as_dict())
    return {
        "sigma": sigma,
        "nernst_einstein": _NE_CRITERION.format(**tg.as_dict()),
        "ionicity": sigma,
        "transference": T_PLUS_CRITERION.format(**tg.as_dict()),
    }


#: A failed criterion: its reason and its run factor (how much longer the run must be for it to pass; inf: never,
#: None: unknown scaling), as :class:`~electrodb.analysis.convergence.Verdict` records it.
Problem = tuple[str, float | None]


def _self_regime(res: Any, tg: ConvergenceTargets) -> list[Problem]:
    """Reasons the window is not in the ions' diffusive regime, too short, or the box holds too few ions.

    Run factors: the window end is ∝ T and its start is set by the physics, so a window too short needs
    T·(t0 + ``D_min_window_ps``)/t1; a diffusive RMS displacement grows as √T; too few ions never pass (inf); a
    regime that is not diffusive has no known scaling (None).
    """
    out: list[Problem] = []
    t0, t1 = res.window_ps
    slope = res.loglog_slope
    if not res.window_found:
        out.append(
            (
                f"no lag range up to run/{tg.sigma_min_origins:g} = {t1:.3g} ps where the ions' MSD grows linearly "
                f"(local log-log slope within {tg.D_slope_tol:g} of 1): the run is too short for the collective window",
                None,
            )
        )
    if slope is None or not np.isfinite(slope) or abs(slope - 1.0) > tg.D_slope_tol:
        shown = "undefined" if slope is None or not np.isfinite(slope) else f"{slope:.2f}"
        out.append(
            (
                f"the ions' MSD does not grow linearly over {t0:.3g}-{t1:.3g} ps (log-log slope {shown}, not within "
                f"{tg.D_slope_tol:g} of 1)",
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
                f"ion RMS displacement at window end {rms or 0.0:.2f} A < {tg.D_min_rms_A:g} A",
                rms_factor(tg.D_min_rms_A, rms),
            )
        )
    if min(res.n_cations, res.n_anions) < tg.sigma_min_ions:
        out.append(
            (
                f"{res.n_cations} cations and {res.n_anions} anions: fewer than {tg.sigma_min_ions:g} of each sign, so "
                "the correlations between ions (what sigma measures beyond sigma_NE) come from a handful of pairs in "
                "a tiny box",
                math.inf,
            )
        )
    return out


def _flatness(res: Any, tg: ConvergenceTargets) -> list[Problem]:
    """Reasons the collective slope is not flat over the window (a window too short to split needs t1 ≥ 3 t0)."""
    t0, t1 = res.window_ps
    if res.sigma_early_S_m is None:
        return [
            (
                f"the diffusive regime starts at {t0:.3g} ps, too late to check the collective slope up to run/"
                f"{tg.sigma_min_origins:g} = {t1:.3g} ps (the window must span a factor 3)",
                count_factor(3.0 * t0, t1, floor=1e-12),
            )
        ]
    z = res.flatness_z
    if z is not None and z > tg.stationarity_sigma:
        return [
            (
                f"the collective MSD is not linear over {t0:.3g}-{t1:.3g} ps: sigma from the early lags "
                f"({res.sigma_early_S_m:.3g} S/m) and from the late lags ({res.sigma_late_S_m:.3g} S/m) differ by "
                f"{z:.1f} standard errors (> {tg.stationarity_sigma:g}): ion correlations still relax on the scale of "
                "the window",
                None,
            )
        ]
    return []


def _mobility_drift(res: Any, tg: ConvergenceTargets) -> list[Problem]:
    """The ions' mobility (the per-origin σ_NE series, far less noisy than σ's) drifts between the halves of the
    run: a σ whose ions speed up or slow down has no single value, even where σ's own halves are too noisy to
    tell (a mobility that doubles halfway passed σ's halves test in 1 of 40 runs). A drift has no known scaling."""
    rep = res.reports.get("sigma_ne")
    z = None if rep is None else rep.halves_z
    if z is None or not z > tg.stationarity_sigma:
        return []
    return [
        (
            f"the ions' mobility drifts: sigma_NE from the two halves of the run differs by {z:.1f} standard errors "
            f"(> {tg.stationarity_sigma:g})",
            None,
        )
    ]


def _relative(name: str, value: float | None, err: float | None, limit: float) -> list[Problem]:
    """σ or σ_NE must be positive with a relative error within ``limit`` (∝ 1/√T: factor (rel/limit)²)."""
    if value is None or not np.isfinite(value):
        return [(f"{name} could not be computed", None)]
    if value <= 0:
        return [(f"{name} = {value:.3g} <= 0", None)]
    if err is None or err == 0.0:
        return [(f"the error of {name} is {'missing' if err is None else 'exactly 0'}: nothing was sampled", None)]
    if err / value > limit:
        rel = err / value
        return [
            (f"relative error of {name} {rel:.2f} > {limit:g} (one sample per time origin)", error_factor(rel, limit))
        ]
    return []


def _absolute(name: str, value: float | None, err: float | None, limit: float) -> list[Problem]:
    """A transference number's error within ``limit`` (∝ 1/√T: factor (err/limit)²)."""
    if value is None or not np.isfinite(value):
        return [(f"{name} could not be computed (sigma <= 0)", None)]
    if err is None or err == 0.0:
        return [(f"the error of {name} is {'missing' if err is None else 'exactly 0'}: nothing was sampled", None)]
    if err > limit:
        return [(f"error of {name} {err:.2f} > {limit:g} (one sample per time origin)", error_factor(err, limit))]
    return []


def _sampling(res: Any, name: str, tg: ConvergenceTargets, what: str) -> list[Problem]:
    """:func:`~electrodb.analysis.sampling.sampling_problems` of one series; too few samples: factor
    ``min_n_eff / n_eff`` (N_eff ∝ T), a drift or a series that never changed: unknown."""
    rep = res.reports.get(name)
    if rep is None:
        return []
    few = rep.n_eff < tg.min_n_eff
    return [
        (text, count_factor(tg.min_n_eff, rep.n_eff, floor=1e-12) if few and "independent samples" in text else None)
        for text in sampling_problems(rep, tg.min_n_eff, tg.stationarity_sigma, what)
    ]


def _verdict(problems: list[Problem], criterion: str) -> Verdict:
    if not problems:
        return Verdict("converged", criterion)
    reason = "; ".join(dict.fromkeys(text for text, _ in problems))
    return Verdict("unconverged", criterion, reason, combine_run_factors(*(f for _, f in problems)))


def conductivity_verdicts(res: Any, targets: ConvergenceTargets | None = None) -> dict[str, Verdict]:
    """Verdicts of a :class:`~electrodb.analysis.conductivity.ConductivityResult`.

    ``insufficient`` when nothing could be computed (the input checks, too few frames: see :func:`refused`).
    Otherwise each is ``converged`` only if every criterion holds, and each failed one is named in ``reason``
    (``run_factor``: how much longer the run must be for the failed criteria to pass, where that is known):

    * ``sigma`` — the ions' self MSD diffusive over the window (log-log slope within ``D_slope_tol`` of 1, a
      diffusive stretch found), window ≥ ``D_min_window_ps``, ion RMS displacement ≥ ``D_min_rms_A``, at least
      ``sigma_min_ions`` ions of each sign; the collective slope flat over the window (early vs late half within
      ``stationarity_sigma``); the ions' mobility (σ_NE) the same in both halves of the run; σ > 0 with
      ``0 < err/σ ≤ sigma_rel_err``; ``n_eff ≥ min_n_eff`` time origins; halves of the origins within
      ``stationarity_sigma``;
    * ``nernst_einstein`` (σ_NE and t₊ᴺᴱ) — the self-part checks, σ_NE's relative error and t₊ᴺᴱ's error
      (``t_plus_max_err``), its ``n_eff`` and halves;
    * ``ionicity`` (σ/σ_NE) — the worse of the two, and its own ``n_eff`` and halves;
    * ``transference`` (Onsager t₊) — σ's window, flatness and mobility-drift checks, error ≤ ``t_plus_max_err``,
      ``n_eff`` and halves of its series.
    """
    tg = targets or ConvergenceTargets()
    criteria = _criteria(tg)
    regime = _self_regime(res, tg)
    collective = regime + _flatness(res, tg) + _mobility_drift(res, tg)
    sigma = _verdict(
        collective
        + _relative("sigma", res.sigma_S_m, res.sigma_err_S_m, tg.sigma_rel_err)
        + _sampling(res, "sigma", tg, "the per-origin sigma series"),
        criteria["sigma"],
    )
    ne = _verdict(
        regime
        + _relative("sigma_NE", res.sigma_ne_S_m, res.sigma_ne_err_S_m, tg.sigma_rel_err)
        + _absolute("t+_NE", res.t_plus_ne, res.t_plus_ne_err, tg.t_plus_max_err)
        + _sampling(res, "sigma_ne", tg, "the per-origin sigma_NE series"),
        criteria["nernst_einstein"],
    )
    own = _sampling(res, "ionicity", tg, "the per-origin sigma/sigma_NE series")
    ionicity = worst(sigma, ne, _verdict(own, criteria["ionicity"]))
    transference = _verdict(
        collective
        + _absolute("t+", res.t_plus, res.t_plus_err, tg.t_plus_max_err)
        + _sampling(res, "t_plus", tg, "the per-origin t+ series"),
        criteria["transference"],
    )
    return {"sigma": sigma, "nernst_einstein": ne, "ionicity": ionicity, "transference": transference}
