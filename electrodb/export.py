"""Streaming exports: an ML-ready flat table of the electrolyte summaries, and trajectories as extxyz.

The table has one row per ``electrolytes`` document and fixed columns (so Parquet batches share one schema):

* composition: ``electrolyte_id, salt, cation, anion, cation_charge, anion_charge, nu_cation, nu_anion, nu``
  (ν = ν₊ + ν₋), ``cation_radius_A, anion_radius_A`` (Shannon, Å), ``molality_mol_kg, temperature_K, n_atoms``;
* every headline property ``P`` of :data:`SUMMARY_PROPERTIES` with its unit in the name: ``P_<unit>``,
  ``P_err_<unit>``, its convergence ``P_status`` (``converged``, ``unconverged``, ``insufficient``; empty
  for documents built before statuses existed) and ``P_reason`` (empty when converged), experiment
  ``exp_P_<unit>`` and ``exp_P_source`` (``D_cation_1e-9m2_s``, ``r_cation_O_A``, dimensionless properties
  have no suffix: ``cn_cation_O``); a non-converged value is written (for inspection) but its status says so;
* ``density_source`` (``npt`` or ``input``), ``density_input_kg_m3`` (the fixed density of NVT runs, when
  ``input``; ``density_kg_m3`` is then empty), ``eta_source`` (viscosity used for the Yeh–Hummer correction);
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
import warnings
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from electrodb.builders.documents import SUMMARY_PROPERTIES
from electrodb.query import SPECS, build_criteria
from electrodb.safe_files import atomic_output, check_output_path

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
    "summary_row",
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
    """Column name of a summary property: ``kind`` is ``value``, ``err``, ``status``, ``reason``, ``exp`` or
    ``exp_source``."""
    slug = _unit_slug(SUMMARY_PROPERTIES[prop][0])
    sfx = f"_{slug}" if slug else ""
    return {
        "value": f"{prop}{sfx}",
        "err": f"{prop}_err{sfx}",
        "status": f"{prop}_status",
        "reason": f"{prop}_reason",
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
            (property_column(prop, "exp"), f),
            (property_column(prop, "exp_source"), s),
        ]
    cols += [("density_source", s), ("density_input_kg_m3", f), ("eta_source", s)]
    cols += [(name, f) for name in THERMO_COLUMNS] + [(name, s) for name in THERMO_STATUS_COLUMNS]
    cols += [(name, f) for name in SOLVATION_COLUMNS.values()] + [("solvation_status", s)]
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
    """Arrow schema of the export table."""
    return pa.schema(export_columns(with_arrays))


# ------------------------------------------------------------------------------------------ rows


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, (str, bool)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


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


THERMO_COLUMNS = ("a_cc", "a_cc_err", "gamma_pm", "gamma_pm_err", "exp_gamma_pm", "phi", "phi_err", "exp_phi")
THERMO_STATUS_COLUMNS = ("a_cc_status", "a_cc_reason", "thermo_status", "thermo_reason")
_STATUS_RANK = {"converged": 0, "unconverged": 1, "insufficient": 2}


def thermo_columns(doc: dict[str, Any], thermo: dict[str, Any] | None) -> dict[str, Any]:
    """Kirkwood–Buff a_cc, γ± and φ (molal scale) of this electrolyte from its series' ``thermo`` document.

    Experimental γ± and φ are the Pitzer–Mayorga values at this molality (``experiment.pitzer_at_series``).
    ``thermo_status``/``thermo_reason`` are the document's verdict (``ok`` / ``derivative_only``: legacy
    documents built before convergence statuses); ``a_cc_status``/``a_cc_reason`` the least favourable verdict
    of this electrolyte's systems.
    """
    out: dict[str, Any] = dict.fromkeys(THERMO_COLUMNS + THERMO_STATUS_COLUMNS)
    if not thermo:
        return out
    out["thermo_status"] = _str(thermo.get("status"))
    out["thermo_reason"] = _str(thermo.get("reason"))
    eid = doc.get("electrolyte_id")
    systems = [s for s in thermo.get("systems") or [] if s.get("electrolyte_id") == eid and "a_cc" in s]
    statuses = [str(s["a_cc_status"]) for s in systems if s.get("a_cc_status")]
    if statuses:
        out["a_cc_status"] = max(statuses, key=lambda x: _STATUS_RANK.get(x, 3))
        reasons = [str(s["a_cc_reason"]) for s in systems if s.get("a_cc_reason")]
        out["a_cc_reason"] = "; ".join(dict.fromkeys(reasons))
    if systems:
        out["a_cc"] = _float(np.mean([s["a_cc"] for s in systems]))
        errs = [s.get("a_cc_err") for s in systems]
        out["a_cc_err"] = _float(np.sqrt(np.sum(np.square(errs))) / len(errs)) if None not in errs else None
    molality = _float(doc.get("molality"))
    series = thermo.get("series") or {}
    for m_list, key_map in (
        (
            series.get("molality"),
            {"gamma_pm": "gamma", "gamma_pm_err": "gamma_err", "phi": "phi", "phi_err": "phi_err"},
        ),
        (
            (thermo.get("experiment") or {}).get("pitzer_at_series", {}).get("molality"),
            {"exp_gamma_pm": "gamma", "exp_phi": "phi"},
        ),
    ):
        if not m_list or molality is None:
            continue
        k = int(np.argmin(np.abs(np.asarray(m_list) - molality)))
        if abs(m_list[k] - molality) > 1e-5:
            continue
        source = series if "gamma_pm" in key_map else thermo["experiment"]["pitzer_at_series"]
        for column, key in key_map.items():
            values = source.get(key)
            out[column] = _float(values[k]) if values else None
    return out


SOLVATION_COLUMNS = {  # solvation document field -> export column (kJ/mol per formula unit)
    "delta_g_solv_kJ_mol": "dG_solv_kJ_mol",
    "delta_g_solv_err_kJ_mol": "dG_solv_err_kJ_mol",
    "delta_g_solv_with_lr_kJ_mol": "dG_solv_with_lr_kJ_mol",
    "experimental_kJ_mol": "exp_dG_solv_kJ_mol",
}


def solvation_columns(solvation: dict[str, Any] | None) -> dict[str, Any]:
    """TI solvation free energy of the salt at this temperature and model (same for every molality)."""
    out: dict[str, Any] = {column: _float((solvation or {}).get(key)) for key, column in SOLVATION_COLUMNS.items()}
    out["solvation_status"] = _str((solvation or {}).get("status"))
    return out


def summary_row(
    doc: dict[str, Any],
    arrays: dict[str, Any] | None = None,
    thermo: dict[str, Any] | None = None,
    solvation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One flat export row from an ``electrolytes`` document (``arrays``: from the structure/transport docs)."""
    nu_c, nu_a = _int(doc.get("nu_cation")), _int(doc.get("nu_anion"))
    prov = doc.get("provenance") or {}
    row: dict[str, Any] = {
        "electrolyte_id": _str(doc.get("electrolyte_id")),
        "salt": _str(doc.get("salt")),
        "cation": _str(doc.get("cation")),
        "anion": _str(doc.get("anion")),
        "cation_charge": _int(doc.get("cation_charge")),
        "anion_charge": _int(doc.get("anion_charge")),
        "nu_cation": nu_c,
        "nu_anion": nu_a,
        "nu": nu_c + nu_a if nu_c is not None and nu_a is not None else None,
        "cation_radius_A": _float(doc.get("cation_radius_A")),
        "anion_radius_A": _float(doc.get("anion_radius_A")),
        "molality_mol_kg": _float(doc.get("molality")),
        "temperature_K": _float(doc.get("temperature")),
        "n_atoms": _int(doc.get("n_atoms")),
    }
    for prop in SUMMARY_PROPERTIES:
        row[property_column(prop)] = _float(doc.get(prop))
        row[property_column(prop, "err")] = _float(doc.get(f"{prop}_err"))
        row[property_column(prop, "status")] = _str(doc.get(f"{prop}_status"))
        row[property_column(prop, "reason")] = _str(doc.get(f"{prop}_reason"))
        row[property_column(prop, "exp")] = _float(doc.get(f"exp_{prop}"))
        row[property_column(prop, "exp_source")] = _str(doc.get(f"exp_{prop}_source"))
    row["density_source"] = _str(doc.get("density_source"))
    row["density_input_kg_m3"] = _float(doc.get("density_input"))
    row["eta_source"] = _str(doc.get("eta_source"))
    row.update(thermo_columns(doc, thermo))
    row.update(solvation_columns(solvation))
    row.update(
        {
            "model_id": _str(doc.get("model_id")),
            "model_name": _str(doc.get("model_name")),
            "code_version": _str(prov.get("code_version")),
            "builder": _str(prov.get("builder")),
            "campaign_ids": ";".join(map(str, doc.get("campaign_ids") or [])),
            "trajectory_ids": ";".join(map(str, doc.get("trajectory_ids") or [])),
            "n_runs": _int(doc.get("n_runs")),
            "total_ps": _float(doc.get("total_ps")),
            "last_updated": _str(doc.get("last_updated")),
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
        unknown names or operator-like values raise :class:`~electrodb.query.QueryError` (a ValueError).
    with_arrays
        Add g(r)/n(r) and MSD array columns.
    """
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    criteria = build_criteria(SPECS["electrolytes"], filters or {})
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
        import pyarrow.parquet as pq

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


# ------------------------------------------------------------------------------------------ trajectories


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", name).strip("._") or "trajectory"


def _frames(arrays: Any) -> Iterator[Any]:
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    meta = arrays.metadata
    info = {k: meta[k] for k in ("trajectory_id", "salt", "molality", "model_id") if meta.get(k) is not None}
    for i in range(arrays.n_frames):
        atoms = Atoms(arrays.symbols, positions=arrays.positions[i], cell=arrays.cells[i], pbc=True)
        atoms.set_masses(arrays.masses)
        atoms.new_array("role", arrays.role.astype(np.int64))
        atoms.new_array("mol_id", arrays.mol_id.astype(np.int64))
        atoms.info.update(info)
        atoms.info["time_ps"] = float(arrays.times_ps[i])
        temperature = float(arrays.temperature_K[i])
        if math.isfinite(temperature):
            atoms.info["temperature_K"] = temperature
        energy = float(arrays.potential_energy_eV[i])
        if math.isfinite(energy):
            atoms.calc = SinglePointCalculator(atoms, energy=energy)
        yield atoms


TRAJECTORY_FORMATS = ("extxyz", "h5md")
#: Particle group name of the H5MD files (the one MDAnalysis's ``H5MDWriter`` writes and its reader finds).
H5MD_GROUP = "trajectory"
_FRAME_KEYS = ("positions", "cells", "times_ps", "potential_energy_eV", "temperature_K")
_FRAME_KEY_DTYPES = {"positions": np.float32, "cells": np.float32}


def load_frames(
    meta: dict[str, Any], blobs: Any, start: int = 0, stop: int | None = None
) -> Any:  # -> TrajectoryArrays
    """Frames ``start``…``stop - 1`` of a stored trajectory as :class:`~electrodb.trajectory.TrajectoryArrays`.

    Only the chunks overlapping the window are fetched and decoded (``meta`` is the ``trajectories``
    document, with its per-atom lists). Stress is not loaded. Raises
    :class:`~electrodb.trajectory.TrajectoryError` when the stored chunks do not tile the window.
    """
    from electrodb.trajectory import TrajectoryArrays, TrajectoryError, decode_array

    tid, n_total, n_atoms = meta["trajectory_id"], int(meta.get("n_frames") or 0), int(meta["n_atoms"])
    stop = n_total if stop is None else min(int(stop), n_total)
    start = min(max(int(start), 0), stop)
    n = stop - start
    out = {
        k: np.full(
            (n, n_atoms, 3) if k == "positions" else (n, 3, 3) if k == "cells" else (n,),
            np.nan,
            dtype=_FRAME_KEY_DTYPES.get(k, np.float64),
        )
        for k in _FRAME_KEYS
    }
    filled = start
    if n:
        heads = blobs.query(
            {"trajectory_id": tid, "kind": "trajectory_chunk"},
            properties=["blob_uuid", "frame_start", "n_frames"],
            sort={"frame_start": 1},
        )
        for head in heads:
            c0, cn = int(head["frame_start"]), int(head["n_frames"])
            if c0 + cn <= start or c0 >= stop:
                continue
            if c0 > filled:
                break
            chunk = blobs.query_one({"blob_uuid": head["blob_uuid"]})
            if chunk is None:
                raise TrajectoryError(f"chunk {head['blob_uuid']} vanished while loading")
            lo, hi = max(start, c0), min(stop, c0 + cn)
            for key in _FRAME_KEYS:
                out[key][lo - start : hi - start] = decode_array(chunk[key])[lo - c0 : hi - c0]
            filled = max(filled, hi)
    if filled != stop:
        raise TrajectoryError(f"trajectory {tid}: frames {filled}-{stop - 1} are not stored")
    per_atom = ("symbols", "masses", "role", "mol_id", "ion_center")
    return TrajectoryArrays(
        trajectory_id=tid,
        positions=out["positions"],
        cells=out["cells"],
        times_ps=out["times_ps"],
        potential_energy_eV=out["potential_energy_eV"],
        temperature_K=out["temperature_K"],
        symbols=list(meta["symbols"]),
        masses=np.asarray(meta["masses"], dtype=np.float64),
        role=np.asarray(meta["role"], dtype=np.int8),
        mol_id=np.asarray(meta["mol_id"], dtype=np.int64),
        ion_center=np.asarray(meta["ion_center"], dtype=bool),
        metadata={k: v for k, v in meta.items() if k not in per_atom and k != "_id"},
    )


def _ion_resname(name: str | None, fallback: str) -> str:
    """``Li+`` → ``LI``, ``SO4 2-`` → ``SO4``, ``TFSI-`` → ``TFSI`` (at most 4 characters, as PDB allows)."""
    text = re.sub(r"\s*\d*[+\-]+$", "", str(name or "")).strip()
    text = re.sub(r"[^A-Za-z0-9]", "", text).upper()
    return (text or fallback)[:4]


def topology_names(arrays: Any) -> dict[str, np.ndarray]:
    """Per-atom names of the ElectroDB roles, as MDAnalysis / GROMACS users expect them.

    Returns ``names`` (water ``OW``, ``HW1``, ``HW2``; a monatomic ion its element, ``LI``; a polyatomic ion
    element + running number per element, ``N1``, ``O1``, ``O2``), ``elements`` (``Li``), ``resnames``
    (water ``SOL``, ions by name without charge: ``LI``, ``CL``, ``SO4``), ``segids`` (``WAT``, ``CAT``,
    ``ANI``) per atom, and ``resindex`` (0…n_residues − 1, in order of ElectroDB's ``mol_id``) with
    ``resids = mol_id + 1``.
    """
    from electrodb.systems import ROLE_NAMES

    meta = arrays.metadata
    role = np.asarray(arrays.role, dtype=np.int64)
    mol_id = np.asarray(arrays.mol_id, dtype=np.int64)
    symbols = list(arrays.symbols)
    cation, anion = _ion_resname(meta.get("cation"), "CAT"), _ion_resname(meta.get("anion"), "ANI")
    resname_of = {"water_O": "SOL", "water_H": "SOL", "cation": cation, "anion": anion}
    segid_of = {"water_O": "WAT", "water_H": "WAT", "cation": "CAT", "anion": "ANI"}
    roles = [ROLE_NAMES[r] for r in role]
    uniq, resindex = np.unique(mol_id, return_inverse=True)
    size = np.bincount(resindex)
    names: list[str] = []
    seen: dict[tuple[int, str], int] = {}
    for i, (r, el) in enumerate(zip(roles, symbols, strict=True)):
        key = (int(resindex[i]), el)
        seen[key] = seen.get(key, 0) + 1
        if r == "water_O":
            names.append("OW")
        elif r == "water_H":
            names.append(f"HW{seen[key]}")
        elif size[resindex[i]] == 1:
            names.append(el.upper())
        else:
            names.append(f"{el.upper()}{seen[key]}"[:4])
    return {
        "names": np.array(names, dtype=object),
        "elements": np.array(symbols, dtype=object),
        "resnames": np.array([resname_of[r] for r in roles], dtype=object),
        "segids": np.array([segid_of[r] for r in roles], dtype=object),
        "resindex": resindex.astype(np.int64),
        "resids": (uniq + 1).astype(np.int64),
    }


def _standard_orientation(arrays: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positions and cells rotated so that every cell is lower-triangular (MDAnalysis's box convention).

    Orthorhombic and already lower-triangular cells are returned unchanged (no rounding); otherwise each
    frame is rotated rigidly (``x' = x R`` with ``R = cell⁻¹ cell'``), which changes no distance.
    """
    from MDAnalysis.lib.mdamath import triclinic_box, triclinic_vectors

    pos, cells = arrays.positions, np.asarray(arrays.cells, dtype=np.float64)
    upper = cells[:, np.triu_indices(3, 1)[0], np.triu_indices(3, 1)[1]]
    if not np.any(np.abs(upper) > 1e-6 * np.abs(cells).max(initial=1.0)):
        return pos, cells
    pos = np.array(pos, dtype=np.float32)
    new_cells = np.empty_like(cells)
    for f, cell in enumerate(cells):
        std = triclinic_vectors(triclinic_box(*cell)).astype(np.float64)
        pos[f] = (pos[f].astype(np.float64) @ np.linalg.solve(cell, std)).astype(np.float32)
        new_cells[f] = std
    return pos, new_cells


def arrays_universe(arrays: Any) -> Any:
    """An in-memory MDAnalysis ``Universe`` of a loaded trajectory (``TrajectoryArrays``).

    Topology from :func:`topology_names`: names, types = elements, masses, resnames, resids = ``mol_id + 1``
    (one residue per ElectroDB molecule), segments ``WAT``/``CAT``/``ANI`` (the roles), ids = atom index + 1.
    Coordinates: the stored unwrapped positions in Å (rotated rigidly only for a cell that is not
    lower-triangular), the box of every frame, ``ts.time`` = the stored time in ps.
    """
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader
    from MDAnalysis.lib.mdamath import triclinic_box

    top = topology_names(arrays)
    n_atoms, n_res = len(arrays.symbols), len(top["resids"])
    seg_names = ("WAT", "CAT", "ANI")
    res_first = np.zeros(n_res, dtype=np.int64)
    res_first[top["resindex"][::-1]] = np.arange(n_atoms)[::-1]  # first atom of each residue
    res_seg = np.array([seg_names.index(top["segids"][i]) for i in res_first], dtype=np.int64)
    u = mda.Universe.empty(
        n_atoms,
        n_residues=n_res,
        n_segments=len(seg_names),
        atom_resindex=top["resindex"],
        residue_segindex=res_seg,
        trajectory=False,
    )
    u.add_TopologyAttr("names", top["names"])
    u.add_TopologyAttr("types", top["elements"])
    u.add_TopologyAttr("elements", top["elements"])
    u.add_TopologyAttr("masses", np.asarray(arrays.masses, dtype=np.float64))
    u.add_TopologyAttr("resnames", top["resnames"][res_first])
    u.add_TopologyAttr("resids", top["resids"])
    u.add_TopologyAttr("segids", np.array(seg_names, dtype=object))
    u.add_TopologyAttr("ids", np.arange(1, n_atoms + 1))
    pos, cells = _standard_orientation(arrays)
    dims = np.array([triclinic_box(*c) for c in cells], dtype=np.float32).reshape(-1, 6)
    times = np.asarray(arrays.times_ps, dtype=np.float64)
    dt = float(np.mean(np.diff(times))) if len(times) > 1 else float(arrays.metadata.get("frame_interval_ps") or 1.0)
    if len(times) > 1 and np.max(np.abs(times - (times[0] + dt * np.arange(len(times))))) > 1e-6:
        warnings.warn(
            f"trajectory {arrays.trajectory_id}: frames are not evenly spaced in time; the Universe's ts.time is "
            f"first time + frame × {dt:g} ps (the stored times are in the H5MD file and the ASE frames)",
            stacklevel=2,
        )
    # a copy: MemoryReader transformations rewrite the coordinate array in place
    coords = np.array(pos, dtype=np.float32, order="C", copy=True)
    u.load_new(coords, format=MemoryReader, dimensions=dims, dt=dt)
    u.trajectory.ts.data["time_offset"] = float(times[0]) if len(times) else 0.0
    u.trajectory[0]
    return u


def ase_frames(arrays: Any) -> list[Any]:
    """The frames of a loaded trajectory as ASE ``Atoms``: ``arrays["role"]``, ``arrays["mol_id"]``,
    ``info["time_ps"]`` (and ``temperature_K``, potential energy as the calculator's energy, when recorded)."""
    return list(_frames(arrays))


def _h5md_observable(h5: Any, name: str, values: np.ndarray, unit: str) -> None:
    if not np.all(np.isfinite(values)):
        return
    group = h5.require_group("observables").require_group(name)
    dset = group.create_dataset("value", data=np.asarray(values, dtype=np.float64))
    if unit:
        dset.attrs["unit"] = unit
    group["step"] = h5[f"particles/{H5MD_GROUP}/position/step"]  # hard links: one step/time for all
    group["time"] = h5[f"particles/{H5MD_GROUP}/position/time"]


def write_h5md(arrays: Any, path: str | Path, topology: str | Path | None = None) -> Path:
    """Write a loaded trajectory as an H5MD 1.1 file with MDAnalysis's ``H5MDWriter``, atomically.

    Layout (``F`` frames, ``N`` atoms)::

        h5md/                          version [1, 1], author, creator = ElectroDB <version>
        particles/trajectory/box/      dimension = 3, boundary = periodic ×3
            edges/value (F, 3, 3) Å    lattice vectors as rows (lower-triangular, MDAnalysis's convention)
            edges/step, edges/time     shared with position/ (time in ps)
        particles/trajectory/position/value (F, N, 3) float32 Å, unwrapped as stored; step (F,) MD step
            (time / timestep), time (F,) ps
        observables/potential_energy/value (F,) eV, observables/temperature/value (F,) K  (when recorded)
        parameters/electrodb/          attributes trajectory_id, salt, cation, anion, molality, temperature,
                                       model_id; per-atom datasets names, resnames, resids, segids, elements,
                                       role, mol_id, ion_center, masses

    ``topology``: also write the first frame as a PDB there (names, resnames, resids, segids, elements), so
    that ``MDAnalysis.Universe(topology, path)`` has the ElectroDB roles as residue and segment names.
    """
    import warnings as _warnings

    import h5py
    import MDAnalysis as mda
    from MDAnalysis.coordinates.H5MD import H5MDWriter

    from electrodb import __version__

    u = arrays_universe(arrays)
    n_atoms, n_frames = u.atoms.n_atoms, u.trajectory.n_frames
    with atomic_output(path) as part:
        with H5MDWriter(
            str(part),
            n_atoms,
            n_frames=n_frames,
            timeunit="ps",
            lengthunit="Angstrom",
            velocities=False,
            forces=False,
            compression="gzip",
            compression_opts=1,
            author="ElectroDB",
            creator="ElectroDB",
            creator_version=__version__,
        ) as writer:
            for _ in u.trajectory:
                writer.write(u.atoms)
        top = topology_names(arrays)
        meta = arrays.metadata
        times = np.asarray(arrays.times_ps, dtype=np.float64)
        timestep_ps = float(meta.get("timestep_fs") or 0.0) / 1000.0
        steps = np.rint(times / timestep_ps).astype(np.int64) if timestep_ps > 0 else np.arange(len(times))
        if len(steps) > 1 and np.any(np.diff(steps) <= 0):
            steps = np.arange(len(times))
        with h5py.File(part, "a") as h5:
            # the stored times (ps) and MD steps, exactly (the in-memory reader knows only first time + dt)
            h5[f"particles/{H5MD_GROUP}/position/time"][...] = times
            h5[f"particles/{H5MD_GROUP}/position/step"][...] = steps
            _h5md_observable(h5, "potential_energy", arrays.potential_energy_eV, "eV")
            _h5md_observable(h5, "temperature", arrays.temperature_K, "K")
            group = h5.require_group("parameters").require_group("electrodb")
            for key in ("trajectory_id", "salt", "cation", "anion", "molality", "temperature", "model_id"):
                if meta.get(key) is not None:
                    group.attrs[key] = meta[key]
            group.attrs["trajectory_id"] = arrays.trajectory_id
            text = h5py.string_dtype()
            for key in ("names", "resnames", "segids", "elements"):
                group.create_dataset(key, data=[str(x) for x in top[key]], dtype=text)
            group.create_dataset("resids", data=top["resids"][top["resindex"]])
            group.create_dataset("role", data=np.asarray(arrays.role, dtype=np.int8))
            group["role"].attrs["codes"] = "0 water_O, 1 water_H, 2 cation, 3 anion"
            group.create_dataset("mol_id", data=np.asarray(arrays.mol_id, dtype=np.int64))
            group.create_dataset("ion_center", data=np.asarray(arrays.ion_center, dtype=bool))
            group.create_dataset("masses", data=np.asarray(arrays.masses, dtype=np.float64))
    if topology is not None:
        u.trajectory[0]
        with atomic_output(topology) as part, _warnings.catch_warnings():
            _warnings.simplefilter("ignore")  # PDB fields ElectroDB has no data for (altLocs, occupancies, ...)
            with mda.Writer(str(part), n_atoms=n_atoms, format="PDB") as pdb:
                pdb.write(u.atoms)
    return Path(path)


def trajectory_universe(stores: Any, trajectory_id: str) -> Any:
    """A stored trajectory as an in-memory MDAnalysis ``Universe`` (for users on the database machine).

    Names as :func:`topology_names`: ``u.select_atoms("resname SOL and name OW")`` are the water O,
    ``"segid CAT"`` the cations, ``"segid ANI"`` the anions; residues are ElectroDB molecules (resid =
    ``mol_id + 1``). Positions unwrapped, Å; ``ts.time`` in ps.
    """
    from electrodb.trajectory import load_trajectory

    trajectories, blobs = stores["trajectories"], stores["data"]
    trajectories.connect()
    blobs.connect()
    return arrays_universe(load_trajectory(trajectory_id, trajectories, blobs, fields=_FRAME_KEYS))


def export_trajectories(
    stores: Any, out_dir: str | Path, filters: dict[str, Any] | None = None, fmt: str = "extxyz"
) -> list[Path]:
    """Write every matching trajectory as ``<out_dir>/<trajectory_id>.extxyz`` or ``.h5md``; return the paths.

    Frames are loaded one trajectory at a time with :func:`electrodb.trajectory.load_trajectory`; unwrapped
    positions in Å, per-frame cell, times in ps. ``extxyz``: ``time_ps``/``temperature_K`` in the comment line,
    potential energy as ``energy`` when recorded, per-atom ``role`` and ``mol_id`` columns. ``h5md``: the
    layout of :func:`write_h5md` plus ``<trajectory_id>.pdb`` beside it (topology for
    ``MDAnalysis.Universe(pdb, h5md)``). Files are written atomically. ``filters`` takes the API's
    ``GET /trajectories`` names (``salt``, ``status``, ``trajectory_id``, ``molality_min``, …). Trajectories
    without frames or whose stored chunks are inconsistent are skipped with a warning.
    """
    from ase.io import write

    from electrodb.trajectory import TrajectoryError, load_trajectory

    fmt = fmt.lower()
    if fmt not in TRAJECTORY_FORMATS:
        raise ValueError(f"unknown trajectory format {fmt!r}; choose one of {', '.join(TRAJECTORY_FORMATS)}")
    criteria = build_criteria(SPECS["trajectories"], filters or {})
    trajectories, blobs = stores["trajectories"], stores["data"]
    trajectories.connect()
    blobs.connect()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    heads = list(
        trajectories.query(criteria, properties={"trajectory_id": 1, "n_frames": 1}, sort={"trajectory_id": 1})
    )
    written: list[Path] = []
    for head in heads:
        tid = head["trajectory_id"]
        if not head.get("n_frames"):
            warnings.warn(f"trajectory {tid} has no stored frames; skipped", stacklevel=2)
            continue
        try:
            arrays = load_trajectory(tid, trajectories, blobs, fields=_FRAME_KEYS)
        except TrajectoryError as exc:
            warnings.warn(f"trajectory {tid} skipped: {exc}", stacklevel=2)
            continue
        path = out_dir / f"{_safe_filename(tid)}.{fmt}"
        if fmt == "h5md":
            write_h5md(arrays, path, topology=path.with_suffix(".pdb"))
        else:
            with atomic_output(path) as part:
                write(part, _frames(arrays), format="extxyz")
        written.append(path)
    return written
