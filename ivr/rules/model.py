"""Immutable objects that a validated set of routing rules loads into."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers


class Disposition(StrEnum):
    """What a triage key means, most urgent first. The engine knows what each one does:
    emergency/urgent reach a clinician now, the others become a message."""

    EMERGENCY = "emergency"
    URGENT = "urgent"
    PRESCRIPTION = "prescription"
    APPOINTMENT = "appointment"
    ROUTINE = "routine"


DISPOSITIONS = tuple(Disposition)
BRIDGE_DISPOSITIONS = frozenset({Disposition.EMERGENCY, Disposition.URGENT})
MESSAGE_DISPOSITIONS = tuple(d for d in Disposition if d not in BRIDGE_DISPOSITIONS)
ROLES = ("nurse", "physician")
INTAKE_FIELDS = ("callback", "dob", "name", "reason")
OVERFLOW_MODES = ("intake_then_bridge", "intake_same_day_callback")
EXHAUSTED_ACTIONS = ("callback_until_acknowledged", "take_message")


def frozen_map(data: Mapping[Any, Any] | None = None) -> Mapping[Any, Any]:
    """A read-only view of a fresh dict (callers cannot mutate rules)."""
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True)
class Issue:
    """One validation error or warning, located in a file."""

    file: str
    line: int
    column: int
    key: str
    value: Any
    expected: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.key or '(top)'}: {self.message}"
        if self.expected:
            text += f"; expected {self.expected}"
        return text

    def to_json(self) -> dict[str, Any]:
        value = self.value if isinstance(self.value, (str, int, float, bool, type(None))) else str(
            self.value
        )
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "key": self.key,
            "value": value,
            "expected": self.expected,
            "message": self.message,
            "text": str(self),
        }


@dataclass(frozen=True)
class Period:
    """One opening period in minutes past midnight; end <= start means it crosses midnight."""

    start: int
    end: int

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def __str__(self) -> str:
        from ivr.rules.timeutil import fmt_minute

        return f"{fmt_minute(self.start)}-{fmt_minute(self.end)}"


@dataclass(frozen=True)
class CustomHoliday:
    """A practice's own closed date: one-off (year set) or yearly (year None)."""

    name: str
    month: int
    day: int
    year: int | None = None
    closed_from: int | None = None  # minutes; None = from midnight
    closed_until: int | None = None  # minutes; None = until the next midnight

    def applies_to(self, day: date) -> bool:
        return day.month == self.month and day.day == self.day and self.year in (None, day.year)


@dataclass(frozen=True)
class Holidays:
    """Public holidays from the `holidays` package plus the practice's own dates."""

    country: str | None
    subdivision: str | None
    observed: bool = True
    exclude: tuple[str, ...] = ()
    custom: tuple[CustomHoliday, ...] = ()
    # None: every public holiday (minus `exclude`); else the only ones that close.
    only: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Override:
    """Force open or closed between two instants (end None: until cleared).

    Rules overrides come from YAML; manual ones are passed to the engine by the caller.
    """

    start: datetime
    end: datetime | None
    is_open: bool
    reason: str
    manual: bool = False


@dataclass(frozen=True)
class Prompt:
    """What plays: a recorded file when given, else the text (spoken by TTS)."""

    id: str
    text: str
    file: str | None = None


@dataclass(frozen=True)
class Intake:
    collect: tuple[str, ...] = INTAKE_FIELDS
    reason_max_seconds: int = 60
    name_max_seconds: int = 8
    retries: int = 2
    input_timeout_seconds: int = 6


@dataclass(frozen=True)
class Menu:
    """The triage menu: one key -> one disposition kind."""

    options: Mapping[str, str]
    default: str
    retries: int = 2
    timeout_seconds: int = 6


@dataclass(frozen=True)
class Overflow:
    mode: str = "intake_then_bridge"
    bridge_to: tuple[str, ...] = ()  # front-desk numbers; empty = the on-call dial list
    ring_seconds: int = 20


