"""A clinician leg's row, written as a step of its call (ivr.records.journal).

The dialler's writes (the `placing` row before the Originate, what AMI events and the
screen say after it, the end) are steps of the leg's call: in the database now, or,
while it is gone, in the controller's journal behind the call's other steps, replayed
in order when it is back. A leg placed during an outage is therefore durable (the
journal is fsynced) before its Originate, as its committed row is otherwise, and a leg
that ends during an outage is closed in the record once the database returns.

Each step takes its time as an argument (a replayed step keeps the instant it was
taken) and is written with Core statements on the journal's connection.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ivr.db.engine import Database
from ivr.db.models import LEG_ACTIVE, OncallLeg
from ivr.db.sealed import sealed_values
from ivr.records import journal

_LEGS: Table = OncallLeg.__table__  # type: ignore[assignment]


async def insert(db: Database, call_id: str, row: dict[str, Any]) -> None:
    """The leg's first row (`placing`); `row` holds its columns, `id` among them."""
    await journal.write(db, call_id, "leg.insert", {"row": row})


@journal.op("leg.insert")
async def _insert(conn: AsyncConnection, call_id: str, *, row: dict[str, Any]) -> None:
    await conn.execute(_LEGS.insert(), sealed_values(OncallLeg, {**row, "call_id": call_id}))


async def update(db: Database, call_id: str, leg_id: str, **fields: Any) -> None:
    """Set columns of the leg (unsealed ones: status, detail, times, the channel)."""
    await journal.write(db, call_id, "leg.update", {"leg": leg_id, "fields": fields})


@journal.op("leg.update")
async def _update(conn: AsyncConnection, call_id: str, *, leg: str,
                  fields: dict[str, Any]) -> None:
    if fields:
        await conn.execute(_LEGS.update().where(_LEGS.c.id == leg).values(**fields))


async def finish(db: Database, call_id: str, leg_id: str, *, status: str,
                 detail: str | None, ring_ms: int | None, ended_at: datetime | None,
                 fields: dict[str, Any]) -> None:
    """The leg's outcome: `status` and `detail` only while the row is still active (the
    first outcome stored wins), `ring_ms` and `ended_at` only if not set yet, `fields`
    always."""
    await journal.write(db, call_id, "leg.finish", {
        "leg": leg_id, "status": status, "detail": detail, "ring_ms": ring_ms,
        "ended_at": ended_at, "fields": fields})


@journal.op("leg.finish")
async def _finish(conn: AsyncConnection, call_id: str, *, leg: str, status: str,
                  detail: str | None, ring_ms: int | None, ended_at: datetime | None,
                  fields: dict[str, Any]) -> None:
    row = (await conn.execute(select(_LEGS.c.status, _LEGS.c.detail, _LEGS.c.ring_ms,
                                     _LEGS.c.ended_at).where(_LEGS.c.id == leg))).first()
    if row is None:
        return
    values = dict(fields)
    if row.status in LEG_ACTIVE:
        values.update(status=status, detail=detail or row.detail)
    if row.ring_ms is None and ring_ms is not None:
        values["ring_ms"] = ring_ms
    if ended_at is not None and row.ended_at is None:
        values["ended_at"] = ended_at
    if values:
        await conn.execute(_LEGS.update().where(_LEGS.c.id == leg).values(**values))


async def hung_up(db: Database, call_id: str, leg_id: str, at: datetime) -> None:
    """The leg's channel is gone: ended (if not yet), and its bridge's length if it was
    bridged."""
    await journal.write(db, call_id, "leg.hung_up", {"leg": leg_id, "at": at})


@journal.op("leg.hung_up")
async def _hung_up(conn: AsyncConnection, call_id: str, *, leg: str, at: datetime) -> None:
    row = (await conn.execute(select(_LEGS.c.ended_at, _LEGS.c.bridged_at,
                                     _LEGS.c.bridge_seconds).where(_LEGS.c.id == leg))).first()
    if row is None:
        return
    values: dict[str, Any] = {}
    if row.ended_at is None:
        values["ended_at"] = at
    if row.bridged_at is not None and row.bridge_seconds is None:
        values["bridge_seconds"] = round((at - row.bridged_at).total_seconds(), 2)
    if values:
        await conn.execute(_LEGS.update().where(_LEGS.c.id == leg).values(**values))
