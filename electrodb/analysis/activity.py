"""Mean ionic activity coefficients, osmotic coefficients and water activity of a salt in water.

Scales and units: molarity c (mol/L), molality m (mol/kg water), ionic strength I in the unit of its scale,
temperature T in K. ``ln`` is the natural logarithm throughout. y± is the molar-scale and γ± the molal-scale
mean activity coefficient. Equations and references: ``docs/methods-thermodynamics.md``.

Chain from simulation to experiment: a_cc(c) from Kirkwood–Buff integrals (``kirkwood_buff``) →
``acc_fit`` (a Debye–Hückel-shaped fit of a_cc, integrated analytically to ln y±, then γ±, φ and a_w with
the fit's covariance; it uses the Debye–Hückel helpers, ``ln_gamma_from_ln_y`` and ``water_activity`` from
here). ``osmotic_coefficient`` is Gibbs–Duhem for tabulated ln γ± (or its derivative) at points.
Experiment: ``reference_activity`` (Hamer & Wu / CRC tables) and the Pitzer–Mayorga equations
(``pitzer_ln_gamma``, ``pitzer_phi``) where tables stop.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
from scipy.constants import N_A, e, epsilon_0, k
from scipy.integrate import cumulative_trapezoid
from scipy.interpolate import PchipInterpolator

#: Molar mass of water, kg/mol.
M_WATER: float = 0.018015


# --------------------------------------------------------------------------- water properties


def water_dielectric_constant(T: float = 298.15) -> float:
    """Static relative permittivity of water (Malmberg & Maryott, J. Res. NBS 56, 1 (1956)), 0–100 °C.

    ε_r(t) = 87.740 − 0.40008 t + 9.398e-4 t^2 − 1.410e-6 t^3, t in °C (78.30 at 25 °C).
    """
    t = T - 273.15
    return 87.740 - 0.40008 * t + 9.398e-4 * t**2 - 1.410e-6 * t**3


def water_density(T: float = 298.15) -> float:
    """Density of air-free water at 101.325 kPa, kg/L (Tanaka et al., Metrologia 38, 301 (2001)), 0–40 °C.

    ρ_w = a5 [1 − (t + a1)^2 (t + a2) / (a3 (t + a4))] with t in °C (0.997047 kg/L at 25 °C).
    """
    t = T - 273.15
    a1, a2, a3, a4, a5 = -3.983035, 301.797, 522528.9, 69.34881, 999.974950
    return a5 * (1.0 - (t + a1) ** 2 * (t + a2) / (a3 * (t + a4))) / 1000.0


# --------------------------------------------------------------------------- Debye–Hückel


@dataclass(frozen=True)
class DebyeHuckelConstants:
    """Debye–Hückel constants for ln (natural log) activity coefficients.

    Attributes
    ----------
    A_molar : (L/mol)^1/2       ln y = −A |z+z-| √I_c / (1 + B a √I_c)
    B_molar : Å^-1 (L/mol)^1/2  κ = B √I_c
    A_molal : (kg/mol)^1/2      A_molar √ρ_w  (I_c → ρ_w I_m at infinite dilution)
    B_molal : Å^-1 (kg/mol)^1/2
    A_phi : (kg/mol)^1/2        Pitzer's Debye–Hückel constant, A_molal / 3 (0.3915 at 25 °C)
    epsilon_r, T, rho_w : permittivity, temperature (K) and water density (kg/L) used
    """

    A_molar: float
    B_molar: float
    A_molal: float
    B_molal: float
    A_phi: float
    epsilon_r: float
    T: float
    rho_w: float


def debye_huckel_constants(T: float = 298.15, epsilon_r: float | None = None) -> DebyeHuckelConstants:
    """A and B from the Bjerrum length λ_B = e^2/(4π ε0 ε_r k T) and κ^2 = 2000 N_A e^2 I_c/(ε0 ε_r k T).

    A = λ_B B / 2 (B in m^-1); ε_r defaults to ``water_dielectric_constant(T)``.
    """
    eps = water_dielectric_constant(T) if epsilon_r is None else float(epsilon_r)
    bjerrum = e**2 / (4.0 * math.pi * epsilon_0 * eps * k * T)  # m
    b_si = math.sqrt(2000.0 * N_A * e**2 / (epsilon_0 * eps * k * T))  # m^-1 (L/mol)^1/2
    a_molar = 0.5 * bjerrum * b_si
    rho_w = water_density(T)
    return DebyeHuckelConstants(
        A_molar=a_molar,
        B_molar=b_si * 1e-10,
        A_molal=a_molar * math.sqrt(rho_w),
        B_molal=b_si * 1e-10 * math.sqrt(rho_w),
        A_phi=a_molar * math.sqrt(rho_w) / 3.0,
        epsilon_r=eps,
        T=T,
        rho_w=rho_w,
    )


def stoichiometry(z_plus: int, z_minus: int) -> tuple[int, int]:
    """(ν+, ν−) of the electroneutral salt with ion charges z+ > 0 > z−."""
    if z_plus <= 0 or z_minus >= 0:
        raise ValueError("need z_plus > 0 and z_minus < 0")
    g = math.gcd(int(z_plus), int(-z_minus))
    return int(-z_minus) // g, int(z_plus) // g


def ionic_strength(conc: np.ndarray | float, z_plus: int = 1, z_minus: int = -1) -> np.ndarray:
    """I = ½ conc (ν+ z+^2 + ν− z−^2), in the unit of ``conc`` (mol/L or mol/kg)."""
    nu_p, nu_m = stoichiometry(z_plus, z_minus)
    return 0.5 * np.asarray(conc, dtype=float) * (nu_p * z_plus**2 + nu_m * z_minus**2)


def debye_huckel_ln_y(
    c: np.ndarray | float, z_plus: int = 1, z_minus: int = -1, ion_size: float = 4.0, T: float = 298.15
) -> np.ndarray:
    """Extended Debye–Hückel, molar scale: ln y± = −A |z+z−| √I / (1 + B a √I), I in mol/L.

    Parameters
    ----------
    c : mol/L, salt molarity
    ion_size : Å, distance of closest approach a (default 4 Å; 0 gives the limiting law)
    """
    dh = debye_huckel_constants(T)
    s = np.sqrt(ionic_strength(c, z_plus, z_minus))
    return -dh.A_molar * abs(z_plus * z_minus) * s / (1.0 + dh.B_molar * ion_size * s)


def debye_huckel_acc(
    c: np.ndarray | float, z_plus: int = 1, z_minus: int = -1, ion_size: float = 4.0, T: float = 298.15
) -> np.ndarray:
    """a_cc = 1 + d ln y±/d ln c of the extended Debye–Hückel law: 1 − A|z+z−|√I / [2 (1 + B a √I)^2]."""
    dh = debye_huckel_constants(T)
    s = np.sqrt(ionic_strength(c, z_plus, z_minus))
    return 1.0 - dh.A_molar * abs(z_plus * z_minus) * s / (2.0 * (1.0 + dh.B_molar * ion_size * s) ** 2)


# --------------------------------------------------------------------------- a_cc -> ln y


def _cumulative(x: np.ndarray, f: np.ndarray, scheme: str) -> np.ndarray:
    """∫_{x0}^{x_i} f dx at every node, along the last axis of f."""
    if scheme == "trapezoid":
        return cumulative_trapezoid(f, x, axis=-1, initial=0.0)
    if scheme == "pchip":
        return PchipInterpolator(x, f, axis=-1).antiderivative()(x)
    raise ValueError("scheme must be 'trapezoid' or 'pchip'")


# --------------------------------------------------------------------------- concentration scales


def ln_gamma_from_ln_y(
    ln_y: np.ndarray | float, c: np.ndarray | float, m: np.ndarray | float, T: float = 298.15
) -> np.ndarray:
    """Molar → molal: ln γ± = ln y± + ln[c / (m ρ_w)], c in mol/L, m in mol/kg, ρ_w(T) in kg/L."""
    return np.asarray(ln_y, dtype=float) + np.log(np.asarray(c) / (np.asarray(m) * water_density(T)))


def ln_y_from_ln_gamma(
    ln_gamma: np.ndarray | float, c: np.ndarray | float, m: np.ndarray | float, T: float = 298.15
) -> np.ndarray:
    """Molal → molar: ln y± = ln γ± − ln[c / (m ρ_w)] (inverse of ``ln_gamma_from_ln_y``)."""
    return np.asarray(ln_gamma, dtype=float) - np.log(np.asarray(c) / (np.asarray(m) * water_density(T)))


def molarity_from_molality(m: np.ndarray | float, density: np.ndarray | float, molar_mass: float) -> np.ndarray:
    """c = m ρ / (1 + m M_salt): m in mol/kg, solution density ρ in kg/L, M_salt in kg/mol → mol/L."""
    m = np.asarray(m, dtype=float)
    return m * np.asarray(density) / (1.0 + m * molar_mass)


def molality_from_molarity(c: np.ndarray | float, density: np.ndarray | float, molar_mass: float) -> np.ndarray:
    """m = c / (ρ − c M_salt): c in mol/L, solution density ρ in kg/L, M_salt in kg/mol → mol/kg."""
    c = np.asarray(c, dtype=float)
    return c / (np.asarray(density) - c * molar_mass)


def molality_from_counts(n_salt: float, n_water: float) -> float:
    """m = N_salt / (N_water M_w), mol/kg (exact for a simulation box)."""
    return n_salt / (n_water * M_WATER)


def molarity_from_counts(n_salt: float, volume: float) -> float:
    """c = N_salt / (N_A V), mol/L, with V in Å^3 (use the mean NPT volume)."""
    return n_salt / (N_A * volume * 1e-27)


# --------------------------------------------------------------------------- Gibbs–Duhem


def debye_huckel_sigma(x: np.ndarray) -> np.ndarray:
    """Debye–Hückel osmotic function σ(x) = (3/x^3)[1 + x − 1/(1+x) − 2 ln(1+x)] (dimensionless).

    The extended Debye–Hückel osmotic coefficient is φ − 1 = −|z+ z−| A_m √I σ(B a √I)/3 with x = B a √I; the
    series 1 − 3x/2 + 9x^2/5 − 2x^3 is used for x < 0.01, where the closed form cancels.
    """
    x = np.asarray(x, dtype=float)
    small = x < 1e-2
    xs = np.where(small, 1.0, x)
    full = 3.0 / xs**3 * (1.0 + xs - 1.0 / (1.0 + xs) - 2.0 * np.log1p(xs))
    return np.where(small, 1.0 - 1.5 * x + 1.8 * x**2 - 2.0 * x**3, full)


def _reference_terms(
    m: np.ndarray,
    z_plus: int,
    z_minus: int,
    reference: str,
    a_phi: float,
    b: float,
    ion_size: float,
    T: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ln γ_ref, d ln γ_ref/d ln m, φ_ref − 1) of a Gibbs–Duhem-consistent Debye–Hückel reference."""
    zz = abs(z_plus * z_minus)
    s = np.sqrt(ionic_strength(m, z_plus, z_minus))
    if reference == "pitzer":
        ln_g = -zz * a_phi * (s / (1 + b * s) + (2.0 / b) * np.log1p(b * s))
        dln = -zz * a_phi * 0.5 * s * (1.0 / (1 + b * s) ** 2 + 2.0 / (1 + b * s))
        phi_m1 = -zz * a_phi * s / (1 + b * s)
    elif reference == "extended":
        a_m = 3.0 * a_phi
        beta = debye_huckel_constants(T).B_molal * ion_size
        ln_g = -zz * a_m * s / (1 + beta * s)
        dln = -zz * a_m * s / (2.0 * (1 + beta * s) ** 2)
        phi_m1 = -zz * a_m * s / 3.0 * debye_huckel_sigma(beta * s)
    else:
        raise ValueError("reference must be 'pitzer' or 'extended'")
    return ln_g, dln, phi_m1


