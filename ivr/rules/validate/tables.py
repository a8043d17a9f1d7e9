"""The validator's tables: each section's keys (name -> required?), and the patterns,
ranges and defaults of the values.

The key tables are generated from shape.py, as the JSON Schema is; patterns and ranges
that the schema states too (slugs, turn days, retention days...) are defined there.
"""

from __future__ import annotations

import re

from ivr.rules import shape as S
from ivr.rules.limits import MAX_YEAR, MIN_YEAR

# The key tables (name -> required?), generated from the declarations in shape.py, which
# the JSON Schema is rendered from too.
TOP_KEYS = S.TOP.keys
PRACTICE_KEYS = S.PRACTICE.keys
HOURS_KEYS = S.HOURS.keys
HOLIDAYS_KEYS = S.HOLIDAYS.keys
HOLIDAY_DATE_KEYS = S.HOLIDAY_DATE.keys
OVERRIDE_KEYS = S.OVERRIDE.keys
PROMPTS_KEYS = S.PROMPTS.keys
PROMPT_KEYS = S.PROMPT.keys
PER_LANGUAGE_KEYS = S.PER_LANGUAGE.keys
INTAKE_KEYS = S.INTAKE.keys
TRIAGE_KEYS = S.TRIAGE.keys
OVERFLOW_KEYS = S.OVERFLOW.keys
ON_CALL_KEYS = S.ON_CALL.keys
CLINICIAN_KEYS = S.CLINICIAN.keys
ROTATION_KEYS = S.ROTATION.keys
HANDOFF_KEYS = S.HANDOFF.keys
SHIFT_KEYS = S.SHIFT.keys
ICAL_KEYS = S.ICAL.keys
STEP_KEYS = S.STEP.keys
TARGET_KEYS = S.TARGET.keys
EXHAUSTED_KEYS = S.EXHAUSTED.keys
DELIVERY_KEYS = S.DELIVERY.keys
WEBHOOK_KEYS = S.WEBHOOK.keys
RETENTION_KEYS = S.RETENTION.keys
RED_FLAGS_KEYS = S.RED_FLAGS.keys

PIN_RE = re.compile(r"[0-9]{4,8}$")
TIME_RE = re.compile(r"^([0-9]{2}):([0-9]{2})$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
YEARLY_RE = re.compile(r"^([0-9]{2})-([0-9]{2})$")
DATETIME_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?:Z|[+-][0-9]{2}:?[0-9]{2})?$"
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

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
