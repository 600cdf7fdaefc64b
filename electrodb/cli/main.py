"""The ``electrodb`` command line: plan and run campaigns, build properties, serve, export, ingest, demo."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

# Before any torch import: the weights-only override MACE + e3nn 0.4.4 need under torch 2.13 (see the environment
# notes), and silence known, harmless dependency warnings that would bury the progress output.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
for _pattern in (
    "Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD",
    "cd is deprecated",
    "The TorchScript type system",
    "To copy construct from a tensor",
    "Converting a tensor with requires_grad=True to a scalar",
):
    warnings.filterwarnings("ignore", message=_pattern)


# Each command imports what it runs inside its own body (stores, builders, flows, the API): those pull in maggma,
# torch, MACE or FastAPI (seconds each), which `electrodb --help` and the light commands must not pay for.
from electrodb.cli.campaign import campaign_app  # noqa: E402  (after the environment set-up above)
from electrodb.cli.common import console, fail  # noqa: E402
from electrodb.cli.model import model_app  # noqa: E402  (train, register, list, committee, audit, refine)
from electrodb.settings import get_settings  # noqa: E402
from electrodb.utils.safe_files import OutputPathError  # noqa: E402

app = typer.Typer(help="ElectroDB: electrolyte property databases from NNP molecular dynamics.", no_args_is_help=True)
db_app = typer.Typer(help="Inspect the database.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
app.add_typer(db_app, name="db")
app.add_typer(model_app, name="model")


@db_app.command("info")
def db_info() -> None:
    """Where the data lives and how many documents each collection holds (creates nothing)."""
    from electrodb.builders.run import RUN_BUILDER
    from electrodb.store.stores import StoreUnavailableError, get_stores

    settings = get_settings()
    console.print(f"database: {settings.describe()}")
    console.print(f"data folder: {settings.data_dir}")
    try:
        with get_stores(read_only=True, require_database=True) as stores:
            table = Table("collection", "documents")
            for name, count in stores.counts().items():
                note = ""
                if name == "builds":
                    runs = stores.builds.count({"builder": RUN_BUILDER})
                    note = f" ({runs} build runs, {count - runs} skipped inputs)"
                table.add_row(name, f"{count}{note}")
    except StoreUnavailableError as exc:
        fail(exc.message)
    console.print(table)


@db_app.command("check")
def db_check() -> None:
    """Read every collection file and report each as ok, missing, empty or unreadable (exit 1 on a problem)."""
    from electrodb.store.check import check_database
    from electrodb.store.stores import StoreUnavailableError

    settings = get_settings()
    console.print(f"database: {settings.describe()}", soft_wrap=True, markup=False)
    try:
        states = check_database(settings)
    except StoreUnavailableError as exc:
        fail(exc.message)
    table = Table("collection", "state", "documents")
    for st in states:
        table.add_row(st.name, st.state, "-" if st.count is None else str(st.count))
    console.print(table)
    problems = [st for st in states if st.state != "ok"]
    for st in problems:
        console.print(f"{st.state}: {st.message}", soft_wrap=True, markup=False)
    if problems:
        console.print(f"{len(problems)} of {len(states)} collections have a problem", soft_wrap=True, markup=False)
        raise typer.Exit(code=1)
    console.print(f"all {len(states)} collections ok", soft_wrap=True, markup=False)


@app.command()
def ingest(
    file: Path,
    salt: Annotated[str, typer.Option(help="salt formula, e.g. NaCl")],
    temperature: Annotated[float, typer.Option(help="K")],
    timestep_fs: Annotated[float, typer.Option("--timestep-fs", help="MD timestep of the source run (fs)")],
    interval: Annotated[int, typer.Option(help="steps between stored frames")],
    molality: Annotated[float | None, typer.Option(help="mol/kg; checked against the file")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="ASE format name (default: guess)")] = None,
    source_label: Annotated[str, typer.Option(help="what produced it, e.g. 'AIMD-revPBE-D3'")] = "external",
    index: Annotated[str, typer.Option(help="ASE frame selection, e.g. ':500' for the first 500 frames")] = ":",
    expected_frames: Annotated[
        int | None, typer.Option(metavar="N", help="frames the file should hold; fewer means truncated")
    ] = None,
    min_cell_width: Annotated[
        float | None, typer.Option(help="smallest allowed perpendicular cell width in Å (default 10)")
    ] = None,
    allow_unusual: Annotated[bool, typer.Option("--allow-unusual", help="let every overridable check through")] = False,
    allow_unusual_temperature: Annotated[
        bool, typer.Option("--allow-unusual-temperature", help="allow a temperature above 5000 K")
    ] = False,
    allow_unusual_timestep: Annotated[
        bool, typer.Option("--allow-unusual-timestep", help="allow an MD timestep above 20 fs")
    ] = False,
    allow_small_cell: Annotated[
        bool, typer.Option("--allow-small-cell", help="allow a cell narrower than --min-cell-width")
    ] = False,
    allow_volume_jumps: Annotated[
        bool, typer.Option("--allow-volume-jumps", help="allow volume steps > 10 % or drifts beyond 1.5x frame 0")
    ] = False,
    allow_irregular_steps: Annotated[
        bool,
        typer.Option(
            "--allow-irregular-steps",
            help="allow a step counter or per-frame time that does not advance by --interval × --timestep-fs",
        ),
    ] = False,
    allow_atom_jumps: Annotated[
        bool,
        typer.Option("--allow-atom-jumps", help="allow atoms that move faster than 1 Å/fs between frames"),
    ] = False,
    allow_truncated: Annotated[
        bool, typer.Option("--allow-truncated", help="keep the complete frames of a truncated file")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="re-ingest even if this file is already stored")] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="replace a stored trajectory of the same run (a copy, prefix or extension)"),
    ] = False,
) -> None:
    """Import an external trajectory (any ASE-readable format) so the builders analyse it too."""
    from electrodb.io.ingest import IngestError, ingest_trajectory
    from electrodb.store.stores import get_stores

    options = {"min_cell_width_A": min_cell_width} if min_cell_width is not None else {}
    with get_stores() as stores:
        try:
            doc = ingest_trajectory(
                file,
                salt,
                molality,
                temperature,
                timestep_fs,
                interval,
                stores,
                fmt=fmt,
                index=index,
                source_label=source_label,
                expected_frames=expected_frames,
                allow_unusual=allow_unusual,
                allow_unusual_temperature=allow_unusual_temperature,
                allow_unusual_timestep=allow_unusual_timestep,
                allow_small_cell=allow_small_cell,
                allow_volume_jumps=allow_volume_jumps,
                allow_irregular_steps=allow_irregular_steps,
                allow_atom_jumps=allow_atom_jumps,
                allow_truncated=allow_truncated,
                force=force,
                replace=replace,
                **options,
            )
        except (IngestError, ValueError) as exc:
            fail(str(exc))
    for line in getattr(doc, "ingest_messages", []):
        console.print(line, soft_wrap=True, markup=False)
    action = getattr(doc, "ingest_action", "created")
    what = f"{doc.n_frames} frames of {doc.salt} {doc.molality:.3f} mol/kg"
    if action == "unchanged":
        console.print(f"unchanged: {doc.trajectory_id} already holds {what}; nothing ingested (--force re-ingests)")
        return
    for flag, problem in (getattr(doc, "validation_overrides", None) or {}).items():
        console.print(f"allowed by --{flag.replace('_', '-')}: {problem}", soft_wrap=True, markup=False)
    console.print(f"{action} {doc.trajectory_id}: ingested {what}", soft_wrap=True, markup=False)


@app.command()
def build(
    rebuild: Annotated[
        bool,
        typer.Option(
            help="reprocess every input and replace its documents in place (readers never see an empty "
            "database), then remove those whose source is gone"
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="processes for the per-trajectory analysis (1: serial, in this process)")
    ] = 1,
) -> None:
    """Run the builders: trajectories -> structure/transport/pairing/kinetics -> summaries -> thermodynamics.

    Each finished item is written at once: an interrupted build keeps what it finished, and the next ``build``
    continues from there.
    """
    from electrodb.builders import run_builders
    from electrodb.builders.parallel import ParallelBuildError
    from electrodb.builders.run import RUN_BUILDER
    from electrodb.store.check import build_problems
    from electrodb.store.stores import StoreUnavailableError, get_stores

    try:
        problems = build_problems(get_settings(), rebuild=rebuild)  # before anything is opened (or created)
        if problems:
            fail(problems[0].message + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        with get_stores() as stores:
            try:
                counts = run_builders(stores, log=console.log, rebuild=rebuild, workers=workers, record=True)
            except ParallelBuildError as exc:
                fail(str(exc))
            skipped = list(
                stores.builds.query({"builder": {"$ne": RUN_BUILDER}}, properties=["trajectory_id", "reason"])
            )
    except StoreUnavailableError as exc:
        fail(exc.message)
    console.print(f"processed {counts}")
    for doc in skipped:
        console.print(f"[yellow]skipped[/] {doc['trajectory_id']}: {doc['reason']}")


@app.command()
def plot(
    kind: Annotated[str, typer.Argument(help="rdf, msd or mscd (collective charge MSD: σ, t₊)")],
    ident: Annotated[str, typer.Argument(help="trajectory id or electrolyte id (a unique prefix is enough)")],
    out: Annotated[Path | None, typer.Option(help="PNG path (default: <kind>-<id>.png)")] = None,
) -> None:
    """Write a PNG of g(r) with n(r), of the MSD with its fit window, or of the collective charge MSD with the
    window of σ (beside the ions' self part, σ_NE)."""
    from electrodb.cli.plots import find_property_doc, plot_mscd, plot_msd, plot_rdf
    from electrodb.store.stores import get_stores

    if kind not in ("rdf", "msd", "mscd"):
        fail(f"unknown plot {kind!r}; use rdf, msd or mscd")
    with get_stores(read_only=True) as stores:
        try:
            doc = find_property_doc(stores, "structure" if kind == "rdf" else "transport", ident)
        except KeyError as exc:
            fail(str(exc.args[0]))
    path = out or Path(f"{kind}-{doc['trajectory_id']}.png")
    try:
        {"rdf": plot_rdf, "msd": plot_msd, "mscd": plot_mscd}[kind](doc, path)
    except (OutputPathError, OSError) as exc:
        fail(str(exc))
    console.print(f"wrote {path}", soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes (each with its own cache)")] = 1,
    cache_mb: Annotated[
        float, typer.Option(min=0, help="MiB per read cache (answers, documents) and worker; embedded store; 0: off")
    ] = 64.0,
) -> None:
    """Serve the database read-only over HTTP (OpenAPI docs at /docs, explorer at /)."""
    from electrodb.api.app import serve as run_server
    from electrodb.store.stores import StoreUnavailableError, get_stores

    try:
        get_stores(read_only=True, require_database=True).ping()  # a database to serve, and a server that answers
        run_server(host, port, workers=workers, cache_mb=cache_mb)
    except StoreUnavailableError as exc:
        fail(exc.message)
    except ValueError as exc:
        fail(str(exc))


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="output file (table) or folder (--trajectories)")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="table: parquet (default), csv, jsonl; --trajectories: extxyz (default), h5md"),
    ] = None,
    salt: Annotated[str | None, typer.Option(help="filter: salt formula")] = None,
    molality_min: Annotated[float | None, typer.Option(help="filter: mol/kg")] = None,
    molality_max: Annotated[float | None, typer.Option(help="filter: mol/kg")] = None,
    temperature_min: Annotated[float | None, typer.Option(help="filter: K")] = None,
    temperature_max: Annotated[float | None, typer.Option(help="filter: K")] = None,
    model_id: Annotated[str | None, typer.Option(help="filter: model id")] = None,
    campaign: Annotated[str | None, typer.Option(help="filter: campaign name")] = None,
    with_arrays: Annotated[bool, typer.Option(help="add g(r) and MSD arrays")] = False,
    include_superseded: Annotated[
        bool, typer.Option(help="table: also results a refined committee's model superseded (left out by default)")
    ] = False,
    trajectories: Annotated[
        bool, typer.Option(help="write the selected trajectories (extxyz or h5md + pdb) into the --out folder")
    ] = False,
) -> None:
    """Export an ML-ready table (one row per salt, molality, T, model) or the selected trajectories."""
    from electrodb.io.export import export_table, export_trajectories
    from electrodb.store.stores import StoreUnavailableError, get_stores

    filters = {
        k: v
        for k, v in {
            "salt": salt,
            "molality_min": molality_min,
            "molality_max": molality_max,
            "temperature_min": temperature_min,
            "temperature_max": temperature_max,
            "model_id": model_id,
            "campaign": campaign,
        }.items()
        if v is not None
    }
    try:
        reader = get_stores(read_only=True, require_database=True).connect()  # no database: say so, create none
    except StoreUnavailableError as exc:
        fail(exc.message)
    with reader as stores:
        try:
            if trajectories:
                traj_fmt = (fmt or "extxyz").lower()
                paths = export_trajectories(stores, out, filters, fmt=traj_fmt)
                console.print(f"wrote {len(paths)} {traj_fmt} files to {out}")
            else:
                rows = export_table(
                    stores, fmt or "parquet", out, filters, with_arrays, include_superseded=include_superseded
                )
                console.print(f"wrote {rows} rows to {out}")
        except StoreUnavailableError as exc:  # a collection file damaged or lost
            fail(exc.message)
        except ValueError as exc:  # OutputPathError included: --out a file or device for --trajectories, ...
            fail(str(exc))
        except OSError as exc:  # a disk that fills up while writing
            fail(f"could not write {exc.filename or out}: {exc.strerror or exc}; free space or choose another --out")


@app.command()
def demo(
    fresh: Annotated[
        bool,
        typer.Option("--retrain/--no-retrain", "--fresh", help="train the demo model live"),
    ] = False,
) -> None:
    """Run the built-in demo campaign end to end on CPU with the shipped demo MACE (or --retrain it live)."""
    from electrodb.cli.demo import run_demo

    run_demo(console, retrain=fresh)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
