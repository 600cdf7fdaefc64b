"""Which device each ``campaign run --workers`` process gets: one visible GPU each, or a share of the CPU cores.

:func:`plan_devices` gives every worker a :class:`WorkerDevice`: the environment (``CUDA_VISIBLE_DEVICES``, thread
counts) its process is started with, before it imports anything (:mod:`electrodb.managers.workers`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["WorkerDevice", "plan_devices", "visible_gpus"]


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
    try:  # the module's one lazy import: torch is heavy, and needed only when CUDA_VISIBLE_DEVICES is unset
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def _cores() -> int:
    """CPU cores this process may run on."""
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
