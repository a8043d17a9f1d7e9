"""Key rotation: every sealed value and recording sealed again with the active key, the
legacy plaintext ones sealed for the first time, and the values counted per key.

`ivr keys rotate` runs `rotate`: a new active key is added to the key file (unless an
earlier, interrupted rotation left more than one key: then that one is finished), every
database value and recording not sealed with the active key is opened and sealed again,
and each older key is retired (its material removed from the file) once nothing is
sealed with it any more. Each batch of rows and each file is its own step, committed or
renamed into place, so an interrupted run leaves every value readable and a second run
goes on from where it stood.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm.attributes import flag_modified

from ivr.db.engine import Database
from ivr.db.models import Call, IntakeField, Recording
from ivr.db.sealed import REGISTRY, Envelope
from ivr.records import recordings
from ivr.secure import crypto, keys

log = logging.getLogger(__name__)

PLAINTEXT = "plaintext"  # legacy values and recordings, written before sealing
BATCH = 200  # rows per transaction
# After a new key is written: how long running controllers on this host take to see it
# (keys.RECHECK_SECONDS), so that what they seal from then on uses the new key too.
SETTLE_SECONDS = 2.5 * keys.RECHECK_SECONDS


@dataclass
class Usage:
    """How many values each key seals: per database column and for recording files."""

    columns: dict[str, Counter[str]] = field(default_factory=dict)  # "calls.caller" -> ...
    recordings: Counter[str] = field(default_factory=Counter)

    def per_key(self) -> Counter[str]:
        total: Counter[str] = Counter(self.recordings)
        for counts in self.columns.values():
            total.update(counts)
        return total

    def to_json(self) -> dict[str, Any]:
        return {"columns": {name: dict(c) for name, c in sorted(self.columns.items())},
                "recordings": dict(self.recordings), "per_key": dict(self.per_key())}


def _columns() -> list[tuple[str, Any, Any, Any]]:
    """(name, primary key column, sealed column, model) of every sealed column."""
    out = []
    for spec in REGISTRY:
        table = spec.model.__table__  # type: ignore[attr-defined]
        (pk,) = spec.model.__mapper__.primary_key  # type: ignore[attr-defined]
        for attr in spec.places:
            out.append((f"{table.name}.{attr}", pk, getattr(spec.model, attr), spec.model))
    return out


def _kind(value: str) -> str:
    return value.key_id if isinstance(value, Envelope) else PLAINTEXT


def recording_files(recordings_dir: Path) -> list[Path]:
    """Every kept recording (sealed and legacy plain), not half-written temporary files."""
    if not recordings_dir.is_dir():
        return []
    return sorted(p for p in recordings_dir.rglob("*") if p.is_file()
                  and not p.name.startswith(".") and p.name.endswith((".wav", ".wav.enc")))


async def usage(db: Database, recordings_dir: Path) -> Usage:
    """Values per key id (and PLAINTEXT) in every sealed column and recording file."""
    out = Usage()
    for name, _pk, column, _model in _columns():
        counts: Counter[str] = Counter()
        async with db.session() as s:
            result = await s.stream_scalars(select(column).where(column.is_not(None),
                                                                 column != ""))
            async for value in result:
                counts[_kind(value)] += 1
        out.columns[name] = counts
    for path in await asyncio.to_thread(recording_files, recordings_dir):
        out.recordings[recordings.key_id(path) or PLAINTEXT] += 1
    return out


async def reseal_columns(db: Database, ring: crypto.Keyring) -> int:
    """Seal again every database value not sealed with `ring`'s active key; how many."""
    done = 0
    for name, pk, column, model in _columns():
        attr = column.key
        last: Any = None
        while True:
            async with db.session() as s:
                query = (select(pk, column).where(column.is_not(None), column != "")
                         .order_by(pk).limit(BATCH))
                if last is not None:
                    query = query.where(pk > last)
                rows = (await s.execute(query)).all()
                if not rows:
                    break
                last = rows[-1][0]
                for ident, value in rows:
                    if _kind(value) == ring.active:
                        continue
                    row = await s.get(model, ident)  # opened with its old key (or plain)
                    if row is not None:
                        flag_modified(row, attr)  # sealed again, with the active key
                        done += 1
        log.info("%s: sealed with key %s", name, ring.active)
    return done


