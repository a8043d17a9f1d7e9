"""The morning report (pure): which night, across DST and holidays; order; counts."""

from __future__ import annotations

import json
from datetime import date, timedelta

from doc_helpers import NY, ny, record

from ivr.documents.note import NA_ABANDONED, NA_NOT_REACHED, NA_OPERATOR, NA_PENDING
from ivr.documents.report import build_report, due_nights, night_of, night_window
from ivr.rules.model import Override


def _local(instant):
    return instant.astimezone(NY).strftime("%a %Y-%m-%d %H:%M %Z")


def test_thanksgiving_night_runs_from_wednesday_closing_to_friday_opening(sunny):
    w = night_window(sunny, date(2026, 11, 26))
    assert w.night == date(2026, 11, 26)
    assert _local(w.closing) == "Wed 2026-11-25 19:00 EST"  # late clinic on Wednesdays
    assert _local(w.opening) == "Fri 2026-11-27 08:00 EST"  # Thanksgiving closed all day
    assert _local(w.covers_from) == "Wed 2026-11-25 08:00 EST"  # the day's overflow too
    # Asked for by the evening it starts, it is the same night (one name per night).
    assert night_window(sunny, date(2026, 11, 25)) == w


def test_the_night_daylight_saving_ends(sunny):
    # Saturday 2026-10-31 closes at noon EDT; Monday 2026-11-02 opens at 08:00 EST.
    w = night_window(sunny, date(2026, 10, 31))
    assert w.night == date(2026, 11, 1)  # named after the evening before the morning
    assert _local(w.closing) == "Sat 2026-10-31 12:00 EDT"
    assert _local(w.opening) == "Mon 2026-11-02 08:00 EST"
    assert w.opening - w.closing == timedelta(hours=45)  # 44 wall-clock hours + 1


def test_the_night_daylight_saving_starts(sunny):
    w = night_window(sunny, date(2027, 3, 13))
    assert _local(w.closing) == "Sat 2027-03-13 12:00 EST"
    assert _local(w.opening) == "Mon 2027-03-15 08:00 EDT"
    assert w.opening - w.closing == timedelta(hours=43)


def test_a_lunch_break_is_no_night(sunny):
    w = night_window(sunny, date(2026, 11, 24))  # Tuesday; Wednesday has a lunch break
    assert _local(w.opening) == "Wed 2026-11-25 08:00 EST"
    nxt = night_window(sunny, date(2026, 11, 25))
    assert nxt.covers_from == w.opening  # Wednesday's 12:00-13:00 is inside the day


def test_nights_partition_time_so_every_call_is_in_one_report(sunny):
    day, previous = date(2026, 10, 20), None
    seen = set()
    while day < date(2027, 1, 20):  # Thanksgiving, Christmas Eve/Day, New Year's, DST
        w = night_window(sunny, day)
        if w.night not in seen:
            if previous is not None:
                assert w.covers_from == previous.opening, w
            assert w.covers_from < w.opening
            assert w.closing is None or w.covers_from <= w.closing < w.opening
            previous = w
            seen.add(w.night)
        day += timedelta(days=1)


def test_a_manual_snow_day_makes_the_night_longer(sunny):
    snow = Override(ny("2026-11-27 00:00"), ny("2026-11-28 00:00"), False, "snow", True)
    w = night_window(sunny, date(2026, 11, 26), (snow,))
    assert _local(w.opening) == "Sat 2026-11-28 09:00 EST"
    assert w.night == date(2026, 11, 27)


def test_the_previous_report_end_is_where_the_next_one_starts(sunny):
    start = ny("2026-11-21 09:00")  # the last report ended on Saturday's opening
    w = night_window(sunny, date(2026, 11, 26), previous_end=start)
    assert w.covers_from == start and _local(w.closing) == "Wed 2026-11-25 19:00 EST"


