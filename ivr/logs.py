"""Logging set-up, and exception logging that keeps patient data out of the logs."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from ivr.secure.files import create_private


def setup(level: str = "INFO", log_file: Path | None = None) -> None:
    """Log to stderr (and a file); only our own loggers ever go below INFO.

    Libraries log data at DEBUG: aiosqlite and SQLAlchemy print SQL parameters (caller
    numbers, dates of birth), panoramisk prints whole AMI events (caller ID). Keeping
    them at INFO or above is what keeps patient data out of the logs in debug mode too.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        create_private(log_file)  # 0600 in a 0700 folder, whatever the umask
        handlers.append(logging.FileHandler(log_file))
    wanted = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=max(wanted, logging.INFO), handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("ivr").setLevel(wanted)


def log_exception(logger: logging.Logger, call_id: str | None, what: str,
                  exc: BaseException) -> None:
    """Log where an exception came from, without its message.

    Exception messages can quote the values that caused them (a keyed number, a date of
    birth), so only the type and the stack of code locations reach the log.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                        for f in reversed(frames[-6:]))
    logger.error("call %s: %s: %s at %s", call_id or "-", what, type(exc).__name__, where)
