"""The first step of a refine round: the configurations a committee flagged in its audits, de-duplicated.

Every audit (:class:`~electrodb.documents.committee.AuditDocument`, ``audits`` collection) of the committee lists
its audited frames with their max σ_F and the threshold it was judged by; a frame above the threshold (or with a
non-finite σ_F: a member blew up) is *flagged*. :func:`select_flagged` reads the flagged frames' positions back from
the trajectory store, describes each by :func:`~electrodb.analysis.committee.structure_fingerprint` (element-pair
distance histograms) and keeps up to ``n_select`` of them with
:func:`~electrodb.analysis.committee.select_diverse`: the most uncertain first, then each the farthest from those
chosen, near-duplicates skipped, since consecutive MD frames of one excursion teach the model once. Fingerprint
distances scale with the system, so the duplicate distance is a fraction (``min_distance_fraction``, default 0.15:
the middle of the 0.1–0.2 that docs/committees.md recommends) of the median distance between two flagged frames. The
result (:class:`FlaggedSelection`) is what the teacher labels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ase import Atoms
from pydantic import BaseModel, Field

from electrodb.analysis.committee import select_diverse, structure_fingerprint
from electrodb.analysis.periodic import max_cutoff
from electrodb.documents.committee import CommitteeDocument
from electrodb.models.committee import decode_extxyz, encode_extxyz
from electrodb.store.frames import load_trajectory
from electrodb.store.stores import ElectroDBStores

__all__ = [
    "FlaggedCandidates",
    "FlaggedFrame",
    "FlaggedSelection",
    "NothingFlaggedError",
    "RefineError",
    "choose_flagged",
    "flagged_audits",
    "flagged_candidates",
    "select_flagged",
    "typical_distance",
]

#: Largest fingerprint range (Å); smaller boxes use half their smallest width.
FINGERPRINT_R_MAX_A = 6.0
_BINS = 24
#: Most flagged frames whose pairwise fingerprint distances give the typical distance (a seeded sample beyond).
_TYPICAL_SAMPLE = 400


class RefineError(ValueError):
    """A refine round cannot go on; the message is one line naming the problem and the fix."""


class NothingFlaggedError(RefineError):
    """The committee's audits flagged no frame: there is nothing to refine (not a failure of the model)."""


class FlaggedFrame(BaseModel):
    """One selected configuration: where it came from and how uncertain the committee was (eV/Å)."""

    trajectory_id: str
    frame: int
    sigma_F_max: float | None = Field(description="max per-atom σ_F of the frame (eV/Å); None: not finite")
    threshold_eV_per_A: float


class FlaggedSelection(BaseModel):
    """The configurations to label, and what they were chosen from.

    Attributes
    ----------
    committee_id
        The committee whose audits were read.
    n_audits, n_audited_frames, n_flagged
        Audits read, frames they audited, frames above their threshold.
    frames
        Each selected configuration's origin, in selection order (most uncertain first).
    configurations_zb64
        The selected configurations (extxyz, zlib, base64; wrapped into the cell), in the order of ``frames``.
    min_distance, typical_distance
        Fingerprint distance below which two flagged frames counted as duplicates, and the median distance between
        two flagged frames it is a fraction of.
    """

    committee_id: str
    n_audits: int
    n_audited_frames: int
    n_flagged: int
    frames: list[FlaggedFrame]
    configurations_zb64: str = Field(repr=False)
    min_distance: float = 0.0
    typical_distance: float = 0.0

    @property
    def n_selected(self) -> int:
        return len(self.frames)

    def configurations(self) -> list[Atoms]:
        return decode_extxyz(self.configurations_zb64)

    def summary(self) -> dict[str, Any]:
        """The selection without its configurations (for the refine record)."""
        return {**self.model_dump(mode="json", exclude={"configurations_zb64"}), "n_selected": self.n_selected}


def _flagged(audit: dict[str, Any], threshold: float | None = None) -> list[tuple[int, float]]:
    """``(stored frame, max σ_F)`` of every flagged frame of one audit (non-finite σ_F counts as flagged: +inf),
    judged by ``threshold`` (the committee's current one; default the audit's own)."""
    threshold = float(audit["threshold_eV_per_A"] if threshold is None else threshold)
    out = []
    for frame, value in zip(audit.get("frames", []), audit.get("sigma_F_max", []), strict=False):
        score = float(value) if value is not None and math.isfinite(float(value)) else math.inf
        if score > threshold:
            out.append((int(frame), score))
    return out


