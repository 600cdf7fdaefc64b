"""FireWorks without a server: routing by stage kind, idempotent chunked submission, and a tiny campaign run end to
end by two rocket-launcher processes in parallel (a CPU and a GPU worker) into the embedded store, then built.

FireWorks reads ``MONGOMOCK_SERVERSTORE_FILE`` when first imported, so every LaunchPad lives in a subprocess. That
file store (mongomock-persistence) loads the whole database when a client is created and writes it back when the
process exits: two ``rlaunch`` processes on one file never see each other's check-outs, so each runs every
Firework and the last to exit overwrites the other's record (seen here: 4 Fireworks, 8 runs, 4 launches kept).
The parallel test therefore serves one LaunchPad from a host process through FireWorks' own ``DataServer`` (what
``rlaunch multi`` uses), and each worker process runs FireWorks' ``rapidfire`` against it with its own ``FWorker``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from electrodb.systems.campaign import Campaign

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
LAUNCHPAD_YAML = {"host": "localhost", "port": 27017, "name": "electrodb_fw_test"}
MD = {
    "minimize_steps": 5,
    "nvt_warmup_ps": 0.005,
    "npt": False,
    "production_ps": 0.02,  # 40 steps, 21 frames: the builders' minimum is 20
    "sample_every_steps": 2,
    "checkpoint_every_steps": 20,
    "nve_drift_steps": 0,
    "stability": {"min_distance_h_A": 0.1, "min_distance_heavy_A": 0.5},  # the random model has no chemistry
}


def _env(tmp_path: Path, data_dir: Path | None = None) -> dict[str, str]:
    store = tmp_path / "launchpad.json"
    if not store.exists():
        store.write_text("{}")  # mongomock-persistence needs an existing file holding a JSON object
    env = {k: v for k, v in os.environ.items() if k not in ("ELECTRODB_DB_URI", "ELECTRODB_CONFIG", "FW_CONFIG_FILE")}
    env.update(
        MONGOMOCK_SERVERSTORE_FILE=str(store),
        ELECTRODB_DATA_DIR=str(data_dir or tmp_path / "data"),
        OMP_NUM_THREADS="1",
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    return env


def _python(script: str, tmp_path: Path, env: dict[str, str], timeout: float = 300) -> dict:
    """Run ``script`` in a fresh interpreter in ``tmp_path``; return the JSON object it prints last."""
    path = tmp_path / f"script-{abs(hash(script)) % 10**8}.py"
    path.write_text(textwrap.dedent(script))
    proc = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _campaign(model: str, **kw) -> Campaign:
    return Campaign(
        name="fw",
        salts=["NaCl", "LiCl"],
        concentrations=[1.0],
        size={"n_waters": 32},
        model=model,
        model_cutoff_A=4.0,
        md=MD,
        **kw,
    )


def test_workflow_routes_packing_to_cpu_workers_and_md_to_gpu_workers():
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    from electrodb.managers.fireworks import workflow_for
    from electrodb.managers.stages import SubmitOptions
    from electrodb.managers.submit import system_flows

    specs = _campaign("/models/absent.model").systems()
    flows = system_flows(specs, model_sha256="sha256:" + "ab" * 32)
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    options = SubmitOptions(cpu_worker="pack-node", gpu_worker="a100", extra={"submission_id": "s1"})
    workflow = workflow_for(flows, store, options, name="chunk")
    assert len(workflow.fws) == 6
    by_name = {fw.name: fw for fw in workflow.fws}
    for spec in specs:
        label = f"{spec.salt} {spec.molality:.2f} m {spec.temperature:.0f} K"
        box, eq, prod = (by_name[f"{stage} {label}"] for stage in ("box", "equilibrate", "production"))
        assert (box.spec["_category"], box.spec["_fworker"]) == ("cpu", "pack-node")
        for fw in (eq, prod):
            assert (fw.spec["_category"], fw.spec["_fworker"]) == ("gpu", "a100")
        for fw in (box, eq, prod):
            assert fw.spec["electrodb_system_id"] == spec.system_id
            assert fw.spec["electrodb_model_sha256"] == "sha256:" + "ab" * 32
            assert fw.spec["electrodb_submission"] == "s1"
        links = workflow.links
        assert links[box.fw_id] == [eq.fw_id] and links[eq.fw_id] == [prod.fw_id]
    assert workflow.fws[0].tasks[0]["store"] is store
    # the device is chosen on the worker ("auto": the first GPU CUDA_VISIBLE_DEVICES leaves visible), never here
    assert "cuda" not in json.dumps(workflow.to_dict(), default=str)


def test_system_state_is_its_least_advanced_firework():
    from electrodb.managers.fireworks import aggregate_state

    assert aggregate_state(["COMPLETED", "COMPLETED", "COMPLETED"]) == "COMPLETED"
    assert aggregate_state(["COMPLETED", "RUNNING", "WAITING"]) == "RUNNING"
    assert aggregate_state(["COMPLETED", "READY", "WAITING"]) == "READY"
    assert aggregate_state(["COMPLETED", "FIZZLED", "WAITING"]) == "FIZZLED"
    assert aggregate_state([]) == "ABSENT"


RESUBMIT_SCRIPT = """
import json
from fireworks import LaunchPad
from electrodb.systems.campaign import Campaign
from electrodb.managers.fireworks import FireWorksBackend
from electrodb.managers.stages import SubmitOptions
from electrodb.managers.submit import system_flows
from jobflow import JobStore
from maggma.stores import MemoryStore

