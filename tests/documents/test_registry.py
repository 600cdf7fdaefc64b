"""The property and collection registry: its paths point into the schemas, and everything that lists properties
or collections (summary builder, API, export, client, explorer, indexes) follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from electrodb.builders.reference import experimental_values
from electrodb.documents.properties import ElectrolyteSummary
from electrodb.documents.registry import (
    COLLECTIONS,
    PROPERTIES,
    PROPERTY_COLLECTIONS,
    SUMMARY_PROPERTIES,
    PropertyEntry,
    job_collections,
    property_table,
)
from electrodb.documents.trajectory import TrajectoryDocument
from electrodb.io.export import export_columns, property_column
from electrodb.store.query import EQ_FIELDS, RANGE_FIELDS, SPECS
from electrodb.store.stores import COLLECTIONS as STORE_KEYS
from electrodb.store.stores import JOB_COLLECTIONS, mongo_indexed_fields
from tests.api.sample_database import build_database


@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property_paths_start_at_a_field_of_their_source_schema(name: str) -> None:
    entry = PROPERTIES[name]
    schema = TrajectoryDocument if entry.source == "trajectory" else COLLECTIONS[entry.source].document
    assert schema is not None
    for path in (entry.value, entry.error):
        if path is not None:
            assert path[0] in schema.model_fields, f"{name}: {path} does not start at a field of {schema.__name__}"
    if entry.source != "trajectory":
        assert entry.verdict[0] in schema.model_fields


def test_a_property_with_an_unknown_source_or_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown source 'viscosity'"):
        PropertyEntry("x", "", "x", "viscosity", ("a",), None, ("a",))
    with pytest.raises(ValueError, match="unknown experiment kind 'crc'"):
        PropertyEntry("x", "", "x", "transport", ("a",), None, ("a",), experiment=("crc", "salt"))


def test_every_property_reaches_the_api_the_export_and_the_indexes() -> None:
    assert SUMMARY_PROPERTIES == {p.name: (p.unit, p.description) for p in PROPERTIES.values()}
    columns = {name for name, _ in export_columns()}
    summary = SPECS["electrolytes"]
    indexed = set(mongo_indexed_fields("electrolytes"))
    for name in PROPERTIES:
        assert {f"{name}_min", f"{name}_max", f"{name}_status"} <= set(summary.filters)
        assert RANGE_FIELDS[name] == name and EQ_FIELDS[f"{name}_status"] == f"{name}_status"
        kinds = ("value", "err", "status", "reason", "n_eff", "t_equil", "exp", "exp_source")
        assert {property_column(name, kind) for kind in kinds} <= columns
        assert {f"{name}_n_eff", f"{name}_t_equil_ps", f"{name}_n_runs"} <= summary.fields
        assert {name, f"{name}_status"} <= indexed


def test_collections_drive_the_stores_and_the_query_layer() -> None:
    assert STORE_KEYS == {name: entry.key for name, entry in COLLECTIONS.items()}
    assert (
        JOB_COLLECTIONS
        == job_collections()
        == (
            "systems",
            "models",
            "committees",
            "trajectories",
            "audits",
            "solvation",
        )
    )
    for name in (*PROPERTY_COLLECTIONS, "electrolytes", "trajectories"):
        assert SPECS[name].key == COLLECTIONS[name].key
    assert COLLECTIONS["electrolytes"].document is ElectrolyteSummary


def test_experimental_references_follow_the_registry() -> None:
    found = experimental_values("NaCl", "Na+", "Cl-", 1.0, 298.15)
    with_reference = {name for name, p in PROPERTIES.items() if p.experiment is not None}
    assert {k.removeprefix("exp_") for k in found if not k.endswith(("_err", "_source"))} <= with_reference
    assert found["exp_D_cation"] == pytest.approx(1.334, abs=0.01)  # Na+ at infinite dilution, 25 °C
    assert experimental_values("NaCl", "Na+", "Cl-", 1.0, 320.0) == {}


def test_properties_route_serves_the_registry(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    db = build_database(tmp_path)
    with TestClient(create_app(db["settings"])) as client:
        body = client.get("/properties").json()
    assert body["data"] == property_table()
    labelled = [name for name, p in body["data"].items() if p["label"]]
    assert labelled[:3] == ["D_cation", "D_anion", "D_water"] and "cn_cation_O" in labelled
    assert body["data"]["D_cation"]["plot"] == "msd" and body["data"]["cn_cation_O"]["plot"] == "rdf"
