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
loaded: ElectroDB unpickles a MACE file only when its sha256 is trusted (:mod:`electrodb.models.trust`: the
shipped demo model, models trained here, and files registered once with ``electrodb model register PATH
--trust``), hashes the bytes it reads and unpickles exactly those bytes, and refuses a file whose bytes changed
since :func:`load_model` identified it. :func:`peek_model` reads a model's cutoff and elements without
unpickling anything (``campaign plan``).

Modules: :mod:`electrodb.models.reference` (parsing references), :mod:`electrodb.models.loaded` (the identity, the
loaded model and its calculators), :mod:`electrodb.models.families` (the loader of each family),
:mod:`electrodb.models.files` (hashing, verified reads, the foundation cache); this module holds :func:`load_model`
and the NVE-drift records of the ``models`` store, and re-exports the public names of the others.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# torch >= 2.6 loads with weights_only=True by default, which cannot unpickle MACE models (and e3nn 0.4.4's
# constants); MACE files are full pickled modules, so loading them needs the old behaviour (set before any import
# that could bring in e3nn; electrodb.models.loaded sets it too).
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

from electrodb.models.families import load_chgnet, load_mace, load_nequip, load_sevennet
from electrodb.models.files import ModelError
from electrodb.models.loaded import LoadedModel
from electrodb.models.reference import Dtype, ModelRef, resolve_foundation_path
from electrodb.models.trust import model_metadata, untrusted_message

__all__ = [
    "get_nve_drift",
    "load_model",
    "peek_model",
    "record_nve_drift",
]


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
        return load_mace(parsed, Path(parsed.path or parsed.name).expanduser(), expected_id)
    if parsed.kind == "nequip":
        return load_nequip(parsed, Path(parsed.path or parsed.name).expanduser(), expected_id)
    if parsed.kind == "mace_foundation":
        return load_mace(parsed, resolve_foundation_path(parsed.name, cache_dir), expected_id)
    if parsed.kind == "chgnet":
        return load_chgnet(parsed)
    return load_sevennet(parsed)


def peek_model(ref: str | os.PathLike[str] | ModelRef, cache_dir: str | os.PathLike[str] | None = None) -> dict:
    """A model's ``model_id``, ``elements`` and ``r_max`` (Å), read without unpickling anything.

    A MACE file (or foundation model) is described by its trust record (:mod:`electrodb.models.trust`) or a model
    card beside it naming its sha256; a trusted file whose record lacks them is loaded; an untrusted file without
    either raises :class:`ModelError` naming ``electrodb model register PATH --trust`` and is never unpickled.
    Other kinds run no pickled code and are loaded (:func:`load_model`).
    """
    parsed = ModelRef.parse(ref)
    if parsed.kind not in ("mace_file", "mace_foundation"):
        return load_model(parsed, cache_dir).identity.model_dump(mode="json")
    if parsed.kind == "mace_file":
        path = Path(parsed.path or parsed.name).expanduser()
        if not path.is_file():
            raise ModelError(f"MACE model file {path} does not exist (or is not a file); check the model path")
    else:
        path = resolve_foundation_path(parsed.name, cache_dir)
    meta = model_metadata(path)
    if meta.get("r_max") is not None and meta.get("elements"):
        return meta
    if not meta["trusted"]:
        raise ModelError(untrusted_message(path, meta["model_id"]))
    loaded = load_model(parsed, cache_dir, expected_id=meta["model_id"])  # trusted: it may be unpickled
    return {**meta, **loaded.identity.model_dump(mode="json")}


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