lp = LaunchPad.from_file("launchpad.yaml")
lp.reset("", require_password=False)
backend = FireWorksBackend(lp)
specs = Campaign.model_validate(json.loads(open("campaign.json").read())).systems()
ids = [s.system_id for s in specs]
store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
opts = SubmitOptions(chunk_size=2, extra={"submission_id": "first"})
out = {"first": backend.submit(system_flows(specs), store, opts), "n_wf_first": lp.workflows.count_documents({})}
out["again"] = backend.submit(system_flows(specs), store, SubmitOptions(chunk_size=2, extra={"submission_id": "2"}))
out["states"] = backend.states(ids)
# the first system's box fizzles: a resubmission reruns it in place (no new workflow)
box = backend.fireworks_of(ids[0])[0]
lp.fireworks.update_one({"fw_id": box["fw_id"]}, {"$set": {"state": "FIZZLED"}})
out["fizzled"] = backend.states([ids[0]])[ids[0]]
out["rerun"] = backend.submit(system_flows(specs), store, SubmitOptions(chunk_size=2, extra={"submission_id": "3"}))
out["after_rerun"] = backend.states([ids[0]])[ids[0]]
# an archived workflow counts as absent: its systems are submitted anew
lp.archive_wf(backend.fireworks_of(ids[2])[0]["fw_id"])
out["archived"] = backend.states([ids[2]])
opts = SubmitOptions(chunk_size=2, extra={"submission_id": "4"})
out["after_archive"] = backend.submit(system_flows(specs), store, opts)
out["n_wf"] = lp.workflows.count_documents({})
out["latest"] = backend.states(ids)
print(json.dumps(out))
"""


def test_resubmission_skips_active_systems_reruns_fizzled_ones_in_place(tmp_path):
    campaign = _campaign("/models/absent.model", temperatures=[298.15, 320.0])  # 4 systems
    (tmp_path / "campaign.json").write_text(campaign.model_dump_json())
    (tmp_path / "launchpad.yaml").write_text(yaml.safe_dump(LAUNCHPAD_YAML))
    ids = [s.system_id for s in campaign.systems()]
    out = _python(RESUBMIT_SCRIPT, tmp_path, _env(tmp_path))
    assert out["first"] == ids and out["n_wf_first"] == 2  # 4 systems in chunks of 2
    assert out["again"] == []  # all READY / WAITING: nothing added twice
    assert set(out["states"].values()) == {"READY"}
    assert out["fizzled"] == "FIZZLED"
    assert out["rerun"] == [ids[0]] and out["after_rerun"] == "READY"
    assert out["archived"] == {}
    assert out["after_archive"] == ids[2:]  # the archived workflow held systems 3 and 4
    assert out["n_wf"] == 3 and set(out["latest"]) == set(ids)


#: Serves the host's LaunchPad ``lp`` to the workers, one call at a time (mongomock is not made for concurrent
#: writers), and defines ``start_workers(hold=None)``: a cpu-node and a gpu-node worker process (WORKER_SCRIPT)
#: that leave the Fireworks matching the query ``hold`` alone.
SERVE_LAUNCHPAD = """
import json, os, subprocess, sys, threading, time
from fireworks.fw_config import DS_PASSWORD
from fireworks.utilities.fw_utilities import DataServer

