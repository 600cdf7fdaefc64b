"""The interactive API documentation, served without any CDN: ``GET /docs`` (Swagger UI) and ``GET /redoc``.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from Google), so with no internet
they are blank. These pages load the same scripts and styles from this server instead: the copies that the
``fastapi-offline`` package ships (MIT; Swagger UI 5 and ReDoc 2, Apache-2.0 and MIT), mounted at
:data:`ASSETS_URL`. Swagger UI's online validator badge is switched off, so a page asks nothing of any other
host. Without the package the pages say what to install and point at ``/openapi.json``, which needs nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from electrodb.api.resources.base import Resource

__all__ = ["ASSETS_URL", "DOCS_URL", "REDOC_URL", "DocsResource", "assets_dir"]

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
#: Where the Swagger UI and ReDoc files are served (``swagger-ui-bundle.js``, ``swagger-ui.css``,
#: ``redoc.standalone.js``, ``favicon.png``).
ASSETS_URL = "/docs-assets"
_PACKAGE = "fastapi_offline"
_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def assets_dir() -> Path | None:
    """The folder of the installed Swagger UI / ReDoc files (``fastapi_offline/static``), or ``None`` without it."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if all((folder / name).is_file() for name in _ASSETS) else None


class DocsResource(Resource):
    """``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` with their files under :data:`ASSETS_URL`.

    Parameters
    ----------
    title
        The API's title (the pages' ``<title>``).
    openapi_url
        Where the OpenAPI document is served.
    """

    def __init__(self, title: str, openapi_url: str = "/openapi.json") -> None:
        self.title = title
        self.openapi_url = openapi_url
        self.assets = assets_dir()

    def register(self, router: APIRouter) -> None:
        """Add the three pages (outside the OpenAPI document) and mount the assets, when installed."""
        pages = {DOCS_URL: self.swagger_ui, f"{DOCS_URL}/oauth2-redirect": self.oauth2_redirect, REDOC_URL: self.redoc}
        for path, endpoint in pages.items():
            router.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
        if self.assets is not None:
            router.mount(ASSETS_URL, StaticFiles(directory=self.assets), name="docs-assets")

    def swagger_ui(self, request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        if self.assets is None:
            return self._missing(root, "Swagger UI")
        return get_swagger_ui_html(
            openapi_url=f"{root}{self.openapi_url}",
            title=f"{self.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{DOCS_URL}/oauth2-redirect",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # the badge would send the schema to validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None, "deepLinking": True},
        )

    def oauth2_redirect(self) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    def redoc(self, request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        if self.assets is None:
            return self._missing(root, "ReDoc")
        return get_redoc_html(
            openapi_url=f"{root}{self.openapi_url}",
            title=f"{self.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    def _missing(self, root: str, what: str) -> HTMLResponse:
        """A page that says why there is no interactive documentation (HTTP 503), instead of a blank one."""
        body = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{self.title} - {what}</title></head><body>"
            f"<p>{what} needs its files from the Python package <code>fastapi-offline</code>, which is not "
            "installed here (<code>pip install fastapi-offline</code>; it is a dependency of electrodb). "
            f"The OpenAPI document is at <a href='{root}{self.openapi_url}'>{root}{self.openapi_url}</a>.</p>"
            "</body></html>"
        )
        return HTMLResponse(body, status_code=503)