@dataclass(frozen=True)
class OsmoticResult:
    """Osmotic coefficient and water activity at the input molalities.

    Attributes
    ----------
    m : (n,) mol/kg;  phi, phi_err : (n,) osmotic coefficient and standard error
    ln_a_w, ln_a_w_err : (n,) ln of the water activity, −ν m M_w φ, and its error;  nu : ν+ + ν−
    """

    m: np.ndarray
    phi: np.ndarray
    phi_err: np.ndarray
    ln_a_w: np.ndarray
    ln_a_w_err: np.ndarray
    nu: int

    @property
    def a_w(self) -> np.ndarray:
        """Water activity."""
        return np.exp(self.ln_a_w)


def water_activity(m: np.ndarray | float, phi: np.ndarray | float, nu: int = 2) -> np.ndarray:
    """ln a_w = −ν m M_w φ (m in mol/kg, M_w = 0.018015 kg/mol). Returns ln a_w."""
    return -nu * np.asarray(m, dtype=float) * M_WATER * np.asarray(phi, dtype=float)


def osmotic_coefficient(
    m: np.ndarray,
    ln_gamma: np.ndarray | None = None,
    *,
    dlngamma_dlnm: np.ndarray | None = None,
    samples: np.ndarray | None = None,
    err: np.ndarray | None = None,
    z_plus: int = 1,
    z_minus: int = -1,
    T: float = 298.15,
    reference: str = "pitzer",
    a_phi: float | None = None,
    b: float = 1.2,
    ion_size: float = 4.0,
    scheme: str = "pchip",
    n_mc: int = 2000,
    seed: int = 0,
) -> OsmoticResult:
    """Osmotic coefficient from the Gibbs–Duhem relation φ(m) = 1 + (1/m) ∫_0^m m′ d ln γ±.

    The data are split into a Debye–Hückel reference with a closed-form φ and a remainder,
    Δ = ln γ± − ln γ_ref (or Δ' = d ln γ±/d ln m − d ln γ_ref/d ln m), which is O(m) at low m:

    from ln γ±:           φ = φ_ref + Δ(m) − (1/m) ∫_0^m Δ dm′
    from d ln γ±/d ln m:  φ = φ_ref + (1/m) ∫_0^m Δ' dm′      (since m′ d ln γ = (d ln γ/d ln m′) dm′)

    The remainder is interpolated through (0, 0) and the data points (``scheme``: trapezoid or PCHIP).

    Parameters
    ----------
    m : (n,) mol/kg, increasing
    ln_gamma : (n,) ln γ± (molal scale), or
    dlngamma_dlnm : (n,) d ln γ±/d ln m
    samples : (n_samples, n) samples of the same input (e.g. Monte Carlo samples of ln γ±);
        φ is evaluated per sample and its standard deviation returned (keeps correlations)
    err : (n,) independent standard errors of the input, used when ``samples`` is None (Monte Carlo)
    reference : 'pitzer' (Pitzer's Debye–Hückel term, b = 1.2 kg^1/2 mol^-1/2) or 'extended'
        (extended Debye–Hückel with ``ion_size`` in Å); both are exact Gibbs–Duhem pairs
    a_phi : (kg/mol)^1/2, default ``debye_huckel_constants(T).A_phi``
    """
    m = np.asarray(m, dtype=float)
    if (ln_gamma is None) == (dlngamma_dlnm is None):
        raise ValueError("give exactly one of ln_gamma or dlngamma_dlnm")
    if m.ndim != 1 or np.any(m <= 0) or np.any(np.diff(m) <= 0):
        raise ValueError("m must be positive and increasing")
    data = np.asarray(ln_gamma if ln_gamma is not None else dlngamma_dlnm, dtype=float)
    a_phi = debye_huckel_constants(T).A_phi if a_phi is None else float(a_phi)
    ln_ref, dln_ref, phi_ref_m1 = _reference_terms(m, z_plus, z_minus, reference, a_phi, b, ion_size, T)
    x = np.concatenate([[0.0], m])

    def phi_of(d: np.ndarray) -> np.ndarray:
        if ln_gamma is not None:
            delta = d - ln_ref
            full = np.concatenate([np.zeros((*delta.shape[:-1], 1)), delta], axis=-1)
            return 1.0 + phi_ref_m1 + delta - _cumulative(x, full, scheme)[..., 1:] / m
        delta = d - dln_ref
        full = np.concatenate([np.zeros((*delta.shape[:-1], 1)), delta], axis=-1)
        return 1.0 + phi_ref_m1 + _cumulative(x, full, scheme)[..., 1:] / m

    phi = phi_of(data)
    phi_err = np.zeros_like(phi)
    if samples is None and err is not None:
        rng = np.random.default_rng(seed)
        samples = data + np.asarray(err, dtype=float) * rng.standard_normal((n_mc, m.size))
    if samples is not None:
        phi_err = phi_of(np.asarray(samples, dtype=float)).std(axis=0, ddof=1)
    nu = sum(stoichiometry(z_plus, z_minus))
    return OsmoticResult(m, phi, phi_err, water_activity(m, phi, nu), nu * m * M_WATER * phi_err, nu)


