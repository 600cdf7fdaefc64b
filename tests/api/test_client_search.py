"""The Python client's ``all_fields`` and its DataFrames, which keep their columns when nothing matched.

Issue 22, row 17: ``search(all_fields=True)`` raised TypeError, and an empty result as a DataFrame had no columns.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd
import pytest

from electrodb.api.client import ElectroDBClient, ElectroDBWarning
from electrodb.api.client_query import frame_columns
from electrodb.documents.properties import ElectrolyteSummary
from tests.api.sample_database import SYSTEMS


@pytest.fixture(scope="module")
def api(http: Any) -> ElectroDBClient:
    return ElectroDBClient(client=http)


def test_search_all_fields(api: ElectroDBClient, http: Any) -> None:
    docs = api.search(salt="LiCl", all_fields=True)
    assert len(docs) == 3 and all(isinstance(d, ElectrolyteSummary) for d in docs)
    every = http.get("/electrolytes", params={"salt": "LiCl", "_all_fields": "true"}).json()["data"]
    rows = api.search(salt="LiCl", all_fields=True, as_dict=True)
    assert [set(r) for r in rows] == [set(d) for d in every]
    assert len(api.search(all_fields=True, limit=2)) == 2


def test_all_fields_overrides_fields_with_the_servers_warning(api: ElectroDBClient) -> None:
    with pytest.warns(ElectroDBWarning, match="_fields ignored"):
        rows = api.search(salt="LiCl", fields=["salt"], all_fields=True, as_dict=True)
    assert len(rows) == 3 and {"molality", "D_cation", "provenance"} <= set(rows[0])


def test_get_and_query_all_fields(api: ElectroDBClient) -> None:
    eid = api.search(salt="NaCl", fields=["salt"], limit=1, as_dict=True)[0]["electrolyte_id"]
    full = api.get(eid, all_fields=True)
    assert isinstance(full, ElectrolyteSummary) and full.electrolyte_id == eid
    structure = api.query("structure", all_fields=True, limit=1, as_dict=True)
    assert {"rdf", "shells", "trajectory_id"} <= set(structure[0])


def test_empty_search_frame_keeps_the_requested_columns(api: ElectroDBClient) -> None:
    df = api.search(salt="KCl", fields=["salt", "D_cation", "provenance.model_id"], as_dataframe=True)
    assert isinstance(df, pd.DataFrame) and len(df) == 0
    assert list(df.columns) == ["electrolyte_id", "salt", "D_cation", "provenance"]
    assert list(api.search(salt="KCl", fields="salt,molality", as_dataframe=True).columns) == [
        "electrolyte_id",
        "salt",
        "molality",
    ]


def test_frame_columns_do_not_depend_on_how_many_documents_matched(api: ElectroDBClient) -> None:
    fields = ["molality", "D_cation", "D_cation_status"]
    some = api.search(salt="LiCl", fields=fields, as_dataframe=True)
    none = api.search(salt="KCl", fields=fields, as_dataframe=True)
    assert len(some) == 3 and list(some.columns) == list(none.columns) == ["electrolyte_id", *fields]


def test_requested_column_absent_from_every_document_is_still_a_column(api: ElectroDBClient) -> None:
    # the sample summaries carry no D_cation_n_runs (a field the schema knows)
    df = api.search(salt="LiCl", fields=["salt", "D_cation_n_runs"], as_dataframe=True)
    assert list(df.columns) == ["electrolyte_id", "salt", "D_cation_n_runs"] and len(df) == 3
    assert df["D_cation_n_runs"].isna().all()


def test_empty_search_frame_without_fields_has_the_known_columns(api: ElectroDBClient) -> None:
    none = api.search(salt="KCl", as_dataframe=True)
    assert len(none) == 0 and list(none.columns) == frame_columns("electrolytes", None)
    assert list(none.columns[:3]) == ["electrolyte_id", "salt", "cation"]
    assert {"molality", "temperature", "D_cation", "D_cation_err", "D_cation_status", "model_id"} <= set(none.columns)
    every = api.search(as_dataframe=True)
    assert len(every) == len(SYSTEMS) and set(every.columns) <= set(none.columns)
    assert set(api.search(salt="KCl", all_fields=True, as_dataframe=True).columns) == set(none.columns)


def test_empty_query_frames_of_other_collections(api: ElectroDBClient) -> None:
    structure = api.query("structure", salt="KCl", as_dataframe=True)
    assert len(structure) == 0 and {"trajectory_id", "rdf", "shells", "molality"} <= set(structure.columns)
    trajectories = api.query("trajectories", salt="KCl", as_dataframe=True)
    assert "symbols" not in trajectories.columns and "n_atoms" in trajectories.columns
    assert "symbols" in api.query("trajectories", salt="KCl", all_fields=True, as_dataframe=True).columns
    models = api.query("models", kind="nothing", as_dataframe=True, fields=["kind"])
    assert list(models.columns) == ["model_id", "kind"]
    assert list(api.query("models", kind="nothing", as_dataframe=True).columns) == []


def test_unknown_keyword_is_still_a_type_error(api: ElectroDBClient) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="all_feilds"):
            api.search(all_feilds=True)
