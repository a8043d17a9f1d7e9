"""Fixtures for the audit tests: the CLI's environment with seeded calls, a database,
and a copy of the example rules the test may edit."""

from __future__ import annotations

import asyncio
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from audit_helpers import REPO, SUNNY, db_url, ny, store_call  # noqa: E402

from ivr.db.engine import Database
from ivr.oncall import callbacks
from ivr.rules import load_rules


@dataclass(frozen=True)
class Seeded:
    data: Path  # the CLI's data folder (IVR_DATA_DIR)
    call_id: str  # a routine call, with a pending call-back
    uniqueid: str
    other_id: str  # a second call the same night


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(REPO / "routing_rules", target)
    return target


@pytest.fixture
async def db(tmp_path: Path, databases):
    database = Database(databases.new(tmp_path / "ivr.sqlite3", at_head=True))
    await database.create()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, databases) -> Seeded:
    """IVR_* set for `ivr.cli.main.main` and two calls of the night of 2026-11-19 stored
    (in the data folder's SQLite file, or a PostgreSQL database named by IVR_DB_URL)."""
    data = tmp_path / "data"
    monkeypatch.setenv("IVR_DATA_DIR", str(data))
    monkeypatch.setenv("IVR_RULES_PATH", str(REPO / "routing_rules"))
    monkeypatch.setenv("IVR_INSTANCE", "audit-test")
    databases.use_in_cli(monkeypatch, databases.new(data / "ivr.sqlite3", at_head=True))
    data.mkdir(parents=True, exist_ok=True)  # PostgreSQL makes no file there

    async def seed() -> Seeded:
        db = Database(db_url(data))
        await db.create()
        try:
            started = ny("2026-11-19 21:00")
            call_id = await store_call(db, started=started, uniqueid="u-audit-1")
            other = await store_call(db, started=ny("2026-11-20 02:00"), uniqueid="u-audit-2")
            practice = load_rules(REPO / "routing_rules", now=started).rules.practices[SUNNY]
            await callbacks.create(db, callback_id="cb-audit-1", call_id=call_id,
                                   practice=practice, now=started, first_at=started,
                                   interval_seconds=600, promised=None)
            return Seeded(data, call_id, "u-audit-1", other)
        finally:
            await db.close()

    return asyncio.run(seed())


@pytest.fixture(scope="session")
def rules():
    from datetime import UTC, datetime

    res = load_rules(REPO / "routing_rules", now=datetime(2026, 11, 1, tzinfo=UTC))
    assert res.ok, [str(e) for e in res.errors]
    return res.rules
