"""Tests of electrodb.models.loader: reference parsing, foundation files, loading, identity, failures."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import units
from ase.build import molecule

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

from electrodb.models.files import FOUNDATION_MODELS, ModelError, file_sha256
from electrodb.models.loader import load_model
from electrodb.models.mace_train import TrainingResult
from electrodb.models.reference import ModelRef, resolve_foundation_path
from tests.model_factory import smoke_box


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("/some/where/model.model", "mace_file", "model.model"),
        ("relative.model", "mace_file", "relative.model"),
        ("mace-mp-0:small", "mace_foundation", "mace-mp-0:small"),
        ("mace-mp-0", "mace_foundation", "mace-mp-0:medium"),
        ("MACE-MP-0:large", "mace_foundation", "mace-mp-0:large"),
        ("mace-off:small", "mace_foundation", "mace-off:small"),
        ("mace-off23:large", "mace_foundation", "mace-off:large"),
        ("mace-mpa-0:medium", "mace_foundation", "mace-mpa-0:medium"),
        ("mace-mpa-0", "mace_foundation", "mace-mpa-0:medium"),
        ("chgnet", "chgnet", "chgnet:0.3.0"),
        ("chgnet:r2scan", "chgnet", "chgnet:r2scan"),
        ("chgnet:0.3.0", "chgnet", "chgnet:0.3.0"),
        ("sevennet-0", "sevennet", "sevennet-0"),
        ("nequip:/some/where/deployed.pth", "nequip", "deployed.pth"),
        ("NequIP:/x/m.pth?species=O,H&r_max=4.5", "nequip", "m.pth"),
    ],
)
def test_parse_kinds(spec: str, kind: str, name: str) -> None:
    ref = ModelRef.parse(spec)
    assert ref.kind == kind and ref.name == name
    assert ref.dtype == "float32" and ref.device == "auto"
    assert ModelRef.parse(ref) is ref


def test_parse_existing_file_and_options(tmp_path: Path) -> None:
    weird = tmp_path / "no_suffix"
    weird.write_bytes(b"")
    ref = ModelRef.parse(str(weird), dtype="float64", device="cpu")
    assert ref.kind == "mace_file" and ref.path == str(weird)
    assert ref.dtype == "float64" and ref.resolved_device == "cpu"
    assert ModelRef.parse("chgnet").resolved_device in ("cpu", "cuda")


@pytest.mark.parametrize("spec", ["", "mace-mp-0:huge", "chgnet:9.9", "nonsense"])
def test_parse_unknown(spec: str) -> None:
    with pytest.raises(ModelError):
        ModelRef.parse(spec)


def test_foundation_table_matches_mace() -> None:
    from mace.calculators import foundations_models as fm

    ours = {os.path.basename(u) for u in FOUNDATION_MODELS.values()}
    for key in ("small", "medium", "large", "medium-mpa-0"):
        assert os.path.basename(fm.mace_mp_urls[key]) in ours
    for url in fm.mace_off_urls.values():
        assert os.path.basename(url).split("?")[0] in ours


def test_missing_foundation_names_expected_file(tmp_path: Path) -> None:
    expected = tmp_path / "2023-12-10-mace-128-L0_energy_epoch-249.model"
    with pytest.raises(ModelError) as err:
        load_model("mace-mp-0:small", cache_dir=tmp_path)
    assert str(expected) in str(err.value) and "https://" in str(err.value)


def test_foundation_found_in_cache(smoke_model: TrainingResult, tmp_path: Path, monkeypatch) -> None:
    shutil.copy(smoke_model.model_path, tmp_path / "MACE-OFF23_small.model")
    loaded = load_model("mace-off:small", cache_dir=tmp_path)
    assert loaded.identity.kind == "mace_foundation" and loaded.identity.name == "mace-off:small"
    assert loaded.identity.model_id == smoke_model.model_id
    # mace's own downloader stores mace-mp files with '-' and '.' stripped; accepted too, and via the env var
    shutil.copy(smoke_model.model_path, tmp_path / "20231210mace128L0_energy_epoch249model")
    monkeypatch.setenv("ELECTRODB_MODEL_CACHE", str(tmp_path))
    assert resolve_foundation_path("mace-mp-0:small").parent == tmp_path


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.model"
    with pytest.raises(ModelError, match=r"nope\.model"):
        load_model(str(missing))


@pytest.mark.parametrize("content", ["random", "truncated", "not_a_module"])
def test_corrupt_file(content: str, smoke_model: TrainingResult, tmp_path: Path) -> None:
    bad = tmp_path / "bad.model"
    if content == "random":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    elif content == "truncated":
        data = Path(smoke_model.model_path).read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        import torch

        torch.save({"weights": torch.zeros(3)}, bad)
    with pytest.raises(ModelError, match="could not load MACE model from") as err:
        load_model(str(bad))
    assert not isinstance(err.value, pickle.UnpicklingError)
    assert str(bad) in str(err.value) and "torch.save" in str(err.value)


def test_identity_of_trained_model(smoke_model: TrainingResult) -> None:
    loaded = load_model(smoke_model.model_path)
    ident = loaded.identity
    digest = hashlib.sha256(Path(smoke_model.model_path).read_bytes()).hexdigest()
    assert ident.model_id == f"sha256:{digest}" == file_sha256(smoke_model.model_path)
    assert ident.kind == "mace_file" and ident.path == str(Path(smoke_model.model_path).resolve())
    assert ident.elements == ["H", "O", "Na", "Cl"]
    assert ident.r_max == pytest.approx(3.5)
    assert ident.n_parameters == smoke_model.n_parameters and ident.n_parameters > 0
    assert ident.package_versions["mace-torch"] and ident.package_versions["torch"]
    assert ident.dtype == "float32"
    assert load_model(smoke_model.model_path, dtype="float64").identity.dtype == "float64"


def test_check_elements(smoke_model: TrainingResult) -> None:
    loaded = load_model(smoke_model.model_path)
    loaded.check_elements(["H", "O", "Na", "Cl", "O"])
    with pytest.raises(ModelError) as err:
        loaded.check_elements(["H", "O", "Li", "Br"])
    message = str(err.value)
    assert "Br, Li" in message and "H, O, Na, Cl" in message


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_calculator_forces_finite(smoke_model: TrainingResult, dtype: str) -> None:
    atoms = smoke_box()
    atoms.calc = load_model(smoke_model.model_path, dtype=dtype, device="cpu").calculator()
    forces = atoms.get_forces()
    assert forces.shape == (len(atoms), 3) and np.all(np.isfinite(forces))
    assert np.isfinite(atoms.get_potential_energy())
    # forces sum to ~zero (translation invariance of a periodic model)
    assert np.allclose(forces.sum(axis=0), 0.0, atol=1e-3 if dtype == "float32" else 1e-8)


def test_langevin_md_runs(smoke_model: TrainingResult) -> None:
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    atoms = smoke_box()
    atoms.calc = load_model(smoke_model.model_path, device="cpu").calculator()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs, rng=np.random.default_rng(1))
    dyn.run(20)
    assert dyn.nsteps == 20
    assert np.all(np.isfinite(atoms.positions)) and np.isfinite(atoms.get_potential_energy())


def test_torch_model(smoke_model: TrainingResult) -> None:
    import torch

    loaded = load_model(smoke_model.model_path, device="cpu")
    module = loaded.torch_model()
    assert isinstance(module, torch.nn.Module)
    assert [int(z) for z in module.atomic_numbers] == [1, 8, 11, 17]
    assert next(module.parameters()).dtype == torch.float32


def test_chgnet_labels_water() -> None:
    import chgnet  # installed by make (the [teacher] extra): a missing package is a set-up failure

    from electrodb.models.labelling import ENERGY_KEY, FORCES_KEY, label_configurations

    loaded = load_model("chgnet:r2scan", device="cpu")
    ident = loaded.identity
    assert ident.kind == "chgnet" and ident.package_versions["chgnet"] == chgnet.__version__
    assert ident.model_id == f"name:chgnet:r2scan@chgnet=={chgnet.__version__}"
    loaded.check_elements(["H", "O", "Na", "Cl"])
    water = molecule("H2O")
    water.center(vacuum=3.0)
    water.pbc = True
    (labelled,) = label_configurations([water], loaded.calculator())
    assert np.isfinite(labelled.info[ENERGY_KEY])
    assert labelled.arrays[FORCES_KEY].shape == (3, 3) and np.all(np.isfinite(labelled.arrays[FORCES_KEY]))
    with pytest.raises(ModelError, match="only available for MACE"):
        loaded.torch_model()


def _store_blob(stores, model_id: str, raw: bytes) -> None:
    import base64
    import zlib

    stores.data.update(
        [
            {
                "blob_uuid": f"model:{model_id}",
                "kind": "model_file",
                "model_id": model_id,
                "zb64": base64.b64encode(zlib.compress(raw)).decode("ascii"),
            }
        ],
        key="blob_uuid",
    )


def test_materialize_verifies_stored_model(stores, smoke_model: TrainingResult, tmp_path: Path) -> None:
    from electrodb.flows.training import materialize_model

    raw = Path(smoke_model.model_path).read_bytes()
    model_id = smoke_model.model_id
    _store_blob(stores, model_id, raw)
    folder = tmp_path / "models"
    path = materialize_model(model_id, stores, folder)
    assert path.read_bytes() == raw
    assert load_model(str(path), expected_id=model_id).identity.model_id == model_id
    # a file altered on disk is not reused: it is replaced by the verified stored bytes
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    assert materialize_model(model_id, stores, folder).read_bytes() == raw
    # a stored model whose bytes were altered is refused, and nothing is written
    _store_blob(stores, model_id, raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    path.unlink()
    with pytest.raises(ModelError, match="corrupt or was altered"):
        materialize_model(model_id, stores, folder)
    assert not path.exists() and not list(folder.iterdir())
    with pytest.raises(ModelError, match="not a stored model id"):
        materialize_model("name:chgnet", stores, folder)
    with pytest.raises(FileNotFoundError):
        materialize_model("sha256:" + "0" * 64, stores, folder)


def test_altered_mace_file_is_refused(smoke_model: TrainingResult, tmp_path: Path) -> None:
    copy = tmp_path / "copy.model"
    shutil.copy(smoke_model.model_path, copy)
    loaded = load_model(str(copy), device="cpu")
    with pytest.raises(ModelError, match="refusing to load"):
        load_model(str(copy), expected_id="sha256:" + "0" * 64)
    copy.write_bytes(copy.read_bytes() + b"\0")  # changed after load_model identified it
    for build in (loaded.calculator, loaded.torch_model):
        with pytest.raises(ModelError, match="altered or replaced"):
            build()
