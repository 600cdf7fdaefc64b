"""ASE calculator for NequIP / Allegro models deployed as TorchScript (``nequip-deploy``, NequIP 0.5.x).

A deployed model is a TorchScript archive: :func:`torch.jit.load` reads it without unpickling Python objects
(its constants go through TorchScript's restricted unpickler), so loading one cannot run arbitrary Python code.
The archive stores metadata as *extra files* (``type_names``, ``r_max``, ``n_species``, ``nequip_version``,
``config``, ...), read here with ``torch.jit.load(path, _extra_files=...)``.

The model is called with one graph,

- ``pos`` (N, 3), ``cell`` (1, 3, 3) with lattice vectors as rows (Å), ``pbc`` (1, 3) bool,
- ``atom_types`` (N, 1) long: index of each atom's symbol in ``type_names``,
- ``edge_index`` (2, E) long (row 0 the centre atom i, row 1 its neighbour j) and ``edge_cell_shift`` (E, 3),
  the integer image shifts S of each edge, so that the edge vector is
  :math:`\\mathbf r_{ij} = \\mathbf x_j - \\mathbf x_i + \\mathbf S_{ij} \\cdot \\mathbf H` (H the cell),
  for every pair with :math:`|\\mathbf r_{ij}| < r_{max}` (a full list: both i→j and j→i, all images),

and returns ``total_energy`` (1, 1) in eV, ``forces`` (N, 3) in eV/Å (:math:`-\\partial E/\\partial \\mathbf x`),
``atomic_energy`` (N, 1), and ``stress`` (1, 3, 3) in eV/Å³ only when it was deployed with a stress output
(``StressForceOutput``; NequIP's sign convention :math:`\\sigma = V^{-1}\\,\\partial E/\\partial \\varepsilon` is
ASE's, so it is passed through unchanged). Models without a stress output do not get a stress: asking for
one raises :class:`ase.calculators.calculator.PropertyNotImplementedError` (NPT needs another model).

The neighbour list comes from ``vesin`` (a small compiled package) when installed, else from
:func:`ase.neighborlist.primitive_neighbor_list`; both give the same edges.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.neighborlist import primitive_neighbor_list
from ase.stress import full_3x3_to_voigt_6_stress

# torch and vesin are imported inside the functions that need them: both are heavy, and vesin is optional (ASE's
# neighbour list is the fallback), so that checking a file (looks_like_nequip) needs neither.

__all__ = [
    "NEQUIP_METADATA_KEYS",
    "NequIPCalculator",
    "NequIPFormatError",
    "build_nequip_input",
    "is_torchscript_archive",
    "load_deployed_model",
    "looks_like_nequip",
    "neighbor_list",
]

#: Extra files read from a deployed model (absent ones come back empty).
NEQUIP_METADATA_KEYS = (
    "nequip_version",
    "type_names",
    "r_max",
    "n_species",
    "model_dtype",
    "allegro_version",
    "e3nn_version",
    "torch_version",
    "config",
)


class NequIPFormatError(ValueError):
    """The file is not a TorchScript archive (or not a NequIP deployment)."""


def _zip_names(path: Path | io.BytesIO) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return []


def is_torchscript_archive(path: str | os.PathLike[str] | io.BytesIO) -> bool:
    """True if ``path`` is a zip archive laid out like ``torch.jit.save`` output (``<name>/code/...``)."""
    names = _zip_names(path if isinstance(path, io.BytesIO) else Path(path))
    return any("/code/" in name for name in names) and any(name.endswith("constants.pkl") for name in names)


def looks_like_nequip(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a TorchScript archive with NequIP deployment metadata (``extra/nequip_version``)."""
    path = Path(path)
    if not path.is_file():
        return False
    names = _zip_names(path)
    return any(name.endswith("/extra/nequip_version") for name in names) and is_torchscript_archive(path)


def load_deployed_model(
    path: str | os.PathLike[str], device: str = "cpu", data: bytes | None = None
) -> tuple[Any, dict[str, str]]:
    """``torch.jit.load`` a deployed model and its metadata; return ``(module, metadata)`` (module in eval mode).

    With ``data`` (the file's bytes, already read and hashed by the caller) exactly those bytes are loaded and
    ``path`` only names the file in messages.

    Raises
    ------
    NequIPFormatError
        If the file is missing, a folder, not a zip archive, truncated, or not TorchScript.
    """
    import torch

    path = Path(path)
    if data is None:
        if not path.exists():
            raise NequIPFormatError(f"{path} does not exist")
        if not path.is_file():
            raise NequIPFormatError(f"{path} is not a file (a folder?); give the deployed .pth file")
        data = path.read_bytes()
    if not _zip_names(io.BytesIO(data)):
        raise NequIPFormatError(f"{path} is not a zip archive (a text file, or a truncated download?)")
    if not is_torchscript_archive(io.BytesIO(data)):
        raise NequIPFormatError(
            f"{path} is a zip archive but not TorchScript (a pickled torch.save file, such as a MACE .model?)"
        )
    extra = dict.fromkeys(NEQUIP_METADATA_KEYS, "")
    try:
        module = torch.jit.load(io.BytesIO(data), map_location=device, _extra_files=extra)
    except Exception as exc:  # corrupt archive, unknown ops, ...
        raise NequIPFormatError(f"torch.jit.load failed on {path}: {type(exc).__name__}: {exc}") from exc
    metadata = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)).strip() for k, v in extra.items()}
    return module.eval(), metadata


