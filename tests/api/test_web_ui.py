"""Tests of the web explorer at ``/``: static checks and headless Chromium checks (Chromium is required).

The browser tests start uvicorn on 127.0.0.1 (free port) over the synthetic database of ``test_api.py``,
let Chromium run the page's JavaScript (``--virtual-time-budget``) and inspect the resulting DOM; one
screenshot per view is written to ``$ELECTRODB_SCREENSHOT_DIR`` (default: the test's tmp folder).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from electrodb.api.client import ElectroDBClient
from electrodb.store.stores import get_stores
from tests.api.sample_database import MODEL_A, SYSTEMS

STATIC = Path(__file__).resolve().parents[2] / "electrodb" / "api" / "static"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def needs_chromium(test: Any) -> Any:
    """Browser tests must run: fail with a clear message (not skip) when no Chromium is installed."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if CHROMIUM is None:
            pytest.fail("chromium is not installed (apt-get install chromium); the explorer tests need it")
        return test(*args, **kwargs)

    import functools

    return functools.wraps(test)(wrapped)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(db: dict[str, Any]) -> Iterator[str]:
    """uvicorn in a subprocess on a free loopback port; stopped (by its pid) after the module."""
    port = _free_port()
    env = {**os.environ, "ELECTRODB_DATA_DIR": str(db["settings"].data_dir), "ELECTRODB_DB_URI": ""}
    env.pop("ELECTRODB_CONFIG", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "electrodb.api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"uvicorn did not start: {out[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _chromium(url: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            CHROMIUM or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            "--virtual-time-budget=15000",
            *args,
            url,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _dom(url: str, ready: str) -> str:
    """The DOM after the page's scripts ran; retried until ``body[data-ready=<ready>]`` appears."""
    dom = ""
    for _ in range(3):
        dom = _chromium(url, "--dump-dom").stdout
        if f'data-ready="{ready}"' in dom and 'data-loaded="all"' in dom:
            return dom
    pytest.fail(f"page never became ready ({ready}); DOM tail: {dom[-1500:]}")


def _screenshot(url: str, name: str, tmp_path: Path) -> Path:
    out_dir = Path(os.environ.get("ELECTRODB_SCREENSHOT_DIR", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    _chromium(url, f"--screenshot={path}")
    assert path.is_file() and path.stat().st_size > 10_000, "screenshot missing or blank"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


# ------------------------------------------------------------------------------------------ no browser needed


def test_page_and_assets_are_served_without_external_resources(server: str) -> None:
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("app.js", "style.css"):
        r = httpx.get(f"{server}/static/{asset}")
        assert r.status_code == 200 and len(r.text) > 500
    for path in STATIC.iterdir():
        text = path.read_text()
        # Nothing loaded from outside (no CDN is reachable): no absolute URLs except the SVG namespace.
        external = [u for u in re.findall(r"https?://[^\s\"')]+", text) if u != "http://www.w3.org/2000/svg"]
        assert not external, (path.name, external)


def test_client_against_running_server(server: str) -> None:
    with ElectroDBClient(server, timeout=30) as api:
        rows = api.search(salt="NaCl", molality=(1, 3), temperature=(290, 310))
        assert {r.salt for r in rows} == {"NaCl"} and len(rows) == 4
        assert api.health()["counts"]["electrolytes"] == len(SYSTEMS)
        r = httpx.get(f"{server}/electrolytes/{rows[0].electrolyte_id}/rdf", headers={"Accept-Encoding": "gzip"})
        assert r.headers.get("content-encoding") == "gzip"


# ------------------------------------------------------------------------------------------ headless Chromium


@needs_chromium
def test_table_renders_and_filters_by_url(server: str, tmp_path: Path) -> None:
    dom = _dom(f"{server}/", "table")
    assert len(re.findall(r"<tr data-id=", dom)) == len(SYSTEMS)
    dom = _dom(f"{server}/?salt=NaCl&molality_min=1&molality_max=3", "table")
    rows = re.findall(r"<tr data-id=\"[0-9a-f]+\"[^>]*>(.*?)</tr>", dom)
    assert len(rows) == 6  # NaCl at 1, 2, 3 mol/kg (298 K), 1 and 2 (320 K), 1 (model B)
    assert all(re.match(r"<td>NaCl</td>", r) for r in rows)
    assert "6 systems" in dom and re.search(r'<input name="salt"[^>]*value="NaCl"', dom)  # URL → form
    assert re.search(r'<input name="molality_max"[^>]*value="3"', dom)
    shot = _screenshot(f"{server}/?salt=NaCl", "explorer-table.png", tmp_path)
    assert shot.stat().st_size > 10_000


@needs_chromium
def test_system_view_draws_plots(server: str, db: dict, tmp_path: Path) -> None:
    summary = next(d for d in db["summaries"] if d["salt"] == "NaCl" and d["n_runs"] == 2 and d["model_id"] == MODEL_A)
    dom = _dom(f"{server}/?salt=NaCl&system={summary['electrolyte_id']}", "detail")
    detail = dom[dom.index('id="detail"') :]
    assert "hidden" not in detail[:80]
    rdf = detail[detail.index('id="rdf-plot"') : detail.index('id="msd-figure"')]
    msd = detail[detail.index('id="msd-plot"') : detail.index('id="gamma-figure"')]
    gamma = detail[detail.index('id="gamma-plot"') : detail.index('id="props-figure"')]
    assert rdf.count('class="series"') == 4  # g and n for two runs
    assert msd.count('class="series"') == 6  # three species, two runs
    assert gamma.count('class="marker"') == 5 + 7  # model points + experiment overlay (stored table)
    assert "experiment (25 °C)" in gamma
    assert 'class="selected"' in dom and "D_cation" in detail
    _screenshot(f"{server}/?salt=NaCl&system={summary['electrolyte_id']}", "explorer-system.png", tmp_path)


@needs_chromium
def test_system_without_thermo_says_so(server: str, db: dict) -> None:
    summary = next(d for d in db["summaries"] if d["salt"] == "LiCl")
    dom = _dom(f"{server}/?system={summary['electrolyte_id']}", "detail")
    assert "no thermodynamics documents for LiCl" in dom
    assert dom.count('class="series"') >= 2


#: What the ThermoBuilder writes for fewer than three converged concentrations (electrodb/builders/thermo.py).
INSUFFICIENT_THERMO = {
    "thermo_id": "thermo-nacl-320-insufficient",
    "salt": "NaCl",
    "temperature": 320.0,
    "model_id": MODEL_A,
    "systems": [{"molality": m, "a_cc": 0.95, "a_cc_err": 0.02, "a_cc_status": "converged"} for m in (1.0, 2.0)],
    "status": "insufficient",
    "criterion": ">= 3 concentrations with converged a_cc",
    "reason": "2 concentration(s) with converged a_cc < 3: a_cc is reported per system, but γ± and φ need a "
    "concentration series and are not extrapolated",
    "series": None,
}


@needs_chromium
def test_thermo_document_without_a_series_shows_its_status_and_reason(server: str, db: dict) -> None:
    """Issue 22 row 15: a thermo document with status ``insufficient`` is not "no thermodynamics documents"."""
    summary = next(d for d in db["summaries"] if d["salt"] == "NaCl" and d["temperature"] == 320.0)
    with get_stores(db["settings"]) as stores:
        stores.thermo.update([INSUFFICIENT_THERMO], key="thermo_id")
    try:
        dom = _dom(f"{server}/?system={summary['electrolyte_id']}", "detail")
    finally:
        with get_stores(db["settings"]) as stores:
            stores.thermo.remove_docs({"thermo_id": INSUFFICIENT_THERMO["thermo_id"]})
    gamma = html.unescape(dom[dom.index('id="gamma-plot"') : dom.index('id="props-figure"')])
    assert "no thermodynamics documents" not in gamma
    assert f"no γ± for NaCl with this model at 320 K: insufficient data: {INSUFFICIENT_THERMO['reason']}" in gamma
    assert f'title="criterion: {INSUFFICIENT_THERMO["criterion"]}"' in gamma


@needs_chromium
def test_flat_thermo_shape_and_reference_overlay(server: str, db: dict) -> None:
    summary = next(d for d in db["summaries"] if d["salt"] == "MgCl2")
    dom = _dom(f"{server}/?system={summary['electrolyte_id']}", "detail")
    gamma = dom[dom.index('id="gamma-plot"') : dom.index('id="props-figure"')]
    assert gamma.count('class="marker"') > 2 and "experiment (25 °C)" in gamma  # 2 model points + reference


@needs_chromium
def test_table_shows_statuses_experiment_model_names_and_times(server: str) -> None:
    dom = _dom(f"{server}/?salt=MgCl2,NaCl&temperature_max=300&molality_max=1", "table")
    rows = dict(re.findall(r'<tr data-id="([0-9a-f]+)"[^>]*>(.*?)</tr>', dom))
    mg = [r for r in rows.values() if r.startswith("<td>MgCl2</td>")]
    na = [r for r in rows.values() if r.startswith("<td>NaCl</td>")]
    assert len(mg) == 2 and na
    for row in mg:  # D+ did not converge: struck out, greyed, the reason on hover
        assert (
            'class="value status-unconverged" title="not converged: needs ≈ 12 ps more production; '
            'MSD slope 0.62, not diffusive"><s>'
        ) in row
    for row in na:  # converged D+ is a plain number, with the experiment beside it
        assert re.search(r'class="value status-converged" title="converged \([^)]*\)">[0-9.]+ ± [0-9.]+</span>', row)
        assert "(exp 1.33)" in row
    assert f'title="{MODEL_A}"' in dom and ">mace-mp-0 small<" in dom and ">fine-tuned NaCl<" in dom
    times = re.findall(r'<td class="num">([0-9.]+)</td></tr>', "".join(f"{r}</tr>" for r in rows.values()))
    assert set(times) <= {"0.4", "0.8"} and "0.4" in times  # total_ps 0.4 ps per run, never shown as "0"
    assert "Struck-out values did not converge" in dom


@needs_chromium
def test_detail_never_shows_unconverged_or_input_values_as_results(server: str, db: dict) -> None:
    summary = next(d for d in db["summaries"] if d["salt"] == "MgCl2")
    dom = _dom(f"{server}/?system={summary['electrolyte_id']}", "detail")
    props = dict(re.findall(r'<tr data-prop="(\w+)">(.*?)</tr>', dom))
    assert set(props) >= {"D_cation", "density", "tau_anion_water"}
    assert "status-unconverged" in props["D_cation"] and "<s>" in props["D_cation"]
    assert "insufficient data" in props["tau_anion_water"] and "no first minimum" in props["tau_anion_water"]
    density = props["density"]
    assert "fixed input" in density and "exp 1075" not in density  # an input density is never compared
    assert "status-converged" in props["r_cation_O"] and "<s>" not in props["r_cation_O"]
    assert 'title="' + MODEL_A + '"' in dom and ">mace-mp-0 small<" in dom
    assert "0.4 ps" in dom and "legacy document" in dom  # MgCl2's thermo document predates statuses


@needs_chromium
def test_inputs_are_tagged_insufficient_values_never_shown_and_n_eff_beside_the_error(
    server: str, db: dict, tmp_path: Path
) -> None:
    mg = next(d for d in db["summaries"] if d["salt"] == "MgCl2" and d["molality"] == 0.5)
    dom = _dom(f"{server}/?system={mg['electrolyte_id']}", "detail")
    props = dict(re.findall(r'<tr data-prop="(\w+)">(.*?)</tr>', dom))
    eta = props["eta"]  # Laliberté's η: shown as an input, neither struck out nor flagged nor a plain result
    assert 'class="value status-input" title="input: taken from Laliberté' in eta
    assert re.search(r">0\.94 ± 0\.028<span class=\"input-tag\"[^>]*>input</span>", eta)
    assert "<s>" not in eta and "⚠" not in eta and "laliberte_correlation, not computed" in eta
    density = props["density"]  # the fixed density: the input value, tagged, never compared with experiment
    assert 'class="value status-input"' in density and "1105" in density and "<s>" not in density
    assert "exp 1075" not in density
    assert re.search(
        r'<td class="num neff muted" title="effective number[^"]*2\.5 ps">n_eff 35(<span class="needs"[^>]*> needs '
        r"≈ 12 ps</span>)?</td>",
        props["D_cation"],
    )
    assert '<td class="num neff muted"></td>' in props["tau_anion_water"]  # insufficient: no n_eff either
    legacy = next(d for d in db["summaries"] if d["salt"] == "LiCl" and d["molality"] == 3.0)
    dom = _dom(f"{server}/?salt=LiCl&system={legacy['electrolyte_id']}", "detail")
    row = dict(re.findall(r'<tr data-id="([0-9a-f]+)"[^>]*>(.*?)</tr>', dom))[legacy["electrolyte_id"]]
    assert "3.65" not in row and "3.648" not in row and "insufficient data" in row  # the CN₊O column
    cn = dict(re.findall(r'<tr data-prop="(\w+)">(.*?)</tr>', dom))["cn_cation_O"]
    assert "3.648" not in cn and "3.65" not in cn and "insufficient data" in cn and "n_eff" not in cn
    assert "values tagged “input” were taken from a correlation" in dom
    _screenshot(f"{server}/?system={mg['electrolyte_id']}", "explorer-inputs.png", tmp_path)


@needs_chromium
def test_unconverged_values_say_how_much_more_production_they_need(server: str, db: dict) -> None:
    doc = next(d for d in db["summaries"] if any(d.get(f"{p}_needs_ps") for p in ("D_cation", "cn_cation_O")))
    prop = next(p for p in ("D_cation", "cn_cation_O") if doc.get(f"{p}_needs_ps"))
    dom = _dom(f"{server}/?system={doc['electrolyte_id']}", "detail")
    row = dict(re.findall(r'<tr data-prop="(\w+)">(.*?)</tr>', dom))[prop]
    assert "needs ≈ 12 ps" in row and "needs ≈ 12 ps more production; " in row
