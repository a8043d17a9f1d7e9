"""Morning reports (files and delivery status, retry) and the audit log."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path

from aiohttp import web

from ivr.accounts.access import sees
from ivr.db.models import Report
from ivr.delivery import outbox
from ivr.documents import store
from ivr.records import audit
from ivr.web.pages import Ctx, Entry, Shown, bad_request, not_found, problem

FORMATS = {"pdf": "application/pdf", "json": "application/json"}


async def reports(ctx: Ctx) -> Shown:
    """Reports made so far, newest night first, each with every delivery's status."""
    wanted = ctx.query("practice") or None
    if wanted is not None and not sees(ctx.who, wanted):
        rows = []
    else:
        pid = wanted if wanted is not None else (None if ctx.who.all_practices
                                                 else ctx.who.practice_id)
        limit = ctx.int_query("limit", 60, 1, 500)
        rows = await store.report_rows(ctx.db, pid, limit) if (pid or ctx.who.all_practices) \
            else []
    out = []
    for row in rows:
        if not sees(ctx.who, row["practice_id"]):
            continue
        deliveries = []
        for delivery_id in row["deliveries"]:
            found = await outbox.get_delivery(ctx.db, delivery_id)
            if found is not None:
                deliveries.append({k: found[k] for k in (
                    "id", "channel", "status", "attempts", "max_attempts", "last_error",
                    "next_attempt_at", "finished_at")})
        out.append({"id": row["id"], "practice_id": row["practice_id"],
                    "night": row["night"], "status": row["status"],
                    "made_at": row["made_at"], "calls": row["calls"],
                    "needs_action": row["needs_action"],
                    "pdf": f"/reports/{row['id']}/pdf" if row["pdf_path"] else None,
                    "json": f"/reports/{row['id']}/json" if row["json_path"] else None,
                    "deliveries": deliveries})
    return Shown({"reports": out, "practices": sorted(ctx.practices)})


async def report_file(ctx: Ctx) -> web.StreamResponse:
    """The report as made (PDF or JSON), from the documents folder."""
    report_id, fmt = ctx.request.match_info["report_id"], ctx.request.match_info["fmt"]
    if fmt not in FORMATS or len(report_id) > 32:
        raise not_found()
    async with ctx.db.session() as s:
        row = await s.get(Report, report_id)
    if row is None:
        raise not_found()
    ctx.must_see(row.practice_id)
    stored = row.pdf_path if fmt == "pdf" else row.json_path
    path = Path(stored) if stored else None
    root = (ctx.settings.data_dir).resolve()
    if path is None or not path.resolve().is_relative_to(root) or not path.is_file():
        raise not_found()
    body = await asyncio.to_thread(path.read_bytes)
    await ctx.audit(Entry(audit.REPORT_READ, row.practice_id,
                          f"{row.practice_id}:{row.night}"[:64], {"report_id": row.id}), fmt)
    return web.Response(body=body, content_type=FORMATS[fmt], headers={
        "Content-Disposition": f'inline; filename="report-{row.practice_id}-{row.night}.{fmt}"'})


async def delivery_retry(ctx: Ctx) -> web.StreamResponse | Shown:
    delivery_id = ctx.request.match_info["delivery_id"]
    found = await outbox.get_delivery(ctx.db, delivery_id) if len(delivery_id) <= 32 else None
    if found is None:
        raise not_found()
    ctx.must_see(found["practice_id"])
    if not await outbox.requeue(ctx.db, delivery_id, ctx.now):
        raise problem(409, "Not failed", "only a failed delivery can be tried again")
    if ctx.api:
        return Shown({"id": delivery_id, "queued": True})
    raise web.HTTPSeeOther("/reports?retried=1")


async def audit_log(ctx: Ctx) -> Shown:
    """The audit log: operators see all of it, a practice admin their practice's."""
    since_text = ctx.query("since")
    try:
        since = datetime.combine(date.fromisoformat(since_text), datetime.min.time(),
                                 ctx.now.tzinfo) if since_text else None
    except ValueError:
        raise bad_request(f"query parameter since={since_text[:40]!r}: expected a date") \
            from None
    action = ctx.query("action") or None
    if action is not None:
        try:
            audit.action_filter(action)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
    practice = ctx.query("practice") or None
    if not ctx.who.all_practices:
        if practice not in (None, ctx.who.practice_id):
            return Shown({"entries": [], "actions": audit.ACTIONS})
        practice = ctx.who.practice_id
    subject = ctx.query("subject") or None
    rows = await audit.read(ctx.db, since=since, action=action, practice_id=practice,
                            subject=subject, limit=ctx.int_query("limit", 200, 1, 1000))
    return Shown({"entries": rows, "actions": audit.ACTIONS,
                  "filters": {"since": since_text, "action": action, "practice": practice,
                              "subject": subject}})
