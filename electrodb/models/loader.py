"""Model registry: parse model references, resolve them to files, load them with a stable identity.

A *model reference* is a short string naming the interatomic potential that drives a simulation:

- a path to a MACE model file (``*.model``, or any existing file) → kind ``'mace_file'``;
- a MACE foundation model, ``'mace-mp-0:small'``, ``'mace-off:medium'``, ``'mace-mpa-0:medium'``, ... →
  kind ``'mace_foundation'``, resolved from a local cache folder (nothing is ever downloaded);
- ``'chgnet'``, ``'chgnet:r2scan'``, ``'chgnet:0.3.0'`` → kind ``'chgnet'`` (weights ship with the wheel);
- ``'sevennet-0'`` → kind ``'sevennet'`` (needs the optional ``sevenn`` package);
- ``'nequip:/path/model.pth'`` → kind ``'nequip'``: a NequIP or Allegro model deployed as TorchScript
  (``nequip-deploy``), run by :class:`electrodb.models.nequip.NequIPCalculator`. Species and cutoff come
  from the file's metadata (``type_names``, ``r_max``); for a TorchScript file without them give them in the
  reference: ``'nequip:/path/model.pth?species=O,H,Li,Cl&r_max=5'`` (species in the model's type-index order,
  r_max in Å; when the file has metadata too, the two must agree). A bare path whose file is a NequIP
  deployment (detected from its ``extra/nequip_version`` entry, without loading it) is a ``'nequip'`` model too.

:func:`load_model` returns a :class:`LoadedModel` whose :class:`ModelIdentity` records what exactly was loaded
(``'sha256:<hex>'`` of the file bytes for file-based models), the supported elements and the cutoff radius
(Å). Every failure is reported as a :class:`ModelError` with an actionable message.

File safety: TorchScript deployments load with :func:`torch.jit.load`, which runs no pickled Python code.
MACE ``.model`` files are pickled Python objects (``torch.load(weights_only=False)``) and can run code when
loaded: ElectroDB loads only the file the reference names (or a stored model whose sha256 it has checked, see
:func:`electrodb.flows.training.materialize_model`), hashes the bytes it reads and unpickles exactly those
bytes, and refuses a file whose bytes changed since :func:`load_model` identified it. Load MACE files only
from sources you trust.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

# torch >= 2.6 loads with weights_only=True by default, which cannot unpickle MACE models (and e3nn 0.4.4's
# constants); MACE files are full pickled modules, so loading them needs the old behaviour.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

from pydantic import BaseModel, Field

from electrodb.models.files import (
    _DEFAULT_SIZE,
    _FAMILY_ALIASES,
    FOUNDATION_MODELS,
    ModelError,
    _package_versions,
    _symbols,
    _version,
    default_cache_dir,
    file_sha256,
    foundation_file,
    read_verified,
)

__all__ = [
    "FOUNDATION_MODELS",
    "LoadedModel",
    "ModelError",
    "ModelIdentity",
    "ModelRef",
    "default_cache_dir",
    "file_sha256",
    "load_model",
    "read_verified",
    "resolve_foundation_path",
]

ModelKind = Literal["mace_file", "mace_foundation", "chgnet", "sevennet", "nequip"]
Dtype = Literal["float32", "float64"]

_CHGNET_NAMES = ("0.3.0", "0.2.0", "r2scan")
_SEVENNET_NAMES = {"sevennet-0": "7net-0", "7net-0": "7net-0", "sevennet": "7net-0"}
_MACE_SUFFIXES = (".model", ".pt", ".pth")


def _resolve_device(device: str) -> str:
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
        if path.is_file() and _looks_like_nequip(path):
            return cls(kind="nequip", name=path.name, path=str(path), dtype=dtype, device=device)
        if low.endswith(_MACE_SUFFIXES) or path.is_file() or os.sep in text:
            return cls(kind="mace_file", name=path.name, path=str(path), dtype=dtype, device=device)
        family, _, variant = low.partition(":")
        if family == "chgnet":
            variant = variant or "0.3.0"
            if variant not in _CHGNET_NAMES:
                raise ModelError(f"unknown CHGNet model {variant!r}; known: {', '.join(_CHGNET_NAMES)}")
            return cls(kind="chgnet", name=f"chgnet:{variant}", dtype=dtype, device=device)
        if family in _SEVENNET_NAMES or family in ("7net", "sevenn"):
            name = variant or family
            return cls(
                kind="sevennet",
                name="sevennet-0" if name in _SEVENNET_NAMES else name,
                dtype=dtype,
                device=device,
            )
        family = _FAMILY_ALIASES.get(family, family)
        if family.startswith("mace-"):
            variant = variant or _DEFAULT_SIZE.get(family, "medium")
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


def _looks_like_nequip(path: Path) -> bool:
    from electrodb.models.nequip import looks_like_nequip

    return looks_like_nequip(path)


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
        from ase.data import chemical_symbols

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


def _load_mace_module(
    path: Path, map_location: str = "cpu", expected_id: str | None = None, data: bytes | None = None
) -> Any:
    """Unpickle a MACE module from the bytes of ``path`` (checked against ``expected_id`` when given).

    MACE files are pickles (``weights_only=False``), which can run code: only the bytes that were hashed are
    unpickled, so what runs is what the identity names. Every failure becomes a :class:`ModelError`.
    """
    import mace  # noqa: F401  (must precede e3nn: sets up weights-only loading)
    import torch

    if data is None:
        data, _ = read_verified(path, expected_id)
    hint = "is it a MACE .model file saved with torch.save?"
    if data[:2] == b"PK" and _looks_like_nequip(path):
        raise ModelError(f"{path} is a NequIP TorchScript deployment, not a MACE file: use 'nequip:{path}'")
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


class LoadedModel:
    """A model ready to use: its :attr:`identity`, an ASE :meth:`calculator`, a :meth:`torch_model`.

    Create with :func:`load_model`.
    """

    def __init__(self, ref: ModelRef, identity: ModelIdentity, module: Any = None) -> None:
        self.ref = ref
        self.identity = identity
        self._module = module

    def __repr__(self) -> str:
        return f"LoadedModel({self.identity.name!r}, {self.identity.model_id[:19]}..., {self.ref.dtype})"

    @property
    def device(self) -> str:
        return self.ref.resolved_device

    @property
    def is_mace(self) -> bool:
        return self.identity.kind in ("mace_file", "mace_foundation")

    def calculator(self, **kwargs: Any) -> Any:
        """A fresh ASE calculator (``MACECalculator``, ``CHGNetCalculator`` or ``SevenNetCalculator``).

        Extra keyword arguments go to the calculator's constructor.
        """
        if self.is_mace:
            from mace.calculators import MACECalculator

            # Unpickle exactly the bytes load_model hashed (refused if the file changed since).
            module = _load_mace_module(
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

            return CHGNetCalculator(model=self._module, use_device=self.device, **kwargs)
        from sevenn.sevennet_calculator import SevenNetCalculator

        model = _SEVENNET_NAMES.get(self.ref.name, self.ref.name)
        return SevenNetCalculator(model=model, device=self.device, **kwargs)

    def torch_model(self) -> Any:
        """A freshly loaded ``torch.nn.Module`` (MACE only) on :attr:`device` in the requested dtype.

        For torch-sim: ``MaceModel(model=loaded.torch_model(), dtype=torch.float32)``.
        """
        if not self.is_mace:
            raise ModelError(f"torch_model() is only available for MACE models, not {self.identity.kind}")
        import torch

        module = _load_mace_module(
            Path(self.identity.path or ""), map_location=self.device, expected_id=self.identity.model_id
        )
        dtype = torch.float64 if self.ref.dtype == "float64" else torch.float32
        return module.to(device=self.device, dtype=dtype).eval()

    def _nequip_calculator(self, **kwargs: Any) -> Any:
        from electrodb.models.nequip import NequIPCalculator

        module = self._module
        if module is None:  # loaded once by load_model; reload (checking the bytes) if it was dropped
            module = _load_nequip_module(Path(self.identity.path or ""), self.device, self.identity.model_id)[0]
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


def _load_mace(ref: ModelRef, path: Path, expected_id: str | None = None) -> LoadedModel:
    if not path.exists():
        raise ModelError(f"MACE model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"MACE model path {path} is not a file")
    data, digest = read_verified(path, expected_id)
    module = _load_mace_module(path, data=data)
    r_max = getattr(module, "r_max", None)
    identity = ModelIdentity(
        model_id=digest,
        kind=ref.kind,
        name=ref.name,
        path=str(path.resolve()),
        package_versions=_package_versions("mace-torch", "torch", "e3nn"),
        elements=_symbols(module.atomic_numbers.tolist()),
        r_max=float(r_max) if r_max is not None else None,
        dtype=ref.dtype,
        n_parameters=int(sum(p.numel() for p in module.parameters())),
    )
    # The calculator reloads from the file; keep nothing heavy in memory.
    return LoadedModel(ref, identity)


_NEQUIP_FIX = (
    "give the .pth written by nequip-deploy (a TorchScript file), e.g. "
    "'nequip:/path/deployed.pth?species=O,H,Li,Cl&r_max=5'"
)


def _load_nequip_module(path: Path, device: str, expected_id: str | None = None) -> tuple[Any, dict[str, str], str]:
    """``torch.jit.load`` a deployed NequIP model from its checked bytes: ``(module, metadata, sha256 id)``."""
    from electrodb.models.nequip import NequIPFormatError, load_deployed_model

    if not path.exists():
        raise ModelError(f"NequIP model file {path} does not exist; {_NEQUIP_FIX}")
    if not path.is_file():
        raise ModelError(f"NequIP model path {path} is not a file (a folder?); {_NEQUIP_FIX}")
    data, digest = read_verified(path, expected_id)
    try:  # load exactly the bytes that were hashed
        module, metadata = load_deployed_model(path, device=device, data=data)
    except NequIPFormatError as exc:
        raise ModelError(f"{path} is not a deployed NequIP/Allegro model: {exc}; {_NEQUIP_FIX}") from exc
    return module, metadata, digest


def _load_nequip(ref: ModelRef, path: Path, expected_id: str | None = None) -> LoadedModel:
    from ase.data import atomic_numbers

    device = ref.resolved_device
    module, metadata, digest = _load_nequip_module(path, device, expected_id)
    file_species = metadata.get("type_names", "").split() or None
    file_r_max = float(metadata["r_max"]) if metadata.get("r_max") else None
    for label, given, found in (("species", ref.species, file_species), ("r_max", ref.r_max, file_r_max)):
        if given is not None and found is not None and given != found:
            raise ModelError(
                f"{label}={given} in the reference disagrees with the file's metadata {label}={found} ({path}); "
                f"drop it from the reference or fix it"
            )
    species = file_species or ref.species
    r_max = file_r_max if file_r_max is not None else ref.r_max
    if species is None or r_max is None:
        what = " and ".join(n for n, v in (("species", species), ("r_max", r_max)) if v is None)
        raise ModelError(
            f"{path} is TorchScript without NequIP metadata for {what}: give it in the reference, e.g. "
            f"'nequip:{path}?species=O,H,Li,Cl&r_max=5' (species in the model's type-index order, r_max in Å)"
        )
    bad = [s for s in species if s not in atomic_numbers]
    if bad:
        raise ModelError(
            f"{path}: type names {', '.join(bad)} are not chemical symbols; name the species with ?species="
        )
    n_species = metadata.get("n_species")
    if n_species and n_species.isdigit() and int(n_species) != len(species):
        raise ModelError(f"{path}: metadata n_species={n_species} but {len(species)} type names {species}")
    has_stress = "StressForceOutput" in metadata.get("config", "")
    identity = ModelIdentity(
        model_id=digest,
        kind="nequip",
        name=ref.name,
        path=str(path.resolve()),
        package_versions=_package_versions("torch", "vesin"),
        elements=sorted(species, key=lambda s: atomic_numbers[s]),
        r_max=float(r_max),
        dtype=ref.dtype,
        n_parameters=int(sum(p.numel() for p in module.parameters())),
        elements_in_type_order=list(species),
        outputs=["energy", "forces"] + (["stress"] if has_stress else []),
        metadata={k: v for k, v in metadata.items() if k != "config" and v},
    )
    return LoadedModel(ref, identity, module=module)


def _load_chgnet(ref: ModelRef) -> LoadedModel:
    try:
        from chgnet.model import CHGNet
    except ImportError as exc:
        raise ModelError(f"{ref.name} needs the 'chgnet' package: pip install chgnet ({exc})") from exc
    variant = ref.name.split(":", 1)[1]
    try:
        model = CHGNet.load(model_name=variant, use_device=ref.resolved_device, verbose=False)
    except Exception as exc:
        raise ModelError(f"could not load CHGNet model {variant!r}: {exc}") from exc
    version = _version("chgnet") or "unknown"
    cutoff = getattr(getattr(model, "graph_converter", None), "atom_graph_cutoff", None)
    from ase.data import chemical_symbols

    identity = ModelIdentity(
        model_id=f"name:{ref.name}@chgnet=={version}",
        kind="chgnet",
        name=ref.name,
        package_versions=_package_versions("chgnet", "torch"),
        elements=chemical_symbols[1:95],  # CHGNet embeds Z = 1..94
        r_max=float(cutoff) if cutoff is not None else None,
        dtype=ref.dtype,
        n_parameters=int(sum(p.numel() for p in model.parameters())),
    )
    return LoadedModel(ref, identity, module=model)


def _load_sevennet(ref: ModelRef) -> LoadedModel:
    try:
        import sevenn  # noqa: F401
    except ImportError as exc:
        raise ModelError(
            f"{ref.name} needs the 'sevenn' package (only sevenn 0.10.x works with MACE's e3nn 0.4.4): {exc}"
        ) from exc
    version = _version("sevenn") or "unknown"
    identity = ModelIdentity(
        model_id=f"name:{ref.name}@sevenn=={version}",
        kind="sevennet",
        name=ref.name,
        package_versions=_package_versions("sevenn", "torch", "e3nn"),
        dtype=ref.dtype,
    )
    return LoadedModel(ref, identity)


def load_model(
    ref: str | os.PathLike[str] | ModelRef,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    dtype: Dtype | None = None,
    device: str | None = None,
    expected_id: str | None = None,
) -> LoadedModel:
    """Load the model named by ``ref`` (a :class:`ModelRef` or a string for :meth:`ModelRef.parse`).

    Parameters
    ----------
    ref
        Model reference.
    cache_dir
        Folder holding foundation model files (default ``$ELECTRODB_MODEL_CACHE`` or ``~/.cache/mace``).
    dtype, device
        Override the reference's precision / device.
    expected_id
        ``'sha256:<hex>'`` the model file must have (file-based models): a file whose bytes differ is
        refused before anything is unpickled.

    Raises
    ------
    ModelError
        Unknown reference, missing or corrupt file, hash mismatch, missing optional package.
    """
    parsed = ModelRef.parse(ref)
    updates = {k: v for k, v in {"dtype": dtype, "device": device}.items() if v is not None}
    if updates:
        parsed = parsed.model_copy(update=updates)
    if parsed.kind == "mace_file":
        return _load_mace(parsed, Path(parsed.path or parsed.name).expanduser(), expected_id)
    if parsed.kind == "nequip":
        return _load_nequip(parsed, Path(parsed.path or parsed.name).expanduser(), expected_id)
    if parsed.kind == "mace_foundation":
        return _load_mace(parsed, resolve_foundation_path(parsed.name, cache_dir), expected_id)
    if parsed.kind == "chgnet":
        return _load_chgnet(parsed)
    return _load_sevennet(parsed)


def get_nve_drift(stores: Any, model_id: str) -> dict[str, Any] | None:
    """The NVE energy-drift record of a model (``models`` store, field ``nve_drift``), or None if not measured."""
    doc = stores.models.query_one({"model_id": model_id}, properties=["model_id", "nve_drift"])
    return doc.get("nve_drift") if doc else None


def record_nve_drift(
    stores: Any, model_id: str, drift: dict[str, Any], identity: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Store a model's NVE energy drift as the ``nve_drift`` field of its document in the ``models`` store.

    ``drift`` holds at least ``drift_meV_per_atom_ps`` (see :class:`electrodb.md.dynamics.NVEDriftResult`). The
    other fields of an existing model document are kept; a model without a document (a MACE file or a
    foundation model never trained here) gets one from ``identity`` (:class:`ModelIdentity` fields). Returns the
    stored document.
    """
    from datetime import datetime, timezone

    existing = stores.models.query_one({"model_id": model_id}) or {}
    existing.pop("_id", None)
    base = {k: v for k, v in (identity or {}).items() if k not in existing}
    doc = {
        **base,
        **existing,
        "model_id": model_id,
        "nve_drift": dict(drift),
        "last_updated": datetime.now(timezone.utc),
    }
    stores.models.update([doc], key="model_id")
    return doc