# --------------------------------------------------------------------------- Pitzer and experiment


@cache
def _read_csv(name: str) -> tuple[dict[str, str], ...]:
    text = resources.files("electrodb").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(csv.DictReader(io.StringIO(text)))


@dataclass(frozen=True)
class PitzerParameters:
    """Pitzer–Mayorga single-salt parameters at 25 °C (β0, β1 in kg/mol; Cφ in kg^2/mol^2; α, b in
    kg^1/2 mol^-1/2; a_phi in (kg/mol)^1/2 or None to use the computed value; max_molality in mol/kg)."""

    salt: str
    z_plus: int
    z_minus: int
    nu_plus: int
    nu_minus: int
    beta0: float
    beta1: float
    c_phi: float
    alpha: float
    b: float
    a_phi: float | None
    max_molality: float
    parameter_set: str
    source: str


def pitzer_parameters(salt: str, parameter_set: str = "PM73") -> PitzerParameters:
    """Parameters from the package copy of ``pitzer_parameters_25C.csv`` ('PM73' or 'May2011')."""
    for row in _read_csv("pitzer_parameters_25C.csv"):
        if row["salt"] == salt and row["parameter_set"] == parameter_set:
            try:
                a_phi: float | None = float(row["Aphi_used"])
            except ValueError:
                a_phi = None
            return PitzerParameters(
                salt=salt,
                z_plus=int(row["zM"]),
                z_minus=-abs(int(row["zX"])),
                nu_plus=int(row["nuM"]),
                nu_minus=int(row["nuX"]),
                beta0=float(row["beta0"]),
                beta1=float(row["beta1"]),
                c_phi=float(row["Cphi"]),
                alpha=float(row["alpha1"]),
                b=float(row["b"]),
                a_phi=a_phi,
                max_molality=float(row["max_molality_mol_per_kg"]),
                parameter_set=parameter_set,
                source=row["primary_source"],
            )
    raise KeyError(f"no Pitzer parameters for {salt!r} in set {parameter_set!r}")