def _ase_neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, ...]:
    i, j, shifts = primitive_neighbor_list("ijS", pbc, cell, positions, cutoff, self_interaction=False)
    return i, j, shifts


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: Sequence[bool], cutoff: float, backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full neighbour list within ``cutoff`` (Å), periodic images included.

    Returns ``(i, j, S)``: every ordered pair with :math:`|\\mathbf x_j - \\mathbf x_i + \\mathbf S\\cdot
    \\mathbf H| < r_c`, both directions, self-images included when the cell is shorter than the cutoff.
    ``backend``: ``'vesin'``, ``'ase'`` or ``'auto'`` (vesin for fully periodic or fully open systems when
    installed, else ASE).
    """
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    use_vesin = backend == "vesin"
    if backend == "auto" and (pbc.all() or not pbc.any()):
        try:
            import vesin

            use_vesin = True
        except ImportError:
            use_vesin = False
    if use_vesin:
        import vesin

        box = cell if pbc.all() else np.zeros((3, 3))
        i, j, shifts = vesin.NeighborList(cutoff=float(cutoff), full_list=True).compute(
            points=positions, box=box, periodic=bool(pbc.all()), quantities="ijS"
        )
        return np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64), np.asarray(shifts, dtype=np.int64)
    if backend not in ("auto", "ase"):
        raise ValueError(f"unknown neighbour-list backend {backend!r}; use 'vesin', 'ase' or 'auto'")
    i, j, shifts = _ase_neighbor_list(positions, cell, pbc, float(cutoff))
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)


def build_nequip_input(
    atoms: Atoms,
    type_names: Sequence[str],
    r_max: float,
    dtype: Any = None,
    device: str = "cpu",
    backend: str = "auto",
) -> dict[str, Any]:
    """The input dict of a deployed NequIP model for ``atoms`` (see the module docstring)."""
    import torch

    dtype = dtype or torch.float32
    index = {name: k for k, name in enumerate(type_names)}
    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(index))
    if missing:
        raise ValueError(f"element(s) {', '.join(missing)} not among the model's species {', '.join(type_names)}")
    i, j, shifts = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, r_max, backend)
    return {
        "pos": torch.tensor(atoms.positions, dtype=dtype, device=device),
        "edge_index": torch.from_numpy(np.stack([i, j])).to(device),
        "cell": torch.tensor(atoms.cell.array, dtype=dtype, device=device).view(1, 3, 3),
        "edge_cell_shift": torch.tensor(shifts, dtype=dtype, device=device),
        "atom_types": torch.tensor([index[s] for s in symbols], dtype=torch.long, device=device).view(-1, 1),
        "pbc": torch.tensor(np.asarray(atoms.pbc, dtype=bool), device=device).view(1, 3),
    }


class NequIPCalculator(Calculator):
    """ASE calculator running a deployed (TorchScript) NequIP/Allegro model.

    Parameters
    ----------
    model
        The TorchScript module (from :func:`load_deployed_model`).
    type_names
        The model's species in type-index order (``type_names`` metadata), e.g. ``['O', 'H', 'Li', 'Cl']``.
    r_max
        Neighbour-list cutoff (Å), the model's ``r_max``.
    device
        Torch device of the module.
    dtype
        ``'float32'`` (the precision NequIP models are trained in) or ``'float64'`` (the module is converted).
    neighbor_backend
        ``'auto'``, ``'vesin'`` or ``'ase'`` (see :func:`neighbor_list`).
    has_stress
        Whether the model outputs ``stress``; only then is ``'stress'`` an implemented property.
    """

    def __init__(
        self,
        model: Any,
        type_names: Sequence[str],
        r_max: float,
        device: str = "cpu",
        dtype: str = "float32",
        neighbor_backend: str = "auto",
        has_stress: bool = False,
        **kwargs: Any,
    ) -> None:
        import torch

        super().__init__(**kwargs)
        self.implemented_properties = ["energy", "free_energy", "energies", "forces"] + (
            ["stress"] if has_stress else []
        )
        self.torch_dtype = torch.float64 if dtype == "float64" else torch.float32
        self.model = model.to(device=device, dtype=self.torch_dtype).eval()
        self.type_names = list(type_names)
        self.r_max = float(r_max)
        self.device = device
        self.neighbor_backend = neighbor_backend
        self.has_stress = has_stress

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] | None = None,
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        properties = list(properties or ["energy"])
        if "stress" in properties and not self.has_stress:
            raise PropertyNotImplementedError(
                "this deployed NequIP model has no stress output (deployed without StressForceOutput): it gives "
                "energy and forces only; use NVT, or a model deployed with stress, for NPT"
            )
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None
        data = build_nequip_input(
            self.atoms, self.type_names, self.r_max, self.torch_dtype, self.device, self.neighbor_backend
        )
        out = self.model(data)
        energy = float(out["total_energy"].detach().double().sum().cpu())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].detach().double().cpu().numpy().reshape(len(self.atoms), 3),
        }
        if "atomic_energy" in out:
            self.results["energies"] = out["atomic_energy"].detach().double().cpu().numpy().reshape(-1)
        if self.has_stress:
            if "stress" not in out:
                raise PropertyNotImplementedError("the model was expected to output 'stress' but did not")
            stress = out["stress"].detach().double().cpu().numpy().reshape(3, 3)
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
