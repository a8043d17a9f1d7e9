"""On-call engine: rotation handoffs (also inside DST changes), shifts, iCal, dial lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rules_helpers import DENVER, NOW, NY, base, load_data, practice_from

from ivr.rules.oncall import (
    callback_chain,
    dial_list,
    fallback_numbers,
    max_attempts,
    on_call,
    rings,
    step_for,
    timeline,
)


def test_rotation_handoff_exact_boundary(tmp_path):
    p = practice_from(tmp_path, base())
    handoff = datetime(2026, 11, 9, 8, 0, tzinfo=NY)  # second week after the anchor
    assert on_call(p, "nurse", handoff - timedelta(microseconds=1)).id == "n-one"
    assert on_call(p, "nurse", handoff).id == "n-two"
    assert on_call(p, "nurse", handoff + timedelta(days=7)).id == "n-one"
    # Before the anchor's week nobody is on call from the rotation (it never runs backwards).
    assert on_call(p, "nurse", datetime(2026, 10, 30, 12, 0, tzinfo=NY)) is None


def test_anchor_mid_week(tmp_path):
    data = base()
    data["on_call"]["rotations"][0]["anchor"] = "2026-11-05"  # Thursday: week from Mon 11-02
    p = practice_from(tmp_path, data)
    assert on_call(p, "nurse", datetime(2026, 11, 2, 8, 0, tzinfo=NY)).id == "n-one"


def _rotation_at(tmp_path, weekday, time):
    data = base()
    data["on_call"]["rotations"][0]["handoff"] = {"weekday": weekday, "time": time}
    data["on_call"]["rotations"][0]["anchor"] = "2026-10-25"  # n-one's week starts Sun 10-25
    return practice_from(tmp_path, data)


def test_handoff_in_repeated_hour(tmp_path):
    # 2026-11-01 01:30 happens twice in New York; the handoff is the first one (EDT).
    p = _rotation_at(tmp_path, "sunday", "01:30")
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert on_call(p, "nurse", first - timedelta(seconds=1)).id == "n-one"
    assert on_call(p, "nurse", first).id == "n-two"
    assert on_call(p, "nurse", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)).id == "n-two"  # 01:30 EST


def test_handoff_in_missing_hour(tmp_path):
    # 2027-03-14 02:30 does not exist; the handoff happens at 03:30 EDT (07:30Z).
    p = _rotation_at(tmp_path, "sunday", "02:30")
    weeks = (datetime(2027, 3, 14).date() - datetime(2026, 10, 25).date()).days // 7
    before, after = ("n-one", "n-two") if weeks % 2 == 1 else ("n-two", "n-one")
    assert on_call(p, "nurse", datetime(2027, 3, 14, 7, 0, tzinfo=UTC)).id == before
    assert on_call(p, "nurse", datetime(2027, 3, 14, 7, 30, tzinfo=UTC)).id == after


def test_explicit_shift_over_rotation(sunny):
    at = datetime(2026, 11, 26, 2, 0, tzinfo=NY)
    assert on_call(sunny, "physician", at).id == "dr-lindqvist"
    assert on_call(sunny, "physician", datetime(2026, 11, 27, 8, 0, tzinfo=NY)).id == "dr-patel"
    assert on_call(sunny, "physician", datetime(2026, 11, 25, 16, 59, tzinfo=NY)).id == "dr-patel"


def test_dst_weekend_shift(sunny):
    # Sat 17:00 EST to Mon 08:00 EDT spans the 2027-03-14 change: 38 real hours, not 39.
    rows = [r for r in timeline(sunny, datetime(2027, 3, 13, tzinfo=NY),
                                datetime(2027, 3, 16, tzinfo=NY)) if r.source == "shift"]
    assert len(rows) == 1 and rows[0].clinician_id == "dr-okafor"
    assert rows[0].end - rows[0].start == timedelta(hours=38)


def test_ical_events(mesa):
    # One-off event over Thanksgiving weekend (America/Denver TZID).
    thanksgiving_night = datetime(2026, 11, 27, 3, 0, tzinfo=DENVER)
    assert on_call(mesa, "physician", thanksgiving_night).id == "dr-ramirez"
    # All-day event: Dec 24-26 local.
    assert on_call(mesa, "physician", datetime(2026, 12, 26, 23, 59, tzinfo=DENVER)).id == "dr-holt"
    # Monthly recurrence: first Friday night of March 2027 (03-05), not part of the rotation.
    fri = datetime(2027, 3, 5, 22, 0, tzinfo=DENVER)
    assert on_call(mesa, "physician", fri).id == "dr-nguyen"
    src = [r.source for r in timeline(mesa, fri, fri + timedelta(hours=1))]
    assert src == ["ical"]
    assert mesa.on_call.ical_file == "mesa-family-oncall.ics"


def test_ical_unknown_clinician(tmp_path):
    (tmp_path / "x.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        "DTSTAMP:20261101T000000Z\r\nDTSTART:20261201T000000Z\r\nDTEND:20261202T000000Z\r\n"
        "SUMMARY:On call: somebody-else\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    data = base()
    data["on_call"]["ical"] = {"file": "x.ics"}
    res = load_data(tmp_path, data)
    assert [e.key for e in res.errors] == ["on_call.ical.file"]
    assert "names no known clinician" in res.errors[0].message


def test_ical_custom_property_and_missing_file(tmp_path):
    (tmp_path / "y.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        "DTSTAMP:20261101T000000Z\r\nDTSTART:20261201T000000Z\r\nDTEND:20261202T000000Z\r\n"
        "SUMMARY:Weekend cover\r\nX-CLINICIAN:n-two\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    data = base()
    data["on_call"]["ical"] = {"file": "y.ics", "clinician_from": "X-CLINICIAN"}
    p = practice_from(tmp_path, data)
    assert on_call(p, "nurse", datetime(2026, 12, 1, 12, 0, tzinfo=UTC)).id == "n-two"
    data["on_call"]["ical"] = {"file": "missing.ics"}
    res = load_data(tmp_path, data)
    assert [e.key for e in res.errors] == ["on_call.ical.file"]


def test_dial_list_order_and_attempts(sunny):
    steps = dial_list(sunny, datetime(2026, 11, 24, 22, 0, tzinfo=NY))
    assert [(s.clinician_id, s.attempt, s.step_index, s.ring_seconds) for s in steps] == [
        ("nurse-avery", 1, 0, 25), ("nurse-avery", 2, 0, 25),
        ("dr-patel", 1, 1, 30), ("dr-patel", 2, 1, 30),
        ("dr-lindqvist", 1, 2, 30)]
    assert all(s.number.startswith("+1617555012") for s in steps)


def test_fallback_numbers(sunny, mesa):
    at = datetime(2026, 11, 24, 22, 0, tzinfo=NY)
    assert fallback_numbers(sunny, at) == ("+16175550121", "+16175550124")
    # Mesa names no list: the chain's numbers, the physician on call first, then the
    # others its `together` step rings.
    mesa_numbers = fallback_numbers(mesa, at)
    assert mesa_numbers[0] == on_call(mesa, "physician", at).phone
    assert sorted(mesa_numbers) == ["+17205550221", "+17205550222", "+17205550223"]


def test_gap_skips_step(tmp_path):
    data = base()
    data["on_call"]["rotations"] = [data["on_call"]["rotations"][1]]
    res = load_data(tmp_path, data)
    assert res.ok and res.warnings  # nurse never covered: warned
    p = res.rules.practices["test-practice"]
    assert on_call(p, "nurse", NOW) is None
    assert [s.clinician_id for s in dial_list(p, NOW)] == ["d-one"]


def test_timeline_merges_and_reports_gaps(tmp_path):
    data = base()
    data["on_call"]["rotations"] = [data["on_call"]["rotations"][1]]
    data["on_call"]["shifts"] = [{"clinician": "n-one", "start": "2026-11-21 08:00",
                                  "end": "2026-11-22 08:00"}]
    p = practice_from(tmp_path, data)
    rows = timeline(p, datetime(2026, 11, 21, tzinfo=NY), datetime(2026, 11, 23, tzinfo=NY))
    nurse = [(r.clinician_id, r.source) for r in rows if r.role == "nurse"]
    assert nurse == [(None, "gap"), ("n-one", "shift"), (None, "gap")]
    phys = [r for r in rows if r.role == "physician"]
    assert len(phys) == 1 and phys[0].clinician_id == "d-one"


def test_examples_have_no_gaps_2026_11_to_2027_12(examples):
    for practice in examples.practices.values():
        start = datetime(2026, 11, 1, tzinfo=UTC)
        rows = timeline(practice, start, datetime(2028, 1, 31, tzinfo=UTC))
        assert not [r for r in rows if r.clinician_id is None], practice.id


def test_together_step_is_one_ring_per_attempt(tmp_path):
    data = base()
    data["on_call"]["escalation"] = [
        {"role": "nurse", "ring_seconds": 20},
        # The nurse on call (n-one this week) is also named: rung once, not twice.
        {"together": [{"role": "physician"}, {"clinician": "n-two"}, {"clinician": "n-one"},
                      {"role": "nurse"}], "ring_seconds": 30, "attempts": 2},
    ]
    p = practice_from(tmp_path, data)
    steps = dial_list(p, datetime(2026, 11, 4, 21, 0, tzinfo=NY))
    assert [(s.ring, s.clinician_id, s.attempt) for s in steps] == [
        (0, "n-one", 1),
        (1, "d-one", 1), (1, "n-two", 1), (1, "n-one", 1),
        (2, "d-one", 2), (2, "n-two", 2), (2, "n-one", 2),
    ]
    assert [len(r) for r in rings(steps)] == [1, 3, 3]
    assert {s.ring_seconds for s in rings(steps)[1]} == {30}
    # Fallback numbers (controller down) are every distinct number, in order.
    assert fallback_numbers(p, NOW) == ("+16175550321", "+16175550323", "+16175550322")


def test_callback_schedule_from_the_rules(tmp_path):
    data = base()  # chain: nurse x2 attempts, physician x1
    data["on_call"]["when_exhausted"] = {"action": "callback_until_acknowledged",
                                         "renotify_minutes": 2, "attempts_per_person": 5}
    p = practice_from(tmp_path, data)
    at = datetime(2026, 11, 4, 21, 0, tzinfo=NY)
    chain = callback_chain(p, at)
    # Each person once (a step's attempts are rings of the live search).
    assert [s.clinician_id for s in chain] == ["n-one", "d-one"]
    # Every 2 minutes the same nurse, and the physician from the 10th minute on.
    who = [step_for(chain, n, 5).clinician_id for n in range(1, 12)]
    assert who == ["n-one"] * 5 + ["d-one"] * 5 + ["n-one"]
    assert max_attempts(p, at) == 20  # two rounds of 2 people x 5 calls
    data["on_call"]["when_exhausted"]["max_attempts"] = 7
    assert max_attempts(practice_from(tmp_path, data), at) == 7
    data["on_call"]["when_exhausted"]["attempts_per_person"] = 0
    res = load_data(tmp_path, data)
    assert [e.key for e in res.errors] == ["on_call.when_exhausted.attempts_per_person"]