@dataclass(frozen=True)
class Clinician:
    id: str
    name: str
    role: str
    phone: str  # E.164
    # Digits a clinician keys when calling the service from this phone to hear and
    # acknowledge pending call-backs; None: that phone gets the patient flow.
    pin: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Rotation:
    """A rotation of turns handed over at `handoff_minute`, `order` repeating forever.

    Weekly (`handoff_weekday` set): `order[0]` covers the week containing `anchor`.
    Otherwise `order[0]`'s turn begins on `anchor` itself. Turns last `pattern[k]`
    days in turn ((7,) weekly, (1,) daily, (2, 2, 3) the 2-2-3 pattern). Nobody is on
    call from the rotation before `start` (None: before its first handoff).
    """

    role: str
    order: tuple[str, ...]
    handoff_weekday: int | None  # Monday = 0; None: every-N-days or a pattern
    handoff_minute: int
    anchor: date
    pattern: tuple[int, ...] = (7,)
    start: datetime | None = None

    @property
    def first_handoff(self) -> date:
        """The local date order[0]'s first turn begins."""
        if self.handoff_weekday is None:
            return self.anchor
        return self.anchor - timedelta(days=(self.anchor.weekday() - self.handoff_weekday) % 7)


@dataclass(frozen=True)
class Shift:
    """An explicit on-call shift (from YAML or an iCal event); wins over the rotation."""

    clinician_id: str
    role: str
    start: datetime
    end: datetime
    source: str  # 'shift' | 'ical'
    label: str = ""


@dataclass(frozen=True)
class Target:
    """Whom a ring reaches: whoever covers `role` at the moment, one named clinician, or
    (`others_of`) every clinician of that role not rung earlier in the chain."""

    role: str | None
    clinician_id: str | None
    others_of: str | None = None


@dataclass(frozen=True)
class EscalationStep:
    role: str | None
    clinician_id: str | None
    ring_seconds: int
    attempts: int
    # A `together:` step rings all its targets at once; the first to accept takes the
    # call and the others stop ringing. Empty for a step naming one role or clinician.
    together: tuple[Target, ...] = ()
    # A role whose members not yet rung in the chain are rung one after another.
    others_of: str | None = None

    @property
    def targets(self) -> tuple[Target, ...]:
        return self.together or (Target(self.role, self.clinician_id, self.others_of),)


@dataclass(frozen=True)
class WhenExhausted:
    action: str = "callback_until_acknowledged"
    renotify_minutes: int = 5
    # Call-backs to one clinician before moving to the next in the chain.
    attempts_per_person: int = 1
    # Attempts before the call is marked "not acknowledged"; None: two rounds of the chain.
    max_attempts: int | None = None


@dataclass(frozen=True)
class IcalSource:
    """A calendar as loaded: the engine expands it around each instant it is asked about."""

    data: bytes = field(repr=False)
    timezone: str
    prop: str  # the property naming the clinician
    clinicians: tuple[Clinician, ...]  # whom its events may name


@dataclass(frozen=True)
class OnCall:
    clinicians: Mapping[str, Clinician]
    rotations: Mapping[str, Rotation]
    shifts: tuple[Shift, ...]
    ical_shifts: tuple[Shift, ...]
    escalation: tuple[EscalationStep, ...]
    when_exhausted: WhenExhausted
    max_caller_wait_seconds: int
    ical_file: str | None = None
    # `ical_shifts` are the events around the load's `now`, for its checks; who is on
    # call at an instant comes from `ical_source`, expanded around that instant.
    ical_source: IcalSource | None = None

    @property
    def roles(self) -> tuple[str, ...]:
        """Roles the rules schedule or escalate to, in a stable order."""
        seen = {r.role for r in self.rotations.values()}
        seen |= {s.role for s in self.shifts + self.ical_shifts}
        seen |= {t.role for s in self.escalation for t in s.targets if t.role}
        return tuple(r for r in ROLES if r in seen)


@dataclass(frozen=True)
class Delivery:
    fax: str | None = None
    email: str | None = None
    webhook_url: str | None = None
    webhook_secret_env: str | None = None


@dataclass(frozen=True)
class Retention:
    """How long a practice keeps its calls, in days from the call's start (ivr.retention.purge).

    Recordings (name, reason, fallback messages) go after `recordings_days`; the whole
    record after `records_days`, or never when it is None.
    """

    recordings_days: int = 365  # Wazo's default: one year
    records_days: int | None = None


