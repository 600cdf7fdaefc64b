"""The loaders of each model family: read the model, check it, and record exactly what was loaded.

:func:`load_mace` (MACE files and foundation models), :func:`load_nequip` (NequIP/Allegro TorchScript
deployments), :func:`load_chgnet` and :func:`load_sevennet` (packaged models, identified by name and package
version) each return a :class:`~electrodb.models.loaded.LoadedModel`; :func:`electrodb.models.loader.load_model`
picks the loader from the reference's kind.
"""

from __future__ import annotations

from pathlib import Path

from ase.data import atomic_numbers, chemical_symbols

from electrodb.models.files import ModelError, package_version, package_versions, read_verified, sorted_symbols
from electrodb.models.loaded import LoadedModel, ModelIdentity, load_mace_module, load_nequip_module
from electrodb.models.reference import ModelRef

# chgnet and sevenn are optional packages, imported only when such a model is loaded.

__all__ = ["load_chgnet", "load_mace", "load_nequip", "load_sevennet"]


def load_mace(ref: ModelRef, path: Path, expected_id: str | None = None) -> LoadedModel:
    """Identify a MACE file (``'mace_file'`` or ``'mace_foundation'``): sha256, elements, cutoff (Å), size.

    Parameters
    ----------
    ref
        The parsed reference.
    path
        The model file.
    expected_id
        ``'sha256:<hex>'`` the file must have, or None.

    The module is unpickled once from the hashed bytes to read its identity and then dropped: every calculator
    reloads it from the file (checking the sha256 again).
    """
    if not path.exists():
        raise ModelError(f"MACE model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"MACE model path {path} is not a file")
    data, digest = read_verified(path, expected_id)
    module = load_mace_module(path, data=data)
    r_max = getattr(module, "r_max", None)
    identity = ModelIdentity(
        model_id=digest,
        kind=ref.kind,
        name=ref.name,
        path=str(path.resolve()),
        package_versions=package_versions("mace-torch", "torch", "e3nn"),
        elements=sorted_symbols(module.atomic_numbers.tolist()),
        r_max=float(r_max) if r_max is not None else None,
        dtype=ref.dtype,
        n_parameters=int(sum(p.numel() for p in module.parameters())),
    )
    # The calculator reloads from the file; keep nothing heavy in memory.
    return LoadedModel(ref, identity)


def load_nequip(ref: ModelRef, path: Path, expected_id: str | None = None) -> LoadedModel:
    """Load a deployed NequIP/Allegro model; species and cutoff (Å) from its metadata or the reference.

    Parameters
    ----------
    ref
        The parsed ``'nequip'`` reference (its ``species``/``r_max`` must agree with the file's metadata).
    path
        The TorchScript file.
    expected_id
        ``'sha256:<hex>'`` the file must have, or None.

    The loaded module is kept in the returned model (:attr:`LoadedModel.module`).
    """
    device = ref.resolved_device
    module, metadata, digest = load_nequip_module(path, device, expected_id)
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
        package_versions=package_versions("torch", "vesin"),
        elements=sorted(species, key=lambda s: atomic_numbers[s]),
        r_max=float(r_max),
        dtype=ref.dtype,
        n_parameters=int(sum(p.numel() for p in module.parameters())),
        elements_in_type_order=list(species),
        outputs=["energy", "forces"] + (["stress"] if has_stress else []),
        metadata={k: v for k, v in metadata.items() if k != "config" and v},
    )
    return LoadedModel(ref, identity, module=module)


def load_chgnet(ref: ModelRef) -> LoadedModel:
    """Load a CHGNet model shipped with the ``chgnet`` package (identified by name and package version)."""
    try:
        from chgnet.model import CHGNet
    except ImportError as exc:
        raise ModelError(f"{ref.name} needs the 'chgnet' package: pip install chgnet ({exc})") from exc
    variant = ref.name.split(":", 1)[1]
    try:
        model = CHGNet.load(model_name=variant, use_device=ref.resolved_device, verbose=False)
    except Exception as exc:
        raise ModelError(f"could not load CHGNet model {variant!r}: {exc}") from exc
    version = package_version("chgnet") or "unknown"
    cutoff = getattr(getattr(model, "graph_converter", None), "atom_graph_cutoff", None)
    identity = ModelIdentity(
        model_id=f"name:{ref.name}@chgnet=={version}",
        kind="chgnet",
        name=ref.name,
        package_versions=package_versions("chgnet", "torch"),
        elements=chemical_symbols[1:95],  # CHGNet embeds Z = 1..94
        r_max=float(cutoff) if cutoff is not None else None,
        dtype=ref.dtype,
        n_parameters=int(sum(p.numel() for p in model.parameters())),
    )
    return LoadedModel(ref, identity, module=model)


def load_sevennet(ref: ModelRef) -> LoadedModel:
    """Identify a SevenNet model of the ``sevenn`` package (name and package version); loaded by its calculator."""
    try:
        import sevenn  # noqa: F401
    except ImportError as exc:
        raise ModelError(
            f"{ref.name} needs the 'sevenn' package (only sevenn 0.10.x works with MACE's e3nn 0.4.4): {exc}"
        ) from exc
    version = package_version("sevenn") or "unknown"
    identity = ModelIdentity(
        model_id=f"name:{ref.name}@sevenn=={version}",
        kind="sevennet",
        name=ref.name,
        package_versions=package_versions("sevenn", "torch", "e3nn"),
        dtype=ref.dtype,
    )
    return LoadedModel(ref, identity)
