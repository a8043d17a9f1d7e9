"""The portal's application factory, used by `ivr web` and by the tests alike.

Resources are opened and closed in one place (`_resources`, an aiohttp cleanup context):
the database (migrated to head, like the controller's) and the rules, loaded in a thread
and watched for changes. A test hands its own database, rules and clock instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import jinja2
from aiohttp import web

from ivr import clock
from ivr.accounts.throttle import Throttle
from ivr.config import Settings
from ivr.db.engine import Database
from ivr.web import guard
from ivr.web.keys import (
    CLOCK,
    DB,
    RULES,
    RULES_CHECK,
    SETTINGS,
    TEMPLATES,
    THROTTLE,
    Clock,
    RulesSource,
)
from ivr.web.openapi import OPENAPI_PATH, openapi_json
from ivr.web.routes import add_routes
from ivr.web.rules_check import RulesCheck

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAX_BODY = 64 * 1024  # forms only: nothing is uploaded to the portal


utc_now = clock.now  # the one clock (ivr.clock)


def templates() -> jinja2.Environment:
    """Jinja2 with autoescape on for every template: patient data is text, never markup."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["local"] = _local
    return env


def _local(value: datetime | str | None, fmt: str = "%a %d %b %H:%M") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime(fmt)


def make_app(settings: Settings, *, db: Database | None = None,
             rules: RulesSource | None = None, clock: Clock | None = None) -> web.Application:
    app = web.Application(middlewares=[guard.errors, guard.guard], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[CLOCK] = clock or utc_now
    app[THROTTLE] = Throttle()
    app[TEMPLATES] = templates()
    app[RULES_CHECK] = RulesCheck(settings.rules_path)
    if db is not None:
        app[DB] = db
    if rules is not None:
        app[RULES] = rules
    app.cleanup_ctx.append(_resources)
    add_routes(app)
    # Besides the table: files and the document describing the table, neither holds data.
    app.router.add_static("/static", HERE / "static", name="static")
    app.router.add_get(OPENAPI_PATH, openapi_json, name="openapi")
    app.on_response_prepare.append(guard.on_prepare)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    own_db = DB not in app
    if own_db:
        app[DB] = Database(settings.database_url)
        await app[DB].create()
    watcher: asyncio.Task[None] | None = None
    if RULES not in app:
        from ivr.rules.runtime import RulesRuntime

        # Its own runtime (no status file: that is the controller's): loaded in a thread,
        # reloaded when the files change. Broken rules keep the previous ones in force.
        runtime = RulesRuntime(settings.rules_path, instance=f"web-{settings.instance}")
        if not await runtime.load():
            log.warning("portal: the rules at %s do not load; pages show no practice "
                        "details until they do", settings.rules_path)
        app[RULES] = lambda: runtime.current
        watcher = asyncio.create_task(runtime.watch(), name="portal-rules-watch")
    try:
        yield
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if own_db:
            await app[DB].close()
