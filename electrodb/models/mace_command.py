"""The ``mace_run_train`` command of :func:`electrodb.models.mace_train.train_mace`.

Its argument list from :class:`~electrodb.models.mace_train.TrainingSettings` (:func:`build_train_command`), its
logged run (:func:`run_logged`) and the error of both (:class:`TrainingError`).
"""

from __future__ import annotations

import collections
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ase.data import atomic_numbers

from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY, STRESS_KEY
from electrodb.models.reference import ModelRef, resolve_foundation_path

__all__ = ["PROGRESS_EVERY_S", "TrainingError", "build_train_command", "mace_run_train_executable", "run_logged"]

log = logging.getLogger("electrodb.models.mace_train")  # the logger name from before this module was split off


class TrainingError(RuntimeError):
    """``mace_run_train`` failed, or its output could not be found or evaluated."""


def mace_run_train_executable() -> list[str]:
    """The command that runs ``mace_run_train``: the script beside this Python, on ``PATH``, or its module."""
    candidate = Path(sys.executable).parent / "mace_run_train"
    if candidate.is_file():
        return [str(candidate)]
    found = shutil.which("mace_run_train")
    if found:
        return [found]
    return [sys.executable, "-m", "mace.cli.run_train"]


def _e0s_argument(e0s: str | dict[str, float]) -> str:
    """The ``--E0s`` value: the keyword or file as given, or ``{Z: E0 (eV)}`` for a dict of symbols or numbers."""
    if isinstance(e0s, str):
        return e0s
    mapping = {}
    for key, value in e0s.items():
        z = int(key) if key.isdigit() else atomic_numbers[key]
        mapping[z] = float(value)
    return repr(dict(sorted(mapping.items())))


def _resolve_foundation(settings: Any) -> str | None:
    """The absolute path of ``settings.foundation_model`` (a file or a foundation name), or None without one."""
    if settings.foundation_model is None:
        return None
    ref = ModelRef.parse(settings.foundation_model)
    if ref.kind == "mace_foundation":
        return str(resolve_foundation_path(ref.name, settings.foundation_cache_dir))
    if ref.kind != "mace_file":
        raise TrainingError(f"foundation_model must be a MACE model, got {settings.foundation_model!r}")
    path = Path(ref.path or "").expanduser().resolve()
    if not path.is_file():
        raise TrainingError(f"foundation model file {path} does not exist")
    return str(path)


def build_train_command(settings: Any, train_file: str, valid_file: str, workdir: str) -> list[str]:
    """The ``mace_run_train`` argument list for ``settings`` (all paths absolute).

    Parameters
    ----------
    settings
        :class:`~electrodb.models.mace_train.TrainingSettings` (typed loosely: that module imports this one).
    train_file, valid_file
        The extxyz files of the training and validation configurations.
    workdir
        The training folder (models, checkpoints, logs and results go below it).
    """
    s = settings
    work = Path(workdir).resolve()
    cmd = [
        *mace_run_train_executable(),
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


def run_logged(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    tail_lines: int = 40,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Run ``cmd`` in ``cwd`` with ``env``, its output (stdout and stderr) written to ``log_path``.

    ``progress``, when given, receives a line of the output at each epoch and at least every
    :data:`PROGRESS_EVERY_S` seconds while lines arrive. A non-zero exit raises :class:`TrainingError` ending with
    the last ``tail_lines`` lines.
    """
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
