"""How a command ends when it fails: one line on stderr and an exit code, never a traceback.

Exit codes: 1 an operational failure (database, files, sealed data, PBX missing), 2 a usage
error (bad option values, bad IVR_* settings), 130 Ctrl-C. The table below is the only
place that turns an exception into those; commands raise and let it.

Messages name the place (a file, the database's host or path, an option) and never the data:
a database error is shown without its SQL and parameters, an unexpected error by its type
only (IVR_CLI_TRACEBACK=1 shows the traceback instead, for a developer).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from ivr import config
from ivr.cli.when import WhenError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
TRACEBACK_ENV = "IVR_CLI_TRACEBACK"


class CliError(Exception):
    """A command's failure, said in one line; `code` is the exit status."""

    code = EXIT_FAILURE

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(CliError):
    """A bad option value (exit 2)."""

    code = EXIT_USAGE


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def _database_place() -> str:
    """The database as a person can find it: the SQLite path or the host, no password."""
    from ivr.db.engine import place

    try:
        return place(config.from_env().database_url)
    except Exception:
        return "the database (IVR_DB_URL)"


def _database_error(exc: BaseException) -> str:
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.ArgumentError):  # its text would repeat the URL, password too
        return "ivr: IVR_DB_URL is not a database URL such as sqlite+aiosqlite:///path/ivr.db"
    orig = getattr(exc, "orig", None)  # the driver's own error, without SQL or parameters
    reason = _first_line(orig) if orig is not None else type(exc).__name__
    return f"ivr: {_database_place()}: {reason or type(orig).__name__}"


def _os_error(exc: BaseException) -> str:
    assert isinstance(exc, OSError)
    import socket

    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        # Connecting to the database is where a command meets the network.
        return f"ivr: cannot reach {_database_place()}: {exc.strerror or type(exc).__name__}"
    if exc.filename is not None:
        return f"ivr: {exc.filename}: {exc.strerror or type(exc).__name__}"
    return f"ivr: {exc.strerror or _first_line(exc) or type(exc).__name__}"


def _missing_module(exc: BaseException) -> str:
    assert isinstance(exc, ModuleNotFoundError)
    hint = " (the driver IVR_DB_URL names; pip install ivr[postgres])" \
        if exc.name == "asyncpg" else ""
    return f"ivr: the Python module {exc.name!r} is not installed{hint}"


Format = Callable[[BaseException], str]


def _table() -> list[tuple[type[BaseException], Format, int]]:
    """(exception type, its message, exit code); the first match wins."""
    from sqlalchemy.exc import SQLAlchemyError

    from ivr.pbx.instance import PbxError
    from ivr.pbx.root import ProvisionError
    from ivr.records.audit import AuditError
    from ivr.secure.crypto import CryptoError
    from ivr.secure.keys import KeyFileError

    return [
        # Fail closed: without its audit entry a command shows and changes nothing.
        (AuditError, lambda e: f"ivr: {e}", EXIT_FAILURE),
        (KeyFileError, lambda e: f"ivr: keys: {e}", EXIT_USAGE),  # the file, never a key
        (CryptoError, lambda e: f"ivr: sealed data does not open: {e}", EXIT_FAILURE),
        (config.ConfigError, lambda e: f"ivr: configuration error: {e}", EXIT_USAGE),
        (WhenError, lambda e: f"ivr: {e}", EXIT_USAGE),
        (PbxError, lambda e: f"ivr: {e}", EXIT_USAGE),
        (ProvisionError, lambda e: f"ivr: {e}", EXIT_USAGE),
        (SQLAlchemyError, _database_error, EXIT_FAILURE),
        (ModuleNotFoundError, _missing_module, EXIT_FAILURE),
        (OSError, _os_error, EXIT_FAILURE),
        (KeyboardInterrupt, lambda e: "ivr: interrupted", EXIT_INTERRUPTED),
        (Exception, lambda e: f"ivr: internal error ({type(e).__name__}); "
                              f"{TRACEBACK_ENV}=1 shows where", EXIT_FAILURE),
    ]


def _quiet_stdout() -> None:
    """The reader of stdout has gone (`| head -1`): nothing more goes there, and Python's
    own flush at exit must not complain about it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def run_command(func: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """Run one command; its failure becomes one line on stderr and an exit code."""
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_FAILURE
    except CliError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return exc.code
    except (Exception, KeyboardInterrupt) as exc:
        if os.environ.get(TRACEBACK_ENV) == "1" and not isinstance(exc, KeyboardInterrupt):
            raise
        for kind, message, code in _table():
            if isinstance(exc, kind):
                print(message(exc), file=sys.stderr)
                return code
        raise  # pragma: no cover - Exception closes the table
