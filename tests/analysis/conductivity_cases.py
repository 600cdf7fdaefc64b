"""Synthetic ion trajectories with known collective-transport answers: pure numpy, no water, no masses.

Every generator returns an :class:`IonCase`: unwrapped positions (Å, cations first), frame times (ps), the charges,
the box volume (Å³) and the exact answers (:attr:`IonCase.truth`: ``sigma``, ``sigma_ne`` in S/m; ``ionicity``,
``t_plus``, ``t_plus_ne``; ``L_pm`` = e²L⁺⁻ in S/m) that :func:`electrodb.analysis.conductivity.collective_transport`
should report (no centre-of-mass removal: ``masses=None``). Every ion, or bound pair, is an independent Brownian
walker, so all answers follow from the diffusion coefficients (``C = conductivity_factor(V, T)``, slopes 6 D):

* :func:`brownian_ions` — independent cations and anions: σ = σ_NE = 6C Σ N z² D, ionicity 1,
  t₊ = N₊z₊²D₊ / Σ N z² D;
* :func:`bound_pairs` — a fraction ``f`` of the cations each move rigidly with one anion (a neutral pair, D_pair).
  A 1:1 pair carries no current, so only the free ions conduct: σ = 6C(1−f)N(D₊ + D₋), while every ion's
  self-diffusion counts in σ_NE = 6C[(1−f)N(D₊ + D₋) + 2fN D_pair], so

  .. math::

      \\frac{\\sigma}{\\sigma_\\mathrm{NE}} = \\frac{(1-f)(D_+ + D_-)}{(1-f)(D_+ + D_-) + 2 f D_\\mathrm{pair}} ;

  the pair's two ions move together, so e²L⁺⁻ = 6C f N D_pair, and t₊ = (L⁺⁺ − L⁺⁻)/σ·e² = D₊/(D₊ + D₋) (the
  pairs cancel), while t₊ᴺᴱ = [(1−f)D₊ + f D_pair]/[(1−f)(D₊ + D₋) + 2f D_pair];
* :func:`brownian_ions` with ``z_cation=2`` — a 2:1 salt (twice as many anions): the charges enter squared;
* :func:`caged_ions` — ions in harmonic cages (Ornstein–Uhlenbeck): no long-time current, σ must not converge;
* :func:`drift_halfway` — every ion's D doubles halfway: no single σ.

Used by ``tests/analysis/test_conductivity.py`` and ``benchmarks/coverage_conductivity.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from electrodb.analysis.conductivity import conductivity_factor

#: Temperature of every case, K.
T_K = 300.0


@dataclass
class IonCase:
    """One synthetic run of ions and its exact answers (module text)."""

    name: str
    positions: np.ndarray
    times: np.ndarray
    n_cations: int
    n_anions: int
    z_cation: int
    z_anion: int
    volume_A3: float
    truth: dict[str, float | None]

    @property
    def cations(self) -> np.ndarray:
        return np.arange(self.n_cations)

    @property
    def anions(self) -> np.ndarray:
        return np.arange(self.n_cations, self.n_cations + self.n_anions)

    def run(self, **kw: object):
        """:func:`collective_transport` on this case (no masses, T = :data:`T_K`)."""
        from electrodb.analysis.conductivity import collective_transport

        return collective_transport(
            self.positions,
            self.times,
            self.cations,
            self.anions,
            self.z_cation,
            self.z_anion,
            self.volume_A3,
            T_K,
            **kw,  # type: ignore[arg-type]
        )


def _walk(rng: np.random.Generator, n_frames: int, n: int, d_A2_ps: float, dt: float) -> np.ndarray:
    steps = rng.normal(0.0, np.sqrt(2.0 * d_A2_ps * dt), (n_frames - 1, n, 3))
    start = rng.uniform(0.0, 30.0, (1, n, 3))
    return np.concatenate([start, start + np.cumsum(steps, axis=0)])


def _truth(c: float, n_p: int, n_m: int, zp: int, zm: int, dp: float, dm: float) -> dict[str, float | None]:
    sigma = 6 * c * (n_p * zp**2 * dp + n_m * zm**2 * dm)
    t_plus = n_p * zp**2 * dp / (n_p * zp**2 * dp + n_m * zm**2 * dm)
    return {"sigma": sigma, "sigma_ne": sigma, "ionicity": 1.0, "t_plus": t_plus, "t_plus_ne": t_plus, "L_pm": 0.0}


def brownian_ions(
    seed: int,
    n_cations: int = 32,
    z_cation: int = 1,
    n_frames: int = 4000,
    dt: float = 0.1,
    d_cation: float = 0.1,
    d_anion: float = 0.2,
    box_A: float = 30.0,
) -> IonCase:
    """Independent Brownian cations (charge ``z_cation``) and anions (charge −1, ``z_cation`` × as many); D in
    Å²/ps, run ``n_frames`` × ``dt`` ps."""
    rng = np.random.default_rng(seed)
    n_anions = z_cation * n_cations
    x = np.concatenate(
        [_walk(rng, n_frames, n_cations, d_cation, dt), _walk(rng, n_frames, n_anions, d_anion, dt)], axis=1
    )
    volume = box_A**3
    truth = _truth(conductivity_factor(volume, T_K), n_cations, n_anions, z_cation, -1, d_cation, d_anion)
    return IonCase("brownian", x, np.arange(n_frames) * dt, n_cations, n_anions, z_cation, -1, volume, truth)


def bound_pairs(
    seed: int,
    f: float = 0.5,
    n: int = 40,
    n_frames: int = 4000,
    dt: float = 0.1,
    d_cation: float = 0.1,
    d_anion: float = 0.2,
    d_pair: float = 0.05,
    box_A: float = 30.0,
) -> IonCase:
    """``n`` cations and ``n`` anions (1:1); ``round(f n)`` of each form rigid neutral pairs (2.5 Å apart) that
    diffuse with ``d_pair`` (Å²/ps); the truths of the module text."""
    rng = np.random.default_rng(seed)
    nb = round(f * n)
    free = n - nb
    x = np.concatenate([_walk(rng, n_frames, n, d_cation, dt), _walk(rng, n_frames, n, d_anion, dt)], axis=1)
    pairs = _walk(rng, n_frames, nb, d_pair, dt)
    x[:, :nb] = pairs
    x[:, n : n + nb] = pairs + 2.5
    volume = box_A**3
    c = conductivity_factor(volume, T_K)
    sigma = 6 * c * free * (d_cation + d_anion)
    ne = 6 * c * (free * (d_cation + d_anion) + 2 * nb * d_pair)
    truth = {
        "sigma": sigma,
        "sigma_ne": ne,
        "ionicity": sigma / ne,
        "t_plus": d_cation / (d_cation + d_anion),
        "t_plus_ne": (free * d_cation + nb * d_pair) / (free * (d_cation + d_anion) + 2 * nb * d_pair),
        "L_pm": 6 * c * nb * d_pair,
    }
    return IonCase(f"bound pairs f={f:g}", x, np.arange(n_frames) * dt, n, n, 1, -1, volume, truth)


def caged_ions(
    seed: int, n: int = 32, n_frames: int = 4000, dt: float = 0.1, rms_A: float = 1.0, tau_ps: float = 2.0
) -> IonCase:
    """``n`` cations and anions each rattling in a harmonic cage (RMS ``rms_A`` per direction, relaxation
    ``tau_ps``): no ion ever leaves, the long-time conductivity is 0."""
    rng = np.random.default_rng(seed)
    a = np.exp(-dt / tau_ps)
    noise = rng.normal(0.0, rms_A * np.sqrt(1 - a * a), (n_frames, 2 * n, 3))
    x = lfilter([1.0], [1.0, -a], noise, axis=0) + rng.uniform(0.0, 30.0, (1, 2 * n, 3))
    truth: dict[str, float | None] = {"sigma": 0.0, "sigma_ne": 0.0, "ionicity": None, "t_plus": None}
    return IonCase("caged", x, np.arange(n_frames) * dt, n, n, 1, -1, 30.0**3, truth)


def drift_halfway(seed: int, n: int = 32, n_frames: int = 4000, dt: float = 0.1, factor: float = 4.0) -> IonCase:
    """Brownian ions whose D is multiplied by ``factor`` halfway through the run: no single σ."""
    case = brownian_ions(seed, n, n_frames=n_frames, dt=dt)
    x = case.positions
    half = n_frames // 2
    steps = np.diff(x[half - 1 :], axis=0) * (np.sqrt(factor) - 1.0)
    x[half:] += np.cumsum(steps, axis=0)
    case.name, case.truth = "drift halfway", {"sigma": None, "sigma_ne": None, "ionicity": None, "t_plus": None}
    return case
