"""The one parser of the times a person types (ivr.cli.when): the clock is an argument."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from ivr.cli.when import WhenError, is_zoneless, parse_day, parse_instant, wall_time

NY = ZoneInfo("America/New_York")
# Tue 1 Dec 2026 02:14 in New York; already 07:14 in UTC.
NOW = datetime(2026, 12, 1, 7, 14, 30, tzinfo=UTC)


def ny(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=NY).astimezone(UTC)  # type: ignore[misc]


@pytest.mark.parametrize("text, tz, expected", [
    ("now", NY, NOW),
    (" NOW ", UTC, NOW),
    ("today", NY, ny(2026, 12, 1)),
    ("today", UTC, datetime(2026, 12, 1, tzinfo=UTC)),
    ("today 18:00", NY, ny(2026, 12, 1, 18)),
    ("yesterday", NY, ny(2026, 11, 30)),
    ("Yesterday 07:30", NY, ny(2026, 11, 30, 7, 30)),
    ("tomorrow 08:00", NY, ny(2026, 12, 2, 8)),
    ("tomorrow 8:05:09", UTC, datetime(2026, 12, 2, 8, 5, 9, tzinfo=UTC)),
    ("2026-11-26", NY, ny(2026, 11, 26)),
    ("2026-11-26T18:00", NY, ny(2026, 11, 26, 18)),
    ("2026-11-26 18:00", NY, ny(2026, 11, 26, 18)),
    ("2026-11-26T18:00", UTC, datetime(2026, 11, 26, 18, tzinfo=UTC)),
    ("2026-11-26T23:00Z", NY, datetime(2026, 11, 26, 23, tzinfo=UTC)),
    ("2026-11-26T23:00z", NY, datetime(2026, 11, 26, 23, tzinfo=UTC)),
    ("2026-11-26T18:00-05:00", UTC, datetime(2026, 11, 26, 23, tzinfo=UTC)),
])
def test_accepted_forms(text, tz, expected):
    got = parse_instant(text, now=NOW, tz=tz)
    assert got == expected and got.tzinfo is UTC


def test_the_day_words_follow_the_zone_not_utc():
    # At 07:14 UTC it is still 1 December in New York but 2 December in Tokyo.
    tokyo = ZoneInfo("Asia/Tokyo")
    assert parse_instant("today", now=NOW, tz=tokyo) == \
        datetime(2026, 12, 1, tzinfo=tokyo).astimezone(UTC)
    late = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # 22:00 on 1 December in New York
    assert parse_instant("today", now=late, tz=NY) == ny(2026, 12, 1)


@pytest.mark.parametrize("text", [
    "", "   ", "garbage", "tomorrow", "today 25:00", "today 8", "today 08:00 sharp",
    "next week", "26/11/2026", "2026-13-01", "9999-12-31T23:00-14:00",
    "0001-01-01T00:00Z", "1900-06-01",
])
def test_refused_forms_say_what_is_accepted(text):
    with pytest.raises(WhenError) as caught:
        parse_instant(text, now=NOW, tz=NY)
    message = str(caught.value)
    assert "\n" not in message and "times must be ISO date-times" in message
    assert isinstance(caught.value, ValueError)  # old `except ValueError` still catch it


def test_a_naive_clock_is_refused():
    with pytest.raises(ValueError):
        parse_instant("now", now=datetime(2026, 12, 1), tz=NY)


def test_days():
    assert parse_day("today", now=NOW, tz=NY) == date(2026, 12, 1)
    assert parse_day("yesterday", now=NOW, tz=NY) == date(2026, 11, 30)
    assert parse_day("tomorrow", now=NOW, tz=NY) == date(2026, 12, 2)
    assert parse_day("2026-11-26", now=NOW, tz=NY) == date(2026, 11, 26)
    for bad in ("26/11/2026", "2026-11-26T18:00", "now", "9999-01-01"):
        with pytest.raises(WhenError, match="expected a date|year"):
            parse_day(bad, now=NOW, tz=NY)


def test_zoneless_and_wall_time():
    assert is_zoneless("today 18:00") and is_zoneless("2026-11-26T18:00")
    assert not is_zoneless("now") and not is_zoneless("2026-11-26T18:00Z")
    assert not is_zoneless("2026-11-26T18:00-05:00") and not is_zoneless("garbage")
    assert wall_time("tomorrow 08:00", now=NOW, tz=NY) == datetime(2026, 12, 2, 8)
    assert wall_time("2026-11-01 01:30", now=NOW, tz=NY) == datetime(2026, 11, 1, 1, 30)
    assert wall_time("2026-11-01T01:30Z", now=NOW, tz=NY) is None


def test_dst_wall_times_take_the_first_instant():
    # 01:30 happens twice on 1 Nov 2026 in New York: the earlier one (EDT) is taken.
    assert parse_instant("2026-11-01 01:30", now=NOW, tz=NY) == \
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
