"""Model references: the short string that names an interatomic potential, parsed into a :class:`ModelRef`.

The forms (a MACE file, a foundation name, ``'chgnet'``, ``'sevennet-0'``, ``'nequip:PATH?species=...&r_max=...'``)
are listed in :mod:`electrodb.models.loader`, which loads what a reference names. Parsing looks at a file only to
tell a NequIP deployment from a MACE file (:func:`electrodb.models.nequip.looks_like_nequip`, without loading it).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs

from ase.data import chemical_symbols
from pydantic import BaseModel

from electrodb.models.files import DEFAULT_SIZE, FAMILY_ALIASES, FOUNDATION_MODELS, ModelError, foundation_file
from electrodb.models.nequip import looks_like_nequip

# torch is imported only in _resolve_device (heavy; a reference is parsed without it).

__all__ = ["SEVENNET_NAMES", "Dtype", "ModelKind", "ModelRef", "resolve_foundation_path"]

ModelKind = Literal["mace_file", "mace_foundation", "chgnet", "sevennet", "nequip"]
Dtype = Literal["float32", "float64"]

_CHGNET_NAMES = ("0.3.0", "0.2.0", "r2scan")
#: Accepted SevenNet names → the model name ``sevenn`` knows.
SEVENNET_NAMES = {"sevennet-0": "7net-0", "7net-0": "7net-0", "sevennet": "7net-0"}
_MACE_SUFFIXES = (".model", ".pt", ".pth")


def _resolve_device(device: str) -> str:
    """``'auto'`` → ``'cuda'`` if available, else ``'cpu'``; any other device string unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class ModelRef(BaseModel):
    """A parsed model reference.

    Attributes
    ----------
    kind : {'mace_file', 'mace_foundation', 'chgnet', 'sevennet', 'nequip'}
    name : str
        Canonical name: ``'mace-mp-0:small'``, ``'chgnet:r2scan'``, ``'sevennet-0'``, or the file name.
    path : str or None
        Model file for ``'mace_file'`` and ``'nequip'`` (as given; resolved at load time).
    species : list of str or None
        ``'nequip'`` only: the model's species in type-index order, from ``?species=O,H,Li,Cl``.
    r_max : float or None
        ``'nequip'`` only: the cutoff (Å), from ``&r_max=5``.
    dtype : {'float32', 'float64'}
        Floating-point precision of the calculator (float32 for MD, float64 for relaxations).
    device : str
        ``'auto'`` (CUDA if available, else CPU), ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ...
    """

    kind: ModelKind
    name: str
    path: str | None = None
    dtype: Dtype = "float32"
    device: str = "auto"
    species: list[str] | None = None
    r_max: float | None = None

    @classmethod
    def parse(
        cls, spec: str | os.PathLike[str] | ModelRef, *, dtype: Dtype = "float32", device: str = "auto"
    ) -> ModelRef:
        """Parse a model reference string (see the module docstring); raise :class:`ModelError` if unknown."""
        if isinstance(spec, ModelRef):
            return spec
        text = str(spec).strip()
        if not text:
            raise ModelError("empty model reference")
        low = text.lower()
        if low.startswith("nequip:"):
            return _parse_nequip(cls, text[len("nequip:") :], dtype, device)
        path = Path(text).expanduser()
        if path.is_file() and looks_like_nequip(path):
            return cls(kind="nequip", name=path.name, path=str(path), dtype=dtype, device=device)
        if low.endswith(_MACE_SUFFIXES) or path.is_file() or os.sep in text:
            return cls(kind="mace_file", name=path.name, path=str(path), dtype=dtype, device=device)
        family, _, variant = low.partition(":")
        if family == "chgnet":
            variant = variant or "0.3.0"
            if variant not in _CHGNET_NAMES:
                raise ModelError(f"unknown CHGNet model {variant!r}; known: {', '.join(_CHGNET_NAMES)}")
            return cls(kind="chgnet", name=f"chgnet:{variant}", dtype=dtype, device=device)
        if family in SEVENNET_NAMES or family in ("7net", "sevenn"):
            name = variant or family
            return cls(
                kind="sevennet",
                name="sevennet-0" if name in SEVENNET_NAMES else name,
                dtype=dtype,
                device=device,
            )
        family = FAMILY_ALIASES.get(family, family)
        if family.startswith("mace-"):
            variant = variant or DEFAULT_SIZE.get(family, "medium")
            name = f"{family}:{variant}"
            if name not in FOUNDATION_MODELS:
                raise ModelError(
                    f"unknown MACE foundation model {text!r}; known: {', '.join(sorted(FOUNDATION_MODELS))}"
                )
            return cls(kind="mace_foundation", name=name, dtype=dtype, device=device)
        raise ModelError(
            f"cannot interpret model reference {text!r}: expected a path to a MACE .model file, a foundation "
            f"name ({', '.join(sorted(FOUNDATION_MODELS))}), 'chgnet[:r2scan|0.3.0]', 'sevennet-0' or "
            f"'nequip:/path/deployed.pth'"
        )

    @property
    def resolved_device(self) -> str:
        """The torch device string (``'auto'`` resolved)."""
        return _resolve_device(self.device)

    def __str__(self) -> str:
        if self.kind == "nequip":
            query = []
            if self.species:
                query.append(f"species={','.join(self.species)}")
            if self.r_max is not None:
                query.append(f"r_max={self.r_max:g}")
            return f"nequip:{self.path}" + (f"?{'&'.join(query)}" if query else "")
        return self.path if self.kind == "mace_file" and self.path else self.name


