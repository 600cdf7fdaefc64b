"""Models travel by identity: staged into the data store by sha256 on submission, resolved on the worker.

A campaign names its model by a reference (``/home/me/fine-tuned.model``, ``nequip:/path/deployed.pth?r_max=5``,
``mace-mp-0:small``, ``chgnet:r2scan``); a worker on another node may have no such file. ``electrodb campaign
submit`` therefore calls :func:`stage_model`, which copies the model file's bytes into the data store (the
JobStore's ``data`` store: GridFS on MongoDB) as the blob ``model:sha256:<hex>``, and every MD job calls
:func:`resolve_model_reference` with the sha256, which returns a reference that works on *this* machine: the
original one when its file is here with that sha256, else a verified copy written once per node into
``<data_dir>/model-cache/``. The blob is the one :func:`electrodb.flows.training.store_model` writes for models
trained here (same ``blob_uuid``, same compressed ``zb64`` field), so a trained model is never uploaded twice and
:func:`electrodb.flows.training.materialize_model` reads staged models too.

MACE files are pickles that run code when loaded: nothing is written or returned before the bytes hash to the
requested sha256, and the loader checks it once more (``load_model(..., expected_id=...)``).
"""

from __future__ import annotations

import base64
import hashlib
import uuid as uuidlib
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobflow import OutputReference
from maggma.core import Store

from electrodb.models.files import ModelError, file_sha256, foundation_file, read_verified
from electrodb.models.reference import ModelRef
from electrodb.settings import get_settings
from electrodb.utils.provenance import utcnow
from electrodb.utils.safe_files import atomic_output

__all__ = [
    "MODEL_BLOB_PREFIX",
    "model_blob_uuid",
    "model_cache_dir",
    "model_reference_from_output",
    "publish_model_output",
    "resolve_model_reference",
    "stage_model",
]

MODEL_BLOB_PREFIX = "model:"  # + 'sha256:<hex>': the blob_uuid store_model uses for trained models
_FILE_KINDS = ("mace_file", "nequip", "mace_foundation")


def _normalise(sha256: str) -> str:
    """``'sha256:<hex>'`` from ``'sha256:<hex>'`` or a bare 64-digit hex string; ModelError otherwise."""
    digest = sha256.strip().lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ModelError(f"{sha256!r} is not a model sha256 (64 hex digits, optionally prefixed 'sha256:')")
    return f"sha256:{digest}"


def model_blob_uuid(sha256: str) -> str:
    """The data-store key of a model file's bytes: ``'model:sha256:<hex>'``."""
    return f"{MODEL_BLOB_PREFIX}{_normalise(sha256)}"


def model_cache_dir() -> Path:
    """Where workers keep verified copies of staged models: ``<ELECTRODB data_dir>/model-cache``."""
    return get_settings().data_dir / "model-cache"


def _local_file(reference: str) -> tuple[Any, Path | None]:
    """The parsed reference and the model file it names on this machine (None: not file-based / not found)."""
    ref = ModelRef.parse(reference)
    if ref.kind not in _FILE_KINDS:
        return ref, None
    if ref.kind == "mace_foundation":
        try:
            return ref, foundation_file(ref.name)
        except ModelError:
            return ref, None
    return ref, Path(ref.path or ref.name).expanduser()


def _decode(blob: dict[str, Any], sha256: str) -> bytes:
    """The model bytes of a stored blob, checked against ``sha256`` (ModelError if unreadable or different)."""
    try:
        raw = zlib.decompress(base64.b64decode(blob["zb64"]))
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise ModelError(
            f"stored model {sha256} is unreadable ({type(exc).__name__}: {exc}); stage it again with "
            "`electrodb campaign submit` from a machine that has the model file"
        ) from exc
    digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
    if digest != sha256:
        raise ModelError(
            f"stored model {sha256} is corrupt or was altered (its bytes hash to {digest}); refusing to use it. "
            "Stage it again from the original file"
        )
    return raw


