"""Campaign specs, deterministic ids, settings and the embedded store."""

from __future__ import annotations

import pytest

from electrodb.settings import ElectroDBSettings
from electrodb.systems.campaign import Campaign

SPEC = """
name: screen-1
salts: [NaCl, MgCl2, LiTFSI]
concentrations: [0.5, 2.0]
temperatures: [298.15, 320]
size: {n_waters: 128}
model: /models/fine-tuned.model
md: {production_ps: 1.0}
"""


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


def test_campaign_expands_with_stable_distinct_ids(spec_file):
    a = Campaign.from_yaml(spec_file).systems()
    b = Campaign.from_yaml(spec_file).systems()
    assert len(a) == 3 * 2 * 2
    assert [s.system_id for s in a] == [s.system_id for s in b]
    assert len({s.system_id for s in a}) == len(a)


def test_ids_change_with_anything_that_changes_the_result(spec_file):
    base = Campaign.from_yaml(spec_file)
    ids = {s.system_id for s in base.systems()}
    variants = [
        base.model_copy(update={"md": base.md.model_copy(update={"timestep_fs": 1.0})}),
        base.model_copy(update={"model": "/models/other.model"}),
        base.model_copy(update={"packing": base.packing.model_copy(update={"seed": 2})}),
    ]
    for variant in variants:
        assert ids.isdisjoint({s.system_id for s in variant.systems()})
    # the campaign name does not change what is simulated, so ids are shared across campaigns
    renamed = base.model_copy(update={"name": "other"})
    assert ids == {s.system_id for s in renamed.systems()}


def test_model_identity_hashes_existing_files(tmp_path, spec_file):
    model = tmp_path / "m.model"
    model.write_bytes(b"abc")
    c = Campaign.from_yaml(spec_file).model_copy(update={"model": str(model)})
    assert c.model_identity().startswith("sha256:ba7816bf")


def test_campaign_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsalts: [XyCl]\nconcentrations: [1]\nmodel: m\n")
    with pytest.raises(ValueError, match="unknown ion|cannot parse"):
        Campaign.from_yaml(bad)
    bad.write_text("name: x\nsalts: [NaCl]\nconcentrations: [40]\nmodel: m\nallow_above_solubility: true\n")
    with pytest.raises(ValueError, match="packing limit"):
        Campaign.from_yaml(bad).systems()
    bad.write_text("name: x\nsalts: [NaCl]\nconcentrations: [1]\nmodel: m\nunknown_key: 1\n")
    with pytest.raises(ValueError, match="unknown_key"):
        Campaign.from_yaml(bad)
    bad.write_text("name: x\nsalts: [NaCl]\nconcentrations: [1, 2]\nmodel: m\nthermo: true\n")
    with pytest.raises(ValueError, match="at least 3 concentrations"):
        Campaign.from_yaml(bad)
    with pytest.raises(FileNotFoundError):
        Campaign.from_yaml(tmp_path / "missing.yaml")


def test_settings_from_env_and_yaml(tmp_path, monkeypatch):
    cfg = tmp_path / "electrodb.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'from-yaml'}\ndb_name: campaign_db\n")
    monkeypatch.setenv("ELECTRODB_CONFIG", str(cfg))
    monkeypatch.delenv("ELECTRODB_DATA_DIR", raising=False)
    s = ElectroDBSettings()
    assert s.data_dir == (tmp_path / "from-yaml").resolve() and s.db_name == "campaign_db" and s.embedded
    monkeypatch.setenv("ELECTRODB_DB_NAME", "env_wins")
    assert ElectroDBSettings().db_name == "env_wins"
    monkeypatch.setenv("ELECTRODB_DB_URI", "postgres://nope")
    with pytest.raises(ValueError, match="mongodb://"):
        ElectroDBSettings()


def test_embedded_store_round_trip(stores):
    doc = {"system_id": "abc", "salt": "NaCl", "molality": 1.0, "nested": {"x": [1, 2, 3]}}
    stores.systems.update([doc], key="system_id")
    back = stores.systems.query_one({"system_id": "abc"})
    assert {k: back[k] for k in doc} == doc
    assert stores.counts()["systems"] == 1
    stores.data.remove_docs({"trajectory_id": "never-written"})  # a collection never written to


def test_read_only_stores_refuse_writes(settings):
    from electrodb.store.stores import ReadOnlyStoreError, get_stores

    with get_stores(settings, read_only=True) as ro, pytest.raises(ReadOnlyStoreError):
        ro.systems.update([{"system_id": "x"}], key="system_id")


def test_mongodb_uri_selects_mongo_and_gridfs(tmp_path):
    from maggma.stores import GridFSStore, MongoStore

    from electrodb.store.stores import get_stores

    s = get_stores(ElectroDBSettings(data_dir=tmp_path, db_uri="mongodb://localhost:27017", db_name="t"))
    assert isinstance(s.systems, MongoStore) and isinstance(s.data, GridFSStore)
    assert "MongoDB localhost:27017" in s.settings.describe()
    assert set(s.job_store().additional_stores) == {
        "data",
        "trajectories",
        "systems",
        "models",
        "committees",
        "audits",
        "solvation",
    }


def test_embedded_store_never_reads_a_zero_byte_collection_as_empty(stores):
    """Collection files are created whole (tables written under a temporary name, then linked into place), so
    a process killed while creating one leaves no 0-byte file behind, and a 0-byte collection file is damage:
    an error naming it, not an empty collection (once read as one, a build deleted everything derived)."""
    import sqlite3

    from electrodb.store.errors import CollectionFileError

    stores.systems.update([{"system_id": "a"}], key="system_id")
    folder = stores.settings.database_path / stores.settings.db_name
    stores.data.close()
    (folder / "data.sqlite3").unlink(missing_ok=True)
    sqlite3.connect(folder / "data.sqlite3").close()  # 0 bytes, as truncation or an interrupted old writer leaves
    with pytest.raises(CollectionFileError, match="data.sqlite3 is empty"):
        stores.data.connect()
        stores.data.count()
    assert (folder / "data.sqlite3").stat().st_size == 0  # nothing written into it
    (folder / "data.sqlite3").unlink()
    stores.data.close()
    stores.data.connect()  # a missing file is created, whole
    assert stores.data.count() == 0 and (folder / "data.sqlite3").stat().st_size > 0
    assert not list(folder.glob(".*.new*"))
