"""MACE training with ``mace_run_train``: settings, the command line, the run, and held-out evaluation.

One subprocess plus pure functions; the jobflow Makers that sample, label, train and store a campaign's
model live in :mod:`electrodb.flows.training`, and the training data come from :mod:`electrodb.models.labelling`.

:func:`train_mace` writes the labelled configurations as extxyz (train/valid split by
:func:`split_train_valid`), runs ``mace_run_train`` (:func:`build_train_command` from
:class:`TrainingSettings`), picks the stage-two model, and measures held-out errors by predicting the
validation configurations with the trained model (:func:`evaluate_model`); the outcome is a
:class:`TrainingResult`.

Delta learning (``train_mace(..., long_range=LongRangeSettings(...))``, ``docs/long-range.md``): the
long-range Coulomb term of :mod:`electrodb.models.longrange` is first subtracted from every reference energy, force
and stress (:func:`~electrodb.models.delta_learning.subtract_long_range`), so that the NNP learns E_ref − E_LR and MD
adds E_LR back.

Modules: :mod:`electrodb.models.mace_command` (the command line and its logged run, :class:`TrainingError`),
:mod:`electrodb.models.delta_learning` (the long-range term removed from the labels); this module holds the
settings, the result, the held-out evaluation and :func:`train_mace`, and re-exports the public names of the others.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.io import write
from pydantic import BaseModel, Field, field_validator

from electrodb.models.delta_learning import subtract_long_range
from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY
from electrodb.models.loader import load_model
from electrodb.models.mace_command import TrainingError, build_train_command, run_logged
from electrodb.models.trust import record_trust
from electrodb.systems.long_range import LongRangeSettings

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

# mace is imported only in evaluate_model: it is heavy, and must be imported before e3nn (weights-only loading).

__all__ = [
    "RESULT_FILE",
    "TrainingResult",
    "TrainingSettings",
    "evaluate_model",
    "split_train_valid",
    "train_mace",
]

log = logging.getLogger(__name__)

#: File in the training folder holding the :class:`TrainingResult` as JSON.
RESULT_FILE = "training_result.json"


class TrainingSettings(BaseModel):
    """Settings of ``mace_run_train`` (mace-torch 0.3.16 flag names).

    The defaults train a small MACE (~40k parameters) in minutes on 2 CPU cores. ``swa`` enables MACE's "stage
    two" (flag ``--swa``/``--stage_two``): from epoch ``start_swa`` the energy weight rises to
    ``swa_energy_weight`` and the learning rate drops to ``swa_lr``; this removes a constant energy offset,
    and the ``*_stagetwo.model`` file is then the one used. With ``foundation_model`` (a path or a foundation
    name such as ``'mace-mp-0:small'``) MACE fine-tunes that model, taking architecture and r_max from it
    (``num_channels``, ``max_L``, ``r_max``, ... are then not passed; ``--multiheads_finetuning False``).
    """

    model: Literal["MACE", "ScaleShiftMACE"] = "MACE"
    name: str = "electrodb_mace"
    num_channels: int = 16
    max_L: int = 1
    correlation: int = 3
    max_ell: int = 2
    num_interactions: int = 2
    r_max: float = 4.0
    radial_MLP: list[int] = Field(default_factory=lambda: [32, 32, 32])
    num_radial_basis: int = 8
    batch_size: int = 4
    valid_batch_size: int | None = None
    max_num_epochs: int = 10
    lr: float = 0.01
    swa: bool = True
    start_swa: int | None = Field(default=None, description="first stage-two epoch; None → 70 % of epochs")
    swa_lr: float = 0.001
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    swa_energy_weight: float = 1000.0
    swa_forces_weight: float = 100.0
    loss: str = "weighted"
    ema: bool = False
    ema_decay: float = 0.99
    valid_fraction: float = 0.1
    seed: int = 123
    default_dtype: Literal["float32", "float64"] = "float32"
    device: str = "cpu"
    foundation_model: str | None = None
    foundation_cache_dir: str | None = None
    E0s: str | dict[str, float] = "average"
    num_threads: int | None = Field(default=None, description="OMP_NUM_THREADS; None → inherit")
    extra_args: list[str] = Field(default_factory=list)

    @field_validator("valid_fraction")
    @classmethod
    def _check_fraction(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {value}")
        return value

    @field_validator("E0s")
    @classmethod
    def _check_e0s(cls, value: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(value, dict):
            return {str(k): float(v) for k, v in value.items()}
        if value.lower() not in ("average", "foundation", "estimated") and not value.endswith(".json"):
            raise ValueError(f"E0s must be 'average', 'foundation', 'estimated', a .json path or a dict: {value!r}")
        return value

    @property
    def effective_start_swa(self) -> int:
        """First stage-two epoch actually passed to MACE."""
        if self.start_swa is not None:
            return self.start_swa
        return max(1, round(0.7 * self.max_num_epochs))

    @property
    def runs_stage_two(self) -> bool:
        return self.swa and self.effective_start_swa < self.max_num_epochs


class TrainingResult(BaseModel):
    """Outcome of :func:`train_mace`. Errors are on the held-out (validation) configurations.

    Attributes
    ----------
    model_path : str
        The selected model file (``<name>_stagetwo.model`` if stage two ran, else ``<name>.model``).
    model_id : str
        ``'sha256:<hex>'`` of that file.
    rmse_energy_meV_per_atom, mae_energy_meV_per_atom : float or None
        Energy-per-atom errors (meV/atom); None without validation data.
    rmse_forces_eV_per_A, mae_forces : float or None
        Force-component errors (eV/Å).
    """

    model_path: str
    model_id: str
    n_train: int
    n_valid: int
    rmse_energy_meV_per_atom: float | None = None
    mae_energy_meV_per_atom: float | None = None
    rmse_forces_eV_per_A: float | None = None
    mae_forces: float | None = None
    stage_two: bool = False
    elements: list[str] = Field(default_factory=list)
    r_max: float | None = None
    n_parameters: int | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    mace_version: str | None = None
    wall_time_s: float = 0.0
    command: list[str] = Field(default_factory=list)
    log_path: str | None = None
    workdir: str | None = None
    long_range: dict[str, Any] | None = Field(
        None, description="LongRangeSettings removed from the labels before training (delta learning); None: none"
    )
    long_range_charges: str | None = Field(None, description="where the charges of the removed term came from")


def split_train_valid(n: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of ``range(n)``: ``n_valid = max(1, round(f·n))`` (needs ``n >= 2``)."""
    if n < 2:
        raise ValueError(f"need at least 2 configurations to train and validate, got {n}")
    n_valid = min(n - 1, max(1, round(valid_fraction * n)))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def evaluate_model(
    model_path: str | os.PathLike[str],
    configurations: Sequence[Atoms],
    device: str = "cpu",
    default_dtype: str = "float64",
) -> dict[str, float]:
    r"""Errors of a MACE model against ``REF_energy`` / ``REF_forces`` labels.

    Returns ``rmse_energy_meV_per_atom``, ``mae_energy_meV_per_atom`` (of :math:`(E_{pred}-E_{ref})/N`,
    meV/atom) and ``rmse_forces_eV_per_A``, ``mae_forces_eV_per_A`` over all force components (eV/Å).
    """
    if not configurations:
        raise ValueError("no configurations to evaluate")
    import mace  # noqa: F401  (before e3nn: sets up weights-only loading)
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(model_path), device=device, default_dtype=default_dtype)
    de, df = [], []
    for atoms in configurations:
        work = atoms.copy()
        work.calc = calc
        de.append((work.get_potential_energy() - float(atoms.info[ENERGY_KEY])) / len(atoms))
        df.append((work.get_forces() - np.asarray(atoms.arrays[FORCES_KEY])).ravel())
    de_arr, df_arr = np.asarray(de), np.concatenate(df)
    return {
        "rmse_energy_meV_per_atom": float(1e3 * np.sqrt(np.mean(de_arr**2))),
        "mae_energy_meV_per_atom": float(1e3 * np.mean(np.abs(de_arr))),
        "rmse_forces_eV_per_A": float(np.sqrt(np.mean(df_arr**2))),
        "mae_forces_eV_per_A": float(np.mean(np.abs(df_arr))),
    }


