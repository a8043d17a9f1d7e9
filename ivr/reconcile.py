"""Reconciliation: folds the dialplan's hang-up stamps (AstDB) into the call record.

Runs after every AMI (re)connection, on each IvrCallEnded event and periodically, so a
call that ended while the controller was down, or that the controller never saw at all,
is in the record once the controller is back.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import calls, contract, keys, recordings
from .ami import AmiClient, AmiError
from .db.engine import Database
from .stamps import StampError, parse_stamp

log = logging.getLogger(__name__)


async def reconcile(ami: AmiClient, db: Database, *, node: str, spool_fallback_dir: Path,
                    recordings_dir: Path, only: str | None = None) -> int:
    """Apply every pending stamp (or just `only`); return how many were applied."""
    try:
        tree = await ami.db_get_tree(contract.DB_STAMP)
    except AmiError as exc:
        log.info("reconcile skipped: %s", exc)
        return 0
    applied = 0
    for uniqueid, value in sorted(tree.items()):
        if only is not None and uniqueid != only:
            continue
        try:
            stamp = parse_stamp(uniqueid, value)
        except StampError as exc:
            log.warning("dropping a malformed hang-up stamp (%s)", exc)
            await ami.db_del(contract.DB_STAMP, uniqueid)
            continue
        recording = _take_recording(spool_fallback_dir / f"{uniqueid}.wav",
                                    recordings_dir / "fallback" / f"{uniqueid}.wav")
        call_id, created = await calls.apply_stamp(db, node, stamp, recording)
        # Deleted only once the record is committed: a crash in between re-applies it,
        # which apply_stamp makes harmless.
        await ami.db_del(contract.DB_STAMP, uniqueid)
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
