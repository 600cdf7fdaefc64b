"""maggma builders: incremental, idempotent, unstable runs never built, provenance, summaries, thermo."""

from __future__ import annotations

import numpy as np
import pytest

from electrodb.builders import run_builders
from electrodb.builders.summary import merge_values
from tests.synthetic import write_brownian_trajectory


def test_builders_are_incremental_and_idempotent(stores):
    a = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=1)
    first = run_builders(stores)
    assert first["properties"] == 1 and first["summary"] == 1
    assert run_builders(stores) == {k: 0 for k in first}  # nothing new: nothing processed
    before = stores.structure.query_one({"trajectory_id": a.trajectory_id})["last_updated"]
    b = write_brownian_trajectory(stores, "NaCl", 2.0, n_frames=120, seed=2)
    third = run_builders(stores)
    assert third["properties"] == 1 and third["summary"] == 1  # only the new trajectory and its summary
    assert stores.structure.query_one({"trajectory_id": a.trajectory_id})["last_updated"] == before
    assert stores.structure.count() == 2 and stores.electrolytes.count() == 2
    assert stores.structure.query_one({"trajectory_id": b.trajectory_id})["provenance"]["trajectory_ids"] == [
        b.trajectory_id
    ]


def test_changed_analysis_settings_rebuild(stores):
    from electrodb.builders.analysis_settings import AnalysisSettings

    write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=1)
    run_builders(stores)
    again = run_builders(stores, settings=AnalysisSettings(n_blocks=4))
    assert again["properties"] == 1


def test_unstable_and_short_trajectories_produce_no_property_documents(stores):
    bad = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=60, seed=3, status="unstable")
    short = write_brownian_trajectory(stores, "LiCl", 1.0, n_frames=10, seed=4)
    run_builders(stores)
    for name in ("structure", "transport", "pairing", "kinetics", "electrolytes"):
        assert stores[name].count() == 0
    reasons = {d["trajectory_id"]: d["reason"] for d in stores.builds.query({})}
    assert "unstable" in reasons[bad.trajectory_id] and "too short" in reasons[short.trajectory_id]
    assert run_builders(stores)["properties"] == 0  # skips are remembered, not retried


def test_property_documents_carry_provenance_and_physics(stores):
    doc = write_brownian_trajectory(stores, "NaCl", 3.0, n_frames=300, seed=6, D_A2_ps=0.2)
    run_builders(stores)
    transport = stores.transport.query_one({"trajectory_id": doc.trajectory_id})
    prov = transport["provenance"]
    assert prov["model_id"] == "sha256:synthetic" and prov["code_version"] and prov["analysis"]["settings_digest"]
    water = transport["diffusion"]["water"]
    # rigid molecules random-walk with D = 0.2 Å²/ps = 2.0e-9 m²/s (before the Yeh–Hummer correction)
    assert water["D_pbc"] == pytest.approx(2.0, rel=0.1)
    assert water["D"] > water["D_pbc"] and water["viscosity_source"] == "laliberte_correlation"  # NaCl 3 m
    structure = stores.structure.query_one({"trajectory_id": doc.trajectory_id})
    assert {"cation-O_w", "anion-O_w", "O_w-O_w", "cation-anion"} <= set(structure["rdf"])
    summary = stores.electrolytes.query_one({})
    assert summary["exp_D_cation"] == pytest.approx(1.334) and "CRC" in summary["exp_D_cation_source"]
    assert summary["D_water"] == pytest.approx(water["D"])


def test_summary_merges_replicas():
    value, err = merge_values([1.0, 1.2], [0.1, 0.1])
    assert value == pytest.approx(1.1) and err == pytest.approx(0.1 / np.sqrt(2))
    value, err = merge_values([1.0, 2.0, None], [None, None, None])
    assert value == pytest.approx(1.5) and err == pytest.approx(0.5)
    assert merge_values([None], [None]) == (None, None)


def test_thermo_needs_a_concentration_series(stores):
    write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=1)
    write_brownian_trajectory(stores, "NaCl", 2.0, n_frames=120, seed=2)
    run_builders(stores)
    thermo = stores.thermo.query_one({})
    assert thermo["status"] == "insufficient" and "< 3" in thermo["reason"]
    assert thermo["series"] is None
    assert thermo["experiment"]["tables"]["gamma"]["value"]  # Hamer & Wu values beside it


def test_export_rows_carry_thermo_columns():
    from electrodb.io.export import summary_row, thermo_columns

    thermo = {
        "status": "ok",
        "systems": [{"electrolyte_id": "e1", "a_cc": 1.2, "a_cc_err": 0.1}],
        "series": {
            "molality": [0.5, 1.0, 2.0],
            "gamma": [0.7, 0.66, 0.67],
            "gamma_err": [0.01, 0.02, 0.03],
            "phi": [0.92, 0.93, 0.98],
            "phi_err": [0.01, 0.01, 0.02],
        },
        "experiment": {
            "pitzer_at_series": {
                "molality": [0.5, 1.0, 2.0],
                "gamma": [0.68, 0.657, 0.668],
                "phi": [0.921, 0.936, 0.983],
            }
        },
    }
    doc = {"electrolyte_id": "e1", "molality": 1.0}
    cols = thermo_columns(doc, thermo)
    assert cols["a_cc"] == 1.2 and cols["gamma_pm"] == 0.66 and cols["phi_err"] == 0.01
    assert cols["exp_gamma_pm"] == 0.657 and cols["exp_phi"] == 0.936 and cols["thermo_status"] == "ok"
    assert thermo_columns({"electrolyte_id": "e2", "molality": 3.0}, thermo)["gamma_pm"] is None
    row = summary_row({"electrolyte_id": "e1", "molality": 1.0, "salt": "NaCl"}, None, thermo)
    assert row["gamma_pm"] == 0.66
