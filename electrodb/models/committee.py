"""Model committees: K MACE members trained on splits of the same labelled data, and their evaluation on frames.

A committee is K models that should agree where the training data reached and disagree where it did not
(:mod:`electrodb.analysis.committee` turns their force spread into σ_F and a calibrated threshold). This module
holds what needs the models themselves and no database:

- :func:`evaluate_members` — energies (eV) and forces (eV/Å) of every member on every frame, each member loaded
  through the safe loader (:func:`electrodb.models.loader.load_model`: trust registry and sha256) and evaluated in
  float64; members that disagree on elements or cutoff are refused (:func:`check_members`);
  :func:`evaluate_configurations` does the same for configurations of different sizes (labelled data).
- :class:`CommitteeSettings` and :func:`committee_splits` — K, the seeds, how each member's data is split
  (``rotate`` or ``bootstrap``) and the calibration configurations held out from every member.
- :func:`train_committee` — trains the K members with :func:`electrodb.models.mace_train.train_mace` (one work
  folder each), from scratch or fine-tuned from a foundation file (one per member in a refine round), and returns a
  :class:`CommitteeTraining`. Registration (model files, the ``committees`` document) is
  :mod:`electrodb.flows.committee`'s.
"""

from __future__ import annotations

import base64
import io
import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.io import read, write
from pydantic import BaseModel, Field, field_validator, model_validator

from electrodb.models.files import ModelError
from electrodb.models.loaded import ModelIdentity
from electrodb.models.loader import load_model
from electrodb.models.mace_command import TrainingError
from electrodb.models.mace_train import TrainingResult, TrainingSettings, split_train_valid, train_mace

__all__ = [
    "CommitteeSettings",
    "CommitteeSplits",
    "CommitteeTraining",
    "check_members",
    "committee_splits",
    "decode_extxyz",
    "encode_extxyz",
    "evaluate_configurations",
    "evaluate_members",
    "train_committee",
]

#: Cutoffs closer than this (Å) count as the same.
_R_MAX_TOLERANCE_A = 1e-6


def encode_extxyz(configurations: Sequence[Atoms]) -> str:
    """extxyz text, zlib-compressed, base64 (the format of :func:`electrodb.flows.training.encode_configurations`)."""
    buffer = io.StringIO()
    clean = []
    for atoms in configurations:
        copy = atoms.copy()
        copy.calc = None
        clean.append(copy)
    write(buffer, clean, format="extxyz")
    return base64.b64encode(zlib.compress(buffer.getvalue().encode(), 6)).decode("ascii")


def decode_extxyz(blob: str) -> list[Atoms]:
    """The configurations of :func:`encode_extxyz` (an empty string gives none)."""
    if not blob:
        return []
    text = zlib.decompress(base64.b64decode(blob)).decode()
    return list(read(io.StringIO(text), index=":", format="extxyz"))


def check_members(identities: Sequence[ModelIdentity]) -> tuple[list[str], float | None]:
    """The elements and cutoff (Å) every member shares; :class:`ModelError` naming the member that differs.

    Parameters
    ----------
    identities
        :class:`~electrodb.models.loaded.ModelIdentity` of each member, in committee order.

    Returns
    -------
    elements, r_max
        The members' chemical symbols (as the first member lists them) and cutoff radius (Å; None when unknown).
    """
    if not identities:
        raise ModelError("a committee needs at least one member model; give the members' model files")
    first = identities[0]
    elements = list(first.elements or [])
    for index, ident in enumerate(identities[1:], start=1):
        if set(ident.elements or []) != set(elements):
            raise ModelError(
                f"committee member {index} ({ident.model_id[:19]}...) supports elements "
                f"{', '.join(ident.elements or []) or 'unknown'} but member 0 ({first.model_id[:19]}...) supports "
                f"{', '.join(elements) or 'unknown'}; train every member on the same labelled data"
            )
        same_cutoff = (ident.r_max is None and first.r_max is None) or (
            ident.r_max is not None and first.r_max is not None and abs(ident.r_max - first.r_max) <= _R_MAX_TOLERANCE_A
        )
        if not same_cutoff:
            raise ModelError(
                f"committee member {index} ({ident.model_id[:19]}...) has cutoff r_max {ident.r_max} Å but member 0 "
                f"({first.model_id[:19]}...) has {first.r_max} Å; train every member with the same r_max "
                "(or from the same foundation model)"
            )
    return elements, first.r_max


