"""Model registry: parse model references, resolve them to files, load them with a stable identity.

A *model reference* is a short string naming the interatomic potential that drives a simulation:

- a path to a MACE model file (``*.model``, or any existing file) → kind ``'mace_file'``;
- a MACE foundation model, ``'mace-mp-0:small'``, ``'mace-off:medium'``, ``'mace-mpa-0:medium'``, ... →
  kind ``'mace_foundation'``, resolved from a local cache folder (nothing is ever downloaded);
- ``'chgnet'``, ``'chgnet:r2scan'``, ``'chgnet:0.3.0'`` → kind ``'chgnet'`` (weights ship with the wheel);
- ``'sevennet-0'`` → kind ``'sevennet'`` (needs the optional ``sevenn`` package).

:func:`load_model` returns a :class:`LoadedModel` whose :class:`ModelIdentity` records what exactly was loaded
(``'sha256:<hex>'`` of the file bytes for file-based models), the supported elements and the cutoff radius
(Å). Every failure is reported as a :class:`ModelError` with an actionable message.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

# torch >= 2.6 loads with weights_only=True by default, which cannot unpickle MACE models (and e3nn 0.4.4's
# constants); MACE files are full pickled modules, so loading them needs the old behaviour.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

from pydantic import BaseModel, Field

__all__ = [
    "FOUNDATION_MODELS",
    "LoadedModel",
    "ModelError",
    "ModelIdentity",
    "ModelRef",
    "default_cache_dir",
    "file_sha256",
    "load_model",
    "resolve_foundation_path",
]

ModelKind = Literal["mace_file", "mace_foundation", "chgnet", "sevennet"]
Dtype = Literal["float32", "float64"]

CACHE_ENV = "ELECTRODB_MODEL_CACHE"

_MP = "https://github.com/ACEsuit/mace-mp/releases/download"
_FOUND = "https://github.com/ACEsuit/mace-foundations/releases/download"
_OFF = "https://raw.githubusercontent.com/ACEsuit/mace-off/main/mace_off23"

#: Foundation MACE models: canonical name → download URL (as in ``mace.calculators.foundations_models``
#: of mace-torch 0.3.16). The expected local file name is the URL's basename.
FOUNDATION_MODELS: dict[str, str] = {
    "mace-mp-0:small": f"{_MP}/mace_mp_0/2023-12-10-mace-128-L0_energy_epoch-249.model",
    "mace-mp-0:medium": f"{_MP}/mace_mp_0/2023-12-03-mace-128-L1_epoch-199.model",
    "mace-mp-0:large": f"{_MP}/mace_mp_0/MACE_MPtrj_2022.9.model",
    "mace-mp-0b:small": f"{_MP}/mace_mp_0b/mace_agnesi_small.model",
    "mace-mp-0b:medium": f"{_MP}/mace_mp_0b/mace_agnesi_medium.model",
    "mace-mp-0b2:small": f"{_MP}/mace_mp_0b2/mace-small-density-agnesi-stress.model",
    "mace-mp-0b2:medium": f"{_MP}/mace_mp_0b2/mace-medium-density-agnesi-stress.model",
    "mace-mp-0b2:large": f"{_MP}/mace_mp_0b2/mace-large-density-agnesi-stress.model",
    "mace-mp-0b3:medium": f"{_MP}/mace_mp_0b3/mace-mp-0b3-medium.model",
    "mace-mpa-0:medium": f"{_MP}/mace_mpa_0/mace-mpa-0-medium.model",
    "mace-omat-0:small": f"{_MP}/mace_omat_0/mace-omat-0-small.model",
    "mace-omat-0:medium": f"{_MP}/mace_omat_0/mace-omat-0-medium.model",
    "mace-matpes-pbe-0:medium": f"{_FOUND}/mace_matpes_0/MACE-matpes-pbe-omat-ft.model",
    "mace-matpes-r2scan-0:medium": f"{_FOUND}/mace_matpes_0/MACE-matpes-r2scan-omat-ft.model",
    "mace-off:small": f"{_OFF}/MACE-OFF23_small.model",
    "mace-off:medium": f"{_OFF}/MACE-OFF23_medium.model",
    "mace-off:large": f"{_OFF}/MACE-OFF23_large.model",
}
_FAMILY_ALIASES = {"mace-mp": "mace-mp-0", "mace-off23": "mace-off", "mace-mpa": "mace-mpa-0"}
_DEFAULT_SIZE = {"mace-mp-0": "medium", "mace-off": "medium"}
_CHGNET_NAMES = ("0.3.0", "0.2.0", "r2scan")
_SEVENNET_NAMES = {"sevennet-0": "7net-0", "7net-0": "7net-0", "sevennet": "7net-0"}
_MACE_SUFFIXES = (".model", ".pt", ".pth")


class ModelError(RuntimeError):
    """A model reference cannot be parsed, found, loaded, or used for the requested elements."""


def default_cache_dir() -> Path:
    """Folder searched for foundation model files: ``$ELECTRODB_MODEL_CACHE`` or ``~/.cache/mace``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path("~/.cache/mace").expanduser()


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Return ``'sha256:<hex>'`` of the bytes of ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class ModelRef(BaseModel):
    """A parsed model reference.

    Attributes
    ----------
    kind : {'mace_file', 'mace_foundation', 'chgnet', 'sevennet'}
    name : str
        Canonical name: ``'mace-mp-0:small'``, ``'chgnet:r2scan'``, ``'sevennet-0'``, or the file name.
    path : str or None
        Model file for ``'mace_file'`` (as given; resolved at load time).
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
        path = Path(text).expanduser()
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
            f"name ({', '.join(sorted(FOUNDATION_MODELS))}), 'chgnet[:r2scan|0.3.0]' or 'sevennet-0'"
        )

    @property
    def resolved_device(self) -> str:
        """The torch device string (``'auto'`` resolved)."""
        return _resolve_device(self.device)

    def __str__(self) -> str:
        return self.path if self.kind == "mace_file" and self.path else self.name


def _candidate_names(url: str) -> list[str]:
    base = os.path.basename(url).split("?")[0]
    # mace's own downloader stores mace-mp files with only alphanumerics and '_' kept in the name.
    mangled = "".join(c for c in base if c.isalnum() or c == "_")
    return [base] if mangled == base else [base, mangled]


def resolve_foundation_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Locate the file of foundation model ``name`` (e.g. ``'mace-mp-0:small'``) without downloading.

    Searches ``cache_dir`` (default :func:`default_cache_dir`) for the URL's basename (and mace's mangled
    cache name) and, for ``'mace-mpa-0:medium'``, the copy bundled inside the mace package if present.

    Raises
    ------
    ModelError
        If no file is found; the message says which file to place where and where to get it.
    """
    ref = ModelRef.parse(name) if not isinstance(name, ModelRef) else name
    if ref.kind != "mace_foundation":
        raise ModelError(f"{name!r} is not a MACE foundation model name")
    url = FOUNDATION_MODELS[ref.name]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    candidates = [folder / n for n in _candidate_names(url)]
    if ref.name == "mace-mpa-0:medium":
        try:
            import mace.calculators as mc

            candidates.append(Path(mc.__file__).parent / "foundations_models" / "mace-mpa-0-medium.model")
        except ImportError:
            pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"foundation model {ref.name!r} is not available offline: place the file '{candidates[0].name}' at "
        f"{candidates[0]} (download it from {url} on a machine with internet access), or pass cache_dir= / "
        f"set {CACHE_ENV} to the folder that holds it"
    )


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


