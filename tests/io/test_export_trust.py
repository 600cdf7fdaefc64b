"""The export's model-trust columns (issue 23): the verdict beside the statuses, superseded results left out
unless asked for, and each column described in the Parquet schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from electrodb.documents.committee import TRUST_STATUSES
from electrodb.io.export import export_columns, export_table
from electrodb.store.query import QueryError
from electrodb.store.stores import get_stores
from tests.api.sample_database import SYSTEMS, build_database
from tests.api.trust_data import NACL_05, NACL_1, REFINED, SUPERSEDED, add_trust

TRUST_COLUMNS = [
    "model_trust",
    "model_trust_reason",
    "frac_flagged",
    "sigma_F_max_p95_eV_per_A",
    "n_frames_audited",
    "committee_id",
    "refine_round",
    "superseded_by",
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Any:
    db = build_database(tmp_path_factory.mktemp("electrodb-export-trust"))
    add_trust(db["settings"], db["summaries"])
    with get_stores(db["settings"], read_only=True) as s:
        yield s


def _read(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "csv":
        return pd.read_csv(path)
    return pd.read_json(path, lines=True, precise_float=True)


def test_trust_columns_follow_the_unit_convention_and_sit_in_the_table() -> None:
    names = [name for name, _ in export_columns()]
    assert TRUST_COLUMNS == [n for n in names if n in TRUST_COLUMNS]  # in this order
    assert "sigma_F_max_p95" not in names  # the unit is in the name, as for every other quantity
    assert names.index("model_trust") < names.index("model_id")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_writes_the_verdict_and_leaves_superseded_results_out(stores: Any, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"table.{fmt}"
    n = export_table(stores, fmt, out)
    df = _read(out, fmt).set_index("electrolyte_id")
    assert n == len(df) == len(SYSTEMS) and SUPERSEDED not in df.index
    assert set(TRUST_COLUMNS) <= set(df.columns)
    row = df.loc[NACL_1]
    assert row["model_trust"] == "extrapolating" and "12.5 %" in row["model_trust_reason"]
    assert row["frac_flagged"] == 0.125 and row["sigma_F_max_p95_eV_per_A"] == 0.41
    assert row["n_frames_audited"] == 400 and row["committee_id"] == REFINED and row["refine_round"] == 1
    assert df.loc[NACL_05, "model_trust"] == "trusted"
    assert (
        set(df["model_trust"]) <= set(TRUST_STATUSES) and (df["model_trust"] == "unaudited").sum() == len(SYSTEMS) - 3
    )
    assert df["superseded_by"].isna().all()
    only = tmp_path / f"extrapolating.{fmt}"
    assert export_table(stores, fmt, only, {"model_trust": "extrapolating"}) == 1


@pytest.mark.parametrize("how", ["keyword", "filter"])
def test_superseded_results_are_exported_when_asked_for(stores: Any, tmp_path: Path, how: str) -> None:
    out = tmp_path / "all.csv"
    kwargs = {"include_superseded": True} if how == "keyword" else {"filters": {"include_superseded": True}}
    n = export_table(stores, "csv", out, **kwargs)
    df = pd.read_csv(out).set_index("electrolyte_id")
    assert n == len(SYSTEMS) + 1
    assert df.loc[SUPERSEDED, "superseded_by"] == NACL_1 and df.loc[SUPERSEDED, "refine_round"] == 0
    assert df.loc[SUPERSEDED, "frac_flagged"] == 0.31


def test_parquet_schema_describes_the_trust_columns(stores: Any, tmp_path: Path) -> None:
    out = tmp_path / "described.parquet"
    export_table(stores, "parquet", out)
    schema = pq.read_schema(out)
    for name in TRUST_COLUMNS:
        description = (schema.field(name).metadata or {}).get(b"description", b"").decode()
        assert len(description) > 20, name
    assert "trusted, extrapolating" in schema.field("model_trust").metadata[b"description"].decode()
    assert "eV/Å" in schema.field("sigma_F_max_p95_eV_per_A").metadata[b"description"].decode()


def test_a_bad_verdict_filter_names_the_close_match(stores: Any, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="did you mean 'extrapolating'"):
        export_table(stores, "csv", tmp_path / "x.csv", {"model_trust": "extrapolate"})
    assert not (tmp_path / "x.csv").exists()