def _write_extxyz(path: Path, configurations: Sequence[Atoms]) -> None:
    clean = []
    for atoms in configurations:
        if ENERGY_KEY not in atoms.info or FORCES_KEY not in atoms.arrays:
            raise ValueError(f"configuration without {ENERGY_KEY}/{FORCES_KEY} labels; run label_configurations")
        copy = atoms.copy()
        copy.calc = None
        clean.append(copy)
    write(str(path), clean, format="extxyz")


def train_mace(
    configurations: Sequence[Atoms],
    settings: TrainingSettings | None = None,
    workdir: str | os.PathLike[str] = "mace_training",
    progress: Callable[[str], None] | None = None,
    *,
    long_range: Any = None,
    salts: Sequence[str] | str | None = None,
) -> TrainingResult:
    """Train a MACE model on labelled configurations with ``mace_run_train``.

    With ``long_range`` (:class:`electrodb.models.longrange.LongRangeSettings`) the model is trained with that
    term removed (:func:`subtract_long_range`; ``salts`` gives the formal ion charges when the configurations
    carry no box labels) and the result records it (``long_range``), so that MD adds it back; the held-out
    errors are then those of NNP + term against the full reference labels (identical to NNP against the
    reduced labels, since the subtraction is exact).

    Splits the configurations into ``train.xyz`` and ``valid.xyz`` (``settings.valid_fraction``, seeded),
    runs ``mace_run_train`` in ``workdir`` (log kept in ``workdir/mace_run_train.log``), selects
    ``models/<name>_stagetwo.model`` when stage two ran (else ``models/<name>.model``), evaluates it on the
    validation configurations and writes the result to ``workdir/training_result.json``. ``progress``, when
    given, receives a line from MACE's log at each epoch and at least every ``PROGRESS_EVERY_S`` seconds while
    lines arrive, so a long training is never silent.

    Raises
    ------
    TrainingError
        Non-zero exit (message ends with the log tail) or missing model file.
    """
    settings = settings or TrainingSettings()
    charges_from = None
    if long_range is not None:
        long_range = LongRangeSettings.model_validate(long_range)
        configurations = subtract_long_range(configurations, long_range, salts)
        salt_text = ",".join([salts] if isinstance(salts, str) else list(salts or []))
        if isinstance(long_range.charges, dict):
            charges_from = "explicit charges"
        elif all("role" in a.arrays for a in configurations):
            charges_from = f"box labels (role/ion_center), salt {salt_text}"
        else:
            charges_from = f"per element from the formal charges of {salt_text}"
    work = Path(workdir).expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    # Stale checkpoints/models of the same name would be picked up by MACE's final evaluation or by us.
    for stale in [*work.glob(f"checkpoints/{settings.name}_*"), *work.glob(f"models/{settings.name}*.model")]:
        stale.unlink()
    train_idx, valid_idx = split_train_valid(len(configurations), settings.valid_fraction, settings.seed)
    train_set = [configurations[i] for i in train_idx]
    valid_set = [configurations[i] for i in valid_idx]
    train_file, valid_file = work / "train.xyz", work / "valid.xyz"
    _write_extxyz(train_file, train_set)
    _write_extxyz(valid_file, valid_set)

    cmd = build_train_command(settings, str(train_file), str(valid_file), str(work))
    env = dict(os.environ)
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("WANDB_MODE", "disabled")
    if settings.num_threads is not None:
        env["OMP_NUM_THREADS"] = str(settings.num_threads)
    log_path = work / "mace_run_train.log"
    start = time.perf_counter()
    log.info("running %s", " ".join(cmd))
    run_logged(cmd, work, env, log_path, progress=progress)
    wall = time.perf_counter() - start

    models = work / "models"
    stage_two_path, plain_path = models / f"{settings.name}_stagetwo.model", models / f"{settings.name}.model"
    stage_two = settings.runs_stage_two and stage_two_path.is_file()
    model_path = stage_two_path if stage_two else plain_path
    if not model_path.is_file():
        found = sorted(p.name for p in models.glob("*")) if models.is_dir() else []
        raise TrainingError(f"mace_run_train finished but {model_path} is missing (found {found}; log {log_path})")

    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    # written by our own mace_run_train just now: trusted by its sha256 (docs/models.md)
    record_trust(model_path, f"sha256:{digest}", source="trained by electrodb", name=settings.name)
    identity = load_model(str(model_path), dtype=settings.default_dtype, device="cpu").identity
    record_trust(
        model_path, f"sha256:{digest}", source="trained by electrodb", elements=identity.elements, r_max=identity.r_max
    )
    errors = evaluate_model(model_path, valid_set, device="cpu", default_dtype="float64")
    try:
        mace_version: str | None = metadata.version("mace-torch")
    except metadata.PackageNotFoundError:
        mace_version = None
    result = TrainingResult(
        model_path=str(model_path),
        model_id=f"sha256:{digest}",
        n_train=len(train_set),
        n_valid=len(valid_set),
        rmse_energy_meV_per_atom=errors["rmse_energy_meV_per_atom"],
        mae_energy_meV_per_atom=errors["mae_energy_meV_per_atom"],
        rmse_forces_eV_per_A=errors["rmse_forces_eV_per_A"],
        mae_forces=errors["mae_forces_eV_per_A"],
        stage_two=stage_two,
        elements=identity.elements or [],
        r_max=identity.r_max,
        n_parameters=identity.n_parameters,
        settings=settings.model_dump(),
        mace_version=mace_version,
        wall_time_s=wall,
        command=cmd,
        log_path=str(log_path),
        workdir=str(work),
        long_range=long_range.model_dump(mode="json") if long_range is not None else None,
        long_range_charges=charges_from,
    )
    (work / RESULT_FILE).write_text(result.model_dump_json(indent=1), encoding="utf-8")
    return result
