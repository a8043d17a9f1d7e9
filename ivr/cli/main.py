"""The `ivr` command line: one table of commands, each a small function."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from ivr import config, logs
from ivr.cli.common import (
    add_json,
    audit_entry,
    day_arg,
    example_did,
    humanize,
    instant_arg,
    load_settings,
    practice_zones,
    show,
    with_db,
    zone_for,
)
from ivr.cli.errors import CliError, UsageError, run_command
from ivr.cli.when import FORMS
from ivr.secure import files


def _pbx(build: bool = False) -> Any:
    from ivr.pbx.instance import PbxInstance
    from ivr.pbx.root import ensure_root, find_root

    settings = load_settings()
    root = ensure_root(settings.cache_dir) if build else find_root(settings.cache_dir)
    if root is None:
        raise CliError("no Asterisk yet: run `ivr pbx up` (or `make run`) first")
    return PbxInstance(settings, root)


# --- pbx ---------------------------------------------------------------------------------

def cmd_pbx_up(args: argparse.Namespace) -> int:
    pbx = _pbx(build=True)
    if args.foreground:
        # Containers and service managers want the PBX as their main process.
        pbx.exec_foreground()
    pbx.start()
    status = pbx.status()
    if args.json:
        show(status, True)
        return 0
    print(f"Asterisk {status['version']} running (instance {status['instance']}): "
          f"SIP udp {status['sip']}, AMI {status['ami']}, controller expected at "
          f"{status['agi']}")
    return 0


def cmd_pbx_down(args: argparse.Namespace) -> int:
    pbx = _pbx()
    pbx.stop()
    if args.json:
        show({"instance": pbx.settings.instance, "running": False}, True)
    else:
        print(f"Asterisk instance {pbx.settings.instance} stopped")
    return 0


def cmd_pbx_status(args: argparse.Namespace) -> int:
    status = _pbx().status()
    show(status, args.json)
    return 0 if status["running"] else 3


def cmd_pbx_cli(args: argparse.Namespace) -> int:
    print(_pbx().cli(args.command), end="")
    return 0


# --- controller --------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    from ivr.controller.eventloop import run_loop
    from ivr.controller.service import Controller, ControllerError

    settings = load_settings()
    logs.setup(args.log_level, settings.log_dir / f"controller-{settings.instance}.log")
    try:
        run_loop(Controller(settings).run(), use_uvloop=settings.uvloop)
    except ControllerError as exc:
        print(f"ivr serve: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """PBX up, controller in the foreground, everything stopped on Ctrl-C."""
    from ivr.secure import keys

    settings = load_settings()
    if keys.ensure(settings):  # the controller would make it too; said once, here
        print(f"created the key file {settings.key_file} (one new key); keep a copy of it "
              "apart from the data: without it the sealed data cannot be read", flush=True)
    pbx = _pbx(build=True)
    pbx.start()
    settings = pbx.settings
    env = dict(os.environ, **config.to_env(settings))
    from ivr.cli import users as cli_users

    first = cli_users.first_operator()  # before the children: one migration at a time
    controller = subprocess.Popen([sys.executable, "-m", "ivr.cli", "serve"], env=env)
    portal = subprocess.Popen([sys.executable, "-m", "ivr.cli", "web"], env=env)
    # The guard bans sources that scan or flood the PBX (ivr/edge/guard.py).
    guard = subprocess.Popen([sys.executable, "-m", "ivr.cli", "pbx", "guard"], env=env)
    did = example_did(settings) or "+16175550100"
    print(f"""
  The answering service is running.
    Call it:      sip:{did}@{settings.sip_host}:{settings.sip_port}  (UDP)
    or try:       ivr demo-call          (in a second terminal)
    Calls:        ivr calls list --json
    Data:         {settings.data_dir}
    Logs:         {settings.log_dir}  and  {pbx.host_dir / 'log'}
    Rules:        {settings.rules_path}
    Portal:       http://{settings.web_host}:{settings.web_port}/  (ivr users add NAME --role ...)
  Ctrl-C stops the controller, the portal and Asterisk.
