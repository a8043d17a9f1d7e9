"""The async engine: SQLite (WAL, busy timeout, foreign keys) by default, PostgreSQL (or
any URL) when IVR_DB_URL names one.

The schema is made and upgraded by Alembic (ivr/db/migrations), never by create_all, so
an existing database is brought forward instead of being left behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ivr.config import ConfigError
from ivr.secure.files import create_private

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The newest migration's revision (tests/flows/test_migrations.py checks it is Alembic's
#: head): a database already there is not handed to Alembic at all, whose import and
#: script loading cost each CLI command and controller start about 0.2 s of CPU.
SCHEMA_HEAD = "0011_journal"
#: Seconds between two tries to reach the database at start: doubling up to the most.
RETRY_FIRST, RETRY_MOST = 1.0, 30.0
#: PostgreSQL's SQLSTATEs that mean "not reachable now, try later": connection
#: exceptions (class 08), shutting down or starting up (57P01-57P03), too many connections.
_TRANSIENT_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def place(url: str) -> str:
    """The database as a person can find it: the SQLite path or host:port/name, never the
    user or password."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return "the database (IVR_DB_URL)"
    if parsed.get_backend_name() == "sqlite":
        return f"the database {parsed.database}"
    host = f"{parsed.host}:{parsed.port}" if parsed.port else str(parsed.host)
    return f"the database at {host}/{parsed.database or ''}"


def unreachable(exc: BaseException) -> bool:
    """True when `exc` says the database server cannot be reached now (refused, reset,
    timed out, starting or stopping), not that something is wrong with what we asked."""
    if isinstance(exc, OSError):  # asyncpg lets the socket's own error through at connect
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
        if state.startswith(_TRANSIENT_STATES):
            return True
        return isinstance(getattr(orig, "__cause__", None), OSError)
    return False


def reason(exc: BaseException) -> str:
    """One line about a failure, without SQL, parameters or the URL."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, OSError) and orig.strerror:
        return f"{type(orig).__name__}: {orig.strerror}"
    first = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {first[0][:200]}" if first else type(orig).__name__


def alembic_config() -> Any:
    """Alembic's configuration, in code: the scripts ship inside the package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _at_head(connection: Any) -> bool:
    if not inspect(connection).has_table("alembic_version"):
        return False
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return [v for (v,) in versions] == [SCHEMA_HEAD]


def _upgrade(connection: Any) -> None:
    if _at_head(connection):
        return
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection  # env.py runs on this connection
    command.upgrade(cfg, "head")


class Database:
    """One engine and its session factory; `create()` migrates the schema to head."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            make_url(url)
        except (ArgumentError, ValueError):  # ArgumentError's text repeats the URL, password too
            raise ConfigError("IVR_DB_URL: not a database URL such as "
                              "postgresql+asyncpg://user:password@host:5432/ivr") from None
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                # Made 0600 (in a 0700 folder) before SQLite opens it: SQLite gives its
                # -wal, -shm and -journal files the database file's own mode.
                create_private(Path(path))
        # A refused statement's error text would carry its values (a caller's number, a
        # name) into whatever logs it: SQLAlchemy leaves them out when asked.
        if url.startswith("sqlite"):
            self.engine: AsyncEngine = create_async_engine(url, hide_parameters=True)
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # A server can restart under us (PostgreSQL shared by several nodes): a pooled
            # connection is checked before use, so the next step gets a new one instead of
            # the dead one's error.
            self.engine = create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        #: Awaited by close() before the engine goes: work still queued for this database
        #: (ivr.records.journal's group commit) is written, never left pending.
        self.before_close: list[Callable[[], Awaitable[None]]] = []

    async def create(self) -> None:
        """Bring the schema to the newest migration (creates it in an empty database)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def create_when_reachable(self, *, first: float = RETRY_FIRST,
                                    most: float = RETRY_MOST,
                                    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                                    ) -> int:
        """create(), waiting out a database that cannot be reached yet: one log line per
        try, the wait doubling from `first` up to `most` seconds, until it answers (or the
        task is cancelled). Any other failure (a refused login, a bad schema) is raised.
        Returns how many tries failed before it answered."""
        wait, failed = first, 0
        while True:
            try:
                await self.create()
            except Exception as exc:
                if not unreachable(exc):
                    raise
                failed += 1
                log.warning("%s cannot be reached (%s); trying again in %.0fs",
                            place(self.url), reason(exc), wait)
                await sleep(wait)
                wait = min(most, wait * 2)
                continue
            if failed:
                log.info("%s reached after %d failed tries", place(self.url), failed)
            return failed

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose work is committed on success (one commit per step)."""
        async with self.sessions() as session:
            async with session.begin():
                yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in one transaction, committed on success: the call's hot path
        (timeline events, intake fields), the same commit as `session()` without the
        ORM's unit of work, identity map and loads (issue 16's profile)."""
        async with self.engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        for drain in list(self.before_close):
            await drain()
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
