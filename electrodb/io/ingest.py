"""Import external trajectories (AIMD, literature, other codes) into the ElectroDB trajectory store.

Any ASE-readable format works (extxyz, LAMMPS dump, CP2K xyz, VASP XDATCAR …). Frames are streamed (never all
in memory), unwrapped on the fly with minimum-image displacements (so wrapped dumps give exact diffusion), and
written in the same chunked format and with the same metadata as ElectroDB's own MD, so the same builders
process them.

Molecules (first frame, :func:`assign_molecules`)
    1. Waters: every H joins its nearest heavy atom within 1.25 Å; an O holding two such H is a water. An
       oxyanion's O has no H within 1.25 Å, so it is never taken as a water, and a water O never enters an ion.
    2. Ions: the remaining atoms are bonded only along the element pairs that are bonded in the salt's own ion
       templates (``Ion.bonded_pairs``: S–O in SO₄²⁻; S–O, S–N, S–C, C–F in TFSI⁻), up to
       ``bond_tolerance`` × the template bond length. A cation–anion pair is never a bond, so contact ion pairs
       (Li–Cl 2.35 Å, Li–O(TFSI) 1.95 Å), cation dimers (Li–Li 2.68 Å) and aggregates are read as separate ions.
       Monatomic ions are their own group. Each group must match a template's composition.

Validation (every frame, before anything is stored; :class:`IngestError` names the problem and the fix)
    * finite positions and cell in every frame (never overridable);
    * a periodic cell whose smallest perpendicular width is at least ``min_cell_width_A`` (10 Å = 2 × 5 Å: the
      structure builder's RDFs reach half the smallest width, and the first-shell minima of ion–water RDFs lie
      at 2.6–3.9 Å), and a volume that changes by at most 10 % between frames and stays within a factor 1.5 of
      frame 0 (NPT fluctuates by far less);
    * temperature finite and in (0, 5000] K, timestep finite and in (0, 20] fs, ``interval`` ≥ 1;
    * the file's own clock, wherever it has one: an MD step counter (LAMMPS ``timestep``, extxyz ``step``) must
      advance by ``interval`` steps per frame, a per-frame time (extxyz ``time_fs``, ``time_ps``, ``time``) by
      ``interval × timestep_fs`` (the message gives both numbers);
    * no atom jumps farther between consecutive frames than 1 Å/fs × the frame interval (minimum image), nor by
      more than one box length (:mod:`electrodb.io.ingest_checks` says why);
    * truncation: a file ASE cannot read to the end (a frame cut off mid-way), a text file whose last line has
      no newline (ASE silently reads a half-written last number), or fewer frames than ``expected_frames``.
      Default: error. With ``allow_truncated=True`` the complete frames before the damage are kept and the
      document says ``truncated: True`` with ``truncation_reason``. A file cut exactly at a frame boundary
      reads as a complete, shorter file: only ``expected_frames`` can tell (the stored ``n_frames`` says it).

  The range checks marked overridable take ``allow_unusual_temperature``, ``allow_unusual_timestep``,
  ``allow_small_cell``, ``allow_volume_jumps``, ``allow_irregular_steps``, ``allow_atom_jumps``,
  ``allow_truncated`` or
  ``allow_unusual=True`` (all of them); each override that was needed is recorded in the document's
  ``validation_overrides`` (flag -> what it let through).

Writes never destroy (staging)
    Chunks are written under a staging id ``<id>.staging.<token>``, announced by a manifest blob
    (``kind: "ingest_staging"``) in the ``data`` store. Only when every frame is written and validated is the
    manifest marked complete and the switch made: chunks re-keyed to the trajectory id, surplus old chunks
    deleted, trajectory document upserted, manifest deleted. A failed ingest deletes its staging data; one
    killed while writing leaves the stored trajectory untouched and its staging data is deleted (with a
    message) by the next ingest; one killed during the switch is finished by the next ingest. While a switch
    replaces an existing trajectory its document reads ``running`` (the builders skip it) until the switch ends.
    Re-ingesting the same file (same sha256) with the same parameters is a no-op with a message. A failed write
    (a full disk) is one :class:`IngestError` naming the database, after the staging data is deleted.

The same run twice (:mod:`electrodb.io.ingest_overlap`)
    Frames that are a copy or the first frames of a stored trajectory are refused (nothing ingested); a file that
    extends a stored ingest of the same run with the same labels (the stored one was cut short) replaces it.
    ``replace=True`` replaces the stored run in every case.

Modules: :mod:`electrodb.io.molecules` (waters and ions of a frame), :mod:`electrodb.io.ingest_checks` (validation,
reading, :class:`IngestError`), :mod:`electrodb.io.ingest_frames` (frames into chunks, unwrapped),
:mod:`electrodb.io.ingest_overlap` (the same run twice), :mod:`electrodb.io.ingest_staging` (staged writes,
recovery, full disks); this module holds the entry point :func:`ingest_trajectory` and re-exports the public
names of the others.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from electrodb.analysis.md_checks import check_temperature
from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.io.ingest_checks import (
    MAX_SPEED_A_PER_FS,
    MAX_TEMPERATURE_K,
    MAX_TIMESTEP_FS,
    MAX_VOLUME_RATIO,
    MAX_VOLUME_STEP,
    MIN_CELL_WIDTH_A,
    OVERRIDE_FLAGS,
    STEP_KEYS,
    TIME_KEYS,
    FrameValidator,
    IngestError,
    RangeChecks,
    Truncated,
    check_settings,
    read_frames,
)
from electrodb.io.ingest_frames import check_frame_count, write_frames
from electrodb.io.ingest_overlap import find_overlaps, resolve_overlaps
from electrodb.io.ingest_staging import (
    STAGING_KIND,
    STALE_AFTER_S,
    check_free_space,
    discard_after_failure,
    finish_switch,
    heartbeat,
    mark_complete,
    open_staging,
    recover_interrupted,
    stop_for_test,
    storage_failure,
)
from electrodb.io.molecules import (
    BOND_TOLERANCE,
    WATER_OH_CUTOFF_A,
    Composition,
    assign_molecules,
    identify_composition,
)
from electrodb.store.frames import TrajectoryWriter, decode_array, iter_chunks
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.chemistry import ChemistryError, Salt, parse_salt
from electrodb.utils.provenance import stable_hash, utcnow

__all__ = [
    "BOND_TOLERANCE",
    "MAX_SPEED_A_PER_FS",
    "MAX_TEMPERATURE_K",
    "MAX_TIMESTEP_FS",
    "MAX_VOLUME_RATIO",
    "MAX_VOLUME_STEP",
    "MIN_CELL_WIDTH_A",
    "OVERRIDE_FLAGS",
    "STAGING_KIND",
    "STALE_AFTER_S",
    "STEP_KEYS",
    "TIME_KEYS",
    "WATER_OH_CUTOFF_A",
    "IngestError",
    "assign_molecules",
    "ingest_trajectory",
]

logger = logging.getLogger(__name__)


def _file_sha256(path: Path) -> str:
    """Hex sha256 of the bytes of ``path`` (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------- ingest


def ingest_trajectory(
    path: str | Path,
    salt: str,
    molality: float | None,
    temperature: float,
    timestep_fs: float,
    interval: int,
    stores: ElectroDBStores,
    fmt: str | None = None,
    index: str = ":",
    source_label: str = "external",
    campaign: str | None = None,
    chunk_frames: int = 200,
    *,
    expected_frames: int | None = None,
    min_cell_width_A: float = MIN_CELL_WIDTH_A,
    allow_unusual: bool = False,
    allow_unusual_temperature: bool = False,
    allow_unusual_timestep: bool = False,
    allow_small_cell: bool = False,
    allow_volume_jumps: bool = False,
    allow_irregular_steps: bool = False,
    allow_atom_jumps: bool = False,
    allow_truncated: bool = False,
    force: bool = False,
    replace: bool = False,
) -> TrajectoryDocument:
    """Validate and stream an external trajectory into the store; return its metadata document.

    Parameters
    ----------
    molality
        mol/kg, checked against the composition found in the file (ion and water counts); a mismatch above
        2 % is an error, ``None`` takes the file's value.
    temperature, timestep_fs, interval
        K, fs, MD steps between stored frames (frame spacing = ``timestep_fs × interval`` fs).
    expected_frames
        Frames the file should hold (e.g. from the producing run's log); fewer means truncated.
    min_cell_width_A
        Smallest allowed perpendicular cell width (Å).
    allow_unusual, allow_unusual_temperature, allow_unusual_timestep, allow_small_cell, allow_volume_jumps, \
allow_irregular_steps, allow_atom_jumps, allow_truncated
        Let the named range check through (``allow_unusual``: all); recorded in ``validation_overrides``.
    force
        Re-ingest even when the same file with the same parameters is already stored.
    replace
        Replace a stored trajectory whose frames this file copies, starts or extends (the same run), whatever
        its labels; without it a copy or a prefix of a stored run is refused (:mod:`electrodb.io.ingest_overlap`).

    The returned document carries two unstored fields: ``ingest_action`` (``"created"``, ``"replaced"``,
    ``"unchanged"``) and ``ingest_messages`` (clean-ups and no-op notices, for the caller to print). The id is
    the hash of the file's sha256 and the metadata, so ids are stable across re-ingests.
    """
    path = Path(path)
    flags = {
        "allow_unusual_temperature": allow_unusual_temperature,
        "allow_unusual_timestep": allow_unusual_timestep,
        "allow_small_cell": allow_small_cell,
        "allow_volume_jumps": allow_volume_jumps,
        "allow_irregular_steps": allow_irregular_steps,
        "allow_atom_jumps": allow_atom_jumps,
        "allow_truncated": allow_truncated,
    }
    allowed = {f for f, on in flags.items() if on or allow_unusual}
    parsed, checks = _validate_request(path, salt, temperature, timestep_fs, interval, expected_frames, allowed)
    params = {
        "sha256": _file_sha256(path),
        "salt": parsed.formula,
        "molality": molality,
        "temperature": temperature,
        "timestep_fs": timestep_fs,
        "interval": int(interval),
        "index": index,
        "format": fmt,
        "source_label": source_label,
        "expected_frames": expected_frames,
        "min_cell_width_A": min_cell_width_A,
        "overrides": sorted(checks.allowed),
    }
    tid = _trajectory_id(params)
    messages: list[str] = []
    try:
        recover_interrupted(stores, tid, messages)
        existing = _stored_document(stores, tid)
        if existing is not None and not force and _unchanged(stores, existing, params, campaign, messages):
            messages.append(
                f"{path.name} is already stored as {tid} ({existing['n_frames']} frames, same sha256 and "
                "parameters): nothing to do (force=True re-ingests)"
            )
            return _result(TrajectoryDocument(**existing), "unchanged", messages)
        validate = FrameValidator(checks, params["interval"], timestep_fs, min_cell_width_A)
        first, frames = _first_frame(path, fmt, index, validate)
        composition = identify_composition(first, parsed, molality, path)
        doc = _document(tid, first, parsed, composition, params, path)
        campaigns = [*(existing or {}).get("campaign_ids", []), *([campaign] if campaign else [])]
        doc = doc.model_copy(update={"campaign_ids": list(dict.fromkeys(campaigns))})
        doc = _write_staged(stores, doc, first, frames, validate, params, path, chunk_frames, replace, messages)
        doc = _check_run_temperature(stores, doc)
    except (OSError, sqlite3.Error) as exc:  # the store's disk, not the file: read errors are IngestErrors
        failure = storage_failure(exc, stores)
        if failure is None:
            raise
        raise failure from None
    return _report_written(doc, existing, messages)


def _validate_request(
    path: Path,
    salt: str,
    temperature: float,
    timestep_fs: float,
    interval: int,
    expected_frames: int | None,
    allowed: set[str],
) -> tuple[Salt, RangeChecks]:
    """Check the file exists and the stated settings before anything is read; return the salt and the checks.

    Parameters
    ----------
    temperature, timestep_fs, interval
        K, fs, MD steps between stored frames (see :func:`~electrodb.io.ingest_checks.check_settings`).
    expected_frames
        Frames the file should hold, or None.
    allowed
        Override flags given (:data:`~electrodb.io.ingest_checks.OVERRIDE_FLAGS`).
    """
    if not path.is_file():
        raise IngestError(f"{path} does not exist")
    try:
        parsed = parse_salt(salt)
    except ChemistryError as exc:
        raise IngestError(str(exc)) from exc
    checks = RangeChecks(allowed)
    check_settings(temperature, timestep_fs, interval, checks)
    if expected_frames is not None and expected_frames < 1:
        raise IngestError(f"expected_frames must be a positive number of frames, got {expected_frames}")
    return parsed, checks


def _trajectory_id(params: dict[str, Any]) -> str:
    """The trajectory id: a stable hash of the file's sha256 and the metadata that define the trajectory."""
    return stable_hash(
        {
            "file": params["sha256"],
            "salt": params["salt"],
            "temperature": params["temperature"],
            "timestep_fs": params["timestep_fs"],
            "interval": params["interval"],
            "index": params["index"],
            "source": params["source_label"],
        }
    )


def _stored_document(stores: ElectroDBStores, tid: str) -> dict[str, Any] | None:
    """The stored ``trajectories`` document of ``tid`` without its ``_id``, or None."""
    existing = stores.trajectories.query_one({"trajectory_id": tid})
    if existing is not None:
        existing.pop("_id", None)
    return existing


def _first_frame(path: Path, fmt: str | None, index: str, validate: FrameValidator) -> tuple[Atoms, Iterator[Atoms]]:
    """Read and validate the first frame; return it and the reader positioned at the second frame."""
    frames = read_frames(path, fmt, index)
    try:
        first = next(frames)
    except StopIteration:
        raise IngestError(f"{path}: no frames could be read") from None
    except Truncated as exc:
        raise IngestError(f"{path}: truncated before its first complete frame ({exc.reason})") from None
    validate(0, first)
    return first, frames


def _write_staged(
    stores: ElectroDBStores,
    doc: TrajectoryDocument,
    first: Atoms,
    frames: Iterator[Atoms],
    validate: FrameValidator,
    params: dict[str, Any],
    path: Path,
    chunk_frames: int,
    replace: bool,
    messages: list[str],
) -> TrajectoryDocument:
    """Write every frame under a staging id, then switch the stored trajectory to it; return the stored document.

    A failure before the switch deletes the staging data (:mod:`electrodb.io.ingest_staging`) and leaves the stored
    trajectory untouched. ``chunk_frames`` is the number of frames per stored chunk. Stored trajectories of the
    same run are refused or replaced (``replace``; :mod:`electrodb.io.ingest_overlap`), with ``messages``.
    """
    chunk_bytes = 12 * len(first) * chunk_frames * 2  # float32 positions, base64 and incompressible: an upper bound
    check_free_space(stores, chunk_bytes)
    manifest = open_staging(stores, doc.trajectory_id, path)
    staging = manifest["staging_id"]

    def on_chunk() -> None:
        heartbeat(stores, manifest)
        check_free_space(stores, chunk_bytes)

    try:
        writer = TrajectoryWriter(stores.data, staging, len(first), chunk_frames)
        truncation = write_frames(writer, first, frames, validate, doc.frame_interval_ps, path, on_chunk)
        truncation = check_frame_count(writer.next_frame, truncation, params["expected_frames"], path)
        if truncation is not None:
            validate.checks.require(
                False,
                "allow_truncated",
                f"{path} is truncated: {truncation[1]}",
                "re-copy the complete file (it was probably cut off by an interrupted copy or a killed run)",
            )
        writer.flush()
        stop_for_test("before_switch")
        doc = _completed(doc, writer, params, validate.checks, truncation)
        overlaps = find_overlaps(stores, staging, doc)
        replaces, notes = resolve_overlaps(overlaps, path, replace)
        campaigns = [*doc.campaign_ids, *(c for o in overlaps if o.trajectory_id in replaces for c in o.campaign_ids)]
        doc = doc.model_copy(update={"campaign_ids": list(dict.fromkeys(campaigns))})
        mark_complete(stores, manifest, doc, writer.n_chunks, replaces)
    except BaseException as exc:
        discard_after_failure(stores, staging, exc)
        raise
    messages.extend(notes)
    return finish_switch(stores, manifest)


def _completed(
    doc: TrajectoryDocument,
    writer: TrajectoryWriter,
    params: dict[str, Any],
    checks: RangeChecks,
    truncation: tuple[int, str] | None,
) -> TrajectoryDocument:
    """The final document once every frame is written: frame counts, duration (ps), provenance, overrides."""
    return doc.model_copy(
        update={
            "status": "completed",
            "n_frames": writer.n_frames,
            "n_chunks": writer.n_chunks,
            "duration_ps": (writer.n_frames - 1) * doc.frame_interval_ps,
            "last_good_frame": writer.n_frames - 1,
            "source_sha256": params["sha256"],
            "ingest_params": params,
            "validation_overrides": checks.used,
            "truncated": truncation is not None,
            "truncation_reason": truncation[1] if truncation else None,
            "last_updated": utcnow(),
        }
    )


def _check_run_temperature(stores: ElectroDBStores, doc: TrajectoryDocument) -> TrajectoryDocument:
    """Judge the source run's temperature against its label from the stored frames (momenta, where present).

    Files without velocities give ``insufficient`` (the label cannot be checked and is shown as the user's word).
    """
    temps = [decode_array(c["temperature_K"]) for c in iter_chunks(stores.data, doc.trajectory_id)]
    check = check_temperature(np.concatenate(temps) if temps else np.empty(0), doc.temperature, None)
    doc = doc.model_copy(update={**check.as_fields(), "last_updated": utcnow()})
    stores.trajectories.update([doc.model_dump(mode="json")], key="trajectory_id")
    return doc


def _unchanged(
    stores: ElectroDBStores, existing: dict[str, Any], params: dict[str, Any], campaign: str | None, messages: list[str]
) -> bool:
    """Is ``existing`` a complete ingest of the same file with the same parameters? Adds ``campaign`` if new."""
    if existing.get("status") != "completed" or existing.get("ingest_params") != params:
        return False
    tid = existing["trajectory_id"]
    if stores.data.count({"trajectory_id": tid, "kind": "trajectory_chunk"}) != existing.get("n_chunks"):
        return False
    if campaign and campaign not in existing.get("campaign_ids", []):
        existing.update(campaign_ids=[*existing.get("campaign_ids", []), campaign], last_updated=utcnow())
        stores.trajectories.update([existing], key="trajectory_id")
        messages.append(f"added campaign {campaign!r} to the stored trajectory")
    return True


def _report_written(
    doc: TrajectoryDocument, existing: dict[str, Any] | None, messages: list[str]
) -> TrajectoryDocument:
    """The result of a written ingest: ``created``, or ``replaced`` (with a message) when ``existing`` was stored."""
    if existing is None:
        return _result(doc, "created", messages)
    messages.append(
        f"replaced the stored trajectory {doc.trajectory_id} ({existing['status']}, {existing['n_frames']} frames)"
    )
    return _result(doc, "replaced", messages)


def _result(doc: TrajectoryDocument, action: str, messages: list[str]) -> TrajectoryDocument:
    """Log ``messages`` and attach them and ``action`` to the returned (never stored) document."""
    for message in messages:
        logger.info(message)
    return doc.model_copy(update={"ingest_action": action, "ingest_messages": messages})


def _document(
    tid: str, first: Atoms, salt: Salt, composition: Composition, params: dict[str, Any], path: Path
) -> TrajectoryDocument:
    """The trajectory document from the first frame and the ingest parameters, no frames yet.

    ``params`` holds ``temperature`` (K), ``timestep_fs`` (fs), ``interval`` (MD steps per frame), ``format``
    and ``source_label``.
    """
    timestep_fs, interval, source_label = params["timestep_fs"], params["interval"], params["source_label"]
    return TrajectoryDocument(
        trajectory_id=tid,
        system_id=tid,
        source="ingest",
        salt=salt.formula,
        cation=salt.cation.name,
        anion=salt.anion.name,
        molality=composition.molality,
        temperature=params["temperature"],
        n_atoms=len(first),
        n_waters=composition.n_waters,
        n_cations=composition.n_cations,
        n_anions=composition.n_anions,
        symbols=first.get_chemical_symbols(),
        masses=first.get_masses().tolist(),
        role=composition.role.tolist(),
        mol_id=composition.mol_id.tolist(),
        ion_center=composition.center.tolist(),
        model_id=f"external:{source_label}",
        model={"kind": "external", "name": source_label, "source_file": str(path.resolve())},
        md={"timestep_fs": timestep_fs, "sample_every_steps": interval, "source_format": params["format"] or "auto"},
        timestep_fs=timestep_fs,
        sample_interval_steps=interval,
        frame_interval_ps=timestep_fs * interval / 1000.0,
        box_length_A=float(first.cell.lengths()[0]),
    )
