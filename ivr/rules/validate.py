"""Turn YAML node trees into validated Practice objects, collecting every located error."""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays as holidays_pkg
import phonenumbers
import yaml

from ivr.rules import model as m
from ivr.rules.limits import (
    MAX_DEPTH,
    MAX_ICAL_FILE_BYTES,
    MAX_INT_DIGITS,
    MAX_RULES_FILE_BYTES,
    MAX_YEAR,
    MIN_YEAR,
    UNLIMITED,
    Deadline,
    InputRefused,
    LoadTimeout,
    read_bounded,
)
from ivr.rules.prompts import DEFAULT_PROMPTS, PLACEHOLDERS, default_menu_text, placeholders_in
from ivr.rules.timeutil import (
    MINUTES_PER_DAY,
    UTC,
    WEEKDAYS,
    clock_change_days,
    fmt_local,
    local_instant,
    local_naive_to_instant,
    wall_time_note,
)
from ivr.rules.yamlload import BOOL_TAG, INT_RE, INT_TAG, NULL_TAG, TooDeep, check_limits, compose

# --- the key tables; schema.py builds the JSON Schema from the same tables ----------------
# name -> required?
TOP_KEYS = {
    "practice": True,
    "hours": False,
    "holidays": False,
    "overrides": False,
    "prompts": False,
    "intake": False,
    "triage": True,
    "overflow": False,
    "on_call": True,
    "fallback_numbers": False,
    "delivery": False,
    "retention": False,
}
PRACTICE_KEYS = {
    "id": True,
    "name": True,
    "timezone": True,
    "country": True,
    "subdivision": False,
    "language": False,
    "dids": True,
    "forwarding_numbers": False,
}
HOURS_KEYS = {day: False for day in WEEKDAYS}
HOLIDAYS_KEYS = {
    "country": False,
    "subdivision": False,
    "observed": False,
    "exclude": False,
    "only": False,
    "dates": False,
}
HOLIDAY_DATE_KEYS = {"date": True, "name": True, "closed_from": False, "closed_until": False}
OVERRIDE_KEYS = {"from": True, "until": False, "state": True, "reason": True}
PROMPT_IDS = tuple(k for k in DEFAULT_PROMPTS if k not in ("menu", "menu_invalid", "menu_no_input"))
PROMPTS_KEYS = {k: False for k in PROMPT_IDS}
PROMPT_KEYS = {"text": False, "file": False}
INTAKE_KEYS = {
    "collect": False,
    "reason_max_seconds": False,
    "name_max_seconds": False,
    "retries": False,
    "input_timeout_seconds": False,
}
TRIAGE_KEYS = {
    "keys": True,
    "default": True,
    "retries": False,
    "timeout_seconds": False,
    "prompt": False,
    "invalid_prompt": False,
    "no_input_prompt": False,
}
OVERFLOW_KEYS = {"mode": True, "bridge_to": False, "ring_seconds": False}
ON_CALL_KEYS = {
    "clinicians": True,
    "rotations": False,
    "shifts": False,
    "ical": False,
    "escalation": True,
    "when_exhausted": False,
    "max_caller_wait_seconds": False,
}
CLINICIAN_KEYS = {"id": True, "name": True, "role": True, "phone": True, "pin": False}
PIN_RE = re.compile(r"[0-9]{4,8}$")
ROTATION_KEYS = {"role": True, "order": True, "handoff": True, "anchor": True, "start": False}
HANDOFF_KEYS = {"weekday": False, "every_days": False, "pattern": False, "time": True}
HANDOFF_KINDS = ("weekday", "every_days", "pattern")
TURN_DAYS = (1, 28)  # one turn of a rotation: a day to four weeks
MAX_PATTERN_TURNS = 28
SHIFT_KEYS = {"clinician": True, "start": True, "end": True, "role": False, "note": False}
ICAL_KEYS = {"file": True, "clinician_from": False}
STEP_KEYS = {"role": False, "clinician": False, "others_of": False, "together": False,
             "ring_seconds": False, "attempts": False}
TARGET_KEYS = {"role": False, "clinician": False, "others_of": False}
TARGET_KINDS = ("role", "clinician", "others_of")
EXHAUSTED_KEYS = {"action": True, "renotify_minutes": False, "attempts_per_person": False,
                  "max_attempts": False}
DELIVERY_KEYS = {"fax": False, "email": False, "webhook": False}
WEBHOOK_KEYS = {"url": True, "secret_env": False}
RETENTION_KEYS = {"recordings_days": False, "records_days": False}
RECORDINGS_DAYS = (7, 3650)  # at least a week: the morning report and call-backs need them
RECORDS_DAYS = (30, 3650)

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
TIME_RE = re.compile(r"^([0-9]{2}):([0-9]{2})$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
YEARLY_RE = re.compile(r"^([0-9]{2})-([0-9]{2})$")
DATETIME_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?:Z|[+-][0-9]{2}:?[0-9]{2})?$"
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
KEY_RE = re.compile(r"^[0-9*#]$")

EXPECT_TIME = "HH:MM (00:00-23:59)"
EXPECT_PERIOD = "HH:MM-HH:MM, e.g. 08:00-17:00 (17:00-08:00 crosses midnight)"
EXPECT_DATETIME = "a local date and time YYYY-MM-DD HH:MM (optionally with an offset)"
EXPECT_YEARS = f"a year from {MIN_YEAR} to {MAX_YEAR}"

DEFAULT_RING_SECONDS = 20
ICAL_PAST_DAYS = 60
ICAL_FUTURE_DAYS = 730
COVERAGE_DAYS = 30
# Years around `now` whose public holiday names holidays.exclude/only may use.
HOLIDAY_NAME_YEARS = (2, 5)
CLOCK_CHANGE_DAYS = 366  # how far ahead repeating wall times are checked against DST

_ZONES: frozenset[str] | None = None
ZONE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,3}$")
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})  # files in zoneinfo, not places


def _known_zone(name: str) -> bool:
    """True for an IANA zone name (not a file path, a folder or a POSIX TZ string).

    Only names on the IANA list are looked up at all: ZoneInfo opens a file named
    after its key, so 'America' (a folder), '../../etc/passwd', a NUL byte or a
    5,000-character name would otherwise reach the file system and raise OSError.
    """
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) - NOT_ZONES
    if len(name) > 64 or not ZONE_RE.match(name) or name not in _ZONES:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