def _read_model_file(reference: str, fix: str) -> tuple[Any, Path, bytes, str] | None:
    """``(ref, path, bytes, sha256)`` of a file-based reference's model file on this machine; None for packaged
    models. ModelError (ending with ``fix``) when the file is missing."""
    ref, path = _local_file(reference)
    if ref.kind not in _FILE_KINDS:
        return None
    if path is None or not path.is_file():
        raise ModelError(
            f"model file {path or reference} of reference {reference!r} does not exist on this machine; {fix}"
        )
    data, digest = read_verified(path)
    return ref, path, data, digest


def _encode(data: bytes) -> str:
    """The ``zb64`` form of model bytes (zlib level 6, base64), as :func:`_decode` reads it."""
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def _cached_reference(reference: str, nequip: bool, cached: Path, digest: str, raw: Callable[[], bytes]) -> str:
    """Write ``raw()`` (bytes already checked against ``digest``) to ``cached`` atomically unless a file with that
    sha256 is there; return the reference that loads it (``nequip:<cached>`` with ``reference``'s query when
    ``nequip``)."""
    if not (cached.is_file() and file_sha256(cached) == digest):
        data = raw()
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(cached) as tmp:
            tmp.write_bytes(data)
    if nequip:
        query = reference.partition("?")[2]
        return f"nequip:{cached}" + (f"?{query}" if query else "")
    return str(cached)


def stage_model(data_store: Store, reference: str) -> str | None:
    """Copy a file-based model into ``data_store`` as blob ``model:sha256:<hex>`` (idempotent); return its sha256.

    Parameters
    ----------
    data_store
        The JobStore's ``data`` store (``ElectroDBStores.data``), connected.
    reference
        The campaign's model reference. File-based kinds (a MACE file, ``nequip:PATH[?...]``, a MACE foundation
        name found in the local cache) are staged; packaged models (``chgnet:r2scan``, ``sevennet-0``) need no
        file and return None.

    Returns
    -------
    str or None
        ``'sha256:<hex>'`` of the file bytes (the model's identity, as ``ModelIdentity.model_id``), or None.

    Raises
    ------
    ModelError
        The reference cannot be parsed, or its file is missing or unreadable.

    Notes
    -----
    A blob already stored under that key is verified (decompressed and hashed) and kept when intact, so
    re-submitting uploads nothing; a damaged one is replaced by the file's bytes.
    """
    found = _read_model_file(
        reference, "submit from a machine that has it (its bytes are staged into the data store for the workers)"
    )
    if found is None:
        return None
    _, path, data, digest = found
    uuid = model_blob_uuid(digest)
    existing = data_store.query_one({"blob_uuid": uuid})
    if existing is not None:
        try:
            _decode(existing, digest)
            return digest
        except ModelError:
            pass  # damaged: replaced below
    data_store.update(
        [
            {
                "blob_uuid": uuid,
                "kind": "model_file",
                "model_id": digest,
                "file_name": path.name,
                "reference": reference,
                "size_bytes": len(data),
                "zb64": _encode(data),
                "last_updated": utcnow(),
            }
        ],
        key="blob_uuid",
    )
    return digest


