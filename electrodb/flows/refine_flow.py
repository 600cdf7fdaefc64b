"""A refine round as a jobflow Flow, for campaigns on FireWorks or jobflow-remote: select → label → train → register.

:class:`RefineMaker` builds four jobs whose names route them (:mod:`electrodb.managers.stages`: the first word of a
job's name picks the worker kind; unknown words go to CPU workers):

===============================  ======  ==================================================================
job                              worker  what it does
===============================  ======  ==================================================================
``select flagged <committee>``   CPU     :func:`~electrodb.flows.refine_select.select_flagged` from the audits
``label flagged <committee>``    CPU     the teacher: a model reference (CHGNet-r2SCAN by default) or
                                         ``python:module:function`` (:func:`teacher_calculator`) labels in
                                         the job, or a labelling Maker (atomate2's VASP or CP2K static makers)
                                         replaces it with one job per configuration and a collecting job
``train refined <committee>``    GPU     :func:`~electrodb.flows.refine.train_refined`; the member files go to
                                         the blob store so that any worker can register them
``register refined <committee>`` CPU     :func:`~electrodb.flows.refine.register_refined`: the child, last
===============================  ======  ==================================================================

Nothing flagged stops the flow after the selection (its children are skipped; the job's output says why); every other
failure fails its job, and nothing is registered before the last one.

For workers that reach no database (jobflow-remote), ``make(committee, inputs)`` takes the round's published inputs
(:mod:`electrodb.flows.refine_inputs`): the selection chooses from the published flagged frames, the train job finds
the parent in its stores and returns the members' bytes, and the register job writes the child from them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from jobflow import Flow, JobConfig, Maker, Response, job
from jobflow.core.reference import OnMissing

from electrodb.flows.committee import resolve_committee
from electrodb.flows.job_io import job_stores, store_job
from electrodb.flows.refine import (
    LabelledFlagged,
    NothingFlaggedError,
    RefinedTraining,
    RefineError,
    RefineSettings,
    label_flagged,
    register_refined,
    train_refined,
)
from electrodb.flows.refine_inputs import RefineInputs, member_blobs, seeded
from electrodb.flows.refine_select import FlaggedCandidates, FlaggedSelection, choose_flagged, select_flagged
from electrodb.models.committee import encode_extxyz
from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY
from electrodb.models.loader import load_model
from electrodb.models.reference import ModelRef
from electrodb.models.staging import model_blob_uuid, stage_model
from electrodb.settings import get_settings

__all__ = ["TEACHER_PREFIX", "RefineMaker", "labels_from_output", "teacher_calculator"]

#: A teacher given as ``python:package.module:function``: a function of no arguments returning an ASE calculator.
TEACHER_PREFIX = "python:"


def teacher_calculator(reference: str) -> tuple[Any, dict[str, Any]]:
    """The teacher's ASE calculator and its identity (for the refine record).

    ``reference`` is a model reference (``chgnet:r2scan``, a MACE file, ...; loaded by
    :func:`~electrodb.models.loader.load_model`) or ``python:package.module:function``, a function of no arguments
    returning an ASE calculator that the CPU workers can import (a DFT code's calculator, a test's Lennard-Jones).

    Raises
    ------
    RefineError
        A ``python:`` teacher that cannot be imported or does not return a calculator (one line with the fix).
    ModelError
        An unknown or missing model.
    """
    if not reference.startswith(TEACHER_PREFIX):
        model = load_model(ModelRef.parse(reference))
        return model.calculator(), model.identity.model_dump(mode="json")
    module_name, _, attribute = reference[len(TEACHER_PREFIX) :].partition(":")
    if not module_name or not attribute:
        raise RefineError(
            f"teacher {reference!r}: expected python:package.module:function (a function returning an ASE calculator)"
        )
    try:
        factory: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as exc:
        raise RefineError(
            f"teacher {reference!r} cannot be imported ({type(exc).__name__}: {exc}); fix the name or install its "
            "module where the label job runs"
        ) from exc
    calculator = factory()
    if not (hasattr(calculator, "get_potential_energy") or hasattr(calculator, "calculate")):
        raise RefineError(f"teacher {reference!r} returned a {type(calculator).__name__}, not an ASE calculator")
    return calculator, {"name": reference, "calculator": type(calculator).__name__}


def labels_from_output(output: Any, n_atoms: int) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (N, 3; eV/Å) from a labelling job's output; ValueError (one line) saying what is missing.

    Understands atomate2 task documents (``output.energy``, ``output.forces``; as objects or dicts) and plain
    ``{"energy": ..., "forces": ...}`` dicts. None (the job failed) is an error too.
    """
    if output is None:
        raise ValueError("the labelling job failed (no output)")
    doc = output.model_dump() if hasattr(output, "model_dump") else output
    doc = doc.as_dict() if hasattr(doc, "as_dict") else doc
    if not isinstance(doc, dict):
        raise ValueError(f"the labelling job returned a {type(output).__name__}, not a task document")
    inner = doc.get("output") if isinstance(doc.get("output"), dict) else doc
    energy, forces = inner.get("energy"), inner.get("forces")
    if energy is None or forces is None:
        raise ValueError("the labelling job's output has no energy and forces (output.energy, output.forces)")
    array = np.asarray(forces, dtype=float)
    if array.shape != (n_atoms, 3):
        raise ValueError(f"the labelling job returned forces of shape {array.shape}, expected ({n_atoms}, 3)")
    if not (np.isfinite(float(energy)) and np.isfinite(array).all()):
        raise ValueError("the labelling job returned non-finite energy or forces")
    return float(energy), array