lock = threading.RLock()
class SerialLaunchPad:
    pass
def _serial(name):
    def call(self, *args, **kwargs):
        with lock:
            return getattr(lp, name)(*args, **kwargs)
    return call
for _name in dir(LaunchPad):
    if not _name.startswith("_") and callable(getattr(LaunchPad, _name)):
        setattr(SerialLaunchPad, _name, _serial(_name))
_shared = SerialLaunchPad()
DataServer.register("LaunchPad", callable=lambda: _shared)
server = DataServer(address=("127.0.0.1", 0), authkey=DS_PASSWORD).get_server()
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.address[1]

def start_workers(hold=None):
    workers = []
    for name, category in (("cpu-node", "cpu"), ("gpu-node", "gpu")):
        os.makedirs(name, exist_ok=True)
        log = open(os.path.join(name, "worker.log"), "a")
        cmd = [sys.executable, os.path.abspath("worker.py"), str(port), name, category, json.dumps(hold)]
        workers.append(subprocess.Popen(cmd, cwd=name, stdout=log, stderr=subprocess.STDOUT))
    return workers
"""

HOST_SCRIPT = (
    """
import json, os
from fireworks import LaunchPad
from electrodb.systems.campaign import Campaign
from electrodb.managers.fireworks import FireWorksBackend
from electrodb.managers.stages import SubmitOptions
from electrodb.managers.submit import submit_campaign
from electrodb.store.stores import get_stores

lp = LaunchPad.from_file("launchpad.yaml")
lp.reset("", require_password=False)
campaign = Campaign.from_yaml("spec.yaml")  # model_cutoff_A is the model's own: no need to load it here
options = SubmitOptions(cpu_worker="cpu-node", gpu_worker="gpu-node", chunk_size=1)
with get_stores() as stores:
    first = submit_campaign(campaign, stores, FireWorksBackend(lp), options, multi_node=False)
    again = submit_campaign(campaign, stores, FireWorksBackend(lp), options, multi_node=False)
os.remove(campaign.model)  # the workers must resolve the staged model by its sha256, not by this path
"""
    + SERVE_LAUNCHPAD
    + """
workers = start_workers()
codes = [p.wait(timeout=400) for p in workers]
with lock:
    fws = list(lp.fireworks.find({}, {"_id": 0, "fw_id": 1, "name": 1, "state": 1, "spec._category": 1,
                                      "spec._fworker": 1, "spec.electrodb_system_id": 1}))
    launches = list(lp.launches.find({}, {"_id": 0, "fw_id": 1, "state": 1, "fworker.name": 1, "host": 1,
                                          "time_start": 1, "time_end": 1}))
print(json.dumps({"first": first.submitted, "n_chunks": first.n_chunks, "sha": first.model_sha256,
                  "again": again.submitted, "again_in_engine": again.in_engine, "codes": codes,
                  "fireworks": fws, "launches": launches}, default=str))
"""
)

WORKER_SCRIPT = """
import json, sys, time
from fireworks import FWorker
from fireworks.core.rocket_launcher import rapidfire
from fireworks.fw_config import DS_PASSWORD
from fireworks.utilities.fw_utilities import DataServer

