"""ElectroDB's read-only HTTP API (FastAPI) and web explorer.

``create_app(settings)`` builds the app; ``serve(host, port, settings)`` runs it with uvicorn. The routes are
the resources of :mod:`electrodb.api.resources`, one class per family. Filters are translated to Mongo criteria
in :mod:`electrodb.store.query` (shared with the export).
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:  # lazy: importing electrodb.api.client must not need FastAPI
    if name in __all__:
        from electrodb.api import app

        return getattr(app, name)
    raise AttributeError(name)
