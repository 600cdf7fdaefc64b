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

Unwrapping. torch-sim wraps positions back into the cell in every position half-step
(``torch_sim.integrators.md.position_step`` calls ``pbc_wrap_batched``). The runner therefore tracks periodic
images after every step: with fractional coordinates s = r h⁻¹ (h = cell, lattice vectors as rows),
n ← n − round(s_new − s_old) and r_unwrapped = r_wrapped + n h. This is exact (integer image counts, no
accumulated round-off) as long as no atom moves half a box in one step.

Stability. :class:`BatchedStabilityMonitor` applies the thresholds of
:class:`~electrodb.systems.campaign.StabilitySettings` per system, vectorised: non-finite positions/forces, largest
force norm, temperature above factor × target, and closest pair distance (pairs with H vs heavy–heavy pairs;
periodic images included). It runs every ``check_every_steps`` steps and at every sample; non-finite forces or
positions are tested after every step, so a NaN never reaches the neighbour list. A failing system is marked
unstable (reason, step, last good frame), removed from the batch, and the others continue.

Checkpoints and resume. Every ``checkpoint_every`` steps each box's writer is flushed and its state handed to
``on_checkpoint`` as the same :class:`~electrodb.md.dynamics.ProductionState` the sequential engine writes
(unwrapped positions, momenta, cell, step, frames and chunks written), with the torch noise generator's state
and the ids of the boxes it draws for as ``rng_state``. A run given ``resume`` states continues each box from
its own step (boxes may be at different steps; each leaves the batch when it is done) and writes no frame twice.
When the very same boxes resume from one checkpoint, the generator is restored and the continuation is that of
the uninterrupted run up to float32 round-off; otherwise the noise is reseeded (a new, equally valid
realisation).

Batch composition. :func:`autobatch_bins` asks torch-sim's ``BinningAutoBatcher`` which boxes fit one
integration on the GPU (its memory metric, atoms × number density, calibrated by forward passes on the device).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from ase import Atoms, units

from electrodb.md.dynamics import ProductionState
from electrodb.store.frames import TrajectoryWriter
from electrodb.systems.campaign import StabilitySettings

__all__ = [
    "BatchedRunResult",
    "BatchedStabilityMonitor",
    "SystemOutcome",
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
    try:
        import mace  # noqa: F401  (before e3nn: weights-only loading pitfall of torch >= 2.6)
        import torch_sim as ts
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            f"batched MD needs torch-sim: pip install 'torch-sim-atomistic>=0.3' (or electrodb[gpu]): {exc}"
        ) from exc
    return ts


def _torch_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    return {"float32": torch.float32, "float64": torch.float64}[str(dtype)]


@dataclass
class SystemOutcome:
    """What happened to one system of a batch."""

    index: int
    status: Literal["completed", "unstable"]
    n_atoms: int
    n_steps: int = 0  # steps this system was integrated in this call
    start_step: int = 0  # step it started from (its checkpoint's, or 0)
    reason: str | None = None
    failed_step: int | None = None
    n_frames: int = 0
    n_chunks: int = 0
    last_good_frame: int | None = None
    temperatures_K: list[float] = field(default_factory=list)

    @property
    def mean_temperature_K(self) -> float | None:
        return float(np.mean(self.temperatures_K)) if self.temperatures_K else None

    @property
    def std_temperature_K(self) -> float | None:
        return float(np.std(self.temperatures_K)) if self.temperatures_K else None


@dataclass
class BatchedRunResult:
    """Outcome of :func:`run_batched_nvt`: per-system outcomes and the throughput of the whole batch."""

    outcomes: list[SystemOutcome]
    n_steps: int
    wall_time_s: float
    atom_steps: int
    device: str
    dtype: str

    @property
    def atom_steps_per_s(self) -> float:
        return self.atom_steps / self.wall_time_s if self.wall_time_s > 0 else float("nan")

    @property
    def n_unstable(self) -> int:
        return sum(o.status == "unstable" for o in self.outcomes)


