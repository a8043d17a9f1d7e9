"""A start-up load cut short by a time limit is tried again; broken rules are not."""

from __future__ import annotations

import asyncio

from runtime_helpers import NOW

from ivr.rules import LoadResult
from ivr.rules import runtime as rt_module
from ivr.rules.runtime import STARTUP_TRIES, RulesRuntime
from ivr.rules.sandbox import over_deadline, refused


def _runtime(rules_dir, results: list[LoadResult | None]) -> tuple[RulesRuntime, list[float]]:
    """A runtime whose loads return `results` in turn (None: really load the files)."""
    rt = RulesRuntime(rules_dir, clock=lambda: NOW, deadline=5.0)
    real = rt._run_load
    deadlines: list[float] = []

    async def scripted(now):
        deadlines.append(rt.deadline)
        planned = results.pop(0) if results else None
        return planned if planned is not None else await real(now)

    rt._run_load = scripted  # type: ignore[method-assign]
    return rt, deadlines


async def test_a_start_up_load_cut_short_is_tried_again_with_more_time(rules_dir):
    rt, deadlines = _runtime(rules_dir, [over_deadline(rules_dir, 5.0), None])
    assert await rt.load()
    assert deadlines == [5.0, 10.0] and rt.deadline == 5.0  # restored afterwards
    assert rt.current is not None


async def test_it_gives_up_after_its_tries(rules_dir):
    rt, deadlines = _runtime(rules_dir, [over_deadline(rules_dir, 5.0)] * STARTUP_TRIES)
    assert not await rt.load()
    assert deadlines == [5.0 * 2 ** n for n in range(STARTUP_TRIES)]
    assert rt.current is None


async def test_broken_rules_are_not_loaded_again_and_again(rules_dir):
    rt, deadlines = _runtime(rules_dir, [refused(rules_dir, "valid rules", "a typo")])
    assert not await rt.load()
    assert deadlines == [5.0]


async def test_without_rules_the_watcher_keeps_trying(rules_dir, monkeypatch):
    monkeypatch.setattr(rt_module, "RETRY_EMPTY_SECONDS", 0.0)
    rt, _ = _runtime(rules_dir, [over_deadline(rules_dir, 5.0)] * STARTUP_TRIES)
    assert not await rt.load()
    watcher = asyncio.create_task(rt.watch(interval=0.01))
    try:
        deadline = asyncio.get_running_loop().time() + 120  # a real load, maybe slow
        while rt.current is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert rt.current is not None and rt.status.last_attempt_source == "retry"
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
