"""Reconciliation: folds the dialplan's hang-up stamps (files) into the call record.

Runs after every AMI (re)connection, on each IvrCallEnded event and periodically, so a
call that ended while the controller was down, or that the controller never saw at all,
is in the record once the controller is back. Stamps are files the hang-up handler
writes into the instance's stamps folder (contract.DIR_STAMPS); the controller reads
them from disk and deletes each one once its record is committed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from pathlib import Path

from ivr import contract
from ivr.db.engine import Database
from ivr.pbx import safefs
from ivr.records import calls, recordings
from ivr.records.stamps import StampError, parse_stamp
from ivr.secure import keys

log = logging.getLogger(__name__)

STAMP_MAX_BYTES = 4096  # a stamp is about 100 bytes; a bigger file is not one of ours
#: A stamp that does not parse yet may still be being written; it is dropped only when
#: it has not changed for this long.
PARTIAL_GRACE_SECONDS = 10.0

#: One reconciliation at a time in a process (per event loop): an IvrCallEnded event's
#: and the periodic round's, run together, read the same stamp and both inserted the call
#: the controller never saw (a UNIQUE error in the log). Run one after the other, the
#: second finds the stamp gone.
_RUNNING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary())

# The stamps folder is the PBX user's: it could put links there (or make the folder one),
# so root reads, stats and deletes in it only through ivr.pbx.safefs, never by path.


def pending_stamps(pbx_dir: Path) -> list[str]:
    """The uniqueids whose stamps wait, oldest first (uniqueids sort by time)."""
    try:
        with safefs.open_dir(pbx_dir, contract.DIR_STAMPS) as fd:
            names = os.listdir(fd)
    except OSError:
        return []
    return sorted(n for n in names if not n.startswith("."))


def _age(pbx_dir: Path, name: str) -> float | None:
    try:
        with safefs.open_dir(pbx_dir, contract.DIR_STAMPS) as fd:
            mtime = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime
    except OSError:
        return None
    return time.time() - mtime


async def reconcile(db: Database, *, node: str, pbx_dir: Path, spool_fallback_dir: Path,
                    recordings_dir: Path, only: str | None = None) -> int:
    """Apply every pending stamp (or just `only`); return how many were applied."""
    loop = asyncio.get_running_loop()
    lock = _RUNNING.setdefault(loop, asyncio.Lock())
    async with lock:
        return await _reconcile(db, node, pbx_dir, spool_fallback_dir, recordings_dir, only)


async def _reconcile(db: Database, node: str, pbx_dir: Path, spool_fallback_dir: Path,
                     recordings_dir: Path, only: str | None) -> int:
    applied = 0
    for uniqueid in pending_stamps(pbx_dir):
        if only is not None and uniqueid != only:
            continue
        rel = f"{contract.DIR_STAMPS}/{uniqueid}"
        data = safefs.read_small(pbx_dir, rel, STAMP_MAX_BYTES + 1)
        try:
            if data is None or len(data) > STAMP_MAX_BYTES:
                raise StampError("not a stamp file")
            stamp = parse_stamp(uniqueid, data.decode("ascii", "replace"))
        except StampError as exc:
            age = _age(pbx_dir, uniqueid)
            if age is None:
                continue  # gone meanwhile
            if data is not None and age < PARTIAL_GRACE_SECONDS:
                continue  # perhaps still being written: next round
            log.warning("dropping a malformed hang-up stamp (%s)", exc)
            safefs.unlink(pbx_dir, rel)
            continue
        if stamp.dropped:
            log.warning("call %s: hang-up stamp fields without their strict form were "
                        "left empty: %s", uniqueid, ", ".join(stamp.dropped))
        recording = _take_recording(spool_fallback_dir / f"{uniqueid}.wav",
                                    recordings_dir / "fallback" / f"{uniqueid}.wav")
        call_id, created = await calls.apply_stamp(db, node, stamp, recording)
        # Deleted only once the record is committed: a crash in between re-applies it,
        # which apply_stamp makes harmless.
        safefs.unlink(pbx_dir, rel)
        applied += 1
        log.info("call %s: reconciled from hang-up stamp%s", call_id,
                 " (never seen by a controller)" if created else "")
    return applied


def _take_recording(spooled: Path, dest: Path) -> Path | None:
    """Seal a fallback recording out of Asterisk's spool into the data folder (`dest`
    with .enc added, 0600) and remove the spool copy; None when there is none."""
    sealed = recordings.sealed_path(dest)
    if sealed.exists():  # taken already (the stamp is re-applied after a crash)
        spooled.unlink(missing_ok=True)
        return sealed
    if dest.exists():
        return dest  # LEGACY: kept in plaintext before sealing; `ivr keys rotate` seals it
    if not spooled.exists():
        return None
    if spooled.stat().st_size <= 44:  # a WAV header and no sound: no message was left
        spooled.unlink()
        return None
    return recordings.take(keys.current(), spooled, sealed)
