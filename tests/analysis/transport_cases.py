"""Synthetic trajectories with known self-diffusion answers: fast, pure numpy position arrays.

Every generator returns a :class:`Case`: unwrapped positions (Å, ``(n_frames, n_atoms, 3)``), frame times (ps),
the atoms whose D is measured, the masses for the centre-of-mass drift removal (or None) and the exact answer
(``truth``, 1e-9 m²/s) that :func:`electrodb.analysis.transport.self_diffusion` should report as ``D`` (the
finite-box D_pbc: Brownian motion has no hydrodynamic finite-size effect). ``truth`` is None where the run has no
single answer (a mobility that jumps halfway).

Cases (used by ``tests/analysis/test_transport.py`` and ``benchmarks/coverage_diffusion.py``):

* :func:`brownian_box` — cations, anions and rigid 3-site waters, each molecule an independent Brownian walker
  with its species' D; the centre-of-mass removal changes the truth by an exact factor (:func:`com_removed_D`);
* :func:`caged_ions` — ions in harmonic cages (Ornstein–Uhlenbeck positions): MSD → a plateau, long-time D = 0;
* :func:`drift_halfway` — Brownian ions whose D is multiplied by ``factor`` halfway through the run;
* :func:`heterogeneous_mobility` — each ion's mobility wanders slowly (log-normal, correlation time a fraction
  of the run) around a known mean, with a part shared by all ions: dynamic heterogeneity;
* :func:`lattice_start` — Brownian ions whose mobility starts ``excess`` times too high and relaxes
  exponentially (a lattice start melting), the equilibrium D is the truth;
* :func:`static_ions` — atoms that never move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

#: 1 Å²/ps in the reporting unit 1e-9 m²/s.
A2_PS = 10.0
MASS = {"cation": 22.99, "anion": 35.45, "O": 15.999, "H": 1.008}
WATER_H_OFFSETS = np.array([[0.0, 0.0, 0.0], [0.757, 0.586, 0.0], [-0.757, 0.586, 0.0]])


@dataclass
class Case:
    """One synthetic run and its exact answer.

    Attributes
    ----------
    name : str
    positions : (n_frames, n_atoms, 3) array, Å, unwrapped
    times : (n_frames,) array, ps
    selections : dict of str to int array
        Atoms whose D is measured, by species.
    masses : (n_atoms,) array or None
        Masses for the centre-of-mass drift removal (None: no removal).
    truth : dict of str to float or None
        Exact D_pbc per species, 1e-9 m²/s (None: no single answer).
    """

    name: str
    positions: np.ndarray
    times: np.ndarray
    selections: dict[str, np.ndarray]
    masses: np.ndarray | None
    truth: dict[str, float | None]


def com_removed_D(D_mol: np.ndarray, m_mol: np.ndarray) -> np.ndarray:
    r"""Exact D of each molecule's displacement relative to the system centre of mass, same unit as ``D_mol``.

    With independent Brownian molecules (walks :math:`W_j`, coefficients :math:`D_j`, mass fractions
    :math:`\mu_j = m_j/M`) the displacement measured after removing the centre-of-mass drift is
    :math:`W_i - \sum_j \mu_j W_j`, whose MSD is exactly :math:`6t\,[(1-\mu_i)^2 D_i + \sum_{j\ne i}\mu_j^2 D_j]`.
    For equal D and masses this is :math:`D(1 - 1/N)`.
    """
    mu = np.asarray(m_mol, dtype=float) / np.sum(m_mol)
    d = np.asarray(D_mol, dtype=float)
    others = np.sum(mu**2 * d) - mu**2 * d
    return (1.0 - mu) ** 2 * d + others


def _walk(rng: np.random.Generator, d_A2_ps: np.ndarray, dt: float) -> np.ndarray:
    """Brownian displacements from frame 0, ``d_A2_ps`` of shape (n_frames, n) or (n,), Å²/ps."""
    n_frames = d_A2_ps.shape[0]
    steps = rng.normal(size=(n_frames, d_A2_ps.shape[1], 3)) * np.sqrt(2.0 * d_A2_ps * dt)[..., None]
    steps[0] = 0.0
    return np.cumsum(steps, axis=0)


def _ou(rng: np.random.Generator, n_frames: int, n: int, tau_frames: float) -> np.ndarray:
    """Stationary unit-variance Ornstein–Uhlenbeck series, shape (n_frames, n), correlation time in frames."""
    phi = np.exp(-1.0 / tau_frames)
    e = rng.normal(size=(n_frames, n)) * np.sqrt(1.0 - phi**2)
    e[0] = rng.normal(size=n)
    return lfilter([1.0], [1.0, -phi], e, axis=0)


def _ions(name: str, walk: np.ndarray, rng: np.random.Generator, dt: float, truth: float | None) -> Case:
    n_frames, n = walk.shape[:2]
    start = rng.uniform(0.0, 20.0, size=(1, n, 3))
    return Case(name, walk + start, np.arange(n_frames) * dt, {"ion": np.arange(n)}, None, {"ion": truth})


def brownian_box(
    seed: int,
    n_cations: int = 32,
    n_anions: int = 32,
    n_waters: int = 128,
    n_frames: int = 2000,
    dt: float = 0.1,
    D: tuple[float, float, float] = (0.133, 0.203, 0.23),
) -> Case:
    """Cations, anions and rigid 3-site waters (O, H, H) random-walking independently, COM drift removed.

    ``D`` holds the molecules' coefficients (cation, anion, water) in Å²/ps; ``truth`` is the exact D_pbc of each
    species after the centre-of-mass removal (:func:`com_removed_D`), in 1e-9 m²/s.
    """
    rng = np.random.default_rng(seed)
    n_mol = n_cations + n_anions + n_waters
    kinds = np.repeat([0, 1, 2], [n_cations, n_anions, n_waters])
    d_mol = np.asarray(D, dtype=float)[kinds]
    m_water = MASS["O"] + 2 * MASS["H"]
    m_mol = np.array([MASS["cation"], MASS["anion"], m_water])[kinds]
    walk = _walk(rng, np.broadcast_to(d_mol, (n_frames, n_mol)), dt)  # (F, n_mol, 3)
    n_ions = n_cations + n_anions
    mol = np.concatenate([np.arange(n_ions), np.repeat(np.arange(n_ions, n_mol), 3)])
    offsets = np.zeros((mol.size, 3))
    offsets[n_ions:] = np.tile(WATER_H_OFFSETS, (n_waters, 1))
    start = rng.uniform(0.0, 25.0, size=(n_mol, 3))[mol] + offsets
    water_masses = np.tile([MASS["O"], MASS["H"], MASS["H"]], n_waters)
    masses = np.concatenate([np.full(n_cations, MASS["cation"]), np.full(n_anions, MASS["anion"]), water_masses])
    positions = walk[:, mol] + start[None]
    d_eff = com_removed_D(d_mol, m_mol) * A2_PS
    water_o = n_ions + 3 * np.arange(n_waters)
    selections = {"cation": np.arange(n_cations), "anion": np.arange(n_cations, n_ions), "water": water_o}
    truth = {
        "cation": float(d_eff[:n_cations].mean()) if n_cations else None,
        "anion": float(d_eff[n_cations:n_ions].mean()) if n_anions else None,
        "water": float(d_eff[n_ions:].mean()) if n_waters else None,
    }
    return Case("brownian", positions, np.arange(n_frames) * dt, selections, masses, truth)


def caged_ions(
    seed: int,
    n_ions: int = 32,
    n_frames: int = 2000,
    dt: float = 0.1,
    tau_ps: float = 20.0,
    plateau_A2: float = 64.0,
) -> Case:
    """Ions bound to fixed sites by harmonic springs: MSD(t) = plateau (1 − exp(−t/τ)), long-time D = 0.

    At short lags the MSD rises linearly with apparent D = plateau/(6τ) (0.53 Å²/ps = 5.3e-9 m²/s for the
    defaults), the regime a fit at lags ≪ τ mistakes for diffusion.
    """
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(plateau_A2 / 6.0)
    x = sigma * _ou(rng, n_frames, 3 * n_ions, tau_ps / dt).reshape(n_frames, n_ions, 3)
    return _ions("caged", x, rng, dt, 0.0)


def drift_halfway(
    seed: int, n_ions: int = 32, n_frames: int = 2000, dt: float = 0.1, D: float = 0.13, factor: float = 1.3
) -> Case:
    """Brownian ions with D (Å²/ps) for the first half of the run and ``factor`` × D after: no single answer."""
    rng = np.random.default_rng(seed)
    d = np.full((n_frames, n_ions), D)
    d[n_frames // 2 :] *= factor
    return _ions("drift_halfway", _walk(rng, d, dt), rng, dt, None)


def heterogeneous_mobility(
    seed: int,
    n_ions: int = 64,
    n_frames: int = 2000,
    dt: float = 0.1,
    D: float = 0.13,
    sigma: float = 0.6,
    tau_fraction: float = 0.25,
    shared: float = 0.0,
) -> Case:
    r"""Ions whose mobility wanders slowly: :math:`D_i(t) = D\,e^{\sigma y_i(t) - \sigma^2/2}`.

    :math:`y_i = \sqrt{s}\,Y(t) + \sqrt{1-s}\,Y_i(t)` with unit Ornstein–Uhlenbeck processes of correlation time
    ``tau_fraction`` × the run (a quarter of it by default: each ion is fast or slow for tens of ps, as in a
    concentrated electrolyte), ``s = shared`` the part common to all ions (none by default). The ensemble mean
    mobility is exactly ``D`` (the truth, 1.3e-9 m²/s); with few ions a run's average is far from it while its
    time blocks agree, because every block averages the same few fast and slow ions.
    """
    rng = np.random.default_rng(seed)
    tau = tau_fraction * n_frames
    y = np.sqrt(shared) * _ou(rng, n_frames, 1, tau) + np.sqrt(1.0 - shared) * _ou(rng, n_frames, n_ions, tau)
    d = D * np.exp(sigma * y - sigma**2 / 2)
    return _ions("heterogeneous", _walk(rng, d, dt), rng, dt, D * A2_PS)


def lattice_start(
    seed: int,
    n_ions: int = 32,
    n_frames: int = 2000,
    dt: float = 0.1,
    D: float = 0.13,
    excess: float = 4.0,
    tau_ps: float = 10.0,
) -> Case:
    """Brownian ions from lattice sites whose mobility starts (1 + excess) × D and relaxes with time τ (ps).

    The equilibrium D (Å²/ps, reported × 10) is the truth; averaging the transient in biases D up by about
    ``excess`` × τ / (run length).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * dt
    d = np.broadcast_to((D * (1.0 + excess * np.exp(-t / tau_ps)))[:, None], (n_frames, n_ions))
    walk = _walk(rng, d, dt)
    side = int(np.ceil(n_ions ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n_ions] * 3.0
    return Case("lattice_start", walk + grid[None], t, {"ion": np.arange(n_ions)}, None, {"ion": D * A2_PS})


def static_ions(n_ions: int = 32, n_frames: int = 500, dt: float = 0.1) -> Case:
    """Atoms that never move: D = 0 with an error of exactly 0, which measures nothing."""
    rng = np.random.default_rng(0)
    x = np.broadcast_to(rng.uniform(0, 20, (1, n_ions, 3)), (n_frames, n_ions, 3)).copy()
    return Case("static", x, np.arange(n_frames) * dt, {"ion": np.arange(n_ions)}, None, {"ion": 0.0})
