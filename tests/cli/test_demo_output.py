"""The demo's table shows only converged values as numbers; plots refuse unsafe targets with a message."""

from __future__ import annotations

import io
import os

from rich.console import Console
from typer.testing import CliRunner

from electrodb.builders import run_builders
from electrodb.cli.demo import format_value, property_table
from electrodb.cli.main import app
from tests.synthetic import write_brownian_trajectory

runner = CliRunner()


def test_unconverged_values_are_never_printed_as_numbers():
    doc = {"D_cation": 15.7, "D_cation_err": 7.2, "D_cation_status": "unconverged", "D_cation_reason": "one ion"}
    assert format_value(doc, "D_cation") == ("n.c.", "one ion")
    doc = {"cn_cation_O": None, "cn_cation_O_status": "insufficient", "cn_cation_O_reason": "no minimum"}
    assert format_value(doc, "cn_cation_O", 1) == ("n/a", "no minimum")
    doc = {"r_cation_O": 2.3712, "r_cation_O_status": "converged", "exp_r_cation_O": 2.36}
    assert format_value(doc, "r_cation_O") == ("2.37 (exp 2.36)", None)
    # an insufficient value is never printed, even where an older summary stored one
    doc = {"cn_cation_O": 3.648, "cn_cation_O_status": "insufficient", "cn_cation_O_reason": "1.4 centre-ps"}
    assert format_value(doc, "cn_cation_O", 1) == ("n/a", "1.4 centre-ps")


def test_inputs_are_printed_as_inputs_with_where_they_came_from():
    doc = {"eta": 0.972, "eta_err": 0.029, "eta_status": "input", "eta_reason": "Laliberté's correlation"}
    assert format_value(doc, "eta") == ("0.97 ± 0.03 input", "Laliberté's correlation")
    doc = {"density": None, "density_status": "input", "density_reason": "fixed input density"}
    assert format_value(doc, "density", 0) == ("input", "fixed input density")  # the value is in density_input


def test_demo_table_on_a_built_database_fits_a_file_and_explains_every_gap(stores):
    write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=150, seed=21)
    run_builders(stores)
    table, notes = property_table(stores, "synthetic")
    buffer = io.StringIO()
    Console(file=buffer, width=160).print(table)
    text = buffer.getvalue()
    assert "…" not in text  # nothing cut at this width
    assert "15.7" not in text and notes  # a 1-cation box: D+ is not a result; the footnote says why
    assert all(line.startswith("[") and ": " in line for line in notes)
    d_note = next(n for n in notes if "D+" in n)
    assert "NaCl 0.87 m" in d_note and "1 atoms" in d_note  # 64 waters, 1 NaCl: 0.87 mol/kg: one cation is one sample


def test_plot_targets_are_checked(tmp_path, stores):
    doc = write_brownian_trajectory(stores, "NaCl", 1.0, n_frames=120, seed=22)
    run_builders(stores)
    missing = tmp_path / "no" / "such" / "folder" / "rdf.png"
    result = runner.invoke(app, ["plot", "rdf", doc.trajectory_id, "--out", str(missing)])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output
    target = tmp_path / "real.png"
    target.write_bytes(b"keep")
    link = tmp_path / "link.png"
    os.symlink(target, link)
    result = runner.invoke(app, ["plot", "rdf", doc.trajectory_id, "--out", str(link)])
    assert result.exit_code == 2 and "symbolic link" in result.output
    assert target.read_bytes() == b"keep" and link.is_symlink()
    result = runner.invoke(app, ["plot", "msd", doc.trajectory_id, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output
    assert not list(tmp_path.glob("*.part"))  # nothing half-written left behind
