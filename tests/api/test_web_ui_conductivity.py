"""The explorer's σ vs molality panel (headless Chromium, as ``tests/api/test_web_ui.py``) and the σ, t₊ columns."""

from __future__ import annotations

from tests.api.sample_database import MODEL_A, SYSTEMS
from tests.api.test_web_ui import _dom, needs_chromium, server  # noqa: F401  (server: the module's uvicorn fixture)


@needs_chromium
def test_sigma_panel_shows_every_molality_and_experiment(server: str, db: dict) -> None:  # noqa: F811
    summary = next(d for d in db["summaries"] if d["salt"] == "NaCl" and d["n_runs"] == 2 and d["model_id"] == MODEL_A)
    dom = _dom(f"{server}/?salt=NaCl&system={summary['electrolyte_id']}", "detail")
    detail = dom[dom.index('id="detail"') :]
    sigma = detail[detail.index('id="sigma-plot"') :]
    sigma = sigma[: sigma.index("</figure>")]
    n_nacl = sum(1 for s in SYSTEMS if s[0] == "NaCl" and s[2] == 298.15 and s[3] == MODEL_A)
    assert sigma.count('class="marker"') == n_nacl  # one point per molality of this model at 298.15 K
    assert "experiment (25 °C)" in sigma and "σ / S m⁻¹" in sigma
    table = dom[: dom.index('id="detail"')]
    assert "σ / S m⁻¹" in table and "t₊" in table  # registry columns (GET /properties labels)
