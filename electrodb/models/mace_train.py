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
and stress (:func:`subtract_long_range`), so that the NNP learns E_ref − E_LR and MD adds E_LR back.
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

from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY, STRESS_KEY

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

__all__ = [
    "TrainingError",
    "TrainingResult",
    "TrainingSettings",
    "build_train_command",
    "evaluate_model",
    "long_range_charges",
    "split_train_valid",
    "subtract_long_range",
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
    from electrodb.models.loader import ModelRef, resolve_foundation_path

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


#: ``info`` key of each delta-learning configuration holding the long-range energy that was subtracted (eV).
LONG_RANGE_ENERGY_KEY = "LR_energy"


def _element_charges(settings: Any, salts: Sequence[str]) -> dict[str, float]:
    """Charge (e) per element from the formal charges of the salts' monatomic ions (+ water for ``"all"``)."""
    from electrodb.systems.chemistry import parse_salt

    out: dict[str, float] = {}
    for text in salts:
        salt = parse_salt(text)
        for ion in (salt.cation, salt.anion):
            if ion.n_atoms > 1:
                raise ValueError(
                    f"{ion.name} has {ion.n_atoms} atoms: per-element charges cannot tell its centre atom; the "
                    "configurations need atoms.arrays['role'] and ['ion_center'] (boxes from electrodb.systems.boxes)"
                )
            symbol = ion.symbols[0]
            if symbol in out and out[symbol] != ion.charge:
                raise ValueError(f"element {symbol} has charges {out[symbol]} and {ion.charge} in {list(salts)}")
            out[symbol] = float(ion.charge)
    water = settings.water_charges if settings.charges == "all" else {"O": 0.0, "H": 0.0}
    for symbol, charge in water.items():
        if symbol in out:
            raise ValueError(f"element {symbol} is both an ion and a water atom; give explicit charges")
        out[symbol] = float(charge)
    return out


def _salt_of(atoms: Atoms, salts: Sequence[str]) -> str | None:
    """The one salt of ``salts`` whose ion elements are all in ``atoms`` (None: none or ambiguous)."""
    from electrodb.systems.chemistry import parse_salt

    present = set(atoms.get_chemical_symbols())
    found = [t for t in salts if set(parse_salt(t).cation.symbols + parse_salt(t).anion.symbols) <= present]
    return found[0] if len(found) == 1 else None


def long_range_charges(atoms: Atoms, settings: Any, salts: Sequence[str] | str | None = None) -> np.ndarray:
    """Charges (e) of one labelled configuration for the long-range term (delta learning).

    Uses :func:`electrodb.models.longrange.atomic_charges` when the configuration carries ElectroDB's box labels
    (``arrays['role']``; ``ion_center`` for molecular ions) or when ``settings.charges`` is a dict. Without
    labels (e.g. extxyz written before the labels were kept) the charges come per element from the formal
    charges of ``salts`` (one or several formulas: ``"LiCl"``, ``["NaCl", "LiCl"]``; with labels and several
    salts, the one salt whose elements the configuration holds is used): monatomic ions only; O and
    H are water (0 e for ``charges="ions"``, ``settings.water_charges`` for ``"all"``). Without
    ``arrays['mol_id']`` the intramolecular exclusion cannot be applied, so a charge on any O or H is refused
    (unless ``settings.exclude_intramolecular`` is False).
    """
    from electrodb.models.longrange import atomic_charges

    salt_list = [salts] if isinstance(salts, str) else list(salts or [])
    if isinstance(settings.charges, dict):
        charges = atomic_charges(atoms, settings)
    elif "role" in atoms.arrays and _salt_of(atoms, salt_list) is not None:
        charges = atomic_charges(atoms, settings, _salt_of(atoms, salt_list))
    else:
        if not salt_list:
            raise ValueError(
                f"charges={settings.charges!r}: the configuration has no atoms.arrays['role'], so give the salt(s) "
                "(per-element formal charges, e.g. salt='LiCl') or a dict of charges per element"
            )
        table = _element_charges(settings, salt_list)
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(table))
        if unknown:
            raise ValueError(f"no charge for element(s) {unknown} from salt(s) {salt_list} and water")
        charges = np.array([table[s] for s in symbols], dtype=float)
    if settings.exclude_intramolecular and "mol_id" not in atoms.arrays:
        symbols = np.asarray(atoms.get_chemical_symbols())
        if np.any((charges != 0) & np.isin(symbols, ["O", "H"])):
            raise ValueError(
                "charged O/H atoms but no atoms.arrays['mol_id']: intramolecular pairs cannot be excluded as in MD; "
                "use boxes from electrodb.systems.boxes (they carry mol_id) or charges='ions'"
            )
    return charges


