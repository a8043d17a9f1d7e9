"""Waiting for a condition with a deadline: how the tests follow the system, never a fixed
sleep that load can outrun."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# The longest pause between two looks: a condition met is seen within this much.
MAX_INTERVAL_S = 1.0


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.1) -> Any:
    """The predicate's first true value, asked every `interval` seconds until `timeout`.

    A costly predicate (a query, a command) is asked less often: the pause after a look
    is at least as long as the look took, so waiting never takes more than half of a core
    from the system it waits for (on a busy machine that share is what slows it)."""
    deadline = time.monotonic() + timeout
    while True:
        began = time.monotonic()
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        pause = max(interval, min(now - began, MAX_INTERVAL_S))
        time.sleep(min(pause, deadline - now))