port, name, category, hold = int(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
DataServer.register("LaunchPad")
ds = DataServer(address=("127.0.0.1", port), authkey=DS_PASSWORD)
ds.connect()
lp = ds.LaunchPad()
worker = FWorker(name=name, category=category, query={"$nor": [hold]} if hold else None)
deadline = time.time() + 360
while time.time() < deadline:  # `rlaunch rapidfire` until no Firework can run any more (holding: until killed)
    rapidfire(lp, fworker=worker, nlaunches=0, sleep_time=1, strm_lvl="INFO")
    if not hold and not lp.get_fw_ids({"state": {"$in": ["READY", "RESERVED", "RUNNING"]}}):
        break
    time.sleep(0.5)
"""

AFTER_SCRIPT = """
import json
from typer.testing import CliRunner
from electrodb.cli.main import app

runner = CliRunner()
flags = ["--engine", "fireworks", "--launchpad", "launchpad.yaml", "--cpu-worker", "cpu-node",
         "--gpu-worker", "gpu-node", "--chunk-size", "1"]
out = {}
for key, args in (
    ("resubmit", ["campaign", "submit", "spec.yaml", *flags, "--single-node"]),
    ("refused", ["campaign", "submit", "spec.yaml", *flags]),
    ("status", ["campaign", "status", "spec.yaml", "--engine", "fireworks", "--launchpad", "launchpad.yaml"]),
    ("build", ["build"]),
):
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    out[key] = {"code": result.exit_code, "output": result.output}
print(json.dumps(out))
"""


def test_two_workers_run_a_campaign_in_parallel_on_the_mongomock_launchpad(tmp_path, random_mace, settings):
    """cpu-node packs, gpu-node runs MD, at the same time; every Firework runs once; the store gets properties."""
    model = tmp_path / "only-here.model"
    shutil.copyfile(random_mace, model)
    campaign = _campaign(str(model))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(campaign.model_dump(mode="json", exclude_defaults=True)))
    (tmp_path / "launchpad.yaml").write_text(yaml.safe_dump(LAUNCHPAD_YAML))
    (tmp_path / "worker.py").write_text(textwrap.dedent(WORKER_SCRIPT))
    env = _env(tmp_path, settings.data_dir)
    ids = [s.system_id for s in campaign.systems()]  # before the host removes the model file
    host = _python(HOST_SCRIPT, tmp_path, env, timeout=500)

    assert host["first"] == ids and host["n_chunks"] == 2  # --chunk-size 1: one Workflow per system
    assert host["sha"] and host["sha"].startswith("sha256:")
    assert host["again"] == [] and set(host["again_in_engine"]) == set(ids)  # queued: not added twice
    assert host["codes"] == [0, 0]
    assert not model.exists()  # removed after submission: the MD ran from the verified copy of the staged blob
    cached = list((settings.data_dir / "model-cache").iterdir())
    assert [p.name for p in cached] == [host["sha"].removeprefix("sha256:") + ".model"], cached
    shutil.copyfile(random_mace, model)  # the resubmission below reads the campaign's model again
    fws = host["fireworks"]
    assert len(fws) == 6 and {fw["state"] for fw in fws} == {"COMPLETED"}, fws
    launches = host["launches"]
    assert sorted(lc["fw_id"] for lc in launches) == sorted(fw["fw_id"] for fw in fws)  # each ran exactly once
    worker_of = {lc["fw_id"]: lc["fworker"]["name"] for lc in launches}
    for fw in fws:
        stage = fw["name"].split()[0]
        expected = ("cpu", "cpu-node") if stage == "box" else ("gpu", "gpu-node")
        assert (fw["spec"]["_category"], fw["spec"]["_fworker"]) == expected
        assert worker_of[fw["fw_id"]] == expected[1]  # ran on the worker it was routed to

    after = _python(AFTER_SCRIPT, tmp_path, env)
    assert after["resubmit"]["code"] == 0, after["resubmit"]["output"]
    assert "submitted 0 of 2 systems" in after["resubmit"]["output"]
    assert "skipped 2 completed" in after["resubmit"]["output"]
    assert after["refused"]["code"] == 2 and "ELECTRODB_DB_URI" in after["refused"]["output"]
    status = after["status"]["output"]
    assert after["status"]["code"] == 0 and "completed 2" in status and status.count("COMPLETED") == 2, status
    assert after["build"]["code"] == 0, after["build"]["output"]

    from electrodb.store.stores import get_stores

    with get_stores(settings) as stores:
        docs = list(stores.trajectories.query({"trajectory_id": {"$in": ids}}, properties=["status", "n_frames"]))
        assert [d["status"] for d in docs] == ["completed"] * 2 and all(d["n_frames"] == 21 for d in docs)
        assert stores.structure.count({"trajectory_id": {"$in": ids}}) == 2
        assert stores.transport.count({"trajectory_id": {"$in": ids}}) == 2
        assert stores.electrolytes.count() == 2


SEGMENTS_HOST_SCRIPT = (
    """
import json, os
import numpy as np
from fireworks import LaunchPad
from electrodb.systems.campaign import Campaign
from electrodb.managers.fireworks import FireWorksBackend
from electrodb.managers.stages import SubmitOptions
from electrodb.managers.submit import campaign_states, submit_campaign
from electrodb.store.frames import load_trajectory
from electrodb.store.stores import get_stores

lp = LaunchPad.from_file("launchpad.yaml")
lp.reset("", require_password=False)
campaign = Campaign.from_yaml("spec.yaml")
ids = [s.system_id for s in campaign.systems()]
options = SubmitOptions(cpu_worker="cpu-node", gpu_worker="gpu-node", chunk_size=1)
with get_stores() as stores:
    submitted = submit_campaign(campaign, stores, FireWorksBackend(lp), options, multi_node=False).submitted
"""
    + SERVE_LAUNCHPAD
    + """
def fireworks():
    with lock:
        return list(lp.fireworks.find({}, {"_id": 0, "fw_id": 1, "name": 1, "state": 1, "spec._category": 1,
                                           "spec._fworker": 1, "spec.electrodb_system_id": 1,
                                           "spec.electrodb_submission": 1, "spec.fw_id": 1}))

def trajectories(tag):
    out = {}
    with get_stores() as stores:
        for tid in ids:
            doc = stores.trajectories.query_one({"trajectory_id": tid}, properties=["n_frames", "convergence"])
            traj = load_trajectory(tid, stores.trajectories, stores.data)
            np.save(f"{tag}-{tid}-positions.npy", traj.positions)
            np.save(f"{tag}-{tid}-times.npy", traj.times_ps)
            out[tid] = {"n_frames": doc["n_frames"], "convergence": doc["convergence"]}
    return out

# the first segments, then both workers are killed once every first check has queued the next segment
workers = start_workers(hold={"name": {"$regex": "^production .* segment [2-9]"}})
deadline = time.time() + 300
while time.time() < deadline and all(p.poll() is None for p in workers):
    now = fireworks()
    checks = [f for f in now if f["name"].startswith("convergence check") and f["name"].endswith("segment 1")]
    busy = [f for f in now if f["state"] in ("RESERVED", "RUNNING")]
    if len(checks) == len(ids) and all(f["state"] == "COMPLETED" for f in checks) and not busy:
        break
    time.sleep(0.5)
alive = [p.poll() is None for p in workers]
for p in workers:
    p.kill()
    p.wait()
between = {"alive": alive, "fireworks": fireworks(), "trajectories": trajectories("between")}

# restarted workers finish the campaign
workers = start_workers()
codes = [p.wait(timeout=400) for p in workers]
with lock:
    launches = list(lp.launches.find({}, {"_id": 0, "fw_id": 1, "state": 1, "fworker.name": 1}))
with get_stores() as stores:
    states = [
        {"status": s.status, "engine_state": s.engine_state, "production_ps": s.production_ps,
         "convergence": s.convergence}
        for s in campaign_states(campaign.systems(), stores, FireWorksBackend(lp))
    ]
    again = submit_campaign(campaign, stores, FireWorksBackend(lp), options, multi_node=False)
print(json.dumps({"submitted": submitted, "between": between, "codes": codes, "fireworks": fireworks(),
                  "launches": launches, "trajectories": trajectories("final"), "states": states,
                  "again": {"submitted": again.submitted, "completed": again.completed}}, default=str))
"""
)


def test_segments_run_on_the_gpu_worker_and_checks_on_the_cpu_worker_across_a_kill(tmp_path, random_mace, settings):
    """A campaign with until on the mongomock LaunchPad with two workers: every segment a check adds is a Firework
    routed like the first production (gpu, gpu-node) and every check like the first (cpu, cpu-node), of the same
    system and submission; both workers are SIGKILLed between segments 1 and 2 and restarted: every system ends
    with three segments of continuous frames, the convergence record on its trajectory and campaign_states saying
    so."""
    import numpy as np

    from tests.campaigns import THREE_SEGMENTS

    campaign = _campaign(str(random_mace), **THREE_SEGMENTS)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(campaign.model_dump(mode="json", exclude_defaults=True)))
    (tmp_path / "launchpad.yaml").write_text(yaml.safe_dump(LAUNCHPAD_YAML))
    (tmp_path / "worker.py").write_text(textwrap.dedent(WORKER_SCRIPT))
    ids = [s.system_id for s in campaign.systems()]
    out = _python(SEGMENTS_HOST_SCRIPT, tmp_path, _env(tmp_path, settings.data_dir), timeout=580)
    assert out["submitted"] == ids

    between = out["between"]
    assert between["alive"] == [True, True]  # killed, not exited
    queued = [f for f in between["fireworks"] if f["state"] != "COMPLETED"]
    assert len(queued) == 2 * len(ids)  # the next production (READY) and check (WAITING) of every system
    for fw in queued:
        production = fw["name"].startswith("production")
        assert fw["name"].endswith("segment 2") and fw["state"] == ("READY" if production else "WAITING"), fw
        assert (fw["spec"]["_category"], fw["spec"]["_fworker"]) == (
            ("gpu", "gpu-node") if production else ("cpu", "cpu-node")
        ), fw
    for record in between["trajectories"].values():
        assert record["n_frames"] == 6 and record["convergence"]["decision"] == "continue"  # 0.005 ps

    fws = out["fireworks"]
    assert out["codes"] == [0, 0]
    assert len(fws) == 8 * len(ids) and {f["state"] for f in fws} == {"COMPLETED"}, fws
    launches = out["launches"]
    assert sorted(lc["fw_id"] for lc in launches) == sorted(f["fw_id"] for f in fws)  # each ran exactly once
    worker_of = {lc["fw_id"]: lc["fworker"]["name"] for lc in launches}
    submission = {
        f["spec"]["electrodb_system_id"]: f["spec"]["electrodb_submission"] for f in fws if f["name"].startswith("box")
    }
    for fw in fws:
        stage = fw["name"].split()[0]
        expected = ("cpu", "cpu-node") if stage in ("box", "convergence") else ("gpu", "gpu-node")
        assert (fw["spec"]["_category"], fw["spec"]["_fworker"]) == expected, fw
        assert worker_of[fw["fw_id"]] == expected[1], fw  # ran on the worker it was routed to
        assert fw["spec"]["electrodb_submission"] == submission[fw["spec"]["electrodb_system_id"]]
        assert "fw_id" not in fw["spec"]  # the running check's Firework id is not copied into what it adds
    for sid in ids:
        names = sorted(f["name"].split(" K ")[-1] for f in fws if f["spec"]["electrodb_system_id"] == sid)
        assert names.count("segment 2") == names.count("segment 3") == 2, names  # a production and a check

        final = out["trajectories"][sid]
        assert final["n_frames"] == 21  # 0.02 ps, a frame every fs
        times = np.load(tmp_path / f"final-{sid}-times.npy")
        positions = np.load(tmp_path / f"final-{sid}-positions.npy")
        assert len(times) == 21 and np.allclose(np.diff(times), 0.001)  # no gap, no duplicate
        assert np.linalg.norm(np.diff(positions, axis=0), axis=2).max() < 1.0
        before = np.load(tmp_path / f"between-{sid}-positions.npy")
        assert np.array_equal(positions[: len(before)], before)  # continued across the kill, not restarted
        record = final["convergence"]
        assert record["segment"] == 3 and record["decision"] != "continue" and record["production_ps"] == 0.02
        assert "r_cation_O" in record["properties"] and record["until"] == ["r_cation_O"]
    for state in out["states"]:
        assert (state["status"], state["engine_state"]) == ("completed", "COMPLETED")
        assert state["production_ps"] == pytest.approx(0.02) and state["convergence"]["segment"] == 3
    assert out["again"] == {"submitted": [], "completed": ids}  # stopped: submitting again adds nothing
