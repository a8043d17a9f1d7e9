"""The `ivr users` commands (portal accounts) and `ivr web` (the portal's process).

Passwords are never command-line arguments (other users see those in `ps`): they are
asked for on the terminal, or read from standard input with --password-stdin. A new
API token and a TOTP seed are printed once and never again.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

from ivr.cli import common
from ivr.cli.common import add_json
from ivr.cli.errors import CliError, UsageError


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password on: use --password-stdin")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise UsageError("the two passwords differ")
    return first


def _run(fn: Any) -> Any:
    from ivr.accounts.store import AccountError

    try:
        return asyncio.run(common.with_db(fn))
    except AccountError as exc:
        raise CliError(str(exc), code=2) from None


def _print_secret_once(row: dict[str, Any]) -> None:
    if row.get("totp_uri"):
        print("second factor: add this to an authenticator app now (it is not shown "
              f"again):\n  {row['totp_uri']}")


def cmd_users_add(args: argparse.Namespace) -> int:
    from ivr.accounts import store

    password = _password(args)
    row = _run(lambda db: store.add_user(
        db, args.username, password, args.role, now=datetime.now(UTC),
        practice_id=args.practice, clinician_id=args.clinician, totp=args.totp))
    if args.json:
        common.show(row, True)
        return 0
    print(f"user {row['username']} added ({row['role']}"
          f"{', ' + row['practice_id'] if row['practice_id'] else ''})")
    _print_secret_once(row)
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from ivr.accounts import store

    rows = _run(lambda db: store.list_users(db, datetime.now(UTC)))
    common.show(rows, args.json, "no portal users yet: ivr users add NAME --role operator")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    from ivr.accounts import store

    row = _run(lambda db: store.disable_user(db, args.username, datetime.now(UTC)))
    if args.json:
        common.show(row, True)
    else:
        print(f"user {row['username']} disabled: sessions ended, API tokens revoked")
    return 0


def cmd_users_passwd(args: argparse.Namespace) -> int:
    from ivr.accounts import store

    password = _password(args)
    totp = True if args.totp else (False if args.no_totp else None)
    row = _run(lambda db: store.set_password(db, args.username, password, datetime.now(UTC),
                                             totp=totp))
    if args.json:
        common.show(row, True)
        return 0
    print(f"password of {row['username']} changed; their sessions ended, any lock-out lifted")
    _print_secret_once(row)
    return 0


def cmd_users_token(args: argparse.Namespace) -> int:
    from ivr.accounts import store

    now = datetime.now(UTC)
    if args.revoke:
        if not _run(lambda db: store.revoke_token(db, args.revoke, now)):
            print(f"no live token {args.revoke!r}", file=sys.stderr)
            return 1
        print(f"token {args.revoke} revoked")
        return 0
    if args.list:
        common.show(_run(lambda db: store.list_tokens(db, args.username)), args.json,
                    "no tokens")
        return 0
    row = _run(lambda db: store.make_token(db, args.username, args.name, now, days=args.days))
    if args.json:
        common.show(row, True)
        return 0
    print(f"API token {row['id']} for {row['username']} (shown once; keep it secret):")
    print(row["token"])
    return 0


def first_operator() -> tuple[str, str] | None:
    """On a database with no portal user: an operator `admin` with a random password,
    returned to be printed once (`make run`); None when there are users already."""
    import secrets

    from ivr.accounts import store

    async def make(db: Any) -> tuple[str, str] | None:
        if await store.list_users(db, datetime.now(UTC)):
            return None
        password = secrets.token_urlsafe(15)
        await store.add_user(db, "admin", password, "operator", now=datetime.now(UTC))
        return "admin", password

    result: tuple[str, str] | None = asyncio.run(common.with_db(make))
    return result


def cmd_web(args: argparse.Namespace) -> int:
    from ivr import logs
    from ivr.web.server import serve

    settings = common.load_settings()
    logs.setup(args.log_level, settings.log_dir / f"web-{settings.instance}.log")
    asyncio.run(serve(settings))
    return 0


def add_commands(sub: Any) -> None:
    """Register `users` and `web`."""
    from ivr.db.kinds import Role

    users = sub.add_parser("users", help="portal accounts: operators, practice admins, "
                           "front desks, clinicians")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="add a user (asks for the password)")
    add.add_argument("username", help="user name: 2-40 of a-z 0-9 . _ -")
    add.add_argument("--role", required=True, choices=[r.value for r in Role],
                     help="operator (all practices), practice_admin, front_desk (read "
                     "only) or clinician")
    add.add_argument("--practice", help="the practice id (every role but operator)")
    add.add_argument("--clinician", help="the rules' clinician id (clinician role only)")
    add.add_argument("--totp", action="store_true",
                     help="require a TOTP code at log-in; prints the seed once")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (one line)")
    add_json(add)
    add.set_defaults(func=cmd_users_add)
    lst = users_sub.add_parser("list", help="every user, with role, practice and state")
    add_json(lst)
    lst.set_defaults(func=cmd_users_list)
    disable = users_sub.add_parser("disable", help="disable a user now: sessions end, "
                                   "tokens are revoked")
    disable.add_argument("username", help="user name")
    add_json(disable)
    disable.set_defaults(func=cmd_users_disable)
    passwd = users_sub.add_parser("passwd", help="set a new password (ends sessions, lifts "
                                  "a lock-out)")
    passwd.add_argument("username", help="user name")
    factor = passwd.add_mutually_exclusive_group()
    factor.add_argument("--totp", action="store_true", help="make a new TOTP seed too")
    factor.add_argument("--no-totp", action="store_true", help="remove the second factor")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input (one line)")
    add_json(passwd)
    passwd.set_defaults(func=cmd_users_passwd)
    token = users_sub.add_parser("token", help="make an API token for a user (printed "
                                 "once), list or revoke them")
    token.add_argument("username", help="user name")
    token.add_argument("--name", default="api", help="what the token is for (default api)")
    token.add_argument("--days", type=int, help="expires after this many days "
                       "(default: never)")
    token.add_argument("--list", action="store_true", help="list the user's tokens instead")
    token.add_argument("--revoke", metavar="ID", help="revoke the token with this id instead")
    add_json(token)
    token.set_defaults(func=cmd_users_token)

    web = sub.add_parser("web", help="serve the portal (IVR_WEB_HOST:IVR_WEB_PORT, "
                         "default 127.0.0.1:8080)")
    web.add_argument("--log-level", default="INFO",
                     help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    web.set_defaults(func=cmd_web)
