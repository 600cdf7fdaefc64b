"""What a refine round reads from the database, carried as job inputs to workers that reach no database.

On FireWorks (and under ``run_locally``) every job of a refine round (:class:`~electrodb.flows.refine_flow.RefineMaker`)
reads the committee, its audits, the flagged frames, the training data and the member files from the JobStore its
manager hands it. A jobflow-remote worker gets only empty file stores, which the runner copies into the real stores
when the job completes, and the job's inputs, which the runner resolves from the real JobStore with their blobs. So
for such engines the submitting machine reads what the round needs (:func:`collect_refine_inputs`) and publishes it
as a jobflow output (:func:`publish_refine_inputs`, as :func:`~electrodb.models.staging.publish_model_output` does
for the campaign's model); the jobs receive it as an input:

* ``select`` chooses from the published flagged frames (:class:`~electrodb.flows.refine_select.FlaggedCandidates`:
  at most ``max_candidates`` configurations, never whole trajectories);
* ``train`` finds the parent committee, its training data and its member files in its stores (:func:`seeded`), and
  returns the fine-tuned members' bytes in its output (``RefinedTraining.member_files``, a ``data`` blob);
* ``register`` finds the parent committee and those member files in its stores, and writes the child and the
  parent's ``superseded_by`` there, which the runner copies into the database.

Documents are *seeded* only where a store lacks them: on a worker that reaches the database nothing is written.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from jobflow import OutputReference
from pydantic import BaseModel, Field

from electrodb.documents.committee import CommitteeDocument
from electrodb.documents.registry import BLOB_KEY
from electrodb.flows.committee import committee_data_uuid
from electrodb.flows.job_io import output_document
from electrodb.flows.refine_select import FlaggedCandidates, flagged_candidates
from electrodb.models.files import ModelError
from electrodb.models.staging import model_blob_uuid
from electrodb.store.stores import COLLECTIONS, ElectroDBStores
from electrodb.utils.provenance import utcnow

__all__ = [
    "INPUT_BLOB_KEYS",
    "RefineInputs",
    "collect_refine_inputs",
    "member_blobs",
    "publish_refine_inputs",
    "seeded",
]

#: Fields of the published inputs (and of the train job's output) that go to the JobStore's ``data`` store as blobs.
INPUT_BLOB_KEYS = ("zb64", "training_data_zb64", "configurations_zb64")
#: Namespace of the deterministic job uuids under which a round's inputs are published.
_INPUTS_NAMESPACE = "0b9a6f64-3c57-4d7e-8f61-2e5d7c9a1f30"


class RefineInputs(BaseModel):
    """Everything a refine round reads from the database, for workers that reach none.

    Attributes
    ----------
    committee
        The parent committee's document (as stored).
    training_data_zb64, n_configurations
        Its training data (the ``committee-data`` blob).
    member_files
        Its members' file bytes: ``{"model_id", "zb64"}`` each, as stored in the data store.
    candidates
        The flagged frames the selection chooses from.
    """

    committee: dict[str, Any]
    training_data_zb64: str = Field(repr=False)
    n_configurations: int
    member_files: list[dict[str, Any]] = Field(repr=False)
    candidates: FlaggedCandidates

    @property
    def committee_id(self) -> str:
        return str(self.committee["committee_id"])

    def documents(self) -> dict[str, list[dict[str, Any]]]:
        """The parent's documents as the train job reads them: the committee, its training data, its members."""
        cid = self.committee_id
        training = {
            "blob_uuid": committee_data_uuid(cid),
            "kind": "committee_data",
            "committee_id": cid,
            "n_configurations": self.n_configurations,
            "zb64": self.training_data_zb64,
            "last_updated": utcnow(),
        }
        return {"committees": [dict(self.committee)], "data": [training, *member_blobs(self.member_files)]}


