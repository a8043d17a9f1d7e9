"""The controller's event loop: uvloop when installed and wanted (IVR_UVLOOP=1, off by
default: see ivr/config.py), else asyncio's own.

uvloop (libuv underneath) makes each socket read, write and timer cheaper, which is
most of what a loop serving hundreds of FastAGI and AMI connections does; the flows do
not notice which loop runs them. `asyncio.Runner(loop_factory=...)` (Python 3.11+)
rather than `uvloop.install()`: no process-wide policy change for code that runs after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's default) if off or not installed."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:  # an install without it: asyncio's loop does the same work
        return None
    return uvloop.new_event_loop


def run_loop(main: Coroutine[Any, Any, T], *, use_uvloop: bool) -> T:
    """Run `main` to its end on a new loop (see loop_factory) and close the loop."""
    factory = loop_factory(use_uvloop)
    with asyncio.Runner(loop_factory=factory) as runner:
        log.info("event loop: %s", "uvloop" if factory else "asyncio")
        return runner.run(main)