def _fingerprints(configurations: list[Atoms], r_max: float) -> np.ndarray:
    """One row per configuration over the union of element pairs (a pair a configuration lacks stays zero)."""
    elements = sorted({s for atoms in configurations for s in atoms.get_chemical_symbols()})
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    column = {pair: j * _BINS for j, pair in enumerate(pairs)}
    out = np.zeros((len(configurations), len(pairs) * _BINS))
    for row, atoms in enumerate(configurations):
        own = sorted(set(atoms.get_chemical_symbols()))
        own_pairs = [(a, b) for i, a in enumerate(own) for b in own[i:]]
        fp = structure_fingerprint(
            atoms.get_positions(), np.asarray(atoms.cell), atoms.get_chemical_symbols(), r_max=r_max, n_bins=_BINS
        )
        for j, pair in enumerate(own_pairs):
            out[row, column[pair] : column[pair] + _BINS] = fp[j * _BINS : (j + 1) * _BINS]
    return out


def typical_distance(fingerprints: np.ndarray, seed: int = 0) -> float:
    """Median Euclidean distance between two rows of ``fingerprints`` (a seeded sample of at most 400 rows); 0 for
    fewer than two rows."""
    fp = np.asarray(fingerprints, dtype=np.float64)
    if fp.shape[0] < 2:
        return 0.0
    if fp.shape[0] > _TYPICAL_SAMPLE:
        fp = fp[np.random.default_rng(seed).choice(fp.shape[0], _TYPICAL_SAMPLE, replace=False)]
    norms = np.einsum("ij,ij->i", fp, fp)
    squared = np.maximum(norms[:, None] + norms[None, :] - 2.0 * fp @ fp.T, 0.0)  # no (M, M, D) array
    return float(np.median(np.sqrt(squared[np.triu_indices(fp.shape[0], k=1)])))


def flagged_audits(stores: ElectroDBStores, committee: CommitteeDocument) -> tuple[list[dict[str, Any]], list[Any]]:
    """The committee's audits and their flagged frames as ``(audit, stored frame, max σ_F)``; reads ``audits`` only.

    Raises
    ------
    RefineError
        The committee has no audits (run ``electrodb model audit`` first).
    NothingFlaggedError
        No audited frame exceeds its threshold: nothing to refine.
    """
    audits = list(stores.audits.query({"committee_id": committee.committee_id}))
    if not audits:
        raise RefineError(
            f"committee {committee.name!r} has no audits; audit its trajectories first: "
            f"electrodb model audit --committee {committee.name}"
        )
    # the committee's current threshold: an audit stored before a recalibration keeps the threshold of its day
    candidates = [(a, frame, score) for a in audits for frame, score in _flagged(a, committee.threshold_eV_per_A)]
    if not candidates:
        n_audited = sum(len(a.get("frames", [])) for a in audits)
        raise NothingFlaggedError(
            f"committee {committee.name!r}: none of the {n_audited} frames audited in {len(audits)} "
            f"trajector{'y' if len(audits) == 1 else 'ies'} "
            "exceeds its σ_F threshold; nothing to refine (the model stays as it is)"
        )
    return audits, candidates


class FlaggedCandidates(BaseModel):
    """The flagged frames a selection chooses from (the most uncertain ``max_candidates``), read from the stores:
    what :func:`choose_flagged` needs, so that the choice can run where no database is reachable."""

    committee_id: str
    committee_name: str
    n_audits: int
    n_audited_frames: int
    n_flagged: int
    frames: list[FlaggedFrame]
    configurations_zb64: str = Field(repr=False)


