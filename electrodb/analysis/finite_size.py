"""Finite-size correction of self-diffusion (Yeh & Hummer, J. Phys. Chem. B 108, 15873 (2004)).

D∞ = D_PBC + k_B T ξ / (6 π η L), ξ = 2.837297 for a cubic box, L the box length and η the shear viscosity of
the simulated solution, passed explicitly (chosen by :func:`electrodb.analysis.viscosity.solution_viscosity`;
the result records which was used).  The correction scales as 1/η: pure-water η for a viscous salt solution
over-corrects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BOLTZMANN_J_PER_K", "YEH_HUMMER_XI", "YehHummerResult", "water_viscosity", "yeh_hummer_correction"]

#: Boltzmann constant in J/K (exact, SI 2019).
BOLTZMANN_J_PER_K = 1.380649e-23
#: Yeh–Hummer constant ξ for a cubic lattice (Ewald sum of the Oseen tensor), dimensionless.
YEH_HUMMER_XI = 2.837297


def water_viscosity(temperature_K: float) -> float:
    r"""Shear viscosity of liquid water at 0.1 MPa from the Vogel-type correlation, Pa·s.

    :math:`\eta(T) = A\cdot 10^{B/(T-C)}` with :math:`A = 2.414\times10^{-5}` Pa·s, :math:`B = 247.8` K,
    :math:`C = 140` K (the widely used fit quoted e.g. in the CRC Handbook / Al-Shemmeri, "Engineering Fluid
    Mechanics"); accurate to ~2.5 % between 0 and 370 °C.  At 298.15 K it gives 0.890 mPa·s, matching the
    IAPWS 2008 reference value 0.8900 mPa·s.
    """
    t = float(temperature_K)
    if t <= 140.0:
        raise ValueError("water_viscosity: temperature must be above 140 K (correlation pole)")
    return 2.414e-5 * 10.0 ** (247.8 / (t - 140.0))


@dataclass(frozen=True)
class YehHummerResult:
    """Finite-size corrected diffusion coefficient.

    Attributes
    ----------
    D_inf : float
        :math:`D_\\infty = D_\\mathrm{PBC} + \\Delta D`, 1e-9 m²/s.
    D_inf_err : float or None
        :math:`\\sqrt{\\sigma_{D_\\mathrm{PBC}}^2 + (\\Delta D\\,\\sigma_\\eta/\\eta)^2}`, 1e-9 m²/s
        (None when ``D_pbc_err`` is None).
    correction : float
        :math:`\\Delta D = k_B T \\xi / (6\\pi\\eta L)`, 1e-9 m²/s.
    correction_err : float
        :math:`\\Delta D\\,\\sigma_\\eta/\\eta`, 1e-9 m²/s.
    D_pbc, D_pbc_err : float, float or None
        Inputs, 1e-9 m²/s.
    viscosity_Pa_s, viscosity_err_Pa_s : float
        Viscosity used and its uncertainty, Pa·s.
    viscosity_source : str
        Where η came from (as passed by the caller, e.g. ``'laliberte_correlation'``; see
        :func:`electrodb.analysis.viscosity.solution_viscosity`).
    temperature_K, box_length_A, xi : float
    """

    D_inf: float
    D_inf_err: float | None
    correction: float
    correction_err: float
    D_pbc: float
    D_pbc_err: float | None
    viscosity_Pa_s: float
    viscosity_err_Pa_s: float
    viscosity_source: str
    temperature_K: float
    box_length_A: float
    xi: float = YEH_HUMMER_XI


def yeh_hummer_correction(
    D_pbc: float,
    temperature_K: float,
    box_length_A: float,
    viscosity_Pa_s: float,
    *,
    D_pbc_err: float | None = None,
    viscosity_err_Pa_s: float = 0.0,
    viscosity_source: str = "user",
) -> YehHummerResult:
    r"""Yeh–Hummer finite-size correction for a cubic periodic box.

    .. math::

        D_\infty = D_\mathrm{PBC} + \Delta D, \qquad \Delta D = \frac{k_B T\,\xi}{6\pi\eta L},\qquad
        \xi = 2.837297, \qquad
        \sigma_{D_\infty}^2 = \sigma_{D_\mathrm{PBC}}^2 + \left(\Delta D\,\frac{\sigma_\eta}{\eta}\right)^2 .

    :math:`\Delta D \propto 1/\eta`: the viscosity must be that of the simulated *solution*.  Pure-water
    :math:`\eta` for a salt that raises the viscosity gives too large a :math:`\Delta D` (over-correction);
    pick η with :func:`electrodb.analysis.viscosity.solution_viscosity`.

    Parameters
    ----------
    D_pbc : float
        Diffusion coefficient measured in the periodic box, 1e-9 m²/s.
    temperature_K : float
        Temperature, K.
    box_length_A : float
        Edge length ``L`` of the cubic box, Å (for NPT use the mean; ξ is for cubic boxes only).
    viscosity_Pa_s : float
        Shear viscosity η of the solution, Pa·s (1 mPa·s = 1 cP = 1e-3 Pa·s); required — there is no silent
        pure-water default (use :func:`water_viscosity` explicitly for pure water).
    D_pbc_err : float, optional
        Uncertainty of ``D_pbc``, 1e-9 m²/s.
    viscosity_err_Pa_s : float
        Uncertainty of η, Pa·s, propagated into ``D_inf_err``.
    viscosity_source : str
        Label stored in the result.

    Returns
    -------
    YehHummerResult
    """
    if box_length_A <= 0 or temperature_K <= 0:
        raise ValueError("box_length_A and temperature_K must be positive")
    eta = float(viscosity_Pa_s)
    if not np.isfinite(eta) or eta <= 0:
        raise ValueError("viscosity_Pa_s must be positive")
    eta_err = float(viscosity_err_Pa_s or 0.0)
    if eta_err < 0 or not np.isfinite(eta_err):
        raise ValueError("viscosity_err_Pa_s must be a non-negative number")
    corr_m2_s = BOLTZMANN_J_PER_K * temperature_K * YEH_HUMMER_XI / (6.0 * np.pi * eta * box_length_A * 1e-10)
    corr = float(corr_m2_s * 1e9)
    corr_err = corr * eta_err / eta
    d_inf_err = None if D_pbc_err is None else float(np.hypot(D_pbc_err, corr_err))
    return YehHummerResult(
        D_inf=float(D_pbc) + corr,
        D_inf_err=d_inf_err,
        correction=corr,
        correction_err=corr_err,
        D_pbc=float(D_pbc),
        D_pbc_err=None if D_pbc_err is None else float(D_pbc_err),
        viscosity_Pa_s=eta,
        viscosity_err_Pa_s=eta_err,
        viscosity_source=viscosity_source,
        temperature_K=float(temperature_K),
        box_length_A=float(box_length_A),
    )
