"""Fixtures for the documents tests: the example rules, a fresh database (SQLite, then
PostgreSQL), seeded calls."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from doc_helpers import REPO  # noqa: E402  (also puts the repo on sys.path)

from ivr.db.engine import Database
from ivr.rules import load_rules


@pytest.fixture(scope="session")
def rules():
    from datetime import UTC, datetime

    res = load_rules(REPO / "routing_rules", now=datetime(2026, 11, 1, tzinfo=UTC))
    assert res.ok, [str(e) for e in res.errors]
    return res.rules


@pytest.fixture(scope="session")
def sunny(rules):
    return rules.practices["sunny-pediatrics"]


@pytest.fixture
async def db(tmp_path: Path, databases):
    database = Database(databases.new(tmp_path / "ivr.sqlite3", at_head=True))
    await database.create()
    try:
        yield database
    finally:
        await database.close()
