"""The demo's model committee: the shipped demo MACE (the driver) and three members trained like it, shipped too.

``electrodb model train-demo-committee`` trains members 1..K−1 with the demo model's own recipe
(:func:`~electrodb.cli.demo_model.demo_training`, each with its own seed, on a bootstrap resample of the demo's
labelled configurations), evaluates all K on calibration configurations held out from every member (sampled with
another seed, hotter and more perturbed, labelled by the same CHGNet-r2SCAN teacher), calibrates the σ_F threshold
(:func:`electrodb.flows.committee.calibrate_committee`) and writes the member files, one card per member (so they are
trusted like the shipped demo model) and the committee's card with its calibration and its data. ``electrodb demo``
registers that committee (:func:`ensure_demo_committee`) and audits its runs with it; ``electrodb model refine
--committee demo-mace-committee`` refines it.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import zlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from electrodb.utils.safe_files import atomic_output

# The committee, training and store modules import torch and MACE (seconds): each function imports them itself, so
# that registering the command keeps `electrodb --help` fast.

__all__ = [
    "DEMO_COMMITTEE_NAME",
    "ensure_demo_committee",
    "model_train_demo_committee",
    "train_demo_committee",
    "write_packaged_committee",
]

DEMO_COMMITTEE_NAME = "demo-mace-committee"
COMMITTEE_CARD = "demo-mace-committee.json"
COMMITTEE_DATA = "demo-mace-committee-data.extxyz.gz"
Log = Callable[[str], None]
#: Bootstrap and training seed of member k is BASE_SEED + k.
BASE_SEED = 100


DEMO_MODEL_NAME = "demo-mace"  # electrodb.cli.demo_model.DEMO_MODEL_NAME (heavy to import)


def _member_name(k: int) -> str:
    return f"{DEMO_MODEL_NAME}-m{k}"


def train_demo_committee(
    labelled: list[Path], calibration: list[Path], k: int, workdir: Path, log: Log, *, reuse: bool = True
) -> tuple[Any, dict[str, Any]]:
    """Members 1..k−1 beside the shipped demo model, and their calibration.

    Parameters
    ----------
    labelled
        extxyz files of the demo's labelled configurations (``REF_energy``/``REF_forces``).
    calibration
        extxyz files of configurations no member trains on, labelled by the same teacher.
    k
        Committee size (the shipped demo model is member 0, the driver).
    workdir
        One folder per member (``member<k>``); with ``reuse`` a member whose ``training_result.json`` still matches
        its model file is not trained again.
    """
    import numpy as np
    from ase.io import read

    from electrodb.cli.demo_model import demo_training
    from electrodb.flows.committee import calibrate_committee
    from electrodb.models.committee import CommitteeSplits, CommitteeTraining, encode_extxyz
    from electrodb.models.files import file_sha256
    from electrodb.models.mace_train import TrainingResult, train_mace

    configurations = [a for p in labelled for a in read(str(p), index=":", format="extxyz")]
    held_out = [a for p in calibration for a in read(str(p), index=":", format="extxyz")]
    driver_path, driver_card = _shipped_driver()
    members = [TrainingResult(**{**driver_card["training"], "model_path": str(driver_path)})]
    base = demo_training()
    splits_train = [list(range(len(configurations)))]
    for member in range(1, k):
        seed = BASE_SEED + member
        folder = workdir / f"member{member}"
        saved = folder / "training_result.json"
        index = np.sort(np.random.default_rng(seed).choice(len(configurations), len(configurations), replace=True))
        if reuse and saved.is_file():
            result = TrainingResult.model_validate_json(saved.read_text(encoding="utf-8"))
            if Path(result.model_path).is_file() and file_sha256(result.model_path) == result.model_id:
                log(f"member {member}: reusing {result.model_id[:23]} from {folder}")
                members.append(result)
                splits_train.append(index.tolist())
                continue
        log(f"member {member}: training (seed {seed}, bootstrap resample of {len(configurations)} configurations)")
        result = train_mace([configurations[i] for i in index], base.model_copy(update={"seed": seed}), folder)
        members.append(result)
        splits_train.append(index.tolist())
    n = len(configurations)
    training = CommitteeTraining(
        members=members,
        seeds=[base.seed, *(BASE_SEED + m for m in range(1, k))],
        split="bootstrap",
        splits=CommitteeSplits(
            calibration=list(range(n, n + len(held_out))), train=splits_train, valid=[[] for _ in range(k)]
        ),
        settings={"training": base.model_dump(mode="json"), "target_error_eV_per_A": 0.5, "k": k},
        elements=members[0].elements,
        r_max=members[0].r_max,
        n_configurations=n + len(held_out),
        data_zb64=encode_extxyz([*configurations, *held_out]),
    )
    calibrated = calibrate_committee(training)
    return training, calibrated


def _shipped_driver() -> tuple[Path, dict[str, Any]]:
    from electrodb.cli.demo_model import PACKAGED_CARD, PACKAGED_MODEL

    folder = resources.files("electrodb.data")
    path = Path(str(folder.joinpath(PACKAGED_MODEL)))
    return path, json.loads(folder.joinpath(PACKAGED_CARD).read_text(encoding="utf-8"))


def write_packaged_committee(training: Any, calibrated: dict[str, Any], out: Path) -> list[Path]:
    """Write members 1..K−1 (``demo-mace-m<k>.model`` with cards), the data and the committee card to ``out``."""
    from electrodb.cli.demo_model import PACKAGED_MODEL
    from electrodb.documents.committee import committee_id

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k, member in enumerate(training.members[1:], start=1):
        model, card = out / f"{_member_name(k)}.model", out / f"{_member_name(k)}.json"
        with atomic_output(model) as tmp:
            shutil.copyfile(member.model_path, tmp)
        record = {
            "name": _member_name(k),
            "model_id": member.model_id,
            "made_by": "electrodb model train-demo-committee",
            "purpose": f"member {k} of the demo committee {DEMO_COMMITTEE_NAME}; not a production potential",
            "training": member.model_dump(mode="json", exclude={"model_path", "log_path", "workdir", "command"}),
        }
        with atomic_output(card) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        written += [model, card]
    data = out / COMMITTEE_DATA
    with atomic_output(data) as tmp:
        tmp.write_bytes(gzip.compress(zlib.decompress(base64.b64decode(training.data_zb64)), 9))
    card = out / COMMITTEE_CARD
    record = {
        "name": DEMO_COMMITTEE_NAME,
        "committee_id": committee_id(training.model_ids, 0),
        "member_ids": training.model_ids,
        "member_files": [PACKAGED_MODEL, *(f"{_member_name(k)}.model" for k in range(1, training.k))],
        "made_by": "electrodb model train-demo-committee",
        "training": training.model_dump(mode="json", exclude={"members", "data_zb64"}),
        "members": [
            m.model_dump(mode="json", exclude={"model_path", "log_path", "workdir", "command"})
            for m in training.members
        ],
        "calibrated": calibrated,
        "data": COMMITTEE_DATA,
    }
    with atomic_output(card) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return [*written, data, card]


def ensure_demo_committee(stores: Any, log: Log) -> Any:
    """Register the shipped demo committee in ``stores`` (once); None when the package ships none."""
    from electrodb.documents.committee import CommitteeDocument
    from electrodb.flows.committee import register_committee
    from electrodb.models.committee import CommitteeTraining
    from electrodb.models.files import file_sha256
    from electrodb.models.mace_train import TrainingResult

    folder = resources.files("electrodb.data")
    card_file = folder.joinpath(COMMITTEE_CARD)
    if not card_file.is_file():
        return None
    card = json.loads(card_file.read_text(encoding="utf-8"))
    found = stores.committees.query_one({"committee_id": card["committee_id"]})
    if found is not None and found.get("calibration") == card["calibrated"]["calibration"]:
        return CommitteeDocument(**{k: v for k, v in found.items() if k != "_id"})
    # absent, or registered from an earlier card (a new calibration of the same members): register the card's
    paths = [Path(str(folder.joinpath(name))) for name in card["member_files"]]
    for path, expected in zip(paths, card["member_ids"], strict=True):
        if file_sha256(path) != expected:
            raise RuntimeError(f"the shipped committee member {path} does not match its card; reinstall ElectroDB")
    members = [TrainingResult(**{**m, "model_path": str(p)}) for m, p in zip(card["members"], paths, strict=True)]
    text = gzip.decompress(Path(str(folder.joinpath(card["data"]))).read_bytes())
    training = CommitteeTraining(
        **card["training"], members=members, data_zb64=base64.b64encode(zlib.compress(text, 6)).decode("ascii")
    )
    doc = register_committee(stores, training, DEMO_COMMITTEE_NAME, card["calibrated"])
    cal = card["calibrated"]["calibration"]
    log(
        f"demo committee: {training.k} members (the demo model drives), σ_F threshold "
        f"{doc.threshold_eV_per_A:.2f} eV/Å, Spearman ρ(σ_F, error) {cal.get('spearman_atom', float('nan')):.2f} "
        "on held-out configurations"
    )
    return doc


def model_train_demo_committee(
    labelled: Annotated[list[Path], typer.Option(help="the demo's labelled extxyz files (REF_energy, REF_forces)")],
    calibration: Annotated[
        list[Path], typer.Option(help="labelled extxyz files no member trains on, for the σ_F threshold")
    ],
    k: Annotated[int, typer.Option(min=2, help="committee size; the shipped demo model is member 0")] = 4,
    workdir: Annotated[Path, typer.Option(help="one folder per trained member (reused when intact)")] = Path(
        "train-demo-committee"
    ),
    out: Annotated[Path, typer.Option(help="folder for the member files, their cards and the committee card")] = Path(
        "electrodb/data"
    ),
) -> None:
    """Train the demo committee's other members like the demo model, calibrate its σ_F threshold, and write it.

    This is how the shipped electrodb/data/demo-mace-committee.json and its members were made.
    """
    from electrodb.cli.common import console, fail

    for path in [*labelled, *calibration]:
        if not path.is_file():
            fail(f"{path} does not exist; give labelled extxyz files (electrodb model train-demo writes them)")
    from electrodb.models.files import ModelError
    from electrodb.models.mace_command import TrainingError

    try:
        training, calibrated = train_demo_committee(labelled, calibration, k, workdir, console.log)
    except (ModelError, TrainingError, ValueError) as exc:
        fail(str(exc))
    for path in write_packaged_committee(training, calibrated, out):
        console.print(f"wrote {path}", soft_wrap=True, markup=False)
    cal = calibrated["calibration"]
    console.print(
        f"σ_F threshold {cal['threshold_eV_per_A']:.3f} eV/Å (α = {cal['scale']:.2f}); Spearman ρ per atom "
        f"{cal['spearman_atom']:.2f}, per configuration {cal['spearman_frame']:.2f}; driver force RMSE on the "
        f"calibration set {calibrated['driver_errors']['rmse_forces_eV_per_A']:.3f} eV/Å",
        soft_wrap=True,
        markup=False,
    )
