"""Alembic environment: migrations run on the async engine through connection.run_sync.

Two ways in: `Database.create()` hands over an open connection (config.attributes
["connection"]), so migrations run inside the controller's own loop; the `alembic`
command line (with -x url=...) builds an async engine and runs them with asyncio.run.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ivr.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, hide_parameters=True)
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") \
        or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite+aiosqlite:///path ...")
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
main()
