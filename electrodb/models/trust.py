"""Which model files may run code: the trust registry of pickled (MACE ``.model``) models, by sha256.

A MACE ``.model`` file is a Python pickle: unpickling it runs whatever code its author put in it. ElectroDB
therefore unpickles a model file only when its sha256 is *trusted*:

- the models shipped in ``electrodb/data/`` (the demo model), by the sha256 their card records;
- models trained here (:func:`electrodb.models.mace_train.train_mace` records each one it writes);
- models the user registered once with ``electrodb model register PATH --trust`` (recorded in
  ``<ELECTRODB_DATA_DIR>/trusted-models.json``);
- the sha256s listed in further registry files named by ``$ELECTRODB_TRUSTED_MODELS`` (paths separated by
  ``os.pathsep``; read only): a list shared by a group, the workers' list, or the test suite's.

Anything else is refused with one line naming the fix. There is no switch that trusts every file.

Reading a model's metadata (cutoff, elements) never unpickles it: :func:`model_metadata` takes them from the
registry record (written at registration) or from a model card beside the file (``<name>.json`` with the same
``model_id``, as the demo model has). TorchScript files (NequIP/Allegro) load with ``torch.jit.load``, which runs no
pickled Python code, and need no registration.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from electrodb.models.files import ModelError, file_sha256
from electrodb.settings import get_settings
from electrodb.utils.provenance import utcnow
from electrodb.utils.safe_files import atomic_output

__all__ = [
    "TRUST_ENV",
    "TRUST_FILE",
    "card_metadata",
    "check_trusted",
    "model_metadata",
    "record_trust",
    "registry_path",
    "trusted_record",
    "untrusted_message",
]

TRUST_FILE = "trusted-models.json"
TRUST_ENV = "ELECTRODB_TRUSTED_MODELS"
_PACKAGE_DATA = Path(__file__).resolve().parent.parent / "data"


def registry_path() -> Path:
    """The trust registry of this data folder: ``<ELECTRODB_DATA_DIR>/trusted-models.json``."""
    return get_settings().data_dir / TRUST_FILE


def _read_registry(path: Path) -> dict[str, dict[str, Any]]:
    """``{sha256: record}`` of one registry file ({} when it is absent; ModelError when it is unreadable)."""
    if not path.is_file():
        return {}
    try:
        models = json.loads(path.read_text(encoding="utf-8")).get("models", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(
            f"the model trust registry {path} is unreadable ({exc}); fix or remove it and register the models again "
            "with `electrodb model register PATH --trust`"
        ) from exc
    return {k: v for k, v in models.items() if isinstance(v, dict)}


def _shipped() -> dict[str, dict[str, Any]]:
    """The models shipped in ``electrodb/data`` (their cards' sha256): trusted like the package's own code."""
    out = {}
    for card in sorted(_PACKAGE_DATA.glob("*.json")):
        model = card.with_suffix(".model")
        meta = _card(card)
        if model.is_file() and meta.get("model_id"):
            out[meta["model_id"]] = {**meta, "path": str(model), "source": "shipped with electrodb"}
    return out


def _records() -> dict[str, dict[str, Any]]:
    """Every trusted sha256 → its record: shipped models, the extra registries, then this data folder's."""
    records = _shipped()
    for extra in filter(None, os.environ.get(TRUST_ENV, "").split(os.pathsep)):
        records.update(_read_registry(Path(extra).expanduser()))
    records.update(_read_registry(registry_path()))
    return records


def trusted_record(sha256: str) -> dict[str, Any] | None:
    """The trust record of ``'sha256:<hex>'`` (path, source, elements, r_max, registered), or None if untrusted."""
    return _records().get(sha256)


def untrusted_message(path: str | os.PathLike[str], sha256: str) -> str:
    """The one-line refusal of an untrusted pickled model, naming the fix."""
    return (
        f"model file {path} ({sha256[:19]}...) is a pickle, and loading a pickle runs code; it is not a registered "
        f"model. If you trust its source, register it once: electrodb model register {path} --trust"
    )


def check_trusted(path: str | os.PathLike[str], sha256: str) -> None:
    """Raise :class:`ModelError` (one line, naming ``electrodb model register PATH --trust``) unless ``sha256`` is
    trusted. Call it before anything unpickles the bytes of ``path``."""
    if trusted_record(sha256) is None:
        raise ModelError(untrusted_message(path, sha256))


def record_trust(
    path: str | os.PathLike[str], sha256: str | None = None, source: str = "registered", **metadata: Any
) -> dict[str, Any]:
    """Trust the model file ``path`` (its sha256, computed when not given) in this data folder's registry.

    ``metadata`` (``name``, ``kind``, ``elements``, ``r_max``, ``n_parameters``) is kept with the record, so that
    :func:`model_metadata` reads them later without unpickling. Idempotent; returns the stored record.
    """
    digest = sha256 or file_sha256(path)
    where = registry_path()
    where.parent.mkdir(parents=True, exist_ok=True)
    models = _read_registry(where)
    record = {
        **models.get(digest, {}),
        "path": str(Path(path).expanduser().resolve()),
        "source": source,
        "registered": utcnow().isoformat(),
        **{k: v for k, v in metadata.items() if v is not None},
    }
    models[digest] = record
    with atomic_output(where) as tmp:
        tmp.write_text(json.dumps({"models": models}, indent=1, sort_keys=True), encoding="utf-8")
    return record


def _card(path: Path) -> dict[str, Any]:
    """``model_id``, ``elements``, ``r_max`` of a model card (top level or under ``training``); {} if unreadable."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(card, dict):
        return {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    out = {k: card.get(k, training.get(k)) for k in ("model_id", "name", "elements", "r_max")}
    return {k: v for k, v in out.items() if v is not None}


def card_metadata(path: str | os.PathLike[str], sha256: str) -> dict[str, Any]:
    """What the model card beside ``path`` (``<stem>.json``) says, when it names this very file (``model_id`` equal
    to ``sha256``); else {}."""
    card = _card(Path(path).with_suffix(".json"))
    return card if card.get("model_id") == sha256 else {}


def model_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``model_id``, ``trusted`` and what is known of a model file (``elements``, ``r_max``), without unpickling it.

    From the trust registry's record, else from a model card beside the file naming the same sha256.
    """
    digest = file_sha256(path)
    record = trusted_record(digest)
    known = {**card_metadata(path, digest), **(record or {})}
    return {**known, "model_id": digest, "trusted": record is not None}
