"""The interactive documentation works with no internet: ``/docs`` and ``/redoc`` load only files this server serves.

Issue 22, row 13: FastAPI's default pages load Swagger UI and ReDoc from a CDN, so offline they were blank.
"""

from __future__ import annotations

import re
from typing import Any

import pytest


@pytest.fixture(scope="module")
def client(db: dict[str, Any]) -> Any:
    from fastapi.testclient import TestClient

    from electrodb.api.app import create_app

    with TestClient(create_app(db["settings"])) as c:
        yield c


def _references(html: str) -> list[str]:
    """Every URL a page loads or links: src/href attributes, CSS url(...), and quoted http(s) strings."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    found += re.findall(r"""url\(\s*["']?([^"')]+)""", html)
    found += re.findall(r"""["'](https?://[^"']+)["']""", html)
    found += re.findall(r"""url:\s*["']([^"']+)["']""", html)
    return found


@pytest.mark.parametrize(("page", "assets"), [("/docs", 3), ("/redoc", 2)])
def test_docs_pages_load_only_local_files(client: Any, page: str, assets: int) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not re.search(r"https?://", html), re.findall(r"https?://\S+", html)
    assert "fonts.googleapis" not in html and "cdn" not in html.lower()
    refs = _references(html)
    local = [u for u in refs if u.startswith("/docs-assets/")]
    assert len(set(local)) >= assets, refs
    for url in set(local):
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert "/openapi.json" in html
    assert client.get("/openapi.json").status_code == 200


def test_swagger_ui_sends_nothing_to_the_online_validator(client: Any) -> None:
    html = client.get("/docs").text
    assert '"validatorUrl": null' in html
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_swagger_bundle_is_the_real_swagger_ui(client: Any) -> None:
    js = client.get("/docs-assets/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in js and "presets" in js
    assert "Redoc" in client.get("/docs-assets/redoc.standalone.js").text
    assert client.get("/docs-assets/swagger-ui.css").headers["content-type"].startswith("text/css")


def test_without_the_assets_the_page_says_what_to_install(db: dict[str, Any], monkeypatch: Any) -> None:
    from fastapi.testclient import TestClient

    from electrodb.api import app as app_module
    from electrodb.api.resources import docs

    monkeypatch.setattr(docs, "assets_dir", lambda: None)
    with TestClient(app_module.create_app(db["settings"])) as c:
        r = c.get("/docs")
        assert r.status_code == 503 and "fastapi-offline" in r.text and "/openapi.json" in r.text
        assert not re.search(r"https?://", r.text)
        assert c.get("/redoc").status_code == 503
