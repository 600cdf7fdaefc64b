r"""Running and finite-volume Kirkwood–Buff integrals and their finite-size corrections.

The building blocks :func:`electrodb.analysis.kirkwood_buff.kb_integral` combines into one estimate per pair.
Pure numpy/scipy, no I/O.  g(r) on a grid ``r`` (Å, strictly increasing, r >= 0) **normalised as in**
:mod:`electrodb.analysis.structure`: the partner density seen by an *a* particle is
:math:`\rho_b' = (N_b - \delta_{ab})/V` (:math:`\delta_{ab} = 1` for a like pair), so an ideal gas has
:math:`g \equiv 1` and every integral here is exactly 0.  Kirkwood–Buff integrals are in Å³ (1 Å³ per molecule
= 0.6022 cm³/mol); lengths in Å, volumes in Å³.

Why corrections
---------------
The Kirkwood–Buff integral of an open system, :math:`G_{ab} = 4\pi\int_0^\infty [g(r) - 1]\,r^2\,dr`, is the
limit of the running integral (:func:`kb_integral_running`)

.. math::

    G(R) = 4\pi \int_0^R [g(r) - 1]\, r^2\, dr ,

which in a periodic box of N particles has two finite-size errors:

1. **Closed system.**  The box holds a fixed number of particles, so the excess of partners near a particle is
   missing from the rest of the box and :math:`g(r) \to 1 - O(1/N)` at long range; :math:`4\pi r^2` amplifies
   the offset and G(R) drifts linearly with the volume of the sphere.  :func:`ganguly_correction` rescales g by
   the density of partners left outside the sphere (Ganguly & van der Vegt 2013):

   .. math::

       g_\mathrm{corr}(r) = g(r)\,\frac{(N_b - \delta_{ab})(1 - V_r/V)}
       {(N_b - \delta_{ab})(1 - V_r/V) - \Delta N_{ab}(r)},
       \qquad V_r = \tfrac43\pi r^3,\quad \Delta N_{ab}(r) = \rho_b' G(r).

2. **Finite integration range.**  A sphere of radius R in a box is not an open system either; the integral over
   a finite subvolume converges as 1/L.  :func:`finite_volume_kb` weights the integrand by the sphere-overlap
   weight :math:`w(x) = 1 - \tfrac32 x + \tfrac12 x^3`, :math:`x = r/L` (Krüger et al. 2013, L the sphere
   diameter),

   .. math::

       G(L) = 4\pi \int_0^L [g(r) - 1]\, r^2\, w(r/L)\, dr = G_\infty + \frac{a}{L} + O(L^{-3}),

   and :func:`kruger_extrapolate` fits :math:`G(L)` over a window of L to recover :math:`G_\infty`.

Applying (1) and then (2) is the "both" estimator of ``kb_integral`` (Milzetti et al. 2018).  Both need g(r)
out to about half the box: the corrections reduce, not remove, the error of a box too small for its correlations.

Warnings
--------
* A g(r) normalised by :math:`N_b/V` for like pairs (ideal gas :math:`g = 1 - 1/N_b`) must be multiplied by
  :math:`N_b/(N_b - 1)` first, or every like-pair G carries a spurious :math:`-V/N_b`.
* The regression error of :func:`kruger_extrapolate` treats neighbouring L as independent and understates the
  uncertainty; use errors over trajectory blocks (``kb_integral(g_blocks=...)``).

References
----------
* P. Ganguly, N. F. A. van der Vegt, J. Chem. Theory Comput. 9, 1347 (2013) — closed-system correction.
* P. Krüger, S. K. Schnell, D. Bedeaux, S. Kjelstrup, T. J. H. Vlugt, J.-M. Simon, J. Phys. Chem. Lett. 4, 235
  (2013) — finite-volume integrals.
* J. Milzetti, D. Nayar, N. F. A. van der Vegt, J. Chem. Inf. Model. 58, 1574 (2018) (as cited in
  ``docs/methods-thermodynamics.md``) — both combined.
* Equations with derivations: ``docs/methods-thermodynamics.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.integrate import trapezoid

__all__ = [
    "check_kb_grid",
    "finite_volume_kb",
    "ganguly_correction",
    "kb_integral_running",
    "kruger_extrapolate",
    "kruger_weight",
]


def check_kb_grid(r: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``r`` and ``g`` as float arrays, after checking that they form a KB grid.

    Parameters
    ----------
    r : (n_r,) array_like, Å
        Strictly increasing, non-negative, at least 3 points.
    g : (..., n_r) array_like
        Radial distribution function(s) on ``r`` (last axis).

    Returns
    -------
    r, g : float arrays

    Raises
    ------
    ValueError
        If the grid is too short, not increasing, negative, or does not match the last axis of ``g``.
    """
    r = np.asarray(r, dtype=float)
    g = np.asarray(g, dtype=float)
    if r.ndim != 1 or r.size < 3:
        raise ValueError("r must be a 1-D array with at least 3 points")
    if np.any(np.diff(r) <= 0) or r[0] < 0:
        raise ValueError("r must be strictly increasing and non-negative")
    if g.shape[-1] != r.size:
        raise ValueError(f"g has {g.shape[-1]} points along its last axis, r has {r.size}")
    return r, g