async def _repoint(db: Database, old: Path, new: Path) -> None:
    """The database's references to a legacy plain recording moved to its sealed file."""
    async with db.session() as s:
        for stmt in (update(Recording).where(Recording.path == str(old))
                     .values(path=str(new), size_bytes=new.stat().st_size),
                     update(IntakeField).where(IntakeField.recording_path == str(old))
                     .values(recording_path=str(new)),
                     update(Call).where(Call.fallback_recording == str(old))
                     .values(fallback_recording=str(new))):
            await s.execute(stmt.execution_options(synchronize_session=False))


def _reseal_file(ring: crypto.Keyring, path: Path) -> Path | None:
    """Seal one recording with the active key; the sealed path when it changed anything."""
    if recordings.is_sealed_file(path):
        if recordings.key_id(path) == ring.active:
            return None
        recordings.seal_bytes(ring, recordings.read(path, ring), path)
        return path
    sealed = recordings.sealed_path(path)
    if sealed.exists():  # sealed by an interrupted run: it must open before the plain goes
        if recordings.read(sealed, ring) != path.read_bytes():
            recordings.seal_bytes(ring, path.read_bytes(), sealed)
    else:
        recordings.seal_bytes(ring, path.read_bytes(), sealed)
    return sealed


async def reseal_recordings(db: Database, ring: crypto.Keyring, recordings_dir: Path) -> int:
    """Seal again every recording not sealed with the active key, and seal the legacy
    plain ones (their database paths moved to the sealed file, then the plain one
    deleted); how many files changed."""
    done = 0
    for path in await asyncio.to_thread(recording_files, recordings_dir):
        sealed = await asyncio.to_thread(_reseal_file, ring, path)
        if sealed is None:
            continue
        if sealed != path:  # a legacy plain file: the record first, then the plaintext goes
            await _repoint(db, path, sealed)
            os.unlink(path)
        done += 1
    return done


@dataclass(frozen=True)
class Rotation:
    active: str
    added: bool  # False: an interrupted rotation was finished
    columns_resealed: int
    recordings_resealed: int
    retired: tuple[str, ...]
    kept: dict[str, int]  # older keys still in use (a value sealed meanwhile): run again

    def to_json(self) -> dict[str, Any]:
        return {"active": self.active, "added": self.added,
                "columns_resealed": self.columns_resealed,
                "recordings_resealed": self.recordings_resealed,
                "retired": list(self.retired), "still_in_use": self.kept}


async def rotate(db: Database, settings: Any, *, settle_seconds: float = SETTLE_SECONDS,
                 env: dict[str, str] | None = None) -> Rotation:
    """See the module's docstring. KeyFileError when the keys come from IVR_KEYS."""
    if (os.environ if env is None else env).get(keys.ENV_KEYS, "").strip():
        raise keys.KeyFileError(f"the keys come from {keys.ENV_KEYS}, which this command "
                                "cannot change: rotate with a key file (IVR_KEY_FILE)")
    path = settings.key_file
    current = keys.read(path, settings.data_dir)
    added = len(current.ring) == 1
    if added:
        current = keys.add_key(current)
        keys.write(path, current)
        log.info("new active key %s added to %s", current.ring.active, path)
        await asyncio.sleep(settle_seconds)
    ring = keys.current(fresh=True)
    if ring.active != current.ring.active:
        raise keys.KeyFileError(f"this process does not use the key file {path}")
    columns = await reseal_columns(db, ring)
    files_done = await reseal_recordings(db, ring, settings.recordings_dir)
    counts = (await usage(db, settings.recordings_dir)).per_key()
    retired: list[str] = []
    kept: dict[str, int] = {}
    latest = keys.read(path, settings.data_dir)  # re-read: nothing else may be lost
    for key_id in latest.ring:
        if key_id == latest.ring.active:
            continue
        if counts.get(key_id, 0):
            kept[key_id] = counts[key_id]
            continue
        latest = keys.retire(latest, key_id)
        retired.append(key_id)
    if retired:
        keys.write(path, latest)
        keys.current(fresh=True)
        log.info("retired key(s) %s: nothing is sealed with them any more", ", ".join(retired))
    return Rotation(ring.active, added, columns, files_done, tuple(retired), kept)
