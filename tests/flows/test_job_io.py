"""Jobs touch only the JobStore their manager hands them (engine-native job I/O, issue 12 item 1)."""

from __future__ import annotations

import pytest
from jobflow import JobStore, run_locally
from maggma.stores import MemoryStore

from electrodb.flows.job_io import NoJobStoreError, job_stores
from electrodb.flows.system import ElectrolyteFlowMaker
from electrodb.store.frames import load_trajectory
from electrodb.store.stores import COLLECTIONS, JOB_COLLECTIONS, ElectroDBStores
from tests.campaigns import small_campaign


def _memory_job_store() -> JobStore:
    extra = {name: MemoryStore(f"t-{name}", key=COLLECTIONS.get(name, "blob_uuid")) for name in JOB_COLLECTIONS}
    return JobStore(MemoryStore("t-jobs"), additional_stores={"data": MemoryStore("t-data", key="blob_uuid"), **extra})


def test_system_flow_writes_only_into_the_job_store_it_is_given(random_mace, stores):
    """A whole system flow (box, equilibration, production) run on a fresh in-memory JobStore leaves the
    process-settings database (the ``stores`` fixture) empty and puts the trajectory, its frames, the box and
    the model's record in the JobStore's additional stores."""
    campaign = small_campaign(random_mace, production_ps=0.05, sample_every_steps=10)
    (spec,) = campaign.systems()
    js = _memory_job_store()
    run_locally(ElectrolyteFlowMaker().make(spec), store=js, create_folders=False, log=False, ensure_success=True)

    own = ElectroDBStores.from_job_store(js)
    own.connect()
    doc = own.trajectories.query_one({"trajectory_id": spec.system_id})
    assert doc is not None and doc["status"] == "completed"
    traj = load_trajectory(doc, own.trajectories, own.data)
    assert traj.positions.shape[0] == doc["n_frames"] == 11  # 50 fs / (10 steps × 0.5 fs) + the first frame
    assert own.systems.query_one({"system_id": spec.system_id})["stage"] == "equilibrated"
    assert js.docs_store.count() == 3  # the three job outputs, nothing else in the docs store

    settings_db = {name: stores[name].count() for name in ("trajectories", "systems", "data", "jobs")}
    assert settings_db == {"trajectories": 0, "systems": 0, "data": 0, "jobs": 0}


def test_jobs_refuse_a_job_store_without_electrodb_collections(random_mace):
    from jobflow import CURRENT_JOB

    from electrodb.flows.md import BoxMaker

    (spec,) = small_campaign(random_mace).systems()
    bare = JobStore(MemoryStore())
    bare.connect()
    with pytest.raises(NoJobStoreError, match=r"lacks the additional store\(s\) \['trajectories', 'data'"):
        BoxMaker().make(spec).run(bare)
    CURRENT_JOB.reset()
    with pytest.raises(NoJobStoreError, match="no JobStore is exposed"):
        job_stores("data")


def test_stores_from_a_job_store_derive_missing_collections_beside_the_docs_store(stores):
    """``from_job_store`` (also used for jobflow's own JOB_STORE configuration) takes named additional stores
    and derives the builders' collections beside the docs store."""
    view = ElectroDBStores.from_job_store(stores.job_store())
    assert view["trajectories"] is stores["trajectories"]
    assert view["structure"].database_path == stores["structure"].database_path
    assert set(view.names) == {*COLLECTIONS, "data"}


def test_use_jobflow_store_takes_the_database_from_jobflows_job_store(monkeypatch, tmp_path):
    """With ``use_jobflow_store`` ElectroDB's stores are jobflow's configured JOB_STORE (one database for all)."""
    from jobflow import SETTINGS

    from electrodb.settings import ElectroDBSettings
    from electrodb.store.stores import get_stores

    js = _memory_job_store()
    monkeypatch.setattr(SETTINGS, "JOB_STORE", js)
    settings = ElectroDBSettings(data_dir=tmp_path, use_jobflow_store=True)
    assert not settings.embedded
    with get_stores(settings) as stores:
        assert stores.trajectories is js.additional_stores["trajectories"]
        assert stores.jobs is js.docs_store
        stores.structure.update([{"trajectory_id": "x"}], key="trajectory_id")  # derived beside the docs store
        assert stores.structure.count() == 1
    assert not (tmp_path / "db").exists()  # nothing embedded was created
