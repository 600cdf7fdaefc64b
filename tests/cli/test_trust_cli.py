"""The model-trust verdict on the command line (issue 23): the demo table's ``trust`` column with its footnotes,
still within 160 columns, and ``electrodb export --include-superseded``."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from electrodb.cli.demo import property_table, trust_text
from electrodb.cli.main import app
from tests.api.sample_database import CAMPAIGN, MODEL_A, SYSTEMS, build_database
from tests.api.trust_data import NACL_1, SUPERSEDED, add_trust

runner = CliRunner()


@pytest.fixture
def trusted(settings: Any) -> dict[str, Any]:
    """The sample database with committees and verdicts, in the process settings' folder (what the CLI reads)."""
    db = build_database(settings.data_dir)
    return add_trust(db["settings"], db["summaries"])


def test_trust_cells() -> None:
    assert trust_text({"model_trust": "trusted", "frac_flagged": 0.0, "n_frames_audited": 200}) == ("ok", None)
    text, note = trust_text(
        {
            "model_trust": "extrapolating",
            "model_trust_reason": "too many frames above threshold",
            "frac_flagged": 0.123,
            "sigma_F_max_p95": 0.41,
            "n_frames_audited": 400,
        }
    )
    assert text == "extrap. 12%"
    assert note == (
        "model extrapolating: too many frames above threshold "
        "(12% of 400 audited frames above the σ_F threshold; σ_F p95 0.41 eV/Å)"
    )
    assert trust_text({"model_trust": "insufficient", "model_trust_reason": "3 frames"})[0] == "insuff."
    assert trust_text({"model_trust": "unaudited"}) == ("—", None)
    assert trust_text({}) == ("—", None)  # a summary built before committees existed


def test_demo_table_shows_trust_beside_the_statuses_and_fits_160_columns(trusted: dict, stores: Any) -> None:
    table, notes = property_table(stores, CAMPAIGN)
    buffer = io.StringIO()
    Console(file=buffer, width=160).print(table)
    text = buffer.getvalue()
    assert "…" not in text  # nothing cut at this width
    assert max(len(line) for line in text.splitlines()) <= 160
    trust = table.columns[-1]
    assert trust.header == "trust" and table.columns[-2].header == "t+"  # beside the statuses of the values
    cells = [str(c) for c in trust.cells]
    assert {"ok", "—"} <= set(cells) and {c.split(" [")[0] for c in cells} >= {"extrap. 12%", "insuff."}
    assert "extrap." in text and "│ ok " in text  # rendered (a narrow column wraps, never cuts)
    trust_notes = [n for n in notes if ", trust: " in n]
    assert len(trust_notes) == 2 and all(n.startswith("[") for n in notes)
    extrapolating = next(n for n in trust_notes if "extrapolating" in n)
    assert "NaCl 1.00 m" in extrapolating and "12.5 % of 400 audited frames" in extrapolating
    # the superseded result of the first committee is not a row; the caption says it is left out
    assert table.row_count == sum(1 for s in SYSTEMS if s[3] == MODEL_A)
    assert "1 superseded result(s) not shown" in text.replace("\n", " ")


def test_export_include_superseded_flag(trusted: dict, tmp_path: Any) -> None:
    default = tmp_path / "default.csv"
    result = runner.invoke(app, ["export", "--format", "csv", "--out", str(default)])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(default)
    assert len(df) == len(SYSTEMS) and SUPERSEDED not in set(df["electrolyte_id"])
    assert df.set_index("electrolyte_id").loc[NACL_1, "model_trust"] == "extrapolating"
    everything = tmp_path / "all.csv"
    result = runner.invoke(app, ["export", "--format", "csv", "--out", str(everything), "--include-superseded"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(everything).set_index("electrolyte_id")
    assert len(df) == len(SYSTEMS) + 1 and df.loc[SUPERSEDED, "superseded_by"] == NACL_1