@store_job
def _select(committee: str, settings: RefineSettings, candidates: FlaggedCandidates | None = None) -> Any:
    settings = RefineSettings.model_validate(settings)
    if candidates is not None:  # read on submission, for a worker without a database
        candidates = FlaggedCandidates.model_validate(candidates)
        return choose_flagged(candidates, settings.n_select, min_distance_fraction=settings.min_distance_fraction)
    with job_stores("committees", "audits", "trajectories", "data") as stores:
        parent = resolve_committee(stores, committee)
        try:
            selection = select_flagged(
                stores, parent, settings.n_select, min_distance_fraction=settings.min_distance_fraction
            )
        except NothingFlaggedError as exc:
            return Response(
                output={"nothing_flagged": str(exc), "committee_id": parent.committee_id}, stop_children=True
            )
    return selection


@job
def _label(selection: Any, teacher: str, teacher_maker: Maker | None) -> Any:
    selection = FlaggedSelection.model_validate(selection)
    if teacher_maker is None:
        calculator, identity = teacher_calculator(teacher)
        return label_flagged(selection, calculator, identity)
    from pymatgen.io.ase import AseAtomsAdaptor  # pymatgen only for a Maker teacher (atomate2 takes Structures)

    jobs = [teacher_maker.make(AseAtomsAdaptor.get_structure(atoms)) for atoms in selection.configurations()]
    described = {"maker": type(teacher_maker).__name__, "name": getattr(teacher_maker, "name", None)}
    collect = _collect(selection, [j.output for j in jobs], described)
    collect.name = "label collect"
    return Response(replace=Flow([*jobs, collect], output=collect.output, name="label flagged"))


@job(config=JobConfig(on_missing_references=OnMissing.NONE))
def _collect(selection: Any, outputs: list[Any], teacher: dict[str, Any]) -> LabelledFlagged:
    """The teacher jobs' energies and forces on the selected configurations; a failed job's configuration is
    skipped with its reason (this job runs even when some of them failed)."""
    selection = FlaggedSelection.model_validate(selection)
    labelled: list[Atoms] = []
    skipped = []
    for frame, atoms, output in zip(selection.frames, selection.configurations(), outputs, strict=True):
        try:
            energy, forces = labels_from_output(output, len(atoms))
        except ValueError as exc:
            skipped.append({"trajectory_id": frame.trajectory_id, "frame": frame.frame, "reason": str(exc)})
            continue
        atoms.info[ENERGY_KEY] = energy
        atoms.arrays[FORCES_KEY] = forces
        labelled.append(atoms)
    if not labelled:
        first = skipped[0]["reason"] if skipped else "no configurations"
        raise RefineError(f"the teacher labelled none of the {len(outputs)} selected configurations: {first}")
    return LabelledFlagged(
        teacher=teacher,
        labelled_zb64=encode_extxyz(labelled),
        n_labelled=len(labelled),
        skipped=skipped,
        selection=selection.summary(),
    )


