"""``electrodb model audit``: evaluate a committee on stored trajectories and record the model-trust verdicts."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from electrodb.cli.common import console, fail

__all__ = ["model_audit"]


def model_audit(
    committee: Annotated[str, typer.Option(help="committee name or id (electrodb model list)")],
    trajectory: Annotated[
        list[str] | None,
        typer.Option(help="trajectory id (repeat for several); default: every completed run of a member"),
    ] = None,
    every: Annotated[int, typer.Option(help="audit every n-th stored frame")] = 10,
    max_frames: Annotated[int, typer.Option(help="audit at most this many frames per trajectory")] = 200,
    max_flagged: Annotated[
        float, typer.Option(help="extrapolating above this fraction of frames over the threshold")
    ] = 0.05,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "cpu",
    force: Annotated[bool, typer.Option("--force", help="evaluate frames an earlier audit holds again")] = False,
) -> None:
    """Audit stored trajectories with a committee: force disagreement σ_F per frame and a model-trust verdict.

    Incremental: a trajectory that grew since its last audit gets only its new frames evaluated. Run `electrodb
    build` afterwards to put the verdicts into the summaries (model_trust), the API, the export and the explorer.
    """
    from electrodb.flows.audit import audit_trajectories
    from electrodb.models.files import ModelError
    from electrodb.store.stores import get_stores
    from electrodb.systems.committee import AuditSettings

    try:
        settings = AuditSettings(
            committee=committee,
            every_frames=every,
            max_frames=max_frames,
            max_flagged_fraction=max_flagged,
            device=device,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}")
    with get_stores() as stores:
        try:
            results = audit_trajectories(stores, committee, settings, trajectory or None, force=force)
        except (LookupError, ModelError, FileNotFoundError) as exc:
            fail(str(exc).strip("'\""))
    if not results:
        fail(
            f"no completed trajectory was run by a member of committee {committee!r}; run a campaign with the "
            "committee's driver model, or name trajectories with --trajectory"
        )
    table = Table("trajectory", "system", "frames", "flagged", "σ_F p95 (eV/Å)", "trust")
    problems = []
    for tid, doc in results.items():
        if isinstance(doc, str):
            problems.append(f"{tid[:12]}: {doc}")
            continue
        system = f"{doc.salt} {doc.molality:.2f} m" if doc.salt and doc.molality is not None else "-"
        p95 = f"{doc.sigma_F_max_p95:.3f}" if doc.sigma_F_max_p95 is not None else "-"
        table.add_row(
            tid[:12],
            system,
            str(doc.n_frames_audited),
            f"{doc.n_flagged} ({100 * doc.frac_flagged:.0f} %)",
            p95,
            str(doc.verdict.get("status", "")),
        )
    console.print(table)
    for tid, doc in results.items():
        if not isinstance(doc, str) and doc.verdict.get("reason"):
            console.print(f"{tid[:12]}: {doc.verdict['reason']}", soft_wrap=True, markup=False)
    for line in problems:
        console.print(f"not audited: {line}", soft_wrap=True, markup=False)
    console.print("run `electrodb build` to put the verdicts into the summaries", markup=False)
    if problems and len(problems) == len(results):
        raise typer.Exit(code=2)
