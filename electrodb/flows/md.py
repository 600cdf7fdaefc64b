"""jobflow Makers for one electrolyte system: packed box -> NPT equilibration -> NVT production.

atomate2 style: small dataclass Makers with a ``name`` and a ``make()``; jobs return pydantic documents.
atomate2's ``ForceFieldMDMaker`` is not reused for production because it stores the whole trajectory as one
pymatgen ``Trajectory`` in a single blob at the end of the run (no checkpoints, no resume, no stability monitor,
and the 16 MB-per-document problem of atomate2 #515 on MongoDB without GridFS). ElectroDB streams frames as
chunks and checkpoints instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from jobflow import CURRENT_JOB, Maker, Response

from electrodb.analysis.convergence import ConvergenceTargets
from electrodb.analysis.md_checks import check_temperature, thermostat_offset_K
from electrodb.documents.system import SystemDocument
from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.flows.job_io import job_stores, output_document, store_job
from electrodb.flows.md_records import (
    atoms_from_dict,
    atoms_to_dict,
    box_labels,
    discard,
    load_checkpoint,
    mark,
    new_trajectory_doc,
    produced_ps,
    save_checkpoint,
    stored_system,
)
from electrodb.flows.resume import produce_in_working_copy
from electrodb.flows.training import model_long_range, resolve_long_range
from electrodb.md.dynamics import (
    MDInstabilityError,
    ProductionState,
    equilibrate,
    kinetic_energy_relaxation_ps,
    measure_nve_drift,
    run_production,
)
from electrodb.models.loader import get_nve_drift, load_model, record_nve_drift
from electrodb.models.longrange import LongRangeCalculator
from electrodb.models.reference import ModelRef
from electrodb.models.staging import model_reference_from_output, resolve_model_reference
from electrodb.settings import get_settings
from electrodb.store.frames import TrajectoryWriter, load_trajectory, truncate_chunks
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.boxes import box_counts, pack_box
from electrodb.systems.campaign import MDSettings, SystemSpec
from electrodb.utils.provenance import utcnow

__all__ = [
    "BoxMaker",
    "EquilibrationMaker",
    "ProductionMDMaker",
    "load_calculator",
    "report",
    "set_progress_hook",
]

ProgressCallback = Callable[[str], None]
_progress_hook: ProgressCallback | None = None


def set_progress_hook(hook: ProgressCallback | None) -> None:
    """Route progress lines of running jobs (steps, ns/day) to ``hook`` (the CLI shows them)."""
    global _progress_hook
    _progress_hook = hook


def report(message: str) -> None:
    """Send one progress line to the hook of :func:`set_progress_hook` (dropped when none is set)."""
    if _progress_hook is not None:
        _progress_hook(message)


def _stores() -> ElectroDBStores:
    """The running job's stores: those of the JobStore its manager handed it (never the process settings')."""
    return job_stores("trajectories", "data", "systems", "models")


def _model_sha256(spec: SystemSpec) -> str | None:
    """The sha256 the model must have: the submission's (job metadata ``electrodb_model_sha256``, set by
    ``electrodb campaign submit`` when it stages the model) or a ``sha256:`` model id; None when unknown."""
    job = CURRENT_JOB.job
    staged = job.metadata.get("electrodb_model_sha256") if job is not None and job.metadata else None
    model_id = getattr(spec, "model_id", None) or ""
    return staged or (model_id if model_id.startswith("sha256:") else None)


def _threads() -> int:
    """CPU threads the MD runs with (torch's intra-op pool; what a campaign's core hours count)."""
    import torch  # already loaded by the model

    return int(torch.get_num_threads())


def load_calculator(
    spec: SystemSpec, atoms: Atoms, stores: ElectroDBStores | None = None, model_file: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """The campaign's NNP (plus the long-range term, if any) and its identity.

    The model is found by its sha256: the campaign's file when it is here with that hash, else the bytes given as
    the job input ``model_file`` (jobflow-remote workers, which reach no database), else the blob staged in the
    data store (:mod:`electrodb.models.staging`), each verified before it is loaded.

    The term is the campaign's ``long_range``, or, for a model trained with a term removed (delta learning,
    recorded in its ``models`` document), that term: added automatically when the campaign gives none, and a
    different campaign term is refused (:func:`electrodb.flows.training.resolve_long_range`).
    """
    stores = stores if stores is not None else job_stores("models", "data")
    sha256 = _model_sha256(spec)
    reference = spec.model
    if model_file is not None:
        sha256 = sha256 or model_file["model_id"]
        if model_file["model_id"] != sha256:
            raise ValueError(f"the job was given model {model_file['model_id']}, but its system needs {sha256}")
        reference = model_reference_from_output(model_file, spec.model)
    elif sha256 is not None:  # a worker without the file gets a verified copy of the staged blob
        reference = resolve_model_reference(spec.model, sha256, stores.data)
    loaded = load_model(ModelRef.parse(reference), expected_id=sha256)
    loaded.check_elements(atoms.get_chemical_symbols())
    identity = loaded.identity.model_dump(mode="json")
    identity["device"] = loaded.device  # where it ran (a campaign budget counts GPU and core hours apart)
    calc = loaded.calculator()
    recorded = model_long_range(stores, loaded.identity.model_id)
    long_range, source = resolve_long_range(spec.long_range, recorded, f"model {spec.model!r}")
    if long_range is not None:  # the NNP plus a long-range Coulomb term (docs/long-range.md)
        calc = LongRangeCalculator.for_system(calc, long_range, atoms, spec.salt)
        identity["long_range"] = long_range.model_dump(mode="json")
        identity["long_range_source"] = source
    return calc, identity


@dataclass
class BoxMaker(Maker):
    """Pack the box of a system (packmol, fixed seed) and record it in the ``systems`` store."""

    name: str = "pack box"

    @store_job
    def make(self, spec: SystemSpec) -> SystemDocument:
        with _stores() as stores:  # a rerun after an interruption reuses the stored box (or equilibrated state)
            stored = stored_system(stores, spec.system_id)
        if stored is not None:
            report(f"{spec.salt} {spec.molality:.2f} m: reusing the stored {stored.stage} box")
            return stored
        counts = box_counts(spec.salt, spec.molality, "mol/kg", spec.temperature, n_waters=spec.n_waters)
        packed = pack_box(counts, seed=spec.packing.seed, tolerance=spec.packing.tolerance_A)
        doc = SystemDocument(
            system_id=spec.system_id,
            stage="packed",
            salt=spec.salt,
            molality=counts.molality,
            temperature=spec.temperature,
            atoms=atoms_to_dict(packed.atoms),
            density_kg_m3=counts.density_kg_m3,
            box_length_A=counts.box_length_A,
        )
        with _stores() as stores:
            record = {**doc.model_dump(mode="json"), **box_labels(spec, counts), "last_updated": utcnow()}
            stores.systems.update([record], key="system_id")
        return doc


@dataclass
class EquilibrationMaker(Maker):
    """Minimise, warm up and run NPT until the density settles (see :func:`electrodb.md.dynamics.equilibrate`)."""

    name: str = "equilibrate"

    @store_job
    def make(
        self, spec: SystemSpec, system: SystemDocument, model_file: dict[str, Any] | None = None
    ) -> SystemDocument:
        if system.stage == "equilibrated" and system.status == "ok":
            return system  # finished before an interruption: never equilibrate twice
        atoms = atoms_from_dict(system.atoms)
        calc, model = load_calculator(spec, atoms, model_file=model_file)
        atoms.calc = calc
        try:
            result = equilibrate(atoms, spec.md, spec.temperature, log=report)
        except MDInstabilityError as exc:
            with _stores() as stores:
                doc = new_trajectory_doc(spec, atoms, model, spec.md, spec.md.timestep_fs, spec.md.sample_every_steps)
                mark(stores, doc, status="unstable", status_reason=f"during equilibration: {exc.reason}")
            return system.model_copy(update={"stage": "equilibrated", "status": "unstable", "status_reason": str(exc)})
        done = SystemDocument(
            system_id=spec.system_id,
            stage="equilibrated",
            salt=spec.salt,
            molality=spec.molality,
            temperature=spec.temperature,
            atoms=atoms_to_dict(atoms),
            density_kg_m3=result.density_kg_m3,
            density_err_kg_m3=result.density_err_kg_m3,
            density_converged=result.converged,
            box_length_A=result.box_length_A,
            n_steps=result.n_steps,
            wall_time_s=result.wall_time_s,
        )
        with _stores() as stores:  # the equilibrated state survives an interrupted production
            old = stores.systems.query_one({"system_id": spec.system_id}) or {}
            old.pop("_id", None)
            record = {**old, **done.model_dump(mode="json"), **box_labels(spec, stored=old), "last_updated": utcnow()}
            stores.systems.update([record], key="system_id")
        return done


@dataclass
class ProductionMDMaker(Maker):
    """NVT production with streamed frames, checkpoints, a stability monitor and one half-timestep retry.

    A killed job re-run with the same spec resumes from its last checkpoint (in the job's stores, or, where those
    live in the job's own folder as on jobflow-remote, in a working copy beside it: :mod:`electrodb.flows.resume`).
    An unstable run is stored with ``status='unstable'``, the reason and the last good frame, and never reaches
    the property builders.
    """

    name: str = "production md"
    chunk_frames: int | None = None
    resume: bool = True

    @store_job
    def make(
        self,
        spec: SystemSpec,
        system: SystemDocument,
        model_file: dict[str, Any] | None = None,
        production_ps: float | None = None,
    ) -> TrajectoryDocument | Response:
        """Run (or continue) production until ``production_ps`` (default ``spec.md.production_ps``).

        A completed trajectory shorter than that is extended from its last checkpoint (a later segment of a
        campaign with ``until:``, or a raised ``production_ps``): frames continue the same time grid, none lost
        or repeated; one as long or longer is returned as it is.
        """
        target_ps = float(production_ps if production_ps is not None else spec.md.production_ps)
        with _stores() as stores:
            if not self.resume:
                return self._produce(stores, spec, system, model_file, target_ps=target_ps)
            # jobflow-remote: frames and checkpoints in a folder that outlives the job's own (flows.resume)
            return produce_in_working_copy(
                stores,
                spec.system_id,
                lambda run_stores: self._produce(
                    run_stores, spec, system, model_file, model_stores=stores, target_ps=target_ps
                ),
                report=report,
                label=f"{spec.salt} {spec.molality:.2f} m",
                keep=spec.until is not None,  # the check and the next segment read the copy (flows.segments)
            )

    def _produce(
        self,
        stores: ElectroDBStores,
        spec: SystemSpec,
        system: SystemDocument,
        model_file: dict[str, Any] | None,
        model_stores: ElectroDBStores | None = None,
        target_ps: float | None = None,
    ) -> TrajectoryDocument | Response:
        """The production itself, on ``stores`` (the job's, or its working copy's view), up to ``target_ps``
        (default ``spec.md.production_ps``); the model is looked up in ``model_stores`` (default ``stores``),
        where a staged model blob is."""
        tid = spec.system_id
        target_ps = float(target_ps if target_ps is not None else spec.md.production_ps)
        existing = stores.trajectories.query_one({"trajectory_id": tid})
        if existing is not None:
            existing = output_document(existing)
        if existing and existing["status"] == "completed":
            if not self.resume or produced_ps(existing) >= target_ps - 0.5 * existing["frame_interval_ps"]:
                return TrajectoryDocument(**existing)
            if load_checkpoint(stores, tid) is None:  # nothing to continue from: keep what is there
                report(f"{spec.salt} {spec.molality:.2f} m: no checkpoint to extend the stored run from")
                return TrajectoryDocument(**existing)
            report(
                f"{spec.salt} {spec.molality:.2f} m: extending the stored {produced_ps(existing):.3g} ps "
                f"to {target_ps:.3g} ps"
            )
        if system.status != "ok":
            return TrajectoryDocument(**existing) if existing else Response(stop_children=True)
        atoms = atoms_from_dict(system.atoms)
        calc, model = load_calculator(spec, atoms, model_stores or stores, model_file=model_file)
        atoms.calc = calc
        chunk = self.chunk_frames or get_settings().trajectory_chunk_frames
        md = spec.md
        timestep, sample_every = md.timestep_fs, md.sample_every_steps
        state = load_checkpoint(stores, tid) if self.resume and existing else None
        if state is not None and existing is not None:
            timestep = state.timestep_fs
            sample_every = int(existing["sample_interval_steps"])
            doc = TrajectoryDocument(**existing)
        else:
            state = None
            discard(stores, tid)
            doc = new_trajectory_doc(spec, atoms, model, md, timestep, sample_every)
        doc = mark(
            stores,
            doc,
            status="running",
            md_resources={"device": model.get("device") or "cpu", "threads": _threads()},
            density_kg_m3=system.density_kg_m3,
            density_err_kg_m3=system.density_err_kg_m3,
            density_converged=system.density_converged,
            box_length_A=system.box_length_A,
        )
        if state is None and not atoms.get_momenta().any():  # a box without velocities: start at temperature
            MaxwellBoltzmannDistribution(atoms, temperature_K=spec.temperature, rng=np.random.default_rng(md.seed))
            Stationary(atoms)
        self.check_nve_drift(stores, atoms, model, md, spec.temperature)
        start_atoms = atoms.copy()
        md = md.model_copy(update={"production_ps": target_ps})  # the length this call runs to
        for attempt in range(2):
            doc = self.run(stores, doc, atoms, md, timestep, sample_every, chunk, state)
            if doc.status != "unstable" or attempt == 1 or not md.stability.retry_half_timestep:
                break
            report(
                f"{spec.salt} {spec.molality:.2f} m: unstable ({doc.status_reason}); "
                "retrying once with half the timestep"
            )
            discard(stores, tid)
            atoms = start_atoms.copy()
            atoms.calc = calc
            timestep, sample_every, state = timestep / 2, sample_every * 2, None
            doc = mark(
                stores,
                new_trajectory_doc(spec, atoms, model, md, timestep, sample_every),
                status="running",
                retried_with_half_timestep=True,
                density_kg_m3=system.density_kg_m3,
                density_err_kg_m3=system.density_err_kg_m3,
                density_converged=system.density_converged,
                box_length_A=system.box_length_A,
            )
        return doc

    @staticmethod
    def check_nve_drift(
        stores: ElectroDBStores, atoms: Atoms, model: dict[str, Any], md: MDSettings, temperature: float
    ) -> None:
        """Measure the model's NVE energy drift once and store it in the model's ``models`` document.

        ``md.nve_drift_steps`` velocity-Verlet steps on a copy of this box at the production timestep; skipped when
        the document already has a drift. A failed check is stored as such and never stops production.

        Parameters
        ----------
        stores
            Stores whose ``models`` collection holds the model's document.
        atoms
            The box (not modified), with its calculator and momenta.
        model
            The model's identity (``model_id`` and the other :class:`~electrodb.models.loaded.ModelIdentity` fields).
        md
            MD settings: ``timestep_fs`` (fs), ``nve_drift_steps``, thermostat and seed.
        temperature
            Target temperature of the box (K), recorded with the drift (meV/atom/ps).
        """
        model_id = model.get("model_id")
        if md.nve_drift_steps <= 0 or not model_id or get_nve_drift(stores, model_id) is not None:
            return
        record: dict[str, Any] = {"n_atoms": len(atoms), "target_temperature_K": temperature}
        try:
            result = measure_nve_drift(atoms, md.timestep_fs, md.nve_drift_steps, temperature, seed=md.seed)
            tau = kinetic_energy_relaxation_ps(md)
            record |= {
                "status": "ok",
                **result.as_dict(),
                "thermostat": md.thermostat,
                "thermostat_relaxation_ps": tau,
                "expected_offset_K": thermostat_offset_K(result.drift.drift_meV_per_atom_ps, tau),
            }
            report(
                f"model NVE drift: {result.drift.drift_meV_per_atom_ps:+.3f} meV/atom/ps "
                f"({md.nve_drift_steps} steps of {md.timestep_fs} fs, {len(atoms)} atoms)"
            )
        except Exception as exc:  # a blow-up in NVE is itself the finding; production still runs thermostatted
            record |= {
                "status": "failed",
                "reason": f"{type(exc).__name__}: {exc}",
                "timestep_fs": md.timestep_fs,
                "n_steps": md.nve_drift_steps,
            }
        record_nve_drift(stores, model_id, record, identity=model)

    def run(
        self,
        stores: ElectroDBStores,
        doc: TrajectoryDocument,
        atoms: Atoms,
        md: MDSettings,
        timestep: float,
        sample_every: int,
        chunk: int,
        state: ProductionState | None,
    ) -> TrajectoryDocument:
        """One production attempt: stream frames into the ``data`` store with checkpoints, then record the outcome.

        Parameters
        ----------
        stores
            Where frames, checkpoints and the trajectory document go.
        doc
            The trajectory document (status ``running``).
        atoms
            The box, with its calculator; resumed from ``state`` when given.
        md
            The MD settings.
        timestep, sample_every
            Time step (fs) and steps between stored frames of this attempt.
        chunk
            Frames per stored chunk.
        state
            The checkpoint to continue from (frames beyond it are dropped first), or None for a fresh start.

        Returns
        -------
        TrajectoryDocument
            As stored: ``completed`` with the frame counts, wall time (s), ns/day and the temperature verdict, or
            ``unstable`` with the reason and the last good frame.
        """
        tid = doc.trajectory_id
        if state is not None:
            truncate_chunks(stores.data, tid, state.n_frames)
        writer = TrajectoryWriter(
            stores.data,
            tid,
            len(atoms),
            chunk,
            start_frame=state.n_frames if state else 0,
            start_chunk=state.n_chunks if state else 0,
        )
        n_steps = round(md.production_ps * 1000 / timestep)
        wall_before = doc.wall_time_s  # a resumed run adds to the wall time stored with its last checkpoint
        started = time.perf_counter()

        def checkpoint(s: ProductionState) -> None:
            save_checkpoint(stores, tid, s)
            # the document keeps the wall time up to this checkpoint, so a run killed after it adds on from there
            mark(stores, doc, wall_time_s=wall_before + time.perf_counter() - started)

        def progress(step: int, total: int, elapsed: float) -> None:
            done = step - (state.step if state else 0)
            ns_day = done * timestep * 1e-6 / (elapsed / 86400) if elapsed > 0 else 0.0
            report(f"{doc.salt} {doc.molality:.2f} m {doc.temperature:.0f} K: step {step}/{total}, {ns_day:.3f} ns/day")

        try:
            run_production(
                atoms,
                md,
                doc.temperature,
                writer,
                timestep,
                sample_every,
                n_steps,
                resume=state,
                on_checkpoint=checkpoint,
                on_progress=progress,
            )
        except MDInstabilityError as exc:
            writer.flush()
            return mark(
                stores,
                doc,
                status="unstable",
                status_reason=exc.reason,
                last_good_frame=writer.n_frames - 1 if writer.n_frames else None,
                n_frames=writer.n_frames,
                n_chunks=writer.n_chunks,
            )
        wall = wall_before + time.perf_counter() - started
        temps = load_trajectory(
            doc.model_dump(mode="json") | {"n_frames": writer.n_frames},
            stores.trajectories,
            stores.data,
            fields=("temperature_K",),
        ).temperature_K
        simulated_ns = n_steps * timestep * 1e-6
        targets = ConvergenceTargets().with_overrides(getattr(doc, "targets", None))
        t_check = check_temperature(
            temps,
            doc.temperature,
            targets,
            min_correlation_time_ps=kinetic_energy_relaxation_ps(md),
            frame_interval_ps=doc.frame_interval_ps,
            n_atoms=doc.n_atoms,
        )
        if t_check.verdict.status != "converged":
            report(f"{doc.salt} {doc.molality:.2f} m: {t_check.verdict.reason}")
        return mark(
            stores,
            doc,
            status="completed",
            status_reason=None,
            md={**doc.md, "production_ps": md.production_ps},  # the length run so far (segments extend it)
            n_frames=writer.n_frames,
            n_chunks=writer.n_chunks,
            duration_ps=(writer.n_frames - 1) * doc.frame_interval_ps,
            wall_time_s=wall,
            ns_per_day=simulated_ns / (wall / 86400) if wall > 0 else None,
            last_good_frame=writer.n_frames - 1,
            **t_check.as_fields(),
        )
