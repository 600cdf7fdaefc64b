"""The models and campaigns: ``GET /models`` (model identities and errors) and ``GET /campaigns`` (specifications).

Both are plain paged lists (:class:`~electrodb.api.resources.base.CollectionResource`) with their collection's
filters, sorting and projection.
"""

from __future__ import annotations

from typing import ClassVar

from electrodb.api.resources.base import CollectionResource

__all__ = ["ModelResource"]


class ModelResource(CollectionResource):
    """``GET /models`` and ``GET /campaigns``."""

    collections: ClassVar[dict[str, str]] = {
        "models": "Model identities and errors",
        "campaigns": "Campaign specifications",
    }
