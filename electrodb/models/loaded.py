"""A loaded model: what exactly was loaded (:class:`ModelIdentity`) and its calculators (:class:`LoadedModel`).

Also the readers that turn a model file's verified bytes back into a module: :func:`load_mace_module` unpickles a
MACE file (``torch.load(weights_only=False)``: only the bytes that were hashed), :func:`load_nequip_module`
``torch.jit.load``-s a NequIP/Allegro deployment. A :class:`LoadedModel` re-reads its file (checking its sha256)
for every calculator, so a file altered after :func:`electrodb.models.loader.load_model` identified it is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickletools
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# torch >= 2.6 loads with weights_only=True by default, which cannot unpickle MACE models (and e3nn 0.4.4's
# constants); MACE files are full pickled modules, so loading them needs the old behaviour.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

from pydantic import BaseModel, Field

from electrodb.models.files import ModelError, read_verified
from electrodb.models.nequip import NequIPCalculator, NequIPFormatError, load_deployed_model, looks_like_nequip
from electrodb.models.reference import SEVENNET_NAMES, Dtype, ModelKind, ModelRef
from electrodb.models.trust import check_trusted

# torch, mace, chgnet and sevenn are imported inside the functions that need them: they are heavy (chgnet and
# sevenn optional), and mace must be imported before e3nn (it sets up the weights-only loading of e3nn's constants).

__all__ = [
    "NEQUIP_FIX",
    "LoadedModel",
    "ModelIdentity",
    "load_mace_module",
    "load_nequip_module",
    "screen_pickle",
]


class ModelIdentity(BaseModel):
    """What exactly was loaded: stored with every result computed by a model.

    Attributes
    ----------
    model_id : str
        ``'sha256:<hex>'`` of the model file, or ``'name:<name>@<package>==<version>'`` for packaged models.
    kind, name : str
        As in :class:`ModelRef`.
    path : str or None
        Absolute path of the model file (file-based models).
    package_versions : dict
        Versions of ``mace-torch``, ``torch``, ``e3nn``, ``chgnet`` (those installed).
    elements : list of str or None
        Chemical symbols the model supports, in atomic-number order (None when unknown).
    r_max : float or None
        Cutoff radius of the model (Å).
    dtype : str
        Precision used by the calculator.
    n_parameters : int or None
        Number of model parameters.
    elements_in_type_order : list of str or None
        ``'nequip'``: the species in the model's type-index order (``elements`` is sorted by Z).
    outputs : list of str
        ``'nequip'``: what the calculator provides, ``['energy', 'forces']`` plus ``'stress'`` when the model
        was deployed with a stress output.
    metadata : dict
        ``'nequip'``: the deployment's metadata (``nequip_version``, ``e3nn_version``, ``torch_version``, ...,
        without the training ``config``).
    """

    model_id: str
    kind: ModelKind
    name: str
    path: str | None = None
    package_versions: dict[str, str] = Field(default_factory=dict)
    elements: list[str] | None = None
    r_max: float | None = None
    dtype: Dtype = "float32"
    n_parameters: int | None = None
    elements_in_type_order: list[str] | None = None
    outputs: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)


def load_mace_module(
    path: Path, map_location: str = "cpu", expected_id: str | None = None, data: bytes | None = None
) -> Any:
    """Unpickle a MACE module from the bytes of ``path`` (checked against ``expected_id`` when given).

    MACE files are pickles (``weights_only=False``), which can run code: only the bytes that were hashed are
    unpickled, so what runs is what the identity names, and only when that sha256 is trusted
    (:mod:`electrodb.models.trust`: shipped, trained here, or registered with ``electrodb model register PATH
    --trust``). Every failure becomes a :class:`ModelError`.
    """
    if data is None:
        data, digest = read_verified(path, expected_id)
    else:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    if data[:2] == b"PK" and looks_like_nequip(path):
        raise ModelError(f"{path} is a NequIP TorchScript deployment, not a MACE file: use 'nequip:{path}'")
    hint = "is it a MACE .model file saved with torch.save?"
    problem = screen_pickle(data)  # reads the archive and the pickle's opcodes; executes nothing
    if problem:
        raise ModelError(f"could not load MACE model from {path}: {problem}; {hint}")
    check_trusted(path, digest)  # before anything unpickles the bytes
    import mace  # noqa: F401  (must precede e3nn: sets up weights-only loading)
    import torch

    try:
        model = torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)
    except Exception as exc:  # pickle, zip, EOF, torch errors: all mean the same for the user
        raise ModelError(f"could not load MACE model from {path}: {type(exc).__name__}: {exc}; {hint}") from exc
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "atomic_numbers"):
        raise ModelError(
            f"could not load MACE model from {path}: it holds a {type(model).__name__}, not a MACE module; {hint}"
            " (a TorchScript NequIP/Allegro file without metadata loads as 'nequip:PATH?species=...&r_max=...')"
        )
    return model


def screen_pickle(data: bytes) -> str | None:
    """Why ``data`` cannot be a pickled MACE module, judged without executing anything; None when it may be.

    Reads the ``torch.save`` zip archive and walks the opcodes of its ``data.pkl`` (:func:`pickletools.genops`,
    which decodes and runs nothing): a damaged archive, a TorchScript file, or a pickle that names no ``mace``
    class is refused before trust is even asked for. A legacy (non-zip) ``torch.save`` pickle passes unread.
    """
    if data[:2] != b"PK":
        return None if data[:1] == b"\x80" else "it is not a file written by torch.save"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
                return (
                    "it is TorchScript, not a pickled MACE module (a TorchScript NequIP/Allegro file without "
                    "metadata loads as 'nequip:PATH?species=...&r_max=...')"
                )
            pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickles:
                return "its archive holds no data.pkl"
            strings = {arg for _, arg, _ in pickletools.genops(archive.read(pickles[0])) if isinstance(arg, str)}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as exc:
        return f"its archive is damaged or truncated ({type(exc).__name__}: {exc})"
    if not any(s == "mace" or s.startswith("mace.") for s in strings):
        return "it holds no MACE module (its pickle names no mace class)"
    return None


NEQUIP_FIX = (
    "give the .pth written by nequip-deploy (a TorchScript file), e.g. "
    "'nequip:/path/deployed.pth?species=O,H,Li,Cl&r_max=5'"
)


def load_nequip_module(path: Path, device: str, expected_id: str | None = None) -> tuple[Any, dict[str, str], str]:
    """``torch.jit.load`` a deployed NequIP model from its checked bytes: ``(module, metadata, sha256 id)``."""
    if not path.exists():
        raise ModelError(f"NequIP model file {path} does not exist; {NEQUIP_FIX}")
    if not path.is_file():
        raise ModelError(f"NequIP model path {path} is not a file (a folder?); {NEQUIP_FIX}")
    data, digest = read_verified(path, expected_id)
    try:  # load exactly the bytes that were hashed
        module, metadata = load_deployed_model(path, device=device, data=data)
    except NequIPFormatError as exc:
        raise ModelError(f"{path} is not a deployed NequIP/Allegro model: {exc}; {NEQUIP_FIX}") from exc
    return module, metadata, digest


class LoadedModel:
    """A model ready to use: its :attr:`identity`, an ASE :meth:`calculator`, a :meth:`torch_model`.

    Create with :func:`electrodb.models.loader.load_model`. :attr:`module` is the loaded module where the model
    keeps one in memory (CHGNet, NequIP), else None (MACE files are re-read for every calculator).
    """

    def __init__(self, ref: ModelRef, identity: ModelIdentity, module: Any = None) -> None:
        self.ref = ref
        self.identity = identity
        self.module = module

    def __repr__(self) -> str:
        return f"LoadedModel({self.identity.name!r}, {self.identity.model_id[:19]}..., {self.ref.dtype})"

    @property
    def device(self) -> str:
        """The torch device the model runs on (``'auto'`` resolved)."""
        return self.ref.resolved_device

    @property
    def is_mace(self) -> bool:
        """Whether the model is a MACE file or foundation model."""
        return self.identity.kind in ("mace_file", "mace_foundation")

    def calculator(self, **kwargs: Any) -> Any:
        """A fresh ASE calculator (``MACECalculator``, ``CHGNetCalculator`` or ``SevenNetCalculator``).

        Extra keyword arguments go to the calculator's constructor.
        """
        if self.is_mace:
            from mace.calculators import MACECalculator

            # Unpickle exactly the bytes load_model hashed (refused if the file changed since).
            module = load_mace_module(
                Path(self.identity.path or ""), map_location=self.device, expected_id=self.identity.model_id
            )
            try:
                return MACECalculator(models=module, device=self.device, default_dtype=self.ref.dtype, **kwargs)
            except Exception as exc:
                raise ModelError(f"could not build a MACE calculator from {self.identity.path}: {exc}") from exc
        if self.identity.kind == "nequip":
            return self._nequip_calculator(**kwargs)
        if self.identity.kind == "chgnet":
            from chgnet.model.dynamics import CHGNetCalculator

            return CHGNetCalculator(model=self.module, use_device=self.device, **kwargs)
        from sevenn.sevennet_calculator import SevenNetCalculator

        model = SEVENNET_NAMES.get(self.ref.name, self.ref.name)
        return SevenNetCalculator(model=model, device=self.device, **kwargs)

    def torch_model(self) -> Any:
        """A freshly loaded ``torch.nn.Module`` (MACE only) on :attr:`device` in the requested dtype.

        For torch-sim: ``MaceModel(model=loaded.torch_model(), dtype=torch.float32)``.
        """
        if not self.is_mace:
            raise ModelError(f"torch_model() is only available for MACE models, not {self.identity.kind}")
        import torch

        module = load_mace_module(
            Path(self.identity.path or ""), map_location=self.device, expected_id=self.identity.model_id
        )
        dtype = torch.float64 if self.ref.dtype == "float64" else torch.float32
        return module.to(device=self.device, dtype=dtype).eval()

    def _nequip_calculator(self, **kwargs: Any) -> Any:
        module = self.module
        if module is None:  # loaded once by load_model; reload (checking the bytes) if it was dropped
            module = load_nequip_module(Path(self.identity.path or ""), self.device, self.identity.model_id)[0]
        options = {
            "type_names": self.identity.elements_in_type_order or self.identity.elements,
            "r_max": self.identity.r_max,
            "device": self.device,
            "dtype": self.ref.dtype,
            "has_stress": "stress" in self.identity.outputs,
        }
        return NequIPCalculator(module, **{**options, **kwargs})

    def check_elements(self, symbols: Iterable[str]) -> None:
        """Raise :class:`ModelError` if any of ``symbols`` is not supported by the model.

        Does nothing when the model's element list is unknown.
        """
        supported = self.identity.elements
        if supported is None:
            return
        wanted = set(symbols)
        missing = sorted(wanted - set(supported))
        if missing:
            raise ModelError(
                f"model {self.identity.name!r} ({self.identity.model_id[:19]}...) does not support "
                f"element(s) "
                f"{', '.join(missing)}; it supports {', '.join(supported)}"
            )
