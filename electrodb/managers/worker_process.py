"""One ``campaign run --workers`` process: how the parent starts it and what it runs.

The parent (:mod:`electrodb.managers.workers`) starts each worker with ``multiprocessing`` ``spawn`` inside
:func:`environ` of :func:`settings_env` and the worker's device variables, so the new interpreter has the parent's
settings and its own device before it imports anything, and hands it :func:`builtin_filters` (the parent's warning
filters). :func:`worker_main` is the process: it talks to the parent over its pipe, sending ``("ready", pid)``,
``("crash", traceback)`` when it cannot start, ``("line", system_id, text)`` for progress and
``("done", system_id, status, reason)`` per system, and runs each ``("run", spec)`` it receives until ``("stop",)``
or the pipe closes; it leaves as soon as the parent is gone.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

from electrodb.flows import md as md_flows
from electrodb.flows.campaign import mark_failed, run_system
from electrodb.settings import ElectroDBSettings
from electrodb.store.stores import get_stores
from electrodb.systems.campaign import SystemSpec

__all__ = ["builtin_filters", "environ", "settings_env", "worker_main"]


def settings_env(settings: ElectroDBSettings) -> dict[str, str | None]:
    """``ELECTRODB_*`` variables that make a worker's process-wide settings exactly ``settings`` (None: unset)."""
    env: dict[str, str | None] = {"ELECTRODB_CONFIG": None}  # every field is given below
    for name, value in settings.model_dump(mode="json").items():
        key = f"ELECTRODB_{name.upper()}"
        env[key] = None if value is None else value if isinstance(value, str) else json.dumps(value)
    return env


@contextmanager
def environ(changes: dict[str, str | None]) -> Iterator[None]:
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


def builtin_filters() -> list[Any]:
    """The warning filters of this process whose category is a builtin warning (they unpickle anywhere)."""
    return [f for f in warnings.filters if getattr(f[2], "__module__", "") == "builtins"]


def _exit_with(parent_pid: int) -> None:
    """Leave as soon as the parent is gone (a worker must not keep writing for a run nobody watches)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(3)


def worker_main(conn: Connection, parent_pid: int, maker_blob: bytes, filters: list[Any]) -> None:
    """A worker: run the systems the parent sends, one at a time, until told to stop or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_exit_with, args=(parent_pid,), daemon=True).start()
    warnings.filters[:] = filters  # the parent's (the CLI silences known, harmless dependency warnings)
    try:  # torch, imported by the first job, reads its device and thread count from the environment it started with
        maker = pickle.loads(maker_blob)
        stores = get_stores().connect()  # the settings of the parent's stores (:func:`settings_env`)
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
