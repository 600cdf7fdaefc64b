"""The shipped demo model is the file its card names, loads, and registers itself in an empty database once."""

from __future__ import annotations

from electrodb.cli.demo_model import DEMO_MODEL_NAME, _packaged, ensure_demo_model
from electrodb.models.files import file_sha256
from electrodb.models.loader import load_model


def test_shipped_demo_model_matches_its_card_and_loads():
    shipped = _packaged()
    assert shipped is not None, "electrodb/data/demo-mace.model and demo-mace.json must ship with the package"
    path, card = shipped
    assert file_sha256(path) == card["model_id"]
    identity = load_model(str(path)).identity
    assert set(identity.elements) >= {"H", "O", "Na", "Li", "Cl"} and identity.r_max == card["training"]["r_max"]
    assert card["training"]["rmse_forces_eV_per_A"] < 0.3 and card["made_by"].startswith("electrodb model train-demo")


def test_demo_uses_the_shipped_model_without_training(stores):
    lines: list[str] = []
    path, doc = ensure_demo_model(stores, lines.append)
    again_path, again = ensure_demo_model(stores, lines.append)
    assert doc["name"] == DEMO_MODEL_NAME and again["model_id"] == doc["model_id"] == _packaged()[1]["model_id"]
    assert file_sha256(path) == doc["model_id"] and again_path == path
    assert stores.models.count({"name": DEMO_MODEL_NAME}) == 1
    assert all("training" not in line for line in lines) and "shipped" in lines[0]