def member_blobs(member_files: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Data-store documents of model files given as ``{"model_id", "zb64"}`` (what ``materialize_model`` reads)."""
    return [
        {
            "blob_uuid": model_blob_uuid(m["model_id"]),
            "kind": "model_file",
            "model_id": m["model_id"],
            "zb64": m["zb64"],
            "last_updated": utcnow(),
        }
        for m in member_files
    ]


def collect_refine_inputs(
    stores: ElectroDBStores, parent: CommitteeDocument, n_select: int, *, max_candidates: int = 2000
) -> RefineInputs:
    """Read what a refine round of ``parent`` needs: its document, training data, member files, flagged frames.

    Raises
    ------
    ModelError
        The parent's training data or a member file is not in the data store.
    RefineError, NothingFlaggedError
        From :func:`~electrodb.flows.refine_select.flagged_candidates`.
    """
    candidates = flagged_candidates(stores, parent, n_select, max_candidates=max_candidates)
    stored = stores.committees.query_one({"committee_id": parent.committee_id})
    if stored is None:
        raise ModelError(f"committee {parent.name!r} ({parent.committee_id}) is not stored; register it first")
    data = stores.data.query_one({"blob_uuid": committee_data_uuid(parent.committee_id)})
    if data is None:
        raise ModelError(
            f"committee {parent.name!r} has no stored training data ({committee_data_uuid(parent.committee_id)}); "
            "train it again with electrodb model committee"
        )
    members = []
    for model_id in parent.member_ids:
        blob = stores.data.query_one({"blob_uuid": model_blob_uuid(model_id)}, properties=["zb64"])
        if blob is None or not blob.get("zb64"):
            raise ModelError(
                f"committee {parent.name!r}: member {model_id} is not in the data store; register the committee "
                "again from its member files"
            )
        members.append({"model_id": model_id, "zb64": blob["zb64"]})
    return RefineInputs(
        committee=output_document(stored),
        training_data_zb64=data["zb64"],
        n_configurations=int(data.get("n_configurations") or 0),
        member_files=members,
        candidates=candidates,
    )


def publish_refine_inputs(job_store: Any, inputs: RefineInputs, key: str) -> OutputReference:
    """Publish ``inputs`` as a jobflow output in ``job_store`` (its large fields as ``data`` blobs) under a job uuid
    derived from ``key`` (publishing the same round again writes nothing); return the reference the jobs take."""
    job_uuid = str(uuidlib.uuid5(uuidlib.UUID(_INPUTS_NAMESPACE), key))
    job_store.connect()
    if job_store.docs_store.query_one({"uuid": job_uuid}, properties=["uuid"]) is None:
        job_store.update(
            {
                "uuid": job_uuid,
                "index": 1,
                "output": inputs.model_dump(mode="json"),
                "name": f"electrodb refine inputs {key}",
                "metadata": {"electrodb_refine_inputs": key},
                "hosts": [],
                "completed_at": utcnow().isoformat(),
            },
            save={"data": list(INPUT_BLOB_KEYS)},
        )
    return OutputReference(job_uuid)


@contextmanager
def seeded(
    stores: ElectroDBStores, documents: dict[str, list[dict[str, Any]]], *, remove: bool = True
) -> Iterator[None]:
    """Write each document its store lacks (by the store's key) for the duration of a job.

    With ``remove`` the documents written here are deleted again at the end, so that a jobflow-remote runner does not
    copy stale snapshots back into the database; without it they stay (the register job updates the parent's).
    Nothing is written where the stores already hold the documents (a worker that reaches the database).
    """
    keys = {**COLLECTIONS, "data": BLOB_KEY}
    added: list[tuple[str, str, Any]] = []
    for name, docs in documents.items():
        key = keys[name]
        for doc in docs:
            if stores[name].query_one({key: doc[key]}, properties=[key]) is None:
                stores[name].update([dict(doc)], key=key)
                added.append((name, key, doc[key]))
    try:
        yield
    finally:
        if remove:
            for name, key, value in added:
                stores[name].remove_docs({key: value})
