"""The shape of a practice file, declared once.

Each section is an `Obj`: its keys in order, each required or optional, with the JSON
Schema of its value. Both the validator's key tables (`Obj.keys`, name -> required?, read
by ivr/rules/validate/tables.py) and the JSON Schema (`render`, assembled in schema.py
and shipped as routing_rules/schema.json) are generated from these declarations, so a key
added, removed or made optional here changes both. (Chosen over a test that compares
three hand-written copies: one declaration cannot drift at all, and the validator's code
stays as it was, reading the same name -> required tables.)

What the validator checks beyond the schema (real phone numbers, known zones, clinician
ids that exist, overlaps) is in ivr/rules/validate/; the dataclasses it builds are in
model.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ivr.rules.model import DISPOSITIONS, EXHAUSTED_ACTIONS, INTAKE_FIELDS, OVERFLOW_MODES, ROLES
from ivr.rules.prompts import DEFAULT_PROMPTS
from ivr.rules.timeutil import WEEKDAYS
from ivr.texts import LANGUAGE_TAGS

# Values the declarations and the validator share.
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
KEY_RE = re.compile(r"^[0-9*#]$")
PROMPT_IDS = tuple(k for k in DEFAULT_PROMPTS if k not in ("menu", "menu_invalid", "menu_no_input"))
HANDOFF_KINDS = ("weekday", "every_days", "pattern")
TURN_DAYS = (1, 28)  # one turn of a rotation: a day to four weeks
MAX_PATTERN_TURNS = 28
TARGET_KINDS = ("role", "clinician", "others_of")
RECORDINGS_DAYS = (7, 3650)  # at least a week: the morning report and call-backs need them
RECORDS_DAYS = (30, 3650)
RED_FLAG_WAIT = (1, 20)  # seconds a caller may wait for the reason's transcript
RED_FLAG_CHARS = (3, 80)


@dataclass(frozen=True)
class Obj:
    """A mapping with a fixed set of keys: name -> (required?, schema of the value).

    A value's schema is a JSON Schema dict that may hold other Objs anywhere inside it.
    `extra` is added after the generated parts (oneOf, not).
    """

    fields: Mapping[str, tuple[bool, Any]]
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> dict[str, bool]:
        """The validator's key table: name -> required?, in declaration order."""
        return {name: required for name, (required, _) in self.fields.items()}

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                               "properties": {k: render(v) for k, (_, v) in self.fields.items()}}
        required = [k for k, req in self.keys.items() if req]
        if required:
            out["required"] = required
        if self.description:
            out["description"] = self.description
        out.update(render(dict(self.extra)))
        return out


def render(value: Any) -> Any:
    """JSON Schema with every Obj inside `value` turned into its object schema."""
    if isinstance(value, Obj):
        return value.schema()
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v) for v in value]
    return value


def req(schema: Any) -> tuple[bool, Any]:
    return True, schema


def opt(schema: Any) -> tuple[bool, Any]:
    return False, schema


def _int(lo: int, hi: int, description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "minimum": lo, "maximum": hi}
    if description:
        out["description"] = description
    return out


# ---- shared value schemas ($defs in schema.json) -------------------------------------------
TIME = {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        "description": "Local time of day, HH:MM (24-hour)."}
TIME_OR_24 = {"type": "string", "pattern": r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
              "description": "Local time of day, HH:MM; 24:00 means the end of the day."}
PERIOD = {"type": "string",
          "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9] ?- ?(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
          "description": "Opening period HH:MM-HH:MM; 17:00-08:00 crosses midnight."}
PHONE = {"type": "string", "pattern": r"^\+[1-9][0-9]{6,14}$",
         "description": "Phone number in E.164 form, e.g. +16175550100."}
LOCAL_DT = {"type": "string",
            "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?"
                       r"(Z|[+-][0-9]{2}:?[0-9]{2})?$",
            "description": "Local date and time YYYY-MM-DD HH:MM in the practice's zone."}
