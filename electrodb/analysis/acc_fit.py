"""Activity coefficients from a concentration series of a_cc, by a fit that respects Debye–Hückel.

a_cc = 1 + d ln y±/d ln c (molar scale, from Kirkwood–Buff integrals) is known at a few simulated molarities
c_i. Interpolating it in ln c between a dilute Debye–Hückel anchor and the first simulated point misses the
Debye–Hückel dip in between (ln y± 0.4 too high from 1, 2, 3 mol/kg points). Instead a physically shaped
curve is fitted to the points, weighted by their errors (c in mol/L, b_k in (L/mol)^k):

    a_cc(c) = a_cc,DH(c; a) + Σ_{k=1}^{K} b_k c^k                     (``fit_acc``)

with a_cc,DH the derivative of extended Debye–Hückel (``activity.debye_huckel_acc``, ion size a fixed) —
linear least squares, so the parameter covariance is exact — and integrated analytically,

    ln y±(c) = ln y±,DH(c; a) + Σ_k b_k c^k / k,

because d ln y±/d ln c = a_cc − 1 and d ln y±,DH/d ln c = a_cc,DH − 1 (ln y±(0) = 0). The molal scale, the
osmotic coefficient (Gibbs–Duhem, closed-form quadrature) and the water activity follow with errors
propagated through the covariance (``activity_from_fit``; both in one call: ``activity_series_from_acc``).
Equations, thresholds and validity range: ``docs/methods-thermodynamics.md`` section 2.3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import chi2 as chi2_dist

from electrodb.analysis.activity import (
    M_WATER,
    debye_huckel_acc,
    debye_huckel_ln_y,
    ln_gamma_from_ln_y,
    stoichiometry,
    water_activity,
    water_density,
)
from electrodb.analysis.convergence import Verdict, worst
from electrodb.analysis.run_factor import error_factor

__all__ = ["AccFit", "ActivitySeries", "activity_from_fit", "activity_series_from_acc", "fit_acc"]

#: Default polynomial order K of the fit (capped at n_points − 1).
DEFAULT_ORDER = 2


@dataclass(frozen=True)
class AccFit:
    """Weighted least-squares fit a_cc(c) = a_cc,DH(c; a) + Σ_{k=1}^K b_k c^k to a concentration series.

    Attributes
    ----------
    verdict : Verdict
        'insufficient' (nothing fitted; the numeric fields below that depend on the fit are None),
        'unconverged' (fit poor: χ² p-value below ``min_p_value``) or 'converged'. ``run_factor``: inf when
        concentrations are missing or degenerate (other systems are needed, not longer runs), None for a poor fit.
    c, a_cc, a_cc_err : (n,) mol/L, the fitted points and their standard errors
    order : K;  ion_size : Å (fixed a);  z_plus, z_minus;  T : K
    params : (K,) b_1 … b_K in (L/mol)^k;  covariance : (K, K), from the a_cc errors taken as absolute
    residuals : (n,) a_cc − fit;  chi2 : Σ (residual/σ)^2;  dof : n − K;  p_value : P(χ²_dof ≥ chi2)
    c_min, c_max : mol/L, validity range of the fit (the simulated concentrations). Below c_min the curve
        joins Debye–Hückel (its exact limit); above c_max it is an extrapolation and is refused unless asked.
    """

    verdict: Verdict
    c: np.ndarray
    a_cc: np.ndarray
    a_cc_err: np.ndarray
    order: int
    ion_size: float
    z_plus: int
    z_minus: int
    T: float
    params: np.ndarray | None = None
    covariance: np.ndarray | None = field(default=None, repr=False)
    residuals: np.ndarray | None = None
    chi2: float | None = None
    dof: int | None = None
    p_value: float | None = None
    c_min: float | None = None
    c_max: float | None = None

    @property
    def reduced_chi2(self) -> float | None:
        return None if self.chi2 is None or not self.dof else self.chi2 / self.dof

    def _check(self, c: np.ndarray | float, extrapolate: bool) -> np.ndarray:
        if self.params is None or self.c_max is None:
            raise ValueError(f"no fit ({self.verdict.status}: {self.verdict.reason})")
        c = np.atleast_1d(np.asarray(c, dtype=float))
        if np.any(~np.isfinite(c)) or np.any(c < 0):
            raise ValueError("c must be finite and >= 0")
        if not extrapolate and np.any(c > self.c_max * (1 + 1e-9)):
            raise ValueError(
                f"c = {c.max():.4g} mol/L beyond the fitted range (max {self.c_max:.4g}); "
                "pass extrapolate=True to extrapolate knowingly"
            )
        return c

    def basis(self, c: np.ndarray | float) -> np.ndarray:
        """(n, K) design matrix of ln y±: ∂ ln y±/∂b_k = c^k / k (no range check)."""
        c = np.atleast_1d(np.asarray(c, dtype=float))
        k = np.arange(1, self.order + 1)
        return c[:, None] ** k / k

    def a_cc_at(self, c: np.ndarray | float, extrapolate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Fitted a_cc and its standard error at c (mol/L)."""
        c = self._check(c, extrapolate)
        assert self.params is not None and self.covariance is not None
        x = c[:, None] ** np.arange(1, self.order + 1)
        dh = debye_huckel_acc(c, self.z_plus, self.z_minus, self.ion_size, self.T)
        return dh + x @ self.params, np.sqrt(np.einsum("ik,kl,il->i", x, self.covariance, x))

    def ln_y(self, c: np.ndarray | float, extrapolate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """ln y±(c) = ln y±,DH(c; a) + Σ b_k c^k/k and its standard error, c in mol/L (molar scale)."""
        c = self._check(c, extrapolate)
        assert self.params is not None and self.covariance is not None
        g = self.basis(c)
        dh = debye_huckel_ln_y(c, self.z_plus, self.z_minus, self.ion_size, self.T)
        return dh + g @ self.params, np.sqrt(np.einsum("ik,kl,il->i", g, self.covariance, g))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record of the fit (for ``series["fit"]`` of a thermo document)."""

        def lst(x: np.ndarray | None) -> list[Any] | None:
            return None if x is None else np.asarray(x, dtype=float).tolist()

        err = np.asarray(self.a_cc_err, dtype=float)
        return {
            **self.verdict.as_dict(),
            "form": "a_cc(c) = a_cc,DH(c; a) + sum_k b_k c^k;  ln y(c) = ln y_DH(c; a) + sum_k b_k c^k / k",
            "scale": "molar (c in mol/L, b_k in (L/mol)^k)",
            "order": self.order,
            "ion_size_A": self.ion_size,
            "params": lst(self.params),
            "params_err": None if self.covariance is None else np.sqrt(np.diag(self.covariance)).tolist(),
            "covariance": None if self.covariance is None else self.covariance.tolist(),
            "molarity": lst(self.c),
            "a_cc": lst(self.a_cc),
            "a_cc_err": lst(self.a_cc_err),
            "residuals": lst(self.residuals),
            "normalized_residuals": None if self.residuals is None else (self.residuals / err).tolist(),
            "chi2": self.chi2,
            "dof": self.dof,
            "reduced_chi2": self.reduced_chi2,
            "p_value": self.p_value,
            "validity_molarity": None if self.c_min is None else [self.c_min, self.c_max],
        }


def fit_acc(
    c: np.ndarray,
    a_cc: np.ndarray,
    a_cc_err: np.ndarray,
    *,
    order: int | None = None,
    z_plus: int = 1,
    z_minus: int = -1,
    ion_size: float = 4.0,
    T: float = 298.15,
    min_range_ratio: float = 1.5,
    min_p_value: float = 1e-3,
    max_condition: float = 1e12,
) -> AccFit:
    """Fit a_cc(c) = a_cc,DH(c; a) + Σ_{k=1}^K b_k c^k by weighted linear least squares.

    With y_i = a_cc,i − a_cc,DH(c_i), X_ik = c_i^k and W = diag(1/σ_i²):
    b = (XᵀWX)⁻¹ XᵀW y, Cov(b) = (XᵀWX)⁻¹ (σ_i absolute, not rescaled by χ²), χ² = Σ_i (y_i − (Xb)_i)²/σ_i².

    Parameters
    ----------
    c : (n,) mol/L, salt molarities (any order; sorted internally)
    a_cc, a_cc_err : (n,) activity derivative and its standard error (independent between points, > 0)
    order : K, default ``min(DEFAULT_ORDER, n − 1)``; an explicit K needs n >= K + 1
    ion_size : Å, fixed Debye–Hückel distance of closest approach a (not fitted: with a few points it is
        degenerate with b_1)
    min_range_ratio : c_max/c_min below this is a degenerate range → 'insufficient'
    min_p_value : χ² p-value below this → 'unconverged' (poor fit). With dof = 1 that is χ² > 10.8, with
        dof = 5 a reduced χ² > 4.1
    max_condition : condition number of the whitened design matrix above this → 'insufficient'

    Returns
    -------
    AccFit with ``verdict``; 'insufficient' (fewer than K + 1 points or distinct concentrations, a degenerate
    range, non-finite values, non-positive errors) leaves ``params`` None.
    """
    c = np.atleast_1d(np.asarray(c, dtype=float))
    a = np.atleast_1d(np.asarray(a_cc, dtype=float))
    s = np.atleast_1d(np.asarray(a_cc_err, dtype=float))
    n = c.size
    k_order = min(DEFAULT_ORDER, n - 1) if order is None else int(order)
    criterion = (
        f"a_cc = DH(a={ion_size:g} Å) + polynomial order {k_order}: n >= K+1 distinct concentrations, "
        f"c_max/c_min >= {min_range_ratio:g}, finite a_cc > 0 with errors > 0, chi2 p-value >= {min_p_value:g}"
    )
    common = {"order": k_order, "ion_size": float(ion_size), "z_plus": z_plus, "z_minus": z_minus, "T": T}

    def refuse(reason: str, factor: float | None = None) -> AccFit:
        return AccFit(Verdict("insufficient", criterion, reason, factor), c, a, s, **common)

    more = float("inf")  # concentrations are added by running other systems, not by running these longer

    if a.shape != c.shape or s.shape != c.shape or c.ndim != 1:
        raise ValueError("c, a_cc and a_cc_err must be 1-D arrays of equal length")
    if k_order < 1:
        return refuse(f"{n} concentration(s): a fit of order K >= 1 needs at least 2 (K + 1)", more)
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(a)) and np.all(np.isfinite(s))):
        return refuse("non-finite molarity, a_cc or a_cc error")
    if np.any(c <= 0) or np.any(a <= 0) or np.any(s <= 0):
        return refuse("molarities and a_cc must be > 0 and every a_cc needs an error > 0")
    order_idx = np.argsort(c)
    c, a, s = c[order_idx], a[order_idx], s[order_idx]
    common_pts = {"c": c, "a_cc": a, "a_cc_err": s}
    n_distinct = int(np.sum(np.diff(c) > 1e-6 * c[1:])) + 1
    if n_distinct < k_order + 1:
        return AccFit(
            Verdict(
                "insufficient",
                criterion,
                f"{n_distinct} distinct concentration(s) < {k_order + 1} (order {k_order} + 1)",
                more,
            ),
            **common_pts,
            **common,
        )
    if c[-1] / c[0] < min_range_ratio:
        return AccFit(
            Verdict(
                "insufficient",
                criterion,
                f"degenerate range: c_max/c_min = {c[-1] / c[0]:.3g} < {min_range_ratio:g}",
                more,
            ),
            **common_pts,
            **common,
        )
    x = c[:, None] ** np.arange(1, k_order + 1)
    y = a - debye_huckel_acc(c, z_plus, z_minus, ion_size, T)
    xw, yw = x / s[:, None], y / s
    if np.linalg.cond(xw) > max_condition:
        return AccFit(
            Verdict("insufficient", criterion, "design matrix ill-conditioned (degenerate concentrations)", more),
            **common_pts,
            **common,
        )
    cov = np.linalg.inv(xw.T @ xw)
    params = cov @ (xw.T @ yw)
    resid = y - x @ params
    chi2 = float(np.sum((resid / s) ** 2))
    dof = n - k_order
    p_value = float(chi2_dist.sf(chi2, dof)) if dof > 0 else 1.0
    verdict = Verdict("converged", criterion)
    if dof > 0 and p_value < min_p_value:
        verdict = Verdict(
            "unconverged",
            criterion,
            f"poor fit: chi2 = {chi2:.3g} for {dof} dof (reduced {chi2 / dof:.3g}, "
            f"p = {p_value:.2g} < {min_p_value:g})",
        )
    return AccFit(
        verdict,
        **common_pts,
        **common,
        params=params,
        covariance=cov,
        residuals=resid,
        chi2=chi2,
        dof=dof,
        p_value=p_value,
        c_min=float(c[0]),
        c_max=float(c[-1]),
    )


# --------------------------------------------------------------------------- molal scale, φ, a_w


@dataclass(frozen=True)
class ActivitySeries:
    """ln y±, γ±, φ and a_w at the series molalities from an ``AccFit``, errors with the fit's covariance.

    Attributes
    ----------
    molality : (n,) mol/kg;  molarity : (n,) mol/L (from the molar↔molal relation below)
    ln_y, ln_y_err : molar-scale ln y± and standard error;  ln_gamma, ln_gamma_err, gamma, gamma_err : molal
    phi, phi_err : osmotic coefficient;  ln_a_w, ln_a_w_err, a_w, a_w_err : water activity
    ln_gamma_cov, phi_cov : (n, n) covariances between molalities (the fit correlates them)
    extrapolated : (n,) bool, molarity above the fitted range
    scale_params : d_j of ln[c/(m ρ_w)] = Σ_{j=1}^J d_j m^j (least squares through the series points);
    scale_max_residual : largest |residual| of that fit at the series points
    fit : the AccFit;  verdict : worst of the fit's verdict and the γ± error check
    """

    molality: np.ndarray
    molarity: np.ndarray
    ln_y: np.ndarray
    ln_y_err: np.ndarray
    ln_gamma: np.ndarray
    ln_gamma_err: np.ndarray
    gamma: np.ndarray
    gamma_err: np.ndarray
    phi: np.ndarray
    phi_err: np.ndarray
    ln_a_w: np.ndarray
    ln_a_w_err: np.ndarray
    a_w: np.ndarray
    a_w_err: np.ndarray
    ln_gamma_cov: np.ndarray = field(repr=False)
    phi_cov: np.ndarray = field(repr=False)
    extrapolated: np.ndarray
    scale_params: np.ndarray
    scale_max_residual: float
    fit: AccFit = field(repr=False)
    verdict: Verdict


def _scale_fit(m: np.ndarray, c: np.ndarray, T: float) -> tuple[np.ndarray, float]:
    """d_j of r(m) = ln[c/(m ρ_w)] = Σ_{j=1}^{J} d_j m^j, J = min(2, n), least squares (r(0) = 0 exactly)."""
    r = ln_gamma_from_ln_y(0.0, c, m, T)
    j = np.arange(1, min(2, m.size) + 1)
    x = m[:, None] ** j
    d = np.linalg.lstsq(x, r, rcond=None)[0]
    return d, float(np.max(np.abs(r - x @ d)))


def activity_from_fit(
    fit: AccFit,
    m: np.ndarray,
    c: np.ndarray,
    *,
    m_eval: np.ndarray | None = None,
    extrapolate: bool = False,
    max_gamma_rel_err: float = 0.1,
    n_quad: int = 48,
) -> ActivitySeries:
    """Molal γ±, φ and a_w from an a_cc fit, errors propagated with the parameter covariance.

    Molar ↔ molal: ln γ± = ln y± + r(m), r(m) = ln[c/(m ρ_w)] (``activity.ln_gamma_from_ln_y``), represented
    by r(m) = Σ_{j=1}^{min(2, n)} d_j m^j fitted to the series' (m_i, c_i) (exact r(0) = 0; solution density
    enters only here), and c(m) = m ρ_w e^{r(m)}.

    Gibbs–Duhem (exact for the analytic ln γ±, ln γ±(0) = 0), with m′ = m t²:

        φ(m) = 1 + (1/m) ∫_0^m m′ d ln γ± = 1 + ln γ±(m) − ∫_0^1 ln γ±(m t²) 2t dt

    by ``n_quad``-point Gauss–Legendre in t (the integrand is smooth in t: √m′ ∝ t). ln γ± and φ are linear
    in b, so Cov = J Cov(b) Jᵀ with J_k = c^k/k for ln y± (and ln γ±) and
    J_k = c(m)^k/k − ∫_0^1 c(m t²)^k/k 2t dt for φ; ln a_w = −ν m M_w φ (``activity.water_activity``),
    σ(a_w) = a_w σ(ln a_w).

    Parameters
    ----------
    fit : converged or unconverged ``AccFit``
    m, c : (n,) mol/kg and mol/L of the simulated systems (the molar↔molal relation)
    m_eval : mol/kg where to evaluate (default ``m``)
    extrapolate : allow molarities above the fitted range (flagged in ``extrapolated`` and the verdict)
    max_gamma_rel_err : largest accepted σ(γ±)/γ± (= σ(ln γ±)) at any evaluated point, else 'unconverged'
    """
    m = np.atleast_1d(np.asarray(m, dtype=float))
    c = np.atleast_1d(np.asarray(c, dtype=float))
    if m.shape != c.shape or np.any(m <= 0) or np.any(c <= 0):
        raise ValueError("m and c must be positive arrays of equal length")
    T = fit.T
    rho_w = water_density(T)
    d, d_res = _scale_fit(m, c, T)
    j = np.arange(1, d.size + 1)

    def r_of(mm: np.ndarray) -> np.ndarray:
        return (mm[..., None] ** j) @ d

    def c_of(mm: np.ndarray) -> np.ndarray:
        return mm * rho_w * np.exp(r_of(mm))

    me = m if m_eval is None else np.atleast_1d(np.asarray(m_eval, dtype=float))
    if np.any(me <= 0) or np.any(np.diff(me) < 0):
        raise ValueError("m_eval must be positive and increasing")
    ce = c_of(me)
    for i, mi in enumerate(me):  # the measured molarity where the molality is a series point
        hit = np.isclose(m, mi, rtol=1e-9, atol=0)
        if hit.any():
            ce[i] = float(np.mean(c[hit]))
    ln_y, _ = fit.ln_y(ce, extrapolate=extrapolate)
    assert fit.params is not None and fit.covariance is not None
    extrap = ce > (fit.c_max or np.inf) * (1 + 1e-9)
    ln_gamma = ln_gamma_from_ln_y(ln_y, ce, me, T)
    g_lny = fit.basis(ce)
    cov_lng = g_lny @ fit.covariance @ g_lny.T

    # Gibbs–Duhem by Gauss–Legendre in t on [0, 1]; the DH part and the polynomial part separately.
    x, w = np.polynomial.legendre.leggauss(n_quad)
    t, w = 0.5 * (x + 1.0), 0.5 * w
    mq = me[:, None] * t**2  # (n, q)
    cq = c_of(mq)
    dh = debye_huckel_ln_y(cq, fit.z_plus, fit.z_minus, fit.ion_size, T) + r_of(mq)
    base = dh @ (2 * t * w)  # ∫ ln γ_DH-part(m t²) 2t dt
    k = np.arange(1, fit.order + 1)
    basis_q = (cq[..., None] ** k / k) * (2 * t * w)[None, :, None]  # (n, q, K)
    j_phi = g_lny - basis_q.sum(axis=1)
    phi = 1.0 + ln_gamma - base - (basis_q.sum(axis=1) @ fit.params)
    cov_phi = j_phi @ fit.covariance @ j_phi.T
    nu = sum(stoichiometry(fit.z_plus, fit.z_minus))
    ln_aw = water_activity(me, phi, nu)
    ln_y_err = np.sqrt(np.diag(cov_lng))
    phi_err = np.sqrt(np.diag(cov_phi))
    ln_aw_err = nu * me * M_WATER * phi_err
    gamma = np.exp(ln_gamma)

    criterion = f"sigma(gamma)/gamma <= {max_gamma_rel_err:g} over the evaluated molalities; no extrapolation"
    checks = [fit.verdict]
    worst_err = float(np.max(ln_y_err))
    if worst_err > max_gamma_rel_err:
        checks.append(
            Verdict(
                "unconverged",
                criterion,
                f"gamma relative error {worst_err:.3g} > {max_gamma_rel_err:g}",
                error_factor(worst_err, max_gamma_rel_err),  # every a_cc error shrinks as 1/√T
            )
        )
    else:
        checks.append(Verdict("converged", criterion))
    if extrap.any():
        checks.append(
            Verdict(
                "unconverged",
                criterion,
                f"extrapolated beyond the fitted range (c_max = {fit.c_max:.4g} mol/L)",
                float("inf"),  # a longer run does not widen the range
            )
        )
    return ActivitySeries(
        molality=me,
        molarity=ce,
        ln_y=ln_y,
        ln_y_err=ln_y_err,
        ln_gamma=ln_gamma,
        ln_gamma_err=ln_y_err,
        gamma=gamma,
        gamma_err=gamma * ln_y_err,
        phi=phi,
        phi_err=phi_err,
        ln_a_w=ln_aw,
        ln_a_w_err=ln_aw_err,
        a_w=np.exp(ln_aw),
        a_w_err=np.exp(ln_aw) * ln_aw_err,
        ln_gamma_cov=cov_lng,
        phi_cov=cov_phi,
        extrapolated=extrap,
        scale_params=d,
        scale_max_residual=d_res,
        fit=fit,
        verdict=worst(*checks),
    )


def activity_series_from_acc(
    m: np.ndarray,
    c: np.ndarray,
    a_cc: np.ndarray,
    a_cc_err: np.ndarray,
    *,
    order: int | None = None,
    z_plus: int = 1,
    z_minus: int = -1,
    ion_size: float = 4.0,
    T: float = 298.15,
    max_gamma_rel_err: float = 0.1,
    **fit_kwargs: Any,
) -> tuple[AccFit, ActivitySeries | None]:
    """``fit_acc`` on (c, a_cc ± err), then ``activity_from_fit`` at the series molalities m.

    Returns the fit and the series; the series is None when the fit is 'insufficient'. The overall status is
    ``series.verdict`` (or ``fit.verdict`` when the series is None).
    """
    fit = fit_acc(c, a_cc, a_cc_err, order=order, z_plus=z_plus, z_minus=z_minus, ion_size=ion_size, T=T, **fit_kwargs)
    if fit.params is None:
        return fit, None
    m = np.asarray(m, dtype=float)
    idx = np.argsort(m)
    return fit, activity_from_fit(fit, m[idx], np.asarray(c, dtype=float)[idx], max_gamma_rel_err=max_gamma_rel_err)
