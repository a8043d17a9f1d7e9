"""Daily, every-N-days and patterned rotations; a rotation's start."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from rules_helpers import NOW, NY, base, load_data, practice_from

from ivr.rules.oncall import on_call, resolve, timeline


def _physicians(handoff: dict, **extra) -> dict:
    data = base()
    data["on_call"]["clinicians"].append(
        {"id": "d-two", "name": "Doctor Two", "role": "physician", "phone": "+16175550324"})
    data["on_call"]["rotations"][1] = {"role": "physician", "order": ["d-one", "d-two"],
                                       "handoff": handoff, "anchor": "2026-11-16", **extra}
    return data


def _who(p, day: int, hour: int, month: int = 11) -> str | None:
    c = on_call(p, "physician", datetime(2026, month, day, hour, 0, tzinfo=NY))
    return c.id if c else None


def test_daily_rotation_alternates_at_the_handoff(tmp_path):
    p = practice_from(tmp_path, _physicians({"every_days": 1, "time": "08:00"}))
    assert [_who(p, d, 9) for d in range(16, 21)] == ["d-one", "d-two", "d-one", "d-two",
                                                      "d-one"]
    assert _who(p, 17, 7) == "d-one" and _who(p, 17, 8) == "d-two"  # 24 h from 08:00


def test_every_three_days(tmp_path):
    p = practice_from(tmp_path, _physicians({"every_days": 3, "time": "07:00"}))
    assert [_who(p, d, 12) for d in range(16, 23)] == ["d-one"] * 3 + ["d-two"] * 3 + ["d-one"]


def test_two_two_three_pattern(tmp_path):
    # 2-2-3: A A B B A A A, then B B A A B B B: a fortnight, each works 7 days in it.
    p = practice_from(tmp_path, _physicians({"pattern": [2, 2, 3], "time": "07:00"}))
    got = [_who(p, 16 + d, 12) for d in range(14)]
    assert "".join("A" if w == "d-one" else "B" for w in got) == "AABBAAABBAABBB"
    assert _who(p, 30, 12) == "d-one"  # the fortnight repeats


def test_daily_rotation_timeline_has_a_row_per_turn(tmp_path):
    p = practice_from(tmp_path, _physicians({"every_days": 1, "time": "08:00"}))
    rows = [r for r in timeline(p, datetime(2026, 11, 17, 0, 0, tzinfo=NY),
                                datetime(2026, 11, 19, 0, 0, tzinfo=NY)) if r.role == "physician"]
    assert [(r.clinician_id, r.start.astimezone(NY).hour) for r in rows] == [
        ("d-one", 0), ("d-two", 8), ("d-one", 8)]


@pytest.mark.parametrize("handoff, key, fragment", [
    ({"every_days": 0, "time": "08:00"}, "handoff.every_days", "out of range"),
    ({"pattern": [], "time": "08:00"}, "handoff.pattern", "at least one"),
    ({"pattern": [2, "x"], "time": "08:00"}, "handoff.pattern[1]", "not a number"),
    ({"weekday": "monday", "every_days": 2, "time": "08:00"}, "handoff", "exactly one of"),
    ({"time": "08:00"}, "handoff", "exactly one of"),
])
def test_handoff_errors_are_located(tmp_path, handoff, key, fragment):
    res = load_data(tmp_path, _physicians(handoff))
    matching = [e for e in res.errors if e.key == f"on_call.rotations[1].{key}".rstrip(".")
                and fragment in e.message]
    assert matching, [str(e) for e in res.errors]
    assert matching[0].line > 1 and matching[0].expected


def test_no_one_before_the_anchor(tmp_path):
    # Without a start the rotation begins at its first handoff, and never runs backwards.
    p = practice_from(tmp_path, base())
    before = datetime(2026, 10, 30, 12, 0, tzinfo=NY)
    assert on_call(p, "nurse", before) is None
    assert resolve(p, "nurse", before) == (None, "gap")
    assert on_call(p, "nurse", datetime(2026, 11, 2, 8, 0, tzinfo=NY)).id == "n-one"


def test_explicit_start(tmp_path):
    data = base()
    data["on_call"]["rotations"][0]["start"] = "2026-11-25 12:00"
    p = practice_from(tmp_path, data, now=datetime(2026, 11, 1, tzinfo=NY))
    assert on_call(p, "nurse", datetime(2026, 11, 25, 11, 59, tzinfo=NY)) is None
    # The anchor still says whose turn it is: 11-23 is the fourth week, n-two's.
    assert on_call(p, "nurse", datetime(2026, 11, 25, 12, 0, tzinfo=NY)).id == "n-two"


def test_check_warns_of_the_time_before_the_start(tmp_path):
    data = base()
    data["on_call"]["rotations"][0]["start"] = "2026-11-25 12:00"
    res = load_data(tmp_path, data, now=NOW)
    assert res.ok
    gaps = [w for w in res.warnings if "no nurse on call" in w.message]
    assert len(gaps) == 1, [str(w) for w in res.warnings]
    assert "2026-11-20T07:00-05:00 to 2026-11-25T12:00-05:00" in gaps[0].message
    assert "before the nurse rotation starts" in gaps[0].message


def test_start_must_be_a_date_time(tmp_path):
    data = base()
    data["on_call"]["rotations"][0]["start"] = "soon"
    res = load_data(tmp_path, data)
    assert [e.key for e in res.errors] == ["on_call.rotations[0].start"]


def test_rotation_without_start_at_a_later_now_warns_nothing(tmp_path):
    res = load_data(tmp_path, base(), now=NOW + timedelta(days=200))
    assert res.ok and not res.warnings, [str(w) for w in res.warnings]
