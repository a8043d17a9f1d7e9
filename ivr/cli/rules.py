"""The `ivr rules`, `ivr simulate` and `ivr oncall` commands (the clock is read only here)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ivr import clock
from ivr.cli.when import FORMS, WhenError, parse_instant, wall_time
from ivr.rules import LoadResult, default_rules_path, load_rules
from ivr.rules.model import Issue, Override, Practice
from ivr.rules.oncall import dial_list, fallback_numbers, resolve, timeline
from ivr.rules.schedule import state_at
from ivr.rules.schema import schema_text
from ivr.rules.simulate import dial_lines, format_text, simulate
from ivr.rules.timeutil import fmt_local, wall_time_note

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def parse_when(text: str, tz: tzinfo) -> datetime:
    """A time a person typed (ivr.cli.when): zone-less forms are wall time in `tz`."""
    return parse_instant(text, now=clock.now(), tz=tz)


def when_note(text: str | None, tz: tzinfo) -> str | None:
    """Which instant a local --at/--from/--to took when a DST change skips or doubles it."""
    if not text or not isinstance(tz, ZoneInfo):
        return None
    wall = wall_time(text, now=clock.now(), tz=tz)
    return wall_time_note(wall, tz) if wall is not None else None


def checked_load(path: str | Path, now: datetime) -> LoadResult:
    """load_rules for a command: never raises, whatever is in the files.

    load_rules already turns a loader bug into a located error per file; this is the
    last line, so that `ivr rules check` prints one error line and exits 1 instead of
    a traceback. The interval timer is safe here: a command runs in the main thread.
    """
    try:
        return load_rules(path, now=now, interrupt=True)
    except Exception as exc:
        return LoadResult(None, [Issue(str(path), 1, 1, "", None, "",
                                       f"internal error while checking {path}: "
                                       f"{type(exc).__name__}")])


def _load(path: str | None, out: Any = None) -> LoadResult:
    return checked_load(path or default_rules_path(), clock.now())


def _print_issues(res: LoadResult, out: Any) -> None:
    for issue in res.errors:
        print(f"error: {issue}", file=out)
    for issue in res.warnings:
        print(f"warning: {issue}", file=out)


def cmd_rules_check(args: argparse.Namespace) -> int:
    """Validate rules; exit 1 when there is any error."""
    try:
        now = parse_when(args.now, ZoneInfo("UTC")) if args.now else clock.now()
    except WhenError as exc:
        raise WhenError(f"--now {exc}") from None
    res = checked_load(args.path or default_rules_path(), now)
    if args.json:
        doc = {
            "ok": res.ok,
            "digest": res.rules.digest if res.rules else None,
            "practices": sorted(res.rules.practices) if res.rules else [],
            "errors": [i.to_json() for i in res.errors],
            "warnings": [i.to_json() for i in res.warnings],
        }
        print(json.dumps(doc, indent=2))
    else:
        _print_issues(res, sys.stdout)
        if res.ok and res.rules is not None:
            names = ", ".join(sorted(res.rules.practices))
            print(f"ok: {len(res.rules.practices)} practice(s) ({names}); "
                  f"{len(res.warnings)} warning(s); digest {res.rules.digest}")
        else:
            print(f"invalid: {len(res.errors)} error(s), {len(res.warnings)} warning(s)")
    return EXIT_OK if res.ok else EXIT_INVALID


def cmd_rules_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of a practice file."""
    sys.stdout.write(schema_text())
    return EXIT_OK


def _fail_load(res: LoadResult) -> int:
    _print_issues(res, sys.stderr)
    print("the rules have errors; run `ivr rules check`", file=sys.stderr)
    return EXIT_INVALID


#: (practice id, instant) -> the manual overrides to apply (the CLI reads the database).
OverridesFor = Callable[[str, datetime], tuple[Override, ...]]


def cmd_simulate(args: argparse.Namespace, overrides_for: OverridesFor | None = None) -> int:
    """Dry-run one call and print what would happen."""
    res = _load(args.rules)
    if not res.ok or res.rules is None:
        return _fail_load(res)
    practice = res.rules.route(args.to, args.forwarded_from)
    tz = practice.tz if practice else ZoneInfo("UTC")
    try:
        at = parse_when(args.at, tz)
    except WhenError as exc:
        raise WhenError(f"--at {exc}") from None
    manual = overrides_for(practice.id, at) if overrides_for and practice else ()
    result = simulate(res.rules, args.to, args.forwarded_from, args.caller, at, args.keys or "",
                      manual_overrides=manual)
    note = when_note(args.at, tz)
    result["local_time_note"] = note
    if not args.json and note:
        print(f"Note:       --at {note}")
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return EXIT_OK


def _oncall_at(practice: Practice, at: datetime) -> dict[str, Any]:
    roles = {}
    for role in practice.on_call.roles:
        cid, source = resolve(practice, role, at)
        roles[role] = {"clinician_id": cid, "source": source,
                       "name": practice.on_call.clinicians[cid].name if cid else None}
    return {
        "practice": practice.id,
        "at": fmt_local(at, practice.tz),
        "state": state_at(practice, at).kind,
        "on_call": roles,
        "dial_list": [d.to_json() for d in dial_list(practice, at)],
        "fallback_numbers": list(fallback_numbers(practice, at)),
    }


