"""Batched NVT production with torch-sim as a jobflow Maker, and when to use it (:func:`should_batch`).

:class:`BatchedProductionMaker` runs many small boxes of a campaign in one batched torch-sim integration
(:func:`~electrodb.flows.batched_engine.run_batched_nvt`, which holds the integrator, the per-system stability
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

Batched runs have no checkpoints: a killed batched job reruns its systems from the start (use the sequential
:class:`~electrodb.flows.md.ProductionMDMaker` for long runs that must resume).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from ase import Atoms
from jobflow import Maker, job

from electrodb.campaign import MDSettings, SystemSpec
from electrodb.flows.batched_engine import (
    BatchedRunResult,
    BatchedStabilityMonitor,
    SystemOutcome,
    resolve_device,
    run_batched_nvt,
)
from electrodb.flows.md import (
    SystemDocument,
    _checkpoint_uuid,
    _mark,
    _new_trajectory_doc,
    _report,
    _stores,
    atoms_from_dict,
)
from electrodb.trajectory import TrajectoryDocument, TrajectoryWriter, truncate_chunks

__all__ = [
    "BatchedProductionMaker",
    "BatchedRunResult",
    "BatchedStabilityMonitor",
    "SystemOutcome",
    "resolve_device",
    "run_batched_nvt",
    "should_batch",
]


def should_batch(device: str | torch.device | None = None) -> bool:
    """True only on a CUDA device: there batching k boxes multiplies throughput; on CPU it does not.

    Measured on CPU (``benchmarks/md_throughput.py``, ``docs/batched-md.md``): batched torch-sim reached 0.8-1.0x
    the atom-steps per second of the same boxes run one after another, so on CPU the sequential ASE path (with
    checkpoints and resume) is preferred. GPU throughput was not measured (no GPU was available).
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
            "friction_per_fs) for batched runs, or use ProductionMDMaker (Bussi, the default)"
        )
    return md


def _split_batches(sizes: Sequence[int], max_atoms: int | None) -> list[list[int]]:
    """Consecutive groups of indices whose atom counts add up to at most ``max_atoms`` (None: one group)."""
    if max_atoms is None:
        return [list(range(len(sizes)))] if sizes else []
    groups: list[list[int]] = []
    total = 0
    for k, n in enumerate(sizes):
        if groups and total + n <= max_atoms:
            groups[-1].append(k)
            total += n
        else:
            groups.append([k])
            total = n
    return groups


