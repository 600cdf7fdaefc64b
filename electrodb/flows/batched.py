"""Batched NVT production with torch-sim as a jobflow Maker, and when to use it (:func:`should_batch`).

:class:`BatchedProductionMaker` runs many small boxes of a campaign in one batched torch-sim integration
(:func:`~electrodb.md.torchsim.run_batched_nvt`, which holds the integrator, the per-system stability
monitor and the image counting) and stores one trajectory per system, as the sequential
:class:`~electrodb.flows.md.ProductionMDMaker` does. The engine's public names are re-exported here.

Why batching pays on a GPU and not on 2 CPU cores
--------------------------------------------------
A MACE step on one 200–300-atom box is far too small to fill a GPU: the time is dominated by a fixed cost per
step (hundreds of small kernel launches, Python overhead of the integrator and of the model wrapper,
host–device synchronisation), not by arithmetic. Concatenating k boxes into one graph pays that fixed cost once
per step for all of them, so the throughput in atom-steps per second grows almost linearly with k until the
GPU is busy (thousands of atoms for a small MACE). On a CPU the arithmetic itself is the bottleneck: two cores
are already saturated by one 200-atom box (torch's intra-op threads), the per-step overhead is a small fraction
of the step, and a k-fold larger graph costs about k times as long. Measured here on 2 CPU cores (see
``docs/batched-md.md`` and ``benchmarks/md_throughput.py``) batching gives no speed-up, hence
:func:`should_batch` returns True only for CUDA devices. Note also that torch-sim 0.3.0's ``MaceModel`` builds
the neighbour list per system on the CPU (vesin) in a Python loop, so on a GPU the gain saturates earlier than
with a fully on-device neighbour list.

Checkpoints and resume: every box is checkpointed during the run in the data store, in the sequential
engine's format (:func:`electrodb.flows.md_records.save_checkpoint`), and a killed batched job rerun continues each box
from its own checkpoint with no frame lost or duplicated (:func:`~electrodb.md.torchsim.run_batched_nvt`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from ase import Atoms
from jobflow import Maker

from electrodb.analysis.convergence import ConvergenceTargets
from electrodb.analysis.md_checks import check_temperature
from electrodb.documents.system import SystemDocument
from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.flows.job_io import job_stores, output_document, store_job
from electrodb.flows.md import ProductionMDMaker, report
from electrodb.flows.md_records import (
    atoms_from_dict,
    discard,
    load_checkpoint,
    mark,
    new_trajectory_doc,
    produced_ps,
    save_checkpoint,
)
from electrodb.flows.training import model_long_range
from electrodb.md.dynamics import ProductionState, checkpoint_interval, kinetic_energy_relaxation_ps
from electrodb.md.torchsim import BatchedRunResult, autobatch_bins, resolve_device, run_batched_nvt
from electrodb.md.torchsim_batch import SystemOutcome
from electrodb.md.torchsim_monitor import BatchedStabilityMonitor
from electrodb.models.loader import load_model
from electrodb.models.reference import ModelRef
from electrodb.settings import get_settings
from electrodb.store.frames import TrajectoryWriter, load_trajectory, truncate_chunks
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.campaign import MDSettings, SystemSpec

__all__ = [
    "BatchedProductionMaker",
    "BatchedRunResult",
    "BatchedStabilityMonitor",
    "SystemOutcome",
    "autobatch_bins",
    "resolve_device",
    "run_batched_nvt",
    "should_batch",
]


def should_batch(device: str | torch.device | None = None) -> bool:
    """True only on a CUDA device: there batching k boxes multiplies throughput; on CPU it does not.

    Measured on CPU (``benchmarks/md_throughput.py``, ``docs/batched-md.md``): batched torch-sim reached 0.8-1.0x
    the atom-steps per second of the same boxes run one after another, so on CPU the sequential ASE path is
    preferred. GPU throughput was not measured (no GPU was available).
    """
    return resolve_device(device).type == "cuda"


def _common_md(specs: Sequence[SystemSpec]) -> MDSettings:
    """The MD settings shared by all specs of a batch (one time step, sampling, friction and length)."""
    md = specs[0].md
    keys = ("timestep_fs", "sample_every_steps", "friction_per_fs", "production_ps", "thermostat", "stability", "seed")
    for spec in specs[1:]:
        for key in keys:
            if getattr(spec.md, key) != getattr(md, key):
                raise ValueError(
                    f"systems of one batch must share md.{key}: {spec.system_id} has {getattr(spec.md, key)!r}, "
                    f"{specs[0].system_id} has {getattr(md, key)!r}"
                )
        if spec.model_id != specs[0].model_id:
            raise ValueError(f"systems of one batch must share the model: {spec.system_id} uses {spec.model}")
    if md.thermostat != "langevin":
        raise ValueError(
            f"batched MD runs Langevin only, not {md.thermostat!r}: set md.thermostat: langevin (with a weak "
            "friction_per_fs) for batched runs, or md.batch: off (ProductionMDMaker, Bussi by default)"
        )
    for spec in specs:
        if spec.long_range is not None:
            raise ValueError(
                f"{spec.system_id}: batched torch-sim MD has no long-range Coulomb term; set md.batch: off to run "
                "campaigns with long_range"
            )
    return md


def _split_batches(sizes: Sequence[int], max_atoms: int | None, max_systems: int | None = None) -> list[list[int]]:
    """Consecutive groups of indices of at most ``max_atoms`` atoms and ``max_systems`` systems (None: no limit)."""
    groups: list[list[int]] = []
    total = 0
    for k, n in enumerate(sizes):
        fits = max_atoms is None or total + n <= max_atoms
        if groups and fits and (max_systems is None or len(groups[-1]) < max_systems):
            groups[-1].append(k)
            total += n
        else:
            groups.append([k])
            total = n
    return groups


@dataclass
class _Box:
    """One system of a batched job as it enters an integration."""

    index: int
    spec: SystemSpec
    system: SystemDocument
    atoms: Atoms  # the equilibrated box (the start of a fresh run or of a retry)
    doc: TrajectoryDocument
    timestep_fs: float
    sample_every: int
    state: ProductionState | None = None
    retried: bool = False


def _torch_sim_model(loaded: Any) -> Any:
    """What :func:`run_batched_nvt` integrates with: a MACE module, or a torch-sim wrapper of a NequIP model."""
    if loaded.is_mace:
        return loaded.torch_model()
    if loaded.identity.kind == "nequip":  # the module's one lazy import: torchsim_models needs torch_sim at import
        from electrodb.md.torchsim_models import NequIPTorchSimModel

        return NequIPTorchSimModel.from_loaded(loaded)
    raise ValueError(
        f"batched MD runs MACE and NequIP models, not {loaded.identity.kind} ({loaded.ref}); set md.batch: off"
    )


@dataclass
class BatchedProductionMaker(Maker):
    """NVT production of many systems in batched torch-sim integrations, checkpointed and resumable.

    The counterpart of :class:`~electrodb.flows.md.ProductionMDMaker` for a list of systems that share the
    model and the MD settings: each system gets its own :class:`TrajectoryDocument` and chunked frames in the
    job's stores, marked ``completed`` or ``unstable`` (reason, last good frame) independently. Systems that
    failed are retried once together with half the time step (when ``md.stability.retry_half_timestep``).
    Completed systems are returned as they are; systems whose equilibration failed (or is missing: the job
    runs with ``on_missing_references=NONE`` in :func:`~electrodb.flows.batched_campaign.batched_campaign_flow`)
    are skipped. Each box is checkpointed every :func:`~electrodb.md.dynamics.checkpoint_interval` steps; a
    rerun resumes every box from its checkpoint. ``wall_time_s`` and ``ns_per_day`` of each document are those
    of its batch (documents carry ``batched=True`` and ``batch_size``).

    Attributes
    ----------
    name
        Job name.
    chunk_frames
        Frames per stored chunk (default: the settings' ``trajectory_chunk_frames``).
    device
        ``'auto'`` (CUDA when available), ``'cuda'``, ``'cpu'``, ...
    max_atoms_per_batch
        At most this many atoms per integration (None: no limit).
    max_systems_per_batch
        At most this many boxes per integration (``md.batch: N``; None: no limit).
    autobatch
        Let torch-sim's ``BinningAutoBatcher`` choose the boxes of each integration so that it fits the GPU
        (``md.batch: auto``; on a CPU it changes nothing).
    resume
        Continue boxes from their checkpoints (False: restart them).
    """

    name: str = "batched production md"
    chunk_frames: int | None = None
    device: str = "auto"
    max_atoms_per_batch: int | None = None
    max_systems_per_batch: int | None = None
    autobatch: bool = False
    resume: bool = True

    @store_job
    def make(self, specs: list[SystemSpec], systems: list[SystemDocument | None]) -> list[TrajectoryDocument]:
        if len(specs) != len(systems):
            raise ValueError(f"{len(specs)} specs but {len(systems)} systems")
        if not specs:
            return []
        md = _common_md(specs)
        stores = job_stores("trajectories", "data", "systems", "models")
        out: dict[int, TrajectoryDocument] = {}
        todo: list[tuple[int, dict[str, Any] | None]] = []
        for k, (spec, system) in enumerate(zip(specs, systems, strict=True)):
            existing = stores.trajectories.query_one({"trajectory_id": spec.system_id})
            if existing is not None:
                existing = output_document(existing)
            if existing and existing["status"] == "completed" and not self._extends(stores, existing, md):
                out[k] = TrajectoryDocument(**existing)
            elif system is None or system.status != "ok":
                if existing:
                    out[k] = TrajectoryDocument(**existing)
            else:
                todo.append((k, existing))
        if not todo:
            return [out[k] for k in sorted(out)]
        loaded = load_model(ModelRef.parse(specs[todo[0][0]].model), device=str(resolve_device(self.device)))
        if model_long_range(stores, loaded.identity.model_id) is not None:
            raise ValueError(
                f"model {loaded.ref} was trained without a long-range term that batched MD cannot add back; "
                "set md.batch: off"
            )
        identity = loaded.identity.model_dump(mode="json")
        boxes = []
        for k, existing in todo:
            system = systems[k]
            assert system is not None
            atoms = atoms_from_dict(system.atoms)
            loaded.check_elements(atoms.get_chemical_symbols())
            boxes.append(self._prepare(stores, k, specs[k], system, atoms, existing, identity, md))
        fresh = [b for b in boxes if b.state is None]
        if fresh and md.nve_drift_steps > 0:  # once per model, as the sequential path does
            probe = fresh[0].atoms.copy()
            probe.calc = loaded.calculator()
            ProductionMDMaker.check_nve_drift(stores, probe, identity, md, fresh[0].spec.temperature)
        torch_model = _torch_sim_model(loaded)
        chunk = self.chunk_frames or get_settings().trajectory_chunk_frames
        pending = boxes
        while pending:
            retry: list[_Box] = []
            for group in self._integrations(pending, torch_model, loaded.ref.dtype):
                finished = self._integrate(stores, md, group, torch_model, loaded.ref.dtype, chunk)
                for box, doc in zip(group, finished, strict=True):
                    out[box.index] = doc
                    if doc.status == "unstable" and not box.retried and md.stability.retry_half_timestep:
                        retry.append(self._retry_box(stores, box, identity, md))
            if retry:
                report(f"{len(retry)} system(s) unstable; retrying them once with half the time step")
            pending = retry
        return [out[k] for k in sorted(out)]

    def _extends(self, stores: ElectroDBStores, existing: dict[str, Any], md: MDSettings) -> bool:
        """Whether a completed trajectory is shorter than ``md.production_ps`` and can be continued from its
        checkpoint (a later segment of a campaign with ``until``, or a raised ``production_ps``)."""
        short = produced_ps(existing) < md.production_ps - 0.5 * float(existing["frame_interval_ps"])
        return self.resume and short and load_checkpoint(stores, existing["trajectory_id"]) is not None

    def _prepare(
        self,
        stores: ElectroDBStores,
        k: int,
        spec: SystemSpec,
        system: SystemDocument,
        atoms: Atoms,
        existing: dict[str, Any] | None,
        identity: dict[str, Any],
        md: MDSettings,
    ) -> _Box:
        """The box of one system: resumed from its checkpoint, or fresh (stored frames and checkpoint removed)."""
        tid = spec.system_id
        state = load_checkpoint(stores, tid) if self.resume and existing else None
        if state is not None and existing is not None:
            doc = TrajectoryDocument(**existing)
            retried = bool(existing.get("retried_with_half_timestep", False))
            return _Box(k, spec, system, atoms, doc, state.timestep_fs, doc.sample_interval_steps, state, retried)
        discard(stores, tid)
        doc = new_trajectory_doc(spec, atoms, identity, md, md.timestep_fs, md.sample_every_steps)
        return _Box(k, spec, system, atoms, doc, md.timestep_fs, md.sample_every_steps)

    @staticmethod
    def _retry_box(stores: ElectroDBStores, box: _Box, identity: dict[str, Any], md: MDSettings) -> _Box:
        discard(stores, box.spec.system_id)
        timestep, sample_every = box.timestep_fs / 2, box.sample_every * 2
        doc = new_trajectory_doc(box.spec, box.atoms, identity, md, timestep, sample_every)
        return _Box(box.index, box.spec, box.system, box.atoms, doc, timestep, sample_every, None, True)

    def _integrations(self, boxes: list[_Box], torch_model: Any, dtype: str) -> list[list[_Box]]:
        """The boxes of each integration: one time grid each, then cut by the autobatcher and the limits."""
        grids: dict[tuple[float, int], list[_Box]] = {}
        for box in boxes:
            grids.setdefault((box.timestep_fs, box.sample_every), []).append(box)
        out: list[list[_Box]] = []
        for group in grids.values():
            if self.autobatch and should_batch(self.device):
                atoms = [b.atoms for b in group]
                bins = autobatch_bins(atoms, torch_model, self.device, dtype, max_systems=self.max_systems_per_batch)
            else:
                bins = [list(range(len(group)))]
            for bin_ in bins:
                sizes = [len(group[i].atoms) for i in bin_]
                for part in _split_batches(sizes, self.max_atoms_per_batch, self.max_systems_per_batch):
                    out.append([group[bin_[i]] for i in part])
        return out

    def _integrate(
        self,
        stores: ElectroDBStores,
        md: MDSettings,
        group: list[_Box],
        torch_model: Any,
        dtype: str,
        chunk: int,
    ) -> list[TrajectoryDocument]:
        """One batched integration of ``group`` (same time grid); returns each box's final document."""
        timestep, sample_every = group[0].timestep_fs, group[0].sample_every
        docs, writers = [], []
        for box in group:
            tid = box.spec.system_id
            if box.state is not None:
                truncate_chunks(stores.data, tid, box.state.n_frames)
            writers.append(
                TrajectoryWriter(
                    stores.data,
                    tid,
                    len(box.atoms),
                    chunk,
                    start_frame=box.state.n_frames if box.state else 0,
                    start_chunk=box.state.n_chunks if box.state else 0,
                )
            )
            docs.append(
                mark(
                    stores,
                    box.doc,
                    status="running",
                    density_kg_m3=box.system.density_kg_m3,
                    density_err_kg_m3=box.system.density_err_kg_m3,
                    density_converged=box.system.density_converged,
                    box_length_A=box.system.box_length_A,
                    batched=True,
                    batch_size=len(group),
                    retried_with_half_timestep=box.retried,
                )
            )
        n_steps = round(md.production_ps * 1000 / timestep)
        label = f"batch of {len(group)} systems ({sum(len(b.atoms) for b in group)} atoms)"
        started = time.perf_counter()

        def progress(step: int, total: int, elapsed: float) -> None:
            ns_day = step * timestep * 1e-6 / (elapsed / 86400) if elapsed > 0 else 0.0
            report(f"{label}: step {step}/{total}, {ns_day:.3f} ns/day per system")

        result = run_batched_nvt(
            [b.atoms for b in group],
            torch_model,
            [b.spec.temperature for b in group],
            timestep,
            n_steps,
            sample_every,
            writers,
            friction_per_fs=md.friction_per_fs,
            seed=md.seed,
            device=self.device,
            dtype=dtype,
            monitor=md.stability,
            on_progress=progress,
            resume=[b.state for b in group],
            checkpoint_every=checkpoint_interval(md.checkpoint_every_steps, n_steps, sample_every),
            on_checkpoint=lambda k, state: save_checkpoint(stores, group[k].spec.system_id, state),
        )
        wall = time.perf_counter() - started
        final = []
        for doc, outcome in zip(docs, result.outcomes, strict=True):
            common = {
                "n_frames": outcome.n_frames,
                "n_chunks": outcome.n_chunks,
                "batch_device": result.device,
                "last_good_frame": outcome.last_good_frame,
            }
            if outcome.status == "unstable":
                final.append(mark(stores, doc, status="unstable", status_reason=outcome.reason, **common))
                continue
            final.append(self._complete(stores, md, doc, n_steps, timestep, doc.wall_time_s + wall, common))
        return final

    @staticmethod
    def _complete(
        stores: ElectroDBStores,
        md: MDSettings,
        doc: TrajectoryDocument,
        n_steps: int,
        timestep: float,
        wall: float,
        common: dict[str, Any],
    ) -> TrajectoryDocument:
        """Mark a finished box completed, with the temperature verdict over all its stored frames."""
        temps = load_trajectory(
            doc.model_dump(mode="json") | {"n_frames": common["n_frames"]},
            stores.trajectories,
            stores.data,
            fields=("temperature_K",),
        ).temperature_K
        t_check = check_temperature(
            temps,
            doc.temperature,
            ConvergenceTargets().with_overrides(getattr(doc, "targets", None)),
            min_correlation_time_ps=kinetic_energy_relaxation_ps(md),
            frame_interval_ps=doc.frame_interval_ps,
            n_atoms=doc.n_atoms,
        )
        simulated_ns = n_steps * timestep * 1e-6
        return mark(
            stores,
            doc,
            status="completed",
            duration_ps=(common["n_frames"] - 1) * doc.frame_interval_ps,
            wall_time_s=wall,
            ns_per_day=simulated_ns / (wall / 86400) if wall > 0 else None,
            **common,
            **t_check.as_fields(),
        )
