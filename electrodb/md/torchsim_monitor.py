"""What :func:`electrodb.md.torchsim.run_batched_nvt` watches on a batched torch-sim state, per system.

Temperature. :func:`kinetic_temperatures` gives T = 2 E_kin / (3 N k_B) of every system (K, ASE's convention).

Unwrapping. torch-sim wraps positions back into the cell in every position half-step
(``torch_sim.integrators.md.position_step`` calls ``pbc_wrap_batched``). :class:`ImageTracker` therefore tracks
periodic images after every step: with fractional coordinates s = r h⁻¹ (h = cell, lattice vectors as rows),
n ← n − round(s_new − s_old) and r_unwrapped = r_wrapped + n h. This is exact (integer image counts, no
accumulated round-off) as long as no atom moves half a box in one step.

Stability. :class:`BatchedStabilityMonitor` applies the thresholds of
:class:`~electrodb.systems.campaign.StabilitySettings` per system, vectorised: non-finite positions/forces, largest
force norm, temperature above factor × target, and closest pair distance (pairs with H vs heavy–heavy pairs;
periodic images included). It runs every ``check_every_steps`` steps and at every sample; non-finite forces or
positions are tested after every step (:meth:`BatchedStabilityMonitor.finite`), so a NaN never reaches the
neighbour list. A failing system is marked unstable (reason, step, last good frame) and leaves the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase import units

from electrodb.systems.campaign import StabilitySettings

# torch_sim is imported where it is used: it is the optional extra electrodb[gpu] (torch-sim-atomistic).

__all__ = ["BatchedStabilityMonitor", "ImageTracker", "kinetic_temperatures"]

_KB_EV_K = float(units.kB)  # Boltzmann constant (eV/K)


def kinetic_temperatures(state: Any) -> torch.Tensor:
    """Kinetic temperature of each system of a batched state, as ``ase.Atoms.get_temperature``.

    Parameters
    ----------
    state
        A torch-sim ``SimState`` with momenta (amu Å per internal time unit) and masses (amu).

    Returns
    -------
    torch.Tensor
        (S,) temperatures T = 2 E_kin / (3 N k_B) in K, on the state's device.
    """
    ke_atom = 0.5 * (state.momenta**2).sum(-1) / state.masses
    n_sys = state.n_systems
    ke = torch.zeros(n_sys, device=state.device, dtype=ke_atom.dtype).index_add(0, state.system_idx, ke_atom)
    n = torch.bincount(state.system_idx, minlength=n_sys).to(ke.dtype)
    return 2.0 * ke / (3.0 * n * _KB_EV_K)


class BatchedStabilityMonitor:
    """The checks of :class:`electrodb.md.dynamics.StabilityMonitor`, per system of a batched torch-sim state.

    Parameters
    ----------
    settings
        Thresholds (the same :class:`StabilitySettings` as the sequential engine; distances in Å, forces in eV/Å).
    target_temperatures
        (S,) target temperature of each active system (K).
    symbols
        Chemical symbols of all atoms of the batch, in state order (for the messages and the H test).
    """

    def __init__(self, settings: StabilitySettings, target_temperatures: torch.Tensor, symbols: Sequence[str]):
        self.settings = settings
        self.target_temperatures = target_temperatures
        self.symbols = list(symbols)
        self.is_hydrogen = np.array([s == "H" for s in self.symbols])

    def select(self, keep_systems: torch.Tensor, keep_atoms: np.ndarray) -> None:
        """Keep only the listed systems (after failing ones are removed from the batch).

        Parameters
        ----------
        keep_systems
            Indices of the systems that stay, in batch order.
        keep_atoms
            (N,) boolean mask of the atoms that stay.
        """
        self.target_temperatures = self.target_temperatures[keep_systems]
        self.symbols = [s for s, k in zip(self.symbols, keep_atoms, strict=True) if k]
        self.is_hydrogen = self.is_hydrogen[keep_atoms]

    @staticmethod
    def finite(state: Any) -> bool:
        """Cheap test run after every step: all positions, forces and energies finite (one host sync)."""
        ok = torch.isfinite(state.positions).all() & torch.isfinite(state.forces).all()
        return bool((ok & torch.isfinite(state.energy).all()).item())

    def check(self, state: Any, temperatures_K: torch.Tensor, step: int) -> dict[int, str]:
        """Every system that fails a check, with the reason.

        Parameters
        ----------
        state
            The batched torch-sim state (positions in Å, forces in eV/Å).
        temperatures_K
            (S,) kinetic temperature of each system (K).
        step
            The step being checked (the checks themselves do not use it).

        Returns
        -------
        dict of int to str
            ``{local system index: reason}``; empty when all pass.
        """
        s = self.settings
        n_sys = state.n_systems
        sidx = state.system_idx
        zeros = torch.zeros(n_sys, device=state.device, dtype=torch.int64)
        bad_pos = zeros.index_add(0, sidx, (~torch.isfinite(state.positions).all(-1)).long())
        bad_force = zeros.index_add(0, sidx, (~torch.isfinite(state.forces).all(-1)).long())
        norms = torch.linalg.norm(state.forces, dim=-1)
        norms = torch.where(torch.isfinite(norms), norms, torch.full_like(norms, float("inf")))
        fmax = torch.zeros(n_sys, device=state.device, dtype=norms.dtype).scatter_reduce(
            0, sidx, norms, reduce="amax", include_self=False
        )
        packed = torch.stack([bad_pos.to(norms.dtype), bad_force.to(norms.dtype), fmax, temperatures_K.to(norms.dtype)])
        bad_pos_c, bad_force_c, fmax_c, temp_c = packed.detach().cpu().double().numpy()
        target = self.target_temperatures.detach().cpu().double().numpy()
        failures: dict[int, str] = {}
        for b in range(n_sys):
            if bad_pos_c[b] > 0:
                failures[b] = "non-finite positions (NaN/inf)"
            elif bad_force_c[b] > 0:
                failures[b] = "non-finite forces (NaN/inf)"
            elif fmax_c[b] > s.max_force_eV_A:
                failures[b] = f"force {fmax_c[b]:.1f} eV/Å exceeds {s.max_force_eV_A} eV/Å"
            elif not np.isfinite(temp_c[b]) or temp_c[b] > s.max_temperature_factor * target[b]:
                failures[b] = (
                    f"temperature {temp_c[b]:.0f} K exceeds {s.max_temperature_factor} × target {target[b]:.0f} K"
                )
        failures.update(self._distance_failures(state, skip=set(failures)))
        return failures

    def _distance_failures(self, state: Any, skip: set[int]) -> dict[int, str]:
        """Systems (other than ``skip``) with a pair closer than the H or heavy-atom limit (Å), images included."""
        from torch_sim.neighbors import vesin_nl_ts

        s = self.settings
        cutoff = max(s.min_distance_heavy_A, s.min_distance_h_A)
        positions = state.positions.detach().cpu().double()
        cells = state.row_vector_cell.detach().cpu().double()
        counts = torch.bincount(state.system_idx, minlength=state.n_systems).cpu().numpy()
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        failures: dict[int, str] = {}
        for b in range(state.n_systems):
            if b in skip:
                continue
            lo, hi = int(starts[b]), int(starts[b] + counts[b])
            pos = positions[lo:hi]
            mapping, shifts = vesin_nl_ts(pos, cells[b], True, torch.tensor(cutoff, dtype=torch.float64))
            if mapping.shape[1] == 0:
                continue
            i, j = mapping[0].numpy(), mapping[1].numpy()
            d = torch.linalg.norm(pos[mapping[1]] - pos[mapping[0]] + shifts @ cells[b], dim=-1).numpy()
            h = self.is_hydrogen[lo:hi]
            with_h = h[i] | h[j]
            bad = (with_h & (d < s.min_distance_h_A)) | (~with_h & (d < s.min_distance_heavy_A))
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                sym = self.symbols[lo:hi]
                failures[b] = f"atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) are {d[k]:.2f} Å apart"
        return failures


class ImageTracker:
    """Integer periodic-image counts per atom, updated after every step (see the module docstring).

    Parameters
    ----------
    state
        The batched torch-sim state at the start (its positions count as unwrapped: images start at zero).
    """

    def __init__(self, state: Any) -> None:
        self.images = torch.zeros_like(state.positions, dtype=torch.int64)
        self._set_cells(state)
        self.frac = self._fractional(state.positions, state.system_idx)

    def _set_cells(self, state: Any) -> None:
        """Cache the cells (Å, lattice vectors as rows) of the state's systems and their inverses."""
        self.cells = state.row_vector_cell.detach()
        self.inverse = torch.linalg.inv(self.cells)

    def _fractional(self, positions: torch.Tensor, system_idx: torch.Tensor) -> torch.Tensor:
        """(N, 3) fractional coordinates s = r h⁻¹ of each atom in its own system's cell."""
        return torch.einsum("ni,nij->nj", positions, self.inverse[system_idx])

    def update(self, state: Any) -> None:
        """Count the cell crossings of the last step: n ← n − round(s_new − s_old)."""
        frac = self._fractional(state.positions, state.system_idx)
        self.images -= torch.round(frac - self.frac).to(torch.int64)
        self.frac = frac

    def select(self, state: Any, keep_atoms: torch.Tensor) -> None:
        """Keep the atoms of ``keep_atoms`` (a boolean mask) after systems left the batch; ``state`` is the new one."""
        self.images = self.images[keep_atoms]
        self.frac = self.frac[keep_atoms]
        self._set_cells(state)

    def unwrapped(self, state: Any) -> np.ndarray:
        """(N, 3) float64 unwrapped positions on the host (Å): r_wrapped + n h."""
        pos = state.positions.detach().cpu().double().numpy()
        images = self.images.cpu().double().numpy()
        cells = self.cells.cpu().double().numpy()
        sidx = state.system_idx.cpu().numpy()
        return pos + np.einsum("ni,nij->nj", images, cells[sidx])
