"""Instants read back from the database: timezone-aware UTC, whatever the engine."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def aware_utc(value: Any) -> Any:
    """A datetime as aware UTC (SQLite gives back naive ones, stored as UTC; PostgreSQL
    aware ones in the session's zone); anything else unchanged."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value
