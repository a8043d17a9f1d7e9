"""What every view shares: its context, the audit entry before any patient data, and
turning its result into an HTML page (Jinja2, autoescaped) or JSON.

A view returns `Shown` (data, and the audit entries that showing it needs) or a ready
response (a file or a stream, after writing its own entry with `Ctx.audit`). The same
view serves a page and its API twin: the route table says which template, if any.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from ivr.accounts.access import Principal, sees
from ivr.records import audit
from ivr.rules import RuleSet
from ivr.rules.model import Practice
from ivr.web.keys import CLOCK, DB, RULES, SESSION, SETTINGS, TEMPLATES, WHO

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Entry:
    """One audit entry a view needs written before it shows anything."""

    action: str
    practice_id: str | None = None
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Shown:
    data: dict[str, Any]
    entries: list[Entry] = field(default_factory=list)


class Ctx:
    """One request as a view sees it: who asks, the database, the rules, the time."""

    def __init__(self, request: web.Request, api: bool) -> None:
        self.request = request
        self.api = api
        self.who: Principal = request[WHO]
        self.db = request.app[DB]
        self.settings = request.app[SETTINGS]
        self.now: datetime = request.app[CLOCK]()
        self.rules: RuleSet | None = request.app[RULES]()

    @property
    def practices(self) -> dict[str, Practice]:
        """The practices of the rules in force that this person may see."""
        if self.rules is None:
            return {}
        return {pid: p for pid, p in self.rules.practices.items() if sees(self.who, pid)}

    def practice(self, practice_id: str | None) -> Practice | None:
        return self.rules.practices.get(practice_id or "") if self.rules else None

    def query(self, name: str, default: str = "") -> str:
        return self.request.query.get(name, default).strip()

    def int_query(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.query(name)
        if not raw:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise bad_request(f"query parameter {name}={raw[:40]!r}: expected a whole "
                              f"number {low}-{high}")
        return int(raw)

    def audit_practice(self, wanted: str | None = None) -> str | None:
        """The practice a list's audit entry names: the filter, else the person's own."""
        return wanted if wanted or self.who.all_practices else self.who.practice_id

    def must_see(self, practice_id: str | None) -> None:
        """404 (not 403: another practice's records are not even said to exist)."""
        if not sees(self.who, practice_id):
            raise not_found()

    async def audit(self, entry: Entry, fmt: str) -> None:
        """Write the entry or refuse the request (503): no entry, no data."""
        detail = {"via": self.who.via, "format": fmt, **entry.detail}
        try:
            await audit.record(self.db, self.who.actor, entry.action,
                               practice_id=entry.practice_id, subject=entry.subject,
                               detail=detail)
        except Exception as exc:
            log.error("audit entry %s failed (%s); nothing shown", entry.action,
                      type(exc).__name__)
            raise problem(503, "Audit log unavailable",
                          "the audit log cannot be written, so nothing is shown") from None


View = Callable[[Ctx], Awaitable["Shown | web.StreamResponse"]]


# --- errors -------------------------------------------------------------------------------

def problem(status: int, title: str, detail: str = "") -> web.HTTPException:
    """An HTTP error whose body the error middleware writes (problem+json or a page)."""
    exc = web.HTTPException()
    exc.set_status(status)
    exc.text = json.dumps({"type": "about:blank", "title": title, "status": status,
                           "detail": detail})
    exc.content_type = PROBLEM
    return exc


def not_found() -> web.HTTPException:
    return problem(404, "Not found", "no such record, or not one you may see")


def bad_request(detail: str) -> web.HTTPException:
    return problem(400, "Bad request", detail)


# --- output --------------------------------------------------------------------------------

def render(request: web.Request, template: str, data: dict[str, Any],
           status: int = 200) -> web.Response:
    env = request.app[TEMPLATES]
    session = request.get(SESSION)
    who = request.get(WHO)
    html = env.get_template(template).render(
        **data, who=who, csrf=session.csrf if session else "",
        path=request.path, public_url=request.app[SETTINGS].web_public_url)
    return web.Response(text=html, content_type="text/html", status=status)


def to_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "to_json"):
        return value.to_json()
    return str(value)


def serve(view: View, template: str | None, api: bool) -> Callable[[web.Request], Awaitable[
        web.StreamResponse]]:
    """The aiohttp handler of one route: the view, its audit entries, then the output
    (the page's template, or JSON for the API)."""
    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = Ctx(request, api=api)
        shown = await view(ctx)
        if isinstance(shown, web.StreamResponse):
            return shown
        for entry in shown.entries:
            await ctx.audit(entry, "json" if api else "html")
        if api or template is None:
            return web.json_response(to_json(shown.data), dumps=_dumps)
        return render(request, template, shown.data)

    handler.__name__ = getattr(view, "__name__", "handler")
    return handler


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=1, default=_default)
