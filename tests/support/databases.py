"""The databases the tests run on: SQLite, and a real PostgreSQL this test session starts.

A test (or a fixture) that asks for `db_url` runs once per database kind. The PostgreSQL
server is Debian's (package `postgresql`), made in a temporary folder by
ivr.cluster.postgres and started once per test process on this worker's port; each test
gets a new, empty database in it, dropped afterwards. IVR_TEST_DATABASES=sqlite (or
postgresql) runs one kind only, for a quick local run; `make test` runs both.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ivr.cluster.postgres import PostgresServer

SQLITE, POSTGRESQL = "sqlite", "postgresql"
KINDS = (SQLITE, POSTGRESQL)
#: The test server's data is thrown away: no need to survive a power cut.
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        "max_connections": "200"}
PG_PORT_SLOT = 15  # PortPlan.fixed(15): this worker's PostgreSQL port


def kinds() -> tuple[str, ...]:
    wanted = os.environ.get("IVR_TEST_DATABASES", "").strip()
    if not wanted:
        return KINDS
    chosen = tuple(k.strip() for k in wanted.split(",") if k.strip())
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise pytest.UsageError(f"IVR_TEST_DATABASES: {unknown[0]!r}: expected "
                                f"{' or '.join(KINDS)}")
    return chosen


def new_server(slot: int = PG_PORT_SLOT, tuning: dict[str, str] | None = None
               ) -> PostgresServer:
    """A new server (not started) on this worker's port number `slot` (PortPlan.fixed), in
    /tmp: the postgres user must reach its folder. `tuning`: FAST unless given ({}: the
    server's durable defaults, for a test that crashes it)."""
    from harness import PortPlan

    folder = Path(tempfile.mkdtemp(prefix="ivr-test-pg-"))
    return PostgresServer(folder, port=PortPlan().fixed(slot),
                          tuning=FAST if tuning is None else tuning)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = new_server()
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.folder, ignore_errors=True)


@dataclass
class Databases:
    """New databases of one kind for one test; PostgreSQL ones are dropped after it."""

    kind: str
    server: PostgresServer | None = None
    made: list[str] = field(default_factory=list)

    @property
    def postgres(self) -> bool:
        return self.kind == POSTGRESQL

    def new(self, sqlite_file: Path, *, at_head: bool = False) -> str:
        """A new database's URL (`sqlite_file` is where SQLite's goes): empty, or with
        `at_head` already at the schema's head, a copy of one this test process migrated
        once (Alembic's eleven steps cost ~0.15-0.3 s of CPU, in hundreds of tests whose
        subject is not the migrations; Database.create() then finds the head and skips)."""
        if self.server is None:
            if at_head:
                sqlite_file.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(_sqlite_at_head(), sqlite_file)
                os.chmod(sqlite_file, 0o600)
            return f"sqlite+aiosqlite:///{sqlite_file}"
        name = f"t_{secrets.token_hex(6)}"
        self.server.create_database(name, **({"template": _pg_at_head(self.server)}
                                             if at_head else {}))
        self.made.append(name)
        return self.server.url(name)

    def use_in_cli(self, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
        """The command line's database: IVR_DB_URL for PostgreSQL, the data folder's
        SQLite file otherwise."""
        if self.postgres:
            monkeypatch.setenv("IVR_DB_URL", url)
        else:
            monkeypatch.delenv("IVR_DB_URL", raising=False)

    def drop_all(self) -> None:
        assert self.server is not None or not self.made
        for name in self.made:
            self.server.drop_database(name)  # type: ignore[union-attr]
        self.made.clear()


# Databases at the schema's head, made once per test process: the SQLite file, and per
# PostgreSQL server the template database new ones are copied from.
_HEADS: dict[str, str] = {}


def _migrated(url: str) -> None:
    """Bring the database at `url` to the schema's head, from any thread or event loop
    (a fixture asking for one may already run in the test's loop)."""
    from ivr.db.engine import Database

    async def run() -> None:
        db = Database(url)
        try:
            await db.create()
        finally:
            await db.close()

    with ThreadPoolExecutor(1) as worker:  # its own thread, its own loop
        worker.submit(asyncio.run, run()).result()


def _sqlite_at_head() -> str:
    if SQLITE not in _HEADS:
        folder = tempfile.mkdtemp(prefix="ivr-test-head-")
        atexit.register(shutil.rmtree, folder, True)
        path = Path(folder) / "head.sqlite3"
        _migrated(f"sqlite+aiosqlite:///{path}")
        _HEADS[SQLITE] = str(path)
    return _HEADS[SQLITE]


def _pg_at_head(server: PostgresServer) -> str:
    key = f"{POSTGRESQL}:{server.port}"
    if key not in _HEADS:
        name = f"t_head_{secrets.token_hex(4)}"
        server.create_database(name)
        _migrated(server.url(name))
        _HEADS[key] = name
    return _HEADS[key]


@pytest.fixture(params=kinds())
def databases(request: pytest.FixtureRequest) -> Iterator[Databases]:
    """Runs the test once per database kind; `.new(path)` makes its databases."""
    kind = request.param
    made = Databases(kind, request.getfixturevalue("pg_server") if kind == POSTGRESQL else None)
    try:
        yield made
    finally:
        if made.postgres:
            made.drop_all()


async def foreign_key_violations(conn) -> list:
    """Rows whose foreign keys point nowhere. SQLite checks them on request only; PostgreSQL
    enforces every constraint at each statement, so none can exist there."""
    if conn.dialect.name != SQLITE:
        return []
    from sqlalchemy import text

    return list((await conn.execute(text("PRAGMA foreign_key_check"))).all())
