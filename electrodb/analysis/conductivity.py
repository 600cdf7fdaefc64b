r"""Ionic conductivity, Nernst–Einstein ratio, Onsager coefficients and transference numbers from one MD run.

Pure numpy/scipy. Positions in Å, shape ``(n_frames, n_atoms, 3)``, **unwrapped**; times in ps (uniform); box
volume in Å³; temperature in K. Conductivities and Onsager coefficients in S/m; transference numbers and the
ionicity are dimensionless. The per-origin samples come from :mod:`electrodb.analysis.collective`, their error
bars from :mod:`electrodb.analysis.sampling`, the verdicts from :mod:`electrodb.analysis.conductivity_verdict`.

Einstein–Helfand conductivity
-----------------------------
.. math::

    \sigma = \frac{e^2}{6 V k_B T}\,\lim_{t\to\infty}\frac{d}{dt}
             \Big\langle \Big|\sum_i z_i\,\Delta\mathbf r_i(t)\Big|^2 \Big\rangle ,

the sum over every ion (formal charge :math:`z_i`, position of its centre atom), the average over time origins.
With :math:`\Delta\mathbf R_\pm = \sum_{i\in\pm}\Delta\mathbf r_i` the summed displacements of the cations and
of the anions, the **Onsager coefficients** (in conductivity units, :math:`e^2 L^{ij}`, S/m) are

.. math::

    e^2 L^{ij} = \frac{e^2}{6 V k_B T}\,\frac{d}{dt}\langle \Delta\mathbf R_i\cdot\Delta\mathbf R_j\rangle ,
    \qquad \sigma = z_+^2 e^2L^{++} + 2 z_+ z_- e^2L^{+-} + z_-^2 e^2L^{--}

(exactly, sample by sample). :math:`L^{++}` and :math:`L^{--}` split into a *self* part (the ion with itself,
:math:`e^2 N_\pm D_\pm/(V k_B T)`) and a *distinct* part (different ions of the same sign); :math:`L^{+-}` is
all distinct. The self parts give the **Nernst–Einstein** conductivity, the one that ignores every correlation
between ions,

.. math::

    \sigma_\mathrm{NE} = \frac{e^2}{V k_B T}\,\big(N_+ z_+^2 D_+ + N_- z_-^2 D_-\big),

and :math:`\sigma/\sigma_\mathrm{NE}` is the **ionicity** (the inverse Haven ratio): 1 for uncorrelated ions,
below 1 where ion pairs and clusters carry no net current. The **cation transference number**

.. math::

    t_+ = \frac{z_+^2 L^{++} + z_+ z_- L^{+-}}{z_+^2 L^{++} + 2 z_+ z_- L^{+-} + z_-^2 L^{--}},
    \qquad t_+^\mathrm{NE} = \frac{N_+ z_+^2 D_+}{N_+ z_+^2 D_+ + N_- z_-^2 D_-} ,

from the Onsager coefficients (in the barycentric frame: the system's centre-of-mass drift is removed when
masses are given) and its Nernst–Einstein estimate. Unit check: with one cation and one anion (:math:`z=\pm1`),
:math:`D_\pm = 10^{-9}` m²/s and :math:`V = 10^4` Å³ at 300 K, :math:`\sigma = \sigma_\mathrm{NE} = 1.2395` S/m.

How :func:`collective_transport` computes them
----------------------------------------------
1. **Input checks** (``insufficient`` with a reason, never a number): positions that are not unwrapped (an ion
   jumping more than half a box between frames), a changing number of atoms, no ions of one sign or zero
   charges (a neutral system has no conductivity to report), a box that is not neutral, too few frames.
2. **Equilibration cut** ``t_equil_ps`` from the caller (the self-diffusion cut of the same run), then the
   centre-of-mass drift is removed.
3. **Fit window.** It ends at the production length / ``sigma_min_origins`` (targets): a collective quantity
   has one sample per time origin, so the window end decides how many independent samples there are (about
   1.5 × ``sigma_min_origins``). It starts where the ions' self MSD :math:`\sum z_i^2|\Delta\mathbf r_i|^2`
   enters the diffusive regime (local log-log slope within ``D_slope_tol`` of 1; the smooth self part locates
   the regime, the noisy collective curve could not).
4. **Samples and errors.** For every time origin the least-squares slopes over the window of
   :math:`|\Delta\mathbf R_+|^2`, :math:`|\Delta\mathbf R_-|^2`, :math:`\Delta\mathbf R_+\cdot\Delta\mathbf R_-`
   and the self sums are one sample each (:func:`~electrodb.analysis.collective.origin_slopes`); each series
   goes through :func:`~electrodb.analysis.sampling.analyse_series`: mean, statistical inefficiency, ``n_eff``
   and the Student-t error. Ratios (ionicity, :math:`t_+`) get their error from the linearised series
   :math:`(a - R b)/\bar b` of the same origins, so the correlation of numerator and denominator is kept.
5. **Checks** (:func:`~electrodb.analysis.conductivity_verdict.conductivity_verdicts`): the diffusive regime of
   the self part, the collective slope flat over the window (its early and late half agree, ``flatness_z``,
   paired over origins), first and second half of the origins agree, ``n_eff >= min_n_eff``, the relative error
   of σ within ``sigma_rel_err``, the error of :math:`t_+` within ``t_plus_max_err``, at least
   ``sigma_min_ions`` ions of each sign, the ions' RMS displacement at the window end >= ``D_min_rms_A``.

Green–Kubo from the charge current (:math:`\sigma = \frac{1}{3Vk_BT}\int_0^\infty\langle\mathbf J(0)\cdot
\mathbf J(t)\rangle dt`) is the same quantity; it needs velocities, which ElectroDB trajectories do not store,
so it is not used.

Warnings
--------
* **One run knows little.** With the window at a twentieth of the run, a single trajectory gives about 30
  independent samples and σ to 15–20 %; independent replicas (merged by the summary builder) are the way to a
  smaller error. Few ions do not make σ less precise per sample, but they make it a property of a tiny box.
* **Finite size is not corrected.** The Yeh–Hummer correction (:mod:`electrodb.analysis.finite_size`) is for
  self-diffusion; σ_NE here is built from the *finite-box* D (so that σ/σ_NE compares like with like), not from
  the corrected D of the summaries. The box-size dependence of the collective σ and of the Onsager coefficients
  is reported to be much weaker than that of D but not zero (Celebi et al. 2021; Jamali et al. 2018 for the
  collective coefficients of binary systems); a box not much larger than the Debye length, or with few ions,
  also truncates the ion atmosphere. Compare two box sizes before trusting a trend of a few per cent.
* **Reference frame.** :math:`L^{ij}` and :math:`t_+` depend on the frame; here it is the barycentric one
  (masses given) or the simulation frame (no masses). σ and σ_NE of a neutral box do not depend on it.
* **Formal charges.** :math:`z_i` are the formal charges of the salt's ions, not the model's partial charges.

References
----------
* E. Helfand, Phys. Rev. 119, 1 (1960) — Einstein relations for transport coefficients.
* D. R. Wheeler, J. Newman, J. Phys. Chem. B 108, 18353 (2004) — Onsager coefficients of concentrated
  electrolytes from equilibrium MD.
* K. D. Fong, J. Self, B. D. McCloskey, K. A. Persson, Macromolecules 54, 2575 (2021) — Onsager transport
  coefficients and transference numbers, self and distinct parts.
* E. J. Maginn, R. A. Messerly, D. J. Carlson, D. R. Roe, J. R. Elliott, Living J. Comput. Mol. Sci. 1, 6324
  (2019) — best practices for transport properties.
* O. A. Celebi, S. H. Jamali, A. Bardow, T. J. H. Vlugt, O. A. Moultos, Mol. Simul. 47, 831 (2021); S. H.
  Jamali, L. Wolff, T. M. Becker, A. Bardow, T. J. H. Vlugt, O. A. Moultos, J. Chem. Theory Comput. 14, 2667
  (2018) — finite-size effects of diffusion coefficients, self and collective.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from electrodb.analysis.collective import brownian_inefficiency, origin_slopes, self_origin_slopes
from electrodb.analysis.conductivity_verdict import conductivity_verdicts, frame_interval, input_problem, refused
from electrodb.analysis.convergence import ConvergenceTargets, Verdict
from electrodb.analysis.msd import com_displacement, diffusive_window, msd_fft
from electrodb.analysis.sampling import SeriesReport, analyse_series

__all__ = ["ConductivityResult", "collective_transport", "conductivity_factor"]

ELEMENTARY_CHARGE_C = 1.602176634e-19
BOLTZMANN_J_K = 1.380649e-23
#: Most points of a stored curve (lags of the collective and self MSD).
CURVE_POINTS = 400


def conductivity_factor(volume_A3: float, temperature_K: float) -> float:
    r""":math:`e^2/(6 V k_B T)` in S/m per Å²/ps: turns the slope of :math:`\langle|\sum z\Delta r|^2\rangle`
    (e² Å²/ps) into a conductivity (S/m).

    Parameters
    ----------
    volume_A3
        Box volume, Å³.
    temperature_K
        Temperature, K.
    """
    return ELEMENTARY_CHARGE_C**2 * 1e-8 / (6.0 * volume_A3 * 1e-30 * BOLTZMANN_J_K * temperature_K)


@dataclass
class ConductivityResult:
    r"""Collective transport of one run, with errors and verdicts (module text).

    Attributes
    ----------
    sigma_S_m, sigma_err_S_m
        Einstein–Helfand conductivity and its Student-t error (time origins as samples), S/m.
    sigma_ne_S_m, sigma_ne_err_S_m
        Nernst–Einstein conductivity from the self parts over the same window and origins, S/m.
    ionicity, ionicity_err
        :math:`\sigma/\sigma_\mathrm{NE}` (inverse Haven ratio) and its error.
    t_plus, t_plus_err
        Cation transference number from the Onsager coefficients and its error.
    t_plus_ne, t_plus_ne_err
        Its Nernst–Einstein estimate and error.
    onsager
        ``{"cation-cation": {"L_S_m", "L_err_S_m", "self_S_m", "self_err_S_m", "distinct_S_m",
        "distinct_err_S_m"}, "anion-anion": {...}, "cation-anion": {"L_S_m", "L_err_S_m"}}``: :math:`e^2L^{ij}`.
    reports
        The :class:`~electrodb.analysis.sampling.SeriesReport` of each per-origin series (``sigma``,
        ``sigma_ne``, ``ionicity``, ``t_plus``, ``t_plus_ne``, ``flatness``), values in the units above.
    verdicts
        ``{"sigma", "nernst_einstein", "ionicity", "transference"}`` → :class:`Verdict`.
    window_ps, window_found
        Fit window (lag times, ps) and whether its start came from a diffusive stretch of the self part.
    loglog_slope, collective_loglog_slope
        Slope of ln MSD vs ln t over the window of the self part and of the collective curve.
    sigma_early_S_m, sigma_late_S_m, flatness_z
        σ from the early and the late half of the window (split at the geometric mean lag) and their paired
        difference in standard errors; None when the window is too short to split.
    rms_displacement_A
        The ions' RMS displacement at the window end, Å.
    n_origins, t_equil_ps, run_length_ps
        Time origins behind each series, the equilibration cut (ps) and the production length (ps).
    n_cations, n_anions, z_cation, z_anion, volume_A3, temperature_K
        What the run was.
    lag_times_ps, mscd_A2, self_A2
        Collective :math:`\langle|\sum z_i\Delta\mathbf r_i|^2\rangle` and self :math:`\sum z_i^2\langle|\Delta
        \mathbf r_i|^2\rangle` (e² Å²) at up to :data:`CURVE_POINTS` lags (ps).
    fit_slope_A2_ps, fit_intercept_A2
        The line drawn over the window on the collective curve (slope = σ / :func:`conductivity_factor`).
    reason
        Why nothing was computed (an input check failed); '' otherwise.
    message
        A note on the fit.
    """

    sigma_S_m: float | None = None
    sigma_err_S_m: float | None = None
    sigma_ne_S_m: float | None = None
    sigma_ne_err_S_m: float | None = None
    ionicity: float | None = None
    ionicity_err: float | None = None
    t_plus: float | None = None
    t_plus_err: float | None = None
    t_plus_ne: float | None = None
    t_plus_ne_err: float | None = None
    onsager: dict[str, dict[str, float | None]] = field(default_factory=dict)
    reports: dict[str, SeriesReport] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    window_ps: tuple[float, float] | None = None
    window_found: bool = False
    loglog_slope: float | None = None
    collective_loglog_slope: float | None = None
    sigma_early_S_m: float | None = None
    sigma_late_S_m: float | None = None
    flatness_z: float | None = None
    rms_displacement_A: float | None = None
    n_origins: int = 0
    t_equil_ps: float = 0.0
    run_length_ps: float = 0.0
    n_cations: int = 0
    n_anions: int = 0
    z_cation: int = 0
    z_anion: int = 0
    volume_A3: float = 0.0
    temperature_K: float = 0.0
    lag_times_ps: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    mscd_A2: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    self_A2: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    fit_slope_A2_ps: float | None = None
    fit_intercept_A2: float | None = None
    reason: str = ""
    message: str = ""

    @property
    def status(self) -> str:
        """Status of σ."""
        return self.verdicts["sigma"].status if "sigma" in self.verdicts else "insufficient"

    @property
    def sigma_ci68_S_m(self) -> tuple[float, float | None] | None:
        r"""68 % interval of σ for an error proportional to σ: :math:`[\sigma/(1+\kappa), \sigma/(1-\kappa)]`,
        :math:`\kappa` = ``sigma_err_S_m / sigma_S_m`` (upper end None when :math:`\kappa \ge 1`).

        σ is a mean of squared displacements: a run that came out low also has a small spread, so ``sigma_err_S_m``
        is small exactly when σ is (on Brownian ions every (σ − true)/err beyond 3 was on the low side). The true σ
        is within :math:`\kappa\,\sigma_\mathrm{true}` of the estimate, which gives this asymmetric interval.
        """
        s, e = self.sigma_S_m, self.sigma_err_S_m
        if s is None or e is None or not s > 0:
            return None
        k = e / s
        return s / (1.0 + k), (s / (1.0 - k) if k < 1.0 else None)

    def report_fields(self, name: str) -> dict[str, Any]:
        """``n_eff``, ``stat_inefficiency`` and ``halves_z`` of one series (None when not computed)."""
        rep = self.reports.get(name)
        if rep is None:
            return {"n_eff": None, "stat_inefficiency": None, "halves_z": None}
        halves = None if rep.halves_z is None or not np.isfinite(rep.halves_z) else float(rep.halves_z)
        return {"n_eff": float(rep.n_eff), "stat_inefficiency": float(rep.g), "halves_z": halves}


def _curve_indices(n: int) -> np.ndarray:
    """At most :data:`CURVE_POINTS` lags of ``0 … n - 1``, dense at short lags and evenly spread at long ones."""
    if n <= CURVE_POINTS:
        return np.arange(n)
    half = CURVE_POINTS // 2
    geo = np.geomspace(1, n - 1, half).astype(int)
    return np.unique(np.concatenate([[0], geo, np.linspace(0, n - 1, half).astype(int)]))


def _loglog(t: np.ndarray, y: np.ndarray) -> float | None:
    ok = (t > 0) & (y > 0)
    return float(np.polyfit(np.log(t[ok]), np.log(y[ok]), 1)[0]) if ok.sum() >= 2 else None


def _ratio(a: np.ndarray, b: np.ndarray, g_floor: float) -> tuple[float | None, SeriesReport | None]:
    """``mean(a)/mean(b)`` and the report of its linearised series ``(a - R b)/mean(b)`` (None if mean(b) <= 0)."""
    mb = float(b.mean())
    if not mb > 0:
        return None, None
    r = float(a.mean()) / mb
    return r, analyse_series((a - r * b) / mb, detect_start=False, g_floor=g_floor)


def _err(rep: SeriesReport | None, scale: float = 1.0) -> float | None:
    return None if rep is None else float(rep.err) * scale


def _window(self_curve: np.ndarray, dt: float, i_end: int, tol: float) -> tuple[int, bool]:
    """First lag (frames) of the self part's diffusive stretch within 1 … ``i_end``, and whether one was found."""
    lags = np.arange(i_end + 1) * dt
    win = diffusive_window(lags, self_curve[: i_end + 1], tol=tol, max_lag_fraction=1.0)
    return (win.i_start, True) if win.found else (max(1, i_end // 10), False)


def collective_transport(
    positions: Any,
    times: np.ndarray,
    cations: np.ndarray,
    anions: np.ndarray,
    z_cation: int,
    z_anion: int,
    volume_A3: float,
    temperature_K: float,
    *,
    masses: np.ndarray | None = None,
    targets: ConvergenceTargets | None = None,
    t_equil_ps: float = 0.0,
    unwrapped: bool = True,
    min_frames: int = 40,
) -> ConductivityResult:
    """σ, σ_NE, σ/σ_NE, Onsager coefficients and t₊ with errors and verdicts (the five steps of the module text).

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) array, Å, **unwrapped**
        All atoms (the centre-of-mass drift is taken over all of them when ``masses`` are given).
    times : (n_frames,) array, ps, uniformly spaced.
    cations, anions : int index arrays
        The centre atom of every cation and anion.
    z_cation, z_anion : int
        Formal charges, e.
    volume_A3 : float
        Box volume (mean over the run), Å³.
    temperature_K : float
        Temperature, K.
    masses : (n_atoms,) array, optional
        Masses of all atoms, for the centre-of-mass drift (barycentric frame); None keeps the simulation frame.
    targets : ConvergenceTargets, optional
        Convergence targets (``sigma_min_origins``, ``sigma_rel_err``, ``t_plus_max_err``, ``sigma_min_ions``,
        ``min_n_eff``, ``stationarity_sigma``, ``D_slope_tol``, ``D_min_window_ps``, ``D_min_rms_A``).
    t_equil_ps : float
        Equilibration cut (ps from the first frame): earlier frames are left out.
    unwrapped : bool
        Whether ``positions`` are unwrapped; False is refused (``insufficient``).
    min_frames : int
        Fewer production frames are ``insufficient``.

    Returns
    -------
    ConductivityResult
    """
    tg = targets or ConvergenceTargets()
    cations = np.asarray(cations, dtype=np.intp)
    anions = np.asarray(anions, dtype=np.intp)
    res = ConductivityResult(
        n_cations=len(cations),
        n_anions=len(anions),
        z_cation=int(z_cation),
        z_anion=int(z_anion),
        volume_A3=float(volume_A3),
        temperature_K=float(temperature_K),
        t_equil_ps=float(t_equil_ps),
    )
    dt = frame_interval(times)
    reason = "positions are not unwrapped: σ needs unwrapped positions" if not unwrapped else ""
    reason = reason or input_problem(positions, cations, anions, z_cation, z_anion, volume_A3)
    if not reason and dt is None:
        reason = "times must be strictly increasing and uniformly spaced"
    if reason:
        return refused(res, reason, tg)
    x = np.asarray(positions)
    start = int(np.searchsorted(np.asarray(times) - times[0], t_equil_ps - 1e-9))
    n_prod = x.shape[0] - start
    res.run_length_ps = max(n_prod - 1, 0) * dt
    i_end = round((n_prod - 1) / tg.sigma_min_origins)
    if n_prod < min_frames or i_end < 3:
        return refused(
            res,
            f"{n_prod} production frames: too few for a fit window of 3 lags ending at run/"
            f"{tg.sigma_min_origins:g} (at least {max(min_frames, 3 * tg.sigma_min_origins + 1)})",
            tg,
        )

    ions = np.concatenate([cations, anions])
    xi = np.asarray(x[start:, ions], dtype=np.float64)
    if masses is not None:
        xi -= com_displacement(x[start:], masses)[:, None, :]
    nc = len(cations)
    xc, xa = xi[:, :nc], xi[:, nc:]
    zc, za = float(z_cation), float(z_anion)
    c = conductivity_factor(volume_A3, temperature_K)

    # curves: collective and self (charge-weighted), and the window from the self part
    n_lag = min(n_prod, 3 * i_end + 1)
    msd_c = msd_fft(xc)[:n_lag] * nc
    msd_a = msd_fft(xa)[:n_lag] * len(anions)
    self_curve = zc**2 * msd_c + za**2 * msd_a
    mscd = msd_fft((zc * xc.sum(axis=1) + za * xa.sum(axis=1))[:, None, :])[:n_lag]
    i0, found = _window(self_curve, dt, i_end, tg.D_slope_tol)
    i0 = min(i0, i_end - 2)

    # per-origin samples over the window
    rc, ra = xc.sum(axis=1), xa.sum(axis=1)
    pp, mm, pm = (
        origin_slopes(rc, None, i0, i_end, dt),
        origin_slopes(ra, None, i0, i_end, dt),
        origin_slopes(rc, ra, i0, i_end, dt),
    )
    sc, sa = self_origin_slopes(xc, i0, i_end, dt), self_origin_slopes(xa, i0, i_end, dt)
    sigma_series = c * (zc**2 * pp + 2 * zc * za * pm + za**2 * mm)
    ne_series = c * (zc**2 * sc + za**2 * sa)
    res.n_origins = int(sigma_series.size)
    g_floor = brownian_inefficiency(i0, i_end)
    reports = {
        "sigma": analyse_series(sigma_series, detect_start=False, g_floor=g_floor),
        "sigma_ne": analyse_series(ne_series, detect_start=False, g_floor=g_floor),
    }
    res.sigma_S_m, res.sigma_err_S_m = reports["sigma"].mean, reports["sigma"].err
    res.sigma_ne_S_m, res.sigma_ne_err_S_m = reports["sigma_ne"].mean, reports["sigma_ne"].err
    res.ionicity, rep = _ratio(sigma_series, ne_series, g_floor)
    res.ionicity_err = _err(rep)
    if rep is not None:
        reports["ionicity"] = rep
    res.t_plus, rep = _ratio(c * (zc**2 * pp + zc * za * pm), sigma_series, g_floor)
    res.t_plus_err = _err(rep)
    if rep is not None:
        reports["t_plus"] = rep
    res.t_plus_ne, rep = _ratio(c * zc**2 * sc, ne_series, g_floor)
    res.t_plus_ne_err = _err(rep)
    if rep is not None:
        reports["t_plus_ne"] = rep
    res.onsager = _onsager(c * pp, c * mm, c * pm, c * sc, c * sa, g_floor)

    # flatness: early vs late half of the window, paired over the same origins
    i_mid = round(np.sqrt(max(i0, 1) * i_end))
    if i_mid - i0 >= 2 and i_end - i_mid >= 2 and i_end >= 3 * max(i0, 1):
        n_o = res.n_origins

        def part(k0: int, k1: int) -> np.ndarray:
            a, b = origin_slopes(rc, None, k0, k1, dt)[:n_o], origin_slopes(ra, None, k0, k1, dt)[:n_o]
            return c * (zc**2 * a + 2 * zc * za * origin_slopes(rc, ra, k0, k1, dt)[:n_o] + za**2 * b)

        early, late = part(i0, i_mid), part(i_mid, i_end)
        reports["flatness"] = analyse_series(
            late - early, detect_start=False, g_floor=brownian_inefficiency(i_mid, i_end)
        )
        res.sigma_early_S_m, res.sigma_late_S_m = float(early.mean()), float(late.mean())
        err = reports["flatness"].err
        res.flatness_z = float(abs(reports["flatness"].mean) / err) if err > 0 else None
    res.reports = reports

    lags = np.arange(n_lag) * dt
    tw = lags[i0 : i_end + 1]
    res.window_ps, res.window_found = (float(tw[0]), float(tw[-1])), found
    res.loglog_slope = _loglog(tw, self_curve[i0 : i_end + 1])
    res.collective_loglog_slope = _loglog(tw, mscd[i0 : i_end + 1])
    res.rms_displacement_A = float(np.sqrt(max((msd_c[i_end] + msd_a[i_end]) / len(ions), 0.0)))
    res.fit_slope_A2_ps = res.sigma_S_m / c
    res.fit_intercept_A2 = float(mscd[i0 : i_end + 1].mean() - res.fit_slope_A2_ps * tw.mean())
    keep = _curve_indices(n_lag)
    res.lag_times_ps, res.mscd_A2, res.self_A2 = lags[keep], mscd[keep], self_curve[keep]
    res.message = (
        f"Einstein–Helfand fit over {tw[0]:g}-{tw[-1]:g} ps on {res.n_origins} time origins"
        + ("" if found else f"; no diffusive stretch of the ions' self MSD (slope within {tg.D_slope_tol:g} of 1)")
        + (f"; first {t_equil_ps:g} ps cut as equilibration" if start else "")
    )
    res.verdicts = conductivity_verdicts(res, tg)
    return res


def _onsager(
    pp: np.ndarray, mm: np.ndarray, pm: np.ndarray, sc: np.ndarray, sa: np.ndarray, g_floor: float
) -> dict[str, dict[str, float | None]]:
    """Onsager coefficients e²L^{ij} (S/m) with their errors, self and distinct parts, from per-origin series."""

    def mean_err(s: np.ndarray) -> tuple[float, float]:
        rep = analyse_series(s, detect_start=False, g_floor=g_floor)
        return float(rep.mean), float(rep.err)

    out: dict[str, dict[str, float | None]] = {}
    for name, total, self_part in (("cation-cation", pp, sc), ("anion-anion", mm, sa)):
        (lv, le), (sv, se), (dv, de) = mean_err(total), mean_err(self_part), mean_err(total - self_part)
        out[name] = {
            "L_S_m": lv,
            "L_err_S_m": le,
            "self_S_m": sv,
            "self_err_S_m": se,
            "distinct_S_m": dv,
            "distinct_err_S_m": de,
        }
    lv, le = mean_err(pm)
    out["cation-anion"] = {"L_S_m": lv, "L_err_S_m": le, "distinct_S_m": lv, "distinct_err_S_m": le}
    return out
