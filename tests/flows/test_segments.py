"""Campaigns that run until converged (issue 20): the spec, the decision after a segment, and segments run end to
end with the tiny random MACE (continuous frames, budget stops, resumes and raised budgets)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from electrodb.flows.segments import PropertyState, decide, until_properties
from electrodb.store.frames import load_trajectory
from electrodb.systems.budget import Budget
from electrodb.systems.campaign import Campaign
from electrodb.utils.safe_yaml import SpecError
from tests.campaigns import short_md, small_campaign

BASE = "name: t\nsalts: [NaCl]\nconcentrations: [1.0]\nmodel: m.model\n"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("budget: {max_production_ps: 0}\n", "budget.max_production_ps: max_production_ps must be a positive"),
        ("budget: {max_wall_hours: -1}\n", "max_wall_hours must be a positive number"),
        ("until: []\nbudget: {max_production_ps: 5}\n", "until lists no property"),
        ("until: [D_water]\n", "until needs a budget"),
        ("until: [D_water]\nbudget: {max_production_ps: 2}\n", "needs >= 4 ps of production"),
        ("budget: {segment_ps: 3, max_production_ps: 2}\n", "segment_ps (3 ps) is longer than max_production_ps"),
    ],
)
def test_bad_until_or_budget_is_one_line_naming_the_field(tmp_path, extra, needle):
    path = tmp_path / "c.yaml"
    path.write_text(BASE + extra)
    with pytest.raises(SpecError) as exc:
        Campaign.from_yaml(path)
    message = str(exc.value)
    assert needle in message and "\n" not in message and str(path) in message


def test_unknown_until_property_names_close_matches_and_stores_nothing(stores, random_mace):
    from electrodb.flows.campaign import run_campaign

    with pytest.raises(ValueError, match=r"unknown property 'D_waters' \(did you mean D_water") as exc:
        until_properties(["D_waters"])
    assert "\n" not in str(exc.value)
    campaign = small_campaign(random_mace).model_copy(
        update={"until": ["cn_catoin_O"], "budget": Budget(max_production_ps=1.0)}
    )
    with pytest.raises(ValueError, match="cn_cation_O"):
        run_campaign(campaign, stores)
    assert stores.campaigns.count() == 0 and stores.systems.count() == 0


def test_system_id_is_not_the_run_length_nor_the_budget():
    fixed = small_campaign("m.model", production_ps=0.1)
    longer = small_campaign("m.model", production_ps=0.5)
    until = fixed.model_copy(update={"until": "all", "budget": Budget(max_production_ps=2.0)})
    ids = {c.systems("m")[0].system_id for c in (fixed, longer, until)}
    assert len(ids) == 1
    hotter = small_campaign("m.model", thermostat_time_fs=50.0)
    assert hotter.systems("m")[0].system_id not in ids  # an MD setting is a new system


def _states(**status_needs):
    return {
        k: PropertyState(status=s, needs_ps=n, unreachable=n == math.inf and s != "converged")
        for k, (s, n) in status_needs.items()
    }


def test_decide_stops_when_converged_unreachable_or_out_of_budget():
    budget = Budget(max_production_ps=10.0)
    converged = _states(a=("converged", 0.0), b=("converged", 0.0))
    assert decide(converged, ("a", "b"), 2.0, 60.0, budget, 1.0, 0.01)[0] == "converged"
    stuck = _states(a=("converged", 0.0), b=("unconverged", math.inf))
    decision, reason, nxt = decide(stuck, ("a", "b"), 2.0, 60.0, budget, 1.0, 0.01)
    assert decision == "unreachable" and "b cannot converge" in reason and nxt is None
    pending = _states(a=("unconverged", 3.0))
    assert decide(pending, ("a",), 10.0, 60.0, budget, 1.0, 0.01)[0] == "budget"
    hopeless = _states(a=("unconverged", 100.0))  # needs far more than the 8 ps left
    assert decide(hopeless, ("a",), 2.0, 60.0, budget, 1.0, 0.01)[0] == "budget"
    # the campaign's total is shared: spent core hours stop every system
    total = Budget(total_core_hours=1.0)
    assert decide(pending, ("a",), 2.0, 60.0, total, 1.0, 0.01, (1.5, 0.0))[0] == "budget"


def test_decide_sizes_the_next_segment_from_needs_ps_within_limits():
    budget = Budget(max_production_ps=20.0)
    small = _states(a=("unconverged", 0.2), b=("converged", 0.0))
    assert decide(small, ("a", "b"), 2.0, 60.0, budget, 1.0, 0.01) == (
        "continue",
        "1 pending; next segment to 3 ps",
        3.0,
    )
    big = _states(a=("unconverged", 9.0))
    assert decide(big, ("a",), 2.0, 60.0, budget, 1.0, 0.01)[2] == pytest.approx(4.0)  # at most doubles the run
    unknown = _states(a=("unconverged", None))
    assert decide(unknown, ("a",), 2.0, 60.0, budget, 1.0, 0.01)[2] == pytest.approx(3.0)  # one segment
    capped = _states(a=("unconverged", 2.5))  # more than the 1.5 ps left, but within twice that
    assert decide(capped, ("a",), 18.5, 60.0, budget, 1.0, 0.01)[2] == pytest.approx(20.0)  # the budget's end
    grid = decide(small, ("a",), 2.0, 60.0, budget, 1.003, 0.02)[2]
    assert grid == pytest.approx(3.02) and abs(grid / 0.02 - round(grid / 0.02)) < 1e-9  # on the frame grid


def _until_campaign(model, max_ps: float, **md):
    return small_campaign(model).model_copy(
        update={
            "md": short_md(production_ps=0.02, **md),
            "until": ["D_water"],
            "budget": Budget(segment_ps=0.02, max_production_ps=max_ps),
        }
    )


def _unknown_needs(meta, stores, settings=None):
    """A judgement that never converges and cannot say how much more it needs: segments of segment_ps."""
    return {"D_water": PropertyState(status="unconverged", reason="test", needs_ps=None)}


def test_real_judgement_records_every_property_with_its_needs(stores, random_mace):
    from electrodb.flows.campaign import run_campaign

    campaign = _until_campaign(random_mace, max_ps=0.12)
    tid = run_campaign(campaign, stores).completed[0]
    record = stores.trajectories.query_one({"trajectory_id": tid})["convergence"]
    assert record["segment"] >= 2 and record["decision"] in ("budget", "unreachable")
    assert record["production_ps"] <= 0.12 + 1e-9 and record["ps_per_hour"] > 0
    water = record["properties"]["D_water"]
    assert water["status"] != "converged" and water["reason"]
    assert water["needs_ps"] is None or water["needs_ps"] > 0 or water["unreachable"]
    assert set(record["properties"]) >= {"r_cation_O", "cn_cation_O", "D_cation"}


def test_segments_run_until_the_budget_with_continuous_frames_and_resume_after_more_budget(
    stores, random_mace, monkeypatch
):
    from electrodb.flows import segments
    from electrodb.flows.campaign import run_campaign

    monkeypatch.setattr(segments, "judge_trajectory", _unknown_needs)
    campaign = _until_campaign(random_mace, max_ps=0.06)
    summary = run_campaign(campaign, stores)
    tid = summary.completed[0]
    doc = stores.trajectories.query_one({"trajectory_id": tid})
    record = doc["convergence"]
    assert record["decision"] == "budget" and record["segment"] == 3
    assert record["pending"] == ["D_water"] and record["properties"]["D_water"]["status"] != "converged"
    traj = load_trajectory(tid, stores.trajectories, stores.data)
    assert traj.n_frames == round(0.06 * 1000 / 0.5) // 10 + 1  # 0.06 ps in 0.02-ps segments, frames every 5 fs
    assert np.allclose(np.diff(traj.times_ps), 0.005)  # no gap, no duplicate across segment boundaries
    assert np.linalg.norm(np.diff(traj.positions, axis=0), axis=2).max() < 1.0  # continuous positions
    assert doc["md"]["production_ps"] == pytest.approx(0.06)
    names = [d["name"] for d in stores.jobs.query({}, properties=["name"])]
    assert any("segment 2" in n for n in names)
    before = traj.positions.copy()

    # the same campaign again: stopped by its budget, nothing runs
    again = run_campaign(campaign, stores)
    assert again.skipped == [tid] and not again.completed
    # a raised budget continues the stored trajectory (same system id), frames kept bit for bit
    more = run_campaign(_until_campaign(random_mace, max_ps=0.1), stores)
    assert more.completed == [tid]
    longer = load_trajectory(tid, stores.trajectories, stores.data)
    assert longer.n_frames == round(0.1 * 1000 / 0.5) // 10 + 1
    assert np.array_equal(longer.positions[: len(before)], before)
    assert np.allclose(np.diff(longer.times_ps), 0.005)
    after = stores.trajectories.query_one({"trajectory_id": tid})
    assert after["convergence"]["segment"] > record["segment"] and after["wall_time_s"] > doc["wall_time_s"]


def test_a_run_stopped_between_segments_continues_where_it_stopped(stores, random_mace, monkeypatch):
    """The local runner's first pass judges without continuing: what a kill between segments leaves behind."""
    import dataclasses

    from electrodb.flows import segments
    from electrodb.flows.campaign import prepare_campaign_run, run_system

    monkeypatch.setattr(segments, "judge_trajectory", _unknown_needs)
    from electrodb.flows.segments import ConvergenceCheckMaker
    from electrodb.flows.system import ElectrolyteFlowMaker

    campaign = _until_campaign(random_mace, max_ps=0.04)
    run = prepare_campaign_run(campaign, stores)
    spec = run.todo[0]
    maker = ElectrolyteFlowMaker()
    first = dataclasses.replace(maker, check_maker=ConvergenceCheckMaker(continue_segments=False))
    assert run_system(spec, stores, first)[0] == "completed"
    doc = stores.trajectories.query_one({"trajectory_id": spec.system_id})
    assert doc["convergence"]["decision"] == "continue" and doc["n_frames"] == 5
    run = prepare_campaign_run(campaign, stores)
    assert [s.system_id for s in run.todo] == [spec.system_id]  # still pending
    assert run_system(spec, stores, maker)[0] == "completed"
    traj = load_trajectory(spec.system_id, stores.trajectories, stores.data)
    assert traj.n_frames == 9 and np.allclose(np.diff(traj.times_ps), 0.005)


