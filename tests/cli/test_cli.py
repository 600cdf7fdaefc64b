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


def test_campaign_run_checks_the_model_before_packing_and_status_says_why(tmp_path, stores, random_mace):
    """A missing model, or one without an element a salt needs, stops `campaign run` before any box is packed;
    `campaign status` then lists those systems as failed with the reason (not "pending" with no reason)."""
    spec = tmp_path / "spec.yaml"
    base = "name: r\nconcentrations: [1.0, 2.0, 3.0]\nsize: {n_waters: 128}\nmodel_cutoff_A: 4.0\n"
    for salts, model, needle, n_failed in (
        ("[NaCl]", tmp_path / "missing.model", "does not exist", 3),
        ("[KCl, NaCl]", random_mace, "KCl needs K", 3),  # the random model has H, Li, O, Na, Cl: no K
    ):
        spec.write_text(f"{base}salts: {salts}\nmodel: {model}\n")
        run = runner.invoke(app, ["campaign", "run", str(spec)], env={"COLUMNS": "300"})
        assert run.exit_code == 2, run.output
        errors = [line for line in run.output.splitlines() if line.strip()]
        assert errors[-1].startswith("error:") and needle in errors[-1] and "Traceback" not in run.output
        assert stores.systems.count({"atoms": {"$exists": True}}) == 0  # nothing was packed
        status = runner.invoke(app, ["campaign", "status", str(spec)], env={"COLUMNS": "400"})
        assert status.exit_code == 0, status.output
        assert f"failed {n_failed}" in status.output and needle in status.output, status.output
    assert "pending 3" in status.output  # the NaCl systems the model covers were not run, and are not failed


def _collection_file(settings, name: str):
    return settings.database_path / settings.db_name / f"{name}.sqlite3"


def test_a_lost_or_truncated_source_stops_the_build_and_loses_nothing(tmp_path, stores, settings):
    for seed, m in ((7, 1.0), (8, 2.0), (9, 3.0)):
        write_brownian_trajectory(stores, "NaCl", m, n_frames=120, seed=seed)
    assert runner.invoke(app, ["build"]).exit_code == 0
    before = {n: stores[n].count() for n in ("structure", "transport", "pairing", "kinetics", "electrolytes", "thermo")}
    assert before["electrolytes"] == 3 and before["thermo"] == 1
    stores.close()
    path = _collection_file(settings, "trajectories")
    saved = path.read_bytes()
    path.write_bytes(b"")
    result = runner.invoke(app, ["build"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert str(path) in result.output and "empty" in result.output and "backup" in result.output
    path.unlink()
    result = runner.invoke(app, ["build"])
    assert result.exit_code == 2 and "missing" in result.output and "--rebuild" in result.output, result.output
    assert not path.exists()
    check = runner.invoke(app, ["db", "check"], env={"COLUMNS": "200"})
    assert check.exit_code == 1 and "missing" in check.output and str(path) in check.output, check.output
    path.write_bytes(saved)
    with get_stores_now(settings) as s:
        assert {n: s[n].count() for n in before} == before  # nothing derived was deleted
    check = runner.invoke(app, ["db", "check"], env={"COLUMNS": "200"})
    assert check.exit_code == 0 and "all 16 collections ok" in check.output, check.output


def get_stores_now(settings):
    from electrodb.store.stores import get_stores

    return get_stores(settings)


def test_readers_on_a_folder_with_no_database_say_so_and_create_nothing(tmp_path, monkeypatch):
    from electrodb.settings import get_settings

    nowhere = tmp_path / "mistyped"
    monkeypatch.setenv("ELECTRODB_DATA_DIR", str(nowhere))
    monkeypatch.delenv("ELECTRODB_DB_URI", raising=False)
    get_settings.cache_clear()
    try:
        for args in (["db", "info"], ["db", "check"], ["export", "--out", str(tmp_path / "x.csv")], ["serve"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)
            assert "no ElectroDB database in" in result.output and str(nowhere) in result.output, result.output
        assert not nowhere.exists() and not (tmp_path / "x.csv").exists()
        afile = tmp_path / "afile"
        afile.write_text("x")
        monkeypatch.setenv("ELECTRODB_DATA_DIR", str(afile))
        get_settings.cache_clear()
        for args in (["db", "info"], ["build"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 2 and "is a file, not a folder" in result.output, (args, result.output)
    finally:
        get_settings.cache_clear()


def test_db_info_names_a_damaged_file_and_counts_the_builds(tmp_path, stores, settings):
    write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=11)
    write_brownian_trajectory(stores, "LiCl", 1.0, n_frames=10, seed=12)  # too short: a skipped input
    for _ in range(2):
        assert runner.invoke(app, ["build"]).exit_code == 0
    result = runner.invoke(app, ["db", "info"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "3 (2 build runs, 1 skipped inputs)" in result.output, result.output
    result = runner.invoke(app, ["build"])
    assert result.output.count("skipped") == 1, result.output  # the run records are not listed as skips
    stores.close()
    path = _collection_file(settings, "electrolytes")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = runner.invoke(app, ["db", "info"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("error:"))
    assert str(path) in line and "cannot be read" in line
    result = runner.invoke(app, ["export", "--format", "csv", "--out", str(tmp_path / "t.csv")])
    assert result.exit_code == 2 and str(path) in result.output and "Traceback" not in result.output, result.output