DATE = {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
SLUG = {"type": "string", "pattern": SLUG_RE.pattern}
PHONES = {"type": "array", "items": {"$ref": "#/$defs/phone"}}
STRING = {"type": "string"}
ROLE = {"enum": list(ROLES)}
DISPOSITION = {"enum": list(DISPOSITIONS)}
REF_TIME = {"$ref": "#/$defs/time"}
REF_PHONE = {"$ref": "#/$defs/phone"}
REF_LOCAL_DT = {"$ref": "#/$defs/local_datetime"}
REF_PROMPT = {"$ref": "#/$defs/prompt"}

# ---- the sections ---------------------------------------------------------------------------
PROMPT = Obj({"text": opt(STRING), "file": opt(STRING)})
ONE_PROMPT = {"anyOf": [STRING, PROMPT]}
# A practice offering several languages gives each prompt once per language.
PER_LANGUAGE = Obj({tag: opt(ONE_PROMPT) for tag in LANGUAGE_TAGS},
                   "The prompt in each language the practice offers (language -> text).",
                   extra={"minProperties": 1})
PROMPT_DEF = {"anyOf": [STRING, PROMPT, PER_LANGUAGE],
              "description": "Text to speak, or {file: recording, text: transcript}; with "
              "several languages, one of those per language: {en-US: ..., es-US: ...}."}
LANGUAGE = {"enum": list(LANGUAGE_TAGS)}

PRACTICE = Obj({
    "id": req({**SLUG, "description": "Short id: lowercase letters, digits, dashes."}),
    "name": req(STRING),
    "timezone": req({"type": "string", "description": "IANA zone, e.g. America/New_York."}),
    "country": req({"type": "string", "pattern": "^[A-Za-z]{2}$"}),
    "subdivision": opt(STRING),
    "language": opt({**LANGUAGE,
                     "description": "The language callers are spoken to in (default en-US)."}),
    "languages": opt({"type": "array", "items": LANGUAGE, "minItems": 1, "uniqueItems": True,
                      "description": "The languages callers may choose from at the start "
                      "of a call; the first is the default (instead of language)."}),
    "dids": req({**PHONES, "minItems": 1}),
    "forwarding_numbers": opt(PHONES),
}, extra={"not": {"required": ["language", "languages"]}})
HOURS = Obj({d: opt({"type": ["array", "null"], "items": {"$ref": "#/$defs/period"}})
             for d in WEEKDAYS}, "Weekly opening periods per day.")
HOLIDAY_DATE = Obj({
    "date": req({"type": "string", "pattern": r"^([0-9]{4}-)?[0-9]{2}-[0-9]{2}$",
                 "description": "YYYY-MM-DD once, or MM-DD every year."}),
    "name": req(STRING),
    "closed_from": opt(REF_TIME),
    "closed_until": opt(TIME_OR_24),
})
HOLIDAYS = Obj({
    "country": opt(STRING),
    "subdivision": opt(STRING),
    "observed": opt({"type": "boolean"}),
    "exclude": opt({"type": "array", "items": STRING,
                    "description": "Public holidays this practice stays open on."}),
    "only": opt({"type": "array", "items": STRING,
                 "description": "The only public holidays that close the practice "
                 "(not with exclude)."}),
    "dates": opt({"type": "array", "items": HOLIDAY_DATE}),
}, extra={"not": {"required": ["only", "exclude"]}})
OVERRIDE = Obj({
    "from": req(REF_LOCAL_DT),
    "until": opt(REF_LOCAL_DT),
    "state": req({"enum": ["open", "closed"]}),
    "reason": req(STRING),
})
PROMPTS = Obj({k: opt(REF_PROMPT) for k in PROMPT_IDS})
INTAKE = Obj({
    "collect": opt({"type": "array", "items": {"enum": list(INTAKE_FIELDS)},
                    "uniqueItems": True}),
    "reason_max_seconds": opt(_int(5, 300)),
    "name_max_seconds": opt(_int(2, 60)),
    "retries": opt(_int(0, 5)),
    "input_timeout_seconds": opt(_int(1, 30)),
})
TRIAGE = Obj({
    "keys": req({"type": "object", "minProperties": 1,
                 "propertyNames": {"pattern": KEY_RE.pattern},
                 "additionalProperties": DISPOSITION}),
    "default": req({**DISPOSITION, "description": "Disposition when no valid key was pressed."}),
    "retries": opt(_int(0, 5)),
    "timeout_seconds": opt(_int(1, 30)),
    "prompt": opt(REF_PROMPT),
    "invalid_prompt": opt(REF_PROMPT),
    "no_input_prompt": opt(REF_PROMPT),
})
OVERFLOW = Obj({
    "mode": req({"enum": list(OVERFLOW_MODES)}),
    "bridge_to": opt(PHONES),
    "ring_seconds": opt(_int(5, 120)),
})
CLINICIAN = Obj({
    "id": req(SLUG),
    "name": req(STRING),
    "role": req(ROLE),
    "phone": req(REF_PHONE),
    "pin": opt({"type": "string", "pattern": "^[0-9]{4,8}$",
                "description": "Digits this clinician keys to hear pending call-backs by phone."}),
})
HANDOFF = Obj({
    "weekday": opt({"enum": list(WEEKDAYS), "description": "Weekly turns."}),
    "every_days": opt(_int(*TURN_DAYS, "Turns of this many days (1: daily).")),
    "pattern": opt({"type": "array", "items": _int(*TURN_DAYS), "minItems": 1,
                    "maxItems": MAX_PATTERN_TURNS,
                    "description": "Days of each turn, in turn, e.g. [2, 2, 3]."}),
    "time": req(REF_TIME),
}, extra={"oneOf": [{"required": [k]} for k in HANDOFF_KINDS]})
ROTATION = Obj({
    "role": req(ROLE),
    "order": req({"type": "array", "items": SLUG, "minItems": 1}),
    "handoff": req(HANDOFF),
    "anchor": req({**DATE, "description": "Weekly: a date in the first person's week; "
                   "otherwise the date the first person's turn begins."}),
    "start": opt({**REF_LOCAL_DT, "description": "Nobody is on call from this rotation before "
                  "this instant (default: its first handoff)."}),
})
SHIFT = Obj({
    "clinician": req(SLUG),
    "start": req(REF_LOCAL_DT),
    "end": req(REF_LOCAL_DT),
    "role": opt(ROLE),
    "note": opt(STRING),
})
ICAL = Obj({"file": req(STRING), "clinician_from": opt(STRING)})
OTHERS_OF = {"enum": list(ROLES), "description": "Every clinician of this role not "
             "rung earlier in the chain (one after another; inside together, at once)."}
TARGET = Obj({"role": opt(ROLE), "clinician": opt(SLUG), "others_of": opt(OTHERS_OF)},
             extra={"oneOf": [{"required": [k]} for k in TARGET_KINDS]})
STEP = Obj({
    "role": opt(ROLE),
    "clinician": opt(SLUG),
    "others_of": opt(OTHERS_OF),
    "together": opt({"type": "array", "items": TARGET, "minItems": 1,
                     "description": "Rung at the same time; the first to press 1 takes the "
                     "call."}),
    "ring_seconds": opt(_int(5, 120)),
    "attempts": opt(_int(1, 10)),
}, extra={"oneOf": [{"required": [k]} for k in (*TARGET_KINDS, "together")]})
EXHAUSTED = Obj({
    "action": req({"enum": list(EXHAUSTED_ACTIONS)}),
    "renotify_minutes": opt(_int(1, 120)),
    "attempts_per_person": opt(_int(1, 20)),
    "max_attempts": opt(_int(1, 200)),
})
ON_CALL = Obj({
    "clinicians": req({"type": "array", "items": CLINICIAN, "minItems": 1}),
    "rotations": opt({"type": "array", "items": ROTATION}),
    "shifts": opt({"type": "array", "items": SHIFT}),
    "ical": opt(ICAL),
    "escalation": req({"type": "array", "items": STEP, "minItems": 1}),
    "when_exhausted": opt(EXHAUSTED),
    "max_caller_wait_seconds": opt(_int(10, 900)),
})
WEBHOOK = Obj({
    "url": req({"type": "string", "format": "uri"}),
    "secret_env": opt({"type": "string", "pattern": ENV_RE.pattern}),
})
DELIVERY = Obj({
    "fax": opt(REF_PHONE),
    "email": opt({"type": "string", "format": "email"}),
    "webhook": opt(WEBHOOK),
})
RETENTION = Obj({
    "recordings_days": opt(_int(*RECORDINGS_DAYS, "Days a call's recordings (name, reason, "
                                "fallback message) are kept; default 365.")),
    "records_days": opt(_int(*RECORDS_DAYS, "Days the whole call record is kept (intake, "
                             "timeline, legs, notes); at least recordings_days. Left out: "
                             "kept.")),
}, "How long this practice's calls are kept; purged automatically, every deletion logged.")
RED_FLAGS = Obj({
    "phrases": opt({"type": "array", "items": {"type": "string",
                                               "minLength": RED_FLAG_CHARS[0],
                                               "maxLength": RED_FLAG_CHARS[1]},
                    "description": "Words or phrases that may mean an emergency, in the "
                    "practice's language, added to the built-in ones."}),
    "defaults": opt({"type": "boolean", "description": "Whether the built-in phrases for "
                     "the practice's language apply too (default true)."}),
    "wait_seconds": opt(_int(*RED_FLAG_WAIT, "Longest wait for the reason's transcript "
                             "before a routine call goes on without the check; default 6.")),
}, "A routine caller whose reason's transcript holds one of these is offered the on-call.")
TOP = Obj({
    "practice": req(PRACTICE),
    "hours": opt(HOURS),
    "holidays": opt(HOLIDAYS),
    "overrides": opt({"type": "array", "items": OVERRIDE}),
    "prompts": opt(PROMPTS),
    "intake": opt(INTAKE),
    "triage": req(TRIAGE),
    "overflow": opt(OVERFLOW),
    "on_call": req(ON_CALL),
    "fallback_numbers": opt(PHONES),
    "delivery": opt(DELIVERY),
    "retention": opt(RETENTION),
    "red_flags": opt(RED_FLAGS),
}, "One practice of the after-hours answering service.")
DEFS = {"time": TIME, "period": PERIOD, "phone": PHONE, "local_datetime": LOCAL_DT,
        "prompt": PROMPT_DEF}
