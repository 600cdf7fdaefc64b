r"""Shear viscosity of the simulated solution, for the Yeh–Hummer finite-size correction of D.

The Yeh–Hummer correction :math:`\Delta D = k_B T\xi/(6\pi\eta L)` is inversely proportional to the shear
viscosity :math:`\eta` of the *solution*; pure-water :math:`\eta` over-corrects every salt that raises the
viscosity.  :func:`solution_viscosity` picks, in this order of preference,

1. ``green_kubo_run`` — :func:`green_kubo_viscosity` from the run's own per-frame pressure tensor, when it is
   stored, sampled finely enough and the estimate is usable (the model's own η: the physically right one);
2. ``laliberte_correlation`` — the experimental viscosity of the aqueous salt solution from Laliberté's
   model (J. Chem. Eng. Data 52, 321 (2007); parameters of J. Chem. Eng. Data 54, 1725 (2009)), through
   ``thermo.electrochem.Laliberte_viscosity`` with the table shipped in ``chemicals``, inside the temperature
   and mass-fraction range of that salt's fit;
3. ``experimental_water_vogel`` — pure water at T (:func:`electrodb.analysis.finite_size.water_viscosity`).

Every fall-through is explained in :attr:`ViscosityEstimate.note`.  Pure numpy/scipy plus a library call
(no I/O).  Units: stress eV/Å³, volume Å³, time ps, temperature K, viscosity Pa·s (1 mPa·s = 1e-3 Pa·s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from electrodb.analysis.finite_size import BOLTZMANN_J_PER_K, water_viscosity
from electrodb.analysis.statistics import autocovariance, block_standard_error, student_t_factor

__all__ = [
    "EV_PER_A3_IN_PA",
    "LALIBERTE_NOMINAL_REL_ERR",
    "GreenKuboResult",
    "ViscosityEstimate",
    "green_kubo_viscosity",
    "laliberte_viscosity",
    "solution_viscosity",
]

#: 1 eV/Å³ in Pa (exact with the SI 2019 elementary charge).
EV_PER_A3_IN_PA = 1.602176634e-19 / 1e-30
#: Relative uncertainty attached to the Laliberté correlation.  A conservative nominal value: Laliberté's
#: per-solute fit deviations are mostly around or below 1-2 % inside the fitted range; 3 % is a stand-in, not a
#: number taken from the paper.
LALIBERTE_NOMINAL_REL_ERR = 0.03

SOURCE_GREEN_KUBO = "green_kubo_run"
SOURCE_LALIBERTE = "laliberte_correlation"
SOURCE_WATER = "experimental_water_vogel"


# --------------------------------------------------------------------------------------------- Green–Kubo
@dataclass
class GreenKuboResult:
    """Green–Kubo shear viscosity from the pressure-tensor autocorrelation.

    Attributes
    ----------
    eta_Pa_s, eta_err_Pa_s : float or None
        Viscosity and its uncertainty (Pa·s); None when ``ok`` is False before the integral was computed.
    ok : bool
        True when every sampling and plateau check passed (``reason`` empty).
    reason : str
        Why the estimate is not usable.
    cutoff_ps : float or None
        Upper limit :math:`t_c` of the integral.
    dt_ps : float
    n_blocks : int
    lag_ps, running_integral_Pa_s : ndarray
        Lags and the block-averaged running integral :math:`\\eta(t)` (for plots).
    """

    eta_Pa_s: float | None
    eta_err_Pa_s: float | None
    ok: bool
    reason: str = ""
    cutoff_ps: float | None = None
    dt_ps: float = 0.0
    n_blocks: int = 0
    lag_ps: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    running_integral_Pa_s: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)


def green_kubo_viscosity(
    stress_eV_A3: np.ndarray,
    volume_A3: float,
    temperature_K: float,
    dt_ps: float,
    *,
    n_blocks: int = 5,
    include_normal_differences: bool = False,
    max_dt_ps: float = 0.005,
    min_lag1_corr: float = 0.5,
    min_cutoff_samples: int = 5,
    min_block_over_cutoff: float = 20.0,
    noise_sigma: float = 2.0,
    cutoff_factor: float = 2.0,
) -> GreenKuboResult:
    r"""Shear viscosity from the Green–Kubo integral of the off-diagonal pressure-tensor autocorrelation.

    .. math::

        \eta = \frac{V}{k_B T}\int_0^{t_c} \langle P_{\alpha\beta}(0)\,P_{\alpha\beta}(t)\rangle\,dt ,

    averaged over the three independent off-diagonal components :math:`P_{xy}, P_{xz}, P_{yz}` (each
    symmetrised, :math:`(P_{\alpha\beta}+P_{\beta\alpha})/2`, the run mean removed); with
    ``include_normal_differences`` also :math:`(P_{xx}-P_{yy})/2` and :math:`(P_{yy}-P_{zz})/2`, which in an
    isotropic liquid have the same autocorrelation.  The sign convention of the stress (ASE stress
    :math:`\sigma = -P`) does not matter.  The tensor should be the full pressure tensor (virial plus kinetic
    part); a virial-only stress misses the kinetic contribution, small in liquids.

    Procedure: the run is cut into ``n_blocks`` contiguous blocks; in each, the FFT autocorrelation (all time
    origins) and its running trapezoidal integral.  **Cut-off rule**: :math:`t_0` is the first lag at which
    the block-mean autocorrelation is no longer significantly positive, ``C(t) < noise_sigma × SEM(t)``
    (SEM across blocks): the correlation has decayed into the noise.  The integral is taken to
    :math:`t_c = ` ``cutoff_factor`` × :math:`t_0` (default 2): stopping at :math:`t_0` itself truncates the
    tail still hidden in the noise (−2.5 % for an exponential with the defaults) and makes the truncation
    vary from run to run, while beyond :math:`t_0` the running integral only adds noise, which the block error
    sees.  ``η`` is the mean of the block integrals at :math:`t_c`, its error the standard error across
    blocks times the Student-t factor :math:`t_{0.841,B-1}` (68.3 % interval).  **Plateau check**: the
    block-mean running integral at :math:`t_0` must agree with that at :math:`t_c` within
    ``max(3 err, 5 %)``.

    **Sampling checks** (the estimate is refused, ``ok=False`` with the reason): no NaN frames; frame interval
    ``dt_ps ≤ max_dt_ps`` (the stress autocorrelation of water decays on ~10–100 fs, so GK needs
    fs-resolved pressure; 5 fs default); the normalised autocorrelation at one frame ``≥ min_lag1_corr`` (the
    initial decay is resolved by the quadrature); :math:`t_0 \ge` ``min_cutoff_samples`` frames; blocks at
    least ``min_block_over_cutoff`` × :math:`t_c` long.

    Parameters
    ----------
    stress_eV_A3 : (n_frames, 3, 3) array, eV/Å³
        Per-frame stress or pressure tensor.
    volume_A3 : float
        Mean box volume, Å³.
    temperature_K : float
    dt_ps : float
        Interval between stored stress frames, ps.
    n_blocks : int
    include_normal_differences, max_dt_ps, min_lag1_corr, min_cutoff_samples, min_block_over_cutoff : see above
    noise_sigma, cutoff_factor : float
        Cut-off rule, see above.
        Options and thresholds described above.

    Returns
    -------
    GreenKuboResult
        η in Pa·s.
    """
    s = np.asarray(stress_eV_A3, dtype=np.float64)
    if s.ndim != 3 or s.shape[1:] != (3, 3):
        raise ValueError(f"stress must have shape (n_frames, 3, 3), got {s.shape}")
    if volume_A3 <= 0 or temperature_K <= 0 or dt_ps <= 0:
        raise ValueError("volume_A3, temperature_K and dt_ps must be positive")
    out = GreenKuboResult(None, None, False, dt_ps=float(dt_ps), n_blocks=n_blocks)
    n_bad = int((~np.isfinite(s).all(axis=(1, 2))).sum())
    if n_bad:
        out.reason = f"stress not recorded in {n_bad} of {len(s)} frames"
        return out
    if dt_ps > max_dt_ps * (1 + 1e-9):
        out.reason = f"stress sampled every {dt_ps * 1e3:g} fs > {max_dt_ps * 1e3:g} fs: GK integrand not resolved"
        return out
    comps = [0.5 * (s[:, 0, 1] + s[:, 1, 0]), 0.5 * (s[:, 0, 2] + s[:, 2, 0]), 0.5 * (s[:, 1, 2] + s[:, 2, 1])]
    if include_normal_differences:
        comps += [0.5 * (s[:, 0, 0] - s[:, 1, 1]), 0.5 * (s[:, 1, 1] - s[:, 2, 2])]
    p = np.stack(comps, axis=1) * EV_PER_A3_IN_PA  # (F, C), Pa
    n_b = len(p) // n_blocks
    if n_blocks < 2 or n_b < 2 * min_cutoff_samples:
        out.reason = f"{len(p)} stress frames in {n_blocks} blocks: too few"
        return out
    p = p - p[: n_b * n_blocks].mean(axis=0)  # whole-run mean: per-block means would bias C(t) by -Var(mean)
    acfs = [autocovariance(p[k * n_b : (k + 1) * n_b]) for k in range(n_blocks)]
    acf = np.stack(acfs)  # (B, n_b), Pa²
    prefactor = volume_A3 * 1e-30 / (BOLTZMANN_J_PER_K * temperature_K) * dt_ps * 1e-12  # m³/J · s
    running = np.zeros_like(acf)
    running[:, 1:] = prefactor * np.cumsum(0.5 * (acf[:, 1:] + acf[:, :-1]), axis=1)  # Pa·s
    mean_acf = acf.mean(axis=0)
    sem_acf = block_standard_error(acf)
    lags = np.arange(n_b) * dt_ps
    out.lag_ps, out.running_integral_Pa_s = lags, running.mean(axis=0)
    if mean_acf[0] <= 0 or mean_acf[1] / mean_acf[0] < min_lag1_corr:
        out.reason = (
            f"stress autocorrelation falls to {mean_acf[1] / mean_acf[0]:.2f} of its initial value within one "
            f"frame ({dt_ps * 1e3:g} fs; need ≥ {min_lag1_corr}): sampling too coarse for Green–Kubo"
        )
        return out
    below = np.nonzero(mean_acf[1:] < noise_sigma * sem_acf[1:])[0]
    if len(below) == 0:
        out.reason = "stress autocorrelation never decays into the noise within a block: run too short"
        return out
    i0 = int(below[0]) + 1  # the correlation has decayed into the noise
    ic = min(int(np.ceil(cutoff_factor * i0)), n_b - 1)
    out.cutoff_ps = float(lags[ic])
    vals = running[:, ic]
    eta = float(vals.mean())
    err = float(block_standard_error(vals) * student_t_factor(n_blocks))
    out.eta_Pa_s, out.eta_err_Pa_s = eta, err
    problems = []
    if i0 < min_cutoff_samples:
        problems.append(f"decay within {i0} frames < {min_cutoff_samples}: correlation decay not resolved")
    if n_b < min_block_over_cutoff * ic:
        problems.append(f"blocks {n_b * dt_ps:g} ps < {min_block_over_cutoff:g} × cut-off {lags[ic]:g} ps")
    elif abs(out.running_integral_Pa_s[i0] - eta) > max(3 * err, 0.05 * abs(eta)):
        problems.append(f"running integral has no plateau between {lags[i0]:g} and {lags[ic]:g} ps")
    if eta <= 0:
        problems.append(f"η = {eta:.3g} Pa·s ≤ 0")
    out.ok = not problems
    out.reason = "; ".join(problems)
    return out


# --------------------------------------------------------------------------------------------- Laliberté
def laliberte_viscosity(salt: str, molality: float, temperature_K: float) -> tuple[float | None, str]:
    r"""Experimental viscosity of an aqueous single-salt solution from Laliberté's model, Pa·s.

    :math:`\ln\eta_m = w_w\ln\eta_w + w_s\ln\eta_s`, with the solute "viscosity"
    :math:`\eta_s = \exp\!\big[(v_1 w_s^{v_2}+v_3)/(v_4 t+1)\big]/(v_5 w_s^{v_6}+1)` (t in °C, mPa·s) and the
    mass fraction :math:`w_s = mM/(1000 + mM)` (M in g/mol from the same table).  M. Laliberté,
    J. Chem. Eng. Data 52, 321 (2007) (model) and 54, 1725 (2009) (parameters), evaluated with
    ``thermo.electrochem.Laliberte_viscosity`` on the table ``chemicals/Electrolytes/Laliberte2009.tsv``.

    Only inside the salt's fitted range (``Min T.1``–``Max T.1`` °C, ``w_s ≤ Max w.1``); outside it, or for a
    salt not in the table (looked up by formula, e.g. ``"LiCl"``), returns ``(None, reason)``.

    Returns
    -------
    (eta_Pa_s or None, note)
    """
    try:
        from thermo import electrochem
    except ImportError:  # pragma: no cover - thermo is a dependency
        return None, "thermo not installed: Laliberté correlation unavailable"
    table = electrochem.Laliberte_data
    rows = table[table["Formula"] == salt]
    if len(rows) == 0:
        return None, f"{salt} not in Laliberté's viscosity table"
    row = rows.iloc[0]
    t_min, t_max, w_max = float(row["Min T.1"]), float(row["Max T.1"]), float(row["Max w.1"])
    mw = float(row["MW"])
    w = molality * mw / (1000.0 + molality * mw)
    t_c = temperature_K - 273.15
    if not np.isfinite([t_min, t_max, w_max]).all():
        return None, f"{salt}: no viscosity parameters in Laliberté's table"
    if not t_min - 1e-9 <= t_c <= t_max + 1e-9:
        return None, f"{salt}: {t_c:.2f} °C outside Laliberté's fitted range {t_min:g}–{t_max:g} °C"
    if w > w_max + 1e-12:
        return None, (
            f"{salt}: {molality:g} mol/kg (mass fraction {w:.3f}) above Laliberté's fitted range (w ≤ {w_max:.3f})"
        )
    eta = float(electrochem.Laliberte_viscosity(temperature_K, [w], [row.name]))
    note = (
        f"Laliberté (JCED 52, 321 (2007); 54, 1725 (2009)) for {salt}, w = {w:.4f}, "
        f"fit range {t_min:g}–{t_max:g} °C, w ≤ {w_max:.3f} ({int(row['No of points in corr.1'])} points)"
    )
    return eta, note


# ----------------------------------------------------------------------------------------------- choice
@dataclass(frozen=True)
class ViscosityEstimate:
    """The viscosity used for Yeh–Hummer, with its uncertainty, where it came from and why.

    Attributes
    ----------
    eta_Pa_s, eta_err_Pa_s : float
        Pa·s.  ``eta_err_Pa_s`` is 0 for pure water (not propagated: the dominant error of that choice is the
        systematic one of ignoring the salt, stated in ``note``).
    source : str
        ``'green_kubo_run'``, ``'laliberte_correlation'``, ``'experimental_water_vogel'`` (or ``'user'`` when
        the caller set it).
    note : str
        Details and the reasons earlier choices were refused.
    """

    eta_Pa_s: float
    eta_err_Pa_s: float
    source: str
    note: str = ""


def solution_viscosity(
    salt: str | None,
    molality: float,
    temperature_K: float,
    stress: np.ndarray | None = None,
    volume: float | None = None,
    dt_ps: float | None = None,
    *,
    max_rel_err: float = 0.5,
    **green_kubo_options: float,
) -> ViscosityEstimate:
    """Best available shear viscosity of the simulated solution (see the module docstring for the order).

    Parameters
    ----------
    salt : str or None
        Salt formula (``"LiCl"``); None or molality 0 means pure water.
    molality : float, mol/kg
    temperature_K : float
    stress : (n_frames, 3, 3) array, eV/Å³, optional
        Per-frame stress tensor of the run (NaN where not recorded).
    volume : float, Å³, optional
        Mean box volume (needed with ``stress``).
    dt_ps : float, optional
        Interval between stress frames (needed with ``stress``).
    max_rel_err : float
        A Green–Kubo estimate with a larger relative error falls through to the correlation.
    **green_kubo_options
        Passed to :func:`green_kubo_viscosity`.

    Returns
    -------
    ViscosityEstimate
    """
    notes: list[str] = []
    if stress is None:
        notes.append("Green–Kubo: no stress tensor stored")
    elif volume is None or dt_ps is None:
        notes.append("Green–Kubo: volume or frame interval missing")
    else:
        gk = green_kubo_viscosity(stress, volume, temperature_K, dt_ps, **green_kubo_options)
        if gk.ok and gk.eta_err_Pa_s is not None and gk.eta_err_Pa_s <= max_rel_err * gk.eta_Pa_s:
            return ViscosityEstimate(
                gk.eta_Pa_s,
                gk.eta_err_Pa_s,
                SOURCE_GREEN_KUBO,
                f"Green–Kubo, off-diagonal pressure autocorrelation integrated to {gk.cutoff_ps:g} ps, "
                f"{gk.n_blocks} blocks",
            )
        if gk.ok:
            notes.append(f"Green–Kubo: relative error {gk.eta_err_Pa_s / gk.eta_Pa_s:.2f} > {max_rel_err}")
        else:
            notes.append(f"Green–Kubo: {gk.reason}")
    if salt and molality > 0:
        eta, note = laliberte_viscosity(salt, molality, temperature_K)
        if eta is not None:
            return ViscosityEstimate(
                eta, LALIBERTE_NOMINAL_REL_ERR * eta, SOURCE_LALIBERTE, "; ".join([*notes, note, "experimental η"])
            )
        notes.append(note)
        notes.append("pure-water η used: over-corrects D for salts that raise the viscosity")
    else:
        notes.append("no salt: pure water")
    return ViscosityEstimate(water_viscosity(temperature_K), 0.0, SOURCE_WATER, "; ".join(notes))