@dataclass(frozen=True)
class RedFlags:
    """Phrases that upgrade a routine call (ivr.flows.redflag): the practice's own, and
    whether the built-in ones for its language apply too; and how long a caller may wait
    at most for the reason's transcript before the call goes on without it."""

    phrases: tuple[str, ...] = ()
    defaults: bool = True
    wait_seconds: int = 6


@dataclass(frozen=True, repr=False)
class Practice:
    """One practice's complete, validated rules."""

    id: str
    name: str
    timezone: str
    tz: ZoneInfo = field(repr=False, compare=False)
    country: str
    subdivision: str | None
    language: str
    dids: tuple[str, ...]
    forwarding_numbers: tuple[str, ...]
    hours: tuple[tuple[Period, ...], ...]  # index 0 = Monday
    holidays: Holidays
    overrides: tuple[Override, ...]
    prompts: Mapping[str, Prompt]
    intake: Intake
    menu: Menu
    overflow: Overflow
    on_call: OnCall
    fallback_numbers: tuple[str, ...]
    delivery: Delivery
    retention: Retention = field(default_factory=Retention)
    red_flags: RedFlags = field(default_factory=RedFlags)
    source_file: str = ""
    # Languages a caller may choose from, the default (`language`) first; () or one: no
    # choice is offered. Each offered language's full prompt table (`prompts` is the
    # default's), validated to hold every prompt the practice wrote in each language.
    languages: tuple[str, ...] = ()
    prompts_by_language: Mapping[str, Mapping[str, Prompt]] = field(
        default_factory=frozen_map, repr=False)

    @property
    def offered(self) -> tuple[str, ...]:
        """The languages callers may hear, the default first."""
        return self.languages or (self.language,)

    def prompts_in(self, language: str | None) -> Mapping[str, Prompt]:
        """The prompts a caller speaking `language` hears (the default's for None)."""
        if language is None or language == self.language:
            return self.prompts
        return self.prompts_by_language.get(language, self.prompts)

    def __repr__(self) -> str:  # the full tree is far too long for logs and test reports
        return f"Practice(id={self.id!r}, file={self.source_file!r})"


def normalise_number(raw: str | None, regions: tuple[str, ...] = ("US",)) -> str | None:
    """E.164 form of a dialled/caller number, or None when it is no usable number.

    'anonymous', 'unknown', 'restricted', empty strings and short codes are no number.
    Numbers without '+' are tried against each region in turn (the practices' countries).
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text or text.lower() in {"anonymous", "unknown", "restricted", "private", "unavailable"}:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    for region in (None,) if text.startswith("+") else regions:
        try:
            num = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    return None


@dataclass(frozen=True, repr=False)
class RuleSet:
    """All practices, indexed by the numbers that reach them."""

    practices: Mapping[str, Practice]
    digest: str
    by_did: Mapping[str, str] = field(repr=False)
    by_forwarding: Mapping[str, str] = field(repr=False)
    regions: tuple[str, ...] = ("US",)
    # File name -> sha256 prefix of its content (YAML files and the calendars they use):
    # what a reload changed, by name, for the audit log.
    files: Mapping[str, str] = field(default_factory=frozen_map, repr=False)

    def route(self, dialled: str | None, forwarded_from: str | None = None) -> Practice | None:
        """The practice a call belongs to, or None for an unknown number.

        Precedence: the forwarding number (SIP Diversion) first when it is one a
        practice declared, because it is the number the patient actually dialled;
        several practices may forward to one shared trunk DID. Then the dialled DID.
        """
        fwd = normalise_number(forwarded_from, self.regions)
        if fwd is not None and fwd in self.by_forwarding:
            return self.practices[self.by_forwarding[fwd]]
        did = normalise_number(dialled, self.regions)
        if did is not None and did in self.by_did:
            return self.practices[self.by_did[did]]
        # A forwarded call whose Diversion names a practice's DID still belongs to it.
        if fwd is not None and fwd in self.by_did:
            return self.practices[self.by_did[fwd]]
        return None

    def __repr__(self) -> str:
        return f"RuleSet(practices={sorted(self.practices)!r}, digest={self.digest!r})"
