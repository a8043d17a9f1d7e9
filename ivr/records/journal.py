"""The controller's write-ahead journal: a call's step the database cannot take now is
kept in a local file and written when the database is back, the call going on meanwhile.

A call's writes (ivr.records.calls: timeline events, intake fields, recordings, the
call's own columns, its end) go through `write`. When one fails because the database is
gone (refused, reset, shutting down, a disk that is not there: `cannot_write`), the step
is appended to the journal instead and the flow goes on. From then on every later step
of that call goes to the journal too, so the call's steps reach the database in the
order they were taken (a confirmation never lands before the field it confirms).

The file (one per controller, 0600 in a 0700 folder) is append-only JSON lines: an
entry `{"id", "call", "op", "sealed"}` whose `sealed` is the step's arguments sealed
like the database's sealed columns (ivr.secure.crypto, bound to "journal:<id>": patient
values are never in it in the clear), and a mark `{"done": id}` once it is in the record.
`replay` applies each entry in its own transaction together with a row in
`journal_applied` (its id is the primary key): an entry replayed twice (a crash between
the commit and the mark, or two replays of a copied file) writes once. A file whose
entries are all done is emptied. Each line is flushed to disk (fsync) before the flow
goes on: it is what the caller said.

Group commit (issue 16): `write` queues the step for its Database's writer (one per
event loop), which runs every step queued meanwhile (up to BATCH_MOST, any calls) in one
transaction and commits it before their callers go on: each step is still committed (or
journaled, fsynced) before the flow that took it moves on, as with one commit per step,
at one commit, one lock and one round trip per batch instead of per step.

Not kept: a step whose commit reached the server but whose reply did not (the connection
died in between) is journaled as well; its intake field and call columns are written
again with the same values (the same row), its timeline event may show twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Table, select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from ivr import clock, ids
from ivr.db.engine import Database, unreachable
from ivr.db.models import JournalApplied
from ivr.secure import crypto, keys
from ivr.secure.files import private_dir

log = logging.getLogger(__name__)

#: A step of a call, written on one connection inside a transaction: (conn, call id, args).
Op = Callable[..., Awaitable[None]]
#: The steps a journal may hold, by name (ivr.records.calls registers its own).
OPS: dict[str, Op] = {}
_APPLIED: Table = JournalApplied.__table__  # type: ignore[assignment]
_ATTACHED: WeakKeyDictionary[Database, Journal] = WeakKeyDictionary()
_WRITERS: WeakKeyDictionary[Database, _Writer] = WeakKeyDictionary()
#: The most steps one commit takes: its callers all wait for the slowest of them.
BATCH_MOST = 64
#: SQLite's messages for a database it cannot reach now (its file, its disk, a lock).
_SQLITE_GONE = ("unable to open database file", "disk i/o error", "database is locked",
                "database or disk is full", "readonly database", "disk image is malformed")


def op(name: str) -> Callable[[Op], Op]:
    """Register a call's step under `name` (explicit, by the module that owns it)."""
    def register(fn: Op) -> Op:
        if name in OPS:
            raise ValueError(f"journal step {name!r} registered twice")
        OPS[name] = fn
        return fn
    return register


def cannot_write(exc: BaseException) -> bool:
    """The database is not there now (a journal entry waits for it), as opposed to a
    step it refuses (a constraint, a bug: raised as before)."""
    if isinstance(exc, IntegrityError):
        return False
    if unreachable(exc) or isinstance(exc, OSError | TimeoutError | InterfaceError):
        return True  # InterfaceError: the connection was closed under the statement
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # SQLite says both "the disk is not there" and "no such column" with OperationalError:
    # only the first kind waits in the journal, a schema bug is raised.
    return isinstance(exc, OperationalError) and any(
        words in str(exc.orig).lower() for words in _SQLITE_GONE)


@dataclass(frozen=True)
class Entry:
    id: str
    call_id: str
    op: str
    args: dict[str, Any]


def _encode(args: dict[str, Any]) -> str:
    def default(value: object) -> object:
        if isinstance(value, datetime):
            return {"$at": value.isoformat()}
        raise TypeError(f"a journal step's argument cannot be kept: {type(value).__name__}")
    return json.dumps(args, default=default, separators=(",", ":"))


def _decode(text: str) -> dict[str, Any]:
    def hook(obj: dict[str, Any]) -> Any:
        return datetime.fromisoformat(obj["$at"]) if set(obj) == {"$at"} else obj
    out: dict[str, Any] = json.loads(text, object_hook=hook)
    return out


def _place(entry_id: str) -> str:
    return f"journal:{entry_id}"