def _parse_nequip(cls: type[ModelRef], rest: str, dtype: Dtype, device: str) -> ModelRef:
    """``nequip:PATH[?species=A,B,...&r_max=R]`` → a ``'nequip'`` :class:`ModelRef`."""
    where, _, query = rest.partition("?")
    where = where.strip()
    if not where:
        raise ModelError("'nequip:' needs a file path: nequip:/path/deployed.pth[?species=O,H&r_max=5]")
    options = parse_qs(query, keep_blank_values=True, strict_parsing=False) if query else {}
    unknown = sorted(set(options) - {"species", "r_max"})
    if unknown:
        raise ModelError(
            f"unknown option(s) {', '.join(unknown)} in nequip reference {rest!r}; known: species=A,B,..., r_max=Å"
        )
    species = None
    if "species" in options:
        species = [s.strip() for s in options["species"][-1].split(",") if s.strip()]
        bad = [s for s in species if s not in chemical_symbols[1:]]
        if not species or bad or len(set(species)) != len(species):
            raise ModelError(
                f"species={options['species'][-1]!r} in {rest!r} must be distinct chemical symbols in the "
                f"model's type order, e.g. species=O,H,Li,Cl"
            )
    r_max = None
    if "r_max" in options:
        try:
            r_max = float(options["r_max"][-1])
        except ValueError:
            r_max = -1.0
        if not (r_max > 0 and math.isfinite(r_max)):
            raise ModelError(f"r_max={options['r_max'][-1]!r} in {rest!r} must be a positive number of Å")
    path = Path(where).expanduser()
    return cls(kind="nequip", name=path.name, path=str(path), dtype=dtype, device=device, species=species, r_max=r_max)


def resolve_foundation_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Locate the file of foundation model ``name`` (e.g. ``'mace-mp-0:small'``) without downloading.

    Raises
    ------
    ModelError
        If ``name`` is not a foundation model or no file is found; the message says which file to place where.
    """
    ref = ModelRef.parse(name) if not isinstance(name, ModelRef) else name
    if ref.kind != "mace_foundation":
        raise ModelError(f"{name!r} is not a MACE foundation model name")
    return foundation_file(ref.name, cache_dir)
