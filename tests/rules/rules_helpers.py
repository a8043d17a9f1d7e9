"""Helpers for the rules tests: a small valid practice to mutate, and loaders."""

from __future__ import annotations

import copy
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the project may not be pip-installed in the venv
    sys.path.insert(0, str(REPO))

from ivr.rules import LoadResult, load_rules  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = REPO / "routing_rules"
NY = ZoneInfo("America/New_York")
DENVER = ZoneInfo("America/Denver")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

BASE: dict[str, Any] = {
    "practice": {
        "id": "test-practice",
        "name": "Test Practice",
        "timezone": "America/New_York",
        "country": "US",
        "subdivision": "MA",
        "dids": ["+16175550300"],
        "forwarding_numbers": ["+16175550311"],
    },
    "hours": {d: ["08:00-17:00"] for d in ("monday", "tuesday", "wednesday", "thursday", "friday")},
    "triage": {"keys": {"1": "urgent", "4": "routine", "9": "emergency"}, "default": "urgent",
               "retries": 1},
    "on_call": {
        "clinicians": [
            {"id": "n-one", "name": "Nurse One", "role": "nurse", "phone": "+16175550321"},
            {"id": "n-two", "name": "Nurse Two", "role": "nurse", "phone": "+16175550322"},
            {"id": "d-one", "name": "Doctor One", "role": "physician", "phone": "+16175550323"},
        ],
        "rotations": [
            {"role": "nurse", "order": ["n-one", "n-two"],
             "handoff": {"weekday": "monday", "time": "08:00"}, "anchor": "2026-11-02"},
            {"role": "physician", "order": ["d-one"],
             "handoff": {"weekday": "monday", "time": "08:00"}, "anchor": "2026-11-02"},
        ],
        "escalation": [{"role": "nurse", "ring_seconds": 20, "attempts": 2},
                       {"role": "physician", "ring_seconds": 30}],
    },
}


def base() -> dict[str, Any]:
    """A deep copy of the small valid practice, to modify in a test."""
    return copy.deepcopy(BASE)


def load_data(tmp_path: Path, data: dict[str, Any], name: str = "p.yaml",
              now: datetime = NOW) -> LoadResult:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_rules(path, now=now)


def load_text(tmp_path: Path, text: str, name: str = "p.yaml", now: datetime = NOW) -> LoadResult:
    path = tmp_path / name
    path.write_text(text)
    return load_rules(path, now=now)


def practice_from(tmp_path: Path, data: dict[str, Any], now: datetime = NOW):
    res = load_data(tmp_path, data, now=now)
    assert res.ok, [str(e) for e in res.errors]
    assert res.rules is not None
    return next(iter(res.rules.practices.values()))


