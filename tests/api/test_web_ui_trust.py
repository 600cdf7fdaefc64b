"""The explorer's model-trust column, filter and detail line (issue 23; headless Chromium, as
``tests/api/test_web_ui.py``), over this module's sample database with the committees of
:mod:`tests.api.trust_data`."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.sample_database import SYSTEMS
from tests.api.test_web_ui import STATIC, _dom, _screenshot, needs_chromium, server  # noqa: F401  (uvicorn fixture)
from tests.api.trust_data import EXTRAPOLATING_REASON, NACL_05, NACL_1, NACL_2, SUPERSEDED, add_trust

ROW = re.compile(r'<tr data-id="([0-9a-f]+)"[^>]*>(.*?)</tr>')


@pytest.fixture(scope="module")
def trust(db: dict[str, Any]) -> dict[str, Any]:
    return add_trust(db["settings"], db["summaries"])


def _trust_cell(row: str) -> str:
    match = re.search(r'<td class="trust">(.*?)</td>', row)
    assert match, row[:400]
    return html.unescape(match.group(1))


def test_page_has_a_trust_filter_and_the_script_asks_for_the_verdict(server: str, trust: dict) -> None:  # noqa: F811
    page = httpx.get(f"{server}/").text
    assert re.search(r'<select name="model_trust"><option value="">any</option></select>', page)
    script = (STATIC / "app.js").read_text()
    assert '"model_trust"' in script and "frac_flagged" in script and "model_trust_reason" in script
    assert ".value.trust-extrapolating" in (STATIC / "style.css").read_text()


@needs_chromium
def test_table_shows_the_verdict_beside_the_statuses_with_the_reason_on_hover(
    server: str,  # noqa: F811
    trust: dict,
    tmp_path: Path,
) -> None:
    dom = _dom(f"{server}/?salt=NaCl&temperature_max=300", "table")
    header = re.findall(r'<th data-key="(\w+)"', dom)
    assert header.index("model_trust") == header.index("model_name") + 1  # beside the model, before the values
    rows = dict(ROW.findall(dom))
    assert SUPERSEDED not in rows and NACL_1 in rows  # superseded results are not the default answer
    extrapolating = _trust_cell(rows[NACL_1])
    assert 'class="value trust trust-extrapolating"' in extrapolating
    assert f'title="extrapolating: {EXTRAPOLATING_REASON} · frac_flagged 12.5 % of 400 audited frames' in extrapolating
    assert "σ_F p95 0.41 eV/Å; committee demo-committee-r1 (refine round 1)" in extrapolating
    assert '>extrapolating 12.5 %<span class="status-flag"' in extrapolating and "⚠" in extrapolating
    trusted = _trust_cell(rows[NACL_05])
    assert 'class="value trust trust-trusted"' in trusted and ">trusted<" in trusted and "frac_flagged 1 %" in trusted
    assert 'class="value trust trust-insufficient"' in _trust_cell(rows[NACL_2])
    unaudited = [r for eid, r in rows.items() if eid not in (NACL_1, NACL_05, NACL_2)]
    assert unaudited and all(">not audited<" in _trust_cell(r) for r in unaudited)
    assert "Model trust: whether a committee of models agreed" in dom
    _screenshot(f"{server}/?salt=NaCl&temperature_max=300&system={NACL_1}", "explorer-trust.png", tmp_path)


@needs_chromium
def test_trust_filter_from_the_url_and_a_superseded_result_says_what_replaced_it(server: str, trust: dict) -> None:  # noqa: F811
    dom = _dom(f"{server}/?model_trust=extrapolating&system={SUPERSEDED}", "detail")
    rows = dict(ROW.findall(dom))
    assert list(rows) == [NACL_1] and "1 system;" in dom
    assert f"embedded database · {len(SYSTEMS)} summaries (+1 superseded)" in dom  # the default answer counted
    assert re.search(r'<option value="extrapolating" selected="">extrapolating</option>', dom)
    assert 'href="/export?format=csv&amp;model_trust=extrapolating"' in dom
    line = html.unescape(dom[dom.index('id="detail-trust"') :].split("</div>", 1)[0])
    assert "model trust: " in line and 'class="value trust trust-extrapolating"' in line
    assert f'superseded by <a href="?system={NACL_1}"' in line and "a refined committee's model" in line
