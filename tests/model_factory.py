"""Tiny MACE models built inside the tests (no weights can be downloaded here)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
import mace  # noqa: F401  - must be imported before e3nn (torch 2.13 weights-only pitfall)
import numpy as np
import torch
from e3nn import o3
from mace.modules import ScaleShiftMACE, interaction_classes

ELEMENTS = (1, 3, 8, 11, 17)  # H, Li, O, Na, Cl


def build_random_mace(
    path: Path, atomic_numbers: tuple[int, ...] = ELEMENTS, r_max: float = 4.0, seed: int = 0
) -> Path:
    """A randomly initialised, very small MACE with ZBL pair repulsion, saved like a trained model.

    Its forces are small and random except at short range, where the ZBL term keeps atoms apart, so it
    drives stable MD: enough to exercise loading, flows, storage and resume without training.
    """
    torch.manual_seed(seed)
    model = ScaleShiftMACE(
        r_max=r_max,
        num_bessel=4,
        num_polynomial_cutoff=5,
        max_ell=1,
        interaction_cls=interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=1,
        num_elements=len(atomic_numbers),
        hidden_irreps=o3.Irreps("4x0e"),
        MLP_irreps=o3.Irreps("4x0e"),
        atomic_energies=np.zeros(len(atomic_numbers)),
        avg_num_neighbors=20.0,
        atomic_numbers=list(atomic_numbers),
        correlation=1,
        gate=torch.nn.functional.silu,
        pair_repulsion=True,
        radial_MLP=[8],
        atomic_inter_scale=0.01,
        atomic_inter_shift=0.0,
    )
    torch.save(model.float(), path)
    return path