class BatchedStabilityMonitor:
    """The checks of :class:`electrodb.md.dynamics.StabilityMonitor`, per system of a batched torch-sim state.

    Parameters
    ----------
    settings
        Thresholds (the same :class:`StabilitySettings` as the sequential engine).
    target_temperatures
        (S,) target temperature of each active system (K).
    symbols
        Chemical symbols of all atoms of the batch, in state order (for the messages and the H test).
    """

    def __init__(self, settings: StabilitySettings, target_temperatures: torch.Tensor, symbols: Sequence[str]):
        self.settings = settings
        self.target_temperatures = target_temperatures
        self.symbols = list(symbols)
        self.is_hydrogen = np.array([s == "H" for s in self.symbols])

    def select(self, keep_systems: torch.Tensor, keep_atoms: np.ndarray) -> None:
        """Keep only the listed systems (after failing ones are removed from the batch)."""
        self.target_temperatures = self.target_temperatures[keep_systems]
        self.symbols = [s for s, k in zip(self.symbols, keep_atoms, strict=True) if k]
        self.is_hydrogen = self.is_hydrogen[keep_atoms]

    @staticmethod
    def finite(state: Any) -> bool:
        """Cheap test run after every step: all positions, forces and energies finite (one host sync)."""
        ok = torch.isfinite(state.positions).all() & torch.isfinite(state.forces).all()
        return bool((ok & torch.isfinite(state.energy).all()).item())

    def check(self, state: Any, temperatures_K: torch.Tensor, step: int) -> dict[int, str]:
        """Return ``{local system index: reason}`` for every system that fails a check (empty if all pass)."""
        s = self.settings
        n_sys = state.n_systems
        sidx = state.system_idx
        zeros = torch.zeros(n_sys, device=state.device, dtype=torch.int64)
        bad_pos = zeros.index_add(0, sidx, (~torch.isfinite(state.positions).all(-1)).long())
        bad_force = zeros.index_add(0, sidx, (~torch.isfinite(state.forces).all(-1)).long())
        norms = torch.linalg.norm(state.forces, dim=-1)
        norms = torch.where(torch.isfinite(norms), norms, torch.full_like(norms, float("inf")))
        fmax = torch.zeros(n_sys, device=state.device, dtype=norms.dtype).scatter_reduce(
            0, sidx, norms, reduce="amax", include_self=False
        )
        packed = torch.stack([bad_pos.to(norms.dtype), bad_force.to(norms.dtype), fmax, temperatures_K.to(norms.dtype)])
        bad_pos_c, bad_force_c, fmax_c, temp_c = packed.detach().cpu().double().numpy()
        target = self.target_temperatures.detach().cpu().double().numpy()
        failures: dict[int, str] = {}
        for b in range(n_sys):
            if bad_pos_c[b] > 0:
                failures[b] = "non-finite positions (NaN/inf)"
            elif bad_force_c[b] > 0:
                failures[b] = "non-finite forces (NaN/inf)"
            elif fmax_c[b] > s.max_force_eV_A:
                failures[b] = f"force {fmax_c[b]:.1f} eV/Å exceeds {s.max_force_eV_A} eV/Å"
            elif not np.isfinite(temp_c[b]) or temp_c[b] > s.max_temperature_factor * target[b]:
                failures[b] = (
                    f"temperature {temp_c[b]:.0f} K exceeds {s.max_temperature_factor} × target {target[b]:.0f} K"
                )
        failures.update(self._distance_failures(state, skip=set(failures)))
        return failures

    def _distance_failures(self, state: Any, skip: set[int]) -> dict[int, str]:
        from torch_sim.neighbors import vesin_nl_ts

        s = self.settings
        cutoff = max(s.min_distance_heavy_A, s.min_distance_h_A)
        positions = state.positions.detach().cpu().double()
        cells = state.row_vector_cell.detach().cpu().double()
        counts = torch.bincount(state.system_idx, minlength=state.n_systems).cpu().numpy()
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        failures: dict[int, str] = {}
        for b in range(state.n_systems):
            if b in skip:
                continue
            lo, hi = int(starts[b]), int(starts[b] + counts[b])
            pos = positions[lo:hi]
            mapping, shifts = vesin_nl_ts(pos, cells[b], True, torch.tensor(cutoff, dtype=torch.float64))
            if mapping.shape[1] == 0:
                continue
            i, j = mapping[0].numpy(), mapping[1].numpy()
            d = torch.linalg.norm(pos[mapping[1]] - pos[mapping[0]] + shifts @ cells[b], dim=-1).numpy()
            h = self.is_hydrogen[lo:hi]
            with_h = h[i] | h[j]
            bad = (with_h & (d < s.min_distance_h_A)) | (~with_h & (d < s.min_distance_heavy_A))
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                sym = self.symbols[lo:hi]
                failures[b] = f"atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) are {d[k]:.2f} Å apart"
        return failures


def _temperatures(state: Any) -> torch.Tensor:
    """Kinetic temperature per system (K): 2 E_kin / (3 N k_B), as ``ase.Atoms.get_temperature``."""
    ke_atom = 0.5 * (state.momenta**2).sum(-1) / state.masses
    n_sys = state.n_systems
    ke = torch.zeros(n_sys, device=state.device, dtype=ke_atom.dtype).index_add(0, state.system_idx, ke_atom)
    n = torch.bincount(state.system_idx, minlength=n_sys).to(ke.dtype)
    return 2.0 * ke / (3.0 * n * _KB_EV_K)


