"""The one clock and the one way to write an instant: aware UTC, ISO 8601."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """This instant, timezone-aware, in UTC (what the database and the rules take)."""
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """An instant as ISO 8601 for JSON output; None stays None."""
    return value.isoformat() if value else None
