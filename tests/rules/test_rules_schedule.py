"""Schedule engine: precedence, midnight-crossing periods, holidays, overrides, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rules_helpers import DENVER, NY, base, practice_from

from ivr.rules import Override
from ivr.rules.schedule import next_opening, state_at


def test_weekday_hours(sunny):
    st = state_at(sunny, datetime(2026, 11, 24, 10, 0, tzinfo=NY))
    assert (st.kind, st.is_open) == ("open", True)
    assert st.next_change == datetime(2026, 11, 24, 17, 0, tzinfo=NY)
    st = state_at(sunny, datetime(2026, 11, 24, 17, 0, tzinfo=NY))  # end is exclusive
    assert st.kind == "closed"
    assert st.next_change == datetime(2026, 11, 25, 8, 0, tzinfo=NY)


def test_lunch_break_is_a_change(sunny):
    st = state_at(sunny, datetime(2026, 11, 25, 11, 0, tzinfo=NY))  # Wednesday
    assert st.next_change == datetime(2026, 11, 25, 12, 0, tzinfo=NY)


def test_naive_instant_refused(sunny):
    with pytest.raises(ValueError):
        state_at(sunny, datetime(2026, 11, 24, 10, 0))


def test_period_crossing_midnight(mesa):
    fri = datetime(2026, 11, 20, 23, 0, tzinfo=DENVER)
    st = state_at(mesa, fri)
    assert st.kind == "open"
    assert st.next_change == datetime(2026, 11, 21, 0, 30, tzinfo=DENVER)
    assert state_at(mesa, datetime(2026, 11, 21, 0, 15, tzinfo=DENVER)).is_open  # Saturday
    assert not state_at(mesa, datetime(2026, 11, 21, 0, 30, tzinfo=DENVER)).is_open


def test_night_period_is_one_period(tmp_path):
    data = base()
    data["hours"] = {"monday": ["17:00-08:00"]}
    p = practice_from(tmp_path, data)
    st = state_at(p, datetime(2026, 11, 23, 18, 0, tzinfo=NY))
    assert st.is_open and st.next_change == datetime(2026, 11, 24, 8, 0, tzinfo=NY)
    assert state_at(p, datetime(2026, 11, 24, 3, 0, tzinfo=NY)).is_open  # Tuesday early
    assert not state_at(p, datetime(2026, 11, 23, 3, 0, tzinfo=NY)).is_open  # Monday early


def test_thanksgiving(sunny):
    st = state_at(sunny, datetime(2026, 11, 26, 10, 0, tzinfo=NY))
    assert (st.kind, st.is_open, st.reason) == ("holiday", False, "holiday: Thanksgiving Day")
    assert st.next_change == datetime(2026, 11, 27, 0, 0, tzinfo=NY)
    assert next_opening(sunny, datetime(2026, 11, 26, 21, 30, tzinfo=NY)) == datetime(
        2026, 11, 27, 8, 0, tzinfo=NY)


def test_observed_holiday_saturday_to_friday(mesa):
    # July 4th 2026 is a Saturday; Colorado observes it on Friday July 3rd.
    st = state_at(mesa, datetime(2026, 7, 3, 10, 0, tzinfo=DENVER))
    assert st.kind == "holiday" and "observed" in st.reason


def test_excluded_public_holiday_stays_open(sunny):
    # Sunny excludes Veterans Day (Wednesday 2026-11-11).
    assert state_at(sunny, datetime(2026, 11, 11, 10, 0, tzinfo=NY)).kind == "open"


def test_partial_custom_holiday(sunny):
    assert state_at(sunny, datetime(2026, 12, 24, 11, 0, tzinfo=NY)).kind == "open"
    st = state_at(sunny, datetime(2026, 12, 24, 12, 0, tzinfo=NY))
    assert st.kind == "holiday" and st.reason == "holiday: Christmas Eve"
    # Closed from noon through Christmas Day, opening again on the 26th (Saturday 09:00).
    assert next_opening(sunny, st.next_change) == datetime(2026, 12, 26, 9, 0, tzinfo=NY)


def test_mid_day_holiday_window(mesa):
    # 2026-07-24 is a Friday: closed only between 12:00 and 16:00.
    assert state_at(mesa, datetime(2026, 7, 24, 11, 0, tzinfo=DENVER)).kind == "open"
    assert state_at(mesa, datetime(2026, 7, 24, 11, 59, tzinfo=DENVER)).kind == "open"
    st = state_at(mesa, datetime(2026, 7, 24, 13, 0, tzinfo=DENVER))
    assert st.kind == "holiday" and st.next_change == datetime(2026, 7, 24, 16, 0, tzinfo=DENVER)


def test_rules_override_open_on_saturday(sunny):
    st = state_at(sunny, datetime(2026, 12, 5, 13, 0, tzinfo=NY))
    assert (st.kind, st.is_open) == ("override", True)
    assert st.reason == "override: Saturday flu-shot clinic"
    assert st.next_change == datetime(2026, 12, 5, 15, 0, tzinfo=NY)


def test_manual_override_beats_everything(sunny):
    at = datetime(2026, 12, 5, 13, 0, tzinfo=NY)
    snow = Override(datetime(2026, 12, 5, 6, 0, tzinfo=NY), None, False, "snow day", manual=True)
    st = state_at(sunny, at, (snow,))
    assert (st.kind, st.is_open, st.reason) == ("override", False, "manual override: snow day")
    assert st.next_change is None  # until cleared
    opened = Override(datetime(2026, 11, 26, 9, 0, tzinfo=NY),
                      datetime(2026, 11, 26, 12, 0, tzinfo=NY), True, "holiday clinic")
    st = state_at(sunny, datetime(2026, 11, 26, 10, 0, tzinfo=NY), (opened,))
    assert st.is_open and st.next_change == datetime(2026, 11, 26, 12, 0, tzinfo=NY)
    assert state_at(sunny, datetime(2026, 11, 26, 12, 0, tzinfo=NY), (opened,)).kind == "holiday"


def test_manual_override_order(sunny):
    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=NY)
    closed = Override(t0, None, False, "night mode")
    reopened = Override(t0 + timedelta(minutes=30), None, True, "back")
    assert not state_at(sunny, t0, (closed, reopened)).is_open
    assert state_at(sunny, t0 + timedelta(hours=1), (closed, reopened)).is_open


# ---- DST: America/New_York 2026-11-01 (01:00-02:00 happens twice),
#      2027-03-14 (02:00-03:00 skipped)

def _night(tmp_path, period):
    data = base()
    data["hours"] = {"sunday": [period]}
    return practice_from(tmp_path, data)


def test_fall_back_repeated_hour(tmp_path):
    p = _night(tmp_path, "01:30-03:00")
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT (first time)
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST (second time)
    assert state_at(p, first - timedelta(minutes=1)).kind == "closed"
    st = state_at(p, first)
    assert st.is_open
    assert state_at(p, second).is_open
    # 03:00 EST is 08:00Z: the period lasts 2.5 real hours that night.
    assert st.next_change == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def test_spring_forward_missing_hour(tmp_path):
    p = _night(tmp_path, "02:30-04:00")
    # 02:30 does not exist on 2027-03-14: it is taken as 03:30 EDT (07:30Z).
    assert state_at(p, datetime(2027, 3, 14, 7, 0, tzinfo=UTC)).kind == "closed"  # 03:00 EDT
    st = state_at(p, datetime(2027, 3, 14, 7, 30, tzinfo=UTC))
    assert st.is_open and st.next_change == datetime(2027, 3, 14, 4, 0, tzinfo=NY)


def test_day_length_on_dst_days(tmp_path):
    data = base()
    data["hours"] = {"sunday": ["00:00-24:00"]}
    p = practice_from(tmp_path, data)
    for day, hours in (((2026, 11, 1), 25), ((2027, 3, 14), 23)):
        st = state_at(p, datetime(*day, 0, 0, tzinfo=NY))
        assert st.is_open
        assert (st.next_change - datetime(*day, 0, 0, tzinfo=NY)).total_seconds() == hours * 3600


def test_next_opening_when_open_is_now(sunny):
    at = datetime(2026, 11, 24, 10, 0, tzinfo=NY)
    assert next_opening(sunny, at) == at


def test_never_open(tmp_path):
    data = base()
    data["hours"] = {}
    data["holidays"] = {"country": "none"}
    p = practice_from(tmp_path, data)
    st = state_at(p, datetime(2026, 11, 24, 10, 0, tzinfo=NY))
    assert st.kind == "closed" and st.next_change is None
    assert next_opening(p, datetime(2026, 11, 24, 10, 0, tzinfo=NY)) is None
