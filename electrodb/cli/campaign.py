"""``electrodb campaign``: plan, run (locally, or k systems at once), submit to an engine, and follow a campaign."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from electrodb.cli import reporting
from electrodb.cli.common import console, fail
from electrodb.managers.stages import EngineConfigError, SubmitOptions
from electrodb.systems.campaign import Campaign

campaign_app = typer.Typer(help="Plan and run screening campaigns.", no_args_is_help=True)


def _load_campaign(spec: Path, model: str | None) -> Campaign:
    try:
        campaign = Campaign.from_yaml(spec)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if model:
        campaign = campaign.model_copy(update={"model": model})
    if campaign.model.startswith("committee:"):  # the committee's current driver, audited by it
        from electrodb.flows.audit import committee_campaign
        from electrodb.models.files import ModelError
        from electrodb.store.stores import get_stores

        try:
            with get_stores() as stores:
                campaign = committee_campaign(campaign, stores)
        except ModelError as exc:
            fail(f"{spec}: {exc}")
    from electrodb.flows.campaign import with_model_cutoff
    from electrodb.flows.segments import check_until

    try:
        check_until(campaign)
    except ValueError as exc:
        fail(f"{spec}: {exc}")
    campaign, note = with_model_cutoff(campaign)
    if note:
        console.print(f"note: {note}", soft_wrap=True, markup=False)
    return campaign


def plan_table(campaign: Campaign) -> Table:
    """The campaign's systems as a table; a box that cannot be built exits with its message."""
    try:
        return reporting.plan_table(campaign)
    except ValueError as exc:
        fail(str(exc))


@campaign_app.command("plan")
def campaign_plan(spec: Path, model: Annotated[str | None, typer.Option(help="override the model")] = None) -> None:
    """Print the systems a campaign expands into (counts, box sizes, density source)."""
    console.print(plan_table(_load_campaign(spec, model)))


ENGINE_HELP = "fireworks or jobflow-remote"


def engine_backend(engine: str, launchpad: Path | None, project: str | None):
    """The engine backend for the CLI options (a bad name or configuration exits with its message)."""
    from electrodb.managers.submit import get_backend

    kwargs: dict = {}
    if launchpad is not None:
        if engine != "fireworks":
            fail(f"--launchpad is a FireWorks option; it does not apply to --engine {engine}")
        kwargs["launchpad"] = launchpad
    if project is not None and engine != "fireworks":
        kwargs["project"] = project
    try:
        return get_backend(engine, **kwargs)
    except (EngineConfigError, ImportError) as exc:
        fail(str(exc))


@campaign_app.command("status")
def campaign_status(
    spec: Path,
    model: Annotated[str | None, typer.Option(help="override the model")] = None,
    engine: Annotated[
        str | None, typer.Option(help=f"also read the engine's own state: {ENGINE_HELP}", show_default=False)
    ] = None,
    launchpad: Annotated[
        Path | None, typer.Option(help="FireWorks LaunchPad YAML (default: LaunchPad.auto_load())")
    ] = None,
    project: Annotated[str | None, typer.Option(help="jobflow-remote project (default: its default)")] = None,
) -> None:
    """Each system of a campaign: pending, queued, running, completed, unstable or failed, with the reason."""
    from electrodb.managers.submit import campaign_states
    from electrodb.store.stores import get_stores

    campaign = _load_campaign(spec, model)
    try:
        specs = campaign.systems()
    except ValueError as exc:
        fail(str(exc))
    backend = engine_backend(engine, launchpad, project) if engine else None
    with get_stores(read_only=True) as stores:
        try:
            states = campaign_states(specs, stores, backend)
        except EngineConfigError as exc:
            fail(str(exc))
    table = Table(title=f"campaign {campaign.name}: {len(specs)} systems")
    columns = ["system id", "salt", "m mol/kg", "T K", "status", *(["engine state"] if backend else [])]
    segmented = campaign.until is not None
    extra = ["converged", "pending: needs ≈"] if segmented else []
    for col in (*columns, "frames", "ps", "T check", *extra, "reason"):
        table.add_column(col, justify="right" if col in ("m mol/kg", "T K", "frames", "ps") else "left")
    counts: dict[str, int] = {}
    for st in states:
        s = st.spec
        counts[st.status] = counts.get(st.status, 0) + 1
        engine_cell = [st.engine_state or "—"] if backend else []
        table.add_row(
            s.system_id[:10],
            s.salt,
            f"{s.molality:.3f}",
            f"{s.temperature:.1f}",
            st.status,
            *engine_cell,
            str(st.n_frames),
            f"{st.production_ps:.3g}",
            str(st.temperature_status or "—"),
            *(reporting.convergence_cells(st.convergence) if segmented else []),
            (st.reason or (st.convergence or {}).get("reason") or "")[:200],
        )
    console.print(table)
    console.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), soft_wrap=True)


