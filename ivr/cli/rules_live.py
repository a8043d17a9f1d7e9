"""The rules commands that reach the running controller or the database: `rules status`,
`rules reload`, and the manual overrides `simulate` applies."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ivr.cli import common
from ivr.cli.common import add_json


def cmd_rules_status(args: argparse.Namespace) -> int:
    from ivr.rules.runtime import ReloadError, controller_pid, pid_path, read_status, status_path

    settings = common.load_settings()
    path = status_path(settings)
    doc = read_status(path)
    if doc is None:
        print(f"no rules status at {path}: the controller has not loaded rules yet "
              "(is it running?)", file=sys.stderr)
        return 3
    try:
        doc["controller_running"] = controller_pid(pid_path(settings)) == doc.get("pid")
    except ReloadError:
        doc["controller_running"] = False
    if args.json:
        common.show(doc, True)
        return 0
    if not doc["controller_running"]:
        print(f"controller not running; as of its last run (pid {doc.get('pid')}):")
    _print_rules_status(doc)
    return 0


def _print_rules_status(doc: dict[str, Any]) -> None:
    print(f"rules in force: digest {doc.get('digest') or 'none'}, loaded {doc.get('loaded_at')}"
          f" ({doc.get('loaded_source')}) from {doc.get('rules_path')}")
    print(f"practices: {', '.join(doc.get('practices') or []) or 'none'}")
    ok = doc.get("last_attempt_ok")
    print(f"last attempt: {doc.get('last_attempt_at')} ({doc.get('last_attempt_source')}): "
          f"{'loaded' if ok else 'REFUSED, the rules above stay in force'}")
    if not ok:
        print(f"{doc.get('error_count')} error(s); first ones:")
        for err in doc.get("errors") or []:
            print(f"  {err}")


def cmd_rules_reload(args: argparse.Namespace) -> int:
    from ivr.rules.runtime import ReloadError, request_reload

    try:
        doc = request_reload(common.load_settings(), timeout=args.timeout)
    except ReloadError as exc:
        print(f"ivr rules reload: {exc}", file=sys.stderr)
        return 3
    if args.json:
        common.show(doc, True)
    else:
        _print_rules_status(doc)
    return 0 if doc.get("last_attempt_ok") else 1


def stored_overrides(practice_id: str, at: datetime) -> tuple[Any, ...]:
    """The manual overrides stored in the database for that practice and instant."""
    from ivr.records import overrides

    settings = common.load_settings()
    if settings.database_url.startswith("sqlite") and not (
            Path(settings.database_url.split("///", 1)[-1]).exists()):
        return ()  # no database yet, so no override; a dry run must not create one
    return tuple(asyncio.run(common.with_db(
        lambda db: overrides.active_overrides(db, practice_id, at))))


def add_commands(rules_sub: Any) -> None:
    """Register `rules status` and `rules reload` under `rules`."""
    rstatus = rules_sub.add_parser("status", help="the rules the running controller has "
                                   "in force, and its last load attempt")
    add_json(rstatus)
    rstatus.set_defaults(func=cmd_rules_status)
    reload = rules_sub.add_parser("reload", help="make the running controller reload its "
                                  "rules (exit 1 if it refused them)")
    add_json(reload)
    reload.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for the controller's answer")
    reload.set_defaults(func=cmd_rules_reload)
