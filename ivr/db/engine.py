"""The async engine: SQLite (WAL, busy timeout, foreign keys) by default, PostgreSQL (or
any URL) when IVR_DB_URL names one.

The schema is made and upgraded by Alembic (ivr/db/migrations), never by create_all, so
an existing database is brought forward instead of being left behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ivr.secure.files import create_private

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Any:
    """Alembic's configuration, in code: the scripts ship inside the package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(connection: Any) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection  # env.py runs on this connection
    command.upgrade(cfg, "head")


class Database:
    """One engine and its session factory; `create()` migrates the schema to head."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                # Made 0600 (in a 0700 folder) before SQLite opens it: SQLite gives its
                # -wal, -shm and -journal files the database file's own mode.
                create_private(Path(path))
        if url.startswith("sqlite"):
            self.engine: AsyncEngine = create_async_engine(url)
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # A server can restart under us (PostgreSQL shared by several nodes): a pooled
            # connection is checked before use, so the next step gets a new one instead of
            # the dead one's error.
            self.engine = create_async_engine(url, pool_pre_ping=True)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def create(self) -> None:
        """Bring the schema to the newest migration (creates it in an empty database)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose work is committed on success (one commit per step)."""
        async with self.sessions() as session:
            async with session.begin():
                yield session

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Several tasks (calls, reconciliation, CLI readers) write at once: WAL lets readers
    # go on during a write, and the busy timeout waits instead of failing.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
