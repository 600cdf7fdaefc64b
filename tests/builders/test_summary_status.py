"""Summaries carry a status per property; a run at the wrong temperature or a fixed density is never a result.

An input (η from a correlation, a fixed density) is ``input``, never ``converged``; an ``insufficient`` value is
null; an error of exactly zero is never ``converged``; ``P_n_eff`` and ``P_t_equil_ps`` come from the runs' verdict
entries.
"""

from __future__ import annotations

import pytest

from electrodb.analysis.convergence import STATUSES, Verdict, worst
from electrodb.analysis.viscosity import SOURCE_GREEN_KUBO, SOURCE_LALIBERTE, SOURCE_WATER
from electrodb.builders import run_builders
from electrodb.builders.summary import ElectrolyteSummaryBuilder, merge_property
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
        assert summary[f"{prop}_status"] in STATUSES, prop
        assert isinstance(summary[f"{prop}_reason"], str) and isinstance(summary[f"{prop}_criterion"], str)
        if summary[f"{prop}_status"] != "converged":
            assert summary[f"{prop}_reason"], prop  # a value that is not a result always says why
    # a 64-water box has 1 cation: its D can never meet the targets (atoms x blocks), and says so
    assert summary["D_cation_status"] == "unconverged" and summary["D_cation_reason"]
    assert summary["D_cation_pbc"] is not None and summary["D_cation"] is not None
    # no stress stored: η is Laliberté's correlation for NaCl, an input (with its source), never "converged"
    assert summary["eta_status"] == "input" and summary["eta_source"] == SOURCE_LALIBERTE
    assert summary["eta"] is not None and "Laliberté" in summary["eta_reason"]
    assert {f"{p}_n_eff" for p in SUMMARY_PROPERTIES} | {f"{p}_t_equil_ps" for p in SUMMARY_PROPERTIES} <= set(summary)


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
    assert summary["density_status"] == "input" and "input" in summary["density_reason"]
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


# ------------------------------------------------------------------------------------------ hand-made runs

INPUT = Verdict("input", "c", "from a correlation")
C = "a criterion"


def _runs(*runs: dict) -> tuple[list[str], dict[str, dict[str, dict]]]:
    """Per-trajectory documents of hand-made runs: each ``run`` maps a source (``transport``, ``structure``,
    ``trajectory``) to the parts of its document that matter; the rest is left out."""
    tids = [f"t{k}" for k in range(len(runs))]
    by_tid = {
        tid: {"trajectory": {"trajectory_id": tid, "molality": 1.0, **run.get("trajectory", {})}, **run}
        for tid, run in zip(tids, runs, strict=True)
    }
    for docs in by_tid.values():
        for name in ("transport", "structure"):
            docs[name] = {"molality": 1.0, **docs.get(name, {})}
    return tids, by_tid


def _water(source: str | None, eta: float | None = 1.0e-3, err: float = 3e-5, **d: object) -> dict:
    entry = {"D": 2.0, "D_err": 0.1, "status": "converged", "criterion": C, "reason": ""}
    return {
        "diffusion": {
            "water": {**entry, **d, "viscosity_Pa_s": eta, "viscosity_err_Pa_s": err, "viscosity_source": source}
        }
    }


def _shell(cn: float | None, cn_err: float | None, status: str, **extra: object) -> dict:
    entry = {"r_peak": 2.1, "cn": cn, "cn_err": cn_err, "status": status, "criterion": C, "reason": "few centres"}
    # the peak position has its own value, error and verdict (analysis.shell_peak); here it follows the CN's status
    peak = {"r_peak": 2.1, "r_peak_err": 0.01, "status": status, "criterion": C, "reason": "few centres"}
    return {"shells": {"cation-O_w": {**entry, **extra, "peak": peak}}}


def _flat(*runs: dict) -> dict:
    return ElectrolyteSummaryBuilder._flatten(*_runs(*runs))


def test_worst_treats_input_as_not_a_failure():
    assert "input" in STATUSES
    assert worst(OK, INPUT).status == "input" and worst(OK, INPUT).reason == "from a correlation"
    assert worst(INPUT, BAD) == Verdict("unconverged", "c", "error too large")  # no input reason among failures
    assert worst(OK, OK).status == "converged"


