"""Model files on disk: identity by sha256, verified reads, and the offline foundation-model cache.

The lower layer of :mod:`electrodb.models.loader` (which re-exports these names): nothing here parses references or
loads a model, so both the registry and the loaders can use it without import cycles.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from ase.data import chemical_symbols

# mace is imported only where its bundled foundation model is looked for (foundation_file): it is heavy.

__all__ = [
    "CACHE_ENV",
    "DEFAULT_SIZE",
    "FAMILY_ALIASES",
    "FOUNDATION_MODELS",
    "ModelError",
    "default_cache_dir",
    "file_sha256",
    "foundation_file",
    "package_version",
    "package_versions",
    "read_verified",
    "sorted_symbols",
]

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
#: Short family names accepted in references → canonical family.
FAMILY_ALIASES = {"mace-mp": "mace-mp-0", "mace-off23": "mace-off", "mace-mpa": "mace-mpa-0"}
#: Size taken when a reference names only the family (``'mace-mp-0'`` → ``'mace-mp-0:medium'``).
DEFAULT_SIZE = {"mace-mp-0": "medium", "mace-off": "medium"}


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


def package_version(package: str) -> str | None:
    """The installed version of distribution ``package``, or None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _candidate_names(url: str) -> list[str]:
    base = os.path.basename(url).split("?")[0]
    # mace's own downloader stores mace-mp files with only alphanumerics and '_' kept in the name.
    mangled = "".join(c for c in base if c.isalnum() or c == "_")
    return [base] if mangled == base else [base, mangled]


def foundation_file(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The local file of the canonical foundation model ``name`` (a key of :data:`FOUNDATION_MODELS`), or raise.

    Searches ``cache_dir`` (default :func:`default_cache_dir`) for the URL's basename (and mace's mangled cache
    name) and, for ``'mace-mpa-0:medium'``, the copy bundled inside the mace package if present. Never downloads.
    """
    url = FOUNDATION_MODELS[name]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    candidates = [folder / n for n in _candidate_names(url)]
    if name == "mace-mpa-0:medium":
        try:
            import mace.calculators as mc

            candidates.append(Path(mc.__file__).parent / "foundations_models" / "mace-mpa-0-medium.model")
        except ImportError:
            pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"foundation model {name!r} is not available offline: place the file '{candidates[0].name}' at "
        f"{candidates[0]} (download it from {url} on a machine with internet access), or pass cache_dir= / "
        f"set {CACHE_ENV} to the folder that holds it"
    )


def package_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (those not installed are left out)."""
    out = {}
    for package in packages:
        version = package_version(package)
        if version is not None:
            out[package] = version
    return out


def sorted_symbols(numbers: Iterable[int]) -> list[str]:
    """Chemical symbols of the atomic numbers ``numbers``, in atomic-number order."""
    return [chemical_symbols[int(z)] for z in sorted(int(z) for z in numbers)]


def read_verified(path: str | os.PathLike[str], expected_id: str | None = None) -> tuple[bytes, str]:
    """Read the bytes of ``path`` once and return ``(data, 'sha256:<hex>')``.

    With ``expected_id`` (``'sha256:<hex>'``), raise :class:`ModelError` if the bytes hash differently: the
    file changed since it was identified (or is not the stored model), so it must not be loaded.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc}") from exc
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    if expected_id is not None and digest != expected_id:
        raise ModelError(
            f"model file {path} has sha256 {digest[7:23]}..., not the expected "
            f"{expected_id.removeprefix('sha256:')[:16]}...: it was altered or replaced after it was identified; "
            f"refusing to load it. Restore the original file (or materialize the stored model again) and retry"
        )
    return data, digest
