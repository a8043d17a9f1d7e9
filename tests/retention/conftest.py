"""Fixtures for the retention tests: a fresh database (SQLite, PostgreSQL), a data
folder, the rules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from retention_helpers import REPO  # noqa: E402  (also puts the repo on sys.path)

from ivr.db.engine import Database
from ivr.rules import load_rules


@pytest.fixture(scope="session")
def rules():
    from datetime import UTC, datetime

    res = load_rules(REPO / "routing_rules", now=datetime(2026, 11, 1, tzinfo=UTC))
    assert res.ok, [str(e) for e in res.errors]
    return res.rules


@pytest.fixture
def db_url(tmp_path: Path, databases) -> str:
    """A new database: SQLite in the data folder, then one on the session's PostgreSQL."""
    return databases.new(tmp_path / "data" / "ivr.sqlite3", at_head=True)


@pytest.fixture
async def db(db_url: str):
    database = Database(db_url)
    await database.create()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    return folder