def cmd_oncall(args: argparse.Namespace) -> int:
    """Who is on call at an instant, or as a timeline between two instants."""
    res = _load(args.rules)
    if not res.ok or res.rules is None:
        return _fail_load(res)
    practice = res.rules.practices.get(args.practice)
    if practice is None:
        print(f"no practice {args.practice!r}; known: {', '.join(sorted(res.rules.practices))}",
              file=sys.stderr)
        return EXIT_USAGE
    tz = practice.tz
    try:
        if args.start or args.end:
            start = parse_when(args.start, tz) if args.start else clock.now()
            end = parse_when(args.end, tz) if args.end else start + timedelta(days=7)
        else:
            at = parse_when(args.at, tz) if args.at else clock.now()
    except WhenError as exc:
        raise WhenError(f"bad time: {exc}") from None
    notes = [f"--{name} {note}" for name, text in (("at", args.at), ("from", args.start),
                                                   ("to", args.end))
             if (note := when_note(text, tz))]
    if notes and not args.json:
        for line in notes:
            print(f"note: {line}")
    if args.start or args.end:
        if end <= start:
            print("--to must be after --from", file=sys.stderr)
            return EXIT_USAGE
        rows = timeline(practice, start, end)
        if args.json:
            print(json.dumps([{"role": r.role, "clinician_id": r.clinician_id,
                               "start": fmt_local(r.start, tz), "end": fmt_local(r.end, tz),
                               "source": r.source} for r in rows], indent=2))
        else:
            for r in rows:
                who = r.clinician_id or "NOBODY"
                print(f"{r.role:<10} {fmt_local(r.start, tz)}  ->  {fmt_local(r.end, tz)}  "
                      f"{who:<16} ({r.source})")
        return EXIT_OK
    doc = _oncall_at(practice, at)
    doc["local_time_note"] = notes[0] if notes else None
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{practice.name} at {doc['at']} ({doc['state']})")
        for role, info in doc["on_call"].items():
            print(f"  {role:<10} {info['clinician_id'] or 'NOBODY'}  {info['name'] or ''}"
                  f"  ({info['source']})")
        print("  dial list:")
        for line in dial_lines(doc["dial_list"]):
            print("    " + line)
        print(f"  fallback numbers: {', '.join(doc['fallback_numbers'])}")
    return EXIT_OK


def add_commands(sub: Any, overrides_for: OverridesFor | None = None) -> Any:
    """Register `rules`, `simulate` and `oncall`; the `rules` subparsers, to add more to.
    With `overrides_for`, `simulate` applies the stored manual overrides (unless
    --no-overrides)."""
    rules = sub.add_parser("rules", help="check routing rules, print their JSON Schema")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate the rules (exit 1 on any error)")
    check.add_argument("path", nargs="?",
                       help="file or directory (default $IVR_RULES_PATH or routing_rules/)")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--now", help="pretend it is this instant, for the coverage warnings "
                       f"(zone-less: UTC); e.g. {FORMS}")
    check.set_defaults(func=cmd_rules_check)
    schema = rules_sub.add_parser("schema", help="print the JSON Schema of a practice file")
    schema.set_defaults(func=cmd_rules_schema)

    simp = sub.add_parser("simulate", help="what would happen to a call")
    simp.add_argument("--rules", help="rules path (default $IVR_RULES_PATH or routing_rules/)")
    simp.add_argument("--to", required=True, help="dialled number")
    simp.add_argument("--forwarded-from", dest="forwarded_from",
                      help="forwarding number (Diversion)")
    simp.add_argument("--from", dest="caller", help="caller id")
    simp.add_argument("--at", required=True,
                      help="when the call comes; zone-less: the practice's local time "
                      f"(UTC if no practice takes the number); e.g. {FORMS}")
    simp.add_argument("--keys", default="",
                      help="keys pressed, one per attempt ('.' = none); with several "
                      "languages offered, the first picks the language (1, 2...)")
    simp.add_argument("--json", action="store_true", help="machine-readable output")
    simp.set_defaults(func=cmd_simulate)
    if overrides_for is not None:
        simp.add_argument("--no-overrides", action="store_true",
                          help="ignore the manual overrides stored in the database")
        simp.set_defaults(func=lambda args: cmd_simulate(
            args, None if args.no_overrides else overrides_for))

    onc = sub.add_parser("oncall", help="who is on call")
    onc.add_argument("--rules", help="rules path (default $IVR_RULES_PATH or routing_rules/)")
    onc.add_argument("--practice", required=True, help="practice id")
    onc.add_argument("--at", help="the instant (default now); zone-less: the practice's "
                     f"local time; e.g. {FORMS}")
    onc.add_argument("--from", dest="start", help="timeline start instead (same forms as --at)")
    onc.add_argument("--to", dest="end", help="timeline end (default start + 7 days; same "
                     "forms as --at)")
    onc.add_argument("--json", action="store_true", help="machine-readable output")
    onc.set_defaults(func=cmd_oncall)
    return rules_sub


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with just these commands (tests, `python -m ivr.cli.rules`)."""
    parser = argparse.ArgumentParser(prog="ivr")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    from ivr.cli.errors import run_command

    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return run_command(func, args)


if __name__ == "__main__":
    sys.exit(run())