def _package_versions(*packages: str) -> dict[str, str]:
    out = {}
    for package in packages:
        version = _version(package)
        if version is not None:
            out[package] = version
    return out


def _symbols(numbers: Iterable[int]) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[int(z)] for z in sorted(int(z) for z in numbers)]


def _load_mace_module(path: Path, map_location: str = "cpu") -> Any:
    """``torch.load`` a pickled MACE module, turning every failure into a :class:`ModelError`."""
    import mace  # noqa: F401  (must precede e3nn: sets up weights-only loading)
    import torch

    hint = "is it a MACE .model file saved with torch.save?"
    try:
        model = torch.load(str(path), map_location=map_location, weights_only=False)
    except Exception as exc:  # pickle, zip, EOF, torch errors: all mean the same for the user
        raise ModelError(f"could not load MACE model from {path}: {type(exc).__name__}: {exc}; {hint}") from exc
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "atomic_numbers"):
        raise ModelError(
            f"could not load MACE model from {path}: it holds a {type(model).__name__}, not a MACE module; {hint}"
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

            try:
                return MACECalculator(
                    model_paths=self.identity.path,
                    device=self.device,
                    default_dtype=self.ref.dtype,
                    **kwargs,
                )
            except Exception as exc:
                raise ModelError(f"could not build a MACE calculator from {self.identity.path}: {exc}") from exc
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

        module = _load_mace_module(Path(self.identity.path or ""), map_location=self.device)
        dtype = torch.float64 if self.ref.dtype == "float64" else torch.float32
        return module.to(device=self.device, dtype=dtype).eval()

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


def _load_mace(ref: ModelRef, path: Path) -> LoadedModel:
    if not path.exists():
        raise ModelError(f"MACE model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"MACE model path {path} is not a file")
    module = _load_mace_module(path)
    r_max = getattr(module, "r_max", None)
    identity = ModelIdentity(
        model_id=file_sha256(path),
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

    Raises
    ------
    ModelError
        Unknown reference, missing or corrupt file, missing optional package.
    """
    parsed = ModelRef.parse(ref)
    updates = {k: v for k, v in {"dtype": dtype, "device": device}.items() if v is not None}
    if updates:
        parsed = parsed.model_copy(update=updates)
    if parsed.kind == "mace_file":
        return _load_mace(parsed, Path(parsed.path or parsed.name).expanduser())
    if parsed.kind == "mace_foundation":
        return _load_mace(parsed, resolve_foundation_path(parsed.name, cache_dir))
    if parsed.kind == "chgnet":
        return _load_chgnet(parsed)
    return _load_sevennet(parsed)
