"""The controller's entries: rules changes and refusals, and its hourly retention runs.

A failed audit write is logged and the work goes on: the reload swaps the rules and the
purge purges whatever the log does.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_helpers import SUNNY

from ivr.controller.service import audit_rules_changes, run_retention
from ivr.records import audit
from ivr.retention import purge as retention
from ivr.rules.runtime import RulesRuntime

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ACTOR = "controller:audit-test"
ALL_FILES = ["mesa-family-oncall.ics", "mesa-family.yaml", "sunny-pediatrics.yaml"]


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture
def runtime(rules_dir: Path, db) -> RulesRuntime:
    rt = RulesRuntime(rules_dir, instance="audit-test", clock=lambda: NOW)
    audit_rules_changes(rt, db, ACTOR)
    return rt


async def test_changes_are_logged_with_digests_and_changed_files(runtime, rules_dir, db):
    assert await runtime.load()
    first = runtime.current.digest
    [loaded] = await audit.read(db)
    assert loaded["action"] == "rules.reload" and loaded["actor"] == ACTOR
    assert loaded["subject"] == first and loaded["practice_id"] is None
    assert loaded["detail"] == {"source": "startup", "digest_from": None, "digest_to": first,
                                "files": ALL_FILES, "files_changed": 3}

    assert await runtime.reload("daily")  # the same files again: nothing changed
    assert await runtime.reload("sighup")
    assert len(await audit.read(db)) == 1

    rewrite(rules_dir / f"{SUNNY}.yaml", "name: Sunny Pediatrics ", "name: Sunny Peds ")
    assert await runtime.reload("file-change")
    second = runtime.current.digest
    rewrite(rules_dir / "mesa-family-oncall.ics", "DESCRIPTION:Thanksgiving weekend.",
            "DESCRIPTION:Thanksgiving weekend, all of it.")
    assert await runtime.reload("command")
    calendar, renamed, _ = await audit.read(db)
    assert renamed["subject"] == second != first
    assert renamed["detail"] == {"source": "file-change", "digest_from": first,
                                 "digest_to": second, "files": [f"{SUNNY}.yaml"],
                                 "files_changed": 1}
    assert calendar["detail"]["files"] == ["mesa-family-oncall.ics"]
    assert calendar["detail"]["digest_from"] == second
    assert calendar["subject"] == runtime.current.digest


async def test_a_refused_reload_is_logged_with_its_error_count(runtime, rules_dir, db):
    await runtime.load()
    kept = runtime.current
    rewrite(rules_dir / f"{SUNNY}.yaml", "timezone: America/New_York",
            "timezone: America/Nowhere")
    assert not await runtime.reload("command")
    assert runtime.current is kept
    refused, _ = await audit.read(db)
    assert refused["action"] == "rules.refused" and refused["actor"] == ACTOR
    assert refused["subject"] == kept.digest  # the digest that stays in force
    assert refused["detail"] == {"source": "command", "errors": 1,
                                 "files": [f"{SUNNY}.yaml"], "digest_in_force": kept.digest}


async def test_a_failed_audit_write_never_blocks_the_reload(runtime, rules_dir, db,
                                                            monkeypatch, caplog):
    await runtime.load()

    async def refuse(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(audit, "record", refuse)
    rewrite(rules_dir / f"{SUNNY}.yaml", "name: Sunny Pediatrics ", "name: Sunny Peds ")
    with caplog.at_level(logging.WARNING, logger="ivr"):
        assert await runtime.reload("sighup")
    assert runtime.current.practices[SUNNY].name.startswith("Sunny Peds")
    assert ("cannot write the audit log (RuntimeError: database is locked); rules.reload "
            "not recorded; going on") in caplog.text
    monkeypatch.undo()
    assert len(await audit.read(db)) == 1  # the startup entry only


async def _until(predicate, timeout: float = 60.0) -> None:
    """Wait for `predicate`; the bound only ends a hung test (a loaded machine's
    purges can take seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_each_hourly_retention_run_is_logged_once(db, rules, tmp_path):
    task = asyncio.create_task(run_retention(db, lambda: rules, tmp_path, first_wait=0,
                                             every=0.05, clock=lambda: NOW, actor=ACTOR))

    async def two_runs() -> bool:
        return len(await audit.read(db, action="retention.run")) >= 2

    try:
        await _until(two_runs)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    logged = {r["run_id"] for r in await retention.log_rows(db, limit=1000)}
    rows = await audit.read(db)
    assert {r["action"] for r in rows} == {"retention.run"}
    assert len({r["subject"] for r in rows}) == len(rows)  # one entry per run
    assert {r["subject"] for r in rows} <= logged and len(logged) - len(rows) <= 1
    assert all(r["actor"] == ACTOR and r["detail"]["dry_run"] is False for r in rows)
    assert rows[0]["detail"]["practices"] == 3


async def test_retention_goes_on_when_its_entry_cannot_be_written(db, rules, tmp_path,
                                                                  monkeypatch, caplog):
    async def refuse(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(audit, "record", refuse)
    caplog.set_level(logging.WARNING, logger="ivr")
    task = asyncio.create_task(run_retention(db, lambda: rules, tmp_path, first_wait=0,
                                             every=0.05, clock=lambda: NOW, actor=ACTOR))

    async def two_runs() -> bool:
        return len({r["run_id"] for r in await retention.log_rows(db, limit=1000)}) >= 2

    try:
        await _until(two_runs)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "retention.run not recorded; going on" in caplog.text
    monkeypatch.undo()
    assert await audit.read(db) == []
