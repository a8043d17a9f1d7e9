"""The rules in force in a running controller: load, reload without dropping calls, status.

A `RuleSet` is immutable (frozen dataclasses over read-only maps), so a reload never
changes rules under a call in progress: it swaps which object `RulesRuntime.current`
returns. A call that read `current` once when it started keeps that object, and so the
rules it started with, until it ends; the next call sees the new rules. Nothing here
waits for calls to finish, and nothing needs to.

Rules that fail validation (or make the loader raise) are refused: the previous rules
stay in force and the status says why. The status is also written to
`<data_dir>/rules-status-<instance>.json` for `ivr rules status` and `ivr rules reload`,
which reach the controller through its pid file and SIGHUP (the client side is at the
bottom of this module).

A load runs against a deadline (LOAD_DEADLINE_SECONDS): one that has not finished by
then is refused like broken rules. The controller loads in a child process that is
killed at the deadline (ivr.rules.sandbox says why); a runtime made directly loads in
a daemon thread whose result is abandoned at the deadline (tests and tools: it keeps
monkeypatching possible and costs no process, but cannot stop the work). Either way
a load never holds up the controller's stop or the interpreter's exit.

Every load that changes the digest in force, and every refused load, is announced to the
`on_change` listeners as a `RulesChange` (digests, file names, counts: no patient data);
the controller writes it to the audit log (ivr.records.audit). Listeners run after the swap, so
a slow or failing listener never holds a reload back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ivr import ids
from ivr.config import Settings
from ivr.rules import Issue, LoadResult, RuleSet, load_rules
from ivr.rules.limits import LOAD_BUDGET_SECONDS
from ivr.rules.sandbox import LOAD_DEADLINE_SECONDS, load_in_child, over_deadline
from ivr.secure import files

log = logging.getLogger(__name__)

# Why a load was attempted (recorded in the status).
SOURCE_STARTUP = "startup"
SOURCE_SIGHUP = "sighup"
SOURCE_COMMAND = "command"  # `ivr rules reload`: a SIGHUP preceded by a request file
SOURCE_FILE_CHANGE = "file-change"
SOURCE_DAILY = "daily"  # re-anchors iCal expansion and coverage windows on `now`
SOURCES = (SOURCE_STARTUP, SOURCE_SIGHUP, SOURCE_COMMAND, SOURCE_FILE_CHANGE, SOURCE_DAILY)

POLL_SECONDS = 2.0
REANCHOR_EVERY = timedelta(hours=24)
ERRORS_KEPT = 10  # errors kept in the status file and logged (the count is always given)
WATCHED_SUFFIXES = (".yaml", ".yml", ".ics")

Fingerprint = tuple[tuple[str, int, int], ...]
OnLoaded = Callable[[RuleSet], Awaitable[None]]

# RulesChange.kind
CHANGE_LOADED = "loaded"  # rules with another digest are in force now
CHANGE_REFUSED = "refused"  # the files were refused; the rules in force stay


def _utc_now() -> datetime:
    return datetime.now(UTC)


def status_path(settings: Settings) -> Path:
    return settings.data_dir / f"rules-status-{settings.instance}.json"


def pid_path(settings: Settings) -> Path:
    return settings.data_dir / f"controller-{settings.instance}.pid"


def request_path(settings: Settings) -> Path:
    """Written by `ivr rules reload` just before the SIGHUP, so the reload is tagged."""
    return settings.data_dir / f"rules-reload-{settings.instance}.request"


@dataclass(frozen=True)
class RulesStatus:
    """What the controller has in force and how the last attempt went (JSON-ready)."""

    instance: str
    rules_path: str
    pid: int
    digest: str | None = None
    practices: tuple[str, ...] = ()
    loaded_at: str | None = None
    loaded_source: str | None = None
    attempts: int = 0
    last_attempt_at: str | None = None
    last_attempt_source: str | None = None
    last_attempt_ok: bool | None = None
    last_request_id: str | None = None
    last_error: str | None = None  # the first error of the last refused attempt
    error_count: int = 0
    errors: tuple[str, ...] = ()
    warning_count: int = 0

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["practices"] = list(self.practices)
        doc["errors"] = list(self.errors)
        return doc


@dataclass(frozen=True)
class RulesChange:
    """A load that changed the digest in force, or a refused one (for the audit log)."""

    kind: str  # CHANGE_LOADED | CHANGE_REFUSED
    source: str  # why the load was attempted (SOURCES)
    digest_from: str | None  # in force before (None: nothing was)
    digest_to: str | None  # in force after: the new digest, or digest_from when refused
    files: tuple[str, ...] = ()  # loaded: changed, added or removed; refused: with errors
    error_count: int = 0


OnChange = Callable[[RulesChange], Awaitable[None]]


def changed_files(before: RuleSet | None, after: RuleSet) -> tuple[str, ...]:
    """Names of the files whose content differs (added and removed ones included)."""
    old = dict(before.files) if before is not None else {}
    new = dict(after.files)
    return tuple(sorted(name for name in old.keys() | new.keys()
                        if old.get(name) != new.get(name)))


class RulesRuntime:
    """The current RuleSet of one controller, its reloads and their status."""

    def __init__(self, rules_path: Path, *, instance: str = "default",
                 status_file: Path | None = None, request_file: Path | None = None,
                 clock: Callable[[], datetime] = _utc_now, isolate: bool = False,
                 deadline: float = LOAD_DEADLINE_SECONDS) -> None:
        self.rules_path = Path(rules_path)
        self.isolate = isolate  # load in a child process (the controller) or a thread
        self.deadline = deadline
        self.status_file = status_file
        self.request_file = request_file
        self._clock = clock
        self._current: RuleSet | None = None
        self._status = RulesStatus(instance, str(self.rules_path), os.getpid())
        self._lock = asyncio.Lock()
        self._listeners: list[OnLoaded] = []
        self._change_listeners: list[OnChange] = []
        self._loaded_fingerprint: Fingerprint | None = None
        self._anchored_at: datetime | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> RulesRuntime:
        return cls(settings.rules_path, instance=settings.instance,
                   status_file=status_path(settings), request_file=request_path(settings),
                   isolate=True)

    @property
    def current(self) -> RuleSet | None:
        """The rules in force (None until the first successful load).

        Read it once per call and keep the reference: a reload replaces what this
        returns, never the object a call already holds.
        """
        return self._current

    @property
    def status(self) -> RulesStatus:
        return self._status

    def on_loaded(self, callback: OnLoaded) -> None:
        """Run `callback(rules)` after every successful load (e.g. refresh the PBX fallbacks)."""
        self._listeners.append(callback)

    def on_change(self, callback: OnChange) -> None:
        """Run `callback(change)` after a load that changed the digest, and after a refusal."""
        self._change_listeners.append(callback)

    async def load(self) -> bool:
        """The first load at startup."""
        return await self.reload(SOURCE_STARTUP)

    async def reload(self, source: str, request_id: str | None = None) -> bool:
        """Load the rules again; on any error keep the ones in force. True when loaded."""
        if source not in SOURCES:
            raise ValueError(f"unknown reload source {source!r}; expected one of {SOURCES}")
        async with self._lock:  # one load at a time; a second request waits, then loads again
            fingerprint = await asyncio.to_thread(self.fingerprint)
            now = self._clock()
            log.info("rules load started (%s) from %s", source, self.rules_path)
            # Off the event loop: parsing YAML and expanding iCal must not stall calls.
            result = await self._run_load(now)
            before = self._current
            ok = self._record(result, source, now, request_id)
            change = self._change(before, ok, result, source)
            if ok:
                self._loaded_fingerprint = fingerprint
                self._anchored_at = now
            else:
                # Do not retry the same broken files on every poll; a change retries.
                self._loaded_fingerprint = fingerprint
            await asyncio.to_thread(self._write_status)
            rules = self._current
        if change is not None:
            for listener in self._change_listeners:
                try:
                    await listener(change)
                except Exception:  # the audit trail's failure must not undo the reload
                    log.exception("rules-change listener %r failed", listener)
        if ok and rules is not None:
            for callback in self._listeners:
                try:
                    await callback(rules)
                except Exception:  # a listener's failure must not undo a good load
                    log.exception("rules-loaded listener %r failed", callback)
        return ok

    async def reload_on_signal(self) -> bool:
        """SIGHUP: a reload requested by `ivr rules reload` when its request file is there."""
        request_id = await asyncio.to_thread(self._take_request)
        if request_id is None:
            return await self.reload(SOURCE_SIGHUP)
        return await self.reload(SOURCE_COMMAND, request_id)

    async def watch(self, interval: float = POLL_SECONDS) -> None:
        """Poll the rules files; reload when they changed and have stayed unchanged one poll.

        Waiting for one quiet poll avoids loading a file an editor is half-way through
        writing. Also reloads once a day, because iCal recurrences and coverage warnings
        are computed over a window around the load time. Runs until cancelled.
        """
        previous = await asyncio.to_thread(self.fingerprint)
        while True:
            await asyncio.sleep(interval)
            try:
                seen = await asyncio.to_thread(self.fingerprint)
                if seen != self._loaded_fingerprint and seen == previous:
                    await self.reload(SOURCE_FILE_CHANGE)
                elif (self._anchored_at is not None
                      and self._clock() - self._anchored_at >= REANCHOR_EVERY):
                    await self.reload(SOURCE_DAILY)
                previous = seen
            except asyncio.CancelledError:
                raise
            except Exception:  # the watcher must outlive any surprise; the rules stay in force
                log.exception("rules watcher: unexpected error; still watching")

    def fingerprint(self) -> Fingerprint:
        """(path, mtime_ns, size) of every rules file and calendar the rules use."""
        paths: set[Path] = set()
        p = self.rules_path
        if p.is_dir():
            paths.update(q for q in p.iterdir() if q.suffix in WATCHED_SUFFIXES)
        else:
            paths.add(p)
        rules = self._current
        if rules is not None:  # calendars may live outside the rules directory
            for practice in rules.practices.values():
                if practice.on_call.ical_file:
                    base = Path(practice.source_file).parent
                    paths.add(base / practice.on_call.ical_file)
        out = []
        for path in sorted(paths):
            try:
                st = path.stat()
            except OSError:
                out.append((str(path), -1, -1))
                continue
            out.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(out)

    # --- internals ---------------------------------------------------------------------

    async def _run_load(self, now: datetime) -> LoadResult:
        """The load, off the loop and within the deadline (refused past it)."""
        if self.isolate:
            return await load_in_child(self.rules_path, now, deadline=self.deadline)
        try:
            return await asyncio.wait_for(
                _in_daemon_thread(lambda: self._load_result(now)), self.deadline)
        except TimeoutError:
            log.error("rules load passed its %g s deadline; its result will be ignored",
                      self.deadline)
            return over_deadline(self.rules_path, self.deadline)

    def _load_result(self, now: datetime) -> LoadResult:
        try:
            # A budget no longer than the deadline: an abandoned thread stops itself soon.
            return load_rules(self.rules_path, now=now,
                              budget=min(LOAD_BUDGET_SECONDS, self.deadline))
        except Exception as exc:  # a loader bug must not take the rules in force with it
            log.exception("rules loader raised")
            return LoadResult(None, [Issue(str(self.rules_path), 1, 1, "", None, "",
                                           f"the rules loader failed: {exc!r}")])

    def _record(self, result: LoadResult, source: str, now: datetime,
                request_id: str | None) -> bool:
        st = replace(self._status, attempts=self._status.attempts + 1,
                     last_attempt_at=now.isoformat(), last_attempt_source=source,
                     last_request_id=request_id, warning_count=len(result.warnings))
        if result.ok and result.rules is not None:
            rules = result.rules
            previous = self._current.digest if self._current is not None else None
            self._current = rules
            self._status = replace(st, digest=rules.digest,
                                   practices=tuple(sorted(rules.practices)),
                                   loaded_at=now.isoformat(), loaded_source=source,
                                   last_attempt_ok=True, last_error=None, error_count=0,
                                   errors=())
            log.info("rules loaded (%s): %d practices, digest %s%s, %d warnings", source,
                     len(rules.practices), rules.digest,
                     "" if previous in (None, rules.digest) else f" (was {previous})",
                     len(result.warnings))
            return True
        errors = tuple(str(e) for e in result.errors[:ERRORS_KEPT])
        if not errors:
            errors = ("the rules could not be loaded (no error given)",)
        self._status = replace(st, last_attempt_ok=False, last_error=errors[0],
                               error_count=max(len(result.errors), 1), errors=errors)
        kept = self._current.digest if self._current is not None else "none"
        log.error("rules refused (%s): %d errors; keeping the rules in force (digest %s). "
                  "First errors: %s", source, self._status.error_count, kept, " | ".join(errors))
        return False

    def _change(self, before: RuleSet | None, ok: bool, result: LoadResult,
                source: str) -> RulesChange | None:
        """What to announce for this attempt: None when the digest in force is the same."""
        kept = before.digest if before is not None else None
        after = self._current
        if ok and after is not None:
            if after.digest == kept:
                return None  # the same content again (a daily re-anchor, a touched file)
            return RulesChange(CHANGE_LOADED, source, kept, after.digest,
                               changed_files(before, after))
        files = sorted({Path(issue.file).name for issue in result.errors if issue.file})
        return RulesChange(CHANGE_REFUSED, source, kept, kept, tuple(files),
                           self._status.error_count)

    def _write_status(self) -> None:
        if self.status_file is None:
            return
        try:
            _write_atomic(self.status_file, json.dumps(self._status.to_json(), indent=2) + "\n")
        except OSError as exc:  # the status is a report; the rules in force do not depend on it
            log.warning("cannot write the rules status to %s: %s", self.status_file, exc)

    def _take_request(self) -> str | None:
        if self.request_file is None:
            return None
        try:
            text = self.request_file.read_text().strip()
            self.request_file.unlink()
        except OSError:
            return None
        return text[:64] or None


def _in_daemon_thread(fn: Callable[[], LoadResult]) -> asyncio.Future[LoadResult]:
    """Run `fn` in a daemon thread; the future gets its result unless abandoned first.

    Not asyncio.to_thread: executor threads are joined when the loop and then the
    interpreter shut down, so a load still running would hold up the exit. A daemon
    thread is simply dropped, and so is its result if nobody awaits it any more.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[LoadResult] = loop.create_future()

    def deliver(value: LoadResult | None, error: BaseException | None) -> None:
        if future.done():  # abandoned at the deadline, or the waiter was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            assert value is not None
            future.set_result(value)

    def run() -> None:
        value: LoadResult | None = None
        error: BaseException | None = None
        try:
            value = fn()
        except Exception as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(deliver, value, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    threading.Thread(target=run, name="rules-load", daemon=True).start()
    return future


def _write_atomic(path: Path, text: str) -> None:
    files.private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # 0600 whatever the umask: the status names the rules' files, the pid our process.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, files.FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


# --- the controller's pid file -------------------------------------------------------------

def write_pid_file(path: Path) -> None:
    _write_atomic(path, f"{os.getpid()}\n")


def remove_pid_file(path: Path) -> None:
    """Remove the pid file if it is still ours (a newer controller may have replaced it)."""
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass


# --- the client side: `ivr rules status` and `ivr rules reload` ----------------------------

class ReloadError(RuntimeError):
    """The reload could not be requested or confirmed; the message says why."""


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def controller_pid(path: Path) -> int:
    """The running controller's pid from its pid file; ReloadError when there is none.

    A pid is only trusted when its process started before the pid file was written, so a
    stale file whose pid now belongs to another process is never signalled.
    """
    import psutil

    try:
        text = path.read_text().strip()
        written = path.stat().st_mtime
    except OSError:
        raise ReloadError(f"no controller pid file at {path}: is the controller running "
                          "(`ivr serve` or `ivr run`)?") from None
    if not text.isdigit():
        raise ReloadError(f"{path}: expected a process id, found {text[:40]!r}")
    pid = int(text)
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        raise ReloadError(f"the controller (pid {pid}, from {path}) is not running; "
                          "the pid file is stale") from None
    if started > written + 1.0:
        raise ReloadError(f"pid {pid} from {path} belongs to a process started after the "
                          "pid file was written; the controller is not running")
    return pid


def request_reload(settings: Settings, timeout: float = 5.0,
                   poll: float = 0.1) -> dict[str, Any]:
    """Ask the running controller to reload its rules; the status of that very attempt."""
    pid = controller_pid(pid_path(settings))
    request_id = ids.new_id()
    _write_atomic(request_path(settings), request_id + "\n")
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise ReloadError(f"cannot signal the controller (pid {pid}): {exc}") from exc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = read_status(status_path(settings))
        if doc is not None and doc.get("last_request_id") == request_id:
            return doc
        time.sleep(poll)
    raise ReloadError(f"the controller (pid {pid}) did not report the reload within "
                      f"{timeout:g} s; see its log and `ivr rules status`")
