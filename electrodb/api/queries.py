"""Deprecated location: the query building moved to :mod:`electrodb.query` (below both the API and the export).

Kept so that ``from electrodb.api import queries`` and ``from electrodb.api.queries import ...`` still work.
"""

from __future__ import annotations

from electrodb.query import *  # noqa: F403
from electrodb.query import (  # noqa: F401  (names not in electrodb.query.__all__)
    FIELD_PATTERN,
    ID_PATTERN,
    ION_PATTERN,
    MAX_SKIP,
    MAX_SORT_KEYS,
    PATH_ID_PATTERN,
    SALT_PATTERN,
    __all__,
)
