"""Tiny models and boxes built inside the tests (no weights can be downloaded here).

:func:`build_random_mace` saves an untrained MACE; :func:`smoke_box` is a 14-atom water/NaCl box;
:func:`train_smoke_model` trains a throw-away MACE on Lennard-Jones labels of perturbed smoke boxes;
:func:`build_toy_nequip` saves a deployed (TorchScript) NequIP-interface pair potential for Na and Cl.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict  # noqa: UP035 (TorchScript annotations)

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


def trust_test_model(path: str | os.PathLike[str]) -> Path:
    """Trust one model file built by these tests, by its sha256, as `electrodb model register PATH --trust` would.

    The tests switch data folders per test (``settings`` fixture) while their models live per session, so the
    sha256 goes to the test session's own registry file, named by ``$ELECTRODB_TRUSTED_MODELS`` (inherited by the
    worker processes the tests start). Only the files passed here are trusted: nothing else is.
    """
    import json
    import tempfile

    from electrodb.models.files import file_sha256
    from electrodb.models.trust import TRUST_ENV

    registry = Path(tempfile.gettempdir()) / f"electrodb-tests-{os.getpid()}-trusted-models.json"
    listed = [p for p in os.environ.get(TRUST_ENV, "").split(os.pathsep) if p]
    if str(registry) not in listed:
        os.environ[TRUST_ENV] = os.pathsep.join([*listed, str(registry)])
    models = json.loads(registry.read_text(encoding="utf-8"))["models"] if registry.is_file() else {}
    models[file_sha256(path)] = {"path": str(Path(path).resolve()), "source": "built by the tests"}
    tmp = registry.with_suffix(f".{os.getpid()}.part")
    tmp.write_text(json.dumps({"models": models}), encoding="utf-8")
    tmp.replace(registry)
    return Path(path)


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
    return trust_test_model(path)


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


def smoke_training_settings(epochs: int = 2, seed: int = 0) -> TrainingSettings:
    """The throw-away MACE of the tests: r_max 3.5 Å, 8 channels, L = 0, one interaction, ``epochs`` epochs."""
    return TrainingSettings(
        num_channels=8,
        max_L=0,
        correlation=2,
        max_ell=1,
        num_interactions=1,
        r_max=3.5,
        radial_MLP=[16],
        batch_size=4,
        max_num_epochs=epochs,
        start_swa=max(1, epochs - 1),
        valid_fraction=0.2,
        seed=seed,
        name="smoke_mace",
    )


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

    from electrodb.models.files import file_sha256

    work = Path(workdir).expanduser().resolve()
    saved = work / RESULT_FILE
    if reuse and saved.is_file():
        previous = TrainingResult.model_validate_json(saved.read_text(encoding="utf-8"))
        if Path(previous.model_path).is_file() and file_sha256(previous.model_path) == previous.model_id:
            trust_test_model(previous.model_path)
            return previous
    configs = perturb_configurations([smoke_box(seed)], n_configurations, (0.03, 0.08), 0.02, seed)
    labelled = label_configurations(configs, LennardJones(sigma=0.86, epsilon=0.05, rc=3.0, smooth=True))
    settings = smoke_training_settings(max_num_epochs, seed)
    result = train_mace(labelled, settings, work)  # trusted in the data folder of the moment, and here for good
    trust_test_model(result.model_path)
    return result


class ToyNequIPPair(torch.nn.Module):
    """A NequIP-interface toy: E = sum over edges of A exp(-r) (1 - r/rc)^2 / 2, forces and stress by autograd."""

    def __init__(self, rc: float = 3.0) -> None:
        super().__init__()
        self.rc = rc
        self.weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))

    def forward(self, data: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:  # noqa: UP006 (TorchScript)
        pos = data["pos"]
        cell = data["cell"].view(3, 3)
        strain = torch.zeros((3, 3), dtype=pos.dtype, device=pos.device)
        strain.requires_grad_(True)
        pos.requires_grad_(True)
        sym = 0.5 * (strain + strain.transpose(0, 1))
        p = pos + pos @ sym
        c = cell + cell @ sym
        i, j = data["edge_index"][0], data["edge_index"][1]
        vec = p[j] - p[i] + data["edge_cell_shift"] @ c
        r = torch.linalg.norm(vec, dim=-1)
        amp = self.weight[data["atom_types"].view(-1)[i]] * self.weight[data["atom_types"].view(-1)[j]]
        e_edge = 0.5 * amp * torch.exp(-r) * (1.0 - r / self.rc) ** 2
        atomic = torch.zeros(pos.shape[0], dtype=pos.dtype, device=pos.device).index_add(0, i, e_edge)
        energy = atomic.sum()
        grads = torch.autograd.grad([energy], [pos, strain])
        g_pos = grads[0]
        g_strain = grads[1]
        assert g_pos is not None and g_strain is not None
        out = data
        out["total_energy"] = energy.view(1, 1)
        out["atomic_energy"] = atomic.view(-1, 1)
        out["forces"] = -g_pos
        out["stress"] = (g_strain / torch.linalg.det(cell)).view(1, 3, 3)
        return out


def build_toy_nequip(folder: Path, metadata: bool) -> Path:
    """:class:`ToyNequIPPair` deployed with ``torch.jit.save`` into ``folder``: with ``metadata``, the extra
    files of a ``nequip-deploy`` file (NequIP 0.5.6, types "Na Cl", r_max 3 Å, energy model with stress) as
    ``toy-deployed.pth``; without, a bare TorchScript file ``toy-bare.pth`` that must be named explicitly."""
    path = folder / ("toy-deployed.pth" if metadata else "toy-bare.pth")
    extra = (
        {
            "nequip_version": "0.5.6",
            "type_names": "Na Cl",
            "r_max": "3.0",
            "n_species": "2",
            "config": "model_builders:\n- EnergyModel\n- StressForceOutput\n",
        }
        if metadata
        else {}
    )
    torch.jit.save(torch.jit.script(ToyNequIPPair()), str(path), _extra_files=extra)
    return path
