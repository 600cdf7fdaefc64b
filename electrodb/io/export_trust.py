"""Export columns of a summary's model-trust verdict: whether the model stayed where it was trained on these runs.

A committee of MACE models audits the stored trajectories (:mod:`electrodb.builders.trust`); the summary carries
the verdict beside its convergence statuses, and the export writes it in these columns (unit suffix as in the rest
of the table: ``sigma_F_max_p95_eV_per_A``). Superseded summaries (a refined committee's model ran the same
electrolyte) are left out of the export unless asked for (``include_superseded``); their ``superseded_by`` column
then names the summary that replaced them (empty in every row of a default export).

:mod:`electrodb.io.export` puts these columns into every row (see its docstring for the whole table).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from electrodb.documents.committee import TRUST_STATUSES
from electrodb.io.export_thermo import as_float, as_str

__all__ = ["TRUST_COLUMNS", "trust_columns", "trust_fields", "whole_number"]

#: ``(column, Arrow type, summary field, description)`` of the model-trust columns, in table order.
TRUST_COLUMNS: tuple[tuple[str, pa.DataType, str, str], ...] = (
    (
        "model_trust",
        pa.string(),
        "model_trust",
        "model-trust verdict of the committee audits of the merged runs, the worst over them: "
        + ", ".join(TRUST_STATUSES)
        + " (empty: a summary built before committees existed)",
    ),
    ("model_trust_reason", pa.string(), "model_trust_reason", "why the model is not trusted here (empty when trusted)"),
    (
        "frac_flagged",
        pa.float64(),
        "frac_flagged",
        "fraction of audited frames whose max committee force disagreement σ_F is above the committee's threshold",
    ),
    (
        "sigma_F_max_p95_eV_per_A",
        pa.float64(),
        "sigma_F_max_p95",
        "95th percentile over audited frames of the per-frame max σ_F (eV/Å), largest over the runs",
    ),
    ("n_frames_audited", pa.int64(), "n_frames_audited", "frames the committee evaluated, over the merged runs"),
    ("committee_id", pa.string(), "committee_id", "committee whose audits gave model_trust (GET /committees)"),
    ("refine_round", pa.int64(), "refine_round", "refine round of that committee (0: the first committee)"),
    (
        "superseded_by",
        pa.string(),
        "superseded_by",
        "electrolyte_id of the result of a refined committee's model that replaces this one (such rows are only "
        "exported with include_superseded)",
    ),
)


def whole_number(value: Any) -> int | None:
    """``value`` as an int for an integer column (None for a missing, boolean or unreadable value)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def trust_columns(doc: dict[str, Any]) -> dict[str, Any]:
    """The model-trust cells of one ``electrolytes`` document (empty for a summary stored without them)."""
    out: dict[str, Any] = {}
    for column, kind, field, _ in TRUST_COLUMNS:
        value = doc.get(field)
        if pa.types.is_string(kind):
            out[column] = as_str(value)
        elif pa.types.is_integer(kind):
            out[column] = whole_number(value)
        else:
            out[column] = as_float(value)
    return out


def trust_fields() -> list[pa.Field]:
    """The model-trust columns as Arrow fields, each with its ``description`` in the field metadata (Parquet keeps
    it: ``pyarrow.parquet.read_schema(path).field("model_trust").metadata``)."""
    return [pa.field(column, kind, metadata={"description": text}) for column, kind, _, text in TRUST_COLUMNS]
