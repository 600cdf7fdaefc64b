"""MACE training with ``mace_run_train``: settings, the command line, the run, and held-out evaluation.

One subprocess plus pure functions; the jobflow Makers that sample, label, train and store a campaign's
model live in :mod:`electrodb.flows.training`, and the training data come from :mod:`electrodb.labelling`.

:func:`train_mace` writes the labelled configurations as extxyz (train/valid split by
:func:`split_train_valid`), runs ``mace_run_train`` (:func:`build_train_command` from
:class:`TrainingSettings`), picks the stage-two model, and measures held-out errors by predicting the
validation configurations with the trained model (:func:`evaluate_model`); the outcome is a
:class:`TrainingResult`.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, Field, field_validator

from electrodb.labelling import ENERGY_KEY, FORCES_KEY, STRESS_KEY

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

__all__ = [
    "TrainingError",
    "TrainingResult",
    "TrainingSettings",
    "build_train_command",
    "evaluate_model",
    "split_train_valid",
    "train_mace",
]

log = logging.getLogger(__name__)

#: File in the training folder holding the :class:`TrainingResult` as JSON.
RESULT_FILE = "training_result.json"


class TrainingError(RuntimeError):
    """``mace_run_train`` failed, or its output could not be found or evaluated."""


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


def split_train_valid(n: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of ``range(n)``: ``n_valid = max(1, round(f·n))`` (needs ``n >= 2``)."""
    if n < 2:
        raise ValueError(f"need at least 2 configurations to train and validate, got {n}")
    n_valid = min(n - 1, max(1, round(valid_fraction * n)))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def _mace_run_train_executable() -> list[str]:
    candidate = Path(sys.executable).parent / "mace_run_train"
    if candidate.is_file():
        return [str(candidate)]
    found = shutil.which("mace_run_train")
    if found:
        return [found]
    return [sys.executable, "-m", "mace.cli.run_train"]


def _e0s_argument(e0s: str | dict[str, float]) -> str:
    if isinstance(e0s, str):
        return e0s
    from ase.data import atomic_numbers

    mapping = {}
    for key, value in e0s.items():
        z = int(key) if key.isdigit() else atomic_numbers[key]
        mapping[z] = float(value)
    return repr(dict(sorted(mapping.items())))


def _resolve_foundation(settings: TrainingSettings) -> str | None:
    if settings.foundation_model is None:
        return None
    from electrodb.models import ModelRef, resolve_foundation_path

    ref = ModelRef.parse(settings.foundation_model)
    if ref.kind == "mace_foundation":
        return str(resolve_foundation_path(ref.name, settings.foundation_cache_dir))
    if ref.kind != "mace_file":
        raise TrainingError(f"foundation_model must be a MACE model, got {settings.foundation_model!r}")
    path = Path(ref.path or "").expanduser().resolve()
    if not path.is_file():
        raise TrainingError(f"foundation model file {path} does not exist")
    return str(path)


def build_train_command(settings: TrainingSettings, train_file: str, valid_file: str, workdir: str) -> list[str]:
    """The ``mace_run_train`` argument list for ``settings`` (all paths absolute)."""
    s = settings
    work = Path(workdir).resolve()
    cmd = [
        *_mace_run_train_executable(),
        f"--name={s.name}",
        f"--seed={s.seed}",
        f"--work_dir={work}",
        f"--model_dir={work / 'models'}",
        f"--checkpoints_dir={work / 'checkpoints'}",
        f"--log_dir={work / 'logs'}",
        f"--results_dir={work / 'results'}",
        f"--train_file={train_file}",
        f"--valid_file={valid_file}",
        f"--energy_key={ENERGY_KEY}",
        f"--forces_key={FORCES_KEY}",
        f"--stress_key={STRESS_KEY}",
        f"--model={s.model}",
    ]
    foundation = _resolve_foundation(s)
    if foundation is None:
        cmd += [
            f"--num_channels={s.num_channels}",
            f"--max_L={s.max_L}",
            f"--correlation={s.correlation}",
            f"--max_ell={s.max_ell}",
            f"--num_interactions={s.num_interactions}",
            f"--r_max={s.r_max}",
            "--radial_MLP=[" + ",".join(str(int(w)) for w in s.radial_MLP) + "]",
            f"--num_radial_basis={s.num_radial_basis}",
        ]
    else:  # MACE takes architecture and r_max from the foundation model; passing ours would mislead
        cmd += [f"--foundation_model={foundation}", "--multiheads_finetuning=False"]
    cmd += [
        f"--batch_size={s.batch_size}",
        f"--valid_batch_size={s.valid_batch_size or s.batch_size}",
        f"--max_num_epochs={s.max_num_epochs}",
        f"--lr={s.lr}",
        f"--loss={s.loss}",
        f"--energy_weight={s.energy_weight}",
        f"--forces_weight={s.forces_weight}",
        f"--E0s={_e0s_argument(s.E0s)}",
        f"--default_dtype={s.default_dtype}",
        f"--device={s.device}",
        "--plot=False",
    ]
    if s.swa:
        cmd += [
            "--swa",
            f"--start_swa={s.effective_start_swa}",
            f"--swa_lr={s.swa_lr}",
            f"--swa_energy_weight={s.swa_energy_weight}",
            f"--swa_forces_weight={s.swa_forces_weight}",
        ]
    if s.ema:
        cmd += ["--ema", f"--ema_decay={s.ema_decay}"]
    if s.device.startswith("cuda"):
        cmd.append("--save_cpu")
    return cmd + list(s.extra_args)


#: Seconds between progress lines forwarded from ``mace_run_train`` (see :func:`train_mace` ``progress``).
PROGRESS_EVERY_S = 5.0


def _run_logged(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    tail_lines: int = 40,
    progress: Callable[[str], None] | None = None,
) -> None:
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    started = last = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log_file:
        log_file.write("$ " + " ".join(cmd) + "\n")
        log_file.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log_file.write(line)
            tail.append(line.rstrip("\n"))
            log.debug("mace_run_train: %s", line.rstrip())
            now = time.perf_counter()
            if progress and line.strip() and (now - last >= PROGRESS_EVERY_S or "Epoch" in line):
                text = line.strip().split(" INFO: ")[-1]
                progress(f"training {now - started:4.0f} s: {text[:140]}")
                last = now
        returncode = proc.wait()
    if returncode != 0:
        joined = "\n".join(tail)
        raise TrainingError(f"mace_run_train exited with code {returncode} (log: {log_path}); last lines:\n{joined}")


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
    import mace  # noqa: F401  (before e3nn)
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
    from ase.io import write

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
) -> TrainingResult:
    """Train a MACE model on labelled configurations with ``mace_run_train``.

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
    _run_logged(cmd, work, env, log_path, progress=progress)
    wall = time.perf_counter() - start

    models = work / "models"
    stage_two_path, plain_path = models / f"{settings.name}_stagetwo.model", models / f"{settings.name}.model"
    stage_two = settings.runs_stage_two and stage_two_path.is_file()
    model_path = stage_two_path if stage_two else plain_path
    if not model_path.is_file():
        found = sorted(p.name for p in models.glob("*")) if models.is_dir() else []
        raise TrainingError(f"mace_run_train finished but {model_path} is missing (found {found}; log {log_path})")

    from electrodb.models import load_model

    identity = load_model(str(model_path), dtype=settings.default_dtype, device="cpu").identity
    errors = evaluate_model(model_path, valid_set, device="cpu", default_dtype="float64")
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
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
    )
    (work / RESULT_FILE).write_text(result.model_dump_json(indent=1), encoding="utf-8")
    return result
