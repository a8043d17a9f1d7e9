"""Claiming a row once across controllers: PostgreSQL row locks, SQLite's single writer.

Every once-only job (a call-back attempt, a delivery, a night's report, a call's purge)
is claimed by a compare-and-set UPDATE on the row it reads as due: of several claimers
only one changes the row, on either database. On PostgreSQL, `lock_or_skip` first takes
the row's lock with SELECT ... FOR UPDATE SKIP LOCKED, so a claimer on another node passes
over a row being claimed (or purged) right now instead of queueing behind that
transaction, and the compare-and-set then runs on a row it holds. SQLite has one writer
at a time and no row locks: there the compare-and-set alone is the claim, as its first
statement (a read before it would make the write fail on a busy database rather than
wait).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession


def row_locks(session: AsyncSession) -> bool:
    """Whether this session's database has row locks (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"


async def lock_or_skip(session: AsyncSession, key: Any, *where: ColumnElement[bool]) -> bool:
    """Take the lock of the row matching `where` for this transaction; False when another
    transaction holds it or no row matches. `key` is the row's primary key column.

    Always True on SQLite (see above): the caller's compare-and-set decides there.
    """
    if not row_locks(session):
        return True
    found = await session.scalar(select(key).where(*where).with_for_update(skip_locked=True))
    return found is not None
