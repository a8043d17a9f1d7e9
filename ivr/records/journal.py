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

Not kept: a step whose commit reached the server but whose reply did not (the connection
died in between) is journaled as well; its intake field and call columns are written
again with the same values (the same row), its timeline event may show twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
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
    """Take one step of a call: in the database now, else (gone) in the journal."""
    journal = _ATTACHED.get(db)
    fn = OPS[name]
    if journal is not None and journal.holds(call_id):
        journal.append(call_id, name, args)
        return
    try:
        async with db.write() as conn:
            await fn(conn, call_id, **args)
    except Exception as exc:
        if journal is None or not cannot_write(exc):
            raise
        journal.append(call_id, name, args)
        log.warning("call %s: %s not written (%s); kept in the journal until the "
                    "database is back", call_id, name, type(exc).__name__)


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
