"""Submitting a refine round of a committee to FireWorks or jobflow-remote, as ``campaign submit`` submits systems.

:func:`submit_refine` builds the round's :class:`~electrodb.flows.refine_flow.RefineMaker` flow (select, label and
register on the CPU worker; train on the GPU worker: :func:`~electrodb.managers.stages.stage_kind` routes by job
name) and hands it to the same backends as a campaign, keyed by a :class:`~electrodb.managers.stages.FlowKey`:

* the key, ``refine:<committee id>:<digest>``, is written into ``metadata['electrodb_system_id']`` of the flow and
  its jobs; the digest covers the committee's audits (which frames, how many flagged), the teacher, the settings and
  the child's name. The same round is therefore never queued twice: one queued, running or done is skipped (the
  engine's state is reported), a failed one is rerun by the engine's own rule (FireWorks reruns the fizzled
  Fireworks in place; jobflow-remote submits it again); a new audit, another teacher or other settings make a new
  round.
* the committee is pinned by its id at submission: a round refines that committee, and its register job refuses it
  when another round superseded it meanwhile.
* engines whose workers reach no database (jobflow-remote) get the round's inputs published into the JobStore
  first (:mod:`electrodb.flows.refine_inputs`: the committee, its training data and member files, and the flagged
  frames, never whole trajectories).

Nothing is submitted when the committee has no audits or nothing is flagged (the errors of
:func:`~electrodb.flows.refine_select.flagged_audits`), or when the teacher reference cannot be parsed.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from jobflow import Maker

from electrodb.flows.committee import resolve_committee
from electrodb.flows.refine import RefineError, RefineSettings
from electrodb.flows.refine_flow import TEACHER_PREFIX, RefineMaker
from electrodb.flows.refine_inputs import collect_refine_inputs, publish_refine_inputs
from electrodb.flows.refine_select import flagged_audits
from electrodb.managers.stages import (
    ACTIVE_PHASES,
    SYSTEM_KEY,
    EngineBackend,
    FlowKey,
    SubmitOptions,
    engine_phase,
)
from electrodb.managers.submit import check_store_for_engine
from electrodb.models.reference import ModelRef
from electrodb.store.stores import ElectroDBStores
from electrodb.utils.provenance import stable_hash

__all__ = ["REFINE_COMMITTEE_KEY", "REFINE_KEY_PREFIX", "RefineSubmission", "refine_key", "submit_refine"]

REFINE_KEY_PREFIX = "refine:"
REFINE_COMMITTEE_KEY = "electrodb_refine_committee"  # job metadata: the committee a round refines


@dataclass
class RefineSubmission:
    """What one :func:`submit_refine` did.

    Attributes
    ----------
    committee_id, committee_name
        The committee the round refines (the current one of the name given, at submission).
    key
        The round's key (``metadata['electrodb_system_id']`` of its jobs in the engine).
    submitted
        Whether the round was handed to the engine now (False: it is queued, running or done there already).
    engine_state
        The engine's own state of the round before this call (None: never submitted).
    inputs_published
        Whether the round's inputs were published for workers without a database.
    """

    committee_id: str
    committee_name: str
    key: str
    submitted: bool = False
    engine_state: str | None = None
    inputs_published: bool = False


def _check_teacher(teacher: str) -> None:
    """Parse the teacher reference here, so a typo fails now and not on a worker (RefineError / ModelError)."""
    if teacher.startswith(TEACHER_PREFIX):
        module, _, function = teacher[len(TEACHER_PREFIX) :].partition(":")
        if not module or not function:
            raise RefineError(
                f"teacher {teacher!r}: expected python:package.module:function (a function returning an ASE "
                "calculator, importable on the CPU workers)"
            )
    else:
        ModelRef.parse(teacher)


def refine_key(
    stores: ElectroDBStores,
    committee_id: str,
    teacher: Any,
    settings: RefineSettings,
    child_name: str | None = None,
) -> str:
    """``refine:<committee id>:<digest>`` of a round: the committee, its audits, the teacher, settings and name."""
    audits = sorted(
        (
            str(a["audit_id"]),
            len(a.get("frames") or []),
            int(a.get("n_flagged") or 0),
            float(a.get("threshold_eV_per_A") or 0.0),
        )
        for a in stores.audits.query(
            {"committee_id": committee_id}, properties=["audit_id", "frames", "n_flagged", "threshold_eV_per_A"]
        )
    )
    digest = stable_hash(
        {
            "audits": audits,
            "teacher": teacher,
            "settings": settings.model_dump(mode="json"),
            "name": child_name,
        },
        length=12,
    )
    return f"{REFINE_KEY_PREFIX}{committee_id}:{digest}"


def submit_refine(
    stores: ElectroDBStores,
    committee: str,
    backend: EngineBackend,
    options: SubmitOptions | None = None,
    settings: RefineSettings | None = None,
    *,
    teacher: str = "chgnet:r2scan",
    teacher_maker: Maker | None = None,
    child_name: str | None = None,
    workdir: str | None = None,
    multi_node: bool = True,
) -> RefineSubmission:
    """Submit one refine round of ``committee`` to ``backend`` (idempotent: see the module docstring).

    Parameters
    ----------
    stores
        The database (its :meth:`~electrodb.store.stores.ElectroDBStores.job_store` is serialised into the jobs).
    committee
        Committee name or id (the current committee of a name's lineage).
    backend
        The engine (:func:`electrodb.managers.submit.get_backend`).
    options
        Worker names and engine extras (``chunk_size`` does not apply: a round is one flow).
    settings
        The round's :class:`~electrodb.flows.refine.RefineSettings`.
    teacher
        Model reference of the labeller, or ``python:package.module:function`` returning an ASE calculator; it runs
        on the CPU worker, which must have it (a packaged model such as ``chgnet:r2scan``, a file there, a module).
    teacher_maker
        A labelling Maker (atomate2 static makers) instead of ``teacher``.
    child_name
        Name of the new committee (default ``<lineage>-r<round>``).
    workdir
        Fine-tuning folder on the GPU worker (default: the worker's ``<work_dir>/refine-<name>``).
    multi_node
        Whether workers may run on other nodes (:func:`~electrodb.managers.submit.check_store_for_engine`).

    Raises
    ------
    EngineConfigError
        The engine cannot share the database.
    ModelError
        Unknown committee, a member or its training data missing, an unknown teacher model.
    RefineError
        No audits, nothing flagged (:class:`~electrodb.flows.refine.NothingFlaggedError`), a malformed teacher.
    """
    options = options or SubmitOptions()
    settings = settings or RefineSettings()
    job_store = stores.job_store()
    check_store_for_engine(job_store, backend.name, multi_node)
    parent = resolve_committee(stores, committee)
    flagged_audits(stores, parent)  # no audits, nothing flagged: one line now, nothing queued
    if teacher_maker is None:
        _check_teacher(teacher)
        described: Any = teacher
    else:
        described = {"maker": type(teacher_maker).__name__, **teacher_maker.as_dict()}
    key = refine_key(stores, parent.committee_id, described, settings, child_name)
    report = RefineSubmission(committee_id=parent.committee_id, committee_name=parent.name, key=key)
    report.engine_state = backend.states([key]).get(key)
    if engine_phase(report.engine_state) in ACTIVE_PHASES:
        return report
    inputs = None
    if not getattr(backend, "workers_reach_database", True):
        inputs = publish_refine_inputs(job_store, collect_refine_inputs(stores, parent, settings.n_select), key)
        report.inputs_published = True
    maker = RefineMaker(
        settings=settings, teacher=teacher, teacher_maker=teacher_maker, workdir=workdir, child_name=child_name
    )
    flow = maker.make(parent.committee_id, inputs)
    flow.update_metadata({SYSTEM_KEY: key, REFINE_COMMITTEE_KEY: parent.committee_id})
    extra = {**options.extra, "submission_id": options.extra.get("submission_id") or uuid.uuid4().hex[:12]}
    opts = dataclasses.replace(options, chunk_size=1, extra=extra)
    submitted = backend.submit([(FlowKey(system_id=key, campaign=f"refine {parent.name}"), flow)], job_store, opts)
    report.submitted = key in submitted
    return report
