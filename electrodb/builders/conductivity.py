"""Trajectory -> the ``conductivity`` entry of a transport document: thin glue over
:mod:`electrodb.analysis.conductivity`.

:func:`conductivity_entry` takes the loaded trajectory, the ions by role, the formal charges of the salt and the
equilibration cut of the run's self-diffusion, and returns the entry as stored (all conductivities in S/m; see
:class:`electrodb.documents.properties.TransportDoc`). The summary builder needs no change: the registry's
``sigma``, ``sigma_ne``, ``ionicity``, ``t_plus`` and ``t_plus_ne`` point into it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from electrodb.analysis.conductivity import ConductivityResult, collective_transport
from electrodb.analysis.conductivity_verdict import refused
from electrodb.analysis.convergence import ConvergenceTargets
from electrodb.store.frames import TrajectoryArrays
from electrodb.systems.chemistry import parse_salt

__all__ = ["GREEN_KUBO_NOTE", "conductivity_entry", "entry_from_result", "ion_count_problem"]

#: Why the Green–Kubo form is not used (stored with every entry).
GREEN_KUBO_NOTE = "not used: trajectories store positions, not velocities (Einstein–Helfand is the same quantity)"


def _num(x: float | None) -> float | None:
    """``x`` as a float, or None when it is None or not finite."""
    return None if x is None or not np.isfinite(x) else float(x)


def ion_count_problem(meta: dict[str, Any], n_cations: int, n_anions: int) -> str:
    """Why the frames' ions disagree with the trajectory's metadata ('' when they agree): a run whose number of
    ions changed (an ingest of a file with reactions, a broken topology) is refused for σ."""
    want = (meta.get("n_cations"), meta.get("n_anions"))
    if None in want or want == (n_cations, n_anions):
        return ""
    return (
        f"the trajectory lists {want[0]} cations and {want[1]} anions but its frames hold {n_cations} and {n_anions}: "
        "the number of ions changed, and σ needs the same ions in every frame"
    )


def _verdict_entry(res: ConductivityResult, name: str, series: str) -> dict[str, Any]:
    """A verdict with the sampling fields of its series (``n_eff``, ``t_equil_ps``, ``stat_inefficiency``,
    ``halves_z``) as the summary builder reads them."""
    return {**res.verdicts[name].as_dict(), **res.report_fields(series), "t_equil_ps": res.t_equil_ps}


def entry_from_result(res: ConductivityResult) -> dict[str, Any]:
    """The stored ``conductivity`` entry of a :class:`ConductivityResult` (what :func:`conductivity_entry` returns)."""
    ci = res.sigma_ci68_S_m
    onsager = {pair: {k: _num(v) for k, v in d.items()} for pair, d in res.onsager.items()}
    ionicity = _num(res.ionicity)
    return {
        "sigma_S_m": _num(res.sigma_S_m),
        "sigma_err_S_m": _num(res.sigma_err_S_m),
        "sigma_ci68_S_m": None if ci is None else [float(ci[0]), _num(ci[1])],
        **_verdict_entry(res, "sigma", "sigma"),
        "nernst_einstein": {
            "sigma_S_m": _num(res.sigma_ne_S_m),
            "sigma_err_S_m": _num(res.sigma_ne_err_S_m),
            "t_plus": _num(res.t_plus_ne),
            "t_plus_err": _num(res.t_plus_ne_err),
            **_verdict_entry(res, "nernst_einstein", "sigma_ne"),
        },
        "ionicity": {
            "value": ionicity,
            "err": _num(res.ionicity_err),
            "haven_ratio": None if not ionicity else 1.0 / ionicity,
            **_verdict_entry(res, "ionicity", "ionicity"),
        },
        "transference": {
            "t_plus": _num(res.t_plus),
            "t_plus_err": _num(res.t_plus_err),
            **_verdict_entry(res, "transference", "t_plus"),
        },
        "onsager": onsager,
        "method": "einstein_helfand",
        "green_kubo": GREEN_KUBO_NOTE,
        "frame": "barycentric",
        "fit_window_ps": None if res.window_ps is None else list(res.window_ps),
        "window_found": res.window_found,
        "loglog_slope": _num(res.loglog_slope),
        "collective_loglog_slope": _num(res.collective_loglog_slope),
        "flatness_z": _num(res.flatness_z),
        "sigma_early_S_m": _num(res.sigma_early_S_m),
        "sigma_late_S_m": _num(res.sigma_late_S_m),
        "rms_displacement_A": _num(res.rms_displacement_A),
        "n_origins": res.n_origins,
        "run_length_ps": res.run_length_ps,
        "n_cations": res.n_cations,
        "n_anions": res.n_anions,
        "z_cation": res.z_cation,
        "z_anion": res.z_anion,
        "volume_A3": res.volume_A3,
        "temperature_K": res.temperature_K,
        "message": res.message,
        "msd": {
            "t_ps": np.round(res.lag_times_ps, 5).tolist(),
            "mscd_A2": np.round(res.mscd_A2, 4).tolist(),
            "self_A2": np.round(res.self_A2, 4).tolist(),
        },
        "fit": {
            "window_ps": None if res.window_ps is None else list(res.window_ps),
            "slope_A2_ps": _num(res.fit_slope_A2_ps),
            "intercept_A2": _num(res.fit_intercept_A2),
        },
    }


def conductivity_entry(
    traj: TrajectoryArrays,
    groups: dict[str, np.ndarray],
    volume_A3: float,
    diffusion: dict[str, dict[str, Any]],
    targets: ConvergenceTargets,
) -> dict[str, Any]:
    """The ``conductivity`` entry of one trajectory's transport document.

    Parameters
    ----------
    traj
        The loaded trajectory (unwrapped positions, Å; times, ps; masses; metadata with ``salt`` and
        ``temperature``).
    groups
        Atom indices by role: ``cation`` and ``anion`` (the ions' centre atoms) are used.
    volume_A3
        Mean box volume, Å³.
    diffusion
        The transport document's self-diffusion entries by species: σ starts after the later of the cation's
        and the anion's equilibration cut (``t_equil_ps``).
    targets
        Convergence targets of the run.
    """
    meta = traj.metadata
    salt = parse_salt(meta["salt"])
    cations, anions = groups["cation"], groups["anion"]
    t_equil_ps = max(float(diffusion.get(ion, {}).get("t_equil_ps") or 0.0) for ion in ("cation", "anion"))
    problem = ion_count_problem(meta, len(cations), len(anions))
    if problem:
        empty = ConductivityResult(n_cations=len(cations), n_anions=len(anions), t_equil_ps=t_equil_ps)
        return entry_from_result(refused(empty, problem, targets))
    res = collective_transport(
        traj.positions,
        traj.times_ps,
        cations,
        anions,
        salt.cation.charge,
        salt.anion.charge,
        volume_A3,
        float(meta["temperature"]),
        masses=traj.masses,
        targets=targets,
        t_equil_ps=t_equil_ps,
    )
    return entry_from_result(res)
