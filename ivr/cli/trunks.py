"""`ivr trunks check|schema` and `ivr pbx guard|bans`: the SIP edge from the command line.

Nothing here prints a password: `trunks check` says where each one is read from and
whether it is there, never its value.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr.cli.common import add_json, load_settings, show
from ivr.cli.errors import CliError, UsageError

EXIT_INVALID = 1


def _path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    settings = load_settings()
    if settings.trunks_file is None:
        raise UsageError("no trunks file: give its path, or set IVR_TRUNKS_FILE")
    return settings.trunks_file


def cmd_trunks_check(args: argparse.Namespace) -> int:
    """Validate a trunks file and look for each password; exit 1 on any error."""
    from ivr.trunks import pjsip
    from ivr.trunks.validate import load

    path = _path(args.path)
    config, errors = load(path)
    problems = [str(e) for e in errors]
    trunks = []
    if config is not None:
        for trunk in config.trunks:
            row: dict[str, Any] = {
                "name": trunk.name, "address": f"{trunk.host}:{trunk.port}",
                "transport": trunk.transport.value,
                "media_encryption": trunk.media_encryption.value,
                "inbound": {"match": list(trunk.match), "register": trunk.register is not None},
                "roles": sorted(r for r, n in config.roles.items() if n == trunk.name)}
            if trunk.auth is not None:
                row["password_from"] = trunk.auth.password.where()
                try:
                    pjsip.read_secret(trunk.name, trunk.auth.password, os.environ)
                    row["password_found"] = True
                except pjsip.TrunkRenderError as exc:
                    row["password_found"] = False
                    problems.append(f"{path}: {exc}")
            trunks.append(row)
    ok = not problems
    if args.json:
        show({"ok": ok, "file": str(path), "errors": [e.to_json() for e in errors],
              "problems": problems, "trunks": trunks}, True)
        return 0 if ok else EXIT_INVALID
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    for row in trunks:
        print(f"trunk {row['name']}: {row['transport']} to {row['address']}, media "
              f"{row['media_encryption']}, roles {', '.join(row['roles']) or '-'}"
              + (f", password from {row['password_from']}"
                 f"{'' if row.get('password_found') else ' (MISSING)'}"
                 if "password_from" in row else ""))
    print(f"{path}: {'ok' if ok else 'NOT ok'}")
    return 0 if ok else EXIT_INVALID


def cmd_trunks_schema(args: argparse.Namespace) -> int:
    from ivr.trunks.shape import schema_text

    sys.stdout.write(schema_text())
    return 0


def _pbx() -> Any:
    from ivr.pbx.instance import PbxInstance
    from ivr.pbx.root import find_root

    settings = load_settings()
    root = find_root(settings.cache_dir)
    if root is None:
        raise CliError("no Asterisk yet: run `ivr pbx up` (or `make run`) first")
    return PbxInstance(settings, root)


def cmd_bans_list(args: argparse.Namespace) -> int:
    from ivr.edge.bans import BanList

    rows = [dict(vars(b)) for b in BanList(_pbx()).active(datetime.now(UTC))]
    show(rows, args.json, "no bans")
    return 0


def cmd_bans_clear(args: argparse.Namespace) -> int:
    from ivr.edge.bans import BanList

    try:
        gone = BanList(_pbx()).clear(args.address, datetime.now(UTC))
    except ValueError:
        raise UsageError(f"{args.address!r} is not an IP address") from None
    if args.json:
        show({"cleared": gone}, True)
    else:
        print(f"lifted {len(gone)} ban(s)" + (f": {', '.join(gone)}" if gone else ""))
    return 0


def cmd_guard(args: argparse.Namespace) -> int:
    """Run the guard in the foreground until SIGTERM or Ctrl-C."""
    from ivr import logs
    from ivr.edge import guard
    from ivr.trunks.model import Guard

    pbx = _pbx()
    logs.setup(args.log_level, pbx.settings.log_dir / f"guard-{pbx.settings.instance}.log")
    config = pbx.trunks()
    settings = config.guard if config is not None else Guard()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await guard.run(pbx, settings, guard.trusted_networks(config), stop)

    asyncio.run(main())
    return 0


def add_commands(sub: Any, pbx_sub: Any) -> None:
    """Register `trunks` and the edge's `pbx` subcommands."""
    trunks = sub.add_parser("trunks", help="carrier trunks (trunks.yaml, docs/carrier.md)")
    trunks_sub = trunks.add_subparsers(dest="trunks_command", required=True)
    check = trunks_sub.add_parser("check", help="validate a trunks file and find its "
                                  "passwords (exit 1 on any error)")
    check.add_argument("path", nargs="?", help="the file (default: IVR_TRUNKS_FILE)")
    add_json(check)
    check.set_defaults(func=cmd_trunks_check)
    schema = trunks_sub.add_parser("schema", help="print the JSON Schema of trunks.yaml")
    schema.set_defaults(func=cmd_trunks_schema)

    guard = pbx_sub.add_parser("guard", help="ban sources that scan or flood the PBX "
                               "(its security events), in the foreground")
    guard.add_argument("--log-level", default="INFO",
                       help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    guard.set_defaults(func=cmd_guard)
    bans = pbx_sub.add_parser("bans", help="sources the guard banned")
    bans_sub = bans.add_subparsers(dest="bans_command", required=True)
    blist = bans_sub.add_parser("list", help="bans in force")
    add_json(blist)
    blist.set_defaults(func=cmd_bans_list)
    bclear = bans_sub.add_parser("clear", help="lift one ban, or all of them")
    bclear.add_argument("address", nargs="?", help="the address (default: every ban)")
    add_json(bclear)
    bclear.set_defaults(func=cmd_bans_clear)



