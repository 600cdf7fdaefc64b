"""Readable model names (issue 22, row 12): a summary, ``/facets`` and ``/electrolytes`` name the model as ``/models``
does ("demo-mace"), not by the file the run loaded (``<sha256[:16]>.model``); provenance keeps the hash."""

from __future__ import annotations

from fastapi.testclient import TestClient

from electrodb.api.app import create_app
from electrodb.builders import run_builders
from tests.synthetic import write_brownian_trajectory

DIGEST = "1ef00de9ceefd10a" + "5" * 48
MODEL_ID = f"sha256:{DIGEST}"
FILE_NAME = f"{DIGEST[:16]}.model"  # what materialize_model writes, so what the run's model identity names


def _run_with_model(stores, seed: int, model_id: str = MODEL_ID, name: str = FILE_NAME):
    doc = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=seed, model_id=model_id)
    stored = stores.trajectories.query_one({"trajectory_id": doc.trajectory_id})
    stored.pop("_id", None)
    stored["model"] = {"model_id": model_id, "kind": "mace_file", "name": name, "path": f"/srv/models/{name}"}
    stores.trajectories.update([stored], key="trajectory_id")
    return doc


def _register(stores, name: str, model_id: str = MODEL_ID) -> None:
    stores.models.update([{"model_id": model_id, "kind": "mace_file", "name": name}], key="model_id")


def test_summary_facets_and_api_name_the_registered_model(stores, settings):
    _run_with_model(stores, seed=41)
    _register(stores, "demo-mace")
    run_builders(stores)
    summary = stores.electrolytes.query_one({})
    assert summary["model_name"] == "demo-mace" and summary["model_id"] == MODEL_ID
    assert summary["provenance"]["model_id"] == MODEL_ID  # provenance keeps the hash and what was loaded
    assert summary["provenance"]["model"]["name"] == FILE_NAME
    with TestClient(create_app(settings)) as client:
        facets = client.get("/facets").json()["data"]
        assert facets["model_id"] == [MODEL_ID] and facets["model_name"] == {MODEL_ID: "demo-mace"}
        row = client.get("/electrolytes", params={"_fields": "model_id,model_name"}).json()["data"][0]
        assert row == {**row, "model_id": MODEL_ID, "model_name": "demo-mace"}
        assert client.get("/models").json()["data"][0]["name"] == "demo-mace"


def test_a_model_registered_or_renamed_after_the_build_is_named_at_the_next_build(stores):
    _run_with_model(stores, seed=42)
    run_builders(stores)
    assert stores.electrolytes.query_one({})["model_name"] is None  # only the hash: no name, not the file name
    _register(stores, "demo-mace")
    run_builders(stores)
    assert stores.electrolytes.query_one({})["model_name"] == "demo-mace"
    _register(stores, "demo-mace v2")
    run_builders(stores)
    assert stores.electrolytes.query_one({})["model_name"] == "demo-mace v2"


def test_an_unregistered_file_keeps_its_readable_file_name(stores):
    _run_with_model(stores, seed=43, name="nacl-finetune.model")
    run_builders(stores)
    assert stores.electrolytes.query_one({})["model_name"] == "nacl-finetune.model"
