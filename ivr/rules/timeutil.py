"""Wall-clock helpers: turn a practice's local dates and times into aware instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 24 * 60
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def local_instant(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """The instant at `minute` minutes past local midnight of `day` in `tz`.

    `minute` may be 1440 (the next midnight). A wall time that happens twice (the
    hour repeated when clocks go back) is taken at its FIRST occurrence (fold=0); a
    wall time that does not exist (clocks go forward) is shifted forward by the gap
    (02:30 on a spring-forward night is 03:30), which is what zoneinfo does with fold=0.
    The result is normalised to UTC so comparisons and arithmetic are exact.
    """
    day = day + timedelta(days=minute // MINUTES_PER_DAY)
    minute %= MINUTES_PER_DAY
    wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    return wall.astimezone(UTC)


def local_naive_to_instant(wall: datetime, tz: tzinfo) -> datetime:
    """Attach `tz` to a naive local datetime (same fold rules as `local_instant`)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def require_aware(instant: datetime, what: str = "instant") -> datetime:
    """Refuse naive datetimes: the engine never guesses a time zone."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got naive {instant!r}")
    return instant.astimezone(UTC)


def fmt_minute(minute: int) -> str:
    """'HH:MM' for minutes past midnight (1440 prints as 24:00)."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def fmt_local(instant: datetime, tz: ZoneInfo) -> str:
    """ISO local time with offset, to the minute, for humans and JSON."""
    return instant.astimezone(tz).isoformat(timespec="minutes")


_ES_DAYS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
_ES_MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
              "septiembre", "octubre", "noviembre", "diciembre")


def human_time(instant: datetime, tz: ZoneInfo, reference: datetime | None = None,
               language: str = "en-US") -> str:
    """'8:00 AM tomorrow', '8:00 AM Friday, November 27' — what a caller is told; in
    Spanish 'las 8:00 a. m. de mañana', 'las 8:00 a. m. del viernes 27 de noviembre'
    (the texts say 'después de {callback_time}'). Names are written here, not taken
    from the C library's locale, which a server often lacks."""
    loc = instant.astimezone(tz)
    hour12 = loc.hour % 12 or 12
    if language.lower().startswith("es"):
        delta = None if reference is None else \
            (loc.date() - reference.astimezone(tz).date()).days
        clock = f"{'la' if hour12 == 1 else 'las'} {hour12}:{loc.minute:02d} " \
                f"{'a. m.' if loc.hour < 12 else 'p. m.'}"
        if delta == 0:
            return f"{clock} de hoy"
        if delta == 1:
            return f"{clock} de mañana"
        return f"{clock} del {_ES_DAYS[loc.weekday()]} {loc.day} de " \
               f"{_ES_MONTHS[loc.month - 1]}"
    clock = f"{hour12}:{loc.minute:02d} {'AM' if loc.hour < 12 else 'PM'}"
    if reference is not None:
        ref_day = reference.astimezone(tz).date()
        delta = (loc.date() - ref_day).days
        if delta == 0:
            return f"{clock} today"
        if delta == 1:
            return f"{clock} tomorrow"
    return f"{clock} {loc.strftime('%A, %B')} {loc.day}"


def wall_time_note(wall: datetime, tz: ZoneInfo) -> str | None:
    """What a naive local time means when it is not one instant (None when it is).

    Said with the instant taken (the rules of `local_instant`): a skipped time is
    moved forward by the gap, a repeated one is its first occurrence.
    """
    wall = wall.replace(tzinfo=None)
    first = wall.replace(tzinfo=tz, fold=0)
    taken = first.astimezone(UTC).astimezone(tz)
    text = f"{wall:%Y-%m-%d %H:%M}"
    if taken.replace(tzinfo=None) != wall:
        return (f"{text} does not exist in {tz.key} (the clocks go forward); "
                f"taken as {taken.isoformat(timespec='minutes')}")
    if first.utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset():
        return (f"{text} happens twice in {tz.key} (the clocks go back); taken as the "
                f"first, {taken.isoformat(timespec='minutes')}")
    return None


def clock_change_days(tz: ZoneInfo, first: date, days: int) -> list[date]:
    """The local dates in [first, first + days) on which the UTC offset changes."""
    def offset(day: date) -> timedelta | None:
        return local_instant(day, 0, tz).astimezone(tz).utcoffset()

    out = []
    for week in range(0, days, 7):  # a week apart first: real zones change twice a year
        start = first + timedelta(days=week)
        span = min(7, days - week)
        if offset(start) == offset(start + timedelta(days=span)):
            continue
        out += [start + timedelta(days=n) for n in range(span)
                if offset(start + timedelta(days=n)) != offset(start + timedelta(days=n + 1))]
    return out
