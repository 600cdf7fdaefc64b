r"""Per-time-origin slopes of displacement products: the samples behind every collective transport coefficient.

Pure numpy/scipy. A collective quantity (the charge displacement of the whole box, the summed displacement of all
cations) is one vector per frame: unlike a self-diffusion coefficient it has no per-atom samples whose scatter
gives an error. Its samples are the *time origins*. For a lag window :math:`k_0 \dots k_1` (frames) and an origin
:math:`t_0`, the least-squares slope of :math:`\Delta\mathbf a(t_0, k)\cdot\Delta\mathbf b(t_0, k)` over the
window,

.. math::

    s(t_0) = \sum_{k=k_0}^{k_1} w_k\, \big[\mathbf a(t_0+k) - \mathbf a(t_0)\big]\cdot
             \big[\mathbf b(t_0+k) - \mathbf b(t_0)\big],
    \qquad w_k = \frac{t_k - \bar t}{\sum_j (t_j - \bar t)^2},

is one sample of :math:`d\langle\Delta\mathbf a\cdot\Delta\mathbf b\rangle/dt` (Å²/ps). Its mean over the
origins :math:`t_0 = 0 \dots F-1-k_1` is the least-squares slope of the origin-averaged curve over the same
origins (the slope is linear in the curve), and the series :math:`s(t_0)` is what
:func:`electrodb.analysis.sampling.analyse_series` turns into an error bar: neighbouring origins share most of
their window, so the series is strongly correlated (statistical inefficiency :math:`g \approx 2k_1/3` frames
for diffusive motion) and a run of :math:`T` holds only about :math:`1.5\,T/(k_1\Delta t)` independent samples.
That is the honest size of a collective error bar; averaging over more ions does not shrink it.

The statistical inefficiency estimated from such a series (pymbar's truncated autocorrelation sum) scatters
widely when the series holds only some 30 windows: on Brownian ions it ranged over a factor 3 and made the
errors 19 % small on average. :func:`brownian_inefficiency` gives the inefficiency the same windows have for
uncorrelated diffusion, computed exactly from the window weights; it is the floor of the estimate
(``g_floor`` of :func:`~electrodb.analysis.sampling.analyse_series`). Motion correlated for longer than the
window raises the estimate above the floor; nothing can lower it below.

Because :math:`\sum_k w_k = 0`, :math:`s(t_0) = (w\star p)(t_0) - \mathbf a(t_0)\cdot(w\star\mathbf b)(t_0) -
\mathbf b(t_0)\cdot(w\star\mathbf a)(t_0)` with :math:`p = \mathbf a\cdot\mathbf b` and :math:`\star` a
correlation over the window, computed by FFT in :math:`O(F\log F)`. The result is shift invariant, so every
series is centred first (no cancellation from large unwrapped coordinates).

Units: positions in Å, ``dt`` in ps, slopes in Å²/ps.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

__all__ = ["brownian_inefficiency", "lag_weights", "origin_slopes", "self_origin_slopes"]

#: Memory bound (bytes) of one chunk of per-atom correlations in :func:`self_origin_slopes`.
_CHUNK_BYTES = 64 * 2**20


def lag_weights(k0: int, k1: int, dt: float) -> np.ndarray:
    """Least-squares slope weights :math:`w_k` over lags ``k0 … k1`` (inclusive, frames), ps⁻¹ (they sum to 0).

    Parameters
    ----------
    k0, k1
        First and last lag of the window, frames, ``0 <= k0 < k1``.
    dt
        Frame interval, ps.
    """
    if not 0 <= k0 < k1:
        raise ValueError(f"lag window ({k0}, {k1}) needs 0 <= k0 < k1")
    t = np.arange(k0, k1 + 1, dtype=np.float64) * dt
    tc = t - t.mean()
    return tc / (tc @ tc)


def _window_sums(x: np.ndarray, w: np.ndarray, k0: int, n_orig: int) -> np.ndarray:
    """``sum_j w_j x[t0 + k0 + j]`` for ``t0 = 0 … n_orig - 1`` along axis 0 of ``x``."""
    kernel = w[::-1].reshape((-1,) + (1,) * (x.ndim - 1))
    return fftconvolve(x[k0:], kernel, mode="valid", axes=0)[:n_orig]


def _check(x: np.ndarray, k1: int) -> None:
    if x.ndim < 2 or x.shape[-1] != 3:
        raise ValueError(f"expected (n_frames, ..., 3) coordinates, got shape {x.shape}")
    if k1 >= x.shape[0]:
        raise ValueError(f"lag window end {k1} frames is not shorter than the run ({x.shape[0]} frames)")


def origin_slopes(a: np.ndarray, b: np.ndarray | None, k0: int, k1: int, dt: float) -> np.ndarray:
    r"""Per-origin least-squares slope of :math:`\Delta\mathbf a\cdot\Delta\mathbf b` over lags ``k0 … k1``.

    Parameters
    ----------
    a, b : (n_frames, 3) arrays, Å
        Two vector series (e.g. the summed unwrapped positions of all cations and of all anions); ``b`` None
        means ``b = a`` (the slope of the squared displacement).
    k0, k1
        Lag window, frames (inclusive).
    dt
        Frame interval, ps.

    Returns
    -------
    (n_frames - k1,) float64 array, Å²/ps
        One slope per time origin; their mean is the slope of the origin-averaged curve over these origins.
    """
    a = np.asarray(a, dtype=np.float64)
    _check(a, k1)
    a = a - a.mean(axis=0)
    if b is None:
        b = a
    else:
        b = np.asarray(b, dtype=np.float64)
        if b.shape != a.shape:
            raise ValueError(f"a and b disagree in shape: {a.shape} vs {b.shape}")
        b = b - b.mean(axis=0)
    w = lag_weights(k0, k1, dt)
    n_orig = a.shape[0] - k1
    wp = _window_sums(np.einsum("fd,fd->f", a, b), w, k0, n_orig)
    wa = _window_sums(a, w, k0, n_orig)
    wb = wa if b is a else _window_sums(b, w, k0, n_orig)
    return wp - np.einsum("fd,fd->f", a[:n_orig], wb) - np.einsum("fd,fd->f", b[:n_orig], wa)


def self_origin_slopes(x: np.ndarray, k0: int, k1: int, dt: float, max_bytes: int = _CHUNK_BYTES) -> np.ndarray:
    r"""Per-origin slope of :math:`\sum_\alpha |\Delta\mathbf r_\alpha|^2` over lags ``k0 … k1``: the self part.

    Parameters
    ----------
    x : (n_frames, n_atoms, 3) array, Å, **unwrapped**
        The atoms whose squared displacements are summed.
    k0, k1
        Lag window, frames (inclusive).
    dt
        Frame interval, ps.
    max_bytes
        Memory bound of one chunk of atoms.

    Returns
    -------
    (n_frames - k1,) float64 array, Å²/ps
        One slope per time origin of the atom-summed squared displacement (6 × the summed D for diffusion).
    """
    x = np.asarray(x)
    _check(x, k1)
    n_frames, n_atoms = x.shape[:2]
    w = lag_weights(k0, k1, dt)
    n_orig = n_frames - k1
    out = np.zeros(n_orig)
    chunk = max(1, int(max_bytes // max(1, n_frames * 3 * 8 * 3)))
    for a0 in range(0, n_atoms, chunk):
        c = np.asarray(x[:, a0 : a0 + chunk], dtype=np.float64)
        c = c - c.mean(axis=0)
        out += _window_sums(np.einsum("fnd,fnd->f", c, c), w, k0, n_orig)
        out -= 2.0 * np.einsum("fnd,fnd->f", c[:n_orig], _window_sums(c, w, k0, n_orig))
    return out


def brownian_inefficiency(k0: int, k1: int, max_lags: int = 128, n_tau: int = 201) -> float:
    r"""Statistical inefficiency (frames) of the per-origin slope series over lags ``k0 … k1`` for diffusion.

    For Gaussian increments with independent components, :math:`\mathrm{Cov}(|\mathbf X|^2, |\mathbf Y|^2) =
    2\sum_d \mathrm{Cov}(X_d, Y_d)^2`, and the displacements over :math:`[t_0, t_0+k]` and
    :math:`[t_0+\tau, t_0+\tau+k']` covary in proportion to the overlap of the two intervals,
    :math:`\max(0, \min(k-\tau, k'))`. So the autocorrelation of :math:`s(t_0)` at origin separation
    :math:`\tau` is

    .. math::

        \rho(\tau) = \frac{\sum_{k,k'} w_k w_{k'}\, \max(0, \min(k-\tau, k'))^2}
                           {\sum_{k,k'} w_k w_{k'}\, \min(k, k')^2},

    zero beyond :math:`\tau = k_1`, and :math:`g = 1 + 2\sum_{\tau=1}^{k_1}\rho(\tau)` (about
    :math:`0.6\,k_1` for a window starting near 0). The same holds for any sum of independent diffusing
    particles (the collective charge displacement of uncorrelated ions, the self sums), whatever their D.

    Parameters
    ----------
    k0, k1
        Lag window, frames (inclusive).
    max_lags
        Lags of the window used for the sums (evenly spread; the window's own lags when fewer).
    n_tau
        Origin separations at which :math:`\rho` is evaluated (interpolated in between).

    Returns
    -------
    float
        g in frames (≥ 1).
    """
    if not 0 <= k0 < k1:
        raise ValueError(f"lag window ({k0}, {k1}) needs 0 <= k0 < k1")
    lags = np.arange(k0, k1 + 1, dtype=np.float64) if k1 - k0 + 1 <= max_lags else np.linspace(k0, k1, max_lags)
    w = lags - lags.mean()
    taus = np.linspace(0.0, float(k1), n_tau)
    cov = np.array([w @ np.clip(np.minimum(lags[:, None] - tau, lags[None, :]), 0.0, None) ** 2 @ w for tau in taus])
    rho = cov / cov[0]
    return float(max(1.0, 1.0 + 2.0 * np.interp(np.arange(1, k1 + 1), taus, rho).sum()))