def _pitzer_common(m: np.ndarray | float, p: PitzerParameters) -> tuple[np.ndarray, ...]:
    m = np.asarray(m, dtype=float)
    a_phi = p.a_phi if p.a_phi is not None else debye_huckel_constants(298.15).A_phi
    s = np.sqrt(0.5 * m * (p.nu_plus * p.z_plus**2 + p.nu_minus * p.z_minus**2))
    nu = p.nu_plus + p.nu_minus
    fb = 2.0 * p.nu_plus * p.nu_minus / nu
    fc = 2.0 * (p.nu_plus * p.nu_minus) ** 1.5 / nu
    return m, s, a_phi, fb, fc


def pitzer_ln_gamma(m: np.ndarray | float, params: PitzerParameters) -> np.ndarray:
    """Pitzer–Mayorga ln γ± = |z+z−| f^γ + m (2ν+ν−/ν) B^γ + m^2 (2(ν+ν−)^{3/2}/ν) (3/2) Cφ.

    f^γ = −A_φ[√I/(1 + b√I) + (2/b) ln(1 + b√I)],
    B^γ = 2β0 + (2β1/(α^2 I))[1 − e^{−α√I}(1 + α√I − α^2 I/2)].
    """
    m, s, a_phi, fb, fc = _pitzer_common(m, params)
    a, b = params.alpha, params.b
    f_g = -a_phi * (s / (1 + b * s) + (2.0 / b) * np.log1p(b * s))
    x = a * s
    xs = np.where(x > 1e-3, x, 1.0)
    # g(x) = 2[1 − e^{−x}(1 + x − x²/2)]/x², series 2 − 5x/3 + 3x²/4 near 0 (B^γ → 2β0 + 2β1)
    g_x = np.where(x > 1e-3, 2.0 * (1.0 - np.exp(-xs) * (1.0 + xs - 0.5 * xs**2)) / xs**2, 2 - 5 * x / 3 + 0.75 * x**2)
    b_g = 2.0 * params.beta0 + params.beta1 * g_x
    return abs(params.z_plus * params.z_minus) * f_g + m * fb * b_g + m**2 * fc * 1.5 * params.c_phi


