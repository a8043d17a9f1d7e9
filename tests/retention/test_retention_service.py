"""The controller's retention task: at start-up, then every interval; failures logged."""

from __future__ import annotations

import asyncio
import logging

from retention_helpers import CALLER, DOB, NOW, days_ago, store_call

from ivr.controller.service import RETENTION_EVERY, run_retention
from ivr.records.calls import show_call as retention_call
from ivr.retention import purge as retention


async def _until(predicate, timeout: float = 60.0) -> None:
    """Wait for `predicate`; the bound only ends a hung test (three purges against
    PostgreSQL beside two CPU hogs took more than 5 s, run h22)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_runs_after_reconcile_then_every_interval_and_survives_failures(
        db, data_dir, rules, monkeypatch, caplog):
    assert RETENTION_EVERY == 3600.0
    call_id = await store_call(db, data_dir, started=days_ago(400))
    runs: list[object] = []
    real = retention.purge

    async def flaky(*args, **kwargs):
        runs.append(args[2])
        if len(runs) == 1:
            raise RuntimeError("disk gone")
        return await real(*args, **kwargs)

    monkeypatch.setattr(retention, "purge", flaky)
    caplog.set_level(logging.INFO, logger="ivr")
    current = [None]
    ready = asyncio.Event()
    task = asyncio.create_task(run_retention(db, lambda: current[0], data_dir, ready=ready,
                                             first_wait=30, every=0.05, clock=lambda: NOW))
    try:
        await asyncio.sleep(0.1)
        assert runs == []  # waiting for the first reconcile
        ready.set()
        await _until(lambda: "retention skipped: no rules in force" in caplog.text)
        assert runs == []  # never the defaults in place of the practices' own rules
        current[0] = rules
        await _until(lambda: len(runs) >= 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "retention run failed (RuntimeError)" in caplog.text and runs[0] == NOW
    rows = await retention.log_rows(db)
    assert [r["practice_id"] for r in rows if r["calls_purged"]] == ["sunny-pediatrics"]
    assert (await retention_call(db, call_id))["recordings_purged_at"] == NOW.isoformat()
    # One INFO line per practice and run, with counts: no patient data in the log.
    assert "retention sunny-pediatrics: 2 recording file(s) from 1 call(s)" in caplog.text
    assert CALLER not in caplog.text and DOB not in caplog.text


async def test_first_purge_does_not_wait_forever_for_the_pbx(db, data_dir, rules):
    task = asyncio.create_task(run_retention(db, lambda: rules, data_dir,
                                             ready=asyncio.Event(), first_wait=0.05,
                                             every=60, clock=lambda: NOW))
    try:
        for _ in range(250):
            # The whole run: it writes one row per practice, so one row alone is a race.
            if len(await retention.log_rows(db)) >= 3:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert {r["practice_id"] for r in await retention.log_rows(db)} == {
        "mesa-family", "sunny-pediatrics", None}
