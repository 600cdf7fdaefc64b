"""Provenance helpers: a stable content hash for identities and the UTC timestamp every document carries."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

__all__ = ["as_datetime", "stable_hash", "utcnow"]


def stable_hash(payload: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``payload`` (sorted keys, floats as repr), first ``length`` hex digits."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def as_datetime(value: Any) -> datetime:
    """Stored timestamps come back as datetimes (BSON) or ISO strings (JSON); compare them as aware datetimes."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return datetime.min.replace(tzinfo=timezone.utc)
