"""Waiting for a condition with a deadline: how the tests follow the system, never a fixed
sleep that load can outrun."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The longest pause between two looks: a condition met is seen within this much.
MAX_INTERVAL_S = 1.0
#: A look that took t is followed by a pause of at least this many times t: a costly
#: look (the in-process CLI: an engine, the keys, decryption) then takes at most a fifth
#: of a core. Beside two CPU hogs the workers' polling had cost more CPU than all the
#: controllers under test (582 against 98 core-seconds over a run).
PAUSE_PER_LOOK = 4.0


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.1) -> Any:
    """The predicate's first true value, asked every `interval` seconds until `timeout`.

    A costly predicate (a query, a command) is asked less often: the pause after a look
    is at least PAUSE_PER_LOOK times as long as the look took (up to MAX_INTERVAL_S), so
    waiting takes little CPU from the system it waits for (on a busy machine that share
    is what slows it)."""
    deadline = time.monotonic() + timeout
    while True:
        began = time.monotonic()
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        pause = max(interval, min((now - began) * PAUSE_PER_LOOK, MAX_INTERVAL_S))
        time.sleep(min(pause, deadline - now))


def exit_or_dump(proc: subprocess.Popen[Any], log_path: Path, seconds: float,
                 what: str) -> int:
    """`proc`'s exit code once it ends within `seconds` (a signal already sent to it).
    One that has not gets SIGABRT: a controller started with PYTHONFAULTHANDLER=1 writes
    every thread's stack into its log, and the AssertionError carries the log's end, so
    the failure says where it hung."""
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(20)
        text = log_path.read_text(errors="replace")
        raise AssertionError(f"{what} did not exit within {seconds:.0f} s; its log "
                             f"ends:\n{text[-6000:]}") from None
