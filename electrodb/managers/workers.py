"""``electrodb campaign run --workers k``: k systems at once on one node, one device each, no server.

The parent process keeps the queue of pending systems (:func:`electrodb.flows.campaign.prepare_campaign_run`) and
starts k worker processes (multiprocessing ``spawn``). Worker i gets its device in its environment before torch is
imported in it (:func:`~electrodb.managers.devices.plan_devices`): ``CUDA_VISIBLE_DEVICES`` = the i-th visible GPU,
and ``max(1, cores // k)`` CPU threads. Each worker runs one system at a time exactly as the sequential path does
(:func:`electrodb.flows.campaign.run_system`) and writes straight into the database: the embedded SQLite store is
safe with several writer processes (:mod:`electrodb.store.sqlite`), and so is MongoDB.

Each worker (:mod:`electrodb.managers.worker_process`) talks to the parent over its own pipe, so a dying worker can
break nothing but that pipe. It reports ``ready``, progress ``line`` and ``done`` messages; the parent turns them
into :class:`WorkerEvent` objects (one start and one finish line per system). When a worker dies (killed, out of
memory), the parent records how (``CampaignRunSummary.worker_deaths``), puts its system first in the queue and
starts a fresh worker on the same device; whichever worker takes the system next resumes it from what is stored
(box, equilibrated state, production checkpoint), with no frame lost or duplicated. A system whose worker died
``max_deaths`` times is recorded as failed. Workers leave when the parent does (Ctrl-C, or the parent killed).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Literal

from maggma.stores import GridFSStore, MemoryStore, MongoStore

from electrodb.flows.campaign import (
    CampaignRunSummary,
    mark_failed,
    prepare_campaign_run,
    record_outcome,
    run_solvation,
)
from electrodb.flows.system import ElectrolyteFlowMaker
from electrodb.managers.devices import WorkerDevice, plan_devices
from electrodb.managers.worker_process import builtin_filters, environ, settings_env, worker_main
from electrodb.settings import ElectroDBSettings
from electrodb.store.sqlite import SQLiteStore
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.campaign import Campaign, SystemSpec

__all__ = [
    "WorkerError",
    "WorkerEvent",
    "run_campaign_workers",
]

EventKind = Literal["start", "line", "finish", "died"]
#: Consecutive times a worker may die before it reports ``ready`` until the run gives up.
MAX_START_FAILURES = 3


class WorkerError(RuntimeError):
    """Workers cannot run this campaign (stores or maker other processes cannot get), or keep dying before they
    run anything."""


@dataclass(frozen=True)
class WorkerEvent:
    """Something a worker did, for progress displays.

    Attributes
    ----------
    kind
        ``start`` (a system was handed to a worker), ``line`` (an MD progress line), ``finish`` (a system's outcome)
        or ``died`` (a worker process ended while running a system).
    worker
        Worker number, from 0.
    device
        The worker's device (:attr:`WorkerDevice.name`).
    pid
        The worker's process id (None before it reported ready).
    system
        The system concerned.
    text
        The MD line (``line``), the outcome and reason (``finish``), or how the worker died (``died``).
    position
        The system's place among the systems to run, from 1.
    started, finished, total
        Systems handed out so far (reruns included), systems finished so far, systems to run in all.
    """

    kind: EventKind
    worker: int
    device: str
    pid: int | None
    system: SystemSpec | None
    text: str = ""
    position: int = 0
    started: int = 0
    finished: int = 0
    total: int = 0

    @property
    def label(self) -> str:
        s = self.system
        return f"{s.salt} {s.molality:.2f} m {s.temperature:.0f} K" if s else ""

    @property
    def message(self) -> str:
        """One plain line saying what happened (what ``campaign run --workers`` prints)."""
        who = f"worker {self.worker + 1} ({self.device}{f', pid {self.pid}' if self.pid else ''})"
        sid = self.system.system_id[:10] if self.system else ""
        if self.kind == "start":
            return f"{who}: system {self.position}/{self.total} {sid} {self.label}: {self.text or 'started'}"
        if self.kind == "finish":
            return f"{who}: system {sid} {self.label}: {self.text} ({self.finished}/{self.total} done)"
        if self.kind == "died":
            return f"{who}: died running system {sid} {self.label}: {self.text}"
        return f"{who}: {self.text}"


def _check_shareable(stores: ElectroDBStores) -> None:
    """Workers open the database of ``stores.settings`` themselves: refuse stores other processes cannot open."""

    def shareable(store: object) -> bool:  # maggma's MemoryStore (and MontyStore) subclass MongoStore
        return isinstance(store, SQLiteStore | MongoStore | GridFSStore) and not isinstance(store, MemoryStore)

    odd = [n for n in stores.names if not shareable(stores[n])]
    if odd:
        kinds = sorted({type(stores[n]).__name__ for n in odd})
        raise WorkerError(
            f"worker processes cannot open the stores {odd} ({', '.join(kinds)}): run with workers=1, or use the "
            "embedded database or MongoDB (ElectroDBSettings / ELECTRODB_DB_URI)"
        )


@dataclass
class _Slot:
    """One worker position: a device, and the process currently serving it."""

    device: WorkerDevice
    process: Any = None
    conn: Connection | None = None
    pid: int | None = None
    ready: bool = False
    spec: SystemSpec | None = None
    since: float = 0.0
    crash: str = ""
    start_failures: int = 0


@dataclass
class _Pool:
    """The parent's side: slots, the queue, the summary."""

    devices: list[WorkerDevice]
    settings: ElectroDBSettings
    maker: ElectrolyteFlowMaker
    stores: ElectroDBStores
    summary: CampaignRunSummary
    on_event: Callable[[WorkerEvent], None] | None
    max_deaths: int
    slots: list[_Slot] = field(default_factory=list)
    queue: deque[SystemSpec] = field(default_factory=deque)
    deaths: dict[str, int] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    n_started: int = 0
    n_finished: int = 0
    total: int = 0

    def run(self, todo: list[SystemSpec]) -> None:
        self.queue.extend(todo)
        self.total = len(todo)
        self.positions = {spec.system_id: k + 1 for k, spec in enumerate(todo)}
        self.slots = [_Slot(d) for d in self.devices]
        context = multiprocessing.get_context("spawn")
        blob = _pickled(self.maker)
        clean = False
        try:
            while self.queue or any(s.spec is not None for s in self.slots):
                self._fill(context, blob)
                waitables = {}
                for slot in self.slots:
                    if slot.process is not None:
                        waitables[slot.conn] = (slot, slot.process)
                        waitables[slot.process.sentinel] = (slot, slot.process)
                for ready in wait(list(waitables)):
                    slot, process = waitables[ready]
                    if slot.process is not process:
                        continue  # already reaped in this round
                    if ready is slot.conn:
                        self._receive(slot)
                    else:
                        self._reap(slot)
            clean = True
        finally:
            self._stop(clean)

    def _fill(self, context: Any, blob: bytes) -> None:
        """Start workers where systems wait for one; hand each ready idle worker the next system."""
        for slot in self.slots:
            if slot.ready and slot.spec is None and self.queue:
                self._assign(slot, self.queue.popleft())
        waiting = len(self.queue) - sum(1 for s in self.slots if s.process is not None and not s.ready)
        for slot in self.slots:
            if slot.process is None and waiting > 0:
                self._start(slot, context, blob)
                waiting -= 1

    def _start(self, slot: _Slot, context: Any, blob: bytes) -> None:
        parent_conn, child_conn = context.Pipe()
        process = context.Process(
            target=worker_main,
            args=(child_conn, os.getpid(), blob, builtin_filters()),
            name=f"electrodb-worker-{slot.device.index + 1}",
            daemon=False,  # a daemonic process may not start processes of its own; _stop ends workers instead
        )
        with environ({**settings_env(self.settings), **slot.device.env}):
            process.start()  # the spawned interpreter inherits this environment before it imports anything
        child_conn.close()
        slot.process, slot.conn, slot.ready, slot.pid, slot.crash = process, parent_conn, False, None, ""

    def _assign(self, slot: _Slot, spec: SystemSpec) -> None:
        assert slot.conn is not None
        self.n_started += 1
        resumed = spec.system_id in self.deaths
        slot.spec, slot.since = spec, time.monotonic()
        self._emit("start", slot, "resumed after its worker died" if resumed else "started")
        try:
            slot.conn.send(("run", spec.model_dump(mode="json")))
        except OSError:
            self._reap(slot)

    def _receive(self, slot: _Slot) -> None:
        assert slot.conn is not None
        try:
            message = slot.conn.recv()
        except (EOFError, OSError):
            self._reap(slot)
            return
        self._handle(slot, message)

    def _handle(self, slot: _Slot, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            slot.ready, slot.pid, slot.start_failures = True, int(message[1]), 0
        elif kind == "crash":
            slot.crash = str(message[1])
        elif kind == "line" and slot.spec is not None:
            self._emit("line", slot, str(message[2]))
        elif kind == "done" and slot.spec is not None and message[1] == slot.spec.system_id:
            _, sid, status, reason = message
            record_outcome(self.summary, sid, status, reason)
            self.n_finished += 1
            took = time.monotonic() - slot.since
            self._emit("finish", slot, f"{status} in {took:.0f} s" + (f": {reason}" if reason else ""))
            slot.spec = None

    def _reap(self, slot: _Slot) -> None:
        """The worker's pipe closed or its process ended: read what it still sent, then see what it leaves."""
        assert slot.conn is not None and slot.process is not None
        try:
            while slot.conn.poll():
                self._handle(slot, slot.conn.recv())
        except (EOFError, OSError):
            pass
        slot.process.join(timeout=30)
        if slot.process.is_alive():  # the pipe broke but the process hangs on: it cannot be reached any more
            slot.process.kill()
            slot.process.join()
        how = _how_it_ended(slot.process.exitcode)
        slot.conn.close()
        was_ready, spec = slot.ready, slot.spec
        slot.process, slot.conn, slot.ready, slot.spec = None, None, False, None
        if spec is not None:
            self._died(slot, spec, how)
        elif not was_ready:
            slot.start_failures += 1
            if slot.start_failures >= MAX_START_FAILURES:
                detail = slot.crash.strip().splitlines()[-1] if slot.crash.strip() else "no error was reported"
                raise WorkerError(
                    f"worker {slot.device.index + 1} ({slot.device.name}) {how} {slot.start_failures} times before "
                    f"running anything: {detail}"
                )

    def _died(self, slot: _Slot, spec: SystemSpec, how: str) -> None:
        sid = spec.system_id
        self.deaths[sid] = self.deaths.get(sid, 0) + 1
        took = time.monotonic() - slot.since
        what = f"worker {slot.device.index + 1} ({slot.device.name}, pid {slot.pid}) {how} after {took:.0f} s"
        self.summary.worker_deaths.setdefault(sid, []).append(what)
        if self.deaths[sid] >= self.max_deaths:
            reason = f"its worker died {self.deaths[sid]} times (last: {what}); rerun to resume it"
            self._emit("died", slot, f"{how}; {reason}", spec)
            record_outcome(self.summary, sid, "failed", reason)
            mark_failed(self.stores, sid, reason)
            self.n_finished += 1
            return
        self._emit("died", slot, f"{how}; re-queued first, it resumes from its checkpoint", spec)
        self.queue.appendleft(spec)

    def _emit(self, kind: EventKind, slot: _Slot, text: str, spec: SystemSpec | None = None) -> None:
        if self.on_event is None:
            return
        spec = spec or slot.spec
        self.on_event(
            WorkerEvent(
                kind,
                slot.device.index,
                slot.device.name,
                slot.pid,
                spec,
                text,
                self.positions.get(spec.system_id, 0) if spec else 0,
                self.n_started,
                self.n_finished,
                self.total,
            )
        )

    def _stop(self, clean: bool) -> None:
        """Ask idle workers to leave (or, after an error or Ctrl-C, end them: what they stored stays resumable)."""
        live = [s for s in self.slots if s.process is not None]
        for slot in live:
            if clean and slot.conn is not None:
                try:
                    slot.conn.send(("stop",))
                except OSError:
                    pass
            else:
                slot.process.terminate()
        for slot in live:
            slot.process.join(timeout=30)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            if slot.conn is not None:
                slot.conn.close()
            slot.process = slot.conn = None


def _pickled(maker: ElectrolyteFlowMaker) -> bytes:
    try:
        return pickle.dumps(maker)
    except Exception as exc:
        raise WorkerError(
            f"the flow maker {type(maker).__name__} cannot be sent to worker processes ({exc}); give it "
            "module-level classes and plain settings only, or run with workers=1"
        ) from exc


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exited with code {exitcode}"


def run_campaign_workers(
    campaign: Campaign,
    stores: ElectroDBStores,
    workers: int,
    model_id: str | None = None,
    maker: ElectrolyteFlowMaker | None = None,
    on_event: Callable[[WorkerEvent], None] | None = None,
    max_deaths: int = 3,
    devices: list[WorkerDevice] | None = None,
) -> CampaignRunSummary:
    """Run every pending system of ``campaign`` in ``workers`` processes at once, one device each.

    Same outcome as :func:`electrodb.flows.campaign.run_campaign` (the summary lists systems in the campaign's
    order), plus ``worker_deaths``. Solvation TI, when asked for, runs afterwards in this process.

    Parameters
    ----------
    campaign, stores, model_id, maker
        As for :func:`~electrodb.flows.campaign.run_campaign`; ``maker`` must pickle (it travels to the workers).
    workers
        Systems run at once (never more worker processes than pending systems).
    on_event
        Called in this process for every :class:`WorkerEvent`.
    max_deaths
        A system whose worker died this many times is recorded as failed (rerunning resumes it).
    devices
        The devices to use (default :func:`plan_devices` for ``workers``).

    Raises
    ------
    ValueError
        Bad ``workers`` for the visible GPUs.
    WorkerError
        Stores other processes cannot open, a maker that does not pickle, or a worker that keeps dying before it
        runs anything (its error is in the message).
    """
    devices = devices or plan_devices(workers)
    if len(devices) < workers:
        raise ValueError(f"{workers} workers need {workers} devices, {len(devices)} were given")
    _check_shareable(stores)
    _pickled(maker or ElectrolyteFlowMaker())  # fail before anything is recorded
    run = prepare_campaign_run(campaign, stores, model_id)
    if run.todo:
        pool = _Pool(
            devices[: min(workers, len(run.todo))],
            stores.settings,
            maker or ElectrolyteFlowMaker(),
            stores,
            run.summary,
            on_event,
            max_deaths,
        )
        pool.run(run.todo)
    order = {spec.system_id: i for i, spec in enumerate(run.todo)}
    for ids in (run.summary.completed, run.summary.unstable, run.summary.failed):
        ids.sort(key=order.__getitem__)
    if run.campaign.solvation:
        run.summary.solvation = run_solvation(run.campaign, stores, run.model_id)
    return run.summary