# the members' bytes (only for a worker without a database) go to the data store as blobs, not into the output document
@job(config=JobConfig(expose_store=True), data="zb64")
def _train(
    selection: Any,
    labelled: Any,
    settings: RefineSettings,
    workdir: str | None,
    name: str | None,
    inputs: RefineInputs | None = None,
) -> RefinedTraining:
    selection = FlaggedSelection.model_validate(selection)
    labelled = LabelledFlagged.model_validate(labelled)
    settings = RefineSettings.model_validate(settings)
    inputs = None if inputs is None else RefineInputs.model_validate(inputs)
    with job_stores("committees", "data") as stores, seeded(stores, inputs.documents() if inputs else {}):
        parent = resolve_committee(stores, selection.committee_id)
        folder = Path(workdir) if workdir else get_settings().work_dir / f"refine-{parent.name}"  # the worker's own
        refined = train_refined(stores, parent, labelled, settings, folder, name=name)
        for path in refined.training.model_paths:  # the register job may run on another worker
            stage_model(stores.data, path)
        if inputs is not None:  # ... that reaches no database: the bytes travel in the output
            refined.member_files = [
                {"model_id": mid, "zb64": stores.data.query_one({"blob_uuid": model_blob_uuid(mid)})["zb64"]}
                for mid in refined.training.model_ids
            ]
    return refined


@store_job
def _register(refined: Any, parent: dict[str, Any] | None = None) -> dict[str, Any]:
    refined = RefinedTraining.model_validate(refined)
    documents = {"committees": [parent], "data": member_blobs(refined.member_files)} if parent is not None else {}
    with job_stores("models", "committees", "data") as stores, seeded(stores, documents, remove=False):
        return register_refined(stores, refined).model_dump(mode="json")


@dataclass
class RefineMaker(Maker):
    """One refine round of a committee as a Flow: select → label (CPU) → train (GPU) → register (CPU).

    Attributes
    ----------
    name
        Name of the Flow.
    settings
        :class:`~electrodb.flows.refine.RefineSettings` (how many configurations, de-duplication, test fraction,
        fine-tuning epochs and learning rate).
    teacher
        Model reference that labels in the label job (default ``chgnet:r2scan``, the labeller of ``train-demo``);
        ignored when ``teacher_maker`` is given.
    teacher_maker
        A labelling Maker whose ``make(structure)`` takes a pymatgen ``Structure`` and returns a job whose output
        has ``output.energy`` (eV) and ``output.forces`` (eV/Å), e.g. atomate2's ``StaticMaker`` for VASP or CP2K;
        one job per configuration, each on a CPU worker; one that fails skips its configuration.
    workdir
        Parent folder of the fine-tuning folders on the GPU worker (default: the worker's
        ``<work_dir>/refine-<committee name>``).
    child_name
        Name of the new committee (default ``<lineage>-r<round>``).
    """

    name: str = "refine committee"
    settings: RefineSettings = field(default_factory=RefineSettings)
    teacher: str = "chgnet:r2scan"
    teacher_maker: Maker | None = None
    workdir: str | None = None
    child_name: str | None = None

    def make(self, committee: str, inputs: Any = None) -> Flow:
        """The Flow refining ``committee`` (a name or id; its lineage's current committee).

        ``inputs``: for workers without a database, the reference that
        :func:`~electrodb.flows.refine_inputs.publish_refine_inputs` returned (or the ``RefineInputs`` themselves).
        """
        select = _select(committee, self.settings, None if inputs is None else inputs.candidates)
        select.name = f"select flagged {committee}"
        label = _label(select.output, self.teacher, self.teacher_maker)
        label.name = f"label flagged {committee}"
        train = _train(select.output, label.output, self.settings, self.workdir, self.child_name, inputs)
        train.name = f"train refined {committee}"
        register = _register(train.output, None if inputs is None else inputs.committee)
        register.name = f"register refined {committee}"
        return Flow([select, label, train, register], output=register.output, name=self.name)
