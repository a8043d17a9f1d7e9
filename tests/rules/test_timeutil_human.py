"""What a caller is told of a time, in English and in Spanish."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ivr.rules.timeutil import human_time

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # Wednesday 21:00 in New York


def test_english_and_spanish_words_for_today_tomorrow_and_a_later_day():
    tomorrow = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)  # Thursday 8:00 AM
    friday = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)  # Friday 1:30 PM
    tonight = datetime(2026, 11, 26, 3, 5, tzinfo=UTC)  # Wednesday 10:05 PM
    assert human_time(tomorrow, NY, NOW) == "8:00 AM tomorrow"
    assert human_time(tomorrow, NY, NOW, "es-US") == "las 8:00 a. m. de mañana"
    assert human_time(tonight, NY, NOW, "es-US") == "las 10:05 p. m. de hoy"
    assert human_time(friday, NY, NOW, "es-US") == "la 1:30 p. m. del viernes 27 de noviembre"
    assert human_time(friday, NY, NOW) == "1:30 PM Friday, November 27"
