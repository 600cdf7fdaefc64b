"""Tiny MACE models and boxes built inside the tests (no weights can be downloaded here).

:func:`build_random_mace` saves an untrained MACE; :func:`smoke_box` is a 14-atom water/NaCl box;
:func:`train_smoke_model` trains a throw-away MACE on Lennard-Jones labels of perturbed smoke boxes.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
import mace  # noqa: F401  - must be imported before e3nn (torch 2.13 weights-only pitfall)
import numpy as np
import torch
from ase import Atoms
from e3nn import o3
from mace.modules import ScaleShiftMACE, interaction_classes

from electrodb.models.labelling import label_configurations, perturb_configurations
from electrodb.models.mace_train import RESULT_FILE, TrainingResult, TrainingSettings, train_mace

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


def smoke_box(seed: int = 0) -> Atoms:
    """A 14-atom periodic box, 4 H₂O + Na + Cl on a 6.4 Å cubic grid (sites 3.2 Å apart), for smoke tests."""
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    length = 6.4
    sites = [np.array(s) * length / 2 + length / 4 for s in np.ndindex(2, 2, 2)]
    atoms = Atoms(cell=[length] * 3, pbc=True)
    for site in sites[:4]:
        water = molecule("H2O")
        water.rotate(float(rng.uniform(0, 360)), rng.normal(size=3))
        water.translate(site - water.get_center_of_mass())
        atoms += water
    atoms += Atoms("NaCl", positions=[sites[4], sites[7]])
    return atoms


def train_smoke_model(
    workdir: str | os.PathLike[str],
    *,
    n_configurations: int = 16,
    max_num_epochs: int = 2,
    seed: int = 0,
    reuse: bool = True,
) -> TrainingResult:
    """Train a throw-away MACE for H, O, Na, Cl in ~15 s on 2 CPU cores (tests and smoke runs only).

    Labels: Lennard-Jones (σ = 0.86 Å, so the minimum 2^(1/6)σ ≈ 0.965 Å is the O–H bond; ε = 0.05 eV,
    r_c = 3 Å, all pairs alike) on perturbed copies of :func:`smoke_box`. Unphysical, but smooth and finite.
    With ``reuse``, a result in ``workdir`` whose model file still has the recorded sha256 is returned.
    """
    from ase.calculators.lj import LennardJones

    from electrodb.models.loader import file_sha256

    work = Path(workdir).expanduser().resolve()
    saved = work / RESULT_FILE
    if reuse and saved.is_file():
        previous = TrainingResult.model_validate_json(saved.read_text(encoding="utf-8"))
        if Path(previous.model_path).is_file() and file_sha256(previous.model_path) == previous.model_id:
            return previous
    configs = perturb_configurations([smoke_box(seed)], n_configurations, (0.03, 0.08), 0.02, seed)
    labelled = label_configurations(configs, LennardJones(sigma=0.86, epsilon=0.05, rc=3.0, smooth=True))
    settings = TrainingSettings(
        num_channels=8,
        max_L=0,
        correlation=2,
        max_ell=1,
        num_interactions=1,
        r_max=3.5,
        radial_MLP=[16],
        batch_size=4,
        max_num_epochs=max_num_epochs,
        start_swa=max(1, max_num_epochs - 1),
        valid_fraction=0.2,
        seed=seed,
        name="smoke_mace",
    )
    return train_mace(labelled, settings, work)
