"""``electrodb model``: train, fine-tune, register and list models; committees, their audits and refine rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import ValidationError
from rich.table import Table

from electrodb.cli.audit import model_audit
from electrodb.cli.committee import committee_commands, committee_table
from electrodb.cli.common import console, fail
from electrodb.cli.demo_committee import model_train_demo_committee
from electrodb.settings import get_settings
from electrodb.systems.long_range import LongRangeSettings

__all__ = ["model_app"]

model_app = typer.Typer(
    help="Train, fine-tune and list models; committees, audits and refine rounds.", no_args_is_help=True
)
model_app.add_typer(committee_commands)


def _long_range_option(value: str | None):
    """``--long-range``: a YAML/JSON mapping string, or the path of a YAML file holding one."""
    if value is None:
        return None

    path = Path(value).expanduser()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else yaml.safe_load(value)
    except yaml.YAMLError as exc:
        fail(f"--long-range is neither a YAML/JSON mapping nor a YAML file: {exc}")
    if isinstance(raw, dict) and set(raw) == {"long_range"}:  # a campaign-style file with the one key
        raw = raw["long_range"]
    if not isinstance(raw, dict):
        fail(f"--long-range must be a mapping such as '{{charges: ions, epsilon_r: 78.3}}', got {value!r}")
    try:
        return LongRangeSettings.model_validate(raw)
    except ValidationError as exc:
        fail(f"--long-range: {exc}")


@model_app.command("train")
def model_train(
    data: Annotated[Path, typer.Option(help="labelled extxyz (REF_energy, REF_forces)")],
    name: Annotated[str, typer.Option(help="model name")] = "electrodb-mace",
    foundation: Annotated[str | None, typer.Option(help="fine-tune this MACE file / foundation name")] = None,
    epochs: Annotated[int, typer.Option(help="epochs")] = 10,
    long_range: Annotated[
        str | None,
        typer.Option(
            "--long-range",
            help="delta learning: remove this long-range term from the labels, e.g. "
            '\'{"charges": "ions", "epsilon_r": 78.3, "method": "pme", "cutoff_A": 10}\' '
            "(YAML/JSON mapping or a YAML file; docs/long-range.md); campaigns then add it back",
        ),
    ] = None,
    salt: Annotated[
        str | None,
        typer.Option(help="salt formula(s), comma-separated (NaCl,LiCl): formal ion charges for --long-range"),
    ] = None,
) -> None:
    """Train (or fine-tune) a MACE model on labelled configurations and store it."""
    from ase.io import read

    from electrodb.flows.training import store_model
    from electrodb.models.mace_train import TrainingSettings, train_mace
    from electrodb.store.stores import get_stores

    term = _long_range_option(long_range)
    salts = [s.strip() for s in salt.split(",") if s.strip()] if salt else None
    configurations = read(data, index=":")
    settings = TrainingSettings(max_num_epochs=epochs, foundation_model=foundation)
    try:
        result = train_mace(
            configurations, settings, get_settings().work_dir / f"train-{name}", long_range=term, salts=salts
        )
    except ValueError as exc:  # charges that cannot be assigned, non-periodic data, ...
        fail(str(exc))
    with get_stores() as stores:
        doc = store_model(
            stores, result, name, {"source": str(data.resolve()), "n_configurations": len(configurations)}
        )
    console.print(f"model {doc.model_id} at {doc.path}: held-out force RMSE {doc.rmse_forces_eV_per_A:.3f} eV/Å")
    if doc.long_range is not None:
        console.print(
            f"trained with the long-range term removed ({result.long_range_charges}); campaigns using this model "
            "add it back automatically",
            soft_wrap=True,
            markup=False,
        )


@model_app.command("train-demo")
def model_train_demo(
    out: Annotated[Path, typer.Option(help="folder for demo-mace.model and its card")] = Path("electrodb/data"),
    labelled: Annotated[
        list[Path] | None, typer.Option(help="train on these labelled extxyz files instead of sampling anew")
    ] = None,
) -> None:
    """Train the demo's small MACE (sample, label with CHGNet-r2SCAN, train) and write it with its card.

    This is how the shipped electrodb/data/demo-mace.model was made; `electrodb demo --retrain` does the same live.
    """
    from electrodb.cli.demo_model import train_demo_model, write_packaged_model

    dataset, result = train_demo_model(console.log, labelled=labelled)
    model_path, card_path = write_packaged_model(dataset, result, out)
    console.print(f"wrote {model_path} ({result.model_id}) and {card_path}", soft_wrap=True)


@model_app.command("register")
def model_register(
    path: Path,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust", help="trust this file's bytes (by sha256): a pickled MACE .model runs code when it is loaded"
        ),
    ] = False,
) -> None:
    """Register a model file once so that campaigns may load it (docs/models.md).

    A MACE .model file is a Python pickle, and unpickling it runs whatever code its author put in it: it is loaded
    only after `electrodb model register PATH --trust`, which records its sha256 in the data folder. Models shipped
    with ElectroDB or trained by it are trusted already; NequIP TorchScript files run no pickled code.
    """
    from electrodb.models.files import ModelError, file_sha256
    from electrodb.models.loader import load_model
    from electrodb.models.reference import ModelRef
    from electrodb.models.trust import record_trust

    if not path.is_file():
        fail(f"model file {path} does not exist (or is not a file); give the path of a .model or deployed .pth")
    try:
        ref = ModelRef.parse(str(path))
        if ref.kind == "mace_file":
            digest = file_sha256(path)
            if not trust:
                fail(
                    f"{path} ({digest[:19]}...) is a pickled MACE model, and loading a pickle runs code; if you "
                    f"trust its source, run: electrodb model register {path} --trust"
                )
            record_trust(path, digest)
        identity = load_model(ref, device="cpu").identity
        record = record_trust(
            path,
            identity.model_id,
            source="registered --trust" if trust else "registered",
            name=identity.name,
            kind=identity.kind,
            elements=identity.elements,
            r_max=identity.r_max,
        )
    except ModelError as exc:
        fail(str(exc))
    elements = ", ".join(record.get("elements") or []) or "unknown"
    console.print(
        f"registered {path} ({identity.model_id}): {identity.kind}, elements {elements}, cutoff {identity.r_max} Å",
        soft_wrap=True,
        markup=False,
    )


@model_app.command("list")
def model_list() -> None:
    """Models and committees recorded in the database."""
    from electrodb.store.stores import get_stores

    with get_stores() as stores:
        table = Table("model id", "name", "force RMSE (eV/Å)", "path")
        for doc in stores.models.query({}):
            rmse = doc.get("rmse_forces_eV_per_A")
            table.add_row(
                doc["model_id"][:23], doc.get("name", ""), f"{rmse:.3f}" if rmse else "-", doc.get("path", "")
            )
        committees = committee_table(stores)
    console.print(table, *committees)


model_app.command("train-demo-committee")(model_train_demo_committee)
model_app.command("audit")(model_audit)