@dataclass
class Collector:
    """Accumulates errors and warnings for one file."""

    file: str
    errors: list[m.Issue] = field(default_factory=list)
    warnings: list[m.Issue] = field(default_factory=list)

    def error(self, node: yaml.Node | None, key: str, value: Any, expected: str, msg: str) -> None:
        self.errors.append(self._issue(node, key, value, expected, msg, "error"))

    def warn(self, node: yaml.Node | None, key: str, value: Any, expected: str, msg: str) -> None:
        self.warnings.append(self._issue(node, key, value, expected, msg, "warning"))

    def _issue(self, node: yaml.Node | None, key: str, value: Any, expected: str, msg: str,
               severity: str) -> m.Issue:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        return m.Issue(self.file, line, col, key, value, expected, msg, severity)


def _shown(node: yaml.Node) -> str:
    """How a bad value is quoted in a message."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == NULL_TAG:
        return "an empty value"
    return repr(node.value)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Builder:
    """Reads one practice file's node tree; every accessor records errors instead of raising."""

    def __init__(self, col: Collector, base_dir: Path, now: datetime,
                 deadline: Deadline = UNLIMITED) -> None:
        self.c = col
        self.base_dir = base_dir
        self.now = now
        self.deadline = deadline
        self.country = "US"
        self.tz: ZoneInfo = ZoneInfo("UTC")
        self.numbers: list[tuple[str, str, yaml.Node, str]] = []  # (e164, kind, node, path)
        self.ical_bytes = b""
        self.ical_source: m.IcalSource | None = None
        # Wall times that repeat (weekday, period, node, path; role -> node, path): a DST
        # change may skip or double them, checked once the practice is built.
        self.period_nodes: list[tuple[int, m.Period, yaml.Node, str]] = []
        self.handoff_nodes: dict[str, tuple[yaml.Node, str]] = {}

    # ---- generic accessors -------------------------------------------------------------
    def mapping(self, node: yaml.Node | None, path: str, keys: Mapping[str, bool]
                ) -> dict[str, yaml.Node] | None:
        """The children of a mapping node; reports unknown, duplicate and missing keys."""
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            self.c.error(node, path, _shown(node), "a mapping with keys: " + ", ".join(keys),
                         f"{_shown(node)} is not a mapping")
            return None
        out: dict[str, yaml.Node] = {}
        for knode, vnode in node.value:
            name = str(knode.value) if isinstance(knode, yaml.ScalarNode) else "?"
            kpath = _join(path, name)
            if name not in keys:
                self.c.error(knode, kpath, name, "one of: " + ", ".join(keys),
                             f"unknown key {name!r}")
                continue
            if name in out:
                self.c.error(knode, kpath, name, "each key once", f"duplicate key {name!r}")
                continue
            out[name] = vnode
        for name, required in keys.items():
            if required and name not in out:
                self.c.error(node, _join(path, name), None, f"a value for {name!r}",
                             f"missing required key {name!r}")
        return out

    def seq(self, node: yaml.Node | None, path: str, expected: str = "a list"
            ) -> list[yaml.Node]:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.c.error(node, path, _shown(node), expected, f"{_shown(node)} is not a list")
            return []
        return list(node.value)

    def text(self, node: yaml.Node | None, path: str, expected: str = "a string",
             pattern: re.Pattern[str] | None = None) -> str | None:
        """A scalar's source text (so 10:00, no, +1617... are read exactly as written)."""
        if node is None:
            return None
        if not isinstance(node, yaml.ScalarNode) or node.tag == NULL_TAG:
            self.c.error(node, path, _shown(node), expected, f"{_shown(node)} is not a string")
            return None
        value = str(node.value)
        if pattern is not None and not pattern.match(value):
            self.c.error(node, path, value, expected, f"{value!r} is not valid here")
            return None
        return value

    def choice(self, node: yaml.Node | None, path: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(node, path, "one of: " + ", ".join(choices))
        if value is not None and value not in choices:
            self.c.error(node, path, value, "one of: " + ", ".join(choices),
                         f"{value!r} is not a known value")
            return None
        return value

    def integer(self, node: yaml.Node | None, path: str, lo: int, hi: int, default: int) -> int:
        if node is None:
            return default
        expected = f"a whole number from {lo} to {hi}"
        if not isinstance(node, yaml.ScalarNode) or node.tag != INT_TAG \
                or not INT_RE.match(str(node.value)) \
                or len(str(node.value).lstrip("+-")) > MAX_INT_DIGITS:
            # check_limits reports explicit !!int tags and long numbers first; this
            # keeps int() from ever raising should a node reach here unchecked.
            self.c.error(node, path, _shown(node), expected, f"{_shown(node)} is not a number")
            return default
        value = int(node.value)
        if not lo <= value <= hi:
            self.c.error(node, path, value, expected, f"{value} is out of range")
            return default
        return value

    def boolean(self, node: yaml.Node | None, path: str, default: bool) -> bool:
        if node is None:
            return default
        if not isinstance(node, yaml.ScalarNode) or node.tag != BOOL_TAG:
            # 'yes'/'no' are deliberately not booleans here (YAML 1.1 pitfall).
            self.c.error(node, path, _shown(node), "true or false",
                         f"{_shown(node)} is not true or false")
            return default
        return str(node.value).lower() == "true"

    def time_of_day(self, node: yaml.Node | None, path: str, allow_24: bool = False
                    ) -> int | None:
        value = self.text(node, path, EXPECT_TIME)
        if value is None:
            return None
        minutes = parse_time(value, allow_24)
        if minutes is None:
            self.c.error(node, path, value, EXPECT_TIME + (" or 24:00" if allow_24 else ""),
                         f"{value!r} is not a time")
        return minutes

    def phone(self, node: yaml.Node | None, path: str, kind: str | None = None) -> str | None:
        """An E.164 number, parsed in the practice's country; must be a real dialable number."""
        expected = ("a dialable phone number in E.164 form, e.g. +16175550100 "
                    f"(country {self.country})")
        value = self.text(node, path, expected)
        if value is None:
            return None
        try:
            parsed = phonenumbers.parse(value, self.country)
        except phonenumbers.NumberParseException:
            self.c.error(node, path, value, expected, f"{value!r} is not a phone number")
            return None
        if not phonenumbers.is_valid_number(parsed):
            self.c.error(node, path, value, expected, f"{value!r} is not a dialable number")
            return None
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if kind is not None and node is not None:
            self.numbers.append((e164, kind, node, path))
        return e164

    def phones(self, node: yaml.Node | None, path: str, kind: str | None = None,
               among: frozenset[str] | None = None) -> tuple[str, ...]:
        """A list of E.164 numbers; with `among`, each must be one of those numbers."""
        out = []
        for i, item in enumerate(self.seq(node, path, "a list of phone numbers")):
            num = self.phone(item, _join(path, i), kind)
            if num is not None and among is not None and num not in among:
                self.c.error(item, _join(path, i), num,
                             "a clinician's phone or an overflow bridge_to number",
                             f"{num} is not a clinician's phone: the PBX dials only numbers "
                             "the rules name for the practice's clinicians")
            elif num is not None:
                out.append(num)
        return tuple(out)

    def local_datetime(self, node: yaml.Node | None, path: str) -> datetime | None:
        """An instant written as local time in the practice zone (or with an explicit offset)."""
        value = self.text(node, path, EXPECT_DATETIME)
        if value is None:
            return None
        parsed = None
        if DATETIME_RE.match(value):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                parsed = None
        if parsed is None:
            self.c.error(node, path, value, EXPECT_DATETIME, f"{value!r} is not a date and time")
            return None
        if not MIN_YEAR <= parsed.year <= MAX_YEAR:
            # Near years 1 and 9999 an offset or the zone moves the instant out of range.
            self.c.error(node, path, value, f"{EXPECT_DATETIME}, {EXPECT_YEARS}",
                         f"{value!r} is out of range")
            return None
        try:
            if parsed.tzinfo is None:
                note = wall_time_note(parsed, self.tz)
                if note is not None:
                    self.c.warn(node, path, value, "a local time that happens once, or an "
                                "explicit offset such as -04:00", note)
                return local_naive_to_instant(parsed, self.tz)
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):  # not expected within the years allowed
            self.c.error(node, path, value, f"{EXPECT_DATETIME}, {EXPECT_YEARS}",
                         f"{value!r} is out of range")
            return None

    def day(self, node: yaml.Node | None, path: str) -> date | None:
        value = self.text(node, path, "a date YYYY-MM-DD")
        if value is None:
            return None
        try:
            if DATE_RE.match(value):
                parsed = date.fromisoformat(value)
                if MIN_YEAR <= parsed.year <= MAX_YEAR:
                    return parsed
                self.c.error(node, path, value, f"a date YYYY-MM-DD, {EXPECT_YEARS}",
                             f"{value!r} is out of range")
                return None
        except ValueError:
            pass
        self.c.error(node, path, value, "a date YYYY-MM-DD", f"{value!r} is not a date")
        return None

    def prompt(self, node: yaml.Node | None, path: str, pid: str) -> m.Prompt | None:
        """A prompt: plain text, or {text, file} where file is a recording."""
        if node is None:
            return None
        if isinstance(node, yaml.ScalarNode):
            text = self.text(node, path, "text, or a mapping with text and/or file")
            rec = None
        else:
            fields = self.mapping(node, path, PROMPT_KEYS)
            if fields is None:
                return None
            text = self.text(fields.get("text"), _join(path, "text"))
            rec = self.text(fields.get("file"), _join(path, "file"), "a path to a recording")
            if rec is not None:
                self.check_recording(fields["file"], _join(path, "file"), rec)
            if text is None and rec is None:
                self.c.error(node, path, None, "text and/or file", "a prompt needs text or a file")
                return None
            if text is None:
                text = f"[recording {rec}]"
        if text is None:
            return None
        try:
            unknown = placeholders_in(text) - PLACEHOLDERS
        except ValueError:
            self.c.error(node, path, text, "balanced {placeholders}",
                         "malformed {placeholder} in prompt text")
            return None
        if unknown:
            self.c.error(node, path, text, "placeholders among: " + ", ".join(sorted(PLACEHOLDERS)),
                         f"unknown placeholder {{{sorted(unknown)[0]}}}")
            return None
        return m.Prompt(pid, text, rec)

    def check_recording(self, node: yaml.Node, path: str, rec: str) -> None:
        """Warn when a prompt's recording is not a file: the call speaks the text instead.

        Resolved as the controller does: relative to the rules file's folder. Only
        looked at (stat), never read here.
        """
        where = Path(rec) if Path(rec).is_absolute() else self.base_dir.resolve() / rec
        try:
            found = stat.S_ISREG(os.stat(where).st_mode)
        except (OSError, ValueError):  # missing, unreadable folder, NUL in the name
            found = False
        if not found:
            self.c.warn(node, path, rec, "a recording file; a relative path is relative to "
                        f"the rules file's folder ({self.base_dir.resolve()})",
                        f"recording {rec!r} is not a file ({where}); the text is spoken "
                        "instead")

    # ---- sections ----------------------------------------------------------------------
    def build(self, root: yaml.Node) -> m.Practice | None:
        # Counted before the top-level keys: a missing or misspelt 'practice' is an
        # error there, and leaves no practice details to build from.
        errors_before = len(self.c.errors)
        top = self.mapping(root, "", TOP_KEYS)
        if top is None:
            return None
        info = self.practice_info(top.get("practice"))
        hours = self.hours(top.get("hours"))
        hol = self.holidays(top.get("holidays"), info.get("country"), info.get("subdivision"))
        overrides = self.overrides(top.get("overrides"))
        prompts = self.prompts(top.get("prompts"))
        intake = self.intake(top.get("intake"))
        menu, menu_prompts = self.triage(top.get("triage"))
        prompts.update(menu_prompts)
        overflow = self.overflow(top.get("overflow"))
        on_call = self.on_call(top.get("on_call"))
        named = None if on_call is None else frozenset(
            {c.phone for c in on_call.clinicians.values()} | set(overflow.bridge_to))
        fallback = self.phones(top.get("fallback_numbers"), "fallback_numbers", among=named)
        delivery = self.delivery(top.get("delivery"))
        retention = self.retention(top.get("retention"))
        if len(self.c.errors) > errors_before or menu is None or on_call is None:
            return None
        return m.Practice(
            id=info["id"], name=info["name"], timezone=info["timezone"], tz=self.tz,
            country=info["country"], subdivision=info.get("subdivision"),
            language=info.get("language") or "en-US", dids=info["dids"],
            forwarding_numbers=info["forwarding_numbers"], hours=hours, holidays=hol,
            overrides=overrides, prompts=m.frozen_map(prompts), intake=intake, menu=menu,
            overflow=overflow, on_call=on_call, fallback_numbers=fallback, delivery=delivery,
            retention=retention, source_file=self.c.file,
        )

    def practice_info(self, node: yaml.Node | None) -> dict[str, Any]:
        f = self.mapping(node, "practice", PRACTICE_KEYS) or {}
        info: dict[str, Any] = {}
        info["id"] = self.text(f.get("id"), "practice.id",
                               "a slug: lowercase letters, digits and dashes", SLUG_RE)
        info["name"] = self.text(f.get("name"), "practice.name")
        tzname = self.text(f.get("timezone"), "practice.timezone")
        if tzname is not None:
            if _known_zone(tzname):
                self.tz = ZoneInfo(tzname)
                info["timezone"] = tzname
            else:
                self.c.error(f.get("timezone"), "practice.timezone", tzname,
                             "an IANA time zone such as America/New_York",
                             f"{tzname!r} is not a known time zone")
        country = self.text(f.get("country"), "practice.country",
                            "an ISO 3166 country code, e.g. US")
        if country is not None:
            if country.upper() not in holidays_pkg.list_supported_countries() or \
                    phonenumbers.country_code_for_region(country.upper()) == 0:
                self.c.error(f.get("country"), "practice.country", country,
                             "an ISO 3166 two-letter country code, e.g. US",
                             f"{country!r} is not a supported country")
            else:
                self.country = country.upper()
                info["country"] = self.country
        if "subdivision" in f:
            info["subdivision"] = self.text(f["subdivision"], "practice.subdivision")
        if "language" in f:
            info["language"] = self.text(f["language"], "practice.language",
                                         "a language tag such as en-US",
                                         re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$"))
        info["dids"] = self.phones(f.get("dids"), "practice.dids", "DID")
        if "dids" in f and not info["dids"] and not self.seq(f["dids"], "practice.dids"):
            self.c.error(f["dids"], "practice.dids", None, "at least one number",
                         "a practice needs at least one DID")
        info["forwarding_numbers"] = self.phones(
            f.get("forwarding_numbers"), "practice.forwarding_numbers", "forwarding number"
        )
        return info

    def hours(self, node: yaml.Node | None) -> tuple[tuple[m.Period, ...], ...]:
        f = self.mapping(node, "hours", HOURS_KEYS) or {}
        week = []
        for day in WEEKDAYS:
            periods = []
            path = _join("hours", day)
            items = self.seq(f.get(day), path, "a list of periods such as 08:00-17:00")
            for i, item in enumerate(items):
                p = self.period(item, _join(path, i))
                if p is not None:
                    periods.append(p)
                    self.period_nodes.append((WEEKDAYS.index(day), p, item, _join(path, i)))
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
            path = _join("holidays.dates", i)
            h = self.mapping(item, path, HOLIDAY_DATE_KEYS)
            if h is None:
                continue
            raw = self.text(h.get("date"), _join(path, "date"), "YYYY-MM-DD or MM-DD (yearly)")
            name = self.text(h.get("name"), _join(path, "name"))
            start = self.time_of_day(h.get("closed_from"), _join(path, "closed_from"))
            until = self.time_of_day(h.get("closed_until"), _join(path, "closed_until"), True)
            if raw is None or name is None:
                continue
            ymd = parse_holiday_date(raw)
            if ymd is None:
                self.c.error(h.get("date"), _join(path, "date"), raw,
                             "YYYY-MM-DD (one day) or MM-DD (every year)",
                             f"{raw!r} is not a date")
                continue
            if start is not None and until is not None and until <= start:
                self.c.error(h.get("closed_until"), _join(path, "closed_until"), until,
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

        path = _join("holidays", key)
        known = frozenset() if country is None else public_holiday_names(
            country, subdiv, range(self.now.year - HOLIDAY_NAME_YEARS[0],
                                   self.now.year + HOLIDAY_NAME_YEARS[1] + 1))
        calendar = country if subdiv is None else f"{country}-{subdiv}"
        out = []
        for i, item in enumerate(self.seq(f.get(key), path, "a list of holiday names")):
            name = self.text(item, _join(path, i), "a holiday name")
            if name is None:
                continue
            if name not in known:
                near = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
                listed = near or sorted(known)[:8]
                self.c.error(item, _join(path, i), name,
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
            path = _join("overrides", i)
            f = self.mapping(item, path, OVERRIDE_KEYS)
            if f is None:
                continue
            start = self.local_datetime(f.get("from"), _join(path, "from"))
            end = (self.local_datetime(f.get("until"), _join(path, "until"))
                   if "until" in f else None)
            state = self.choice(f.get("state"), _join(path, "state"), ("open", "closed"))
            reason = self.text(f.get("reason"), _join(path, "reason"))
            if start and end and end <= start:
                self.c.error(f["until"], _join(path, "until"), f["until"].value,
                             "an instant after 'from'", "override ends before it starts")
                continue
            if start and state and reason is not None:
                out.append(m.Override(start, end, state == "open", reason))
        return tuple(out)

    def prompts(self, node: yaml.Node | None) -> dict[str, m.Prompt]:
        f = self.mapping(node, "prompts", PROMPTS_KEYS) or {}
        out = {pid: m.Prompt(pid, text) for pid, text in DEFAULT_PROMPTS.items() if text}
        for pid, pnode in f.items():
            p = self.prompt(pnode, _join("prompts", pid), pid)
            if p is not None:
                out[pid] = p
        return out

    def intake(self, node: yaml.Node | None) -> m.Intake:
        f = self.mapping(node, "intake", INTAKE_KEYS) or {}
        collect = []
        if "collect" in f:
            for i, item in enumerate(self.seq(f["collect"], "intake.collect")):
                v = self.choice(item, _join("intake.collect", i), m.INTAKE_FIELDS)
                if v is not None and v not in collect:
                    collect.append(v)
        d = m.Intake()
        return m.Intake(
            collect=tuple(collect) if "collect" in f else d.collect,
            reason_max_seconds=self.integer(f.get("reason_max_seconds"),
                                            "intake.reason_max_seconds", 5, 300,
                                            d.reason_max_seconds),
            name_max_seconds=self.integer(f.get("name_max_seconds"), "intake.name_max_seconds",
                                          2, 60, d.name_max_seconds),
            retries=self.integer(f.get("retries"), "intake.retries", 0, 5, d.retries),
            input_timeout_seconds=self.integer(f.get("input_timeout_seconds"),
                                               "intake.input_timeout_seconds", 1, 30,
                                               d.input_timeout_seconds),
        )

    def triage(self, node: yaml.Node | None) -> tuple[m.Menu | None, dict[str, m.Prompt]]:
        f = self.mapping(node, "triage", TRIAGE_KEYS)
        if f is None:
            return None, {}
        options: dict[str, str] = {}
        kf = f.get("keys")
        if kf is not None:
            if not isinstance(kf, yaml.MappingNode):
                self.c.error(kf, "triage.keys", _shown(kf), "a mapping of key -> disposition",
                             f"{_shown(kf)} is not a mapping")
            else:
                for knode, vnode in kf.value:
                    key = str(knode.value)
                    path = _join("triage.keys", key)
                    if not KEY_RE.match(key):
                        self.c.error(knode, path, key,
                                     "a single key: 0-9, '*' or '#' (quote * and #)",
                                     f"{key!r} is not a phone key")
                        continue
                    if key in options:
                        self.c.error(knode, path, key, "each key once", f"duplicate key {key!r}")
                        continue
                    disp = self.choice(vnode, path, m.DISPOSITIONS)
                    if disp is not None:
                        options[key] = disp
                if not kf.value:
                    self.c.error(kf, "triage.keys", None, "at least one key",
                                 "the menu has no keys")
        default = self.choice(f.get("default"), "triage.default", m.DISPOSITIONS)
        retries = self.integer(f.get("retries"), "triage.retries", 0, 5, 2)
        timeout = self.integer(f.get("timeout_seconds"), "triage.timeout_seconds", 1, 30, 6)
        prompts = {
            "menu": self.prompt(f.get("prompt"), "triage.prompt", "menu")
            or m.Prompt("menu", default_menu_text(options)),
            "menu_invalid": self.prompt(f.get("invalid_prompt"), "triage.invalid_prompt",
                                        "menu_invalid")
            or m.Prompt("menu_invalid", DEFAULT_PROMPTS["menu_invalid"]),
            "menu_no_input": self.prompt(f.get("no_input_prompt"), "triage.no_input_prompt",
                                         "menu_no_input")
            or m.Prompt("menu_no_input", DEFAULT_PROMPTS["menu_no_input"]),
        }
        if default is None or not options:
            return None, prompts
        return m.Menu(m.frozen_map(options), default, retries, timeout), prompts

    def overflow(self, node: yaml.Node | None) -> m.Overflow:
        f = self.mapping(node, "overflow", OVERFLOW_KEYS)
        if f is None:
            return m.Overflow()
        mode = self.choice(f.get("mode"), "overflow.mode", m.OVERFLOW_MODES) or m.OVERFLOW_MODES[0]
        return m.Overflow(
            mode, self.phones(f.get("bridge_to"), "overflow.bridge_to"),
            self.integer(f.get("ring_seconds"), "overflow.ring_seconds", 5, 120,
                         DEFAULT_RING_SECONDS),
        )

    def on_call(self, node: yaml.Node | None) -> m.OnCall | None:
        f = self.mapping(node, "on_call", ON_CALL_KEYS)
        if f is None:
            return None
        errors_before = len(self.c.errors)
        clinicians: dict[str, m.Clinician] = {}
        declared: set[str] = set()  # ids seen even when the entry had other errors
        for i, item in enumerate(self.seq(f.get("clinicians"), "on_call.clinicians")):
            path = _join("on_call.clinicians", i)
            c = self.mapping(item, path, CLINICIAN_KEYS)
            if c is None:
                continue
            cid = self.text(c.get("id"), _join(path, "id"), "a slug such as dr-cho", SLUG_RE)
            if cid is not None and cid in declared:
                self.c.error(c.get("id"), _join(path, "id"), cid, "a unique clinician id",
                             f"clinician {cid!r} is defined twice")
                continue
            declared.add(cid or "")
            name = self.text(c.get("name"), _join(path, "name"))
            role = self.choice(c.get("role"), _join(path, "role"), m.ROLES)
            phone = self.phone(c.get("phone"), _join(path, "phone"))
            pin = None
            if c.get("pin") is not None:
                pin = self.text(c.get("pin"), _join(path, "pin"),
                                'a PIN of 4 to 8 digits, quoted: "4821"', PIN_RE)
            if cid and name and role and phone:
                clinicians[cid] = m.Clinician(cid, name, role, phone, pin)
        if "clinicians" in f and not clinicians and len(self.c.errors) == errors_before:
            self.c.error(f["clinicians"], "on_call.clinicians", None, "at least one clinician",
                         "no clinicians defined")
        known = "one of the clinician ids: " + ", ".join(sorted(declared - {""}))

        def clinician_ref(n: yaml.Node | None, path: str) -> str | None:
            cid = self.text(n, path, known)
            if cid is not None and cid in declared and cid not in clinicians:
                return None  # its own entry is broken and was reported there
            if cid is not None and cid not in clinicians:
                self.c.error(n, path, cid, known, f"no clinician with id {cid!r}")
                return None
            return cid

        rotations: dict[str, m.Rotation] = {}
        for i, item in enumerate(self.seq(f.get("rotations"), "on_call.rotations")):
            path = _join("on_call.rotations", i)
            r = self.mapping(item, path, ROTATION_KEYS)
            if r is None:
                continue
            role = self.choice(r.get("role"), _join(path, "role"), m.ROLES)
            order = []
            onode = r.get("order")
            cnodes = self.seq(onode, _join(path, "order"), "a list of clinician ids")
            for j, cnode in enumerate(cnodes):
                cid = clinician_ref(cnode, _join(path, f"order[{j}]"))
                if cid is not None:
                    order.append(cid)
                    if role and clinicians[cid].role != role:
                        self.c.error(cnode, _join(path, f"order[{j}]"), cid,
                                     f"a clinician whose role is {role}",
                                     f"{cid!r} is a {clinicians[cid].role}, not a {role}")
            if onode is not None and not self.seq(onode, _join(path, "order")):
                self.c.error(onode, _join(path, "order"), None, "at least one clinician id",
                             "the rotation has no one in it")
            hnode = r.get("handoff")
            h = self.mapping(hnode, _join(path, "handoff"), HANDOFF_KEYS) or {}
            at = self.time_of_day(h.get("time"), _join(path, "handoff.time"))
            turns = self.handoff_turns(hnode, h, _join(path, "handoff"))
            anchor = self.day(r.get("anchor"), _join(path, "anchor"))
            start = self.local_datetime(r.get("start"), _join(path, "start")) \
                if "start" in r else None
            if role in rotations:
                self.c.error(r.get("role"), _join(path, "role"), role, "one rotation per role",
                             f"a second rotation for role {role!r}")
                continue
            if role and order and turns and at is not None and anchor and \
                    (start is not None or "start" not in r):
                rotations[role] = m.Rotation(role, tuple(order), turns[0], at, anchor,
                                             turns[1], start)
                self.handoff_nodes[role] = (h["time"], _join(path, "handoff.time"))

        shifts: list[tuple[m.Shift, yaml.Node, str]] = []
        for i, item in enumerate(self.seq(f.get("shifts"), "on_call.shifts")):
            path = _join("on_call.shifts", i)
            s = self.mapping(item, path, SHIFT_KEYS)
            if s is None:
                continue
            cid = clinician_ref(s.get("clinician"), _join(path, "clinician"))
            start = self.local_datetime(s.get("start"), _join(path, "start"))
            end = self.local_datetime(s.get("end"), _join(path, "end"))
            role = self.choice(s.get("role"), _join(path, "role"), m.ROLES) if "role" in s else None
            note = self.text(s.get("note"), _join(path, "note")) or ""
            if start and end and end <= start:
                self.c.error(s.get("end"), _join(path, "end"), s["end"].value,
                             "an end after the start", "the shift ends before it starts")
                continue
            if cid and start and end:
                shift = m.Shift(cid, role or clinicians[cid].role, start, end, "shift", note)
                shifts.append((shift, item, path))
        self.check_overlaps(shifts)

        ical_shifts: tuple[m.Shift, ...] = ()
        ical_file = None
        if "ical" in f:
            ical_shifts, ical_file = self.ical(f["ical"], clinicians)

        def target(item: yaml.Node, path: str, s: dict[str, yaml.Node],
                   what: str) -> m.Target | None:
            """One role, one clinician or the others of a role, by exactly one key of `s`."""
            if sum(k in s for k in TARGET_KINDS) != 1:
                self.c.error(item, path, None, f"exactly one of {what}",
                             "an escalation step names whom to call by role, by clinician, "
                             "as the others of a role or (together) by several of them")
                return None
            if "clinician" in s:
                cid = clinician_ref(s.get("clinician"), _join(path, "clinician"))
                return m.Target(None, cid) if cid else None
            key = "role" if "role" in s else "others_of"
            role = self.choice(s.get(key), _join(path, key), m.ROLES)
            if role is not None and not any(c.role == role for c in clinicians.values()):
                self.c.error(s.get(key), _join(path, key), role,
                             "a role that at least one clinician has", f"no clinician is a {role}")
                return None
            if role is None:
                return None
            return m.Target(role, None) if key == "role" else m.Target(None, None, role)

        steps = []
        enode = f.get("escalation")
        for i, item in enumerate(self.seq(enode, "on_call.escalation")):
            path = _join("on_call.escalation", i)
            s = self.mapping(item, path, STEP_KEYS)
            if s is None:
                continue
            ring = self.integer(s.get("ring_seconds"), _join(path, "ring_seconds"), 5, 120,
                                DEFAULT_RING_SECONDS)
            attempts = self.integer(s.get("attempts"), _join(path, "attempts"), 1, 10, 1)
            if "together" not in s:
                one = target(item, path, s,
                             "'role', 'clinician', 'others_of' or 'together'")
                if one is not None:
                    steps.append(m.EscalationStep(one.role, one.clinician_id, ring, attempts,
                                                  others_of=one.others_of))
                continue
            if any(k in s for k in TARGET_KINDS):
                self.c.error(item, path, None,
                             "exactly one of 'role', 'clinician', 'others_of' or 'together'",
                             "a 'together' step lists its roles and clinicians inside 'together'")
                continue
            tpath = _join(path, "together")
            errors_in_step = len(self.c.errors)
            group: list[m.Target] = []
            for j, entry in enumerate(self.seq(s["together"], tpath,
                                               "a list of {role: ...}, {clinician: ...} "
                                               "or {others_of: ...}")):
                epath = _join(tpath, j)
                e = self.mapping(entry, epath, TARGET_KEYS)
                one = target(entry, epath, e, "'role', 'clinician' or 'others_of'") \
                    if e is not None else None
                if one is None:
                    continue
                if one in group:
                    self.c.error(entry, epath, one.role or one.clinician_id or one.others_of,
                                 "each role or clinician once", "listed twice in this step")
                    continue
                group.append(one)
            several = len(group) >= 2 or any(t.others_of for t in group)
            if not several and len(self.c.errors) == errors_in_step:
                self.c.error(s["together"], tpath, None, "two or more roles or clinicians",
                             "a 'together' step rings several at once; for one, use "
                             "'role' or 'clinician'")
                continue
            steps.append(m.EscalationStep(None, None, ring, attempts, tuple(group)))
        if enode is not None and not self.seq(enode, "on_call.escalation"):
            self.c.error(enode, "on_call.escalation", None, "at least one step",
                         "the escalation chain is empty")

        we = m.WhenExhausted()
        if "when_exhausted" in f:
            w = self.mapping(f["when_exhausted"], "on_call.when_exhausted", EXHAUSTED_KEYS) or {}
            action = self.choice(w.get("action"), "on_call.when_exhausted.action",
                                 m.EXHAUSTED_ACTIONS)
            renotify = self.integer(w.get("renotify_minutes"),
                                    "on_call.when_exhausted.renotify_minutes", 1, 120, 5)
            per_person = self.integer(w.get("attempts_per_person"),
                                      "on_call.when_exhausted.attempts_per_person", 1, 20, 1)
            limit = (self.integer(w.get("max_attempts"), "on_call.when_exhausted.max_attempts",
                                  1, 200, 0) or None) if "max_attempts" in w else None
            we = m.WhenExhausted(action or we.action, renotify, per_person or 1, limit)
        wait = self.integer(f.get("max_caller_wait_seconds"), "on_call.max_caller_wait_seconds",
                            10, 900, 120)
        if len(self.c.errors) > errors_before:
            return None
        return m.OnCall(m.frozen_map(clinicians), m.frozen_map(rotations),
                        tuple(sorted((s for s, _, _ in shifts), key=lambda s: s.start)),
                        ical_shifts, tuple(steps), we, wait, ical_file, self.ical_source)

    def handoff_turns(self, node: yaml.Node | None, h: Mapping[str, yaml.Node], path: str
                      ) -> tuple[int | None, tuple[int, ...]] | None:
        """(weekday or None, days of each turn) from a handoff's weekday, every_days or
        pattern (exactly one of them)."""
        given = [k for k in HANDOFF_KINDS if k in h]
        if node is None or not isinstance(node, yaml.MappingNode):
            return None
        if len(given) != 1:
            self.c.error(node, path, ", ".join(given) or None,
                         "exactly one of weekday (weekly), every_days (e.g. 1: daily) or "
                         "pattern (e.g. [2, 2, 3])",
                         "a handoff needs exactly one of weekday, every_days or pattern"
                         + (f", not {' and '.join(given)}" if given else ""))
            return None
        kind = given[0]
        kpath = _join(path, kind)
        if kind == "weekday":
            wd = self.choice(h["weekday"], kpath, WEEKDAYS)
            return None if wd is None else (WEEKDAYS.index(wd), (7,))
        if kind == "every_days":
            errors = len(self.c.errors)
            days = self.integer(h["every_days"], kpath, *TURN_DAYS, 0)
            return None if len(self.c.errors) > errors else (None, (days,))
        items = self.seq(h["pattern"], kpath, "a list of days per turn, e.g. [2, 2, 3]")
        errors = len(self.c.errors)
        pattern = tuple(self.integer(item, _join(kpath, j), *TURN_DAYS, 0)
                        for j, item in enumerate(items))
        if len(self.c.errors) > errors:
            return None
        if not 1 <= len(pattern) <= MAX_PATTERN_TURNS:
            self.c.error(h["pattern"], kpath, len(pattern),
                         f"at least one and at most {MAX_PATTERN_TURNS} turns, e.g. [2, 2, 3]",
                         "the pattern needs at least one turn" if not pattern else
                         f"the pattern has {len(pattern)} turns")
            return None
        return None, pattern

    def check_overlaps(self, shifts: list[tuple[m.Shift, yaml.Node, str]]) -> None:
        """Two explicit shifts for one role may not overlap: who would be called?"""
        by_role: dict[str, list[tuple[m.Shift, yaml.Node, str]]] = {}
        for entry in shifts:
            by_role.setdefault(entry[0].role, []).append(entry)
        for entries in by_role.values():
            entries.sort(key=lambda e: e[0].start)
            for (a, _, apath), (b, bnode, bpath) in zip(entries, entries[1:], strict=False):
                if b.start < a.end:
                    self.c.error(bnode, bpath, f"{fmt_local(b.start, self.tz)}",
                                 f"a start at or after {fmt_local(a.end, self.tz)}",
                                 f"this {b.role} shift overlaps {apath} "
                                 f"({a.clinician_id} until {fmt_local(a.end, self.tz)})")

    def ical(self, node: yaml.Node, clinicians: Mapping[str, m.Clinician]
             ) -> tuple[tuple[m.Shift, ...], str | None]:
        from ivr.rules.ical import IcalProblem, read_ical_shifts

        f = self.mapping(node, "on_call.ical", ICAL_KEYS) or {}
        rel = self.text(f.get("file"), "on_call.ical.file", "a path to an .ics file")
        prop = self.text(f.get("clinician_from"), "on_call.ical.clinician_from",
                         "an iCal property name such as SUMMARY") or "SUMMARY"
        if rel is None:
            return (), None
        fnode = f["file"]
        try:
            data = read_bounded(self.base_dir / rel, MAX_ICAL_FILE_BYTES)
        except InputRefused as exc:
            self.c.error(fnode, "on_call.ical.file", rel,
                         f"a readable .ics file next to the YAML, a regular file of at most "
                         f"{MAX_ICAL_FILE_BYTES >> 20} MiB", f"cannot read {rel!r}: {exc}")
            return (), None
        self.ical_bytes = data
        start = self.now - timedelta(days=ICAL_PAST_DAYS)
        end = self.now + timedelta(days=ICAL_FUTURE_DAYS)
        try:
            shifts = read_ical_shifts(data, self.tz, clinicians, start, end, prop.upper(),
                                      self.deadline)
        except IcalProblem as exc:
            self.c.error(fnode, "on_call.ical.file", rel, "a valid iCalendar file", str(exc))
            return (), None
        except LoadTimeout as exc:
            exc.locate(self.c.file, fnode.start_mark.line + 1, fnode.start_mark.column + 1,
                       "on_call.ical.file")
            raise
        entries = [(s, f["file"], f"on_call.ical ({s.label})") for s in shifts]
        self.check_overlaps(entries)
        self.ical_source = m.IcalSource(data, self.tz.key, prop.upper(),
                                        tuple(clinicians.values()))
        return tuple(shifts), rel

    def delivery(self, node: yaml.Node | None) -> m.Delivery:
        f = self.mapping(node, "delivery", DELIVERY_KEYS) or {}
        fax = self.phone(f.get("fax"), "delivery.fax") if "fax" in f else None
        email = self.text(f.get("email"), "delivery.email", "an e-mail address", EMAIL_RE) \
            if "email" in f else None
        url = secret = None
        if "webhook" in f:
            w = self.mapping(f["webhook"], "delivery.webhook", WEBHOOK_KEYS) or {}
            url = self.text(w.get("url"), "delivery.webhook.url", "an https:// URL",
                            re.compile(r"^https?://\S+$"))
            secret = self.text(w.get("secret_env"), "delivery.webhook.secret_env",
                               "an environment variable name such as SUNNY_WEBHOOK_SECRET",
                               ENV_RE) if "secret_env" in w else None
        return m.Delivery(fax, email, url, secret)

    def retention(self, node: yaml.Node | None) -> m.Retention:
        f = self.mapping(node, "retention", RETENTION_KEYS) or {}
        d = m.Retention()
        recordings = self.integer(f.get("recordings_days"), "retention.recordings_days",
                                  *RECORDINGS_DAYS, d.recordings_days)
        records = self.integer(f.get("records_days"), "retention.records_days", *RECORDS_DAYS,
                               0) if "records_days" in f else 0
        if records and records < recordings:
            # A record without its recordings is fine; recordings without a record are not.
            given = "" if "recordings_days" in f else " (the default)"
            self.c.error(f["records_days"], "retention.records_days", records,
                         f"records_days >= recordings_days ({recordings})",
                         f"records_days {records} is shorter than recordings_days "
                         f"{recordings}{given}: recordings would outlive their call")
        return m.Retention(recordings, records or None)


def parse_time(value: str, allow_24: bool = False) -> int | None:
    """Minutes past midnight for 'HH:MM', or None ('25:00', '8', '8-17' are not times)."""
    match = TIME_RE.match(value)
    if not match:
        return None
    hh, mm = int(match.group(1)), int(match.group(2))
    if allow_24 and hh == 24 and mm == 0:
        return MINUTES_PER_DAY
    if hh > 23 or mm > 59:
        return None
    return hh * 60 + mm


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


def coverage_warnings(practice: m.Practice, col: Collector, node: yaml.Node | None,
                      now: datetime) -> None:
    """Warn about stretches in the next 30 days when an escalated-to role has nobody."""
    from ivr.rules.oncall import rotation_begins, timeline

    roles = {t.role for s in practice.on_call.escalation for t in s.targets if t.role}
    for role, cid, start, end, _src in timeline(practice, now, now + timedelta(days=COVERAGE_DAYS)):
        if role in roles and cid is None:
            span = f"{fmt_local(start, practice.tz)} to {fmt_local(end, practice.tz)}"
            rot = practice.on_call.rotations.get(role)
            why = ""
            if rot is not None and end <= (begins := rotation_begins(rot, practice.tz)):
                why = f" (before the {role} rotation starts, {fmt_local(begins, practice.tz)})"
            col.warn(node, "on_call", span, f"a {role} on call at all times",
                     f"no {role} on call from {span}{why}")


def clock_change_warnings(practice: m.Practice, builder: Builder, now: datetime) -> None:
    """Warn of opening hours and handoffs that a DST change in the next year skips or
    doubles, with the instant taken (the first such date only)."""
    from ivr.rules.oncall import _turn
    from ivr.rules.oncall import rotation_begins as oncall_begins

    tz = practice.tz
    days = clock_change_days(tz, now.astimezone(tz).date(), CLOCK_CHANGE_DAYS)

    def check(node: yaml.Node, path: str, day: date, minute: int) -> bool:
        wall = datetime.combine(day, datetime.min.time()) + timedelta(minutes=minute)
        note = wall_time_note(wall, tz)
        if note is not None:
            builder.c.warn(node, path, f"{wall:%H:%M}", "a time of day clear of the "
                           "clock change (e.g. 03:00 instead of 02:30)", note)
        return note is not None

    for weekday, p, node, path in builder.period_nodes:
        for day in days:
            ends = [] if p.crosses_midnight else [p.end]
            if p.crosses_midnight and day.weekday() == (weekday + 1) % 7:
                if check(node, path, day, p.end):
                    break
            if day.weekday() == weekday and any(check(node, path, day, mm)
                                                for mm in (p.start, *ends)):
                break
    for role, (node, path) in builder.handoff_nodes.items():
        rot = practice.on_call.rotations[role]
        for day in days:
            t = local_instant(day, rot.handoff_minute, tz)
            if t >= oncall_begins(rot, tz) and _turn(rot, tz, t)[1] == day \
                    and check(node, path, day, rot.handoff_minute):
                break


def build_file(path: Path, display: str, now: datetime, deadline: Deadline = UNLIMITED
               ) -> tuple[m.Practice | None, Builder, bytes]:
    """Read, parse and validate one YAML file."""
    col = Collector(display)
    builder = Builder(col, path.parent, now, deadline)
    expected = f"a readable UTF-8 YAML file of at most {MAX_RULES_FILE_BYTES >> 20} MiB"
    try:
        raw = read_bounded(path, MAX_RULES_FILE_BYTES)
    except InputRefused as exc:
        col.error(None, "", display, expected, f"cannot read file: {exc}")
        return None, builder, b""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        col.errors.append(m.Issue(display, line, column, "", None, expected,
                                  f"cannot read file: not UTF-8 ({exc.reason})"))
        return None, builder, raw
    try:
        root = compose(text, display)
    except TooDeep as exc:
        mark = exc.problem_mark
        line, colno = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        col.errors.append(m.Issue(display, line, colno, "", None,
                                  f"at most {MAX_DEPTH} levels of nesting", str(exc.problem)))
        return None, builder, raw
    except yaml.reader.ReaderError as exc:
        # A control character such as NUL: PyYAML gives its offset, not a mark.
        before = text[:exc.position]
        line, colno = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        col.errors.append(m.Issue(display, line, colno, "", f"#x{exc.character:04x}"
                                  if isinstance(exc.character, int) else None,
                                  "printable text", f"YAML error: {exc.reason}"))
        return None, builder, raw
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, colno = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        col.errors.append(m.Issue(display, line, colno, "", None, "valid YAML",
                                  f"YAML syntax error: {exc.problem or exc}"))
        return None, builder, raw
    except yaml.YAMLError as exc:
        col.error(None, "", None, "valid YAML", f"YAML error: {exc}")
        return None, builder, raw
    if root is None:
        col.error(None, "", None, "a practice mapping", "the file is empty")
        return None, builder, raw
    findings = check_limits(root, deadline.check)
    if findings:  # the validator would read what is over a limit: stop here
        for fd in findings:
            col.error(fd.node, fd.key, fd.value, fd.expected, fd.message)
        return None, builder, raw
    deadline.check()
    practice = builder.build(root)
    if practice is not None:
        coverage_warnings(practice, col, _find(root, "on_call"), now)
        clock_change_warnings(practice, builder, now)
    return practice, builder, raw


def _find(root: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(root, yaml.MappingNode):
        for k, _ in root.value:
            if getattr(k, "value", None) == key:
                return k
    return None
