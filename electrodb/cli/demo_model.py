"""The demo's MACE model: trained beforehand by ``electrodb model train-demo`` and shipped, or trained live.

No MACE weights can be downloaded here, so the demo makes its own model: it samples configurations of small
NaCl/LiCl boxes, labels them with CHGNet-r2SCAN (its weights ship with the ``chgnet`` wheel) and trains a small
MACE with ``mace_run_train``. Doing that inside every ``make demo`` costs minutes, so the package ships the
model that ``electrodb model train-demo`` produced (``electrodb/data/demo-mace.model``) with its card
(``demo-mace.json``: sampling and training settings, held-out errors, the command that made it, its sha256).
``electrodb demo --retrain`` trains it live instead, with the same settings. A demo model is not a production
potential: real campaigns pass a fine-tuned MACE file (``--model PATH``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from ase.io import read

from electrodb.flows.training import (
    LabelledDataset,
    SamplingSettings,
    decode_configurations,
    encode_configurations,
    materialize_model,
    sample_and_label,
    store_model,
)
from electrodb.models.files import file_sha256
from electrodb.models.mace_train import TrainingResult, TrainingSettings, train_mace
from electrodb.settings import get_settings
from electrodb.store.stores import ElectroDBStores
from electrodb.utils.safe_files import atomic_output

__all__ = [
    "DEMO_MODEL_NAME",
    "PACKAGED_CARD",
    "PACKAGED_MODEL",
    "demo_sampling",
    "demo_training",
    "ensure_demo_model",
    "train_demo_model",
]

DEMO_MODEL_NAME = "demo-mace"
PACKAGED_MODEL = "demo-mace.model"
PACKAGED_CARD = "demo-mace.json"

Log = Callable[[str], None]


def demo_sampling() -> Any:
    """Sampling recipe of the demo model (NaCl and LiCl at 1 and 3 mol/kg, 32–40 waters)."""

    return SamplingSettings(md_steps=20)


def demo_training() -> Any:
    """MACE settings of the demo model (16 channels, L = 1, r_max 4 Å; 12 epochs, stage two from 9)."""

    return TrainingSettings(max_num_epochs=12, start_swa=9)


def _dataset_from_files(paths: list[Path], log: Log) -> tuple[Any, list[Any]]:
    """Labelled configurations saved by an earlier run (extxyz with REF_energy/REF_forces) as a dataset record."""

    configurations = [atoms for path in paths for atoms in read(str(path), index=":", format="extxyz")]
    log(f"{len(configurations)} labelled configurations read from {', '.join(p.name for p in paths)}")
    dataset = LabelledDataset(
        n_configurations=len(configurations),
        n_skipped=0,
        labeller={"name": "chgnet:r2scan", "note": "labels read from files made by the demo sampling recipe"},
        sampling={**demo_sampling().model_dump(mode="json"), "from_files": [p.name for p in paths]},
        extxyz_zb64=encode_configurations(configurations),
        wall_time_s=0.0,
    )
    return dataset, configurations


def train_demo_model(log: Log, workdir: Path | None = None, labelled: list[Path] | None = None) -> tuple[Any, Any]:
    """Sample, label and train the demo model; return ``(LabelledDataset, TrainingResult)``.

    ``labelled`` skips sampling and labelling and trains on configurations an earlier run labelled (the
    ``train.xyz``/``valid.xyz`` that ``mace_run_train`` was given keep them).
    """

    if labelled:
        dataset, configurations = _dataset_from_files(labelled, log)
    else:
        dataset = sample_and_label(demo_sampling(), "chgnet:r2scan", log=log)
        n, skipped, wall = dataset.n_configurations, dataset.n_skipped, dataset.wall_time_s
        log(f"{n} labelled configurations ({skipped} rejected) in {wall:.0f} s")
        configurations = decode_configurations(dataset.extxyz_zb64)
    workdir = workdir or get_settings().work_dir / "train-demo-mace"
    result = train_mace(configurations, demo_training(), workdir, progress=log)
    log(
        f"trained MACE ({result.n_parameters} parameters) in {result.wall_time_s:.0f} s; held-out force RMSE "
        f"{result.rmse_forces_eV_per_A:.3f} eV/Å, energy RMSE {result.rmse_energy_meV_per_atom:.1f} meV/atom"
    )
    return dataset, result


def write_packaged_model(dataset: Any, result: Any, out_dir: Path) -> tuple[Path, Path]:
    """Copy the trained file to ``out_dir/demo-mace.model`` and write its card; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path, card_path = out_dir / PACKAGED_MODEL, out_dir / PACKAGED_CARD
    with atomic_output(model_path) as tmp:
        shutil.copyfile(result.model_path, tmp)
    training = result.model_dump(mode="json", exclude={"model_path", "log_path", "workdir", "command"})
    card = {
        "name": DEMO_MODEL_NAME,
        "model_id": result.model_id,
        "made_by": "electrodb model train-demo"
        + "".join(f" --labelled {name}" for name in dataset.sampling.get("from_files", [])),
        "purpose": "the demo's own small MACE; not a production potential",
        "training": training,
        "dataset": dataset.model_dump(mode="json", exclude={"extxyz_zb64"}),
    }
    with atomic_output(card_path) as tmp:
        tmp.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    return model_path, card_path


def _packaged() -> tuple[Path, dict[str, Any]] | None:
    folder = resources.files("electrodb.data")
    model, card = folder.joinpath(PACKAGED_MODEL), folder.joinpath(PACKAGED_CARD)
    if not (model.is_file() and card.is_file()):
        return None
    return Path(str(model)), json.loads(card.read_text(encoding="utf-8"))


def ensure_demo_model(stores: ElectroDBStores, log: Log, retrain: bool = False) -> tuple[Path, dict[str, Any]]:
    """(model file, model document) of the demo model: cached in the store, shipped, or trained now.

    ``retrain`` skips the cache and the shipped file and trains live (minutes on 2 cores).
    """

    if not retrain:
        cached = stores.models.query_one({"name": DEMO_MODEL_NAME}, sort={"last_updated": -1})
        shipped = _packaged()
        if shipped is not None:
            path, card = shipped
            digest = file_sha256(path)
            if digest != card["model_id"]:
                raise RuntimeError(
                    f"the shipped demo model {path} does not match its card ({digest} != {card['model_id']}); "
                    "reinstall ElectroDB or run `electrodb demo --retrain`"
                )
            if cached is None or cached["model_id"] != card["model_id"]:
                result = TrainingResult(**{**card["training"], "model_path": str(path)})
                doc = store_model(stores, result, DEMO_MODEL_NAME, card["dataset"])
                cached = doc.model_dump(mode="json")
            log(
                f"demo model: the shipped {DEMO_MODEL_NAME} ({card['training'].get('n_parameters')} parameters, "
                f"held-out force RMSE {card['training']['rmse_forces_eV_per_A']:.3f} eV/Å; made by "
                f"`{card['made_by']}`; `electrodb demo --retrain` trains it live)"
            )
        elif cached is not None:
            log(f"demo model: reusing the cached {cached['model_id'][:23]}")
        if cached is not None:
            return materialize_model(cached["model_id"], stores), cached
    started = time.perf_counter()
    dataset, result = train_demo_model(log)
    doc = store_model(stores, result, DEMO_MODEL_NAME, dataset.model_dump(mode="json", exclude={"extxyz_zb64"}))
    log(f"demo model ready in {time.perf_counter() - started:.0f} s")
    return materialize_model(doc.model_id, stores), doc.model_dump(mode="json")
