"""A refine round as a jobflow Flow, for campaigns on FireWorks or jobflow-remote: select → label → train → register.

:class:`RefineMaker` builds four jobs whose names route them (:mod:`electrodb.managers.stages`: the first word of a
job's name picks the worker kind; unknown words go to CPU workers):

===============================  ======  ==================================================================
job                              worker  what it does
===============================  ======  ==================================================================
``select flagged <committee>``   CPU     :func:`~electrodb.flows.refine_select.select_flagged` from the audits
``label flagged <committee>``    CPU     the teacher: a model reference (CHGNet-r2SCAN by default) labels in
                                         the job, or a labelling Maker (atomate2's VASP or CP2K static makers)
                                         replaces it with one job per configuration and a collecting job
``train refined <committee>``    GPU     :func:`~electrodb.flows.refine.train_refined`; the member files go to
                                         the blob store so that any worker can register them
``register refined <committee>`` CPU     :func:`~electrodb.flows.refine.register_refined`: the child, last
===============================  ======  ==================================================================

Nothing flagged stops the flow after the selection (its children are skipped; the job's output says why); every other
failure fails its job, and nothing is registered before the last one.
"""

from __future__ import annotations

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
from electrodb.flows.refine_select import FlaggedSelection, select_flagged
from electrodb.models.committee import encode_extxyz
from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY
from electrodb.models.loader import load_model
from electrodb.models.reference import ModelRef
from electrodb.models.staging import stage_model
from electrodb.settings import get_settings

__all__ = ["RefineMaker", "labels_from_output"]


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
def _select(committee: str, settings: RefineSettings) -> Any:
    settings = RefineSettings.model_validate(settings)
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
        model = load_model(ModelRef.parse(teacher))
        return label_flagged(selection, model.calculator(), model.identity.model_dump(mode="json"))
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


@store_job
def _train(selection: Any, labelled: Any, settings: RefineSettings, workdir: str, name: str | None) -> RefinedTraining:
    selection = FlaggedSelection.model_validate(selection)
    labelled = LabelledFlagged.model_validate(labelled)
    settings = RefineSettings.model_validate(settings)
    with job_stores("committees", "data") as stores:
        parent = resolve_committee(stores, selection.committee_id)
        refined = train_refined(stores, parent, labelled, settings, Path(workdir), name=name)
        for path in refined.training.model_paths:  # the register job may run on another worker
            stage_model(stores.data, path)
    return refined


@store_job
def _register(refined: Any) -> dict[str, Any]:
    refined = RefinedTraining.model_validate(refined)
    with job_stores("models", "committees", "data") as stores:
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
        Parent folder of the fine-tuning folders on the GPU worker (default ``<work_dir>/refine-<committee>``).
    child_name
        Name of the new committee (default ``<lineage>-r<round>``).
    """

    name: str = "refine committee"
    settings: RefineSettings = field(default_factory=RefineSettings)
    teacher: str = "chgnet:r2scan"
    teacher_maker: Maker | None = None
    workdir: str | None = None
    child_name: str | None = None

    def make(self, committee: str) -> Flow:
        """The Flow refining ``committee`` (a name or id; its lineage's current committee)."""
        workdir = self.workdir or str(get_settings().work_dir / f"refine-{committee.replace(':', '-')}")
        select = _select(committee, self.settings)
        select.name = f"select flagged {committee}"
        label = _label(select.output, self.teacher, self.teacher_maker)
        label.name = f"label flagged {committee}"
        train = _train(select.output, label.output, self.settings, workdir, self.child_name)
        train.name = f"train refined {committee}"
        register = _register(train.output)
        register.name = f"register refined {committee}"
        return Flow([select, label, train, register], output=register.output, name=self.name)