def flagged_candidates(
    stores: ElectroDBStores, committee: CommitteeDocument, n_select: int = 16, *, max_candidates: int = 2000
) -> FlaggedCandidates:
    """The flagged frames of ``committee``'s audits (at most ``max(n_select, max_candidates)``, the most uncertain),
    with their configurations read back from the trajectory store (the reading half of :func:`select_flagged`).

    Raises
    ------
    RefineError
        No audits, or the flagged frames are no longer stored.
    NothingFlaggedError
        No audited frame exceeds its threshold.
    """
    audits, candidates = flagged_audits(stores, committee)
    n_audited = sum(len(a.get("frames", [])) for a in audits)
    n_flagged = len(candidates)
    candidates = sorted(candidates, key=lambda c: -c[2])[: max(n_select, max_candidates)]
    records: list[FlaggedFrame] = []
    configurations: list[Atoms] = []
    for tid in sorted({a["trajectory_id"] for a, _, _ in candidates}):
        traj = load_trajectory(tid, stores.trajectories, stores.data, fields=("positions", "cells"))
        for audit, frame, score in candidates:
            if audit["trajectory_id"] != tid or frame >= traj.n_frames:  # a trajectory cut back since its audit
                continue
            atoms = Atoms(traj.symbols, positions=traj.positions[frame], cell=traj.cells[frame], pbc=True)
            atoms.wrap()
            configurations.append(atoms)
            records.append(
                FlaggedFrame(
                    trajectory_id=tid,
                    frame=frame,
                    sigma_F_max=score if math.isfinite(score) else None,
                    threshold_eV_per_A=float(committee.threshold_eV_per_A or audit["threshold_eV_per_A"]),
                )
            )
    if not configurations:
        raise RefineError(
            f"committee {committee.name!r}: the {n_flagged} flagged frames are no longer stored (trajectories cut "
            "back since their audit); audit them again: electrodb model audit --committee " + committee.name
        )
    return FlaggedCandidates(
        committee_id=committee.committee_id,
        committee_name=committee.name,
        n_audits=len(audits),
        n_audited_frames=n_audited,
        n_flagged=n_flagged,
        frames=records,
        configurations_zb64=encode_extxyz(configurations),
    )


def choose_flagged(
    candidates: FlaggedCandidates, n_select: int = 16, *, min_distance_fraction: float = 0.15
) -> FlaggedSelection:
    """Up to ``n_select`` mutually distinct candidates, the most uncertain first (the choosing half of
    :func:`select_flagged`: fingerprints, typical distance, :func:`~electrodb.analysis.committee.select_diverse`)."""
    if n_select < 1:
        raise RefineError(f"n_select must be at least 1, got {n_select}")
    records = candidates.frames
    configurations = decode_extxyz(candidates.configurations_zb64)
    r_max = min(FINGERPRINT_R_MAX_A, *(max_cutoff(np.asarray(a.cell)) for a in configurations))
    scores = np.array([np.inf if r.sigma_F_max is None else r.sigma_F_max for r in records])
    fingerprints = _fingerprints(configurations, r_max)
    typical = typical_distance(fingerprints)
    min_distance = min_distance_fraction * typical
    picks = select_diverse(fingerprints, scores, n_select, min_distance=min_distance)
    return FlaggedSelection(
        committee_id=candidates.committee_id,
        n_audits=candidates.n_audits,
        n_audited_frames=candidates.n_audited_frames,
        n_flagged=candidates.n_flagged,
        frames=[records[i] for i in picks],
        configurations_zb64=encode_extxyz([configurations[i] for i in picks]),
        min_distance=min_distance,
        typical_distance=typical,
    )


def select_flagged(
    stores: ElectroDBStores,
    committee: CommitteeDocument,
    n_select: int = 16,
    *,
    min_distance_fraction: float = 0.15,
    max_candidates: int = 2000,
) -> FlaggedSelection:
    """The up to ``n_select`` most uncertain, mutually distinct configurations the committee's audits flagged
    (:func:`flagged_candidates`, then :func:`choose_flagged`).

    Parameters
    ----------
    stores
        Holding ``audits``, ``trajectories`` and the frames (``data``).
    committee
        The committee whose audits are read (``audits`` with its ``committee_id``).
    n_select
        Most configurations to select.
    min_distance_fraction
        A flagged frame closer to a selected one than this fraction of :func:`typical_distance` (of the flagged
        frames' fingerprints) is a duplicate; 0 keeps every distinct frame.
    max_candidates
        Most flagged frames fingerprinted (the most uncertain ones); bounds the cost on long campaigns.

    Raises
    ------
    RefineError
        The committee has no audits (run ``electrodb model audit`` first).
    NothingFlaggedError
        No audited frame exceeds its threshold: nothing to refine.
    """
    if n_select < 1:
        raise RefineError(f"n_select must be at least 1, got {n_select}")
    candidates = flagged_candidates(stores, committee, n_select, max_candidates=max_candidates)
    return choose_flagged(candidates, n_select, min_distance_fraction=min_distance_fraction)
