"""The command line, end to end on synthetic trajectories: plan, ingest errors, build, plot, export, db info."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from electrodb.cli.main import app
from tests.synthetic import write_brownian_trajectory

runner = CliRunner()


def test_campaign_plan_prints_counts_and_density_source(tmp_path, settings):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: p\nsalts: [NaCl, LiTFSI]\nconcentrations: [1.0]\nsize: {n_waters: 128}\nmodel: m.model\n")
    result = runner.invoke(app, ["campaign", "plan", str(spec)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "NaCl" in result.output and "Laliberte" in result.output and "estimate" in result.output


def test_bad_campaign_exits_with_message(tmp_path, settings):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: p\nsalts: [NaCl]\nconcentrations: [40]\nmodel: m.model\nallow_above_solubility: true\n")
    result = runner.invoke(app, ["campaign", "plan", str(spec)], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "packing limit" in result.output


def test_build_plot_export_and_info(tmp_path, stores):
    doc = write_brownian_trajectory(stores, "NaCl", 2.0, n_frames=150, seed=3)
    result = runner.invoke(app, ["build"])
    assert result.exit_code == 0, result.output
    for kind in ("rdf", "msd"):
        out = tmp_path / f"{kind}.png"
        result = runner.invoke(app, ["plot", kind, doc.trajectory_id[:8], "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert runner.invoke(app, ["plot", "rdf", "no-such-id"]).exit_code == 2
    table = tmp_path / "out.csv"
    result = runner.invoke(app, ["export", "--format", "csv", "--out", str(table), "--salt", "NaCl"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(table)
    assert len(df) == 1 and "D_cation_1e-9m2_s" in df.columns and df["salt"][0] == "NaCl"
    result = runner.invoke(app, ["db", "info"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "trajectories" in result.output and "embedded" in result.output


def test_ingest_error_is_clear(tmp_path, settings):
    missing = tmp_path / "nope.extxyz"
    result = runner.invoke(
        app,
        ["ingest", str(missing), "--salt", "NaCl", "--temperature", "298", "--timestep-fs", "0.5", "--interval", "10"],
    )
    assert result.exit_code == 2 and "does not exist" in result.output


def test_errors_are_never_wrapped_whatever_the_path_or_width(tmp_path, settings):
    """A long path on a narrow terminal: the message stays on one line, verbatim (also its [brackets])."""
    deep = tmp_path / ("a-rather-long-folder-name-" * 6) / "[x]"
    missing = deep / "nope.extxyz"
    for columns in ("40", "80", "300"):
        result = runner.invoke(
            app,
            [
                "ingest",
                str(missing),
                "--salt",
                "NaCl",
                "--temperature",
                "298",
                "--timestep-fs",
                "0.5",
                "--interval",
                "1",
            ],
            env={"COLUMNS": columns},
        )
        assert result.exit_code == 2
        line = next(x for x in result.output.splitlines() if x.startswith("error:"))
        assert str(missing) in line and "does not exist" in line, result.output


def test_export_never_clobbers_what_it_was_not_asked_to_write(tmp_path, stores):
    write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=5)
    assert runner.invoke(app, ["build"]).exit_code == 0
    keep = tmp_path / "keep.csv"
    keep.write_text("precious\n")
    link = tmp_path / "link.csv"
    link.symlink_to(keep)
    cases = {
        str(link): "symbolic link",
        "/dev/full": "not a regular file",
        str(tmp_path): "is a directory",
        "/proc/x/out.csv": "does not exist",
        str(tmp_path / "missing" / "out.csv"): "does not exist",
    }
    for target, message in cases.items():
        result = runner.invoke(app, ["export", "--format", "csv", "--out", target])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, target
    assert keep.read_text() == "precious\n" and link.is_symlink()
    assert not list(tmp_path.rglob("*.part"))
    good = tmp_path / "good.csv"
    assert runner.invoke(app, ["export", "--format", "csv", "--out", str(good)]).exit_code == 0
    assert good.read_text().startswith("electrolyte_id") or "salt" in good.read_text().splitlines()[0]


def test_campaign_status_lists_each_system_with_its_reason(tmp_path, stores):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: s\nsalts: [NaCl, LiCl]\nconcentrations: [1.0]\nsize: {n_waters: 64}\nmodel: m.model\n")
    from electrodb.systems.campaign import Campaign

    first = Campaign.from_yaml(spec).systems()[0]
    stores.trajectories.update(
        [
            {
                "trajectory_id": first.system_id,
                "status": "failed",
                "status_reason": "load model: ModelError: x",
                "n_frames": 0,
            }
        ],
        key="trajectory_id",
    )
    result = runner.invoke(app, ["campaign", "status", str(spec)])
    assert result.exit_code == 0, result.output
    assert "failed" in result.output and "ModelError: x" in result.output and "pending" in result.output