def test_raising_a_fixed_production_length_extends_the_stored_run(stores, random_mace):
    from electrodb.flows.campaign import run_campaign

    short = run_campaign(small_campaign(random_mace, production_ps=0.02), stores)
    tid = short.completed[0]
    longer = run_campaign(small_campaign(random_mace, production_ps=0.04), stores)
    assert longer.completed == [tid]
    traj = load_trajectory(tid, stores.trajectories, stores.data)
    assert traj.n_frames == 9 and np.allclose(np.diff(traj.times_ps), 0.005)


def test_local_runner_shares_segments_one_at_a_time_cheapest_first(stores, random_mace, monkeypatch):
    """Two systems: both get a first segment, then segments go one at a time to the one needing least."""
    from electrodb.flows import segments
    from electrodb.flows.campaign import run_campaign
    from tests.campaigns import worker_campaign

    order = []

    def judged(meta, stores, settings=None):
        order.append((meta["trajectory_id"], round(meta["n_frames"])))
        dilute = meta["molality"] < 3.0  # the dilute box "needs" little, the other a lot: it goes first
        return {"D_water": PropertyState(status="unconverged", reason="test", needs_ps=0.01 if dilute else 0.03)}

    monkeypatch.setattr(segments, "judge_trajectory", judged)
    campaign = worker_campaign(str(random_mace), [2.0, 4.0], [298.15], production_ps=0.02).model_copy(
        update={"until": ["D_water"], "budget": Budget(segment_ps=0.02, max_production_ps=0.06)}
    )
    summary = run_campaign(campaign, stores)
    assert len(summary.completed) == 2
    first_two = {tid for tid, _ in order[:2]}
    assert len(first_two) == 2  # every system's first segment before any second one
    dilute = next(d["trajectory_id"] for d in stores.trajectories.query({"molality": {"$lt": 3.0}}))
    assert order[2][0] == dilute  # then the cheapest
    for doc in stores.trajectories.query({}):
        traj = load_trajectory(doc["trajectory_id"], stores.trajectories, stores.data)
        assert doc["convergence"]["decision"] == "budget" and traj.n_frames == 13
        assert np.allclose(np.diff(traj.times_ps), 0.005)


