"""Streaming exports: an ML-ready flat table of the electrolyte summaries, and trajectories as extxyz.

The table has one row per ``electrolytes`` document and fixed columns (so Parquet batches share one schema):

* composition: ``electrolyte_id, salt, cation, anion, cation_charge, anion_charge, nu_cation, nu_anion, nu``
  (ν = ν₊ + ν₋), ``cation_radius_A, anion_radius_A`` (Shannon, Å), ``molality_mol_kg, temperature_K, n_atoms``;
* every headline property ``P`` of :data:`SUMMARY_PROPERTIES` with its unit in the name: ``P_<unit>``,
  ``P_err_<unit>``, its convergence ``P_status`` (``converged``, ``unconverged``, ``insufficient``, ``input``;
  empty for documents built before statuses existed) and ``P_reason`` (empty when converged; where the value
  came from when ``input``), the effective number of independent samples behind the error ``P_n_eff`` and the
  largest equilibration cut ``P_t_equil_ps`` (empty when the runs did not record them), experiment
  ``exp_P_<unit>`` and ``exp_P_source`` (``D_cation_1e-9m2_s``, ``r_cation_O_A``, dimensionless properties
  have no suffix: ``cn_cation_O``). An ``unconverged`` value is written (for inspection) but its status says so;
  an ``input`` value (η from a correlation) is written and its status says it was not computed; an
  ``insufficient`` one is never written: ``P``, ``P_err``, ``P_n_eff`` and ``P_t_equil_ps`` are empty, also
  for a summary stored before that contract;
* ``density_source`` (``npt`` or ``input``), ``density_input_kg_m3`` (the fixed density of NVT runs, when
  ``input``; ``density_kg_m3`` is then empty and ``density_status`` is ``input``), ``eta_source`` (viscosity
  used for the Yeh–Hummer correction);
* the model-trust verdict of committee audits (:mod:`electrodb.io.export_trust`): ``model_trust``,
  ``model_trust_reason``, ``frac_flagged``, ``sigma_F_max_p95_eV_per_A``, ``n_frames_audited``, ``committee_id``,
  ``refine_round``, ``superseded_by`` (Parquet keeps each one's description in its field metadata); superseded
  summaries are left out unless ``include_superseded``;
* provenance: ``model_id, model_name, code_version, builder, campaign_ids, trajectory_ids`` (``;``-joined), ``n_runs``,
  ``total_ps``, ``last_updated`` (ISO 8601);
* with ``with_arrays``: g(r) per pair (``rdf_<pair>_r_A``, ``rdf_<pair>_g``, ``rdf_<pair>_n``) and MSD per species
  (``msd_<species>_t_ps``, ``msd_<species>_A2``), averaged over the summary's trajectories when they share a
  grid (else the first trajectory's), as Parquet list columns, JSON arrays in JSON lines and JSON-encoded
  strings in CSV.

The store cursor is iterated once, in batches; nothing holds the whole collection.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from electrodb.documents.properties import withhold_insufficient
from electrodb.documents.registry import SUMMARY_PROPERTIES
from electrodb.io.export_thermo import (
    SOLVATION_COLUMNS,
    THERMO_COLUMNS,
    THERMO_STATUS_COLUMNS,
    as_float,
    as_str,
    solvation_columns,
    thermo_columns,
)
from electrodb.io.export_trust import TRUST_COLUMNS, trust_columns, trust_fields, whole_number
from electrodb.io.trajectory_files import (
    TRAJECTORY_FORMATS,
    arrays_universe,
    ase_frames,
    export_trajectories,
    load_frames,
    topology_names,
    trajectory_universe,
    write_h5md,
)
from electrodb.store.query import SPECS, build_criteria
from electrodb.utils.safe_files import atomic_output, check_output_path

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_STORES",
    "MSD_SPECIES",
    "RDF_PAIRS",
    "TRAJECTORY_FORMATS",
    "arrays_universe",
    "ase_frames",
    "export_columns",
    "export_schema",
    "export_table",
    "export_trajectories",
    "iter_csv",
    "iter_jsonl",
    "iter_rows",
    "load_frames",
    "property_column",
    "solvation_columns",
    "summary_row",
    "thermo_columns",
    "topology_names",
    "trajectory_universe",
    "write_h5md",
]

EXPORT_FORMATS = ("parquet", "csv", "jsonl")
#: Collections :func:`iter_rows` reads (connect them all before iterating).
EXPORT_STORES = ("electrolytes", "structure", "transport", "thermo", "solvation")
RDF_PAIRS = (
    "cation-O_w",
    "cation-H_w",
    "anion-O_w",
    "anion-H_w",
    "cation-anion",
    "cation-cation",
    "anion-anion",
    "O_w-O_w",
)
MSD_SPECIES = ("cation", "anion", "water")
_UNIT_SLUGS = {
    "1e-9 m^2/s": "1e-9m2_s",
    "Å": "A",
    "ps": "ps",
    "kg/m^3": "kg_m3",
    "mPa·s": "mPa_s",
    "mPa s": "mPa_s",
    "": "",
}


def _unit_slug(unit: str) -> str:
    if unit in _UNIT_SLUGS:
        return _UNIT_SLUGS[unit]
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", unit.replace("^", "")).strip("_")


def property_column(prop: str, kind: str = "value") -> str:
    """Column name of a summary property: ``kind`` is ``value``, ``err``, ``status``, ``reason``, ``n_eff``,
    ``t_equil``, ``needs`` (more production it needs, ps), ``exp`` or ``exp_source``."""
    slug = _unit_slug(SUMMARY_PROPERTIES[prop][0])
    sfx = f"_{slug}" if slug else ""
    return {
        "value": f"{prop}{sfx}",
        "err": f"{prop}_err{sfx}",
        "status": f"{prop}_status",
        "reason": f"{prop}_reason",
        "n_eff": f"{prop}_n_eff",
        "t_equil": f"{prop}_t_equil_ps",
        "needs": f"{prop}_needs_ps",
        "exp": f"exp_{prop}{sfx}",
        "exp_source": f"exp_{prop}_source",
    }[kind]


def _pair_slug(pair: str) -> str:
    return pair.replace("-", "_")


def export_columns(with_arrays: bool = False) -> list[tuple[str, pa.DataType]]:
    """(name, Arrow type) of every export column, in order."""
    s, f, i = pa.string(), pa.float64(), pa.int64()
    cols: list[tuple[str, pa.DataType]] = [
        ("electrolyte_id", s),
        ("salt", s),
        ("cation", s),
        ("anion", s),
        ("cation_charge", i),
        ("anion_charge", i),
        ("nu_cation", i),
        ("nu_anion", i),
        ("nu", i),
        ("cation_radius_A", f),
        ("anion_radius_A", f),
        ("molality_mol_kg", f),
        ("temperature_K", f),
        ("n_atoms", i),
    ]
    for prop in SUMMARY_PROPERTIES:
        cols += [
            (property_column(prop), f),
            (property_column(prop, "err"), f),
            (property_column(prop, "status"), s),
            (property_column(prop, "reason"), s),
            (property_column(prop, "n_eff"), f),
            (property_column(prop, "t_equil"), f),
            (property_column(prop, "needs"), f),
            (property_column(prop, "exp"), f),
            (property_column(prop, "exp_source"), s),
        ]
    cols += [("density_source", s), ("density_input_kg_m3", f), ("eta_source", s)]
    cols += [(name, f) for name in THERMO_COLUMNS] + [(name, s) for name in THERMO_STATUS_COLUMNS]
    cols += [(name, f) for name in SOLVATION_COLUMNS.values()] + [("solvation_status", s)]
    cols += [(name, kind) for name, kind, _, _ in TRUST_COLUMNS]
    cols += [
        ("model_id", s),
        ("model_name", s),
        ("code_version", s),
        ("builder", s),
        ("campaign_ids", s),
        ("trajectory_ids", s),
        ("n_runs", i),
        ("total_ps", f),
        ("last_updated", s),
    ]
    if with_arrays:
        lf = pa.list_(pa.float64())
        for pair in RDF_PAIRS:
            p = _pair_slug(pair)
            cols += [(f"rdf_{p}_r_A", lf), (f"rdf_{p}_g", lf), (f"rdf_{p}_n", lf)]
        for sp in MSD_SPECIES:
            cols += [(f"msd_{sp}_t_ps", lf), (f"msd_{sp}_A2", lf)]
    return cols


def export_schema(with_arrays: bool = False) -> pa.Schema:
    """Arrow schema of the export table (the model-trust columns carry their descriptions as field metadata)."""
    described = {field.name: field for field in trust_fields()}
    return pa.schema([described.get(name) or pa.field(name, kind) for name, kind in export_columns(with_arrays)])


# ------------------------------------------------------------------------------------------ rows


def _mean_curves(curves: list[dict[str, Any]], xkey: str, ykeys: tuple[str, ...]) -> dict[str, list[float] | None]:
    """Mean of curves that share the first curve's x grid (others are left out)."""
    curves = [c for c in curves if isinstance(c, dict) and c.get(xkey)]
    if not curves:
        return {}
    x0 = np.asarray(curves[0][xkey], dtype=float)
    same = [c for c in curves if len(c[xkey]) == len(x0) and np.allclose(np.asarray(c[xkey], float), x0)]
    out: dict[str, list[float] | None] = {xkey: x0.tolist()}
    for key in ykeys:
        ys = [np.asarray(c[key], dtype=float) for c in same if c.get(key) is not None and len(c[key]) == len(x0)]
        out[key] = np.mean(ys, axis=0).tolist() if ys else None
    return out


