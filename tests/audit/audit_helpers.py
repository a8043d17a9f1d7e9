"""Seeded calls for the audit tests, the audit entries as the CLI left them, and the
patient data that must never appear in an entry."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the project may not be pip-installed in the venv
    sys.path.insert(0, str(REPO))

from ivr.db.engine import Database  # noqa: E402
from ivr.records import audit, calls  # noqa: E402

SUNNY = "sunny-pediatrics"
NIGHT = "2026-11-19"
CALLER = "+16175550142"
DOB = "1990-01-02"
# What an entry must never carry: the caller's number (any spelling), the date of birth,
# recording paths, what the caller was told.
PATIENT_DATA = (CALLER, CALLER[2:], DOB, "01021990", "recordings/", "We will call you back")


def ny(text: str) -> datetime:
    """'2026-11-19 21:00' New York wall time -> aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("America/New_York")) \
        .astimezone(UTC)


def db_url(data: Path) -> str:
    """The CLI's database: IVR_DB_URL when the test set one (PostgreSQL), else the data
    folder's SQLite file."""
    return os.environ.get("IVR_DB_URL") or f"sqlite+aiosqlite:///{data / 'ivr.sqlite3'}"


async def store_call(db: Database, *, started: datetime, uniqueid: str,
                     recording: bool = True) -> str:
    """A finished routine call with a full intake, as the flow leaves it."""
    call_id = await calls.start_call(db, uniqueid=uniqueid, node="test",
                                     dialled="+16175550100", forwarded_from="",
                                     caller=CALLER, started_at=started)
    await calls.update_call(db, call_id, practice_id=SUNNY, route="after_hours",
                            disposition="routine", end_reason="completed", result="done",
                            ended_at=started + timedelta(minutes=2),
                            caller_told="We will call you back.")
    await calls.save_intake(db, call_id, "callback", source="caller_id", value=CALLER,
                            confirmed=True)
    await calls.save_intake(db, call_id, "dob", source="keyed", value=DOB, confirmed=True)
    if recording:  # a path outside any test's data folder: retention would keep the call
        path = f"/data/recordings/{call_id}/reason.wav"
        await calls.save_intake(db, call_id, "reason", source="recording",
                                recording_path=path, duration_seconds=6.5)
    return call_id


def entries(data: Path, **filters: Any) -> list[dict[str, Any]]:
    """The audit entries in the CLI's database, newest first (from a sync test)."""
    async def read() -> list[dict[str, Any]]:
        db = Database(db_url(data))
        await db.create()
        try:
            return await audit.read(db, limit=1000, **filters)
        finally:
            await db.close()

    return asyncio.run(read())


def assert_no_patient_data(rows: list[dict[str, Any]]) -> None:
    text = json.dumps(rows)
    leaked = [marker for marker in PATIENT_DATA if marker in text]
    assert not leaked, f"patient data in the audit log: {leaked}"
