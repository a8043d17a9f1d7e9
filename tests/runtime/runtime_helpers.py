"""Constants and small helpers shared by the runtime tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "routing_rules"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the rules tests' anchor (07:00 ET, Friday)
INSTANCE = "rt-test"
SUNNY = "sunny-pediatrics"
SUNNY_DID = "+16175550100"


def rewrite(path: Path, old: str, new: str) -> None:
    """Edit a rules file so that its size changes too (mtime alone can be coarse)."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


async def until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)