def evaluate_members(
    paths: Sequence[str | os.PathLike[str]],
    frames: Sequence[Atoms],
    device: str = "cpu",
    *,
    expected_ids: Sequence[str] | None = None,
    dtype: str = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """Energy and forces of every committee member on every frame.

    Each member is loaded with :func:`~electrodb.models.loader.load_model` (refused unless its sha256 is trusted,
    and unless it equals ``expected_ids[k]`` when given), checked against the others (:func:`check_members`) and
    evaluated with one calculator of its own, in ``dtype``: float32 by default, the precision MD runs in, so the
    driver reproduces the forces of the run it audits at half the cost of float64 (σ_F of 0.01–1 eV/Å is far above
    float32's rounding).

    Parameters
    ----------
    paths
        The members' model files, in committee order.
    frames
        Configurations with the same number of atoms N (positions in Å, cell, pbc); not modified.
    device
        Torch device (``'cpu'``, ``'cuda'``, ``'auto'``).
    expected_ids
        ``'sha256:<hex>'`` each file must have (e.g. the committee's ``member_ids``), or None.
    dtype
        ``'float32'`` (as MD) or ``'float64'``.

    Returns
    -------
    energies : ndarray, shape (K, F)
        Potential energy of each frame (eV).
    forces : ndarray, shape (K, F, N, 3)
        Forces (eV/Å).

    Raises
    ------
    ModelError
        A member that cannot be loaded or is not trusted, a hash mismatch, members that disagree on elements or
        cutoff, frames of different sizes, or elements the members do not support.
    """
    if not paths:
        raise ModelError("no committee members to evaluate; give at least one model file")
    if expected_ids is not None and len(expected_ids) != len(paths):
        raise ModelError(f"{len(expected_ids)} expected model ids for {len(paths)} member files; give one per member")
    sizes = sorted({len(atoms) for atoms in frames})
    if len(sizes) > 1:
        raise ModelError(f"frames have different numbers of atoms ({sizes}); evaluate one trajectory at a time")
    loaded = [
        load_model(str(path), dtype=dtype, device=device, expected_id=None if expected_ids is None else eid)
        for path, eid in zip(paths, expected_ids or [None] * len(paths), strict=True)
    ]
    check_members([member.identity for member in loaded])
    n_atoms = sizes[0] if sizes else 0
    energies = np.zeros((len(loaded), len(frames)))
    forces = np.zeros((len(loaded), len(frames), n_atoms, 3))
    if not frames:
        return energies, forces
    loaded[0].check_elements(set().union(*(atoms.get_chemical_symbols() for atoms in frames)))
    for k, member in enumerate(loaded):
        calc = member.calculator()
        for f, atoms in enumerate(frames):
            work = atoms.copy()
            work.calc = calc
            energies[k, f] = work.get_potential_energy()
            forces[k, f] = work.get_forces()
    return energies, forces


def evaluate_configurations(
    paths: Sequence[str | os.PathLike[str]],
    configurations: Sequence[Atoms],
    device: str = "cpu",
    *,
    expected_ids: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`evaluate_members` on configurations of any sizes (labelled data mixes boxes): one call per size.

    Returns
    -------
    energies : ndarray, shape (K, C)
        Energy of each member on each configuration (eV), in input order.
    forces : list of ndarray, each shape (K, N_c, 3)
        Forces (eV/Å) of each member on configuration c.
    """
    energies = np.zeros((len(paths), len(configurations)))
    forces: list[np.ndarray] = [np.empty(0)] * len(configurations)
    for size in sorted({len(atoms) for atoms in configurations}):
        index = [i for i, atoms in enumerate(configurations) if len(atoms) == size]
        e, f = evaluate_members(paths, [configurations[i] for i in index], device, expected_ids=expected_ids)
        for j, i in enumerate(index):
            energies[:, i] = e[:, j]
            forces[i] = f[:, j]
    return energies, forces


class CommitteeSettings(BaseModel):
    """How a committee is trained.

    Attributes
    ----------
    k
        Number of members (at least 2).
    seeds
        One training seed per member; default ``training.seed + i`` for member i.
    split
        How each member's data is chosen from the configurations not held out for calibration (the *pool*):

        - ``'rotate'`` (default): the pool is shuffled once (seed ``training.seed``) and member i validates on the
          ``valid_fraction`` of it that starts at position ``i·P/K`` (wrapping round) and trains on the rest:
          every configuration is used, none twice, and the members differ by validation fold and seed.
        - ``'bootstrap'``: member i validates on a random ``valid_fraction`` of the pool (its seed) and trains on as
          many configurations drawn *with replacement* from the rest: the classic bagging ensemble (about 37 % of
          those are left out of each member, so the members see visibly different data).
    training
        The base :class:`~electrodb.models.mace_train.TrainingSettings` of every member (its ``seed`` and
        ``foundation_model`` are set per member).
    foundation
        A MACE file or foundation name to fine-tune every member from (None: train from scratch).
    target_error_eV_per_A
        The per-atom force error |F_driver − F_ref| (eV/Å) the calibrated σ_F threshold should flag
        (:func:`electrodb.analysis.committee.calibrate_threshold`). Default 0.5 eV/Å: about 1.7 times the typical
        per-atom error of the demo model in its own domain (held-out force-component RMSE 0.17 eV/Å, so the error
        vector's norm is ≈ 0.17·√3 ≈ 0.3 eV/Å); a lower target would flag frames the model describes as well as
        its own test set, a higher one would let through errors comparable to the thermal forces of water
        (≈ 1 eV/Å per atom).
    domain_quantile
        A frame is flagged only beyond this quantile of the held-out configurations' max σ_F as well (None: the
        error target alone; :func:`electrodb.analysis.committee.calibrate_threshold`).
    calibration_fraction, min_calibration
        Fraction of the configurations held out from every member (never trained or validated on) to calibrate
        the threshold against true errors, and the fewest configurations held out (the calibration refuses fewer
        than 5).
    """

    k: int = Field(4, ge=2)
    seeds: list[int] | None = None
    split: Literal["rotate", "bootstrap"] = "rotate"
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    foundation: str | None = None
    target_error_eV_per_A: float = Field(0.5, gt=0)
    domain_quantile: float | None = Field(0.99, gt=0, le=1)
    calibration_fraction: float = Field(0.1, gt=0, lt=1)
    min_calibration: int = Field(5, ge=1)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"committee seeds must differ from each other, got {value}")
        return value

    @model_validator(mode="after")
    def _seeds_per_member(self) -> CommitteeSettings:
        if self.seeds is not None and len(self.seeds) != self.k:
            raise ValueError(f"{len(self.seeds)} seeds for k={self.k} members; give one seed per member")
        return self

    def member_seeds(self) -> list[int]:
        """The seed of each member: :attr:`seeds`, or ``training.seed + i``."""
        return list(self.seeds) if self.seeds is not None else [self.training.seed + i for i in range(self.k)]


class CommitteeSplits(BaseModel):
    """Indices into the configurations: held out for calibration, and each member's training and validation.

    ``train[i]`` may repeat indices (``'bootstrap'``); no member trains or validates on a calibration index.
    """

    calibration: list[int]
    train: list[list[int]]
    valid: list[list[int]]


def committee_splits(n: int, settings: CommitteeSettings, calibration: Sequence[int] | None = None) -> CommitteeSplits:
    """Split ``range(n)`` for a committee (see :attr:`CommitteeSettings.split`); deterministic in the seeds.

    Parameters
    ----------
    n
        Number of labelled configurations.
    settings
        The committee settings.
    calibration
        The calibration indices to hold out (a refine round keeps its parent's); default a random
        ``calibration_fraction`` (at least ``min_calibration``).
    """
    base = settings.training.seed
    if calibration is None:
        n_cal = max(settings.min_calibration, round(settings.calibration_fraction * n))
        calibration = np.random.default_rng(base).permutation(n)[:n_cal].tolist()
    cal = sorted({int(i) for i in calibration})
    if any(not 0 <= i < n for i in cal):
        raise ValueError(f"calibration indices must lie in 0..{n - 1}, got {cal}")
    held = set(cal)
    pool = [i for i in np.random.default_rng(base).permutation(n).tolist() if i not in held]
    size = len(pool)
    if size < 2:
        raise ValueError(
            f"{n} labelled configurations leave {size} for training after {len(cal)} held out for calibration; "
            "a committee member needs at least 2 (one to train, one to validate): label more configurations "
            "or lower min_calibration"
        )
    n_valid = min(size - 1, max(1, round(settings.training.valid_fraction * size)))
    train, valid = [], []
    for i, seed in enumerate(settings.member_seeds()):
        if settings.split == "rotate":
            start = (i * size) // settings.k
            chosen = [pool[(start + j) % size] for j in range(n_valid)]
            rest = [c for c in pool if c not in set(chosen)]
        else:
            rng = np.random.default_rng(seed)
            chosen = rng.choice(pool, size=n_valid, replace=False).tolist()
            others = [c for c in pool if c not in set(chosen)]
            rest = sorted(rng.choice(others, size=len(others), replace=True).tolist())
        train.append([int(c) for c in rest])
        valid.append(sorted(int(c) for c in chosen))
    return CommitteeSplits(calibration=cal, train=train, valid=valid)


class CommitteeTraining(BaseModel):
    """Outcome of :func:`train_committee`: the K members, how they were trained, and the data.

    Attributes
    ----------
    members
        Each member's :class:`~electrodb.models.mace_train.TrainingResult` (model file, ``model_id``, held-out
        errors on its own validation configurations).
    seeds, split, splits
        Each member's seed, the split kind, and the indices (into the configurations) each trained and validated on
        and those held out for calibration.
    settings
        The :class:`CommitteeSettings` as a dict.
    foundation_paths
        The file each member was fine-tuned from (a refine round), or None.
    elements, r_max
        Shared by every member (Å).
    data_zb64
        Every labelled configuration (:func:`encode_extxyz`), in the order the indices refer to.
    wall_time_s
        Seconds spent training all members.
    """

    members: list[TrainingResult]
    seeds: list[int]
    split: str
    splits: CommitteeSplits
    settings: dict[str, Any] = Field(default_factory=dict)
    foundation_paths: list[str] | None = None
    elements: list[str] = Field(default_factory=list)
    r_max: float | None = None
    n_configurations: int
    data_zb64: str = Field(repr=False)
    wall_time_s: float = 0.0

    @property
    def k(self) -> int:
        return len(self.members)

    @property
    def model_paths(self) -> list[str]:
        return [m.model_path for m in self.members]

    @property
    def model_ids(self) -> list[str]:
        return [m.model_id for m in self.members]

    def configurations(self) -> list[Atoms]:
        """Every labelled configuration, in index order."""
        return decode_extxyz(self.data_zb64)

    def calibration_configurations(self) -> list[Atoms]:
        """The configurations held out from every member (:attr:`CommitteeSplits.calibration`)."""
        configs = self.configurations()
        return [configs[i] for i in self.splits.calibration]


def _arranged(configurations: Sequence[Atoms], train: list[int], valid: list[int], settings: TrainingSettings):
    """The configurations ordered so that ``train_mace``'s own seeded split gives exactly ``train`` / ``valid``."""
    n = len(train) + len(valid)
    train_pos, valid_pos = split_train_valid(n, settings.valid_fraction, settings.seed)
    if len(valid_pos) != len(valid):
        raise ValueError(f"internal split mismatch: {len(valid_pos)} validation slots for {len(valid)} configurations")
    out: list[Atoms | None] = [None] * n
    for pos, index in zip(train_pos.tolist(), train, strict=True):
        out[pos] = configurations[index]
    for pos, index in zip(valid_pos.tolist(), valid, strict=True):
        out[pos] = configurations[index]
    return out


def train_committee(
    configurations: Sequence[Atoms],
    settings: CommitteeSettings | None = None,
    workdir: str | os.PathLike[str] = "committee_training",
    *,
    foundation_paths: Sequence[str | os.PathLike[str]] | None = None,
    calibration: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CommitteeTraining:
    """Train the K members of a committee with ``mace_run_train``, one work folder each (``workdir/member-<i>``).

    Parameters
    ----------
    configurations
        Labelled configurations (``REF_energy`` in eV, ``REF_forces`` in eV/Å).
    settings
        The :class:`CommitteeSettings` (default K = 4, ``rotate`` splits, from scratch).
    workdir
        Parent folder of the members' training folders.
    foundation_paths
        One MACE file per member to fine-tune it from (a refine round fine-tunes member k from the old member k);
        overrides ``settings.foundation``.
    calibration
        Indices to hold out for calibration (default: drawn, :func:`committee_splits`).
    progress
        Receives a line per member start and MACE's progress lines, prefixed with the member.

    Raises
    ------
    TrainingError
        A member's ``mace_run_train`` failed, or it diverged (non-finite held-out errors); nothing is registered
        (this function registers nothing; :func:`electrodb.flows.committee.store_committee` does).
    ModelError
        The trained members disagree on elements or cutoff.
    ValueError
        Too few configurations, or ``foundation_paths`` not one per member.
    """
    settings = settings or CommitteeSettings()
    if foundation_paths is not None and len(foundation_paths) != settings.k:
        raise ValueError(f"{len(foundation_paths)} foundation files for k={settings.k} members; give one per member")
    splits = committee_splits(len(configurations), settings, calibration)
    work = Path(workdir).expanduser().resolve()
    started = time.perf_counter()
    members: list[TrainingResult] = []
    for i, seed in enumerate(settings.member_seeds()):
        foundation = str(foundation_paths[i]) if foundation_paths is not None else settings.foundation
        member_settings = settings.training.model_copy(update={"seed": seed, "foundation_model": foundation})
        if progress:
            source = f"fine-tuning from {foundation}" if foundation else "from scratch"
            progress(
                f"member {i + 1}/{settings.k}: {len(splits.train[i])} train, {len(splits.valid[i])} valid, {source}"
            )
        arranged = _arranged(configurations, splits.train[i], splits.valid[i], member_settings)
        member_log = (lambda line, i=i: progress(f"member {i + 1}: {line}")) if progress else None
        try:
            result = train_mace(arranged, member_settings, work / f"member-{i}", progress=member_log)
        except TrainingError as exc:
            first = str(exc).splitlines()[0]
            raise TrainingError(f"committee member {i} (seed {seed}) failed to train: {first}") from exc
        errors = [result.rmse_forces_eV_per_A, result.rmse_energy_meV_per_atom]
        if any(e is None or not math.isfinite(e) for e in errors):
            raise TrainingError(
                f"committee member {i} (seed {seed}) diverged: held-out force RMSE {errors[0]} eV/Å, energy RMSE "
                f"{errors[1]} meV/atom; lower the learning rate (lr) or check the labels; nothing was registered"
            )
        members.append(result)
    elements, r_max = check_members(
        [
            ModelIdentity(model_id=m.model_id, kind="mace_file", name=m.model_path, elements=m.elements, r_max=m.r_max)
            for m in members
        ]
    )
    return CommitteeTraining(
        members=members,
        seeds=settings.member_seeds(),
        split=settings.split,
        splits=splits,
        settings=settings.model_dump(mode="json"),
        foundation_paths=[str(p) for p in foundation_paths] if foundation_paths is not None else None,
        elements=elements,
        r_max=r_max,
        n_configurations=len(configurations),
        data_zb64=encode_extxyz(configurations),
        wall_time_s=time.perf_counter() - started,
    )
