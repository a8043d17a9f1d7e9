"""The one reader of the times a person types (--since, --at, --until, --from, --night ...).

Pure: the clock (`now`) and the zone for zone-less times (`tz`) are arguments. Accepted:

  now                          the current instant
  today | yesterday [HH:MM]    that local day at 00:00, or at the time given
  tomorrow HH:MM               tomorrow needs a time ("until tomorrow" says no hour)
  2026-11-26                   that local day at 00:00
  2026-11-26T18:00 / 2026-11-26 18:00[:SS]
                               wall time in `tz`
  2026-11-26T23:00Z / ...-05:00
                               an instant (its own offset)

`tz` is the practice's zone where the command names a practice, else UTC; the command's
help says which. Bad text raises WhenError (a ValueError) with a one-line reason.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from ivr.rules.limits import MAX_YEAR, MIN_YEAR
from ivr.rules.timeutil import local_naive_to_instant

#: For the help of every time option.
FORMS = ("now, today, yesterday, today 18:00, tomorrow 08:00, 2026-11-26, "
         "2026-11-26T18:00, 2026-11-26T23:00Z or 2026-11-26T18:00-05:00")

#: The end of every error about an instant.
HINT = ("times must be ISO date-times such as 2026-11-26T18:00 or 2026-11-26T23:00Z, "
        "or now, today, yesterday, today 18:00, tomorrow 08:00")

_DAY_WORDS = {"yesterday": -1, "today": 0, "tomorrow": 1}
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


class WhenError(ValueError):
    """A time a person typed that is not one of the accepted forms."""


def _clock(text: str, original: str) -> time:
    match = _CLOCK.fullmatch(text)
    if not match:
        raise WhenError(f"{original!r}: expected a time of day such as 08:00")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise WhenError(f"{original!r}: {text} is not a time of day")
    return time(hour, minute, second)


def _checked_year(value: datetime | date, original: str) -> None:
    # The rules engine searches days and years around an instant: keep clear of year 9999.
    if not MIN_YEAR < value.year < MAX_YEAR:
        raise WhenError(f"{original!r}: the year must be within {MIN_YEAR + 1}-{MAX_YEAR - 1}")


def _day_word(words: list[str], original: str, now: datetime, tz: tzinfo) -> datetime | None:
    """`today`, `yesterday 07:30`, `tomorrow 08:00` as a naive local datetime; None if the
    text does not start with a day word."""
    offset = _DAY_WORDS.get(words[0].lower())
    if offset is None:
        return None
    if len(words) > 2:
        raise WhenError(f"{original!r}: a day word takes at most a time of day, "
                        "as in tomorrow 08:00")
    if len(words) == 1 and offset > 0:
        raise WhenError(f"{original!r}: say the time too")
    day = now.astimezone(tz).date() + timedelta(days=offset)
    clock = _clock(words[1], original) if len(words) == 2 else time(0)
    return datetime.combine(day, clock)


def parse_instant(text: str, *, now: datetime, tz: tzinfo = UTC) -> datetime:
    """The instant (aware, UTC) that `text` names; zone-less forms are wall time in `tz`."""
    try:
        return _instant(text, now, tz)
    except WhenError as exc:
        raise WhenError(f"{exc}; {HINT}") from None


def _instant(text: str, now: datetime, tz: tzinfo) -> datetime:
    if now.tzinfo is None:
        raise ValueError("parse_instant needs an aware `now`")
    original = text
    words = text.split()
    if not words:
        raise WhenError(f"{original!r}: empty")
    if len(words) == 1 and words[0].lower() == "now":
        return now.astimezone(UTC)
    wall = _day_word(words, original, now, tz)
    if wall is None:
        iso = " ".join(words)
        if iso[-1:] in "zZ":
            iso = iso[:-1] + "+00:00"
        try:
            wall = datetime.fromisoformat(iso)
        except ValueError:
            raise WhenError(f"{original!r} is not a time") from None
    _checked_year(wall, original)
    if wall.tzinfo is None:
        return local_naive_to_instant(wall, tz)
    return wall.astimezone(UTC)


def parse_day(text: str, *, now: datetime, tz: tzinfo = UTC) -> date:
    """A local date: `today`, `yesterday`, `tomorrow` or 2026-11-26 (no time of day)."""
    word = text.strip().lower()
    if word in _DAY_WORDS:
        return now.astimezone(tz).date() + timedelta(days=_DAY_WORDS[word])
    try:
        day = date.fromisoformat(word)
    except ValueError:
        raise WhenError(f"{text!r}: expected a date such as 2026-11-26, or today, "
                        "yesterday, tomorrow") from None
    _checked_year(day, text)
    return day


def is_zoneless(text: str) -> bool:
    """Whether `text` is read in a zone (a day word or an ISO time without offset)."""
    words = text.split()
    if not words or (len(words) == 1 and words[0].lower() == "now"):
        return False
    if words[0].lower() in _DAY_WORDS:
        return True
    try:
        iso = " ".join(words)
        return datetime.fromisoformat(iso[:-1] + "+00:00" if iso[-1:] in "zZ" else iso
                                      ).tzinfo is None
    except ValueError:
        return False


def wall_time(text: str, *, now: datetime, tz: tzinfo) -> datetime | None:
    """The naive local datetime a zone-less `text` names (for DST notes), else None."""
    if not is_zoneless(text):
        return None
    words = text.split()
    try:
        wall = _day_word(words, text, now, tz)
        return wall if wall is not None else datetime.fromisoformat(" ".join(words))
    except ValueError:
        return None