class _ImageTracker:
    """Integer periodic-image counts per atom, updated after every step (see the module docstring)."""

    def __init__(self, state: Any) -> None:
        self.images = torch.zeros_like(state.positions, dtype=torch.int64)
        self._set_cells(state)
        self.frac = self._fractional(state.positions, state.system_idx)

    def _set_cells(self, state: Any) -> None:
        self.cells = state.row_vector_cell.detach()
        self.inverse = torch.linalg.inv(self.cells)

    def _fractional(self, positions: torch.Tensor, system_idx: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ni,nij->nj", positions, self.inverse[system_idx])

    def update(self, state: Any) -> None:
        frac = self._fractional(state.positions, state.system_idx)
        self.images -= torch.round(frac - self.frac).to(torch.int64)
        self.frac = frac

    def select(self, state: Any, keep_atoms: torch.Tensor) -> None:
        self.images = self.images[keep_atoms]
        self.frac = self.frac[keep_atoms]
        self._set_cells(state)

    def unwrapped(self, state: Any) -> np.ndarray:
        """(N, 3) float64 unwrapped positions on the host."""
        pos = state.positions.detach().cpu().double().numpy()
        images = self.images.cpu().double().numpy()
        cells = self.cells.cpu().double().numpy()
        sidx = state.system_idx.cpu().numpy()
        return pos + np.einsum("ni,nij->nj", images, cells[sidx])


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


def _rng_state(dev: torch.device, batch_ids: Sequence[str]) -> dict[str, Any]:
    """The thermostat noise generator's state (JSON-safe), and the boxes it was drawing for, in order."""
    state = torch.cuda.get_rng_state(dev) if dev.type == "cuda" else torch.get_rng_state()
    return {"bit_generator": "torch", "device": dev.type, "state": state.tolist(), "batch": list(batch_ids)}


def _seed_noise(dev: torch.device, resume: Sequence[ProductionState | None], ids: list[str], seed: int) -> bool:
    """Restore the noise generator when every box resumes from one checkpoint of this very batch (then the
    continuation is the uninterrupted run's); else seed it with ``seed + 1 + step``. True when restored."""
    states = [r.rng_state if r is not None else None for r in resume]
    first = states[0]
    same = (
        isinstance(first, dict)
        and first.get("bit_generator") == "torch"
        and first.get("device") == dev.type
        and first.get("batch") == ids
        and all(s == first for s in states)
        and len({r.step for r in resume if r is not None}) == 1
    )
    if same and first is not None:
        saved = torch.tensor(first["state"], dtype=torch.uint8)
        torch.cuda.set_rng_state(saved, dev) if dev.type == "cuda" else torch.set_rng_state(saved)
        return True
    torch.manual_seed(seed + 1 + min((r.step for r in resume if r is not None), default=0))
    return False


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
    n_sys = len(systems)
    resume = list(resume) if resume is not None else [None] * n_sys
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
    dev, tdtype = resolve_device(device), _torch_dtype(dtype)
    started = time.perf_counter()

    boxes = []
    for a, r in zip(systems, resume, strict=True):
        box = a.copy()
        if r is not None:  # unwrapped positions: the image counts below start at zero
            box.set_cell(r.cell)
            box.set_positions(r.positions)
            box.set_momenta(r.momenta)
        boxes.append(box)
    state = ts.initialize_state(boxes, dev, tdtype)
    model = _make_model(torch_model, dev, tdtype)
    temps_all = torch.tensor(list(temperatures), device=dev, dtype=tdtype)
    kt = temps_all * _KB_EV_K
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

    symbols = [s for a in systems for s in a.get_chemical_symbols()]
    checker = BatchedStabilityMonitor(monitor or _FINITE_ONLY, temps_all.clone(), symbols)
    check_every = monitor.check_every_steps if monitor is not None else None
    tracker = _ImageTracker(state)
    active = list(range(n_sys))  # original index of each system still in the batch
    outcomes = [SystemOutcome(index=k, status="completed", n_atoms=len(a)) for k, a in enumerate(systems)]
    frame_ps = sample_every * timestep_fs / 1000.0
    atom_steps = 0

    def bounds() -> list[tuple[int, int]]:
        counts = torch.bincount(state.system_idx, minlength=state.n_systems).cpu().numpy()
        ends = np.cumsum(counts)
        return [(int(e - c), int(e)) for c, e in zip(counts, ends, strict=True)]

    def sample(which: list[int]) -> None:
        pos = tracker.unwrapped(state)
        cells = tracker.cells.cpu().double().numpy()
        energy = state.energy.detach().cpu().double().numpy()
        temp = _temperatures(state).detach().cpu().double().numpy()
        spans = bounds()
        for b in which:
            k, (lo, hi) = active[b], spans[b]
            writers[k].append(pos[lo:hi], cells[b], writers[k].next_frame * frame_ps, energy[b], temp[b])
            outcomes[k].temperatures_K.append(float(temp[b]))

    def checkpoint(which: list[int], i: int, continuing: list[str]) -> None:
        assert on_checkpoint is not None
        pos = tracker.unwrapped(state)
        mom = state.momenta.detach().cpu().double().numpy()
        cells = tracker.cells.cpu().double().numpy()
        rng = _rng_state(dev, continuing)
        spans = bounds()
        for b in which:
            k, (lo, hi) = active[b], spans[b]
            writers[k].flush()
            saved = ProductionState(
                start[k] + i,
                writers[k].n_frames,
                writers[k].n_chunks,
                pos[lo:hi],
                mom[lo:hi],
                cells[b],
                rng,
                timestep_fs,
            )
            on_checkpoint(k, saved)

    def drop(which: set[int]) -> None:
        nonlocal state, kt, active
        keep = [b for b in range(len(active)) if b not in which]
        active = [active[b] for b in keep]
        if not active:
            return
        keep_t = torch.tensor(keep, device=dev, dtype=torch.int64)
        keep_atoms = torch.isin(state.system_idx, keep_t)
        state = state[keep]
        kt = kt[keep_t]
        checker.select(keep_t, keep_atoms.cpu().numpy())
        tracker.select(state, keep_atoms)

    def check(i: int, full: bool) -> None:
        failures = checker.check(state, _temperatures(state), i) if full else {}
        for b, reason in failures.items():
            k = active[b]
            writers[k].flush()
            outcomes[k] = SystemOutcome(
                index=k,
                status="unstable",
                n_atoms=outcomes[k].n_atoms,
                n_steps=i,
                start_step=start[k],
                reason=reason,
                failed_step=start[k] + i,
                n_frames=writers[k].n_frames,
                n_chunks=writers[k].n_chunks,
                last_good_frame=writers[k].n_frames - 1 if writers[k].n_frames else None,
                temperatures_K=outcomes[k].temperatures_K,
            )
        if failures:
            drop(set(failures))

    def finish(i: int) -> None:
        done = {b for b, k in enumerate(active) if start[k] + i >= n_steps}
        for b in done:
            outcomes[active[b]].n_steps = i
            outcomes[active[b]].start_step = start[active[b]]
        if done:
            drop(done)

    ids = [w.trajectory_id for w in writers]
    rng_devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):  # no torch.no_grad(): MACE forces need autograd
        _seed_noise(dev, resume, ids, seed)
        check(0, check_every is not None)
        fresh = [b for b, k in enumerate(active) if resume[k] is None]
        if fresh:
            sample(fresh)
        finish(0)
        for i in range(1, n_steps - min(start) + 1):
            if not active:
                break
            atom_steps += state.n_atoms
            state = update_fn(state, kT=kt)
            tracker.update(state)
            steps = [start[k] + i for k in active]
            full = check_every is not None and any(s % sample_every == 0 or s % check_every == 0 for s in steps)
            check(i, full or not checker.finite(state))
            steps = [start[k] + i for k in active]
            to_sample = [b for b, s in enumerate(steps) if s % sample_every == 0]
            if to_sample:
                sample(to_sample)
            if checkpoint_every is not None and on_checkpoint is not None:
                due = [b for b, s in enumerate(steps) if s % checkpoint_every == 0]
                if due:
                    checkpoint(due, i, [ids[k] for k, s in zip(active, steps, strict=True) if s < n_steps])
            finish(i)
            if on_progress is not None and i % max(sample_every, 50) == 0:
                on_progress(max(steps, default=n_steps), n_steps, time.perf_counter() - started)
    for w in writers:
        w.flush()
    for o in outcomes:
        o.n_frames = writers[o.index].n_frames
        o.n_chunks = writers[o.index].n_chunks
        if o.status == "completed":
            o.last_good_frame = o.n_frames - 1 if o.n_frames else None
    return BatchedRunResult(
        outcomes=outcomes,
        n_steps=n_steps,
        wall_time_s=time.perf_counter() - started,
        atom_steps=atom_steps,
        device=str(dev),
        dtype=str(tdtype).replace("torch.", ""),
    )