def test_a_segment_is_decided_again_with_what_the_campaign_spent_since(stores, random_mace, monkeypatch):
    """A length decided while other systems were still to run is not run past the campaign's hours."""
    import dataclasses

    from electrodb.flows import segments
    from electrodb.flows.budget_policy import decide_again
    from electrodb.flows.campaign import prepare_campaign_run, run_system
    from electrodb.flows.segments import ConvergenceCheckMaker
    from electrodb.flows.system import ElectrolyteFlowMaker

    monkeypatch.setattr(segments, "judge_trajectory", _unknown_needs)
    run = prepare_campaign_run(_until_campaign(random_mace, max_ps=0.1), stores)
    spec = run.todo[0]
    first = dataclasses.replace(ElectrolyteFlowMaker(), check_maker=ConvergenceCheckMaker(continue_segments=False))
    assert run_system(spec, stores, first)[0] == "completed"
    assert decide_again(stores, spec) == pytest.approx(0.04)  # nothing spent elsewhere: as decided
    spent = spec.model_copy(update={"budget": Budget(segment_ps=0.02, total_core_hours=1e-9)})
    assert decide_again(stores, spent) is None  # the campaign's hours are gone now
    record = stores.trajectories.query_one({"trajectory_id": spec.system_id})["convergence"]
    assert record["decision"] == "budget" and "total_core_hours" in record["reason"]