def kb_integral_running(r: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Running Kirkwood–Buff integral G(R) = 4π ∫_0^R [g(r) − 1] r^2 dr (Å^3).

    Parameters
    ----------
    r : (n_r,) array, Å
        Strictly increasing grid (bin centres are fine).
    g : (..., n_r) array
        Radial distribution function(s); leading axes (e.g. blocks) are carried along.

    Returns
    -------
    (..., n_r) array, Å^3
        G evaluated at each R = r[i]. Trapezoid rule on the grid; the interval [0, r[0]] is added
        analytically assuming g(r) = g(r[0]) there (exact for an excluded core, g = 0).
    """
    r, g = check_kb_grid(r, g)
    h = g - 1.0
    integrand = 4.0 * np.pi * h * r**2
    head = 4.0 * np.pi * h[..., :1] * r[0] ** 3 / 3.0
    steps = 0.5 * (integrand[..., 1:] + integrand[..., :-1]) * np.diff(r)
    return np.concatenate([head, head + np.cumsum(steps, axis=-1)], axis=-1)


def ganguly_correction(r: np.ndarray, g: np.ndarray, n_b: float, volume: float, same_species: bool) -> np.ndarray:
    """Closed-system correction of g_ab(r) (Ganguly & van der Vegt 2013), for g normalised by (N_b − δ_ab)/V.

    g_corr(r) = g(r) · (N_b − δ_ab)(1 − V_r/V) / [(N_b − δ_ab)(1 − V_r/V) − ΔN_ab(r)],

    with V_r = 4π r^3 / 3, ΔN_ab(r) = [(N_b − δ_ab)/V] G(r) the excess number of b partners within r of an a
    (from the running integral G of the uncorrected g) and δ_ab = 1 for like pairs. The denominator is the
    number of partners actually left outside the sphere of radius r, so the factor rescales the reference
    density from the box average (N_b − δ_ab)/V to the density outside the sphere.

    This is Ganguly's formula, g·N_b(1 − V_r/V) / [N_b(1 − V_r/V) − ΔN − δ_ab], rewritten for the
    normalisation of :mod:`electrodb.analysis.structure` (substitute g_Nb = g (N_b − δ_ab)/N_b); both give
    the same g_corr. An ideal gas (g ≡ 1) gives g_corr ≡ 1 exactly.

    Parameters
    ----------
    r : (n_r,) array, Å
    g : (..., n_r) array, normalised by (N_b − δ_ab) / V (``structure.py``)
    n_b : float
        Number of b particles in the box (for a like pair, the number of particles of that species).
    volume : float, Å^3
        Box volume (mean volume for NPT).
    same_species : bool
        True for a–a pairs (δ_ab = 1).
    """
    r, g = check_kb_grid(r, g)
    delta = 1.0 if same_species else 0.0
    n_partners = n_b - delta
    if n_partners <= 0 or volume <= 0:
        raise ValueError("need n_b > 1 (like pair) or n_b > 0 (unlike pair) and a positive volume")
    excess = (n_partners / volume) * kb_integral_running(r, g)
    n_outside = n_partners * (1.0 - 4.0 * np.pi * r**3 / (3.0 * volume))
    denominator = n_outside - excess
    if np.any(denominator <= 0):
        raise ValueError("closed-system correction undefined: r range too large for the box or n_b too small")
    return g * n_outside / denominator


def kruger_weight(x: np.ndarray) -> np.ndarray:
    """Sphere weight w(x) = 1 − 3x/2 + x^3/2 for x = r/L <= 1 (L: sphere diameter), 0 beyond."""
    x = np.asarray(x, dtype=float)
    return np.where(x <= 1.0, 1.0 - 1.5 * x + 0.5 * x**3, 0.0)


def finite_volume_kb(r: np.ndarray, g: np.ndarray, lengths: np.ndarray | Sequence[float]) -> np.ndarray:
    """Finite-subvolume KB integral G(L) = 4π ∫_0^L [g − 1] r^2 w(r/L) dr (Krüger et al. 2013), Å^3.

    Parameters
    ----------
    r : (n_r,) array, Å
    g : (..., n_r) array
    lengths : (n_L,) array, Å
        Sphere diameters L, each with r[0] < L <= r[-1]; g is interpolated linearly at r = L.

    Returns
    -------
    (..., n_L) array, Å^3
    """
    r, g = check_kb_grid(r, g)
    lengths = np.atleast_1d(np.asarray(lengths, dtype=float))
    if np.any(lengths <= r[0]) or np.any(lengths > r[-1] * (1 + 1e-12)):
        raise ValueError("every L must lie in (r[0], r[-1]]")
    h = g - 1.0
    out = np.empty((*g.shape[:-1], lengths.size))
    for k, length in enumerate(lengths):
        n_in = int(np.searchsorted(r, length, side="left"))
        rs = r[:n_in]
        hs = h[..., :n_in]
        if rs[-1] < length:
            frac = (length - r[n_in - 1]) / (r[n_in] - r[n_in - 1])
            h_end = h[..., n_in - 1] + frac * (h[..., n_in] - h[..., n_in - 1])
            rs = np.append(rs, length)
            hs = np.concatenate([hs, h_end[..., None]], axis=-1)
        integrand = 4.0 * np.pi * hs * rs**2 * kruger_weight(rs / length)
        r0 = r[0]
        head = 4.0 * np.pi * h[..., 0] * (r0**3 / 3.0 - 3.0 * r0**4 / (8.0 * length) + r0**6 / (12.0 * length**3))
        out[..., k] = head + trapezoid(integrand, rs, axis=-1)
    return out


def kruger_extrapolate(lengths: np.ndarray, g_of_l: np.ndarray, cubic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Extrapolate G(L) to L → ∞ by least squares, G(L) = G∞ + a/L (+ b/L^3 if ``cubic``).

    For a correlation h(r) of finite range ρ_h the expansion is exact for L > ρ_h:
    G(L) = G∞ − (6π/L) ∫ h r^3 dr + (2π/L^3) ∫ h r^5 dr.

    Parameters
    ----------
    lengths : (n_L,) array, Å
    g_of_l : (..., n_L) array, Å^3
    cubic : bool
        Include the 1/L^3 term (exact for short-ranged h; costs one more parameter).

    Returns
    -------
    g_inf : (...) array, Å^3
    stderr : (...) array, Å^3
        Standard error of the intercept from the regression residuals. The residuals of neighbouring L
        are correlated, so this understates the true error; prefer block errors (``kb_integral``).
    """
    lengths = np.asarray(lengths, dtype=float)
    y = np.asarray(g_of_l, dtype=float)
    cols = [np.ones_like(lengths), 1.0 / lengths]
    if cubic:
        cols.append(1.0 / lengths**3)
    design = np.stack(cols, axis=1)
    n, p = design.shape
    if n <= p:
        raise ValueError(f"need more than {p} lengths in the fit window, got {n}")
    y2 = y.reshape(-1, n).T
    coef, *_ = np.linalg.lstsq(design, y2, rcond=None)
    resid = y2 - design @ coef
    s2 = np.sum(resid**2, axis=0) / (n - p)
    cov00 = np.linalg.inv(design.T @ design)[0, 0]
    g_inf = coef[0].reshape(y.shape[:-1])
    stderr = np.sqrt(s2 * cov00).reshape(y.shape[:-1])
    return g_inf, stderr
