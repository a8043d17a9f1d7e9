"""The validator's tables: each section's keys (name -> required?), and the patterns,
ranges and defaults of the values.

schema.py builds the JSON Schema from the same key tables.
"""

from __future__ import annotations

import re

from ivr.rules.limits import MAX_YEAR, MIN_YEAR
from ivr.rules.prompts import DEFAULT_PROMPTS
from ivr.rules.timeutil import WEEKDAYS

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