def pitzer_phi(m: np.ndarray | float, params: PitzerParameters) -> np.ndarray:
    """Pitzer–Mayorga φ − 1 = |z+z−| f^φ + m (2ν+ν−/ν)(β0 + β1 e^{−α√I}) + m^2 (2(ν+ν−)^{3/2}/ν) Cφ,
    f^φ = −A_φ √I/(1 + b√I)."""
    m, s, a_phi, fb, fc = _pitzer_common(m, params)
    f_phi = -a_phi * s / (1 + params.b * s)
    b_phi = params.beta0 + params.beta1 * np.exp(-params.alpha * s)
    return 1.0 + abs(params.z_plus * params.z_minus) * f_phi + m * fb * b_phi + m**2 * fc * params.c_phi


@dataclass(frozen=True)
class ReferenceSeries:
    """Experimental points of one quantity: molality (mol/kg), value, and per point status and source."""

    molality: np.ndarray
    value: np.ndarray
    status: tuple[str, ...]
    source: tuple[str, ...]


@dataclass(frozen=True)
class ReferenceActivity:
    """Experimental γ± (molal scale) and φ of one salt at 25 °C."""

    salt: str
    gamma: ReferenceSeries
    phi: ReferenceSeries


def _status_rank(status: str) -> int | None:
    if status == "evaluated-experimental":
        return 0
    if status.startswith("evaluated-experimental"):
        return 1
    if status == "secondary-transcription":
        return 2
    return 3


