"""Campaign files under hostile-but-fair use: every problem is a one-line message with its place, never a hang."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from electrodb.cli.main import app
from electrodb.systems.campaign import Campaign, solubility
from electrodb.utils.safe_yaml import SpecError

runner = CliRunner()
GOOD = "name: p\nsalts: [NaCl]\nconcentrations: [1.0]\nmodel: m.model\n"


def _plan(tmp_path, text: str):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    return runner.invoke(app, ["campaign", "plan", str(spec)], env={"COLUMNS": "60"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: p\nsalts: [NaCl\nconcentrations: [1.0]\n", "spec.yaml:3:15: expected ',' or ']'"),  # line:col
        ("name: !!python/object:os.system p\n", "could not determine a constructor"),  # unknown tag
        (GOOD + "salts: [KCl]\n", "duplicate key 'salts' (first at line 2)"),
        ("name: p\nsalts: [NaCl]\nconcentrations: [true]\nmodel: m\n", "True is not a number"),
        ("name: p\nsalts: [NaCl]\nconcentrations: ['2']\nmodel: m\n", "'2' is not a number"),
        ("name: p\nsalts: [NaCl]\nconcentrations: [15]\nmodel: m\n", "above its solubility, about 6.15 mol/kg"),
        ("- a\n- b\n", "must be a YAML mapping"),
        (GOOD + "targets: {D_relerr: 0.1}\n", "unknown convergence target(s) ['D_relerr']"),
    ],
)
def test_bad_campaign_files_get_one_clear_line(tmp_path, settings, text, expected):
    result = _plan(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("error:"))
    assert expected in line, result.output


def test_alias_bomb_is_refused_quickly(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 10)}]" for k in range(1, 9)]
    spec = tmp_path / "bomb.yaml"
    spec.write_text(GOOD + "solvation_ti:\n" + "\n".join("  " + x for x in levels) + "\n")
    started = time.perf_counter()
    with pytest.raises(SpecError, match="more than 100000 nodes"):
        Campaign.from_yaml(spec)
    assert time.perf_counter() - started < 5  # a guard against a hang, not a speed target


def test_oversized_file_is_refused(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text(GOOD + "# " + "x" * (1 << 20) + "\n")
    with pytest.raises(SpecError, match="larger than the 1048576-byte limit"):
        Campaign.from_yaml(spec)


def test_supersaturation_can_be_asked_for_and_good_files_still_load(tmp_path):
    spec = tmp_path / "ok.yaml"
    spec.write_text(GOOD + "targets: {D_rel_err: 0.2}\n")
    campaign = Campaign.from_yaml(spec)
    assert campaign.targets == {"D_rel_err": 0.2} and campaign.systems()[0].targets == {"D_rel_err": 0.2}
    spec.write_text("name: p\nsalts: [NaCl]\nconcentrations: [7]\nmodel: m\nallow_above_solubility: true\n")
    assert Campaign.from_yaml(spec).concentrations == [7.0]
    assert solubility("NaCl")[0] == pytest.approx(6.15) and solubility("NaBF4") is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("replicas: 1000000\n", "expands into 1000000 systems"),
        ("size: {n_waters: 1000000000}\n", "above the limit of 100000 atoms per box"),
        ("size: {target_atoms: 3000000000}\n", "above the limit of 100000 atoms per box"),
    ],
)
def test_campaign_limits_are_checked_before_anything_is_expanded(tmp_path, settings, extra, expected):
    started = time.perf_counter()
    result = _plan(tmp_path, GOOD + extra)
    assert time.perf_counter() - started < 20  # refused up front, not after expanding a million systems
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("error:"))
    assert expected in line and "raise limits." in line, result.output


def test_campaign_limits_can_be_raised_deliberately_and_change_no_id(tmp_path):
    spec = tmp_path / "ok.yaml"
    spec.write_text(GOOD + "replicas: 3\n")
    plain = Campaign.from_yaml(spec)
    spec.write_text(GOOD + "replicas: 3\nlimits: {max_systems: 3, max_atoms_per_box: 1000}\n")
    limited = Campaign.from_yaml(spec)
    assert limited.campaign_id == plain.campaign_id
    assert [s.system_id for s in limited.systems()] == [s.system_id for s in plain.systems()]
    spec.write_text(GOOD + "replicas: 4\nlimits: {max_systems: 3}\n")
    with pytest.raises(SpecError, match="expands into 4 systems"):
        Campaign.from_yaml(spec)
    spec.write_text(GOOD + "size: {n_waters: 200}\nlimits: {max_atoms_per_box: 601}\n")  # 600 waters' atoms + ions
    with pytest.raises(ValueError, match="the box holds 6\\d\\d atoms"):
        Campaign.from_yaml(spec).systems()
