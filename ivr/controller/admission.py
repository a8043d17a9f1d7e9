"""Admission control: new calls go to the dialplan's own intake before the controller's
latency grows for every caller (docs/performance.md, "Degrade, never collapse").

The controller knows its load: the calls it is serving and how late its event loop runs
(a task that sleeps a fixed interval and measures how much later than asked it wakes;
the median of the last second, so that one long callback, such as the start-up's own
work, is not taken for overload: a loop that is overloaded is late on every turn).
Over either limit, a new call is answered at once with the sentinel `shed`, with no
database write and nothing else; the dialplan plays its intake, and the hang-up stamp
brings the call into the record like any fallback call (fallback_reason `shed`).
Calls in progress are never cut: only new ones are turned away. An admitted call lifts
the dialplan's bound on taking it (contract.VAR_ANSWER_TIMEOUT) at once.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import NoReturn

from ivr import contract
from ivr.agi.protocol import AgiChannel, AgiError
from ivr.agi.server import Handler

log = logging.getLogger(__name__)

#: Why a call was shed (the metric's label).
SHED_CALLS = "calls"  # admission_max_calls calls in progress
SHED_LAG = "lag"  # the event loop ran more than admission_max_lag_ms late

#: The lag probe's period and how many of its samples the verdict looks at (1 s).
PROBE_SECONDS = 0.1
PROBE_WINDOW = 10


class Admission:
    """The controller's load and the verdict on each new call; counters for metrics."""

    def __init__(self, max_calls: int, max_lag_ms: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_calls = max_calls  # 0: no limit
        self.max_lag_ms = max_lag_ms  # 0: no limit
        self.clock = clock
        self.in_progress = 0
        self.admitted = 0
        self.shed: Counter[str] = Counter()
        self._lags: deque[float] = deque(maxlen=PROBE_WINDOW)

    @property
    def lag_ms(self) -> float:
        """The event loop's typical (median) lateness over the last second, in ms; 0
        until a whole second was measured (a few samples at start-up are no trend)."""
        if len(self._lags) < PROBE_WINDOW:
            return 0.0
        return statistics.median(self._lags)

    def verdict(self) -> str | None:
        """None to take a new call, else why it is shed (SHED_*)."""
        if self.max_calls and self.in_progress >= self.max_calls:
            return SHED_CALLS
        if self.max_lag_ms and self.lag_ms > self.max_lag_ms:
            return SHED_LAG
        return None

    def record_lag(self, lag_seconds: float) -> None:
        self._lags.append(max(lag_seconds, 0.0) * 1000)

    def snapshot(self) -> dict[str, object]:
        """For a metrics page: the load now and the counts since start."""
        return {"in_progress": self.in_progress, "lag_ms": round(self.lag_ms, 1),
                "admitted": self.admitted, "shed": dict(self.shed),
                "shed_total": sum(self.shed.values()), "max_calls": self.max_calls,
                "max_lag_ms": self.max_lag_ms}

    async def probe_lag(self) -> NoReturn:
        """Measure the event loop's lateness every PROBE_SECONDS until cancelled."""
        while True:
            asked = self.clock()
            await asyncio.sleep(PROBE_SECONDS)
            self.record_lag(self.clock() - asked - PROBE_SECONDS)

    def guard(self, handler: Handler) -> Handler:
        """`handler` behind the verdict: a shed call costs one AGI command."""
        async def admitted_or_shed(channel: AgiChannel) -> None:
            reason = self.verdict()
            if reason is not None:
                self.shed[reason] += 1
                # Ids and numbers of our own only: nothing the caller sent.
                log.info("call %s: shed to the dialplan's intake (%s: %d in progress, "
                         "loop %.0f ms late)", channel.uniqueid or "-", reason,
                         self.in_progress, self.lag_ms)
                try:
                    await channel.set_variable(contract.SENTINEL, contract.RESULT_SHED)
                except AgiError:
                    pass  # no sentinel: the dialplan's fallback takes the caller anyway
                return
            self.in_progress += 1
            self.admitted += 1
            try:
                try:
                    # Taken: the dialplan's bound on taking the call is lifted. Here, not
                    # later: a slow first database write is the flow's to handle, and a
                    # loaded machine must not send a call it has taken to the fallback.
                    await channel.set_variable(contract.VAR_ANSWER_TIMEOUT, "0")
                except AgiError:
                    pass  # the caller is gone: the flow sees it and records the call
                await handler(channel)
            finally:
                self.in_progress -= 1

        return admitted_or_shed
