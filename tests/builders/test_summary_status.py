"""Summaries carry a status per property; a run at the wrong temperature or a fixed density is never a result."""

from __future__ import annotations

import pytest

from electrodb.analysis.convergence import Verdict
from electrodb.builders import run_builders
from electrodb.builders.summary import merge_property
from electrodb.documents.registry import SUMMARY_PROPERTIES
from tests.synthetic import write_brownian_trajectory

OK = Verdict("converged", "c")
BAD = Verdict("unconverged", "c", "error too large")


def test_merge_uses_converged_runs_only_and_keeps_status_otherwise():
    value, err, verdict, n = merge_property([1.0, 5.0], [0.1, 0.1], [OK, BAD])
    assert (value, err, verdict.status, n) == (1.0, 0.1, "converged", 1)
    value, err, verdict, n = merge_property([1.0, 3.0], [0.1, 0.1], [BAD, BAD])
    assert value == pytest.approx(2.0) and verdict.status == "unconverged" and verdict.reason == "error too large"
    assert n == 2
    value, _, verdict, n = merge_property([None, None], [None, None], [OK, BAD])
    assert value is None and verdict.status == "insufficient" and n == 0


def _set(stores, tid, **changes):
    doc = stores.trajectories.query_one({"trajectory_id": tid})
    doc.pop("_id", None)
    stores.trajectories.update([{**doc, **changes}], key="trajectory_id")


def test_every_summary_property_has_a_status_and_reason(stores):
    write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=150, seed=11)
    run_builders(stores)
    summary = stores.electrolytes.query_one({})
    for prop in SUMMARY_PROPERTIES:
        assert summary[f"{prop}_status"] in ("converged", "unconverged", "insufficient"), prop
        assert isinstance(summary[f"{prop}_reason"], str) and isinstance(summary[f"{prop}_criterion"], str)
        if summary[f"{prop}_status"] != "converged":
            assert summary[f"{prop}_reason"], prop  # a value that is not a result always says why
    # a 64-water box has 1 cation: its D can never meet the targets (atoms x blocks), and says so
    assert summary["D_cation_status"] == "unconverged" and summary["D_cation_reason"]
    assert summary["D_cation_pbc"] is not None and summary["D_cation"] is not None


def test_run_at_the_wrong_temperature_is_not_a_result(stores):
    doc = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=150, seed=12)
    _set(
        stores,
        doc.trajectory_id,
        mean_temperature_K=420.0,
        temperature_err_K=2.0,
        temperature_status="unconverged",
        temperature_criterion="|<T> - T_target| <= max(5 K, 3 SE)",
        temperature_reason="mean 420.0 ± 2.0 K, target 298.15 K",
    )
    run_builders(stores)
    summary = stores.electrolytes.query_one({})
    assert summary["T_mean"] == pytest.approx(420.0) and summary["T_mean_status"] == "unconverged"
    for prop in ("r_cation_O", "cn_cation_O", "D_water", "cip_fraction_cation"):
        assert summary[f"{prop}_status"] != "converged", prop
    if summary["cn_cation_O_status"] == "unconverged":
        assert "labelled temperature" in summary["cn_cation_O_reason"]


def test_fixed_density_is_an_input_not_a_result(stores):
    doc = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=150, seed=13)
    _set(stores, doc.trajectory_id, md={"npt": False})
    run_builders(stores)
    summary = stores.electrolytes.query_one({})
    assert summary["density"] is None and summary["density_source"] == "input"
    assert summary["density_input"] == pytest.approx(doc.density_kg_m3)
    assert summary["density_status"] == "insufficient" and "input" in summary["density_reason"]
    assert "exp_density" not in summary  # never compared with experiment as if computed


def test_legacy_property_documents_are_not_results(stores):
    doc = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=150, seed=14)
    run_builders(stores)
    transport = stores.transport.query_one({"trajectory_id": doc.trajectory_id})
    transport.pop("_id", None)
    for entry in transport["diffusion"].values():
        entry["status"] = "ok"  # what an older ElectroDB stored
    stores.transport.update([transport], key="trajectory_id")
    from electrodb.builders.summary import ElectrolyteSummaryBuilder

    builder = ElectrolyteSummaryBuilder(
        stores.structure, stores.transport, stores.pairing, stores.kinetics, stores.trajectories, stores.electrolytes
    )
    out = builder.process_item(transport["electrolyte_id"])
    assert out["D_water"] is not None
    assert out["D_water_status"] == "unconverged" and "older ElectroDB" in out["D_water_reason"]


def test_summary_follows_its_members_when_a_replica_turns_unstable_or_all_go(stores):
    a = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=15)
    b = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=16)
    run_builders(stores)
    assert stores.electrolytes.query_one({})["n_runs"] == 2
    _set(stores, b.trajectory_id, status="unstable", status_reason="blew up", last_updated=_later())
    run_builders(stores)
    summary = stores.electrolytes.query_one({})
    assert summary["n_runs"] == 1 and summary["trajectory_ids"] == [a.trajectory_id]
    _set(stores, a.trajectory_id, status="unstable", status_reason="blew up", last_updated=_later())
    run_builders(stores)
    assert stores.electrolytes.count() == 0  # no member left: no stale summary served


def _later():
    from datetime import datetime, timedelta, timezone

    return datetime.now(timezone.utc) + timedelta(seconds=1)
