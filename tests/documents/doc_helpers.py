"""Call records for the documents tests: as dicts (pure tests) and stored (database tests)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ivr.db.engine import Database  # noqa: E402
from ivr.records import calls  # noqa: E402

NY = ZoneInfo("America/New_York")


def ny(text: str) -> datetime:
    """'2026-11-26 21:41' New York wall time -> aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=NY).astimezone(UTC)


def record(call_id: str, started: datetime, **fields: Any) -> dict[str, Any]:
    """A call dict shaped like ivr.records.calls.show_call's, with a complete intake by default."""
    rec_dir = f"/data/recordings/{call_id}"
    base: dict[str, Any] = {
        "id": call_id, "uniqueid": f"u-{call_id}", "practice_id": "sunny-pediatrics",
        "route": "after_hours", "started_at": started.isoformat(),
        "ended_at": (started + timedelta(minutes=2)).isoformat(), "end_reason": "completed",
        "result": "done", "disposition": "routine", "state_reason": "outside office hours",
        "caller_told": "Your message has been recorded.", "operator_flag": False,
        "same_day_callback": False, "abandoned_step": None, "fallback_recording": None,
        "reconciled_at": (started + timedelta(minutes=2)).isoformat(),
        "intake": {
            "callback": {"field": "callback", "value": "+16175550142", "confirmed": True,
                         "source": "caller_id"},
            "dob": {"field": "dob", "value": "1990-01-02", "confirmed": True,
                    "source": "keyed"},
            "name": {"field": "name", "recording_path": f"{rec_dir}/name.wav",
                     "duration_seconds": 2.4, "source": "recording", "confirmed": False},
            "reason": {"field": "reason", "recording_path": f"{rec_dir}/reason.wav",
                       "duration_seconds": 7.25, "source": "recording", "confirmed": False},
        },
        "recordings": [
            {"field": "name", "path": f"{rec_dir}/name.wav", "duration_seconds": 2.4,
             "size_bytes": 38444},
            {"field": "reason", "path": f"{rec_dir}/reason.wav", "duration_seconds": 7.25,
             "size_bytes": 116044},
        ],
        "timeline": [],
    }
    base.update(fields)
    return base


async def store_call(db: Database, *, started: datetime, practice_id: str | None =
                     "sunny-pediatrics", route: str = "after_hours",
                     disposition: str | None = "routine", caller: str = "+16175550142",
                     abandoned_step: str | None = None, operator_flag: bool = False,
                     end_reason: str = "completed", dob: str | None = "1990-01-02",
                     uniqueid: str | None = None) -> str:
    """A call stored through ivr.records.calls, as the flow would leave it."""
    call_id = await calls.start_call(db, uniqueid=uniqueid or f"u{started.timestamp()}",
                                     node="test", dialled="+16175550100", forwarded_from="",
                                     caller=caller, started_at=started)
    await calls.update_call(db, call_id, practice_id=practice_id, route=route,
                            disposition=disposition, abandoned_step=abandoned_step,
                            operator_flag=operator_flag, end_reason=end_reason,
                            result="done", ended_at=started + timedelta(minutes=2),
                            caller_told="We will call you back.")
    await calls.save_intake(db, call_id, "callback", source="caller_id", value=caller,
                            confirmed=True)
    if dob:
        await calls.save_intake(db, call_id, "dob", source="keyed", value=dob,
                                confirmed=True)
    path = f"/data/recordings/{call_id}/reason.wav"
    await calls.save_intake(db, call_id, "reason", source="recording", recording_path=path,
                            duration_seconds=6.5)
    await calls.add_recording(db, call_id, "reason", path=path, duration_seconds=6.5,
                              size_bytes=104044, peak=12000, rms=900.0)
    return call_id