def _open_entry(sealed: str, entry_id: str) -> str:
    opened: str = keys.opening(lambda ring: crypto.open_text(ring, sealed, _place(entry_id)))
    return opened


class Journal:
    """One controller's journal file (see the module's docstring); `load()` reads what
    an earlier run left (it needs the keys)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # appends come from the event loop; a lock is cheap
        self._pending: dict[str, Entry] = {}  # in the order taken

    def load(self) -> Journal:
        if not self.path.exists():
            return self
        done: set[str] = set()
        entries: list[tuple[str, str, str, str]] = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                item = json.loads(line)
            except ValueError:  # a line cut by a crash while it was written: the last one
                log.warning("journal %s: line %d unreadable, skipped", self.path, number)
                continue
            if "done" in item:
                done.add(item["done"])
            else:
                entries.append((item["id"], item["call"], item["op"], item["sealed"]))
        for entry_id, call_id, name, sealed in entries:
            if entry_id in done:
                continue
            plain = _open_entry(sealed, entry_id)
            self._pending[entry_id] = Entry(entry_id, call_id, name, _decode(plain))
        return self

    # --- the file ---------------------------------------------------------------------
    def _append(self, item: dict[str, str]) -> None:
        private_dir(self.path.parent)
        line = (json.dumps(item, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, call_id: str, name: str, args: dict[str, Any]) -> str:
        """Keep one step of `call_id`; returns the entry's id."""
        if name not in OPS:
            raise KeyError(f"no journal step {name!r}")
        entry = Entry(ids.new_id(), call_id, name, args)
        sealed = crypto.seal_text(keys.current(), _encode(args), _place(entry.id))
        with self._lock:
            self._append({"id": entry.id, "call": call_id, "op": name, "sealed": sealed})
            self._pending[entry.id] = entry
        return entry.id

    def done(self, entry_id: str) -> None:
        with self._lock:
            self._append({"done": entry_id})
            self._pending.pop(entry_id, None)
            if not self._pending:  # all in the record: nothing to keep
                self.path.unlink(missing_ok=True)

    # --- what it holds ----------------------------------------------------------------
    def holds(self, call_id: str) -> bool:
        """Steps of this call wait here: its next ones must wait behind them."""
        return any(e.call_id == call_id for e in self._pending.values())

    def pending(self) -> list[Entry]:
        return list(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)


def attach(db: Database, journal: Journal | None) -> None:
    """The journal `db`'s failed call steps go to (the controller's); None: none."""
    if journal is None:
        _ATTACHED.pop(db, None)
    else:
        _ATTACHED[db] = journal


async def write(db: Database, call_id: str, name: str, args: dict[str, Any]) -> None:
    """Take one step of a call: committed in the database (with the steps other calls
    queued meanwhile) before this returns, else (gone) in the journal."""
    journal = _ATTACHED.get(db)
    if name not in OPS:
        raise KeyError(name)
    if journal is not None and journal.holds(call_id):
        journal.append(call_id, name, args)
        return
    loop = asyncio.get_running_loop()
    step = _Step(call_id, name, args, loop.create_future())
    _writer(db, loop).put(db, step)
    # A caller cancelled here cancels `done`: a step still queued is dropped (it never
    # ran, as before), one already in a batch is written all the same.
    await step.done


# The group commit. No well-kept library fits: none found batches work into one SQLAlchemy
# transaction with each item's own outcome, and the journal's fallback is ours anyway.

@dataclass(eq=False)
class _Step:
    call_id: str
    name: str
    args: dict[str, Any]
    done: asyncio.Future[None]