def _array_columns(tids: list[str], rdfs: dict[str, dict], msds: dict[str, dict]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for pair in RDF_PAIRS:
        mean = _mean_curves([rdfs[t].get(pair) for t in tids if t in rdfs and rdfs[t].get(pair)], "r", ("g", "n"))
        p = _pair_slug(pair)
        row[f"rdf_{p}_r_A"], row[f"rdf_{p}_g"], row[f"rdf_{p}_n"] = mean.get("r"), mean.get("g"), mean.get("n")
    for sp in MSD_SPECIES:
        mean = _mean_curves([msds[t].get(sp) for t in tids if t in msds and msds[t].get(sp)], "t_ps", ("msd_A2",))
        row[f"msd_{sp}_t_ps"], row[f"msd_{sp}_A2"] = mean.get("t_ps"), mean.get("msd_A2")
    return row


def summary_row(
    doc: dict[str, Any],
    arrays: dict[str, Any] | None = None,
    thermo: dict[str, Any] | None = None,
    solvation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One flat export row from an ``electrolytes`` document (``arrays``: from the structure/transport docs).

    A property whose status is ``insufficient`` is written without value, error, n_eff and t_equil
    (:func:`~electrodb.documents.properties.withhold_insufficient`), whatever the stored document holds.
    """
    doc = withhold_insufficient(dict(doc))
    nu_c, nu_a = whole_number(doc.get("nu_cation")), whole_number(doc.get("nu_anion"))
    prov = doc.get("provenance") or {}
    row: dict[str, Any] = {
        "electrolyte_id": as_str(doc.get("electrolyte_id")),
        "salt": as_str(doc.get("salt")),
        "cation": as_str(doc.get("cation")),
        "anion": as_str(doc.get("anion")),
        "cation_charge": whole_number(doc.get("cation_charge")),
        "anion_charge": whole_number(doc.get("anion_charge")),
        "nu_cation": nu_c,
        "nu_anion": nu_a,
        "nu": nu_c + nu_a if nu_c is not None and nu_a is not None else None,
        "cation_radius_A": as_float(doc.get("cation_radius_A")),
        "anion_radius_A": as_float(doc.get("anion_radius_A")),
        "molality_mol_kg": as_float(doc.get("molality")),
        "temperature_K": as_float(doc.get("temperature")),
        "n_atoms": whole_number(doc.get("n_atoms")),
    }
    for prop in SUMMARY_PROPERTIES:
        row[property_column(prop)] = as_float(doc.get(prop))
        row[property_column(prop, "err")] = as_float(doc.get(f"{prop}_err"))
        row[property_column(prop, "status")] = as_str(doc.get(f"{prop}_status"))
        row[property_column(prop, "reason")] = as_str(doc.get(f"{prop}_reason"))
        row[property_column(prop, "n_eff")] = as_float(doc.get(f"{prop}_n_eff"))
        row[property_column(prop, "t_equil")] = as_float(doc.get(f"{prop}_t_equil_ps"))
        row[property_column(prop, "needs")] = as_float(doc.get(f"{prop}_needs_ps"))
        row[property_column(prop, "exp")] = as_float(doc.get(f"exp_{prop}"))
        row[property_column(prop, "exp_source")] = as_str(doc.get(f"exp_{prop}_source"))
    row["density_source"] = as_str(doc.get("density_source"))
    row["density_input_kg_m3"] = as_float(doc.get("density_input"))
    row["eta_source"] = as_str(doc.get("eta_source"))
    row.update(thermo_columns(doc, thermo))
    row.update(solvation_columns(solvation))
    row.update(trust_columns(doc))
    row.update(
        {
            "model_id": as_str(doc.get("model_id")),
            "model_name": as_str(doc.get("model_name")),
            "code_version": as_str(prov.get("code_version")),
            "builder": as_str(prov.get("builder")),
            "campaign_ids": ";".join(map(str, doc.get("campaign_ids") or [])),
            "trajectory_ids": ";".join(map(str, doc.get("trajectory_ids") or [])),
            "n_runs": whole_number(doc.get("n_runs")),
            "total_ps": as_float(doc.get("total_ps")),
            "last_updated": as_str(doc.get("last_updated")),
        }
    )
    if arrays is not None:
        row.update(arrays)
    return row


def _locked_iter(
    iterator: Iterator[dict[str, Any]], lock: contextlib.AbstractContextManager[Any]
) -> Iterator[dict[str, Any]]:
    """Advance ``iterator`` only while holding ``lock`` (the embedded database is not thread-safe)."""
    while True:
        with lock:
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_rows(
    stores: Any,
    criteria: dict[str, Any],
    with_arrays: bool = False,
    batch_size: int = 500,
    lock: contextlib.AbstractContextManager[Any] | None = None,
    limit: int = 0,
) -> Iterator[dict[str, Any]]:
    """Export rows for the summaries matching ``criteria``, sorted by ``electrolyte_id``, batch by batch.

    ``stores`` is anything indexable by collection name (``ElectroDBStores``); the stores of
    :data:`EXPORT_STORES` must be connected.
    With ``with_arrays`` the structure and transport documents of each batch are fetched with one ``$in``
    query per collection and batch.
    """
    lock = lock if lock is not None else contextlib.nullcontext()
    skip_fields = {"_id"}
    cursor = stores["electrolytes"].query(criteria, sort={"electrolyte_id": 1}, limit=limit)
    thermo_docs: dict[tuple[Any, Any, Any], dict[str, Any] | None] = {}
    solvation_docs: dict[tuple[Any, Any, Any], dict[str, Any] | None] = {}
    for batch in _batched(_locked_iter(iter(cursor), lock), batch_size):
        rdfs: dict[str, dict] = {}
        msds: dict[str, dict] = {}
        if with_arrays:
            tids = sorted({t for d in batch for t in d.get("trajectory_ids") or []})
            with lock:
                for d in stores["structure"].query(
                    {"trajectory_id": {"$in": tids}}, properties={"trajectory_id": 1, "rdf": 1}
                ):
                    rdfs[d["trajectory_id"]] = d.get("rdf") or {}
                for d in stores["transport"].query(
                    {"trajectory_id": {"$in": tids}}, properties={"trajectory_id": 1, "msd": 1}
                ):
                    msds[d["trajectory_id"]] = d.get("msd") or {}
        for doc in batch:
            doc = {k: v for k, v in doc.items() if k not in skip_fields}
            arrays = _array_columns(list(doc.get("trajectory_ids") or []), rdfs, msds) if with_arrays else None
            group = (doc.get("salt"), doc.get("temperature"), doc.get("model_id"))
            if group not in thermo_docs:
                criteria = {"salt": group[0], "temperature": group[1], "model_id": group[2]}
                with lock:
                    thermo_docs[group] = stores["thermo"].query_one(criteria)
                    solvation_docs[group] = stores["solvation"].query_one(
                        {**criteria, "status": "completed"}, sort={"last_updated": -1}
                    )
            yield summary_row(doc, arrays, thermo_docs[group], solvation_docs[group])


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def iter_csv(rows: Iterable[dict[str, Any]], with_arrays: bool = False) -> Iterator[str]:
    """CSV text, header first, one line per row (lists as JSON strings, ``None`` as empty)."""
    names = [n for n, _ in export_columns(with_arrays)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")

    def line(values: list[Any]) -> str:
        buf.seek(0)
        buf.truncate()
        writer.writerow(values)
        return buf.getvalue()

    yield line(names)
    for row in rows:
        yield line(
            [
                "" if (v := row.get(n)) is None else json.dumps(_json_safe(v)) if isinstance(v, list) else v
                for n in names
            ]
        )


def iter_jsonl(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """JSON lines, one object per row (NaN/inf written as ``null``)."""
    for row in rows:
        yield json.dumps({k: _json_safe(v) for k, v in row.items()}, allow_nan=False) + "\n"


def export_table(
    stores: Any,
    fmt: str,
    out_path: str | Path,
    filters: dict[str, Any] | None = None,
    with_arrays: bool = False,
    batch_size: int = 500,
    include_superseded: bool = False,
) -> int:
    """Write the flat summary table to ``out_path``; return the number of rows written.

    Parameters
    ----------
    stores
        ``ElectroDBStores`` (read-only is enough).
    fmt
        ``"parquet"`` (row groups of ``batch_size`` rows, arrays as list columns), ``"csv"`` or ``"jsonl"``.
    filters
        Same names as the API's ``GET /electrolytes`` filters (``salt``, ``molality_min``, ``D_cation_max``, …);
        unknown names or operator-like values raise :class:`~electrodb.store.query.QueryError` (a ValueError).
    with_arrays
        Add g(r)/n(r) and MSD array columns.
    include_superseded
        Also write summaries a refined committee's model superseded (``superseded_by`` set); left out by
        default, as ``GET /electrolytes`` does (also ``filters["include_superseded"]``).
    """
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    filters = {**(filters or {}), **({"include_superseded": True} if include_superseded else {})}
    criteria = build_criteria(SPECS["electrolytes"], filters)
    for name in EXPORT_STORES:
        stores[name].connect()
    out_path = Path(out_path)
    check_output_path(out_path)  # refuse symlinks, devices, directories and missing folders before querying
    rows = iter_rows(stores, criteria, with_arrays=with_arrays, batch_size=batch_size)
    n = 0
    with atomic_output(out_path) as part:  # written beside the target, renamed over it only when complete
        n = _write_rows(rows, fmt, part, with_arrays, batch_size)
    return n


def _write_rows(rows: Iterable[dict[str, Any]], fmt: str, part: Path, with_arrays: bool, batch_size: int) -> int:
    n = 0
    if fmt == "parquet":
        schema = export_schema(with_arrays)
        with pq.ParquetWriter(part, schema) as writer:
            for batch in _batched(rows, batch_size):
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n += len(batch)
            if n == 0:
                writer.write_table(schema.empty_table())
    else:
        with part.open("w", newline="", encoding="utf-8") as fh:
            lines = iter_csv(rows, with_arrays) if fmt == "csv" else iter_jsonl(rows)
            for text in lines:
                fh.write(text)
                n += 1
        n -= 1 if fmt == "csv" else 0  # header line
    return n
