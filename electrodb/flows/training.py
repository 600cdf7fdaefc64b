"""jobflow Makers that make a MACE model for a campaign: sample configurations, label them, train or fine-tune.

Sampling follows the seed workflows: short MD of the campaign's own boxes (several concentrations, a
temperature above the target for diversity) with the labelling model, plus small Gaussian displacements and
cell strains around every sampled frame. Labels come from a reference the user brings (DFT extxyz) or an
offline model (CHGNet-r2SCAN ships with the ``chgnet`` wheel). The trained model file is stored in the blob
store with its identity, held-out errors and the exact training settings, and is usable as a campaign's
``model:`` reference.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.optimize import FIRE
from jobflow import Flow, Maker
from pydantic import BaseModel, Field

from electrodb import __version__
from electrodb.flows.job_io import job_stores, store_job
from electrodb.models.files import ModelError, file_sha256
from electrodb.models.labelling import label_configurations, perturb_configurations
from electrodb.models.loader import load_model
from electrodb.models.mace_train import TrainingResult, TrainingSettings, train_mace
from electrodb.models.reference import ModelRef
from electrodb.settings import get_settings
from electrodb.store.stores import ElectroDBStores
from electrodb.systems.boxes import box_counts, pack_box
from electrodb.systems.long_range import LongRangeSettings
from electrodb.utils.provenance import utcnow
from electrodb.utils.safe_files import atomic_output

__all__ = [
    "ConfigurationSamplingMaker",
    "FineTuneMaker",
    "LabelledDataset",
    "ModelDocument",
    "SamplingSettings",
    "TrainMaker",
    "materialize_model",
    "model_long_range",
    "resolve_long_range",
]

Log = Callable[[str], None]


def encode_configurations(configurations: list[Atoms]) -> str:
    """extxyz text, zlib-compressed, base64: a JSON-safe way to pass labelled data between jobs."""
    buffer = io.StringIO()
    write(buffer, configurations, format="extxyz")
    return base64.b64encode(zlib.compress(buffer.getvalue().encode(), 6)).decode("ascii")


def decode_configurations(blob: str) -> list[Atoms]:
    text = zlib.decompress(base64.b64decode(blob)).decode()
    return read(io.StringIO(text), index=":", format="extxyz")


class SamplingSettings(BaseModel):
    """Which boxes to sample and how (defaults: the demo recipe measured in shared/notes)."""

    salts: list[str] = Field(default_factory=lambda: ["NaCl", "LiCl"])
    molalities: list[float] = Field(default_factory=lambda: [1.0, 3.0])
    n_waters: list[int] = Field(default_factory=lambda: [32, 40])
    packing_tolerance_A: list[float] = Field(default_factory=lambda: [2.0, 1.8])
    minimize_steps: int = Field(5, ge=0, description="FIRE steps with the labelling model before MD")
    md_steps: int = Field(10, ge=0, description="short MD per box with the labelling model")
    md_temperature: float = Field(400.0, description="K; above the campaign temperature for diversity")
    md_timestep_fs: float = 0.5
    md_sample_every: int = 5
    perturbations_per_frame: int = 8
    displacement_A: tuple[float, float] = (0.02, 0.07)
    strain: float = 0.02
    seed: int = 7


class LabelledDataset(BaseModel):
    """Labelled configurations (REF_energy/REF_forces in extxyz) and how they were made."""

    n_configurations: int
    n_skipped: int
    labeller: dict[str, Any]
    sampling: dict[str, Any]
    extxyz_zb64: str = Field(repr=False)
    wall_time_s: float


def sample_and_label(sampling: SamplingSettings, labeller: str, log: Log | None = None) -> LabelledDataset:
    """Pack the sampling boxes, run short MD with the labelling model, perturb, label."""
    started = time.perf_counter()
    model = load_model(ModelRef.parse(labeller))
    calc = model.calculator()
    rng = np.random.default_rng(sampling.seed)
    frames: list[Atoms] = []
    k = 0
    for salt in sampling.salts:
        for molality in sampling.molalities:
            n_waters = sampling.n_waters[k % len(sampling.n_waters)]
            tolerance = sampling.packing_tolerance_A[k % len(sampling.packing_tolerance_A)]
            k += 1
            box = pack_box(box_counts(salt, molality, n_waters=n_waters), seed=sampling.seed + k, tolerance=tolerance)
            atoms = box.atoms.copy()
            atoms.calc = calc
            if sampling.minimize_steps:
                FIRE(atoms, logfile=None).run(fmax=0.5, steps=sampling.minimize_steps)
            frames.append(_snapshot(atoms))
            if sampling.md_steps:
                MaxwellBoltzmannDistribution(atoms, temperature_K=sampling.md_temperature, rng=rng)
                dyn = Langevin(
                    atoms,
                    sampling.md_timestep_fs * units.fs,
                    temperature_K=sampling.md_temperature,
                    friction=0.02 / units.fs,
                    fixcm=False,
                    rng=rng,
                )
                dyn.attach(lambda a=atoms: frames.append(_snapshot(a)), interval=sampling.md_sample_every)
                dyn.run(sampling.md_steps)
            if log:
                log(f"sampled {salt} {molality} m ({len(atoms)} atoms): {len(frames)} frames so far")
    configurations = frames + perturb_configurations(
        frames,
        sampling.perturbations_per_frame,
        displacement_A=sampling.displacement_A,
        strain=sampling.strain,
        seed=sampling.seed,
    )
    if log:
        log(f"labelling {len(configurations)} configurations with {labeller}")
    every = max(1, len(configurations) // 6)  # a handful of lines, not one per configuration

    def progress(i: int, n: int) -> None:
        if log and (i % every == 0 or i == n):
            log(f"labelled {i}/{n} configurations ({time.perf_counter() - started:.0f} s)")

    labelled = label_configurations(configurations, calc, progress=progress)
    return LabelledDataset(
        n_configurations=len(labelled),
        n_skipped=labelled.n_skipped,
        labeller=model.identity.model_dump(mode="json"),
        sampling=sampling.model_dump(mode="json"),
        extxyz_zb64=encode_configurations(list(labelled)),
        wall_time_s=time.perf_counter() - started,
    )


def _snapshot(atoms: Atoms) -> Atoms:
    """Positions and cell, plus the box labels (role, mol_id, ion_center) the long-range charges need."""
    snap = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions(), cell=atoms.cell, pbc=True)
    for name in ("role", "mol_id", "ion_center"):
        if name in atoms.arrays:
            snap.arrays[name] = np.array(atoms.arrays[name])
    return snap


class ModelDocument(BaseModel):
    """A trained model: identity, file location, held-out errors, training settings and data provenance."""

    model_id: str
    name: str
    kind: str = "mace_file"
    path: str
    training: dict[str, Any]
    dataset: dict[str, Any] = Field(default_factory=dict)
    rmse_forces_eV_per_A: float | None = None
    rmse_energy_meV_per_atom: float | None = None
    long_range: dict[str, Any] | None = Field(
        None,
        description="LongRangeSettings removed from the training labels (delta learning); MD must add it back",
    )
    code_version: str = __version__


def store_model(stores: ElectroDBStores, result: TrainingResult, name: str, dataset: dict[str, Any]) -> ModelDocument:
    """Copy the model file into the blob store and record its document in ``models`` (idempotent)."""
    raw = Path(result.model_path).read_bytes()
    stores.data.update(
        [
            {
                "blob_uuid": f"model:{result.model_id}",
                "kind": "model_file",
                "model_id": result.model_id,
                "zb64": base64.b64encode(zlib.compress(raw, 6)).decode("ascii"),
                "last_updated": utcnow(),
            }
        ],
        key="blob_uuid",
    )
    doc = ModelDocument(
        model_id=result.model_id,
        name=name,
        path=result.model_path,
        training=result.model_dump(mode="json"),
        dataset=dataset,
        rmse_forces_eV_per_A=result.rmse_forces_eV_per_A,
        rmse_energy_meV_per_atom=result.rmse_energy_meV_per_atom,
        long_range=result.long_range,
    )
    stores.models.update([{**doc.model_dump(mode="json"), "last_updated": utcnow()}], key="model_id")
    return doc


def model_long_range(stores: ElectroDBStores, model_id: str) -> Any:
    """The long-range term a stored model was trained without (``LongRangeSettings``), or None.

    None also when the model has no document in ``models`` (a foundation model, a file trained elsewhere).
    """
    doc = stores.models.query_one({"model_id": model_id}, properties=["model_id", "long_range"])
    recorded = (doc or {}).get("long_range")
    return LongRangeSettings.model_validate(recorded) if recorded else None


def resolve_long_range(requested: Any, recorded: Any, model: str = "the model") -> tuple[Any, str | None]:
    """The long-range term to run a model with, and where it came from (``'campaign'``, ``'model'`` or None).

    ``requested`` is the campaign's ``long_range`` (None: not given), ``recorded`` the term the model was trained
    without (:func:`model_long_range`). A delta-learned model gets its recorded term when none is requested, and
    a different requested term is refused (:class:`~electrodb.models.files.ModelError`): the NNP only reproduces the
    reference together with exactly the term that was removed from its labels.
    """
    if recorded is None:
        return requested, ("campaign" if requested is not None else None)
    if requested is None:
        return recorded, "model"
    if requested != recorded:
        raise ModelError(
            f"{model} was trained with the long-range term {recorded.model_dump(mode='json')} removed from its "
            f"labels (delta learning), but the campaign asks for long_range {requested.model_dump(mode='json')}; "
            "remove the campaign's long_range (the model's term is added automatically) or give exactly that term"
        )
    return recorded, "model"


def materialize_model(model_id: str, stores: ElectroDBStores, folder: Path | None = None) -> Path:
    """Write a stored model file to ``folder`` (default: the data folder's ``models/``) if absent; return its path.

    Lets a worker on another machine use a model trained elsewhere: the blob store travels with the database.
    MACE files are pickles that run code when loaded, so the bytes are checked before anything can load them:
    the stored blob must hash to ``model_id`` (else :class:`~electrodb.models.files.ModelError`, and nothing is
    written), an existing file is reused only if its sha256 is ``model_id`` (else it is replaced by the
    verified blob), and the file is written atomically (temporary file, then rename). Load the returned path
    with ``load_model(path, expected_id=model_id)`` to check it once more at load time.
    """
    if not model_id.startswith("sha256:") or len(model_id) != 7 + 64:
        raise ModelError(f"{model_id!r} is not a stored model id ('sha256:' and 64 hex digits)")
    folder = folder or get_settings().models_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_id.removeprefix('sha256:')[:16]}.model"
    if path.is_file() and not path.is_symlink() and file_sha256(path) == model_id:
        return path
    blob = stores.data.query_one({"blob_uuid": f"model:{model_id}"})
    if blob is None:
        raise FileNotFoundError(f"model {model_id} is not in the blob store; train it or pass a model file")
    try:
        raw = zlib.decompress(base64.b64decode(blob["zb64"]))
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise ModelError(f"stored model {model_id} is unreadable ({type(exc).__name__}: {exc}); retrain it") from exc
    digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
    if digest != model_id:
        raise ModelError(
            f"stored model {model_id[:23]}... is corrupt or was altered: its bytes hash to {digest[:23]}...; "
            f"refusing to write or load it. Retrain the model or restore the database from a backup"
        )
    with atomic_output(path) as tmp:
        tmp.write_bytes(raw)
    return path


@dataclass
class ConfigurationSamplingMaker(Maker):
    """Sample configurations of electrolyte boxes and label them with a reference model."""

    name: str = "sample and label"
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    labeller: str = "chgnet:r2scan"

    @store_job
    def make(self) -> LabelledDataset:
        return sample_and_label(self.sampling, self.labeller)


@dataclass
class TrainMaker(Maker):
    """Train a MACE model from scratch on labelled configurations with ``mace_run_train``."""

    name: str = "train mace"
    settings: TrainingSettings = field(default_factory=TrainingSettings)
    model_name: str = "electrodb-mace"
    workdir: str | None = None
    long_range: Any = None  # LongRangeSettings: train with this term removed (delta learning)
    salts: list[str] | None = None  # formal ion charges for long_range; default: the dataset's sampled salts

    @store_job
    def make(self, dataset: LabelledDataset) -> ModelDocument:
        configurations = decode_configurations(dataset.extxyz_zb64)
        workdir = Path(self.workdir) if self.workdir else get_settings().work_dir / f"train-{self.model_name}"
        salts = self.salts or dataset.sampling.get("salts")
        result = train_mace(configurations, self.settings, workdir, long_range=self.long_range, salts=salts)
        with job_stores("models", "data") as stores:
            return store_model(stores, result, self.model_name, dataset.model_dump(exclude={"extxyz_zb64"}))

    def flow(self, sampler: ConfigurationSamplingMaker) -> Flow:
        """sample/label -> train, as one Flow."""
        data = sampler.make()
        model = self.make(data.output)
        return Flow([data, model], output=model.output, name=self.name)


@dataclass
class FineTuneMaker(TrainMaker):
    """Fine-tune a foundation MACE file (e.g. MACE-MP-0 small) on labelled configurations.

    ``foundation_model`` is a MACE file path or a foundation name resolvable from the local model cache;
    architecture and cutoff then come from the foundation model.
    """

    name: str = "fine-tune mace"
    foundation_model: str = ""

    def __post_init__(self) -> None:
        if not self.foundation_model:
            raise ValueError("FineTuneMaker needs foundation_model (a MACE file or e.g. 'mace-mp-0:small')")
        self.settings = self.settings.model_copy(update={"foundation_model": self.foundation_model})