@dataclass
class BatchedProductionMaker(Maker):
    """NVT production of many systems in one batched torch-sim integration (worth it on a GPU only).

    The counterpart of :class:`~electrodb.flows.md.ProductionMDMaker` for a list of systems that share the
    model and the MD settings: each system gets its own :class:`TrajectoryDocument` and chunked frames in the
    same stores, marked ``completed`` or ``unstable`` (reason, last good frame) independently. Systems that
    failed are retried once together with half the time step (when ``md.stability.retry_half_timestep``).
    Completed systems are returned as they are; systems whose equilibration failed are skipped. No checkpoints:
    a killed job reruns its unfinished systems from the start. ``wall_time_s`` and ``ns_per_day`` of each
    document are those of its whole batch (documents carry ``batched=True`` and ``batch_size``).

    Attributes
    ----------
    name
        Job name.
    chunk_frames
        Frames per stored chunk (default: the settings' ``trajectory_chunk_frames``).
    device
        ``'auto'`` (CUDA when available), ``'cuda'``, ``'cpu'``, ...
    max_atoms_per_batch
        Split the systems into consecutive batches of at most this many atoms (None: one batch).
    """

    name: str = "batched production md"
    chunk_frames: int | None = None
    device: str = "auto"
    max_atoms_per_batch: int | None = None

    @job
    def make(self, specs: list[SystemSpec], systems: list[SystemDocument]) -> list[TrajectoryDocument]:
        if len(specs) != len(systems):
            raise ValueError(f"{len(specs)} specs but {len(systems)} systems")
        if not specs:
            return []
        from electrodb.models import ModelRef, load_model
        from electrodb.stores import get_stores

        md = _common_md(specs)
        out: dict[int, TrajectoryDocument] = {}
        todo: list[int] = []
        with _stores() as stores:
            for k, (spec, system) in enumerate(zip(specs, systems, strict=True)):
                existing = stores.trajectories.query_one({"trajectory_id": spec.system_id})
                if existing and existing["status"] == "completed":
                    out[k] = TrajectoryDocument(**existing)
                elif system.status != "ok":
                    if existing:
                        out[k] = TrajectoryDocument(**existing)
                else:
                    todo.append(k)
            if todo:
                loaded = load_model(ModelRef.parse(specs[todo[0]].model), device=self.device)
                identity = loaded.identity.model_dump(mode="json")
                atoms = {k: atoms_from_dict(systems[k].atoms) for k in todo}
                for k in todo:
                    loaded.check_elements(atoms[k].get_chemical_symbols())
                chunk = self.chunk_frames or get_stores().settings.trajectory_chunk_frames
                torch_model = loaded.torch_model()
                for group in _split_batches([len(atoms[k]) for k in todo], self.max_atoms_per_batch):
                    ks = [todo[g] for g in group]
                    docs = self._run_group(
                        stores,
                        md,
                        [specs[k] for k in ks],
                        [systems[k] for k in ks],
                        [atoms[k] for k in ks],
                        identity,
                        torch_model,
                        loaded.ref.dtype,
                        chunk,
                    )
                    out.update(zip(ks, docs, strict=True))
        return [out[k] for k in sorted(out)]

    def _run_group(
        self,
        stores: Any,
        md: MDSettings,
        specs: list[SystemSpec],
        systems: list[SystemDocument],
        atoms: list[Atoms],
        identity: dict[str, Any],
        torch_model: torch.nn.Module,
        dtype: str,
        chunk: int,
    ) -> list[TrajectoryDocument]:
        timestep, sample_every = md.timestep_fs, md.sample_every_steps
        docs: list[TrajectoryDocument | None] = [None] * len(specs)
        pending = list(range(len(specs)))
        for attempt in range(2):
            retried = attempt == 1
            for i in pending:
                tid = specs[i].system_id
                truncate_chunks(stores.data, tid, 0)
                stores.data.remove_docs({"blob_uuid": _checkpoint_uuid(tid)})
                docs[i] = _mark(
                    stores,
                    _new_trajectory_doc(specs[i], atoms[i], identity, md, timestep, sample_every),
                    status="running",
                    density_kg_m3=systems[i].density_kg_m3,
                    density_err_kg_m3=systems[i].density_err_kg_m3,
                    box_length_A=systems[i].box_length_A,
                    batched=True,
                    batch_size=len(pending),
                    retried_with_half_timestep=retried,
                )
            writers = [TrajectoryWriter(stores.data, specs[i].system_id, len(atoms[i]), chunk) for i in pending]
            n_steps = round(md.production_ps * 1000 / timestep)
            label = f"batch of {len(pending)} systems ({sum(len(atoms[i]) for i in pending)} atoms)"

            def progress(step: int, total: int, elapsed: float, label: str = label, dt: float = timestep) -> None:
                ns_day = step * dt * 1e-6 / (elapsed / 86400) if elapsed > 0 else 0.0
                _report(f"{label}: step {step}/{total}, {ns_day:.3f} ns/day per system")

            result = run_batched_nvt(
                [atoms[i] for i in pending],
                torch_model,
                [specs[i].temperature for i in pending],
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
            )
            wall = result.wall_time_s
            failed = []
            for i, outcome in zip(pending, result.outcomes, strict=True):
                doc = docs[i]
                assert doc is not None
                common = {
                    "n_frames": outcome.n_frames,
                    "n_chunks": outcome.n_chunks,
                    "batch_device": result.device,
                    "last_good_frame": outcome.last_good_frame,
                }
                if outcome.status == "unstable":
                    docs[i] = _mark(stores, doc, status="unstable", status_reason=outcome.reason, **common)
                    failed.append(i)
                    continue
                simulated_ns = n_steps * timestep * 1e-6
                docs[i] = _mark(
                    stores,
                    doc,
                    status="completed",
                    duration_ps=(outcome.n_frames - 1) * doc.frame_interval_ps,
                    wall_time_s=wall,
                    ns_per_day=simulated_ns / (wall / 86400) if wall > 0 else None,
                    mean_temperature_K=outcome.mean_temperature_K,
                    std_temperature_K=outcome.std_temperature_K,
                    **common,
                )
            if not failed or retried or not md.stability.retry_half_timestep:
                break
            _report(f"{len(failed)} system(s) unstable; retrying them once with half the time step")
            pending, timestep, sample_every = failed, timestep / 2, sample_every * 2
        return [d for d in docs if d is not None]
