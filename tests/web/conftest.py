"""Fixtures for the portal tests: the seeded database and an aiohttp test client on it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).parent))
from browser_helpers import browser  # noqa: E402, F401 (the Chromium fixture)
from web_helpers import NOW, Seeded, rules, seed  # noqa: E402

from ivr import config
from ivr.db.engine import Database
from ivr.web.app import make_app


class Clock:
    """The portal's clock, moved by the test (session expiry, lock-out)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Portal:
    db: Database
    seeded: Seeded
    clock: Clock
    settings: config.Settings
    ruleset: Any

    def app(self) -> Any:
        return make_app(self.settings, db=self.db, rules=lambda: self.ruleset,
                        clock=self.clock)

    async def client(self) -> TestClient:
        """A browser of its own (cookie jar) on a portal of its own, same database."""
        client = TestClient(TestServer(self.app()))
        await client.start_server()
        self._clients.append(client)
        return client

    def __post_init__(self) -> None:
        self._clients: list[TestClient] = []


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[Portal]:
    data = tmp_path / "data"
    settings = config.Settings(data_dir=data, instance="web-test",
                               key_file=config.from_env().key_file).validate()
    db = Database(settings.database_url)
    await db.create()
    seeded = await seed(db, data)
    ruleset = rules()
    clock = Clock(NOW)
    out = Portal(db, seeded, clock, settings, ruleset)
    try:
        yield out
    finally:
        for client in out._clients:
            await client.close()
        await db.close()
