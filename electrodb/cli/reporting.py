"""What the command line and the demo print: the console, campaign plans, MD progress and failure reasons.

Output must read well in a file (CI logs, ``tee``, notebooks) as well as on a terminal: without a terminal the
console is 160 columns wide (``COLUMNS`` still wins), progress is one plain line per system plus a status line at
most every 30 s, and messages are never wrapped mid-word.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from electrodb.systems.boxes import SystemError as BoxError
from electrodb.systems.campaign import Campaign

__all__ = [
    "convergence_cells",
    "failure_lines",
    "format_needs",
    "make_console",
    "plan_table",
    "run_with_progress",
]

#: Width used when the output is not a terminal and ``COLUMNS`` is not set.
FILE_WIDTH = 160
#: Seconds between plain progress lines when the output is not a terminal.
LINE_EVERY_S = 30.0


def make_console() -> Console:
    """A rich console that is 160 columns wide in a file or pipe (rich would cut tables at 80)."""
    console = Console(log_path=False)  # "file.py:123" on every log line is noise for a user
    if not console.is_terminal:
        # Piped to a file or `tee`, stdout is block-buffered: progress lines would appear minutes late.
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
        if "COLUMNS" not in os.environ:
            console = Console(width=FILE_WIDTH, log_path=False)
    return console


def plan_table(campaign: Campaign) -> Table:
    """The systems a campaign expands into; raises ``ValueError`` naming the system whose box cannot be built."""

    try:
        specs = campaign.systems()
    except BoxError as exc:
        raise ValueError(str(exc)) from exc
    table = Table(title=f"campaign {campaign.name}: {len(specs)} systems, model {campaign.model}")
    columns = ("system id", "salt", "m mol/kg", "T K", "cations", "anions", "waters", "atoms", "box Å")
    for col in (*columns, "density kg/m³", "density source"):
        table.add_column(col, justify="left" if col in ("salt", "density source", "system id") else "right")
    for s in specs:
        table.add_row(
            s.system_id[:10],
            s.salt,
            f"{s.molality:.3f}",
            f"{s.temperature:.1f}",
            str(s.n_cations),
            str(s.n_anions),
            str(s.n_waters),
            str(s.n_atoms),
            f"{s.box_length_A:.2f}",
            f"{s.density_kg_m3:.1f}",
            s.density_source,
        )
    return table


def run_with_progress(campaign: Campaign, stores: Any, console: Console, maker: Any = None, workers: int = 1) -> Any:
    """Run a campaign locally with a progress bar (terminal) or plain progress lines (file); return its summary.

    With ``workers`` > 1 the systems run in that many worker processes (:mod:`electrodb.managers.workers`); each
    system's start and finish, and each worker death, is one line on the terminal and in a file alike.
    """
    # flows and workers import torch and MACE: only when a campaign really runs (`campaign plan` prints tables)
    from electrodb.flows import md as md_flows
    from electrodb.flows.batched_campaign import resolve_batch, run_campaign_batched
    from electrodb.managers.workers import run_campaign_workers

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    ) as progress:
        task = progress.add_task("systems", total=None, status="")
        last_line = [0.0]

        def on_system(k: int, n: int, spec: Any) -> None:
            label = f"{spec.salt} {spec.molality:.2f} m {spec.temperature:.0f} K"
            progress.update(task, total=n, completed=k, description=label)
            if not console.is_terminal:  # logs and CI: a plain line per system
                console.log(f"system {k + 1}/{n}: {label}")

        def on_line(line: str) -> None:
            progress.update(task, status=line)
            if ": segment " in line:  # a segment's judgement: always one line (flows.segments)
                console.log(line, markup=False)
                return
            if not console.is_terminal and time.monotonic() - last_line[0] > LINE_EVERY_S:
                console.log(line)
                last_line[0] = time.monotonic()

        def on_event(event: Any) -> None:
            if event.kind == "line":
                on_line(f"worker {event.worker + 1}: {event.text}")
                return
            progress.update(task, total=event.total, completed=event.finished, description="systems")
            console.log(event.message, markup=False)

        md_flows.set_progress_hook(on_line)
        try:
            if workers > 1:
                if resolve_batch(campaign.md.batch) is not None:  # never silently: the user asked for batches
                    console.print(
                        f"note: md.batch: {campaign.md.batch} is not used with --workers {workers}: each worker "
                        "runs one system at a time on its own device (use --workers 1 to batch boxes on one GPU)",
                        markup=False,
                    )
                summary = run_campaign_workers(campaign, stores, workers, maker=maker, on_event=on_event)
            else:  # md.batch: batched torch-sim production on a GPU; the sequential path on CPU or with "off"
                summary = run_campaign_batched(campaign, stores, on_system=on_system, maker=maker)
        finally:
            md_flows.set_progress_hook(None)
        done = len(summary.completed) + len(summary.unstable) + len(summary.failed)
        progress.update(task, total=max(done, 1), completed=done, description="systems done")
    return summary


def failure_lines(summary: Any, stores_hint: str = "") -> list[str]:
    """One line per failed or unstable system, with the failing job's own error text."""
    lines = []
    for kind, ids in (("failed", summary.failed), ("unstable", summary.unstable)):
        for sid in ids:
            lines.append(f"{kind}: system {sid[:10]}: {summary.reasons.get(sid, 'no reason recorded')}")
    if summary.failed and stores_hint:
        lines.append(f"fix the cause above and run `{stores_hint}` again: completed systems are skipped")
    return lines


def format_needs(
    needs_ps: float | None,
    ps_per_hour: float | None,
    unreachable: bool = False,
    digits: int = 3,
    more: str = "",
    where: str = "",
) -> str:
    """``"≈ 12 ps (≈ 9 min)"``: the production a value still needs and its wall time at the measured speed.

    ``digits`` significant digits of the ps; ``more`` follows the ps (``" more"``), ``where`` the minutes
    (``" on this machine"``).
    """
    if unreachable:
        return "not by running longer"
    if needs_ps is None:
        return "unknown"
    text = f"≈ {needs_ps:.{digits}g} ps{more}"
    if ps_per_hour:
        minutes = needs_ps / ps_per_hour * 60.0
        text += f" (≈ {minutes:.0f} min{where})" if minutes >= 1 else f" (< 1 min{where})"
    return text


def convergence_cells(record: dict | None) -> list[str]:
    """``campaign status`` cells of a system with ``until``: the properties converged, and each pending one with
    what it still needs (:func:`format_needs`), from its last segment's judgement."""
    if not record:
        return ["—", "—"]
    states = record.get("properties") or {}
    speed = record.get("ps_per_hour")
    pending = [
        f"{p} {format_needs(states.get(p, {}).get('needs_ps'), speed, bool(states.get(p, {}).get('unreachable')))}"
        for p in record.get("pending") or []
    ]
    return [", ".join(record.get("converged") or []) or "none", "; ".join(pending) or "none"]
