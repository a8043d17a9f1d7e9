"""How much input the rules loader accepts, and how long it may take.

Rules files and calendars are edited by people and exported by other programs, so
the loader treats them as untrusted: every size, count and depth is bounded, and
the whole load runs against a time budget. Going past a limit is a located error
like any other, never an exception out of `load_rules`.

The numbers are far above what a practice needs (the examples are a few KB with a
handful of events) and far below what would hurt the controller on 2 cores.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

# --- files -------------------------------------------------------------------------------
MAX_RULES_FILES = 2_000  # YAML files in one rules folder (the benchmark loads 1,000)
MAX_RULES_FILE_BYTES = 1 << 20  # one practice file: 1 MiB (the examples are 4-10 KB)
MAX_ICAL_FILE_BYTES = 4 << 20  # one calendar: 4 MiB (years of shifts fit in a few hundred KB)

# --- YAML ----------------------------------------------------------------------------------
MAX_DEPTH = 50  # nesting of lists and mappings (the rules use 6)
MAX_NODES = 100_000  # values in one file, an alias counted each time it is used
MAX_ITEMS = 2_000  # entries in one list or mapping
MAX_SCALAR_CHARS = 4_000  # one value (a prompt text is a few hundred)
MAX_INT_DIGITS = 20  # an unquoted phone number has at most 15
MAX_LIMIT_ERRORS = 20  # a hostile file gets this many findings, then the check stops

# --- iCalendar -----------------------------------------------------------------------------
MAX_ICAL_COMPONENTS = 20_000  # BEGIN: lines
MAX_ICAL_NESTING = 8  # VCALENDAR > VTIMEZONE > STANDARD is 3 deep
MAX_ICAL_EVENTS = 5_000  # VEVENTs before expansion
MAX_ICAL_OCCURRENCES = 10_000  # shifts in the expansion window (about 12 a day for 790 days)
MAX_OCCURRENCES_PER_DAY = 24  # one recurring event: at most hourly
MAX_RRULE_STEPS = 500_000  # instances all rules may generate from DTSTART to the window's end
ICAL_CHUNK_OCCURRENCES = 2_000  # expansion window slices are sized to hold about this many

# --- dates ---------------------------------------------------------------------------------
# Far from datetime's edges (years 1 and 9999), where adding an offset or a day overflows.
MIN_YEAR = 1900
MAX_YEAR = 2999

# --- time ----------------------------------------------------------------------------------
LOAD_BUDGET_SECONDS = 15.0  # the whole load; the controller's hard deadline is a bit longer


class InputRefused(ValueError):
    """A file was not read: not a regular file, too large, or an unusable path."""


class LoadTimeout(BaseException):
    """The load ran past its time budget.

    A BaseException, like KeyboardInterrupt: the libraries the loader calls catch
    `Exception` broadly in places, and must not swallow this and carry on.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the load took longer than {seconds:g} s")
        self.seconds = seconds
        self.where: tuple[str, int, int, str] | None = None  # file, line, column, key

    def locate(self, file: str, line: int, column: int, key: str) -> None:
        """Remember the innermost place the load was at (the first call wins)."""
        if self.where is None:
            self.where = (file, line, column, key)


class Deadline:
    """A point in monotonic time that cooperative checks compare against."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def check(self) -> None:
        """Raise LoadTimeout once the deadline has passed."""
        if self.at is not None and time.monotonic() > self.at:
            raise LoadTimeout(self.seconds or 0.0)


UNLIMITED = Deadline(None)


@contextlib.contextmanager
def interrupting(deadline: Deadline) -> Iterator[None]:
    """Also stop code that never reaches a check: an interval timer raises LoadTimeout.

    Some library loops (a recurrence rule that never matches makes dateutil walk to
    the year 9999) run for seconds between two cooperative checks. A signal handler
    runs between any two bytecodes, so it stops those too. Signals reach only the
    main thread, and another user of SIGALRM (a test timeout plugin) is left alone:
    then only the cooperative checks apply.
    """
    remaining = deadline.remaining()
    usable = (remaining is not None and threading.current_thread() is threading.main_thread()
              and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None))
    if not usable:
        yield
        return

    # An exception raised inside a garbage-collector callback (another library's) is
    # printed and dropped by the interpreter, not raised into the load: while the
    # collector runs, the tick is skipped and the next one (0.2 s on) does the work.
    collecting = [False]

    def enter(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collecting[0] = True

    def leave(phase: str, _info: dict[str, int]) -> None:
        if phase == "stop":
            collecting[0] = False

    def expire(signum: int, frame: FrameType | None) -> None:
        if not collecting[0]:
            raise LoadTimeout(deadline.seconds or 0.0)

    gc.callbacks.insert(0, enter)  # first at "start", before any other callback runs
    gc.callbacks.append(leave)  # last at "stop", after every other callback ran
    previous = signal.signal(signal.SIGALRM, expire)
    # Repeat every 0.2 s: a library that catches BaseException once is hit again.
    signal.setitimer(signal.ITIMER_REAL, max(remaining or 0.0, 0.001), 0.2)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)
        gc.callbacks.remove(enter)
        gc.callbacks.remove(leave)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (InputRefused otherwise).

    A symlink is followed, but only to a regular file. The file is opened without
    blocking (a FIFO swapped in after the check cannot stall the open) and never read
    past the limit (a file that grows while being read, or lies about its size in
    /proc, is still cut off).
    """
    try:
        st = os.stat(path)
    except ValueError as exc:  # NUL byte in the path
        raise InputRefused(f"unusable path: {exc}") from None
    except OSError as exc:
        raise InputRefused(f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputRefused(f"{_kind(st.st_mode)}, not a regular file")
    if st.st_size > max_bytes:
        raise InputRefused(f"{st.st_size:,} bytes; at most {max_bytes:,}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputRefused(f"cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputRefused(f"{_kind(st.st_mode)}, not a regular file")
        chunks = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 16, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputRefused(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise InputRefused(f"more than {max_bytes:,} bytes")
    return b"".join(chunks)
