"""``electrodb model committee`` and ``electrodb model refine``: train, calibrate and refine model committees.

The commands are collected on :data:`committee_commands`, which ``electrodb model`` merges into its own group;
:func:`committee_table` is the committees' part of ``electrodb model list``. Everything heavy (torch, MACE, the
stores) is imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from electrodb.cli.campaign import ENGINE_HELP, engine_backend
from electrodb.cli.common import console, fail
from electrodb.managers.stages import EngineConfigError, SubmitOptions
from electrodb.settings import get_settings

__all__ = ["committee_commands", "committee_table", "load_teacher", "model_committee", "model_refine"]

committee_commands = typer.Typer()


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip("'\"").splitlines()[0] if str(exc) else type(exc).__name__


def _validation(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "value"
    return f"--{where.replace('_', '-')}: {first['msg']}"


def _read_labelled(data: Path) -> list[Any]:
    """The labelled configurations of ``data`` (extxyz with REF_energy / REF_forces); fail() on anything else."""
    from ase.io import read

    from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY

    if not data.is_file():
        fail(f"--data {data} does not exist (or is not a file); give a labelled extxyz (REF_energy, REF_forces)")
    try:
        configurations = read(data, index=":")
    except Exception as exc:  # ASE raises many kinds for a file it cannot parse
        fail(f"could not read {data} as labelled configurations ({type(exc).__name__}: {_first_line(exc)})")
    for i, atoms in enumerate(configurations):
        if ENERGY_KEY not in atoms.info or FORCES_KEY not in atoms.arrays:
            fail(
                f"configuration {i} of {data} has no {ENERGY_KEY}/{FORCES_KEY} labels; label the data first (e.g. "
                "the labelled extxyz files electrodb model train-demo writes)"
            )
    return configurations


@committee_commands.command("committee")
def model_committee(
    data: Annotated[Path, typer.Option(help="labelled extxyz (REF_energy, REF_forces)")],
    k: Annotated[int, typer.Option("--k", help="number of members")] = 4,
    name: Annotated[str, typer.Option(help="committee name")] = "electrodb-committee",
    epochs: Annotated[int, typer.Option(min=1, help="training epochs per member")] = 10,
    foundation: Annotated[
        str | None, typer.Option(help="fine-tune every member from this MACE file / foundation name")
    ] = None,
    driver: Annotated[str, typer.Option(help="member that drives MD: an index (0) or 'mean'")] = "0",
    split: Annotated[str, typer.Option(help="rotate (validation folds) or bootstrap (resampling)")] = "rotate",
    target_error: Annotated[
        float, typer.Option(help="per-atom force error (eV/Å) the σ_F threshold should flag")
    ] = 0.5,
    device: Annotated[str, typer.Option(help="training and calibration device: cpu, cuda or auto")] = "cpu",
) -> None:
    """Train K MACE members (different seeds and data splits) and register them as one committee.

    A fraction of the data is held out from every member to calibrate the σ_F threshold against true errors; the
    rank correlation (Spearman) of σ_F with the true force error is printed and stored.
    """
    from electrodb.flows.committee import parse_driver, store_committee
    from electrodb.models.committee import CommitteeSettings, train_committee
    from electrodb.models.files import ModelError
    from electrodb.models.mace_command import TrainingError
    from electrodb.models.mace_train import TrainingSettings
    from electrodb.store.stores import get_stores

    try:
        settings = CommitteeSettings(
            k=k,
            split=split,
            foundation=foundation,
            target_error_eV_per_A=target_error,
            training=TrainingSettings(max_num_epochs=epochs, device=device),
        )
        chosen = parse_driver(driver, k)
    except ValidationError as exc:
        fail(_validation(exc))
    except ValueError as exc:
        fail(f"--driver: {exc}")
    configurations = _read_labelled(data)
    workdir = get_settings().work_dir / f"committee-{name}"
    try:
        training = train_committee(configurations, settings, workdir, progress=console.log)
    except (TrainingError, ModelError, ValueError) as exc:
        fail(f"{_first_line(exc)}; nothing was registered")
    with get_stores() as stores:
        try:
            doc = store_committee(stores, training, name, driver=chosen, device=device)
        except (ModelError, ValueError) as exc:
            fail(f"calibration failed: {_first_line(exc)}; nothing was registered")
    table = Table("member", "model id", "seed", "train", "valid", "held-out force RMSE (eV/Å)")
    for i, member in enumerate(doc.held_out["members"]):
        table.add_row(
            str(i),
            member["model_id"][:23],
            str(member["seed"]),
            str(member["n_train"]),
            str(member["n_valid"]),
            _number(member["rmse_forces_eV_per_A"]),
        )
    console.print(table)
    cal = doc.calibration
    console.print(f"committee {doc.committee_id} ({doc.name}, {doc.k} members, driver {doc.driver})", soft_wrap=True)
    console.print(
        f"σ_F threshold {_number(doc.threshold_eV_per_A)} eV/Å for a {cal['target_error_eV_per_A']} eV/Å force error "
        f"(scale {_number(cal.get('scale'), 2)}; {cal['n_configurations']} held-out configurations); Spearman "
        f"ρ(σ_F, error) {_number(cal.get('spearman_atom'), 2)} per atom, {_number(cal.get('spearman_frame'), 2)} "
        f"per configuration; recall {_number(cal.get('recall'), 2)}, precision {_number(cal.get('precision'), 2)}",
        soft_wrap=True,
        markup=False,
    )


def load_teacher(reference: str) -> tuple[Any, dict[str, Any]]:
    """The teacher's ASE calculator and identity from a model reference (``chgnet:r2scan``, a MACE file, ...) or
    ``python:package.module:function`` (:func:`electrodb.flows.refine_flow.teacher_calculator`)."""
    from electrodb.flows.refine_flow import teacher_calculator

    return teacher_calculator(reference)


def _errors(record: dict[str, Any], when: str, test_set: str) -> str:
    errors = (record.get(when) or {}).get(test_set)
    return "-" if not errors else _number(errors["rmse_forces_eV_per_A"])


@committee_commands.command("refine")
def model_refine(
    committee: Annotated[str, typer.Option(help="committee name or id (electrodb model list)")],
    n_select: Annotated[int, typer.Option(help="most flagged configurations to label")] = 16,
    teacher: Annotated[str, typer.Option(help="model reference of the labeller")] = "chgnet:r2scan",
    epochs: Annotated[int | None, typer.Option(min=1, help="fine-tuning epochs (default: the committee's)")] = None,
    lr: Annotated[float | None, typer.Option(help="fine-tuning learning rate (default: the committee's)")] = None,
    name: Annotated[str | None, typer.Option(help="name of the refined committee (default <name>-r<round>)")] = None,
    test_fraction: Annotated[float, typer.Option(help="share of the new labels held out as a test set")] = 0.25,
    min_distance_fraction: Annotated[
        float, typer.Option(help="duplicates: closer than this fraction of the typical fingerprint distance")
    ] = 0.15,
    device: Annotated[str, typer.Option(help="evaluation device: cpu, cuda or auto")] = "cpu",
    submit: Annotated[
        str | None, typer.Option(help=f"submit the round to an engine instead: {ENGINE_HELP}", show_default=False)
    ] = None,
    cpu_worker: Annotated[str, typer.Option(help="--submit: worker for select, label and register")] = "cpu",
    gpu_worker: Annotated[str, typer.Option(help="--submit: worker for the fine-tuning, one GPU")] = "gpu",
    launchpad: Annotated[
        Path | None, typer.Option(help="FireWorks LaunchPad YAML (default: LaunchPad.auto_load())")
    ] = None,
    project: Annotated[str | None, typer.Option(help="jobflow-remote project (default: its default)")] = None,
    multi_node: Annotated[
        bool,
        typer.Option(
            "--multi-node/--single-node",
            help="--submit: workers may run on other nodes (refuses the embedded database) / all run on this machine",
        ),
    ] = True,
) -> None:
    """One refine round: label what the committee's audits flagged, fine-tune every member, register the result.

    The refined committee supersedes the old one, which stays queryable. Prints the held-out force RMSE of the
    driver before and after, on the old test set and on newly flagged configurations. Audit first (electrodb model
    audit); nothing flagged stops before any training. With --submit the round runs on the engine's workers
    (label on the CPU worker, fine-tuning on the GPU worker) and `electrodb model list` shows the result.
    """
    from electrodb.flows.committee import resolve_committee
    from electrodb.flows.refine import NothingFlaggedError, RefineError, RefineSettings, refine_committee
    from electrodb.models.files import ModelError
    from electrodb.models.mace_command import TrainingError
    from electrodb.store.stores import get_stores

    try:
        settings = RefineSettings(
            n_select=n_select,
            epochs=epochs,
            lr=lr,
            test_fraction=test_fraction,
            min_distance_fraction=min_distance_fraction,
            device=device,
        )
    except ValidationError as exc:
        fail(_validation(exc))
    if submit is None and (launchpad is not None or project is not None):
        fail("--launchpad and --project apply to a submitted round; add --submit fireworks or --submit jobflow-remote")
    if submit is not None:
        options = SubmitOptions(cpu_worker=cpu_worker, gpu_worker=gpu_worker, project=project)
        _submit_round(
            committee, engine_backend(submit, launchpad, project), options, settings, teacher, name, multi_node
        )
        return
    with get_stores() as stores:
        try:
            parent = resolve_committee(stores, committee)
            calculator, identity = load_teacher(teacher)
            workdir = get_settings().work_dir / f"refine-{parent.name}"
            child = refine_committee(
                stores, parent.committee_id, calculator, settings, workdir, teacher=identity, name=name, log=console.log
            )
        except NothingFlaggedError as exc:
            console.print(f"nothing to refine: {exc}", soft_wrap=True, markup=False)
            return
        except (RefineError, ModelError, TrainingError, ValueError, FileNotFoundError) as exc:
            fail(f"{_first_line(exc)}; committee {committee!r} stays registered and current")
    record = child.refine
    table = Table("held-out force RMSE (eV/Å)", "configurations", "before", "after")
    table.add_row(
        "old test set", str(record["n_old_test"]), *(_errors(record, w, "old_test") for w in ("before", "after"))
    )
    table.add_row(
        "newly flagged", str(record["n_new_test"]), *(_errors(record, w, "new_flagged") for w in ("before", "after"))
    )
    console.print(table)
    console.print(
        f"refined committee {child.committee_id} ({child.name}, round {child.refine_round}) supersedes {parent.name}: "
        f"{record['n_labelled']} configurations labelled ({len(record['skipped'])} skipped by the teacher), "
        f"{record['n_added']} added to training; σ_F threshold {_number(child.threshold_eV_per_A)} eV/Å",
        soft_wrap=True,
        markup=False,
    )


def _submit_round(
    committee: str, backend: Any, options: Any, settings: Any, teacher: str, name: str | None, multi_node: bool
) -> None:
    """``model refine --submit``: queue the round (:func:`electrodb.managers.refine_submit.submit_refine`)."""
    from electrodb.flows.refine import NothingFlaggedError, RefineError
    from electrodb.managers.refine_submit import submit_refine
    from electrodb.models.files import ModelError
    from electrodb.store.stores import get_stores

    with get_stores() as stores:
        try:
            report = submit_refine(
                stores, committee, backend, options, settings, teacher=teacher, child_name=name, multi_node=multi_node
            )
        except NothingFlaggedError as exc:
            console.print(f"nothing to refine: {exc}", soft_wrap=True, markup=False)
            return
        except (EngineConfigError, RefineError, ModelError, ValueError) as exc:
            fail(f"{_first_line(exc)}; nothing was submitted")
    where = f"committee {report.committee_name!r} ({report.committee_id})"
    if not report.submitted:
        console.print(
            f"the refine round of {where} is already in {backend.name} ({report.engine_state}); not submitted again",
            soft_wrap=True,
            markup=False,
        )
        return
    console.print(
        f"submitted the refine round of {where} to {backend.name} as {report.key}: select, label and register on "
        f"worker {options.cpu_worker!r}, fine-tuning on worker {options.gpu_worker!r}; `electrodb model list` shows "
        "the refined committee once registered",
        soft_wrap=True,
        markup=False,
    )


def committee_table(stores: Any) -> list[Table]:
    """The committees of ``electrodb model list`` as a table (an empty list when there are none)."""
    from electrodb.flows.committee import current_committees

    docs = current_committees(stores)
    if not docs:
        return []
    table = Table("committee id", "name", "K", "driver", "σ_F threshold (eV/Å)", "Spearman", "round", "status")
    for doc in docs:
        status = f"superseded by {doc.superseded_by[:18]}" if doc.superseded_by else "current"
        table.add_row(
            doc.committee_id[:26],
            doc.name,
            str(doc.k),
            str(doc.driver),
            _number(doc.threshold_eV_per_A),
            _number(doc.calibration.get("spearman_atom"), 2),
            str(doc.refine_round),
            status,
        )
    return [table]
