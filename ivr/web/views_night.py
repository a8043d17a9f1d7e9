"""Tonight (calls in progress and the night so far, live), on call, and call-backs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp import web

from ivr.accounts.access import Need, allowed, scope
from ivr.db.kinds import Role
from ivr.documents.note import build_note
from ivr.documents.report import night_of
from ivr.oncall import callbacks
from ivr.records import audit, calls
from ivr.rules.oncall import timeline
from ivr.web import calls_data
from ivr.web.calls_data import Filters
from ivr.web.keys import CLOCK, TEMPLATES
from ivr.web.pages import Ctx, Entry, Shown, not_found, problem

LIVE_WINDOW = timedelta(hours=12)  # a call open longer than this is no longer "now"
EVENT_EVERY = 2.0  # seconds between two looks at the calls in progress
STREAM_FOR = 300.0  # seconds one event stream lasts; the browser then reconnects
ONCALL_DAYS = 14


async def _live_rows(ctx: Ctx) -> list[dict[str, Any]]:
    f = Filters(in_progress=True, since=ctx.now - LIVE_WINDOW, limit=100)
    found, _ = await calls_data.call_notes(ctx.db, scope(ctx.who), f, ctx.practices)
    return [calls_data.row(r, n) for r, n in found]


async def tonight(ctx: Ctx) -> Shown:
    """Per practice: the calls its next morning report will hold, needing action first."""
    live = await _live_rows(ctx)
    nights: list[dict[str, Any]] = []
    count = len(live)
    for pid, practice in sorted(ctx.practices.items()):
        window = night_of(practice, ctx.now)
        since = window.covers_from if window is not None else ctx.now - timedelta(days=1)
        found, more = await calls_data.call_notes(
            ctx.db, [pid], Filters(since=since, limit=200), ctx.practices)
        rows = sorted((calls_data.row(r, n) for r, n in found),
                      key=lambda row: (row["needs_action_rank"], -row["started_at"].timestamp()))
        nights.append({"practice_id": pid, "practice": practice.name,
                       "since": since, "until": window.opening if window else None,
                       "calls": rows, "more": more,
                       "needs_action": sum(1 for row in rows if row["needs_action"])})
        count += len(rows)
    return Shown({"live": live, "nights": nights, "events": "/tonight/events"},
                 [Entry(audit.CALL_READ, ctx.audit_practice(), None,
                        {"count": count, "page": "tonight"})])


async def tonight_events(ctx: Ctx) -> web.StreamResponse:
    """Server-sent events: the in-progress table, re-sent whenever it changes.

    Each event is the table as HTML, rendered (and escaped) by the same template as the
    page. One audit entry per stream; the stream ends after STREAM_FOR seconds and the
    browser's EventSource reconnects, through the log-in check again."""
    await ctx.audit(Entry(audit.CALL_READ, ctx.audit_practice(), None,
                          {"page": "tonight-live"}), "sse")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(ctx.request)
    template = ctx.request.app[TEMPLATES].get_template("_live.html")
    last = None
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_FOR
    while loop.time() < ends:
        transport = ctx.request.transport
        if transport is None or transport.is_closing():
            break  # the browser has gone
        ctx.now = ctx.request.app[CLOCK]()
        html = template.render(live=await _live_rows(ctx))
        if html != last:
            data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
            await response.write(f"event: live\n{data}\n".encode())
            last = html
        await asyncio.sleep(EVENT_EVERY)
    return response


async def oncall(ctx: Ctx) -> Shown:
    """Who covers each role over the next 14 days; a span with nobody is a gap."""
    start, end = ctx.now, ctx.now + timedelta(days=ONCALL_DAYS)
    total = (end - start).total_seconds()
    out = []
    for pid, practice in sorted(ctx.practices.items()):
        names = {c.id: c.name for c in practice.on_call.clinicians.values()}
        roles: dict[str, list[dict[str, Any]]] = {}
        for entry in timeline(practice, start, end):
            roles.setdefault(entry.role, []).append({
                "clinician_id": entry.clinician_id,
                "clinician": names.get(entry.clinician_id or "", entry.clinician_id),
                "start": entry.start, "end": entry.end, "source": entry.source,
                "gap": entry.clinician_id is None,
                "x": round((entry.start - start).total_seconds() / total * 100, 3),
                "width": round((entry.end - entry.start).total_seconds() / total * 100, 3),
                "start_local": entry.start.astimezone(practice.tz).strftime("%a %d %b %H:%M"),
                "end_local": entry.end.astimezone(practice.tz).strftime("%a %d %b %H:%M")})
        chain = [{"role": step.role, "clinician_id": step.clinician_id,
                  "ring_seconds": step.ring_seconds, "attempts": step.attempts}
                 for step in practice.on_call.escalation]
        out.append({"practice_id": pid, "practice": practice.name,
                    "timezone": practice.timezone, "roles": roles, "escalation": chain,
                    "gaps": sum(1 for spans in roles.values() for s in spans if s["gap"]),
                    "when_exhausted": practice.on_call.when_exhausted.action})
    return Shown({"practices": out, "from": start, "until": end, "days": ONCALL_DAYS})


async def callbacks_page(ctx: Ctx) -> Shown:
    """The pending call-backs of the practices this person sees, oldest first."""
    ids = list(ctx.practices) if ctx.who.all_practices else \
        ([ctx.who.practice_id] if ctx.who.practice_id else [])
    rows = []
    for cb in await callbacks.pending_for_practices(ctx.db, ids):
        record = await calls.show_call(ctx.db, cb.call_id)
        note = build_note(record, ctx.practice(cb.practice_id)) if record else None
        rows.append({**callbacks.callback_json(cb),
                     "call": calls_data.row(record or {}, note) if note else None})
    can_ack = allowed(ctx.who, Need.ACKNOWLEDGE)
    return Shown({"callbacks": rows, "can_acknowledge": can_ack},
                 [Entry(audit.CALLBACKS_READ, ctx.audit_practice(), None,
                        {"count": len(rows)})])


async def callback_ack(ctx: Ctx) -> web.StreamResponse | Shown:
    """Take a call-back: the same compare-and-set as a key press on the phone, so of two
    people acknowledging at once exactly one wins and the other is told."""
    callback_id = ctx.request.match_info["callback_id"]
    cb = await callbacks.get(ctx.db, callback_id) if len(callback_id) <= 32 else None
    if cb is None:
        raise not_found()
    ctx.must_see(cb.practice_id)
    clinician = ctx.who.clinician_id if ctx.who.role == Role.CLINICIAN else None
    won = await callbacks.acknowledge(ctx.db, callback_id, clinician_id=clinician,
                                      via="portal", now=ctx.now)
    if not won:
        raise problem(409, "Already taken", "someone acknowledged this call-back first")
    result = {"id": callback_id, "acknowledged": True, "call_id": cb.call_id}
    if ctx.api:
        return Shown(result)
    raise web.HTTPSeeOther(f"/calls/{cb.call_id}?acknowledged=1")
