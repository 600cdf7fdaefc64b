"""``electrodb campaign run --workers k``: k systems at once on one node, one device each, no server.

The parent process keeps the queue of pending systems (:func:`electrodb.flows.campaign.prepare_campaign_run`) and
starts k worker processes (multiprocessing ``spawn``). Worker i gets its device in its environment before torch is
imported in it (:func:`plan_devices`): ``CUDA_VISIBLE_DEVICES`` = the i-th visible GPU, and ``max(1, cores // k)``
CPU threads. Each worker runs one system at a time exactly as the sequential path does
(:func:`electrodb.flows.campaign.run_system`) and writes straight into the database: the embedded SQLite store is
safe with several writer processes (:mod:`electrodb.store.sqlite`), and so is MongoDB.

Each worker talks to the parent over its own pipe, so a dying worker can break nothing but that pipe. It reports
``ready``, progress ``line`` and ``done`` messages; the parent turns them into :class:`WorkerEvent` objects (one
start and one finish line per system). When a worker dies (killed, out of memory), the parent records how
(``CampaignRunSummary.worker_deaths``), puts its system first in the queue and starts a fresh worker on the same
device; whichever worker takes the system next resumes it from what is stored (box, equilibrated state, production
checkpoint), with no frame lost or duplicated. A system whose worker died ``max_deaths`` times is recorded as
failed. Workers leave when the parent does (Ctrl-C, or the parent killed).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Literal

from electrodb.flows.campaign import (
    CampaignRunSummary,
    mark_failed,
    prepare_campaign_run,
    record_outcome,
    run_solvation,
)
from electrodb.flows.md import ElectrolyteFlowMaker
from electrodb.settings import ElectroDBSettings
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.campaign import Campaign, SystemSpec

__all__ = ["WorkerDevice", "WorkerError", "WorkerEvent", "plan_devices", "run_campaign_workers", "visible_gpus"]

EventKind = Literal["start", "line", "finish", "died"]
#: Consecutive times a worker may die before it reports ``ready`` until the run gives up.
MAX_START_FAILURES = 3


class WorkerError(RuntimeError):
    """Workers cannot run this campaign (stores or maker other processes cannot get), or keep dying before they
    run anything."""


@dataclass(frozen=True)
class WorkerDevice:
    """The device of one worker.

    Attributes
    ----------
    index
        Worker number, from 0.
    name
        What the device is, for people (``GPU 3``, ``CPU, 2 threads``).
    env
        Environment variables set in the worker before it imports anything (``CUDA_VISIBLE_DEVICES``, thread
        counts).
    """

    index: int
    name: str
    env: dict[str, str]


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


def visible_gpus() -> list[str]:
    """The GPUs this process may use: the entries of ``CUDA_VISIBLE_DEVICES`` when it is set (CUDA stops at the
    first negative one; empty means none), else the devices torch counts."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        out: list[str] = []
        for entry in (v.strip() for v in visible.split(",")):
            if not entry or entry.startswith("-"):
                break
            out.append(entry)
        return out
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_devices(workers: int, gpus: list[str] | None = None, cores: int | None = None) -> list[WorkerDevice]:
    """One device per worker: the i-th visible GPU, or the CPU; ``max(1, cores // workers)`` threads each, never
    more than ``OMP_NUM_THREADS`` of this process when that is set (the user's limit for one process).

    Parameters
    ----------
    workers
        Number of worker processes (systems run at once).
    gpus
        GPU ids to hand out (default :func:`visible_gpus`); with none, every worker runs on the CPU.
    cores
        CPU cores to share (default: those this process may run on).

    Raises
    ------
    ValueError
        When ``workers`` is below 1, or there are GPUs but fewer than ``workers``.
    """
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    gpus = visible_gpus() if gpus is None else list(gpus)
    threads = max(1, (cores or _cores()) // workers)
    limit = os.environ.get("OMP_NUM_THREADS", "")
    if limit.isdigit() and int(limit) > 0:
        threads = min(threads, int(limit))
    thread_env = {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    plural = "s" if threads > 1 else ""
    if not gpus:
        return [
            WorkerDevice(i, f"CPU, {threads} thread{plural}", {**thread_env, "CUDA_VISIBLE_DEVICES": ""})
            for i in range(workers)
        ]
    if workers > len(gpus):
        raise ValueError(
            f"--workers {workers} needs one GPU per worker, but {len(gpus)} are visible "
            f"(CUDA_VISIBLE_DEVICES={','.join(gpus)}); use --workers {len(gpus)} or fewer, "
            "or CUDA_VISIBLE_DEVICES='' to run every worker on the CPU"
        )
    return [WorkerDevice(i, f"GPU {gpus[i]}", {**thread_env, "CUDA_VISIBLE_DEVICES": gpus[i]}) for i in range(workers)]


def _settings_env(settings: ElectroDBSettings) -> dict[str, str | None]:
    """``ELECTRODB_*`` variables that make a worker's process-wide settings exactly ``settings`` (None: unset)."""
    env: dict[str, str | None] = {"ELECTRODB_CONFIG": None}  # every field is given below
    for name, value in settings.model_dump(mode="json").items():
        key = f"ELECTRODB_{name.upper()}"
        env[key] = None if value is None else value if isinstance(value, str) else json.dumps(value)
    return env


def _check_shareable(stores: ElectroDBStores) -> None:
    """Workers open the database of ``stores.settings`` themselves: refuse stores other processes cannot open."""
    from maggma.stores import GridFSStore, MemoryStore, MongoStore

    from electrodb.store.sqlite import SQLiteStore

    def shareable(store: object) -> bool:  # maggma's MemoryStore (and MontyStore) subclass MongoStore
        return isinstance(store, SQLiteStore | MongoStore | GridFSStore) and not isinstance(store, MemoryStore)

    odd = [n for n in stores.names if not shareable(stores[n])]
    if odd:
        kinds = sorted({type(stores[n]).__name__ for n in odd})
        raise WorkerError(
            f"worker processes cannot open the stores {odd} ({', '.join(kinds)}): run with workers=1, or use the "
            "embedded database or MongoDB (ElectroDBSettings / ELECTRODB_DB_URI)"
        )


@contextmanager
def _environ(changes: dict[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``changes`` applied (a spawned child inherits it), restored afterwards."""
    old = {k: os.environ.get(k) for k in changes}
    try:
        for key, value in changes.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _builtin_filters() -> list[Any]:
    """The warning filters of this process whose category is a builtin warning (they unpickle anywhere)."""
    return [f for f in warnings.filters if getattr(f[2], "__module__", "") == "builtins"]


def _exit_with(parent_pid: int) -> None:
    """Leave as soon as the parent is gone (a worker must not keep writing for a run nobody watches)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(3)


def _worker_main(conn: Connection, parent_pid: int, maker_blob: bytes, filters: list[Any]) -> None:
    """A worker: run the systems the parent sends, one at a time, until told to stop or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_exit_with, args=(parent_pid,), daemon=True).start()
    warnings.filters[:] = filters  # the parent's (the CLI silences known, harmless dependency warnings)
    try:  # torch, imported by the first job, reads its device and thread count from the environment set here
        from electrodb.flows import md as md_flows
        from electrodb.flows.campaign import run_system
        from electrodb.store.stores import get_stores

        maker = pickle.loads(maker_blob)
        stores = get_stores().connect()  # the settings of the parent's stores (``_settings_env``)
        job_store = stores.job_store()
    except BaseException:
        conn.send(("crash", traceback.format_exc()))
        raise SystemExit(1) from None
    current: list[str | None] = [None]

    def hook(line: str) -> None:
        try:
            conn.send(("line", current[0], line))
        except OSError:  # the parent is gone
            os._exit(3)

    md_flows.set_progress_hook(hook)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            break
        if message[0] != "run":
            break
        spec = SystemSpec.model_validate(message[1])
        current[0] = spec.system_id
        try:
            status, reason = run_system(spec, stores, maker, job_store)
        except Exception as exc:  # the store or the flow itself broke, not a job: still this system's failure
            status, reason = "failed", f"{type(exc).__name__}: {exc}"
            mark_failed(stores, spec.system_id, reason)
        conn.send(("done", spec.system_id, status, reason))
        current[0] = None
    stores.close()


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
            target=_worker_main,
            args=(child_conn, os.getpid(), blob, _builtin_filters()),
            name=f"electrodb-worker-{slot.device.index + 1}",
            daemon=False,  # a daemonic process may not start processes of its own; _stop ends workers instead
        )
        with _environ({**_settings_env(self.settings), **slot.device.env}):
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
