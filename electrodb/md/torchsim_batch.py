"""The boxes of one batched torch-sim integration (:func:`electrodb.md.torchsim.run_batched_nvt`) and what each
has written.

:class:`BatchRun` holds the batched state and, per box, its writer, its own step and its outcome
(:class:`SystemOutcome`); it integrates one step at a time and samples, checks, checkpoints and drops boxes as due
(:class:`BatchSchedule`). What it watches per box (temperature, periodic images, stability) is in
:mod:`electrodb.md.torchsim_monitor`. The thermostat noise generator's state goes into every checkpoint
(:func:`rng_state`) and is restored when the very same boxes resume (:func:`seed_noise`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from ase import Atoms

from electrodb.md.dynamics import ProductionState
from electrodb.md.torchsim_monitor import BatchedStabilityMonitor, ImageTracker, kinetic_temperatures
from electrodb.store.frames import TrajectoryWriter

__all__ = ["BatchRun", "BatchSchedule", "SystemOutcome", "rng_state", "seed_noise"]


@dataclass
class SystemOutcome:
    """What happened to one system of a batch.

    Attributes
    ----------
    index
        The system's place among the systems of the call, from 0.
    status, reason, failed_step
        ``completed``, or ``unstable`` with the reason and the system's own step at which it failed.
    n_atoms, n_steps, start_step
        Atoms; steps integrated in this call; the step it started from (its checkpoint's, or 0).
    n_frames, n_chunks, last_good_frame
        Frames and chunks its writer holds at the end, and the last frame before any failure.
    temperatures_K
        Kinetic temperature of every frame sampled in this call (K).
    """

    index: int
    status: Literal["completed", "unstable"]
    n_atoms: int
    n_steps: int = 0
    start_step: int = 0
    reason: str | None = None
    failed_step: int | None = None
    n_frames: int = 0
    n_chunks: int = 0
    last_good_frame: int | None = None
    temperatures_K: list[float] = field(default_factory=list)

    @property
    def mean_temperature_K(self) -> float | None:
        """Mean kinetic temperature of the frames sampled in this call (K); None without frames."""
        return float(np.mean(self.temperatures_K)) if self.temperatures_K else None

    @property
    def std_temperature_K(self) -> float | None:
        """Standard deviation of those temperatures (K); None without frames."""
        return float(np.std(self.temperatures_K)) if self.temperatures_K else None


def rng_state(dev: torch.device, batch_ids: Sequence[str]) -> dict[str, Any]:
    """The thermostat noise generator's state (JSON-safe), and the ids of the boxes it draws for, in order.

    Parameters
    ----------
    dev
        The device whose generator draws the noise (CUDA's, or the CPU's).
    batch_ids
        Trajectory ids of the boxes that continue after this step.
    """
    state = torch.cuda.get_rng_state(dev) if dev.type == "cuda" else torch.get_rng_state()
    return {"bit_generator": "torch", "device": dev.type, "state": state.tolist(), "batch": list(batch_ids)}


def seed_noise(dev: torch.device, resume: Sequence[ProductionState | None], ids: list[str], seed: int) -> bool:
    """Restore the noise generator when every box resumes from one checkpoint of this very batch, else reseed it.

    A restored generator continues the uninterrupted run (up to float32 round-off); otherwise the generator is seeded
    with ``seed + 1 + step`` (the earliest resume step, 0 for a fresh run), a new and equally valid realisation.

    Parameters
    ----------
    dev
        The device whose generator draws the noise.
    resume
        Per box, its checkpoint (``None``: starts at step 0).
    ids
        Trajectory ids of the boxes, in batch order.
    seed
        The run's seed.

    Returns
    -------
    bool
        True when the generator was restored.
    """
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


@dataclass(frozen=True)
class BatchSchedule:
    """When things happen in one :func:`~electrodb.md.torchsim.run_batched_nvt` call.

    Attributes
    ----------
    n_steps, sample_every, checkpoint_every
        Steps of each run, between stored frames, and between checkpoints (None: none), in each system's own count.
    check_every
        Steps between full stability checks (None: only the per-step finite test).
    timestep_fs
        Time step (fs).
    """

    n_steps: int
    sample_every: int
    check_every: int | None
    checkpoint_every: int | None
    timestep_fs: float

    @property
    def frame_ps(self) -> float:
        """Time between stored frames (ps)."""
        return self.sample_every * self.timestep_fs / 1000.0


class BatchRun:
    """The boxes of one :func:`~electrodb.md.torchsim.run_batched_nvt` call still in the batch, and what each has
    written so far.

    Box ``b`` of the current batch is system ``active[b]`` of the call; after ``i`` steps of this call system ``k``
    is at its own step ``start[k] + i``. Failing and finished boxes leave the batch (:meth:`drop`).

    Parameters
    ----------
    state, update_fn
        The batched torch-sim start state and its integrator step, ``update_fn(state, kT=kt)``.
    kt
        (S,) k_B T of each system (eV), on the state's device.
    monitor
        The stability checks of the batch.
    systems, writers, start
        The systems of the call, one writer each, and the step each starts from.
    schedule
        When to sample, check and checkpoint.
    on_checkpoint
        Called as ``on_checkpoint(index, state)`` with each checkpoint (None: none).
    """

    def __init__(
        self,
        state: Any,
        update_fn: Callable[..., Any],
        kt: torch.Tensor,
        monitor: BatchedStabilityMonitor,
        systems: Sequence[Atoms],
        writers: Sequence[TrajectoryWriter],
        start: list[int],
        schedule: BatchSchedule,
        on_checkpoint: Callable[[int, ProductionState], None] | None,
    ) -> None:
        self.state, self.update_fn, self.kt, self.monitor = state, update_fn, kt, monitor
        self.tracker = ImageTracker(state)
        self.writers, self.start, self.schedule, self.on_checkpoint = writers, start, schedule, on_checkpoint
        self.ids = [w.trajectory_id for w in writers]
        self.active = list(range(len(systems)))
        self.outcomes = [SystemOutcome(index=k, status="completed", n_atoms=len(a)) for k, a in enumerate(systems)]
        self.atom_steps = 0

    def bounds(self) -> list[tuple[int, int]]:
        """Atom range ``[lo, hi)`` of each box of the current batch."""
        counts = torch.bincount(self.state.system_idx, minlength=self.state.n_systems).cpu().numpy()
        ends = np.cumsum(counts)
        return [(int(e - c), int(e)) for c, e in zip(counts, ends, strict=True)]

    def steps(self, i: int) -> list[int]:
        """Each active box's own step after ``i`` steps of this call."""
        return [self.start[k] + i for k in self.active]

    def sample(self, which: list[int]) -> None:
        """Append a frame of the boxes ``which`` (batch indices) to their writers: unwrapped positions (Å), cell (Å),
        time (ps), potential energy (eV) and kinetic temperature (K), which also goes to the box's outcome."""
        if not which:
            return
        pos = self.tracker.unwrapped(self.state)
        cells = self.tracker.cells.cpu().double().numpy()
        energy = self.state.energy.detach().cpu().double().numpy()
        temp = kinetic_temperatures(self.state).detach().cpu().double().numpy()
        spans = self.bounds()
        for b in which:
            k, (lo, hi), w = self.active[b], spans[b], self.writers[self.active[b]]
            w.append(pos[lo:hi], cells[b], w.next_frame * self.schedule.frame_ps, energy[b], temp[b])
            self.outcomes[k].temperatures_K.append(float(temp[b]))

    def checkpoint(self, which: list[int], i: int, continuing: list[str]) -> None:
        """Flush the writers of the boxes ``which`` and hand each box's :class:`ProductionState` to ``on_checkpoint``.

        Parameters
        ----------
        which
            Batch indices of the boxes due.
        i
            Steps of this call so far.
        continuing
            Ids of the boxes that go on after this step: the noise generator draws for them from now on, so a rerun
            of exactly these boxes may restore it (:func:`seed_noise`).
        """
        assert self.on_checkpoint is not None
        s = self.schedule
        pos = self.tracker.unwrapped(self.state)
        mom = self.state.momenta.detach().cpu().double().numpy()
        cells = self.tracker.cells.cpu().double().numpy()
        rng = rng_state(self.kt.device, continuing)
        spans = self.bounds()
        for b in which:
            k, (lo, hi), w = self.active[b], spans[b], self.writers[self.active[b]]
            w.flush()
            step = self.start[k] + i
            saved = ProductionState(step, w.n_frames, w.n_chunks, pos[lo:hi], mom[lo:hi], cells[b], rng, s.timestep_fs)
            self.on_checkpoint(k, saved)

    def drop(self, which: set[int]) -> None:
        """Remove the boxes ``which`` (batch indices) from the state, the thermostat targets, the monitor and the
        image counts; the others continue."""
        keep = [b for b in range(len(self.active)) if b not in which]
        self.active = [self.active[b] for b in keep]
        if not self.active:
            return
        keep_t = torch.tensor(keep, device=self.kt.device, dtype=torch.int64)
        keep_atoms = torch.isin(self.state.system_idx, keep_t)
        self.state = self.state[keep]
        self.kt = self.kt[keep_t]
        self.monitor.select(keep_t, keep_atoms.cpu().numpy())
        self.tracker.select(self.state, keep_atoms)

    def mark_unstable(self, b: int, i: int, reason: str) -> None:
        """Record box ``b`` as unstable after ``i`` steps of this call: its writer flushed, the reason, the step it
        failed at and its last good frame."""
        k, w = self.active[b], self.writers[self.active[b]]
        w.flush()
        self.outcomes[k] = SystemOutcome(
            index=k,
            status="unstable",
            n_atoms=self.outcomes[k].n_atoms,
            n_steps=i,
            start_step=self.start[k],
            reason=reason,
            failed_step=self.start[k] + i,
            n_frames=w.n_frames,
            n_chunks=w.n_chunks,
            last_good_frame=w.n_frames - 1 if w.n_frames else None,
            temperatures_K=self.outcomes[k].temperatures_K,
        )

    def check(self, i: int, full: bool) -> None:
        """When ``full``, run every stability check after ``i`` steps; mark the failing boxes and drop them."""
        failures = self.monitor.check(self.state, kinetic_temperatures(self.state), i) if full else {}
        for b, reason in failures.items():
            self.mark_unstable(b, i, reason)
        if failures:
            self.drop(set(failures))

    def finish(self, i: int) -> None:
        """Drop the boxes that reached ``n_steps`` after ``i`` steps of this call, recording the steps they ran."""
        done = {b for b, k in enumerate(self.active) if self.start[k] + i >= self.schedule.n_steps}
        for b in done:
            self.outcomes[self.active[b]].n_steps = i
            self.outcomes[self.active[b]].start_step = self.start[self.active[b]]
        if done:
            self.drop(done)

    def begin(self, resume: Sequence[ProductionState | None]) -> None:
        """Step 0: check the start, store frame 0 of the boxes that start fresh (a resumed box has stored it), and
        drop the boxes that are already done."""
        self.check(0, self.schedule.check_every is not None)
        self.sample([b for b, k in enumerate(self.active) if resume[k] is None])
        self.finish(0)

    def advance(self, i: int) -> list[int]:
        """Integrate step ``i`` of this call for every box of the batch, then check, sample, checkpoint and drop
        finished boxes as due.

        Returns
        -------
        list of int
            The own step of each box after the checks (finished boxes included), for progress reports.
        """
        s, check_every, checkpoint_every = self.schedule, self.schedule.check_every, self.schedule.checkpoint_every
        self.atom_steps += self.state.n_atoms
        self.state = self.update_fn(self.state, kT=self.kt)
        self.tracker.update(self.state)
        due_check = check_every is not None and any(
            t % s.sample_every == 0 or t % check_every == 0 for t in self.steps(i)
        )
        self.check(i, due_check or not self.monitor.finite(self.state))
        steps = self.steps(i)
        self.sample([b for b, t in enumerate(steps) if t % s.sample_every == 0])
        if checkpoint_every is not None and self.on_checkpoint is not None:
            due = [b for b, t in enumerate(steps) if t % checkpoint_every == 0]
            if due:
                continuing = [self.ids[k] for k, t in zip(self.active, steps, strict=True) if t < s.n_steps]
                self.checkpoint(due, i, continuing)
        self.finish(i)
        return steps

    def close(self) -> list[SystemOutcome]:
        """Flush every writer and complete the outcomes: frames and chunks written, and the last good frame of each
        completed system."""
        for w in self.writers:
            w.flush()
        for o in self.outcomes:
            o.n_frames = self.writers[o.index].n_frames
            o.n_chunks = self.writers[o.index].n_chunks
            if o.status == "completed":
                o.last_good_frame = o.n_frames - 1 if o.n_frames else None
        return self.outcomes
