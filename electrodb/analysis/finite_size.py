"""Finite-size correction of self-diffusion (Yeh & Hummer, J. Phys. Chem. B 108, 15873 (2004)).

D∞ = D_PBC + k_B T ξ / (6 π η L), ξ = 2.837297 for a cubic box, L the box length and η the shear viscosity of
the solvent (the experimental viscosity of water by default; the result says which was used).
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
    correction : float
        :math:`\\Delta D = k_B T \\xi / (6\\pi\\eta L)`, 1e-9 m²/s.
    D_pbc : float
        Input, 1e-9 m²/s.
    viscosity_Pa_s : float
        Viscosity used, Pa·s.
    viscosity_source : str
        ``'user'`` or ``'experimental_water_vogel'`` (see :func:`water_viscosity`).
    temperature_K, box_length_A, xi : float
    """

    D_inf: float
    correction: float
    D_pbc: float
    viscosity_Pa_s: float
    viscosity_source: str
    temperature_K: float
    box_length_A: float
    xi: float = YEH_HUMMER_XI


def yeh_hummer_correction(
    D_pbc: float,
    temperature_K: float,
    box_length_A: float,
    viscosity_Pa_s: float | None = None,
) -> YehHummerResult:
    r"""Yeh–Hummer finite-size correction for a cubic periodic box.

    .. math:: D_\infty = D_\mathrm{PBC} + \frac{k_B T\,\xi}{6\pi\eta L},\qquad \xi = 2.837297 .

    Parameters
    ----------
    D_pbc : float
        Diffusion coefficient measured in the periodic box, 1e-9 m²/s.
    temperature_K : float
        Temperature, K.
    box_length_A : float
        Edge length ``L`` of the cubic box, Å (for NPT use the mean; ξ is for cubic boxes only).
    viscosity_Pa_s : float, optional
        Shear viscosity η in Pa·s (note 1 mPa·s = 1 cP = 1e-3 Pa·s).  Ideally the viscosity of the *model*
        (η of the simulated liquid); if None, the experimental viscosity of pure water at ``temperature_K``
        from :func:`water_viscosity` (0.890 mPa·s at 298.15 K) is used and ``viscosity_source`` says so.

    Returns
    -------
    YehHummerResult
    """
    if box_length_A <= 0 or temperature_K <= 0:
        raise ValueError("box_length_A and temperature_K must be positive")
    if viscosity_Pa_s is None:
        eta, source = water_viscosity(temperature_K), "experimental_water_vogel"
    else:
        eta, source = float(viscosity_Pa_s), "user"
        if eta <= 0:
            raise ValueError("viscosity_Pa_s must be positive")
    corr_m2_s = BOLTZMANN_J_PER_K * temperature_K * YEH_HUMMER_XI / (6.0 * np.pi * eta * box_length_A * 1e-10)
    corr = float(corr_m2_s * 1e9)
    return YehHummerResult(
        D_inf=float(D_pbc) + corr,
        correction=corr,
        D_pbc=float(D_pbc),
        viscosity_Pa_s=eta,
        viscosity_source=source,
        temperature_K=float(temperature_K),
        box_length_A=float(box_length_A),
    )