""", flush=True)
    if settings.test_phone:
        from ivr.edge.testphone import USERNAME
        from ivr.pbx.instance import TEST_PHONE_SECRET

        print(f"  Test phone (a softphone on this machine; IVR_TEST_PHONE=0 turns it off):\n"
              f"    SIP server {settings.sip_host}:{settings.sip_port} (UDP), user {USERNAME}, "
              f"password {pbx.private_secret(TEST_PHONE_SECRET)}; dial 100\n", flush=True)
    if first is not None:
        print(f"  First portal account (shown this once): user {first[0]}, password "
              f"{first[1]}\n  Change it with: ivr users passwd {first[0]}\n", flush=True)
    stopping = []

    def _stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for child in (controller, portal, guard):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    # Explicit handlers: a shell may start us with SIGINT ignored (background jobs).
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        controller.wait()
    finally:
        for child in (guard, portal, controller):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(15)
                except subprocess.TimeoutExpired:
                    child.kill()
        pbx.stop()
        print("stopped.")
    return 0 if stopping or controller.returncode == 0 else 1


# --- calls -------------------------------------------------------------------------------

def _format(args: argparse.Namespace) -> str:
    """How the data leaves: 'text', 'json', 'pdf' or 'pdf+json' (for the audit entry)."""
    shown = [name for name in ("pdf", "json") if getattr(args, name, None)]
    return "+".join(shown) or "text"


def cmd_calls_list(args: argparse.Namespace) -> int:
    from ivr.records import audit, calls

    since = instant_arg("--since", args.since, zone_for(args.practice))

    async def read(db: Any) -> list[dict[str, Any]]:
        rows = await calls.list_calls(db, practice=args.practice, since=since,
                                      limit=args.limit, operator_only=args.operator,
                                      caller=args.caller)
        await audit_entry(db, audit.CALL_READ, practice_id=args.practice,
                     detail={"count": len(rows), "format": _format(args),
                             "since": since.isoformat() if since else None,
                             "operator": args.operator, "by_caller": bool(args.caller)})
        return rows

    rows = asyncio.run(with_db(read))
    if args.json:
        show(rows, True)
        return 0
    zones = practice_zones()
    show([humanize(row, zones) for row in rows], False, "no calls")
    return 0


def cmd_calls_show(args: argparse.Namespace) -> int:
    from ivr.records import audit, calls

    async def read(db: Any) -> dict[str, Any] | None:
        row = await calls.show_call(db, args.id)
        if row is not None:  # a miss shows nothing, so there is no read to log
            await audit_entry(db, audit.CALL_READ, practice_id=row.get("practice_id"),
                         subject=row["id"], detail={"format": _format(args)})
        return row

    row = asyncio.run(with_db(read))
    if row is None:
        print(f"no call {args.id!r}", file=sys.stderr)
        return 1
    show(row if args.json else humanize(row, practice_zones()), args.json)
    return 0


def cmd_callbacks_list(args: argparse.Namespace) -> int:
    from ivr.oncall import callbacks
    from ivr.records import audit

    async def read(db: Any) -> list[dict[str, Any]]:
        rows = await callbacks.list_callbacks(db, all_states=args.all, limit=args.limit)
        await audit_entry(db, audit.CALLBACKS_READ, detail={
            "count": len(rows), "all": args.all, "format": _format(args)})
        return rows

    rows = asyncio.run(with_db(read))
    if not args.json:
        zones = practice_zones()
        rows = [humanize(row, zones) for row in rows]
    show(rows, args.json, "no pending call-backs")
    return 0


# --- deliveries (the outbox) ------------------------------------------------------------

def cmd_deliveries_list(args: argparse.Namespace) -> int:
    from ivr.delivery import outbox
    from ivr.records import audit

    async def read(db: Any) -> list[dict[str, Any]]:
        rows = await outbox.list_deliveries(db, failed_only=args.failed,
                                            practice=args.practice, limit=args.limit,
                                            with_attempts=args.json)
        await audit_entry(db, audit.DELIVERIES_READ, practice_id=args.practice, detail={
            "count": len(rows), "failed": args.failed, "format": _format(args)})
        return rows

    rows = asyncio.run(with_db(read))
    show(rows, args.json, "no failed deliveries" if args.failed else "no deliveries")
    return 0


def cmd_deliveries_retry(args: argparse.Namespace) -> int:
    from ivr.delivery import outbox

    if not asyncio.run(with_db(lambda db: outbox.requeue(db, args.id))):
        print(f"no failed delivery {args.id!r}", file=sys.stderr)
        return 1
    if args.json:
        show({"id": args.id, "queued": True}, True)
    else:
        print(f"delivery {args.id} queued again")
    return 0


# --- documents: call notes and morning reports (ivr.documents) --------------------------

def _practices_or_empty() -> dict[str, Any]:
    """The practices of the rules in force; none when they do not load (a note still shows)."""
    from ivr.rules import load_rules

    result = load_rules(load_settings().rules_path, now=datetime.now(UTC))
    if not result.ok or result.rules is None:
        print("warning: the rules do not load; notes show without practice details",
              file=sys.stderr)
        return {}
    return dict(result.rules.practices)


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def cmd_notes_show(args: argparse.Namespace) -> int:
    from ivr.documents import pdf, store
    from ivr.records import audit

    practices = _practices_or_empty()

    async def read(db: Any) -> Any:
        note = await store.note_for_call(db, args.id, practices)
        if note is not None:
            await audit_entry(db, audit.NOTE_READ, practice_id=note.practice_id,
                         subject=note.call_id, detail={"format": _format(args)})
        return note

    note = asyncio.run(with_db(read))
    if note is None:
        print(f"no call {args.id!r}", file=sys.stderr)
        return 1
    if args.pdf:
        _write_private(args.pdf, pdf.note_pdf(note, datetime.now(UTC),
                                              load_settings().web_public_url))
        print(f"note PDF written to {args.pdf}", file=sys.stderr)
    if args.json:
        show(note.to_json(), True)
    elif not args.pdf:
        for label, value in note.rows():
            print(f"{label}: {value}")
    return 0


def _night_arg(practice: Any, text: str | None, now: datetime) -> Any:
    """--night DATE, or the last night whose morning opening has passed."""
    from datetime import timedelta

    from ivr.documents.report import night_of

    if text:
        return day_arg("--night", text, practice.tz, now)
    current = night_of(practice, now)
    last = night_of(practice, current.covers_from - timedelta(microseconds=1)) \
        if current is not None else None
    if last is None:
        raise CliError("no night to report: the practice never opens")
    return last.night


def cmd_report(args: argparse.Namespace) -> int:
    from ivr.documents import pdf, store
    from ivr.records import audit

    practice = _current_rules().practices.get(args.practice)
    if practice is None:
        print(f"ivr report: no practice {args.practice!r} in the rules", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    night = _night_arg(practice, args.night, now)
    if args.deliver:
        settings = load_settings()

        async def deliver(db: Any) -> Any:
            # Making and enqueueing is what the controller does at the opening anyway; the
            # entry gates what this command shows or writes, after every attempt.
            made = await store.make_report(db, practice, night, now,
                                           out_dir=settings.data_dir / "documents",
                                           worker=f"cli:{os.getpid()}",
                                           link_base=settings.web_public_url)
            await audit_entry(
                db, audit.REPORT_DELIVER, practice_id=practice.id,
                subject=f"{practice.id}:{made.night.isoformat()}" if made.night else None,
                detail={"status": made.status, "report_id": made.report_id,
                        "calls": made.calls, "deliveries": len(made.deliveries),
                        "format": _format(args)},
                consequence="what was made is in `ivr reports list`, but this command "
                            "shows and writes nothing of it")
            return made

        made = asyncio.run(with_db(deliver))
        if made.status == store.NOT_DUE:
            print(f"ivr report: the night of {made.night} is not over yet; it is made at the "
                  "practice's opening (use no --deliver for a preview)", file=sys.stderr)
            return 1
        if args.pdf and made.pdf_path:
            _write_private(args.pdf, made.pdf_path.read_bytes())
        show(made.to_json(), args.json)
        return 0 if made.status in (store.MADE, store.EXISTS) else 1

    async def preview(db: Any) -> Any:
        report = await store.preview_report(db, practice, night, now)
        if report is not None:
            await audit_entry(db, audit.REPORT_READ, practice_id=practice.id,
                         subject=report.document_id,
                         detail={"calls": len(report.notes), "format": _format(args)})
        return report

    report = asyncio.run(with_db(preview))
    if report is None:
        print("ivr report: no night to report: the practice never opens", file=sys.stderr)
        return 1
    if args.pdf:
        _write_private(args.pdf, pdf.report_pdf(report, load_settings().web_public_url))
        print(f"report PDF written to {args.pdf}", file=sys.stderr)
    if args.json:
        show(report.to_json(), True)
    elif not args.pdf:
        print(f"{report.practice_name}: {report.title}")
        print(report.period_text())
        print(f"{len(report.notes)} call(s), {len(report.needs_action)} need action")
        for note in report.needs_action:
            print(f"  NEEDS ACTION  {note.summary}  [{note.call_id}]")
        for note in report.notes:
            print(f"  {note.summary}  [{note.call_id}]")
    return 0


def cmd_reports_list(args: argparse.Namespace) -> int:
    from ivr.documents import store

    rows = asyncio.run(with_db(lambda db: store.report_rows(db, args.practice, args.limit)))
    show(rows, args.json, "no reports made yet")
    return 0


# --- retention: old recordings and records deleted per practice (ivr.retention.purge) ----------

def cmd_retention_run(args: argparse.Namespace) -> int:
    from ivr.records import audit
    from ivr.retention import purge as retention

    rules = _current_rules()  # never the defaults in place of a practice's own policy
    data_dir = load_settings().data_dir

    async def run(db: Any) -> Any:
        summary = await retention.purge(db, rules, datetime.now(UTC), data_dir,
                                        dry_run=args.dry_run, worker=f"cli:{os.getpid()}")
        await audit_entry(db, audit.RETENTION_RUN, subject=summary.run_id,
                     detail=summary.audit_detail(),
                     consequence=f"retention run {summary.run_id} is done and in "
                                 "`ivr retention log`, but not in the audit log")
        return summary

    summary = asyncio.run(with_db(run))
    if args.json:
        show(summary.to_json(), True)
        return 0
    verb = "would be deleted (dry run: nothing was)" if args.dry_run else "deleted"
    print(f"retention run {summary.run_id}: {verb}")
    for c in summary.practices:
        records = f"{c.records_days} d" if c.records_days is not None else "kept"
        print(f"  {c.practice_id or '(unknown numbers)'} [recordings {c.recordings_days} d, "
              f"records {records}]: {c.recordings_deleted} recording file(s) of "
              f"{c.calls_purged} call(s), {c.calls_deleted} call record(s), "
              f"{c.documents_deleted} document file(s), {c.bytes_freed} bytes; "
              f"{c.calls_held} held, {c.files_refused} refused")
    return 0


def cmd_retention_log(args: argparse.Namespace) -> int:
    from ivr.retention import purge as retention

    rows = asyncio.run(with_db(lambda db: retention.log_rows(db, args.practice, args.limit)))
    show(rows, args.json, "no retention run logged yet")
    return 0


# --- the audit log: who read patient data or changed the rules (ivr.records.audit) --------------

def cmd_audit_list(args: argparse.Namespace) -> int:
    from ivr.records import audit

    since = instant_arg("--since", args.since, zone_for(args.practice))
    try:
        if args.action:
            audit.action_filter(args.action)
    except ValueError as exc:
        raise UsageError(f"audit list: {exc}") from None
    rows = asyncio.run(with_db(lambda db: audit.read(
        db, since=since, action=args.action, practice_id=args.practice,
        subject=args.subject, limit=args.limit)))
    if args.json:
        show(rows, True)
        return 0
    if not rows:
        print("no audit entries")
    for row in rows:
        print(f"{row['at']}  {row['action']:<16} {row['actor']}  "
              f"practice={row['practice_id'] or '-'}  subject={row['subject'] or '-'}  "
              f"{json.dumps(row['detail'], sort_keys=True)}")
    return 0


# --- rules in the running controller, manual overrides ---------------------------------

def _current_rules() -> Any:
    """The rules under settings.rules_path, or SystemExit(1) naming the first errors."""
    from ivr.rules import load_rules

    path = load_settings().rules_path
    result = load_rules(path, now=datetime.now(UTC))
    if not result.ok or result.rules is None:
        first = "; ".join(str(e) for e in result.errors[:3])
        print(f"ivr: the rules at {path} have {len(result.errors)} error(s): {first}; "
              "run `ivr rules check`", file=sys.stderr)
        raise SystemExit(1)
    return result.rules


def cmd_override_set(args: argparse.Namespace) -> int:
    from ivr.records import audit, overrides

    rules = _current_rules()
    practice = rules.practices.get(args.practice)
    tz = practice.tz if practice is not None else UTC
    until = instant_arg("--until", args.until, tz)
    start = instant_arg("--from", args.start, tz)
    assert until is not None  # required
    now = datetime.now(UTC)  # after parsing, so `--until now` is in the past
    try:
        new = overrides.check_new(rules, args.practice, args.open, until, args.reason, now, start)
    except overrides.OverrideError as exc:
        print(f"ivr override set: {exc}", file=sys.stderr)
        return 2
    row = asyncio.run(with_db(lambda db: overrides.set_override(
        db, new, now, actor=audit.cli_actor())))
    if args.json:
        show(row, True)
    else:
        print(f"{new.practice_id}: {row['mode']} from {row['start']} until {row['end']} "
              f"({new.reason}) [override {row['id']}]")
    return 0


def cmd_override_clear(args: argparse.Namespace) -> int:
    from ivr.records import audit, overrides

    count = asyncio.run(with_db(lambda db: overrides.clear_overrides(
        db, args.practice, datetime.now(UTC), actor=audit.cli_actor())))
    if args.json:
        show({"practice": args.practice, "cleared": count}, True)
        return 0
    print(f"{args.practice}: {count} override(s) cleared" if count else
          f"{args.practice}: no override in force or to come; nothing cleared")
    return 0


def cmd_override_list(args: argparse.Namespace) -> int:
    from ivr.records import overrides

    rows = asyncio.run(with_db(lambda db: overrides.list_overrides(
        db, datetime.now(UTC), practice_id=args.practice, include_past=args.all)))
    show(rows, args.json, "no manual overrides in force or to come")
    return 0


# --- the table ---------------------------------------------------------------------------

def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ivr")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    pbx = sub.add_parser("pbx", help="provision, start, stop and query Asterisk")
    pbx_sub = pbx.add_subparsers(dest="pbx_command", required=True)
    up = pbx_sub.add_parser("up", help="build the Asterisk root if needed, render, start")
    up.add_argument("--foreground", action="store_true",
                    help="run Asterisk in the foreground (containers, systemd)")
    add_json(up)
    up.set_defaults(func=cmd_pbx_up)
    down = pbx_sub.add_parser("down", help="stop Asterisk cleanly")
    add_json(down)
    down.set_defaults(func=cmd_pbx_down)
    status = pbx_sub.add_parser("status", help="is Asterisk running, version, channels")
    add_json(status)
    status.set_defaults(func=cmd_pbx_status)
    cli = pbx_sub.add_parser(
        "cli", help='run one Asterisk CLI command: ivr pbx cli "core show channels"')
    cli.add_argument("command", help="the Asterisk CLI command, quoted as one argument")
    cli.set_defaults(func=cmd_pbx_cli)
    from ivr.cli import trunks as cli_trunks

    cli_trunks.add_commands(sub, pbx_sub)

    serve = sub.add_parser("serve", help="run the controller (FastAGI + AMI) in the foreground")
    serve.add_argument("--log-level", default="INFO",
                       help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    serve.set_defaults(func=cmd_serve)

    run = sub.add_parser("run", help="start Asterisk and the controller; Ctrl-C stops both")
    run.set_defaults(func=cmd_run)

    calls = sub.add_parser("calls", help="read the call record")
    calls_sub = calls.add_subparsers(dest="calls_command", required=True)
    lst = calls_sub.add_parser("list", help="recent calls, newest first")
    add_json(lst)
    lst.add_argument("--practice", help="only this practice (its id)")
    lst.add_argument("--since", help="calls from this time on; zone-less: the --practice's "
                     f"local time, else UTC; e.g. {FORMS}")
    lst.add_argument("--limit", type=int, default=200, help="at most this many rows"
                        " (default 200)")
    lst.add_argument("--operator", action="store_true",
                     help="only calls flagged for an operator (unknown numbers; they are in "
                     "no practice's morning report)")
    lst.add_argument("--caller", metavar="NUMBER", help="only calls from this number, as "
                     "stored (E.164, e.g. +16175550142; found by its blind index)")
    lst.set_defaults(func=cmd_calls_list)
    show = calls_sub.add_parser("show", help="one call with its timeline")
    show.add_argument("id", help="call id or Asterisk uniqueid")
    add_json(show)
    show.set_defaults(func=cmd_calls_show)

    callbacks_p = sub.add_parser("callbacks", help="messages the on-call must acknowledge "
                                 "(called back until someone does)")
    callbacks_sub = callbacks_p.add_subparsers(dest="callbacks_command", required=True)
    cblist = callbacks_sub.add_parser("list", help="pending call-backs, newest first")
    add_json(cblist)
    cblist.add_argument("--all", action="store_true", help="also acknowledged and given up")
    cblist.add_argument("--limit", type=int, default=200, help="at most this many rows"
                        " (default 200)")
    cblist.set_defaults(func=cmd_callbacks_list)

    from ivr.cli import rules as cli_rules
    from ivr.cli import rules_live

    rules_sub = cli_rules.add_commands(sub, overrides_for=rules_live.stored_overrides)
    rules_live.add_commands(rules_sub)

    from ivr.cli import cluster as cli_cluster
    from ivr.cli import demo as cli_demo
    from ivr.cli import keys as cli_keys
    from ivr.cli import users as cli_users

    cli_keys.add_commands(sub)
    cli_demo.add_commands(sub)
    cli_users.add_commands(sub)
    cli_cluster.add_commands(sub)

    deliveries = sub.add_parser("deliveries", help="documents sent to practices (fax, "
                                "e-mail, webhook): the outbox and its attempts")
    deliveries_sub = deliveries.add_subparsers(dest="deliveries_command", required=True)
    dlist = deliveries_sub.add_parser("list", help="deliveries, newest first")
    add_json(dlist, help="print JSON, with each attempt (times in ISO UTC)")
    dlist.add_argument("--failed", action="store_true", help="only the failed ones")
    dlist.add_argument("--practice", help="only this practice (its id)")
    dlist.add_argument("--limit", type=int, default=200, help="at most this many rows"
                        " (default 200)")
    dlist.set_defaults(func=cmd_deliveries_list)
    dretry = deliveries_sub.add_parser("retry", help="queue a failed delivery again")
    dretry.add_argument("id", help="delivery id")
    add_json(dretry)
    dretry.set_defaults(func=cmd_deliveries_retry)

    notes = sub.add_parser("notes", help="per-call notes (the documents sent to practices)")
    notes_sub = notes.add_subparsers(dest="notes_command", required=True)
    nshow = notes_sub.add_parser("show", help="one call's note")
    nshow.add_argument("id", help="call id or Asterisk uniqueid")
    nshow.add_argument("--pdf", metavar="FILE", help="write the note as a PDF")
    add_json(nshow)
    nshow.set_defaults(func=cmd_notes_show)

    report = sub.add_parser("report", help="a practice's morning report for a night "
                            "(preview; --deliver makes it once and sends it)")
    report.add_argument("--practice", required=True, help="practice id")
    report.add_argument("--night", metavar="DATE", help="the evening the night starts, in "
                        "the practice's calendar: 2026-11-26, today or yesterday (default: "
                        "the last night whose opening has passed)")
    report.add_argument("--pdf", metavar="FILE", help="write the report as a PDF")
    add_json(report)
    report.add_argument("--deliver", action="store_true", help="make it (once, as the "
                        "controller would) and enqueue it per the practice's delivery rules")
    report.set_defaults(func=cmd_report)
    reports = sub.add_parser("reports", help="the morning reports made so far")
    reports_sub = reports.add_subparsers(dest="reports_command", required=True)
    rlist = reports_sub.add_parser("list", help="reports, newest night first")
    rlist.add_argument("--practice", help="only this practice (its id)")
    rlist.add_argument("--limit", type=int, default=100, help="at most this many rows"
                        " (default 100)")
    add_json(rlist)
    rlist.set_defaults(func=cmd_reports_list)

    retention = sub.add_parser("retention", help="delete old recordings and call records "
                               "per the practices' retention (the controller does it hourly)")
    retention_sub = retention.add_subparsers(dest="retention_command", required=True)
    rrun = retention_sub.add_parser("run", help="purge now and log it; per-practice counts")
    rrun.add_argument("--dry-run", action="store_true",
                      help="count what is due, delete nothing (the run is still logged)")
    add_json(rrun)
    rrun.set_defaults(func=cmd_retention_run)
    rlog = retention_sub.add_parser("log", help="the purge runs, newest first")
    rlog.add_argument("--practice", help="only this practice (its id)")
    rlog.add_argument("--limit", type=int, default=100, help="at most this many rows"
                        " (default 100)")
    add_json(rlog)
    rlog.set_defaults(func=cmd_retention_log)

    override = sub.add_parser("override", help="open or close a practice now, without "
                              "editing the rules")
    override_sub = override.add_subparsers(dest="override_command", required=True)
    oset = override_sub.add_parser("set", help="closed (or open) from now until a time")
    oset.add_argument("--practice", required=True, help="practice id")
    mode = oset.add_mutually_exclusive_group(required=True)
    mode.add_argument("--closed", dest="open", action="store_false",
                      help="the after-hours service answers (the practice is closed)")
    mode.add_argument("--open", dest="open", action="store_true",
                      help="calls go to the practice as in opening hours")
    oset.add_argument("--until", required=True,
                      help=f"when it ends; zone-less: the practice's local time; e.g. {FORMS}")
    oset.add_argument("--from", dest="start", help="start later than now (same forms)")
    oset.add_argument("--reason", required=True, help="why (at most 200 characters)")
    add_json(oset)
    oset.set_defaults(func=cmd_override_set)
    oclear = override_sub.add_parser("clear", help="end a practice's overrides now")
    oclear.add_argument("--practice", required=True, help="practice id")
    add_json(oclear)
    oclear.set_defaults(func=cmd_override_clear)
    olist = override_sub.add_parser("list", help="overrides in force or to come")
    olist.add_argument("--practice", help="only this practice (its id)")
    olist.add_argument("--all", action="store_true", help="also cleared and expired ones")
    add_json(olist)
    olist.set_defaults(func=cmd_override_list)

    audit = sub.add_parser("audit", help="the append-only audit log: reads of patient data, "
                           "rules changes, overrides, retention runs")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    alist = audit_sub.add_parser("list", help="audit entries, newest first")
    alist.add_argument("--since", help="entries from this time on; zone-less: the "
                       f"--practice's local time, else UTC; e.g. {FORMS}")
    alist.add_argument("--action", help="e.g. call.read, or a family such as rules")
    alist.add_argument("--practice", help="only this practice (its id)")
    alist.add_argument("--subject", help="a call id, report id or rules digest")
    alist.add_argument("--limit", type=int, default=100, help="at most this many rows"
                        " (default 100)")
    add_json(alist)
    alist.set_defaults(func=cmd_audit_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    # First of all: whatever this process writes (database, logs, recordings, documents,
    # prompt caches, pid files) and whatever it starts is its owner's alone.
    files.private_umask()
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:  # pragma: no cover - Ctrl-C while the imports run
        print("ivr: interrupted", file=sys.stderr)
        return 130
    # One table (ivr.cli.errors) turns every failure into one line and an exit code.
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
