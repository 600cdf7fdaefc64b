"""torch-sim wrappers for models other than MACE, so that batched MD (:mod:`electrodb.md.torchsim`) runs them.

:class:`NequIPTorchSimModel` is a torch-sim ``ModelInterface`` for a NequIP / Allegro model deployed as TorchScript
(``nequip-deploy``, read by :mod:`electrodb.models.nequip`). A deployment takes one graph per call (a cell of
shape (1, 3, 3); the toy deployments in the tests and some Allegro builds accept nothing else), so the wrapper
evaluates the boxes of a batched state one after another, each with its own neighbour list
(:func:`electrodb.models.nequip.neighbor_list`, the same edges as the ASE calculator), and returns the
per-system energies (eV) and per-atom forces (eV/Å) torch-sim expects. The batched engine then gives NequIP
runs what it gives MACE runs (one integrator for k boxes, per-box stability, checkpoints, resume); the model
calls themselves are not fused, so on a GPU the gain is the integrator's and the bookkeeping's, not the
model's. Stress is not computed (NVT only, as batched production is).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ase.data import atomic_numbers
from torch_sim.models.interface import ModelInterface

from electrodb.models.nequip import neighbor_list

__all__ = ["NequIPTorchSimModel"]


class NequIPTorchSimModel(ModelInterface):
    """A deployed NequIP / Allegro model as a torch-sim model (energy and forces, one graph per box).

    Parameters
    ----------
    module
        The TorchScript module (:func:`electrodb.models.nequip.load_deployed_model`).
    type_names
        The model's species in type-index order, e.g. ``['O', 'H', 'Li', 'Cl']``.
    r_max
        Neighbour-list cutoff (Å).
    device, dtype
        Where and in which precision the module runs (``torch.float32`` for MD).
    neighbor_backend
        ``'auto'``, ``'vesin'`` or ``'ase'`` (:func:`electrodb.models.nequip.neighbor_list`).
    """

    def __init__(
        self,
        module: Any,
        type_names: list[str],
        r_max: float,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        neighbor_backend: str = "auto",
    ) -> None:
        super().__init__()
        self._device = torch.device(device)
        self._dtype = dtype
        self._compute_forces = True
        self._compute_stress = False
        self._memory_scales_with = "n_atoms_x_density"
        self.module = module.to(device=self._device, dtype=dtype).eval()
        self.type_names = list(type_names)
        self.r_max = float(r_max)
        self.neighbor_backend = neighbor_backend
        lookup = torch.full((119,), -1, dtype=torch.long)
        for index, name in enumerate(self.type_names):
            lookup[atomic_numbers[name]] = index
        self._type_of_z = lookup.to(self._device)

    @classmethod
    def from_loaded(cls, loaded: Any) -> NequIPTorchSimModel:
        """The wrapper of a ``'nequip'`` :class:`~electrodb.models.loaded.LoadedModel` (module, species, cutoff)."""
        calc = loaded.calculator()
        return cls(calc.model, calc.type_names, calc.r_max, calc.device, calc.torch_dtype, calc.neighbor_backend)

    def forward(self, state: Any, **_: Any) -> dict[str, torch.Tensor]:
        """Energies (n_systems,) in eV and forces (n_atoms, 3) in eV/Å of every box of ``state``."""
        types = self._type_of_z[state.atomic_numbers]
        if bool((types < 0).any()):
            bad = sorted({int(z) for z in state.atomic_numbers[types < 0].cpu()})
            raise ValueError(f"atomic number(s) {bad} not among the model's species {', '.join(self.type_names)}")
        counts = torch.bincount(state.system_idx, minlength=state.n_systems).cpu().numpy()
        ends = np.cumsum(counts)
        cells = state.row_vector_cell.to(self._dtype)
        pbc = np.broadcast_to(np.asarray(state.pbc.cpu() if torch.is_tensor(state.pbc) else state.pbc), (3,))
        energies, forces = [], []
        for b, (n, end) in enumerate(zip(counts, ends, strict=True)):
            lo, hi = int(end - n), int(end)
            pos = state.positions[lo:hi].detach().to(self._dtype).clone()
            cell = cells[b].detach()
            i, j, shifts = neighbor_list(
                pos.cpu().double().numpy(), cell.cpu().double().numpy(), pbc, self.r_max, self.neighbor_backend
            )
            data = {
                "pos": pos,
                "edge_index": torch.from_numpy(np.stack([i, j])).to(self._device),
                "cell": cell.view(1, 3, 3),
                "edge_cell_shift": torch.tensor(shifts, dtype=self._dtype, device=self._device),
                "atom_types": types[lo:hi].view(-1, 1),
                "pbc": torch.tensor(np.asarray(pbc, dtype=bool), device=self._device).view(1, 3),
            }
            out = self.module(data)
            energies.append(out["total_energy"].detach().reshape(()))
            forces.append(out["forces"].detach().reshape(-1, 3))
        return {"energy": torch.stack(energies), "forces": torch.cat(forces)}
