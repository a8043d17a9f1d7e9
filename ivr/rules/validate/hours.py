"""When the practice is open: hours, holidays and overrides."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date

import holidays as holidays_pkg
import yaml

from ivr.rules import model as m
from ivr.rules.timeutil import MINUTES_PER_DAY, WEEKDAYS
from ivr.rules.validate.core import Reader, child, parse_time
from ivr.rules.validate.tables import (
    DATE_RE,
    EXPECT_PERIOD,
    HOLIDAY_DATE_KEYS,
    HOLIDAY_NAME_YEARS,
    HOLIDAYS_KEYS,
    HOURS_KEYS,
    OVERRIDE_KEYS,
    YEARLY_RE,
)


class HoursSection(Reader):
    """hours, holidays and overrides: when the practice is open."""

    def hours(self, node: yaml.Node | None) -> tuple[tuple[m.Period, ...], ...]:
        f = self.mapping(node, "hours", HOURS_KEYS) or {}
        week = []
        for day in WEEKDAYS:
            periods = []
            path = child("hours", day)
            items = self.seq(f.get(day), path, "a list of periods such as 08:00-17:00")
            for i, item in enumerate(items):
                p = self.period(item, child(path, i))
                if p is not None:
                    periods.append(p)
                    self.period_nodes.append((WEEKDAYS.index(day), p, item, child(path, i)))
            week.append(tuple(periods))
        return tuple(week)

    def period(self, node: yaml.Node, path: str) -> m.Period | None:
        value = self.text(node, path, EXPECT_PERIOD)
        if value is None:
            return None
        parts = value.replace(" ", "").split("-")
        if len(parts) != 2:
            self.c.error(node, path, value, EXPECT_PERIOD, f"{value!r} is not a period")
            return None
        start, end = parse_time(parts[0]), parse_time(parts[1], allow_24=True)
        if start is None or end is None:
            bad = parts[0] if start is None else parts[1]
            self.c.error(node, path, value, EXPECT_PERIOD,
                         f"{value!r} is not a period: {bad!r} is not a time")
            return None
        if start == end % MINUTES_PER_DAY and not (start == 0 and end == MINUTES_PER_DAY):
            self.c.error(node, path, value, EXPECT_PERIOD + "; use 00:00-24:00 for all day",
                         f"{value!r} starts and ends at the same time")
            return None
        return m.Period(start, end)

    def holidays(self, node: yaml.Node | None, country: str | None, subdiv: str | None
                 ) -> m.Holidays:
        f = self.mapping(node, "holidays", HOLIDAYS_KEYS) or {}
        if "country" in f:
            country = self.text(f["country"], "holidays.country")
            if country is not None:
                country = country.upper()
                if country == "NONE":
                    country = None
                elif country not in holidays_pkg.list_supported_countries():
                    self.c.error(f["country"], "holidays.country", country,
                                 "a country supported by the holidays package, or none",
                                 f"{country!r} has no holiday calendar")
                    country = None
        if "subdivision" in f:
            subdiv = self.text(f["subdivision"], "holidays.subdivision")
        sub_node = f.get("subdivision")
        if country is not None and subdiv is not None:
            valid = holidays_pkg.list_supported_countries().get(country, [])
            if subdiv not in valid:
                sub_key = "holidays.subdivision" if sub_node else "practice.subdivision"
                self.c.error(sub_node, sub_key, subdiv,
                             f"a subdivision of {country}: " + ", ".join(valid[:12]) + "...",
                             f"{subdiv!r} is not a subdivision of {country}")
                subdiv = None
        observed = self.boolean(f.get("observed"), "holidays.observed", True)
        exclude = self.holiday_names(f, "exclude", country, subdiv)
        only = self.holiday_names(f, "only", country, subdiv) if "only" in f else None
        if "only" in f and "exclude" in f:
            self.c.error(f["only"], "holidays.only", None, "either 'only' or 'exclude'",
                         "'only' lists the public holidays that close; 'exclude' cannot "
                         "be used with it")
        custom = []
        for i, item in enumerate(self.seq(f.get("dates"), "holidays.dates")):
            path = child("holidays.dates", i)
            h = self.mapping(item, path, HOLIDAY_DATE_KEYS)
            if h is None:
                continue
            raw = self.text(h.get("date"), child(path, "date"), "YYYY-MM-DD or MM-DD (yearly)")
            name = self.text(h.get("name"), child(path, "name"))
            start = self.time_of_day(h.get("closed_from"), child(path, "closed_from"))
            until = self.time_of_day(h.get("closed_until"), child(path, "closed_until"), True)
            if raw is None or name is None:
                continue
            ymd = parse_holiday_date(raw)
            if ymd is None:
                self.c.error(h.get("date"), child(path, "date"), raw,
                             "YYYY-MM-DD (one day) or MM-DD (every year)",
                             f"{raw!r} is not a date")
                continue
            if start is not None and until is not None and until <= start:
                self.c.error(h.get("closed_until"), child(path, "closed_until"), until,
                             "a time after closed_from", "closed_until is not after closed_from")
                continue
            year, month, dom = ymd
            custom.append(m.CustomHoliday(name, month, dom, year, start, until))
        return m.Holidays(country, subdiv, observed, tuple(exclude), tuple(custom),
                          None if only is None else tuple(only))

    def holiday_names(self, f: Mapping[str, yaml.Node], key: str, country: str | None,
                      subdiv: str | None) -> list[str]:
        """Names listed under holidays.<key>, each a public holiday of the calendar."""
        from ivr.rules.schedule import public_holiday_names

        path = child("holidays", key)
        known = frozenset() if country is None else public_holiday_names(
            country, subdiv, range(self.now.year - HOLIDAY_NAME_YEARS[0],
                                   self.now.year + HOLIDAY_NAME_YEARS[1] + 1))
        calendar = country if subdiv is None else f"{country}-{subdiv}"
        out = []
        for i, item in enumerate(self.seq(f.get(key), path, "a list of holiday names")):
            name = self.text(item, child(path, i), "a holiday name")
            if name is None:
                continue
            if name not in known:
                near = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
                listed = near or sorted(known)[:8]
                self.c.error(item, child(path, i), name,
                             ("one of the nearest: " if near else "one of: ")
                             + ", ".join(repr(n) for n in listed) if known
                             else "no names: there is no public holiday calendar",
                             f"{name!r} is not a public holiday of {calendar or 'any country'}")
                continue
            out.append(name)
        return out

    def overrides(self, node: yaml.Node | None) -> tuple[m.Override, ...]:
        out = []
        for i, item in enumerate(self.seq(node, "overrides")):
            path = child("overrides", i)
            f = self.mapping(item, path, OVERRIDE_KEYS)
            if f is None:
                continue
            start = self.local_datetime(f.get("from"), child(path, "from"))
            end = (self.local_datetime(f.get("until"), child(path, "until"))
                   if "until" in f else None)
            state = self.choice(f.get("state"), child(path, "state"), ("open", "closed"))
            reason = self.text(f.get("reason"), child(path, "reason"))
            if start and end and end <= start:
                self.c.error(f["until"], child(path, "until"), f["until"].value,
                             "an instant after 'from'", "override ends before it starts")
                continue
            if start and state and reason is not None:
                out.append(m.Override(start, end, state == "open", reason))
        return tuple(out)



def parse_holiday_date(value: str) -> tuple[int | None, int, int] | None:
    """(year or None, month, day) for 'YYYY-MM-DD' or yearly 'MM-DD'."""
    try:
        if DATE_RE.match(value):
            d = date.fromisoformat(value)
            return d.year, d.month, d.day
        match = YEARLY_RE.match(value)
        if match:
            month, dom = int(match.group(1)), int(match.group(2))
            date(2024, month, dom)  # leap year, so 02-29 is allowed
            return None, month, dom
    except ValueError:
        return None
    return None