def reference_activity(salt: str, include_uncertain: bool = False) -> ReferenceActivity:
    """Experimental γ± and φ for ``salt`` from the package copy of ``activity_osmotic_25C.csv``.

    One value per (quantity, molality): 'evaluated-experimental' (Hamer & Wu 1972 / CRC) is preferred, then
    'evaluated-experimental;CHECK', then 'secondary-transcription'. Rows marked UNCERTAIN/UNVERIFIED are
    left out unless ``include_uncertain``.
    """
    best: dict[tuple[str, float], tuple[int, dict[str, str]]] = {}
    for row in _read_csv("activity_osmotic_25C.csv"):
        if row["salt"] != salt:
            continue
        rank = _status_rank(row["status"])
        if rank == 3 and not include_uncertain:
            continue
        key = (row["quantity"], float(row["molality_mol_per_kg"]))
        if key not in best or rank < best[key][0]:
            best[key] = (rank, row)
    if not best:
        raise KeyError(f"no reference activity data for {salt!r}")

    def series(quantity: str) -> ReferenceSeries:
        rows = sorted((mm, r) for (q, mm), (_, r) in best.items() if q == quantity)
        return ReferenceSeries(
            molality=np.array([mm for mm, _ in rows]),
            value=np.array([float(r["value"]) for _, r in rows]),
            status=tuple(r["status"] for _, r in rows),
            source=tuple(r["primary_source"] for _, r in rows),
        )

    return ReferenceActivity(salt, series("gamma_pm"), series("phi"))