class _Writer:
    """One Database's group commit in one event loop. Its task runs only while steps are
    queued, so a loop that ends (every test has its own) leaves no task pending."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: deque[_Step] = deque()
        self.task: asyncio.Task[None] | None = None

    def put(self, db: Database, step: _Step) -> None:
        self.queue.append(step)
        # The task ends right after it finds the queue empty, with no await in between:
        # one not done yet will take this step.
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run(db), name="journal-writer")

    async def _run(self, db: Database) -> None:
        batch: list[_Step] = []
        try:
            while self.queue:
                batch = []
                while self.queue and len(batch) < BATCH_MOST:
                    step = self.queue.popleft()
                    if not step.done.done():  # done already: its caller was cancelled
                        batch.append(step)
                try:
                    await _commit(db, batch)
                except Exception as exc:  # a bug here: its callers hear of it, not others
                    for step in batch:
                        _settle(step, exc)
        finally:  # cancelled (its loop closing): no caller is left waiting
            for step in (*batch, *self.queue):
                step.done.cancel()
            self.queue.clear()

    async def drain(self) -> None:
        """Wait until every queued step is written (Database.close, before the engine
        goes). asyncio.wait: a close that is cancelled does not cancel the writer."""
        task = self.task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([task])


def _writer(db: Database, loop: asyncio.AbstractEventLoop) -> _Writer:
    writer = _WRITERS.get(db)
    if writer is None or writer.loop is not loop:
        if writer is not None:
            db.before_close.remove(writer.drain)
        writer = _WRITERS[db] = _Writer(loop)
        db.before_close.append(writer.drain)
    return writer


def _settle(step: _Step, exc: BaseException | None = None) -> None:
    if step.done.done():  # its caller was cancelled after the step was taken
        return
    if exc is None:
        step.done.set_result(None)
    else:
        step.done.set_exception(exc)


def _keep(journal: Journal, step: _Step, why: BaseException | None = None) -> None:
    """The step into the journal; `why`: the failure that sent it there (logged)."""
    try:
        journal.append(step.call_id, step.name, step.args)
    except Exception as exc:  # the file cannot take it either: its caller hears of it
        _settle(step, exc)
        return
    if why is not None:  # the call's id, the step's name and the error's kind: no values
        log.warning("call %s: %s not written (%s); kept in the journal until the "
                    "database is back", step.call_id, step.name, type(why).__name__)
    _settle(step)


async def _commit(db: Database, batch: list[_Step]) -> None:
    journal = _ATTACHED.get(db)
    todo: list[_Step] = []
    for step in batch:
        # Its call's step in an earlier batch went to the journal: this one goes behind it.
        if journal is not None and journal.holds(step.call_id):
            _keep(journal, step)
        else:
            todo.append(step)
    if not todo:
        return
    try:
        async with db.write() as conn:
            for step in todo:
                await OPS[step.name](conn, step.call_id, **step.args)
    except Exception as exc:
        if journal is not None and cannot_write(exc):
            for step in todo:
                _keep(journal, step, exc)
        elif len(todo) == 1:
            _settle(todo[0], exc)
        else:
            # A step refused (a constraint, a bug) rolled the batch back: each step again
            # in its own transaction, so only the refused one fails. Not a SAVEPOINT per
            # step: pysqlite's (aiosqlite's) transaction handling breaks SAVEPOINTs unless
            # the driver's BEGIN is taken over, and on PostgreSQL each costs two more round
            # trips on every batch, for a failure that is rare (a bug).
            for step in todo:
                await _alone(db, step)
        return
    for step in todo:
        _settle(step)


async def _alone(db: Database, step: _Step) -> None:
    """One step in its own transaction (one commit per step, as before the batches)."""
    journal = _ATTACHED.get(db)
    if journal is not None and journal.holds(step.call_id):
        _keep(journal, step)
        return
    try:
        async with db.write() as conn:
            await OPS[step.name](conn, step.call_id, **step.args)
    except Exception as exc:
        if journal is not None and cannot_write(exc):
            _keep(journal, step, exc)
        else:
            _settle(step, exc)
        return
    _settle(step)


async def replay(db: Database, journal: Journal) -> int:
    """Write what the journal holds, oldest first; returns how many entries were written
    now. Stops at the first entry the database still cannot take (tried again later); an
    entry it refuses is logged and kept, and so are its call's later entries."""
    written = 0
    stuck: set[str] = set()  # calls with a refused entry: their order must hold
    while True:
        todo = [e for e in journal.pending() if e.call_id not in stuck]
        if not todo:
            return written
        for entry in todo:
            if entry.call_id in stuck:
                continue
            try:
                async with db.write() as conn:
                    # Found: in the record already (a replay that ran before).
                    if not await _applied(conn, entry.id):
                        await OPS[entry.op](conn, entry.call_id, **entry.args)
                        await conn.execute(_APPLIED.insert(), {
                            "entry_id": entry.id, "call_id": entry.call_id,
                            "applied_at": clock.now()})
                        written += 1
            except Exception as exc:
                if cannot_write(exc):
                    return written
                stuck.add(entry.call_id)
                log.warning("call %s: journal entry %s (%s) refused by the database "
                            "(%s); kept", entry.call_id, entry.id, entry.op,
                            type(exc).__name__)
                continue
            journal.done(entry.id)
        # Steps a call took meanwhile are picked up by the next turn; every turn ends
        # each entry it saw (written, found written, or its call stuck), so this ends.


async def _applied(conn: AsyncConnection, entry_id: str) -> bool:
    found = await conn.scalar(select(_APPLIED.c.entry_id).where(
        _APPLIED.c.entry_id == entry_id))
    return found is not None
