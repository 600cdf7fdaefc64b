"""Batched NVT integration with torch-sim: many small boxes advanced in ONE Langevin integration.

The engine below :class:`~electrodb.flows.batched.BatchedProductionMaker` (jobflow, stores, retries), as
:mod:`electrodb.md.dynamics` is the one below the sequential Makers. No jobflow and no database here:
frames go to the :class:`~electrodb.store.frames.TrajectoryWriter` objects the caller passes.

:func:`run_batched_nvt` concatenates k periodic boxes (any sizes, any compositions) into one torch-sim
``SimState`` and advances them together with torch-sim's BAOAB Langevin integrator (``ts.nvt_langevin``): one
MACE evaluation per step for all k systems, each with its own target temperature. Frames are streamed into one
:class:`~electrodb.store.frames.TrajectoryWriter` per system, exactly as the sequential ASE engine
(:func:`electrodb.md.dynamics.run_production`) does: frame k is the state after k × ``sample_every`` steps
(frame 0 = the start), with unwrapped positions (Å), the cell, the time (ps), the potential energy (eV) and the
kinetic temperature T = 2 E_kin / (3 N k_B) (K, ASE's convention).

Unwrapping and stability (:mod:`electrodb.md.torchsim_monitor`). torch-sim wraps positions into the cell every
step; integer image counts tracked after each step give exact unwrapped positions. :class:`BatchedStabilityMonitor`
applies the thresholds of :class:`~electrodb.systems.campaign.StabilitySettings` per system every
``check_every_steps`` steps and at every sample (non-finite forces or positions after every step). A failing system
is marked unstable (reason, step, last good frame), removed from the batch, and the others continue.

Checkpoints and resume (:mod:`electrodb.md.torchsim_batch`). Every ``checkpoint_every`` steps each box's writer
is flushed and its state handed to ``on_checkpoint`` as the same :class:`~electrodb.md.dynamics.ProductionState`
the sequential engine writes (unwrapped positions, momenta, cell, step, frames and chunks written), with the torch
noise generator's state and the ids of the boxes it draws for as ``rng_state``. A run given ``resume`` states
continues each box from its own step (boxes may be at different steps; each leaves the batch when it is done) and
writes no frame twice. When the very same boxes resume from one checkpoint, the generator is restored and the
continuation is that of the uninterrupted run up to float32 round-off; otherwise the noise is reseeded (a new,
equally valid realisation).

Batch composition. :func:`autobatch_bins` asks torch-sim's ``BinningAutoBatcher`` which boxes fit one
integration on the GPU (its memory metric, atoms × number density, calibrated by forward passes on the device).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ase import Atoms, units

from electrodb.md.dynamics import ProductionState
from electrodb.md.torchsim_batch import BatchRun, BatchSchedule, SystemOutcome, seed_noise
from electrodb.md.torchsim_monitor import BatchedStabilityMonitor
from electrodb.store.frames import TrajectoryWriter
from electrodb.systems.campaign import StabilitySettings

# torch_sim (and mace, which must be imported before it) are imported by _torch_sim() and where used: torch-sim is
# the optional extra electrodb[gpu], and a missing install should fail with a message saying so.

__all__ = [
    "BatchedRunResult",
    "autobatch_bins",
    "resolve_device",
    "run_batched_nvt",
]

# torch-sim "metal" units are ASE's: Å, eV, amu, time unit sqrt(amu Å² / eV) ≈ 10.18 fs.
_FS = float(units.fs)  # internal time units per fs
_KB_EV_K = float(units.kB)  # Boltzmann constant (eV/K)
# monitor=None: only non-finite positions/forces count as failures.
_FINITE_ONLY = StabilitySettings(
    max_temperature_factor=1e12, min_distance_h_A=1e-6, min_distance_heavy_A=1e-6, max_force_eV_A=1e30
)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``'auto'`` → ``cuda`` when available, else ``cpu``; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _torch_sim() -> Any:
    """The ``torch_sim`` module (mace imported first), or an ImportError that says how to install it."""
    try:
        import mace  # noqa: F401  (before e3nn: weights-only loading pitfall of torch >= 2.6)
        import torch_sim as ts
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            f"batched MD needs torch-sim: pip install 'torch-sim-atomistic>=0.3' (or electrodb[gpu]): {exc}"
        ) from exc
    return ts


def _torch_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``torch.float32``/``torch.float64`` from a dtype or its name (``'float32'``, ``'float64'``)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    return {"float32": torch.float32, "float64": torch.float64}[str(dtype)]


@dataclass
class BatchedRunResult:
    """Outcome of :func:`run_batched_nvt`: per-system outcomes and the throughput of the whole batch.

    Attributes
    ----------
    outcomes
        One :class:`SystemOutcome` per system, in the order given.
    n_steps
        Steps of each run (the ``n_steps`` asked for).
    wall_time_s
        Wall time of the call (s).
    atom_steps
        Sum over the integrated steps of the atoms in the batch at that step.
    device, dtype
        Where and in which precision it ran (``'cuda:0'``, ``'float32'``).
    """

    outcomes: list[SystemOutcome]
    n_steps: int
    wall_time_s: float
    atom_steps: int
    device: str
    dtype: str

    @property
    def atom_steps_per_s(self) -> float:
        """Throughput (atom-steps per second of wall time); NaN for a zero wall time."""
        return self.atom_steps / self.wall_time_s if self.wall_time_s > 0 else float("nan")

    @property
    def n_unstable(self) -> int:
        """Systems that ended unstable."""
        return sum(o.status == "unstable" for o in self.outcomes)


def _make_model(torch_model: Any, dev: torch.device, tdtype: torch.dtype) -> Any:
    """A torch-sim ``ModelInterface``: given as one (e.g. :mod:`electrodb.md.torchsim_models`), or a MACE module."""
    from torch_sim.models.interface import ModelInterface
    from torch_sim.models.mace import MaceModel

    if isinstance(torch_model, ModelInterface):
        return torch_model
    return MaceModel(model=torch_model, device=dev, dtype=tdtype, compute_forces=True, compute_stress=False)


def autobatch_bins(
    systems: Sequence[Atoms],
    torch_model: Any,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = torch.float32,
    max_memory_scaler: float | None = None,
    max_systems: int | None = None,
) -> list[list[int]]:
    """Groups of system indices to integrate together, from torch-sim's ``BinningAutoBatcher``.

    torch-sim bins the boxes by a memory metric (atoms × number density, ``n_atoms_x_density``) so that each bin
    fits the GPU: with ``max_memory_scaler=None`` it measures the peak memory of forward passes on growing
    copies of the smallest and largest box (CUDA only; tried up to the total atom count of ``systems``, so the
    estimate costs a few forward passes). On a CPU without ``max_memory_scaler`` there is nothing to measure and
    all systems form one bin. Bins are then cut into pieces of at most ``max_systems`` systems.

    Returns
    -------
    list of list of int
        Indices into ``systems``; every index appears exactly once, each bin in ascending order.
    """
    if not systems:
        return []
    dev, tdtype = resolve_device(device), _torch_dtype(dtype)
    if max_memory_scaler is None and dev.type != "cuda":
        bins = [list(range(len(systems)))]
    else:
        ts = _torch_sim()
        from torch_sim.autobatching import BinningAutoBatcher

        model = _make_model(torch_model, dev, tdtype)
        batcher = BinningAutoBatcher(
            model,
            memory_scales_with=getattr(model, "memory_scales_with", "n_atoms_x_density"),
            max_memory_scaler=max_memory_scaler,
            max_atoms_to_try=max(2, sum(len(a) for a in systems)),
        )
        batcher.load_states([ts.initialize_state(a.copy(), dev, tdtype) for a in systems])
        bins = [sorted(int(i) for i in b) for b in batcher.index_bins]
    if max_systems is not None:
        bins = [b[i : i + max_systems] for b in bins for i in range(0, len(b), max_systems)]
    return bins


def _rng_devices(dev: torch.device) -> list[int]:
    """The CUDA devices whose generator ``torch.random.fork_rng`` must save and restore (none on a CPU)."""
    if dev.type != "cuda":
        return []
    return [dev.index if dev.index is not None else torch.cuda.current_device()]


def _check_inputs(
    systems: Sequence[Atoms],
    temperatures: Sequence[float],
    writers: Sequence[TrajectoryWriter],
    resume: Sequence[ProductionState | None],
    n_steps: int,
    sample_every: int,
    checkpoint_every: int | None,
) -> list[int]:
    """Refuse inconsistent arguments of :func:`run_batched_nvt` before anything is built.

    Returns
    -------
    list of int
        The step each system starts from: its checkpoint's, or 0.

    Raises
    ------
    ValueError
        No systems, or not one temperature, writer and resume entry per system; a writer for another atom count;
        negative ``n_steps`` or ``sample_every`` below 1; ``checkpoint_every`` not a positive multiple of
        ``sample_every``; a resume step beyond ``n_steps`` or off the ``sample_every`` grid.
    """
    n_sys = len(systems)
    if not (len(temperatures) == len(writers) == len(resume) == n_sys) or n_sys == 0:
        raise ValueError(
            f"need one temperature, one writer and one resume entry per system: {n_sys} systems, "
            f"{len(temperatures)} temperatures, {len(writers)} writers, {len(resume)} resume entries"
        )
    for a, w in zip(systems, writers, strict=True):
        if w.n_atoms != len(a):
            raise ValueError(f"writer {w.trajectory_id} expects {w.n_atoms} atoms, the system has {len(a)}")
    if n_steps < 0 or sample_every < 1:
        raise ValueError("n_steps must be >= 0 and sample_every >= 1")
    if checkpoint_every is not None and (checkpoint_every < 1 or checkpoint_every % sample_every):
        raise ValueError(f"checkpoint_every ({checkpoint_every}) must be a positive multiple of {sample_every}")
    start = [r.step if r is not None else 0 for r in resume]
    for k, s0 in enumerate(start):
        if s0 > n_steps or s0 % sample_every:
            raise ValueError(f"system {k} resumes at step {s0}: not on the {sample_every}-step grid of {n_steps}")
    return start


def _start_boxes(systems: Sequence[Atoms], resume: Sequence[ProductionState | None]) -> list[Atoms]:
    """Copies of ``systems``; one that resumes takes its checkpoint's cell (Å), unwrapped positions (Å) and
    momenta (so the image counts start at zero)."""
    boxes = []
    for a, r in zip(systems, resume, strict=True):
        box = a.copy()
        if r is not None:
            box.set_cell(r.cell)
            box.set_positions(r.positions)
            box.set_momenta(r.momenta)
        boxes.append(box)
    return boxes


def _initial_state(
    ts: Any,
    boxes: Sequence[Atoms],
    torch_model: Any,
    kt: torch.Tensor,
    timestep_fs: float,
    friction_per_fs: float,
    seed: int,
) -> tuple[Any, Callable[..., Any]]:
    """The batched start state and torch-sim's BAOAB Langevin update for it.

    Parameters
    ----------
    ts
        The ``torch_sim`` module.
    boxes
        The boxes to integrate, in order (see :func:`_start_boxes`).
    torch_model
        As for :func:`run_batched_nvt` (see :func:`_make_model`).
    kt
        (S,) k_B T of each system (eV); its device and dtype are the state's and the model's.
    timestep_fs, friction_per_fs
        Time step (fs) and Langevin friction γ (1/fs).
    seed
        Seeds the Maxwell–Boltzmann momenta of boxes that carry none.

    Returns
    -------
    tuple
        The ``SimState`` (with the boxes' own non-zero momenta, else Maxwell–Boltzmann ones at their temperature)
        and ``update_fn``, called as ``update_fn(state, kT=kt)`` to advance every system one step.
    """
    dev, tdtype = kt.device, kt.dtype
    state = ts.initialize_state(list(boxes), dev, tdtype)
    model = _make_model(torch_model, dev, tdtype)
    dt = torch.tensor(timestep_fs * _FS, device=dev, dtype=tdtype)
    gamma = torch.tensor(friction_per_fs / _FS, device=dev, dtype=tdtype)
    init_fn, update_fn = ts.nvt_langevin(model, dt=dt, kT=kt, gamma=gamma, seed=seed)
    state = init_fn(state, kT=kt, seed=seed)
    momenta = state.momenta.clone()
    offset = 0
    for box in boxes:
        if box.has("momenta") and np.any(box.get_momenta()):
            momenta[offset : offset + len(box)] = torch.tensor(box.get_momenta(), device=dev, dtype=tdtype)
        offset += len(box)
    state.momenta = momenta
    return state, update_fn


def run_batched_nvt(
    systems: Sequence[Atoms],
    torch_model: Any,
    temperatures: Sequence[float],
    timestep_fs: float,
    n_steps: int,
    sample_every: int,
    writers: Sequence[TrajectoryWriter],
    friction_per_fs: float = 0.001,
    seed: int = 1,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = torch.float32,
    monitor: StabilitySettings | None = StabilitySettings(),
    on_progress: Callable[[int, int, float], None] | None = None,
    *,
    resume: Sequence[ProductionState | None] | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[int, ProductionState], None] | None = None,
) -> BatchedRunResult:
    """Run NVT Langevin (BAOAB) for all ``systems`` in one batched torch-sim integration.

    Parameters
    ----------
    systems
        Periodic boxes (any sizes); not modified. A box's own momenta are used when it carries non-zero ones;
        the others get Maxwell–Boltzmann momenta at their temperature (seeded).
    torch_model
        A MACE ``torch.nn.Module`` (e.g. ``load_model(ref).torch_model()``), or any torch-sim ``ModelInterface``
        (e.g. :class:`electrodb.md.torchsim_models.NequIPTorchSimModel`).
    temperatures
        Target temperature per system (K).
    timestep_fs, n_steps, sample_every
        Time step (fs), total steps of each run, and frames stored every ``sample_every`` steps (frame 0 = the
        start); frame j is the state after j × ``sample_every`` steps, at time j × ``sample_every`` × dt.
    writers
        One :class:`TrajectoryWriter` per system (``n_atoms`` must match); flushed at the end. A resumed system's
        writer starts at its checkpoint's ``n_frames`` / ``n_chunks``.
    friction_per_fs
        Langevin friction γ (1/fs): momenta relax as exp(−γ t).
    seed
        Seeds the initial momenta (``seed``) and the thermostat noise (``seed + 1``, in a forked torch RNG, so the
        global RNG state is untouched).
    device
        ``None``/``'auto'``: CUDA when available, else CPU.
    dtype
        Model and state precision (``torch.float32`` for MD).
    monitor
        Stability thresholds, checked per system every ``monitor.check_every_steps`` steps and at each sample;
        ``None`` disables the checks except the per-step finite test.
    on_progress
        Called as ``on_progress(step, n_steps, elapsed_s)`` every max(sample_every, 50) steps.
    resume
        Per system, a checkpoint to continue from (``None``: start at step 0). Its positions are unwrapped (Å),
        its step a multiple of ``sample_every``; the frame at that step is already stored and is not written
        again. Systems may resume from different steps: each leaves the batch when it reaches ``n_steps``.
    checkpoint_every
        Steps between checkpoints of each system (a multiple of ``sample_every``; ``None``: none).
    on_checkpoint
        Called as ``on_checkpoint(index, state)`` after the system's writer was flushed, so a checkpoint never
        refers to frames held only in memory. ``state.rng_state`` holds the torch noise generator and the ids of
        the boxes it draws for: a rerun of the same boxes restores it and continues the uninterrupted run.

    Returns
    -------
    BatchedRunResult
        Per-system outcomes (``completed`` or ``unstable`` with reason, step and last good frame), the wall time
        and the atom-steps integrated.
    """
    ts = _torch_sim()
    resume = list(resume) if resume is not None else [None] * len(systems)
    start = _check_inputs(systems, temperatures, writers, resume, n_steps, sample_every, checkpoint_every)
    dev, tdtype = resolve_device(device), _torch_dtype(dtype)
    started = time.perf_counter()
    boxes = _start_boxes(systems, resume)
    temps = torch.tensor(list(temperatures), device=dev, dtype=tdtype)
    kt = temps * _KB_EV_K
    state, update_fn = _initial_state(ts, boxes, torch_model, kt, timestep_fs, friction_per_fs, seed)
    symbols = [s for a in systems for s in a.get_chemical_symbols()]
    checker = BatchedStabilityMonitor(monitor or _FINITE_ONLY, temps.clone(), symbols)
    check_every = monitor.check_every_steps if monitor is not None else None
    schedule = BatchSchedule(n_steps, sample_every, check_every, checkpoint_every, timestep_fs)
    run = BatchRun(state, update_fn, kt, checker, systems, writers, start, schedule, on_checkpoint)
    with torch.random.fork_rng(devices=_rng_devices(dev)):  # no torch.no_grad(): MACE forces need autograd
        seed_noise(dev, resume, run.ids, seed)
        run.begin(resume)
        for i in range(1, n_steps - min(start) + 1):
            if not run.active:
                break
            steps = run.advance(i)
            if on_progress is not None and i % max(sample_every, 50) == 0:
                on_progress(max(steps, default=n_steps), n_steps, time.perf_counter() - started)
    outcomes = run.close()
    return BatchedRunResult(
        outcomes=outcomes,
        n_steps=n_steps,
        wall_time_s=time.perf_counter() - started,
        atom_steps=run.atom_steps,
        device=str(dev),
        dtype=str(tdtype).replace("torch.", ""),
    )
