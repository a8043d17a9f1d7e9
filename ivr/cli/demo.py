"""`ivr demo-call`: a whole after-hours call the way a person makes it, then its record."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ivr.cli import common
from ivr.cli.common import add_json
from ivr.cli.errors import CliError

EVENT_WORDS = {"dialling": "dialling {uri}", "answered": "the service answered"}


def cmd_demo_call(args: argparse.Namespace) -> int:
    from ivr.caller import client
    from ivr.caller.demo import Patient, intake_plan
    from ivr.records import audit, calls

    if not client.available():
        raise CliError("the demo caller needs pjsua2 (pip install -e '.[demo]'; make run "
                       "installs it)")
    settings = common.load_settings()
    number = args.to or common.example_did(settings)
    if not number:
        raise CliError("no practice number in the rules to call; give one with --to")
    patient = Patient(caller_id=args.caller_id, menu_key=args.menu_key)
    plan, notes = intake_plan(patient, settings.cache_dir / "demo-voices")
    target = f"{settings.sip_host}:{settings.sip_port}"
    if not args.json:
        print(f"calling sip:{number}@{target} as {args.caller_id}; the caller waits for "
              "each prompt to end before it answers", flush=True)
    report = client.place_call(plan, target, number, timeout_s=args.wait)
    if not args.json:
        for event in report.events:
            step = event.get("step", 0)
            if event["event"] in ("heard", "pressed", "saying", "ended") and step:
                words = notes[step - 1] if step <= len(notes) else event["event"]
                if event["event"] == "ended":
                    words = "the call ended " + ("by the service" if event["by"] == "far"
                                                 else "from our side")
            else:
                words = EVENT_WORDS.get(event["event"], event["event"]).format(**event)
            print(f"  {event['t']:6.1f} s  {words}")

    async def read(db: Any) -> dict[str, Any] | None:
        rows = await calls.list_calls(db, caller=args.caller_id, limit=1)
        row = await calls.show_call(db, rows[0]["id"]) if rows else None
        if row is not None:
            await common.audit_entry(db, audit.CALL_READ, practice_id=row.get("practice_id"),
                                     subject=row["id"], detail={"format": "demo-call"})
        return row

    row = asyncio.run(common.with_db(read))
    if args.json:
        common.show({"ok": report.ok, "error": report.error, "events": report.events,
                     "call": row}, True)
    else:
        print("the whole intake went through" if report.ok else
              f"the call did not go as a caller expects: {report.error}")
        if row is not None:
            print(_summary(common.humanize(row, common.practice_zones())))
    return 0 if report.ok else 1


SUMMARY_KEYS = ("practice_id", "state", "route", "disposition", "result", "end_reason",
                "caller_told", "started_at")


def _summary(row: dict[str, Any]) -> str:
    """The lines of `ivr calls show` a newcomer looks at first."""
    lines = [f"\ncall {row['id']} (all of it: ivr calls show {row['id']})"]
    lines += [f"  {key}: {row.get(key)}" for key in SUMMARY_KEYS]
    for field, item in (row.get("intake") or {}).items():
        value = item.get("value") or (f"recording, {item.get('duration_seconds')} s"
                                      if item.get("recording_path") else "none")
        confirmed = "confirmed" if item.get("confirmed") else "not confirmed"
        lines.append(f"  intake {field}: {value} ({item.get('source')}, {confirmed})")
    return "\n".join(lines)


def add_commands(sub: Any) -> None:
    """Register `demo-call`."""
    demo = sub.add_parser("demo-call", help="call the running service as a patient would: "
                          "caller ID, date of birth, name, reason, menu (pjsua2)")
    demo.add_argument("--to", help="number to dial (default: the first practice's number)")
    demo.add_argument("--caller-id", default="+16175550199",
                      help="the caller's number (default +16175550199)")
    demo.add_argument("--menu-key", default="2",
                      help="the key pressed in the practice's menu (default 2)")
    demo.add_argument("--wait", type=int, default=300,
                      help="seconds the whole call may take (default 300)")
    add_json(demo)
    demo.set_defaults(func=cmd_demo_call)
