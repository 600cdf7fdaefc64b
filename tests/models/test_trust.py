"""Model files run no code without the user's trust: pickles need `electrodb model register PATH --trust`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from electrodb.cli.main import app
from electrodb.models.files import ModelError, file_sha256
from electrodb.models.loader import load_model, peek_model
from electrodb.models.trust import TRUST_ENV, model_metadata, trusted_record

runner = CliRunner()


class _Payload:
    """Unpickling this writes a marker file: what a malicious .model file could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


def _malicious_model(folder: Path, mace_file: Path | None = None) -> tuple[Path, Path]:
    """A .model whose unpickling writes ``folder/MARKER``: the bare payload, or a trojaned copy of ``mace_file``
    (a real MACE module carrying the payload, as an attacker would ship it)."""
    marker = folder / "MARKER"
    path = folder / "evil.model"
    if mace_file is None:
        torch.save(_Payload(marker), path)
    else:
        module = load_model(str(mace_file)).torch_model()
        module.payload = _Payload(marker)
        torch.save(module, path)
    return path, marker


def _spec(folder: Path, model: Path, salts: str = "[NaCl]", concentrations: str = "[1.0, 2.0]") -> Path:
    spec = folder / "spec.yaml"
    spec.write_text(
        f"name: trust\nsalts: {salts}\nconcentrations: {concentrations}\nsize: {{n_waters: 32}}\n"
        f"model: {model}\nmodel_cutoff_A: 4.0\n"
    )
    return spec


@pytest.mark.parametrize("trojaned", [False, True])
def test_the_payload_really_runs_code_when_unpickled(tmp_path, random_mace, trojaned):
    """The fixture is honest: torch.load of the file writes the marker (so its absence below means something)."""
    path, marker = _malicious_model(tmp_path, random_mace if trojaned else None)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


def test_a_bare_payload_is_refused_as_no_mace_model_without_running(tmp_path, settings):
    path, marker = _malicious_model(tmp_path)
    with pytest.raises(ModelError, match="holds no MACE module"):
        load_model(str(path))
    with pytest.raises(ModelError, match="--trust"):
        peek_model(str(path))
    assert not marker.exists()


def test_an_untrusted_pickle_is_never_unpickled(tmp_path, settings, random_mace):
    path, marker = _malicious_model(tmp_path, random_mace)
    with pytest.raises(ModelError, match=r"electrodb model register .*evil\.model --trust"):
        load_model(str(path))
    with pytest.raises(ModelError, match="--trust"):
        peek_model(str(path))
    # a card beside the file is data, never trust: it gives the cutoff, the file still does not load
    (tmp_path / "evil.json").write_text(f'{{"model_id": "{file_sha256(path)}", "r_max": 5.0, "elements": ["H"]}}')
    assert peek_model(str(path))["r_max"] == 5.0 and model_metadata(path)["trusted"] is False
    with pytest.raises(ModelError, match="--trust"):
        load_model(str(path))
    assert not marker.exists()


def test_campaign_plan_and_run_never_run_an_untrusted_pickle(tmp_path, stores, random_mace):
    path, marker = _malicious_model(tmp_path, random_mace)
    spec = _spec(tmp_path, path)
    plan = runner.invoke(app, ["campaign", "plan", str(spec)], env={"COLUMNS": "300"})
    assert plan.exit_code == 0, plan.output
    assert "electrodb model register" in plan.output and not marker.exists()
    run = runner.invoke(app, ["campaign", "run", str(spec)], env={"COLUMNS": "300"})
    assert run.exit_code == 2, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"electrodb model register {path} --trust" in errors[0], run.output
    assert "Traceback" not in run.output and not marker.exists()
    assert stores.systems.count({"atoms": {"$exists": True}}) == 0  # nothing was packed
    status = runner.invoke(app, ["campaign", "status", str(spec)], env={"COLUMNS": "400"})
    assert status.exit_code == 0 and "failed 2" in status.output and "--trust" in status.output, status.output
    assert not marker.exists()
    refused = runner.invoke(app, ["model", "register", str(path)])  # without --trust: refused, nothing runs
    assert refused.exit_code == 2 and "--trust" in refused.output and not marker.exists()


def test_register_with_trust_lets_a_model_load_and_plan_reads_its_cutoff(tmp_path, settings, random_mace, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)  # forget the test suite's own trust in its models
    model = tmp_path / "mine.model"
    shutil.copyfile(random_mace, model)
    with pytest.raises(ModelError, match="--trust"):
        load_model(str(model))
    refused = runner.invoke(app, ["model", "register", str(model)])
    assert refused.exit_code == 2 and "--trust" in refused.output and trusted_record(file_sha256(model)) is None
    result = runner.invoke(app, ["model", "register", str(model), "--trust"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    record = trusted_record(file_sha256(model))
    assert record["r_max"] == 4.0 and "Na" in record["elements"]
    assert (settings.data_dir / "trusted-models.json").is_file()
    assert load_model(str(model)).identity.r_max == 4.0

    def no_unpickling(*args, **kwargs):
        raise AssertionError("peek_model unpickled the model")

    monkeypatch.setattr(torch, "load", no_unpickling)
    assert peek_model(str(model))["r_max"] == 4.0  # from the registry, without unpickling


def test_the_shipped_demo_model_is_trusted_by_its_card(settings, monkeypatch):
    from electrodb.cli.demo_model import PACKAGED_CARD, PACKAGED_MODEL

    monkeypatch.delenv(TRUST_ENV, raising=False)
    folder = Path(__file__).resolve().parents[2] / "electrodb" / "data"
    digest = file_sha256(folder / PACKAGED_MODEL)
    assert trusted_record(digest)["source"] == "shipped with electrodb"
    assert (folder / PACKAGED_CARD).is_file()
    meta = peek_model(str(folder / PACKAGED_MODEL))
    assert meta["trusted"] and meta["r_max"] == 4.0 and "Li" in meta["elements"]
    assert load_model(str(folder / PACKAGED_MODEL)).identity.model_id == digest