@campaign_app.command("submit")
def campaign_submit(
    spec: Path,
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)],
    model: Annotated[str | None, typer.Option(help="override the model")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="systems per Workflow / batch of flows")] = 200,
    cpu_worker: Annotated[
        str, typer.Option(help="worker for packing and analysis (FireWorks: _fworker name, category cpu)")
    ] = "cpu",
    gpu_worker: Annotated[
        str, typer.Option(help="worker for MD, one GPU per job (FireWorks: _fworker name, category gpu)")
    ] = "gpu",
    launchpad: Annotated[
        Path | None, typer.Option(help="FireWorks LaunchPad YAML (default: LaunchPad.auto_load())")
    ] = None,
    project: Annotated[str | None, typer.Option(help="jobflow-remote project (default: its default)")] = None,
    multi_node: Annotated[
        bool,
        typer.Option(
            "--multi-node/--single-node",
            help="workers may run on other nodes (refuses the embedded database) / all run on this machine",
        ),
    ] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show what would be submitted")] = False,
) -> None:
    """Submit the systems not yet completed or queued to FireWorks or jobflow-remote (idempotent, in chunks).

    Packing runs on the CPU worker, MD on the GPU worker; the model's bytes are staged into the data store so
    workers resolve it by sha256. Track it with `electrodb campaign status SPEC --engine ENGINE`.
    """
    from electrodb.managers.submit import submit_campaign
    from electrodb.models.files import ModelError
    from electrodb.store.stores import get_stores

    campaign = _load_campaign(spec, model)
    backend = engine_backend(engine, launchpad, project)
    options = SubmitOptions(cpu_worker=cpu_worker, gpu_worker=gpu_worker, chunk_size=chunk_size, project=project)
    with get_stores() as stores:
        try:
            report = submit_campaign(campaign, stores, backend, options, multi_node=multi_node, dry_run=dry_run)
        except (EngineConfigError, ModelError, ValueError) as exc:
            fail(str(exc))
    verb = "would submit" if dry_run else "submitted"
    console.print(
        f"{verb} {len(report.submitted)} of {report.total} systems to {backend.name} in {report.n_chunks} "
        f"chunk(s) of at most {chunk_size}; skipped {len(report.completed)} completed and "
        f"{len(report.in_engine)} already in the engine",
        soft_wrap=True,
        markup=False,
    )
    if report.model_sha256:
        console.print(f"model staged in the data store as {report.model_sha256}", soft_wrap=True, markup=False)
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True, markup=False)


@campaign_app.command("run")
def campaign_run(
    spec: Path,
    model: Annotated[str | None, typer.Option(help="MACE file (fine-tuned for real campaigns)")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="systems run at once, each in its own process on its own GPU (one per worker; without GPUs the "
            "CPU cores are shared); a killed worker's system resumes from its checkpoint",
        ),
    ] = 1,
) -> None:
    """Run every system of a campaign that is not completed yet, on this machine (engines: `campaign submit`)."""
    from electrodb.flows.audit import check_campaign_committee, run_audits
    from electrodb.flows.campaign import check_campaign_run
    from electrodb.managers.devices import plan_devices
    from electrodb.managers.workers import WorkerError
    from electrodb.models.files import ModelError
    from electrodb.store.stores import get_stores

    campaign = _load_campaign(spec, model)
    table = plan_table(campaign)
    devices = []
    if workers > 1:  # devices and the model are checked before anything is packed
        try:
            devices = plan_devices(workers)
        except ValueError as exc:
            fail(str(exc))
    with get_stores() as stores:
        try:
            check_campaign_run(campaign, stores)  # a refusal is recorded: `campaign status` shows why
            check_campaign_committee(campaign, stores, campaign.model_identity())
        except ModelError as exc:
            fail(str(exc))
        console.print(table)
        if devices:
            console.print(f"{workers} workers: " + "; ".join(d.name for d in devices), soft_wrap=True, markup=False)
        try:
            summary = reporting.run_with_progress(campaign, stores, console, workers=workers)
        except WorkerError as exc:
            fail(str(exc))
        audits = run_audits(campaign, stores, campaign.systems())
    console.print(
        f"completed {len(summary.completed)}, skipped (already done) {len(summary.skipped)}, "
        f"unstable {len(summary.unstable)}, failed {len(summary.failed)} of {summary.total}"
    )
    if audits:
        counts = {s: list(audits.values()).count(s) for s in dict.fromkeys(audits.values())}
        line = ", ".join(f"{n} {s}" for s, n in counts.items())
        console.print(f"committee audit ({campaign.audit.committee}): {line}", soft_wrap=True, markup=False)
    for sid, deaths in summary.worker_deaths.items():
        line = f"worker died {len(deaths)}x running system {sid[:10]} (it was resumed): {deaths[-1]}"
        console.print(line, soft_wrap=True, markup=False)
    for line in reporting.failure_lines(summary, stores_hint=f"electrodb campaign run {spec}"):
        console.print(line, soft_wrap=True, markup=False)
    if summary.failed:
        raise typer.Exit(code=1)