def subtract_long_range(
    configurations: Sequence[Atoms],
    settings: Any,
    salts: Sequence[str] | str | None = None,
) -> list[Atoms]:
    r"""Copies of labelled configurations with the long-range term removed from their labels (delta learning).

    .. math::

        E^{\mathrm{target}} = E_\mathrm{ref} - E_\mathrm{LR},\quad
        \mathbf F^{\mathrm{target}} = \mathbf F_\mathrm{ref} - \mathbf F_\mathrm{LR},\quad
        \sigma^{\mathrm{target}} = \sigma_\mathrm{ref} - \sigma_\mathrm{LR}

    with :func:`electrodb.models.longrange.long_range_energy_forces` (eV, eV/Å, eV/Å³ in ASE's Voigt order and sign)
    for the charges of :func:`long_range_charges`. The stress is subtracted only where ``REF_stress`` exists.
    The subtracted energy is kept in ``info['LR_energy']`` (eV). Inputs are not modified.

    Parameters
    ----------
    configurations
        Periodic Atoms with ``info['REF_energy']`` and ``arrays['REF_forces']``.
    settings
        :class:`electrodb.models.longrange.LongRangeSettings` (the same that MD will use).
    salts
        Salt formula(s) for the formal ion charges (see :func:`long_range_charges`).
    """
    from electrodb.models.longrange import long_range_energy_forces

    out = []
    for k, atoms in enumerate(configurations):
        if ENERGY_KEY not in atoms.info or FORCES_KEY not in atoms.arrays:
            raise ValueError(f"configuration {k} has no {ENERGY_KEY}/{FORCES_KEY} labels")
        if not all(atoms.pbc):
            raise ValueError(f"configuration {k} is not periodic in 3-D: the long-range term needs a box")
        charges = long_range_charges(atoms, settings, salts)
        want_stress = STRESS_KEY in atoms.info
        energy, forces, stress = long_range_energy_forces(atoms, charges, settings, compute_stress=want_stress)
        copy = atoms.copy()
        copy.calc = None
        copy.info[ENERGY_KEY] = float(atoms.info[ENERGY_KEY]) - energy
        copy.arrays[FORCES_KEY] = np.asarray(atoms.arrays[FORCES_KEY], dtype=float) - forces
        if want_stress and stress is not None:
            ref = np.asarray(atoms.info[STRESS_KEY], dtype=float).reshape(-1)
            if ref.size == 9:  # a 3x3 tensor: to Voigt (xx, yy, zz, yz, xz, xy)
                ref = ref[[0, 4, 8, 5, 2, 1]]
            copy.info[STRESS_KEY] = ref - stress
        copy.info[LONG_RANGE_ENERGY_KEY] = energy
        out.append(copy)
    return out


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
        from electrodb.systems.campaign import LongRangeSettings

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
    _run_logged(cmd, work, env, log_path, progress=progress)
    wall = time.perf_counter() - start

    models = work / "models"
    stage_two_path, plain_path = models / f"{settings.name}_stagetwo.model", models / f"{settings.name}.model"
    stage_two = settings.runs_stage_two and stage_two_path.is_file()
    model_path = stage_two_path if stage_two else plain_path
    if not model_path.is_file():
        found = sorted(p.name for p in models.glob("*")) if models.is_dir() else []
        raise TrainingError(f"mace_run_train finished but {model_path} is missing (found {found}; log {log_path})")

    from electrodb.models.loader import load_model

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
        long_range=long_range.model_dump(mode="json") if long_range is not None else None,
        long_range_charges=charges_from,
    )
    (work / RESULT_FILE).write_text(result.model_dump_json(indent=1), encoding="utf-8")
    return result
