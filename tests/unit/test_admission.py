"""Admission control (ivr.controller.admission): the verdict on a new call, and a shed
call costs one AGI command and nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

from ivr import contract
from ivr.controller.admission import SHED_CALLS, SHED_LAG, Admission


class FakeChannel:
    """What the guard touches of an AGI channel."""

    uniqueid = "node-1795722896.1"

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []

    async def set_variable(self, name: str, value: str, **_: Any) -> None:
        self.commands.append((name, value))


def test_calls_over_the_limit_are_shed_and_counted():
    admission = Admission(max_calls=1, max_lag_ms=0)
    served: list[str] = []
    release = asyncio.Event()

    async def handler(channel: Any) -> None:
        served.append(channel.uniqueid)
        await release.wait()

    async def run() -> tuple[FakeChannel, FakeChannel]:
        guarded = admission.guard(handler)
        first, second = FakeChannel(), FakeChannel()
        task = asyncio.create_task(guarded(first))
        await asyncio.sleep(0)
        assert admission.in_progress == 1
        await guarded(second)  # returns at once: shed
        release.set()
        await task
        return first, second

    first, second = asyncio.run(run())
    assert served == [FakeChannel.uniqueid]
    assert first.commands == [(contract.VAR_ANSWER_TIMEOUT, "0")]  # taken: bound lifted
    assert second.commands == [(contract.SENTINEL, contract.RESULT_SHED)]
    snap = admission.snapshot()
    assert snap["in_progress"] == 0 and snap["admitted"] == 1
    assert snap["shed"] == {SHED_CALLS: 1} and snap["shed_total"] == 1


def test_a_late_event_loop_sheds_until_it_catches_up():
    admission = Admission(max_calls=0, max_lag_ms=200)
    assert admission.verdict() is None
    for _ in range(6):  # late on most turns of the last second: overloaded
        admission.record_lag(0.35)
    assert admission.verdict() is None  # not a whole second measured yet
    for _ in range(4):
        admission.record_lag(0.35)
    assert admission.verdict() == SHED_LAG and admission.lag_ms == 350
    for _ in range(10):  # a second of punctual samples pushes the late ones out
        admission.record_lag(0.001)
    assert admission.verdict() is None


def test_one_long_callback_is_not_overload():
    """The start-up's work can hold the loop for a second once: no call is shed for it."""
    admission = Admission(max_calls=0, max_lag_ms=200)
    for lag in (0.001, 1.5, 0.002, 0.001, 0.9, 0.001, 0.003, 0.001, 0.002, 0.001):
        admission.record_lag(lag)
    assert admission.verdict() is None


def test_the_metrics_page_counts_shed_calls_and_shows_the_lag():
    from ivr.controller.metrics import ControllerMetrics

    admission = Admission(max_calls=1, max_lag_ms=0)
    admission.shed[SHED_CALLS] = 3
    metrics = ControllerMetrics(calls_up=lambda: 0, refused=lambda: 0,
                                admission=admission.snapshot)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in metrics.collect() for s in family.samples}
    assert samples[("ivr_calls_shed_total", (("cause", SHED_CALLS),))] == 3
    assert samples[("ivr_event_loop_lag_ms", ())] == 0


def test_no_limits_admit_everything():
    admission = Admission(max_calls=0, max_lag_ms=0)
    admission.in_progress = 10_000
    admission.record_lag(30.0)
    assert admission.verdict() is None
