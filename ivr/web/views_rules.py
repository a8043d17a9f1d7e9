"""The Rules page: each practice's check result and state now, the simulator ("what
would happen to a call at T with keys K"), and the manual overrides set and cleared.

Rules and overrides are no patient data: reading them writes no audit entry. Setting and
clearing an override write the same `override.set` / `override.clear` entries as
`ivr override set|clear` (ivr.records.overrides, in the change's own transaction), with
the portal user as the actor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from ivr.accounts.access import Need, allowed
from ivr.cli.when import FORMS, WhenError, parse_instant
from ivr.records import overrides
from ivr.rules import Issue, RuleSet
from ivr.rules.model import Practice
from ivr.rules.runtime import read_status, status_path
from ivr.rules.schedule import state_at
from ivr.rules.simulate import format_text, simulate
from ivr.rules.timeutil import fmt_local
from ivr.web.keys import RULES_CHECK
from ivr.web.pages import Ctx, Shown, bad_request, not_found, problem

KEYS = re.compile(r"[0-9*#.]{0,20}")
NUMBER = re.compile(r"[0-9+() .-]{0,32}")
FIELD_MAX = 200


def _issue(issue: Issue) -> dict[str, Any]:
    doc = issue.to_json()
    # The file's name, not the server's folders; line and column as `ivr rules check`.
    where = f"{Path(issue.file).name}:{issue.line}:{issue.column}"
    return {**{k: doc[k] for k in ("severity", "key", "value", "expected", "message")},
            "file": Path(issue.file).name, "line": issue.line, "column": issue.column,
            "where": where}


def _owner(issue: Issue, files: Mapping[str, str]) -> str | None:
    """The practice whose file an issue is in (by the rules in force), if any."""
    return files.get(Path(issue.file).name)


async def _practice_json(ctx: Ctx, pid: str, practice: Practice) -> dict[str, Any]:
    manual = await overrides.active_overrides(ctx.db, pid, ctx.now)
    st = state_at(practice, ctx.now, manual_overrides=manual)
    tz = practice.tz
    rows = await overrides.list_overrides(ctx.db, ctx.now, practice_id=pid)
    for row in rows:
        for key in ("start", "end"):
            row[key + "_local"] = fmt_local(datetime.fromisoformat(row[key]), tz).replace("T", " ")
    return {"id": pid, "name": practice.name, "timezone": practice.timezone,
            "file": Path(practice.source_file).name, "numbers": list(practice.dids),
            "forwarding_numbers": list(practice.forwarding_numbers),
            "state": {"kind": st.kind, "is_open": st.is_open, "reason": st.reason,
                      "next_change": fmt_local(st.next_change, tz).replace("T", " ")
                      if st.next_change else None},
            "overrides": rows, "errors": [], "warnings": []}


async def rules_page(ctx: Ctx) -> Shown:
    """Per practice: the files' check, the state now and the overrides; the controller's
    rules in force (its status file)."""
    checked = await ctx.request.app[RULES_CHECK].result(ctx.now)
    result = checked.result
    files = {Path(p.source_file).name: pid for pid, p in
             (ctx.rules.practices.items() if ctx.rules else ())}
    practices = {pid: await _practice_json(ctx, pid, p)
                 for pid, p in sorted(ctx.practices.items())}
    unclaimed: list[dict[str, Any]] = []  # files no practice in force has: operators only
    for issue in [*result.errors, *result.warnings]:
        owner = _owner(issue, files)
        target = practices[owner][issue.severity + "s"] if owner in practices else (
            unclaimed if ctx.who.all_practices and owner is None else None)
        if target is not None:
            target.append(_issue(issue))
    status = read_status(status_path(ctx.settings)) or {}
    controller = {"digest": status.get("digest"), "loaded_at": status.get("loaded_at"),
                  "last_attempt_at": status.get("last_attempt_at"),
                  "last_attempt_ok": status.get("last_attempt_ok"),
                  "error_count": status.get("error_count", 0)} if status else None
    return Shown({
        "checked_at": checked.at, "ok": result.ok,
        "error_count": len(result.errors), "warning_count": len(result.warnings),
        "digest_on_disk": result.rules.digest if result.rules else None,
        "digest_in_force": ctx.rules.digest if ctx.rules else None,
        "controller": controller, "practices": list(practices.values()),
        "other_issues": unclaimed, "can_change": allowed(ctx.who, Need.CHANGE),
        "forms": FORMS})


def _rules(ctx: Ctx) -> RuleSet:
    if ctx.rules is None:
        raise problem(503, "No rules in force", "the rules do not load; see `ivr rules check`")
    return ctx.rules


def _text(value: Any, name: str, pattern: re.Pattern[str] | None = None) -> str:
    text = str(value or "").strip()
    if len(text) > FIELD_MAX or any(ord(ch) < 32 for ch in text):
        raise bad_request(f"{name}: at most {FIELD_MAX} characters of one line")
    if pattern is not None and not pattern.fullmatch(text):
        raise bad_request(f"{name}={text[:40]!r}: not allowed here")
    return text


async def simulator(ctx: Ctx) -> Shown:
    """What would happen to a call: the simulator of `ivr simulate`, with the overrides
    stored in the database applied (so an override set here changes its answer)."""
    rules = _rules(ctx)
    mine = sorted(ctx.practices)
    form = {"practice": ctx.query("practice") or (mine[0] if len(mine) == 1 else ""),
            "to": _text(ctx.query("to"), "to", NUMBER),
            "forwarded_from": _text(ctx.query("forwarded_from"), "forwarded_from", NUMBER),
            "caller": _text(ctx.query("caller"), "caller", NUMBER),
            "at": _text(ctx.query("at"), "at") or "now",
            "keys": _text(ctx.query("keys"), "keys", KEYS)}
    data: dict[str, Any] = {"form": form, "practices": mine, "forms": FORMS, "result": None}
    if not ctx.request.query:
        return Shown(data)  # the empty form
    chosen = ctx.practices.get(form["practice"]) if form["practice"] else None
    if form["practice"] and chosen is None:
        raise not_found()
    to = form["to"] or (chosen.dids[0] if chosen and chosen.dids else "")
    if not to:
        raise bad_request("to: give the number dialled (this practice has no DID)")
    practice = rules.route(to, form["forwarded_from"] or None)
    if (practice is None and not ctx.who.all_practices) or (
            practice is not None and practice.id not in ctx.practices):
        raise problem(404, "Not found", "no practice of yours answers this number")
    tz = practice.tz if practice is not None else None
    try:
        at = parse_instant(form["at"], now=ctx.now, tz=tz) if tz else \
            parse_instant(form["at"], now=ctx.now)
    except WhenError as exc:
        raise bad_request(f"at: {exc}") from None
    manual = await overrides.active_overrides(ctx.db, practice.id, at) if practice else ()
    result = simulate(rules, to, form["forwarded_from"] or None, form["caller"] or None, at,
                      form["keys"], manual_overrides=manual)
    result["manual_overrides"] = len(manual)
    data["result"] = result
    data["text"] = format_text(result)
    return Shown(data)


async def _fields(ctx: Ctx) -> Mapping[str, Any]:
    """The form (pages) or the JSON object or form (the API) of a POST."""
    request = ctx.request
    if ctx.api and request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("the body is not JSON") from None
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        return body
    return await request.post()


def _practice_of_path(ctx: Ctx) -> Practice:
    pid = ctx.request.match_info["practice_id"]
    ctx.must_see(pid)  # another practice's: 404, before anything else is read
    practice = _rules(ctx).practices.get(pid)
    if practice is None:
        raise not_found()
    return practice


async def override_set(ctx: Ctx) -> web.StreamResponse | Shown:
    """Closed (or open) until a time, from now or from a later start."""
    practice = _practice_of_path(ctx)
    f = await _fields(ctx)
    mode = str(f.get("mode") or "")
    if mode not in ("closed", "open"):
        raise bad_request(f"mode={mode[:20]!r}: expected closed or open")
    until_text, from_text = _text(f.get("until"), "until"), _text(f.get("from"), "from")
    if not until_text:
        raise bad_request(f"until: say when it ends, e.g. {FORMS}")
    try:
        until = parse_instant(until_text, now=ctx.now, tz=practice.tz)
        start = parse_instant(from_text, now=ctx.now, tz=practice.tz) if from_text else None
    except WhenError as exc:
        raise bad_request(f"until/from: {exc}") from None
    try:
        new = overrides.check_new(_rules(ctx), practice.id, mode == "open", until,
                                  str(f.get("reason") or ""), ctx.now, start)
    except overrides.OverrideError as exc:
        raise bad_request(str(exc).replace("--", "")) from None
    row = await overrides.set_override(ctx.db, new, ctx.now, actor=ctx.who.actor)
    if ctx.api:
        return Shown(row)
    raise web.HTTPSeeOther(f"/rules?changed={practice.id}#{practice.id}")


async def override_clear(ctx: Ctx) -> web.StreamResponse | Shown:
    """End the practice's overrides in force or to come (audited even when none)."""
    practice = _practice_of_path(ctx)
    count = await overrides.clear_overrides(ctx.db, practice.id, ctx.now,
                                            actor=ctx.who.actor)
    if ctx.api:
        return Shown({"practice": practice.id, "cleared": count})
    raise web.HTTPSeeOther(f"/rules?changed={practice.id}#{practice.id}")
