"""A refine round: label what a committee flagged, fine-tune every member on it, register the child committee.

The active-learning loop of the LiCl NNP workflow, as ``electrodb model refine`` runs it (:func:`refine_committee`)
and as a jobflow Flow runs it on a cluster (:class:`electrodb.flows.refine_flow.RefineMaker`):

1. **select** (:func:`~electrodb.flows.refine_select.select_flagged`): the flagged frames of the committee's audits,
   de-duplicated by structural diversity;
2. **label** (:func:`label_flagged`): a teacher (by default the CHGNet-r2SCAN labeller of ``train-demo``; in a
   flow any labelling Maker, e.g. atomate2's VASP or CP2K static makers) computes reference energies and forces; a
   configuration the teacher fails on is skipped with its reason, and a teacher that fails on all is an error;
3. **split** the newly labelled configurations into a part *added* to the training data and a held-out *newly
   flagged* test part (``test_fraction``);
4. **train** (:func:`train_refined`): every member is fine-tuned from its current file on the parent's training
   data plus the added part (the parent's calibration configurations and the newly flagged test part stay held
   out of every member, and calibrate the child);
5. **measure** the held-out force RMSE of the parent's driver (*before*) and the child's (*after*) on the old test
   set (the parent's calibration configurations) and on the newly flagged test set;
6. **register** the child (:func:`~electrodb.flows.committee.store_committee` with the parent): the parent gets
   ``superseded_by``, and stays queryable.

A failure at any step (nothing flagged, a teacher failing on everything, a diverging fine-tune) raises one line and
registers nothing: the parent stays registered and current.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from pydantic import BaseModel, Field

from electrodb.documents.committee import CommitteeDocument
from electrodb.flows.committee import (
    calibrate_committee,
    driver_prediction,
    load_committee_data,
    materialize_committee,
    prediction_errors,
    register_committee,
    resolve_committee,
)
from electrodb.flows.refine_select import FlaggedSelection, NothingFlaggedError, RefineError, select_flagged
from electrodb.models.committee import (
    CommitteeSettings,
    CommitteeTraining,
    decode_extxyz,
    encode_extxyz,
    evaluate_configurations,
    train_committee,
)
from electrodb.models.labelling import label_configurations
from electrodb.store.stores import ElectroDBStores

__all__ = [
    "LabelledFlagged",
    "NothingFlaggedError",
    "RefineError",
    "RefineSettings",
    "RefinedTraining",
    "driver_errors",
    "label_flagged",
    "refine_committee",
    "register_refined",
    "train_refined",
]

Log = Callable[[str], None]


class RefineSettings(BaseModel):
    """How a refine round selects, splits and fine-tunes.

    Attributes
    ----------
    n_select
        Most flagged configurations to label.
    min_distance_fraction
        A flagged frame closer to a selected one than this fraction of the median fingerprint distance between
        flagged frames is a duplicate (docs/committees.md recommends 0.1–0.2; 0 keeps every distinct frame).
    test_fraction
        Fraction of the newly labelled configurations held out as the *newly flagged* test set (at least one when
        two or more were labelled).
    epochs
        Fine-tuning epochs (None: the parent's ``max_num_epochs``).
    lr
        Fine-tuning learning rate (None: the parent's).
    seed
        Seed of the added/test split.
    device
        Where the members are evaluated (calibration, before/after errors).
    """

    n_select: int = Field(16, ge=1)
    min_distance_fraction: float = Field(0.15, ge=0)
    test_fraction: float = Field(0.25, gt=0, lt=1)
    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    seed: int = 0
    device: str = "cpu"


class LabelledFlagged(BaseModel):
    """The selected configurations the teacher labelled, what it skipped, and who the teacher was."""

    teacher: dict[str, Any] = Field(default_factory=dict)
    labelled_zb64: str = Field(repr=False)
    n_labelled: int
    skipped: list[dict[str, Any]] = Field(default_factory=list, description="{trajectory_id, frame, reason}")
    selection: dict[str, Any] = Field(default_factory=dict)

    def configurations(self) -> list[Atoms]:
        return decode_extxyz(self.labelled_zb64)


def label_flagged(
    selection: FlaggedSelection, calculator: Any, teacher: dict[str, Any] | None = None
) -> LabelledFlagged:
    """Label the selected configurations with ``calculator``; one the teacher fails on is skipped with its reason.

    Raises
    ------
    RefineError
        The teacher failed on every configuration (its first reason quoted).
    """
    configurations = selection.configurations()
    try:
        labelled = label_configurations(configurations, calculator)
    except ValueError as exc:  # every configuration rejected
        raise RefineError(
            f"the teacher labelled none of the {len(configurations)} selected configurations: {exc}"
        ) from exc
    skipped = [
        {"trajectory_id": selection.frames[i].trajectory_id, "frame": selection.frames[i].frame, "reason": reason}
        for i, reason in labelled.skipped
    ]
    return LabelledFlagged(
        teacher=teacher or {"name": type(calculator).__name__},
        labelled_zb64=encode_extxyz(list(labelled)),
        n_labelled=len(labelled),
        skipped=skipped,
        selection=selection.summary(),
    )


def driver_errors(
    paths: Sequence[str | Path],
    model_ids: Sequence[str],
    driver: int | str,
    configurations: Sequence[Atoms],
    device: str,
) -> dict[str, Any] | None:
    """Held-out errors (:func:`~electrodb.flows.committee.prediction_errors`) of a committee's driver on labelled
    configurations; only the driver is evaluated unless it is the mean. None without configurations."""
    if not configurations:
        return None
    if driver != "mean":
        paths, model_ids, driver = [paths[int(driver)]], [model_ids[int(driver)]], 0
    energies, forces = evaluate_configurations(list(paths), configurations, device, expected_ids=list(model_ids))
    return prediction_errors(*driver_prediction(energies, forces, driver), configurations)


class RefinedTraining(BaseModel):
    """A fine-tuned child committee, calibrated and measured, ready to register (:func:`register_refined`)."""

    parent_id: str
    name: str
    training: CommitteeTraining
    calibrated: dict[str, Any]
    added_zb64: str = Field(repr=False)
    refine: dict[str, Any]
    member_files: list[dict[str, Any]] = Field(
        default_factory=list,
        repr=False,
        description="the members' bytes ({model_id, zb64}) for a register job on a worker without a database",
    )


def _child_settings(parent: CommitteeDocument, settings: RefineSettings) -> CommitteeSettings:
    """The parent's committee settings, with its seeds, the refine round's epochs and learning rate."""
    base = CommitteeSettings.model_validate(parent.training.get("settings") or {})
    training = base.training
    updates: dict[str, Any] = {}
    if settings.epochs is not None:
        start = training.start_swa
        updates["max_num_epochs"] = settings.epochs
        updates["start_swa"] = None if start is None else max(1, min(start, settings.epochs - 1))
    if settings.lr is not None:
        updates["lr"] = settings.lr
    seeds = parent.training.get("seeds") or base.member_seeds()
    return base.model_copy(
        update={"training": training.model_copy(update=updates), "seeds": list(seeds), "foundation": None}
    )


def train_refined(
    stores: ElectroDBStores,
    parent: CommitteeDocument,
    labelled: LabelledFlagged,
    settings: RefineSettings,
    workdir: str | Path,
    *,
    name: str | None = None,
    log: Log | None = None,
) -> RefinedTraining:
    """Split the new labels, fine-tune every member from the parent's, calibrate the child, measure before/after.

    Parameters
    ----------
    stores
        Holding the parent's members and training data.
    parent
        The committee to refine.
    labelled
        :func:`label_flagged`'s result.
    settings
        The round's settings.
    workdir
        Parent folder of the members' fine-tuning folders.
    name
        The child's name (default ``<lineage>-r<round>``).
    log
        Receives progress lines.

    Raises
    ------
    TrainingError
        A member's fine-tuning failed or diverged (nothing is registered).
    """
    started = time.perf_counter()
    new = labelled.configurations()
    order = np.random.default_rng(settings.seed).permutation(len(new)).tolist()
    n_test = 0 if len(new) < 2 else min(len(new) - 1, max(1, round(settings.test_fraction * len(new))))
    test, added = [new[i] for i in order[:n_test]], [new[i] for i in order[n_test:]]
    old = load_committee_data(stores, parent)
    old_cal = [int(i) for i in parent.training.get("splits", {}).get("calibration", [])]
    old_test = [old[i] for i in old_cal]
    configurations = [*old, *added, *test]
    calibration = [*old_cal, *range(len(old) + len(added), len(configurations))]
    parent_paths = [str(p) for p in materialize_committee(stores, parent)]
    child_settings = _child_settings(parent, settings)
    if log:
        log(
            f"fine-tuning {parent.k} members of {parent.name!r} on {len(old) - len(old_cal)} old + {len(added)} new "
            f"configurations; {len(old_test)} old and {len(test)} newly flagged held out"
        )
    training = train_committee(
        configurations,
        child_settings,
        workdir,
        foundation_paths=parent_paths,
        calibration=calibration,
        progress=log,
    )
    if log:
        log("calibrating the refined committee and measuring held-out errors before and after")
    calibrated = calibrate_committee(training, driver=parent.driver, device=settings.device)
    before = {
        "old_test": driver_errors(parent_paths, parent.member_ids, parent.driver, old_test, settings.device),
        "new_flagged": driver_errors(parent_paths, parent.member_ids, parent.driver, test, settings.device),
    }
    after = {
        "old_test": driver_errors(training.model_paths, training.model_ids, parent.driver, old_test, settings.device),
        "new_flagged": driver_errors(training.model_paths, training.model_ids, parent.driver, test, settings.device),
    }
    round_ = parent.refine_round + 1
    lineage = (parent.model_extra or {}).get("lineage", parent.name)
    refine = {
        "round": round_,
        "parent_id": parent.committee_id,
        "teacher": labelled.teacher,
        "selection": labelled.selection,
        "skipped": labelled.skipped,
        "n_labelled": labelled.n_labelled,
        "n_added": len(added),
        "n_new_test": len(test),
        "n_old_test": len(old_test),
        "before": before,
        "after": after,
        "settings": settings.model_dump(mode="json"),
        "wall_time_s": time.perf_counter() - started,
    }
    return RefinedTraining(
        parent_id=parent.committee_id,
        name=name or f"{lineage}-r{round_}",
        training=training,
        calibrated=calibrated,
        added_zb64=encode_extxyz(added),
        refine=refine,
    )


def register_refined(stores: ElectroDBStores, refined: RefinedTraining) -> CommitteeDocument:
    """Register the child committee (:func:`~electrodb.flows.committee.register_committee` with its parent).

    Raises
    ------
    RefineError
        The parent was superseded meanwhile by another round (register from the current committee instead).
    """
    parent = resolve_committee(stores, refined.parent_id)
    if parent.superseded_by is not None:
        raise RefineError(
            f"committee {parent.name!r} was refined meanwhile into {parent.superseded_by[:22]}...; refine the "
            f"current committee of the lineage instead (electrodb model refine --committee {parent.name})"
        )
    return register_committee(
        stores,
        refined.training,
        refined.name,
        refined.calibrated,
        driver=parent.driver,
        parent=parent,
        added=decode_extxyz(refined.added_zb64),
        refine=refined.refine,
    )


def refine_committee(
    stores: ElectroDBStores,
    committee: str,
    calculator: Any,
    settings: RefineSettings | None = None,
    workdir: str | Path = "committee_refine",
    *,
    teacher: dict[str, Any] | None = None,
    name: str | None = None,
    log: Log | None = None,
) -> CommitteeDocument:
    """One refine round in this process (``electrodb model refine``): select, label, fine-tune, register.

    Parameters
    ----------
    stores
        The database.
    committee
        Committee name or id (the current committee of a name's lineage).
    calculator
        The teacher: an ASE calculator giving reference energies (eV) and forces (eV/Å).
    settings
        :class:`RefineSettings`.
    workdir
        Parent folder of the fine-tuning folders.
    teacher
        What the teacher is, for the record (e.g. the labeller's model identity).
    name
        The child's name (default ``<lineage>-r<round>``).
    log
        Receives progress lines.

    Raises
    ------
    ModelError
        Unknown committee, or its members cannot be loaded.
    RefineError
        No audits, nothing flagged (:class:`NothingFlaggedError`), a teacher failing on every configuration.
    TrainingError
        A member's fine-tuning failed or diverged.
    """
    settings = settings or RefineSettings()
    parent = resolve_committee(stores, committee)
    selection = select_flagged(stores, parent, settings.n_select, min_distance_fraction=settings.min_distance_fraction)
    if log:
        log(
            f"selected {selection.n_selected} of {selection.n_flagged} flagged frames ({selection.n_audited_frames} "
            f"audited in {selection.n_audits} trajector{'y' if selection.n_audits == 1 else 'ies'})"
        )
    labelled = label_flagged(selection, calculator, teacher)
    if log:
        log(f"labelled {labelled.n_labelled} configurations ({len(labelled.skipped)} skipped by the teacher)")
    refined = train_refined(stores, parent, labelled, settings, Path(workdir), name=name, log=log)
    return register_refined(stores, refined)
