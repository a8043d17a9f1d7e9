"""The one clock, the one way to write an instant (aware UTC, ISO 8601), and the one way
to run something every so often."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import NoReturn


def now() -> datetime:
    """This instant, timezone-aware, in UTC (what the database and the rules take)."""
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """An instant as ISO 8601 for JSON output; None stays None."""
    return value.isoformat() if value else None


async def every(seconds: float, work: Callable[[], Awaitable[object]], what: str, *,
                log: logging.Logger, first_delay: float | None = None) -> NoReturn:
    """Run `work` every `seconds` until cancelled: the service's background rounds.

    A round that fails is logged (its error's type, and the traceback at DEBUG) and the
    next one comes on time: the database or the disk being down for a while must never
    stop a loop for good.
    """
    await asyncio.sleep(seconds if first_delay is None else first_delay)
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed (%s); next round in %.0f s", what, type(exc).__name__,
                        seconds)
            log.debug("%s failure", what, exc_info=exc)
        await asyncio.sleep(seconds)
