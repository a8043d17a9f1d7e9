"""Calls with real files in a data folder, stored the way the flow leaves them."""

from __future__ import annotations

import dataclasses
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the project may not be pip-installed in the venv
    sys.path.insert(0, str(REPO))

from ivr.db.engine import Database  # noqa: E402
from ivr.db.models import (  # noqa: E402
    Call,
    CallEvent,
    IntakeField,
    OncallCallback,
    OncallLeg,
    Recording,
    Transcript,
)
from ivr.delivery.models import Delivery, DeliveryAttempt  # noqa: E402
from ivr.records import calls  # noqa: E402
from ivr.rules import RuleSet  # noqa: E402
from ivr.rules.model import Retention, frozen_map  # noqa: E402

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
SUNNY = "sunny-pediatrics"
CALLER = "+16175550142"
DOB = "1990-01-02"
WAV = b"RIFF" + bytes(996)  # 1000 bytes: what a recording weighs here


def days_ago(days: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days)


def with_retention(rules: RuleSet, practice_id: str, retention: Retention) -> RuleSet:
    """The rules with one practice's retention replaced (the validator's limits bypassed)."""
    practices = dict(rules.practices)
    practices[practice_id] = dataclasses.replace(practices[practice_id], retention=retention)
    return dataclasses.replace(rules, practices=frozen_map(practices))


def write(path: Path, data: bytes = WAV) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


async def store_call(db: Database, data_dir: Path, *, started: datetime,
                     practice_id: str | None = SUNNY, ended: bool = True,
                     fallback: bool = False, recordings: tuple[str, ...] = ("name", "reason"),
                     recording_dir: Path | None = None) -> str:
    """A finished call with intake, recordings in the data folder and a timeline."""
    uniqueid = secrets.token_hex(6)
    call_id = await calls.start_call(db, uniqueid=uniqueid, node="test",
                                     dialled="+16175550100", forwarded_from="", caller=CALLER,
                                     started_at=started)
    await calls.update_call(db, call_id, practice_id=practice_id, route="after_hours",
                            ended_at=started + timedelta(minutes=2) if ended else None,
                            end_reason="completed" if ended else None, result="done",
                            disposition="routine")
    await calls.save_intake(db, call_id, "callback", source="caller_id", value=CALLER,
                            confirmed=True)
    await calls.save_intake(db, call_id, "dob", source="keyed", value=DOB, confirmed=True)
    folder = recording_dir or data_dir / "recordings" / call_id
    for field in recordings:
        path = write(folder / f"{field}.wav")
        await calls.add_recording(db, call_id, field, path=str(path), duration_seconds=2.0,
                                  size_bytes=len(WAV), peak=9000, rms=800.0)
        await calls.save_intake(db, call_id, field, source="recording",
                                recording_path=str(path), duration_seconds=2.0)
    if fallback:
        path = write(data_dir / "recordings" / "fallback" / f"{uniqueid}.wav")
        await calls.update_call(db, call_id, fallback_recording=str(path))
    return call_id


async def rows_of(db: Database, call_id: str) -> dict[str, int]:
    """How many rows of each table belong to the call."""
    async with db.session() as s:
        counts = {}
        for name, column in (("calls", Call.id), ("call_events", CallEvent.call_id),
                             ("intake_fields", IntakeField.call_id),
                             ("recordings", Recording.call_id),
                             ("transcripts", Transcript.call_id),
                             ("oncall_callbacks", OncallCallback.call_id),
                             ("oncall_legs", OncallLeg.call_id),
                             ("deliveries", Delivery.document_id)):
            counts[name] = await s.scalar(select(func.count()).where(column == call_id))
        counts["delivery_attempts"] = await s.scalar(
            select(func.count()).select_from(DeliveryAttempt).join(Delivery)
            .where(Delivery.document_id == call_id))
    return counts
