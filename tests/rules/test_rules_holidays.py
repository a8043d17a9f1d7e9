"""Public holidays and the practice's own dates combine; holiday names are checked."""

from __future__ import annotations

from datetime import datetime

from rules_helpers import DENVER, base, load_data, practice_from

from ivr.rules.schedule import state_at


def _colorado(data: dict) -> dict:
    data["practice"]["timezone"] = "America/Denver"
    data["practice"]["subdivision"] = "CO"
    return data


def test_practice_date_on_an_observed_public_holiday_keeps_the_whole_day_closed(tmp_path):
    # Christmas 2027 is a Saturday: Colorado observes it on Friday 24 December, the day
    # the practice itself closes only from noon. The most closed of the two wins.
    data = _colorado(base())
    data["holidays"] = {"dates": [{"date": "12-24", "name": "Christmas Eve",
                                   "closed_from": "12:00"}]}
    p = practice_from(tmp_path, data)
    st = state_at(p, datetime(2027, 12, 24, 10, 0, tzinfo=DENVER))
    assert (st.kind, st.is_open) == ("holiday", False)
    assert "Christmas Day (observed)" in st.reason
    assert st.next_change == datetime(2027, 12, 25, 0, 0, tzinfo=DENVER)
    # A year without the observed day: the practice's own partial closing alone.
    assert state_at(p, datetime(2026, 12, 24, 10, 0, tzinfo=DENVER)).is_open
    assert state_at(p, datetime(2026, 12, 24, 13, 0, tzinfo=DENVER)).kind == "holiday"


def test_two_practice_dates_on_one_day_both_close(tmp_path):
    data = _colorado(base())
    data["holidays"] = {"dates": [
        {"date": "2026-12-02", "name": "Inventory", "closed_from": "08:00",
         "closed_until": "10:00"},
        {"date": "12-02", "name": "Staff lunch", "closed_from": "12:00",
         "closed_until": "14:00"}]}
    p = practice_from(tmp_path, data)
    assert state_at(p, datetime(2026, 12, 2, 9, 0, tzinfo=DENVER)).kind == "holiday"
    assert state_at(p, datetime(2026, 12, 2, 11, 0, tzinfo=DENVER)).is_open
    st = state_at(p, datetime(2026, 12, 2, 13, 0, tzinfo=DENVER))
    assert st.reason == "holiday: Staff lunch"
    assert st.next_change == datetime(2026, 12, 2, 14, 0, tzinfo=DENVER)


def _errors(tmp_path, holidays: dict):
    data = base()
    data["holidays"] = holidays
    res = load_data(tmp_path, data)
    return res.errors


def test_misspelt_excluded_holiday_is_an_error_naming_the_nearest(tmp_path):
    errors = _errors(tmp_path, {"exclude": ["Columbus Day", "Veteran's Day"]})
    assert len(errors) == 1, [str(e) for e in errors]
    e = errors[0]
    assert e.key == "holidays.exclude[1]" and e.value == "Veteran's Day"
    assert (e.line, e.column) > (1, 1)
    assert "not a public holiday of US-MA" in e.message
    assert "'Veterans Day'" in e.expected


def test_excluded_names_are_those_of_the_subdivision(tmp_path):
    # Patriots' Day is a Massachusetts holiday, not a Colorado one.
    assert not _errors(tmp_path, {"exclude": ["Patriots' Day"]})
    data = _colorado(base())
    data["holidays"] = {"exclude": ["Patriots' Day"]}
    errors = load_data(tmp_path, data).errors
    assert [e.key for e in errors] == ["holidays.exclude[0]"]
    assert "US-CO" in errors[0].message


def test_only_closes_on_the_listed_public_holidays(tmp_path):
    data = base()
    data["holidays"] = {"only": ["Thanksgiving Day", "Christmas Day"]}
    p = practice_from(tmp_path, data)
    ny = p.tz
    assert state_at(p, datetime(2026, 11, 26, 10, 0, tzinfo=ny)).kind == "holiday"
    assert state_at(p, datetime(2026, 12, 25, 10, 0, tzinfo=ny)).kind == "holiday"
    assert state_at(p, datetime(2026, 11, 11, 10, 0, tzinfo=ny)).kind == "open"  # Veterans
    assert state_at(p, datetime(2027, 4, 19, 10, 0, tzinfo=ny)).kind == "open"  # Patriots'


def test_only_names_are_checked_and_exclusive_with_exclude(tmp_path):
    errors = _errors(tmp_path, {"only": ["Thanksgivng Day"]})
    assert [e.key for e in errors] == ["holidays.only[0]"]
    assert "'Thanksgiving Day'" in errors[0].expected
    errors = _errors(tmp_path, {"only": ["Christmas Day"], "exclude": ["Columbus Day"]})
    assert [e.key for e in errors] == ["holidays.only"]
    assert "exclude" in errors[0].message
