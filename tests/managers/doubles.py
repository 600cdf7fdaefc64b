"""Test doubles of the campaign makers, for runs in worker processes: :class:`FakeMaker` (one
:func:`fake_system` job per system, which dies like a killed worker where asked) and
:class:`KillingProductionMaker` (real production MD that SIGKILLs its worker once).

Worker processes (``campaign run --workers``, a jobflow-remote worker) unpickle these makers and jobs, so they
import this module by its name, ``tests.managers.doubles``: keep its top-level imports light.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from jobflow import Flow

from electrodb.flows.job_io import store_job
from electrodb.flows.md import ProductionMDMaker
from electrodb.flows.system import ElectrolyteFlowMaker
from electrodb.systems.campaign import SystemSpec


def claim(path: Path, content: str) -> bool:
    """Create ``path`` unless it exists (atomic): True for the one caller that created it."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(content)
    return True


@store_job
def fake_system(system_id: str, marker_dir: str, kill_once: str, always_die: str) -> str:
    """Stands in for a system's flow: dies like a killed worker where asked, else stores a completed run."""
    from electrodb.flows.job_io import job_stores

    if system_id == always_die or (system_id == kill_once and claim(Path(marker_dir) / "killed", system_id)):
        os.kill(os.getpid(), signal.SIGKILL)
    stores = job_stores("trajectories")
    env = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")}
    doc = {"trajectory_id": system_id, "status": "completed", "pid": os.getpid(), "env": env}
    stores.trajectories.update([doc], key="trajectory_id")
    return system_id


@dataclass
class FakeMaker(ElectrolyteFlowMaker):
    """One :func:`fake_system` job per system."""

    marker_dir: str = ""
    kill_once: str = ""
    always_die: str = ""

    def make(self, spec: SystemSpec) -> Flow:
        return Flow([fake_system(spec.system_id, self.marker_dir, self.kill_once, self.always_die)])


@dataclass
class KillingProductionMaker(ProductionMDMaker):
    """Production MD whose worker SIGKILLs itself once, at the first checkpoint at or after ``kill_at_step``
    (after the frames up to it were flushed, before the checkpoint is saved: the stored checkpoint is the
    previous one, and stored frames lie beyond it). ``marker`` records which system and step."""

    marker: str = ""
    kill_at_step: int = 0

    def run(self, stores, doc, *args, **kwargs):  # type: ignore[no-untyped-def]
        from electrodb.flows import md

        save = md.save_checkpoint

        def save_or_die(stores_, tid, state):  # type: ignore[no-untyped-def]
            if state.step >= self.kill_at_step:
                note = json.dumps({"system_id": tid, "step": state.step, "time": time.time()})
                if claim(Path(self.marker), note):
                    os.kill(os.getpid(), signal.SIGKILL)
            save(stores_, tid, state)

        md.save_checkpoint = save_or_die  # this worker process's own module
        try:
            return super().run(stores, doc, *args, **kwargs)
        finally:
            md.save_checkpoint = save