def resolve_model_reference(
    reference: str, sha256: str | None, data_store: Store | None, cache_dir: Path | None = None
) -> str:
    """A model reference that loads on this machine the model whose bytes hash to ``sha256``.

    Parameters
    ----------
    reference
        The campaign's model reference, as written on the submitting machine.
    sha256
        The model's identity (``'sha256:<hex>'`` or bare hex), from :func:`stage_model`. None: the reference is
        returned as it is (packaged models, or a run on the machine that has the file).
    data_store
        The running job's ``data`` store (``job_stores('data').data``), where :func:`stage_model` put the bytes.
    cache_dir
        Folder of verified copies (default :func:`model_cache_dir`, ``<data_dir>/model-cache``).

    Returns
    -------
    str
        ``reference`` itself when it is a packaged model, or when its file exists here with that sha256;
        else the path of ``<cache_dir>/<hex>.<suffix>`` (written atomically from the verified blob the first
        time; reused when its bytes still hash to ``sha256``), as ``nequip:<path>[?query]`` for NequIP
        references (the query, e.g. ``?species=O,H&r_max=5``, is kept).

    Raises
    ------
    ModelError
        Neither the file nor the blob exists (the message names the sha256 and how to stage it), or the stored
        bytes do not hash to ``sha256``.
    """
    ref, path = _local_file(reference)
    if ref.kind not in _FILE_KINDS or sha256 is None:
        return reference
    digest = _normalise(sha256)
    if path is not None and path.is_file() and file_sha256(path) == digest:
        return reference
    folder = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    suffix = (path.suffix if path is not None and path.suffix else "") or (".pth" if ref.kind == "nequip" else ".model")
    cached = folder / f"{digest.removeprefix('sha256:')}{suffix}"

    def from_blob() -> bytes:
        blob = data_store.query_one({"blob_uuid": model_blob_uuid(digest)}) if data_store is not None else None
        if blob is None:
            raise ModelError(
                f"model {digest} ({reference!r}) is neither on this machine (no file {path or reference} with that "
                f"sha256) nor in the data store (blob {model_blob_uuid(digest)!r}); stage it with `electrodb "
                "campaign submit` (or electrodb.models.staging.stage_model) from a machine that has the file"
            )
        return _decode(blob, digest)

    return _cached_reference(reference, ref.kind == "nequip", cached, digest, from_blob)


# ------------------------------------------------------------------ models as job inputs (workers without a database)

#: Namespace of the deterministic job uuids under which a staged model is published as a jobflow output.
_MODEL_OUTPUT_NAMESPACE = "8d5f1c52-4b8e-4d0e-9a1e-6f0f3c2b7a11"


def publish_model_output(job_store: Any, reference: str) -> Any:
    """Publish a file-based model as a jobflow *output* in ``job_store``; return an ``OutputReference`` to it.

    For engines whose workers reach no database (jobflow-remote: the runner resolves every input reference from the
    real JobStore, with its ``data`` blobs loaded, and ships the values to the worker). The output is a dict
    ``{model_id, suffix, reference, zb64}``; its bytes go to the JobStore's ``data`` store as a jobflow blob, and the
    job document's uuid is derived from the sha256, so publishing again is idempotent. None for packaged models.

    Parameters
    ----------
    job_store
        ``ElectroDBStores.job_store()`` (connected here).
    reference
        The campaign's model reference (its file must exist on this machine).
    """
    found = _read_model_file(reference, "submit from a machine that has it")
    if found is None:
        return None
    ref, path, data, digest = found
    job_uuid = str(uuidlib.uuid5(uuidlib.UUID(_MODEL_OUTPUT_NAMESPACE), digest))
    job_store.connect()
    if job_store.docs_store.query_one({"uuid": job_uuid}, properties=["uuid"]) is None:
        output = {
            "model_id": digest,
            "suffix": path.suffix or (".pth" if ref.kind == "nequip" else ".model"),
            "reference": reference,
            "zb64": _encode(data),
        }
        job_store.update(
            {
                "uuid": job_uuid,
                "index": 1,
                "output": output,
                "name": f"electrodb model {digest[:19]}",
                "metadata": {"electrodb_model_sha256": digest},
                "hosts": [],
                "completed_at": utcnow(),
            },
            save={"data": ["zb64"]},
        )
    return OutputReference(job_uuid)


def model_reference_from_output(model_file: dict[str, Any], reference: str, cache_dir: Path | None = None) -> str:
    """A loadable reference for the model a job received as an input (:func:`publish_model_output`).

    The bytes are checked against ``model_file['model_id']`` and written once, atomically, to
    ``<cache_dir>/<hex><suffix>`` (reused while they still hash right); NequIP references keep their query.
    """
    digest = _normalise(model_file["model_id"])
    folder = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    cached = folder / f"{digest.removeprefix('sha256:')}{model_file.get('suffix') or '.model'}"
    nequip = reference.startswith("nequip:")
    return _cached_reference(reference, nequip, cached, digest, lambda: _decode(model_file, digest))
