"""The shipped demo committee: the demo model drives, every member is the file its card names, and the demo
registers it once in an empty database (the demo model keeps its name), with a usable calibrated threshold."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from electrodb.cli.demo_committee import COMMITTEE_CARD, DEMO_COMMITTEE_NAME, ensure_demo_committee
from electrodb.cli.demo_model import DEMO_MODEL_NAME, ensure_demo_model
from electrodb.flows.committee import load_committee_data, materialize_committee, resolve_committee
from electrodb.models.files import file_sha256


def _card() -> dict:
    return json.loads(resources.files("electrodb.data").joinpath(COMMITTEE_CARD).read_text(encoding="utf-8"))


def test_the_shipped_committee_is_driven_by_the_demo_model_and_calibrated() -> None:
    card = _card()
    demo = json.loads(resources.files("electrodb.data").joinpath("demo-mace.json").read_text(encoding="utf-8"))
    assert card["member_ids"][0] == demo["model_id"] and len(set(card["member_ids"])) == len(card["member_ids"]) >= 2
    cal = card["calibrated"]["calibration"]
    assert 0 < cal["error_threshold_eV_per_A"] <= cal["threshold_eV_per_A"] < 5 and cal["n_configurations"] >= 20
    assert cal["spearman_atom"] > 0.3 and cal["spearman_frame"] > 0.5
    for name, model_id in zip(card["member_files"], card["member_ids"], strict=True):
        assert file_sha256(str(resources.files("electrodb.data").joinpath(name))) == model_id


def test_the_demo_registers_the_committee_once_and_the_demo_model_keeps_its_name(stores) -> None:
    lines: list[str] = []
    ensure_demo_model(stores, lines.append)
    doc = ensure_demo_committee(stores, lines.append)
    again = ensure_demo_committee(stores, lines.append)
    assert doc.committee_id == again.committee_id == _card()["committee_id"] and doc.name == DEMO_COMMITTEE_NAME
    assert resolve_committee(stores, DEMO_COMMITTEE_NAME).committee_id == doc.committee_id
    assert stores.committees.count({}) == 1 and stores.models.count({"name": DEMO_MODEL_NAME}) == 1
    assert [file_sha256(p) for p in materialize_committee(stores, doc)] == doc.member_ids
    data = load_committee_data(stores, doc)
    assert len(data) == _card()["training"]["n_configurations"]
    assert "σ_F threshold" in lines[-1] and len(lines) == 2  # the second call registers nothing


def test_a_tampered_member_is_refused(stores, tmp_path, monkeypatch) -> None:
    import shutil

    import electrodb.cli.demo_committee as module

    folder = tmp_path / "package-data"
    shutil.copytree(Path(module.__file__).resolve().parents[1] / "data", folder)
    (folder / "demo-mace-m1.model").write_bytes(b"not the member")
    monkeypatch.setattr(module.resources, "files", lambda package: folder)
    with pytest.raises(RuntimeError, match="does not match its card"):
        ensure_demo_committee(stores, print)
    assert stores.committees.count({}) == 0
