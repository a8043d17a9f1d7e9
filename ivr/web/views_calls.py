"""The calls pages: the filtered list, one call's page, its recordings and its note PDF."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from ivr.accounts.access import scope
from ivr.documents import note as notes
from ivr.documents.note import build_note
from ivr.documents.pdf import note_pdf
from ivr.records import audit, calls, recordings
from ivr.rules.model import DISPOSITIONS
from ivr.web import calls_data
from ivr.web.calls_data import Filters
from ivr.web.pages import Ctx, Entry, Shown, bad_request, not_found

OUTCOMES = (notes.OC_CONNECTED, notes.OC_ACKNOWLEDGED, notes.OC_PENDING,
            notes.OC_NOT_ACKNOWLEDGED, notes.OC_FALLBACK_ANSWERED, notes.OC_FALLBACK_MESSAGE,
            notes.OC_FALLBACK_ABANDONED, notes.OC_ABANDONED, notes.OC_MESSAGE,
            notes.OC_OPERATOR, notes.OC_IN_PROGRESS, notes.OC_OTHER)


def _choice(ctx: Ctx, name: str, allowed: tuple[str, ...] | list[str]) -> str | None:
    value = ctx.query(name)
    if value and value not in allowed:
        raise bad_request(f"query parameter {name}={value[:40]!r}: expected one of "
                          f"{', '.join(allowed)}")
    return value or None


def filters(ctx: Ctx) -> Filters:
    night_text = ctx.query("night")
    try:
        night = date.fromisoformat(night_text) if night_text else None
    except ValueError:
        raise bad_request(f"query parameter night={night_text[:40]!r}: expected a date "
                          "such as 2026-11-26") from None
    practice = ctx.query("practice") or None
    if practice is not None and len(practice) > 64:
        raise bad_request("query parameter practice: at most 64 characters")
    return Filters(practice=practice, night=night,
                   disposition=_choice(ctx, "disposition", [str(d) for d in DISPOSITIONS]),
                   outcome=_choice(ctx, "outcome", OUTCOMES),
                   needs_action=ctx.query("needs_action") in ("1", "on", "true"),
                   limit=ctx.int_query("limit", 50, 1, 200),
                   offset=ctx.int_query("offset", 0, 0, 100000))


async def calls_list(ctx: Ctx) -> Shown:
    f = filters(ctx)
    practices = ctx.practices
    found, more = await calls_data.call_notes(ctx.db, scope(ctx.who, f.practice), f,
                                              practices)
    rows = [calls_data.row(record, note) for record, note in found]
    data = {"calls": rows, "filters": f.to_json(), "more": more,
            "next_offset": f.offset + f.limit if more else None,
            "practices": sorted(practices), "dispositions": [str(d) for d in DISPOSITIONS],
            "outcomes": OUTCOMES}
    return Shown(data, [Entry(audit.CALL_READ, ctx.audit_practice(f.practice), None,
                              {"count": len(rows), "page": "calls"})])


async def _record(ctx: Ctx, call_id: str) -> dict[str, Any]:
    """The call if this person may see it; 404 the same way whether it exists or not."""
    if not call_id or len(call_id) > 64:
        raise not_found()
    record = await calls.show_call(ctx.db, call_id)
    if record is None or record["id"] != call_id:  # no look-ups by uniqueid here
        raise not_found()
    ctx.must_see(record.get("practice_id"))
    return record


async def call_page(ctx: Ctx) -> Shown:
    call_id = ctx.request.match_info["call_id"]
    record = await _record(ctx, call_id)
    note = build_note(record, ctx.practice(record.get("practice_id")))
    intake = [{"field": name, **{k: v for k, v in value.items() if k != "recording_path"}}
              for name, value in (record.get("intake") or {}).items()]
    audio = [{"field": field, "url": f"/calls/{call_id}/audio/{field}",
              "api_url": f"/api/v1/calls/{call_id}/audio/{field}"}
             for field in recordings.FIELDS if recordings.path_of(record, field)]
    data = {"call": {
        "id": call_id, "practice_id": note.practice_id, "practice": note.practice_name,
        "started_at": note.started_at, "started_local": note.local_start,
        "ended_at": note.ended_at, "in_progress": note.ended_at is None,
        "route": note.route, "route_label": note.route_label,
        "disposition": note.disposition, "outcome": note.outcome,
        "outcome_text": note.outcome_text, "caller": record.get("caller"),
        "caller_told": note.caller_told, "end_reason": note.end_reason,
        "needs_action": [{"kind": k, "text": notes.NEEDS_ACTION_TEXT[k]}
                         for k in note.needs_action]},
        "note_rows": note.rows(), "intake": intake, "audio": audio,
        # Machine transcripts beside the recordings they came from, marked as such.
        "transcripts": [{k: t.get(k) for k in ("field", "status", "text", "mark", "engine",
                                               "confidence", "red_flag", "note")}
                        for t in record.get("transcripts") or []],
        "attempts": [a.to_json(note.tz) for a in note.attempts],
        "callback": record.get("callback"),
        "timeline": [{"at": e["at"], "at_local": _local(e["at"], note.tz), "kind": e["kind"],
                      "detail": e["detail"]} for e in record.get("timeline") or []],
        "note_pdf": f"/calls/{call_id}/note.pdf"}
    return Shown(data, [Entry(audit.CALL_READ, note.practice_id, call_id, {"page": "call"})])


def _local(iso: str | None, tz: Any) -> str:
    if not iso:
        return ""
    return notes.fmt_human(datetime.fromisoformat(iso), tz)


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


async def call_audio(ctx: Ctx) -> web.StreamResponse:
    """One recording, opened in memory and served in the ranges the player asks for.

    A sealed recording is one AES-GCM message (ivr.records.recordings): it opens whole or
    not at all, so it is opened for each request (a few hundred kB for a minute of
    8 kHz audio) and only the asked range is sent. Nothing is cached or written."""
    call_id, field = ctx.request.match_info["call_id"], ctx.request.match_info["field"]
    if field not in recordings.FIELDS:
        raise not_found()
    record = await _record(ctx, call_id)
    stored = recordings.path_of(record, field)
    path = Path(stored) if stored else None
    if path is None or not _inside(path, ctx.settings.data_dir) or not path.is_file():
        raise not_found()
    try:
        wanted = ctx.request.http_range
    except ValueError:
        raise web.HTTPRequestRangeNotSatisfiable() from None
    wav = await asyncio.to_thread(recordings.read, path)
    total = len(wav)
    start = wanted.start or 0
    stop = total if wanted.stop is None else min(wanted.stop, total)
    if start < 0:  # "bytes=-N": the last N bytes
        start, stop = max(total + start, 0), total
    if start >= total and total:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{total}"})
    ranged = "Range" in ctx.request.headers
    await ctx.audit(Entry(audit.RECORDING_READ, record.get("practice_id"), call_id, {
        "field": field, "bytes": stop - start, "range": ranged}), "wav")
    headers = {"Accept-Ranges": "bytes", "Content-Type": "audio/wav"}
    if ranged:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{total}"
    return web.Response(body=wav[start:stop], status=206 if ranged else 200, headers=headers)


async def call_note_pdf(ctx: Ctx) -> web.StreamResponse:
    call_id = ctx.request.match_info["call_id"]
    record = await _record(ctx, call_id)
    note = build_note(record, ctx.practice(record.get("practice_id")))
    body = await asyncio.to_thread(note_pdf, note, ctx.now, ctx.settings.web_public_url)
    await ctx.audit(Entry(audit.NOTE_READ, note.practice_id, call_id, {}), "pdf")
    return web.Response(body=body, content_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="call-{call_id}.pdf"'})
