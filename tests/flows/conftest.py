"""The flow unit tests use the example rules (pure: no Asterisk)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
async def db(tmp_path: Path):
    """A fresh SQLite database with the schema, closed after the test."""
    from ivr.db.engine import Database

    database = Database("sqlite+aiosqlite:///" + str(tmp_path / "ivr.sqlite3"))
    await database.create()
    yield database
    await database.close()