def test_eta_from_a_correlation_or_a_set_value_is_an_input_and_d_corrected_with_it_can_converge():
    flat = _flat({"transport": _water(SOURCE_LALIBERTE)})
    assert (
        flat["eta_status"] == "input" and flat["eta"] == pytest.approx(1.0) and flat["eta_err"] == pytest.approx(0.03)
    )
    assert "Laliberté" in flat["eta_reason"] and flat["eta_n_runs"] == 1
    assert flat["D_water_status"] == "converged"  # the correction used η as an input: D is judged on its own
    assert _flat({"transport": _water("user", err=0.0)})["eta_status"] == "input"
    assert _flat({"transport": _water(SOURCE_GREEN_KUBO)})["eta_status"] == "converged"
    assert _flat({"transport": _water(SOURCE_WATER, err=0.0)})["eta_status"] == "unconverged"  # water η, salt
    # two runs of the same correlation: the input's error is not divided down by √2
    two = _flat({"transport": _water(SOURCE_LALIBERTE)}, {"transport": _water(SOURCE_LALIBERTE)})
    assert two["eta_status"] == "input" and two["eta_err"] == pytest.approx(0.03) and two["eta_n_runs"] == 2
    # a run that computed η wins over an input
    mixed = _flat({"transport": _water(SOURCE_LALIBERTE)}, {"transport": _water(SOURCE_GREEN_KUBO, eta=1.2e-3)})
    assert mixed["eta_status"] == "converged" and mixed["eta"] == pytest.approx(1.2)


def test_input_runs_merge_without_shrinking_their_error():
    value, err, verdict, n = merge_property([1.0, 1.0], [0.03, 0.03], [INPUT, INPUT])
    assert (value, err, verdict.status, n) == (1.0, 0.03, "input", 2)
    value, err, verdict, n = merge_property([1.0, 1.1], [0.03, 0.01], [INPUT, OK])
    assert (value, err, verdict.status, n) == (1.1, 0.01, "converged", 1)


def test_insufficient_values_are_null_in_the_summary():
    flat = _flat({"structure": _shell(3.648, 0.02, "insufficient")})  # the number the export once wrote
    assert flat["cn_cation_O_status"] == "insufficient" and flat["cn_cation_O_reason"] == "few centres"
    assert flat["cn_cation_O"] is None and flat["cn_cation_O_err"] is None and flat["cn_cation_O_n_runs"] == 0
    assert flat["r_cation_O"] is None and flat["r_cation_O_status"] == "insufficient"
    value, err, verdict, n = merge_property([3.6, 3.7], [0.1, 0.1], [Verdict("insufficient", "c", "x")] * 2)
    assert (value, err, verdict.status, n) == (None, None, "insufficient", 0)


def test_an_error_of_exactly_zero_is_never_converged():
    value, err, verdict, n = merge_property([4.0], [0.0], [OK])
    assert verdict.status == "unconverged" and "exactly zero" in verdict.reason and value == 4.0
    value, err, verdict, n = merge_property([4.0, 4.0], [None, None], [OK, OK])  # identical runs, no error
    assert err == 0.0 and verdict.status == "unconverged" and "exactly zero" in verdict.reason
    value, err, verdict, n = merge_property([4.0, 5.0], [0.0, 0.2], [OK, OK])  # the zero-error run is left out
    assert (value, err, verdict.status, n) == (5.0, 0.2, "converged", 1)
    flat = _flat({"structure": _shell(6.0, 0.0, "converged")})
    assert flat["cn_cation_O_status"] == "unconverged" and "exactly zero" in flat["cn_cation_O_reason"]
    assert flat["r_cation_O_status"] == "converged"  # the peak position's own error is not zero


def test_n_eff_and_equilibration_cut_of_the_merged_runs():
    a = {"structure": _shell(6.0, 0.1, "converged", n_eff=30.0, t_equil_ps=4.0)}
    b = {"structure": _shell(6.2, 0.1, "converged", n_eff=45.5, t_equil_ps=9.0)}
    flat = _flat(a, b)
    assert flat["cn_cation_O_n_eff"] == pytest.approx(75.5) and flat["cn_cation_O_t_equil_ps"] == 9.0
    bad = {"structure": _shell(9.0, 0.1, "unconverged", n_eff=3.0, t_equil_ps=20.0)}
    flat = _flat(a, bad)  # only the converged run is merged: its n_eff and cut, not the other's
    assert flat["cn_cation_O_n_eff"] == 30.0 and flat["cn_cation_O_t_equil_ps"] == 4.0
    flat = _flat(a, {"structure": _shell(6.2, 0.1, "converged")})  # one run did not record them
    assert flat["cn_cation_O_n_eff"] is None and flat["cn_cation_O_t_equil_ps"] is None
    flat = _flat({"structure": _shell(3.0, 0.1, "insufficient", n_eff=2.0, t_equil_ps=1.0)})
    assert flat["cn_cation_O_n_eff"] is None and flat["cn_cation_O_t_equil_ps"] is None  # no value, none of these
    assert _flat(a)["D_water_n_eff"] is None  # not recorded (yet) for D
