"""A portal on a real SQLite database with calls of two practices (one full of hostile
values), a sealed recording, a pending call-back, a morning report and one user of
every role; and the log-in steps a browser takes."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import update  # noqa: E402

from ivr.accounts import store as accounts  # noqa: E402
from ivr.db.engine import Database  # noqa: E402
from ivr.db.models import Transcript  # noqa: E402
from ivr.delivery.models import FAILED, Delivery  # noqa: E402
from ivr.documents import store as documents  # noqa: E402
from ivr.oncall import callbacks  # noqa: E402
from ivr.records import calls, recordings  # noqa: E402
from ivr.rules import RuleSet, load_rules  # noqa: E402
from ivr.secure import keys  # noqa: E402
from ivr.transcribe import service as transcripts  # noqa: E402

SUNNY, MESA = "sunny-pediatrics", "mesa-family"
PASSWORD = "correct horse battery 1"
HOSTILE_CALLER = '<script>alert("caller")</script>'
HOSTILE_NUMBER = '"><img src=x onerror=alert(1)>'
HOSTILE_TOLD = "<b>told</b> & </td></tr><script>x()</script>"
HOSTILE_TRANSCRIPT = "trouble breathing <script>said()</script>"
DOB = "1990-01-02"
NY = ZoneInfo("America/New_York")


def ny(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NY).astimezone(UTC)


NOW = ny("2026-11-20 03:00")


def rules() -> RuleSet:
    result = load_rules(REPO / "routing_rules", now=NOW)
    assert result.ok and result.rules is not None
    return result.rules


def tone_wav(seconds: float = 2.0, rate: int = 8000) -> bytes:
    import math
    import struct

    frames = b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(seconds * rate)))
    return (b"RIFF" + struct.pack("<I", 36 + len(frames)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data"
            + struct.pack("<I", len(frames)) + frames)


@dataclass
class Seeded:
    data: Path
    sunny_call: str  # hostile values, a sealed recording, a pending call-back
    sunny_live: str  # in progress
    mesa_call: str
    callback_id: str
    report_id: str
    delivery_id: str  # a failed delivery of the report
    wav: bytes
    users: dict[str, str] = field(default_factory=dict)  # label -> user name


async def _call(db: Database, started: datetime, uniqueid: str, practice: str,
                caller: str, told: str, number: str, ended: bool = True) -> str:
    call_id = await calls.start_call(db, uniqueid=uniqueid, node="web-test",
                                     dialled="+16175550100", forwarded_from="",
                                     caller=caller, started_at=started)
    fields: dict[str, Any] = dict(practice_id=practice, route="after_hours",
                                  disposition="routine", caller_told=told,
                                  state_reason="outside office hours")
    if ended:
        fields.update(end_reason="completed", result="done",
                      ended_at=started + timedelta(minutes=2))
    await calls.update_call(db, call_id, **fields)
    await calls.save_intake(db, call_id, "callback", source="keyed", value=number,
                            confirmed=True)
    await calls.save_intake(db, call_id, "dob", source="keyed", value=DOB, confirmed=True)
    return call_id


async def seed(db: Database, data: Path) -> Seeded:
    ruleset = rules()
    sunny = await _call(db, ny("2026-11-20 01:10"), "u-web-1", SUNNY, HOSTILE_CALLER,
                        HOSTILE_TOLD, HOSTILE_NUMBER)
    wav = tone_wav()
    path = recordings.sealed_path(data / "recordings" / sunny / "reason.wav")
    recordings.seal_bytes(keys.current(), wav, path)
    await calls.add_recording(db, sunny, "reason", path=str(path), duration_seconds=2.0,
                              size_bytes=path.stat().st_size, peak=9000, rms=6000.0)
    await calls.save_intake(db, sunny, "reason", source="recording", recording_path=str(path),
                            duration_seconds=2.0)
    await transcripts.store(db, Transcript(
        call_id=sunny, field="reason", status="done", language="en-US", engine="whisper",
        engine_version="tiny.en", text=HOSTILE_TRANSCRIPT, confidence=0.8,
        red_flag_topic="breathing", red_flag="trouble breathing",
        created_at=ny("2026-11-20 01:11")))
    live = await _call(db, ny("2026-11-20 02:55"), "u-web-2", SUNNY, "+16175550143",
                       "", "+16175550143", ended=False)
    mesa = await _call(db, ny("2026-11-20 00:30"), "u-web-3", MESA, "+17205550199",
                       "Mesa told", "+17205550199")
    await callbacks.create(db, callback_id="cb-web-1", call_id=sunny,
                           practice=ruleset.practices[SUNNY], now=ny("2026-11-20 01:12"),
                           first_at=ny("2026-11-20 01:12"), interval_seconds=600,
                           promised=None)
    made = await documents.make_report(db, ruleset.practices[SUNNY],
                                       datetime(2026, 11, 18).date(), NOW,
                                       out_dir=data / "documents", worker="web-test")
    assert made.report_id and made.deliveries, made
    async with db.session() as s:
        await s.execute(update(Delivery).where(Delivery.id == made.deliveries[0])
                        .values(status=FAILED, last_error="fax busy"))
    out = Seeded(data, sunny, live, mesa, "cb-web-1", made.report_id, made.deliveries[0],
                 wav)
    for label, role, practice, clinician in (
            ("operator", "operator", None, None),
            ("sunny_admin", "practice_admin", SUNNY, None),
            ("sunny_desk", "front_desk", SUNNY, None),
            ("sunny_nurse", "clinician", SUNNY, "nurse-avery"),
            ("mesa_admin", "practice_admin", MESA, None),
            ("mesa_desk", "front_desk", MESA, None),
            ("mesa_doctor", "clinician", MESA, "dr-ramirez")):
        name = label.replace("_", "-")
        await accounts.add_user(db, name, PASSWORD, role, now=NOW - timedelta(days=1),
                                practice_id=practice, clinician_id=clinician)
        out.users[label] = name
    return out


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    """Log in as a browser would; returns the response after the redirect."""
    page = await client.get("/login")
    token = csrf_of(await page.text())
    return await client.post("/login", data={"csrf": token, "username": username,
                                             "password": password, "next": "/tonight"})


async def page_csrf(client: Any, path: str = "/tonight") -> str:
    response = await client.get(path)
    assert response.status == 200, response.status
    return csrf_of(await response.text())


def db_run(data: Path, fn: Any) -> Any:
    """fn(db, now) on the CLI's database under `data` (from a sync test)."""
    import asyncio

    async def go() -> Any:
        db = Database(f"sqlite+aiosqlite:///{data / 'ivr.sqlite3'}")
        await db.create()
        try:
            return await fn(db, datetime.now(UTC))
        finally:
            await db.close()

    return asyncio.run(go())
