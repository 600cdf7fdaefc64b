"""Distributed runs go through FireWorks: a campaign flow converts to a workflow and lands on a LaunchPad."""

from __future__ import annotations

import json

from electrodb.campaign import Campaign


def test_campaign_flow_converts_to_fireworks_workflow(stores, tmp_path, monkeypatch):
    # FireWorks reads MONGOMOCK_SERVERSTORE_FILE when it is first imported: a server-less, file-backed LaunchPad
    store_file = tmp_path / "launchpad.json"
    store_file.write_text(json.dumps({}))
    monkeypatch.setenv("MONGOMOCK_SERVERSTORE_FILE", str(store_file))
    import fireworks  # noqa: F401  (installed by make: the [fireworks] extra)
    import mongomock  # noqa: F401
    from fireworks import LaunchPad
    from jobflow.managers.fireworks import flow_to_workflow

    from electrodb.flows.campaign import campaign_flow, pending_systems

    campaign = Campaign(
        name="fw",
        salts=["NaCl", "LiCl"],
        concentrations=[1.0],
        size={"n_waters": 64},
        model="/models/any.model",
        model_cutoff_A=4.0,
    )
    todo, done = pending_systems(campaign.systems(), stores)
    assert len(todo) == 2 and not done
    workflow = flow_to_workflow(campaign_flow(todo, name=campaign.name), store=stores.job_store())
    assert len(workflow.fws) == 2 * 3  # box, equilibration, production per system
    launchpad = LaunchPad(name="fireworks_test")
    launchpad.reset("", require_password=False)
    launchpad.add_wf(workflow)
    assert len(launchpad.get_fw_ids()) == 6