def test_night_of_an_instant(sunny):
    assert night_of(sunny, ny("2026-11-26 21:41")).night == date(2026, 11, 26)
    assert night_of(sunny, ny("2026-11-25 10:00")).night == date(2026, 11, 26)  # overflow
    assert night_of(sunny, ny("2026-11-27 07:59")).night == date(2026, 11, 26)
    assert night_of(sunny, ny("2026-11-27 08:00")).night == date(2026, 11, 27)


def test_due_nights(sunny):
    after = ny("2026-11-24 21:00")
    assert due_nights(sunny, ny("2026-11-27 07:59"), after=after) == \
        [night_window(sunny, date(2026, 11, 24))]
    nights = due_nights(sunny, ny("2026-11-28 10:00"), after=after)
    assert [w.night for w in nights] == [date(2026, 11, 24), date(2026, 11, 26),
                                         date(2026, 11, 27)]
    assert due_nights(sunny, ny("2026-11-28 10:00"), after=nights[-1].opening) == []


def test_needs_action_first_then_every_call_in_time_order(sunny):
    w = night_window(sunny, date(2026, 11, 26))
    calls = [
        record("routine", ny("2026-11-25 20:00")),
        record("abandoned", ny("2026-11-25 21:00"), disposition=None,
               end_reason="caller_hangup", abandoned_step="triage"),
        record("operator", ny("2026-11-25 22:00"), operator_flag=True, disposition=None),
        record("pending", ny("2026-11-26 01:00"), disposition="urgent",
               oncall_outcome="callback_pending"),
        record("unreached", ny("2026-11-26 03:00"), disposition="urgent",
               oncall_outcome="not_acknowledged"),
        record("connected", ny("2026-11-26 04:00"), disposition="emergency",
               oncall_outcome="connected", oncall_clinician="dr-lindqvist"),
        record("overflow", ny("2026-11-25 10:00"), route="overflow",
               disposition="appointment"),
        record("too-early", ny("2026-11-25 07:59")),  # the previous report's
        record("too-late", ny("2026-11-27 08:00")),  # the next report's
    ]
    report = build_report(sunny, w, reversed(calls), ny("2026-11-27 08:00"))
    assert [n.call_id for n in report.notes] == [
        "overflow", "routine", "abandoned", "operator", "pending", "unreached", "connected"]
    assert [(n.call_id, n.needs_action[0]) for n in report.needs_action] == [
        ("unreached", NA_NOT_REACHED), ("pending", NA_PENDING),
        ("abandoned", NA_ABANDONED), ("operator", NA_OPERATOR)]
    assert report.by_disposition == {"appointment": 1, "emergency": 1, "none": 2,
                                     "routine": 1, "urgent": 2}
    assert report.by_outcome == {"abandoned": 1, "callback_pending": 1, "connected": 1,
                                 "message_taken": 2, "not_acknowledged": 1, "operator": 1}
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["id"] == "sunny-pediatrics:2026-11-26"
    assert doc["counts"]["calls"] == 7 and doc["counts"]["needs_action"] == 4
    assert [c["call_id"] for c in doc["needs_action"]] == [
        "unreached", "pending", "abandoned", "operator"]
    assert doc["window"]["opening"]["local"] == "2026-11-27T08:00-05:00"
    assert doc["calls"][0]["call_id"] == "overflow"


def test_an_empty_night_is_still_a_report(sunny):
    report = build_report(sunny, night_window(sunny, date(2026, 11, 26)), [],
                          ny("2026-11-27 08:00"))
    assert report.notes == () and report.to_json()["counts"]["calls"] == 0


def test_a_report_made_before_the_night_is_over_says_it_is_preliminary(sunny):
    w = night_window(sunny, date(2026, 11, 26))
    call = record("p1", w.closing + timedelta(hours=2))
    early = build_report(sunny, w, [call], w.opening - timedelta(hours=3))
    assert early.preliminary and "PRELIMINARY, the night is not over" in early.title
    assert early.to_json()["preliminary"] is True
    done = build_report(sunny, w, [call], w.opening + timedelta(minutes=5))
    assert not done.preliminary and "PRELIMINARY" not in done.title
    assert done.to_json()["preliminary"] is False
