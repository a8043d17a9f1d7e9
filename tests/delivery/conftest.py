"""Fixtures for the delivery tests: a fresh database (SQLite, then PostgreSQL) with the
outbox tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.db.engine import Database


@pytest.fixture
async def outbox_db(tmp_path: Path, databases):
    db = Database(databases.new(tmp_path / "outbox.sqlite3", at_head=True))
    await db.create()
    try:
        yield db
    finally:
        await db.close()
