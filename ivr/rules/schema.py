"""JSON Schema (draft 2020-12) of a practice file, for editors.

Built from the validator's key tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ivr.rules.model import DISPOSITIONS, EXHAUSTED_ACTIONS, INTAKE_FIELDS, OVERFLOW_MODES, ROLES
from ivr.rules.timeutil import WEEKDAYS
from ivr.rules.validate import tables as v

SCHEMA_ID = "https://github.com/ivr-answering/ivr/routing_rules/schema.json"

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
SLUG = {"type": "string", "pattern": v.SLUG_RE.pattern}
PHONES = {"type": "array", "items": {"$ref": "#/$defs/phone"}}


def _obj(keys: Mapping[str, bool], props: Mapping[str, Any], description: str = ""
         ) -> dict[str, Any]:
    """An object schema whose properties are exactly the validator's table of keys."""
    if set(keys) != set(props):
        raise AssertionError(f"schema and validator disagree: {set(keys) ^ set(props)}")
    out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "properties": {k: props[k] for k in keys}}
    required = [k for k, req in keys.items() if req]
    if required:
        out["required"] = required
    if description:
        out["description"] = description
    return out


def _int(lo: int, hi: int, description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "minimum": lo, "maximum": hi}
    if description:
        out["description"] = description
    return out


def json_schema() -> dict[str, Any]:
    """The schema as a dict."""
    prompt = {"anyOf": [{"type": "string"},
                        _obj(v.PROMPT_KEYS, {"text": {"type": "string"},
                                             "file": {"type": "string"}})],
              "description": "Text to speak, or {file: recording, text: transcript}."}
    ref = {"$ref": "#/$defs/prompt"}
    practice = _obj(v.PRACTICE_KEYS, {
        "id": {**SLUG, "description": "Short id: lowercase letters, digits, dashes."},
        "name": {"type": "string"},
        "timezone": {"type": "string", "description": "IANA zone, e.g. America/New_York."},
        "country": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
        "subdivision": {"type": "string"},
        "language": {"type": "string"},
        "dids": {**PHONES, "minItems": 1},
        "forwarding_numbers": PHONES,
    })
    hours = _obj(v.HOURS_KEYS, {d: {"type": ["array", "null"], "items": {"$ref": "#/$defs/period"}}
                                for d in WEEKDAYS}, "Weekly opening periods per day.")
    hol_date = _obj(v.HOLIDAY_DATE_KEYS, {
        "date": {"type": "string", "pattern": r"^([0-9]{4}-)?[0-9]{2}-[0-9]{2}$",
                 "description": "YYYY-MM-DD once, or MM-DD every year."},
        "name": {"type": "string"},
        "closed_from": {"$ref": "#/$defs/time"},
        "closed_until": TIME_OR_24,
    })
    holidays = _obj(v.HOLIDAYS_KEYS, {
        "country": {"type": "string"}, "subdivision": {"type": "string"},
        "observed": {"type": "boolean"},
        "exclude": {"type": "array", "items": {"type": "string"},
                    "description": "Public holidays this practice stays open on."},
        "only": {"type": "array", "items": {"type": "string"},
                 "description": "The only public holidays that close the practice "
                 "(not with exclude)."},
        "dates": {"type": "array", "items": hol_date},
    })
    holidays["not"] = {"required": ["only", "exclude"]}
    override = _obj(v.OVERRIDE_KEYS, {
        "from": {"$ref": "#/$defs/local_datetime"}, "until": {"$ref": "#/$defs/local_datetime"},
        "state": {"enum": ["open", "closed"]}, "reason": {"type": "string"},
    })
    prompts = _obj(v.PROMPTS_KEYS, {k: ref for k in v.PROMPTS_KEYS})
    intake = _obj(v.INTAKE_KEYS, {
        "collect": {"type": "array", "items": {"enum": list(INTAKE_FIELDS)}, "uniqueItems": True},
        "reason_max_seconds": _int(5, 300), "name_max_seconds": _int(2, 60),
        "retries": _int(0, 5), "input_timeout_seconds": _int(1, 30),
    })
    disposition = {"enum": list(DISPOSITIONS)}
    triage = _obj(v.TRIAGE_KEYS, {
        "keys": {"type": "object", "minProperties": 1,
                 "propertyNames": {"pattern": v.KEY_RE.pattern},
                 "additionalProperties": disposition},
        "default": {**disposition, "description": "Disposition when no valid key was pressed."},
        "retries": _int(0, 5), "timeout_seconds": _int(1, 30),
        "prompt": ref, "invalid_prompt": ref, "no_input_prompt": ref,
    })
    overflow = _obj(v.OVERFLOW_KEYS, {
        "mode": {"enum": list(OVERFLOW_MODES)}, "bridge_to": PHONES, "ring_seconds": _int(5, 120),
    })
    clinician = _obj(v.CLINICIAN_KEYS, {"id": SLUG, "name": {"type": "string"},
                                        "role": {"enum": list(ROLES)},
                                        "phone": {"$ref": "#/$defs/phone"},
                                        "pin": {"type": "string", "pattern": "^[0-9]{4,8}$",
                                                "description": "Digits this clinician keys "
                                                "to hear pending call-backs by phone."}})
    rotation = _obj(v.ROTATION_KEYS, {
        "role": {"enum": list(ROLES)},
        "order": {"type": "array", "items": SLUG, "minItems": 1},
        "handoff": {**_obj(v.HANDOFF_KEYS, {
            "weekday": {"enum": list(WEEKDAYS), "description": "Weekly turns."},
            "every_days": _int(*v.TURN_DAYS, "Turns of this many days (1: daily)."),
            "pattern": {"type": "array", "items": _int(*v.TURN_DAYS), "minItems": 1,
                        "maxItems": v.MAX_PATTERN_TURNS,
                        "description": "Days of each turn, in turn, e.g. [2, 2, 3]."},
            "time": {"$ref": "#/$defs/time"}}),
            "oneOf": [{"required": [k]} for k in v.HANDOFF_KINDS]},
        "anchor": {**DATE, "description": "Weekly: a date in the first person's week; "
                   "otherwise the date the first person's turn begins."},
        "start": {"$ref": "#/$defs/local_datetime",
                  "description": "Nobody is on call from this rotation before this "
                  "instant (default: its first handoff)."},
    })
    shift = _obj(v.SHIFT_KEYS, {
        "clinician": SLUG, "start": {"$ref": "#/$defs/local_datetime"},
        "end": {"$ref": "#/$defs/local_datetime"}, "role": {"enum": list(ROLES)},
        "note": {"type": "string"},
    })
    others = {"enum": list(ROLES), "description": "Every clinician of this role not "
              "rung earlier in the chain (one after another; inside together, at once)."}
    target = _obj(v.TARGET_KEYS, {"role": {"enum": list(ROLES)}, "clinician": SLUG,
                                  "others_of": others})
    target["oneOf"] = [{"required": [k]} for k in v.TARGET_KINDS]
    step = _obj(v.STEP_KEYS, {"role": {"enum": list(ROLES)}, "clinician": SLUG,
                              "others_of": others,
                              "together": {"type": "array", "items": target, "minItems": 1,
                                           "description": "Rung at the same time; the "
                                           "first to press 1 takes the call."},
                              "ring_seconds": _int(5, 120), "attempts": _int(1, 10)})
    step["oneOf"] = [{"required": [k]} for k in (*v.TARGET_KINDS, "together")]
    on_call = _obj(v.ON_CALL_KEYS, {
        "clinicians": {"type": "array", "items": clinician, "minItems": 1},
        "rotations": {"type": "array", "items": rotation},
        "shifts": {"type": "array", "items": shift},
        "ical": _obj(v.ICAL_KEYS, {"file": {"type": "string"},
                                   "clinician_from": {"type": "string"}}),
        "escalation": {"type": "array", "items": step, "minItems": 1},
        "when_exhausted": _obj(v.EXHAUSTED_KEYS, {"action": {"enum": list(EXHAUSTED_ACTIONS)},
                                                  "renotify_minutes": _int(1, 120),
                                                  "attempts_per_person": _int(1, 20),
                                                  "max_attempts": _int(1, 200)}),
        "max_caller_wait_seconds": _int(10, 900),
    })
    delivery = _obj(v.DELIVERY_KEYS, {
        "fax": {"$ref": "#/$defs/phone"}, "email": {"type": "string", "format": "email"},
        "webhook": _obj(v.WEBHOOK_KEYS, {"url": {"type": "string", "format": "uri"},
                                         "secret_env": {"type": "string",
                                                        "pattern": v.ENV_RE.pattern}}),
    })
    retention = _obj(v.RETENTION_KEYS, {
        "recordings_days": _int(*v.RECORDINGS_DAYS, "Days a call's recordings (name, reason, "
                                "fallback message) are kept; default 365."),
        "records_days": _int(*v.RECORDS_DAYS, "Days the whole call record is kept (intake, "
                             "timeline, legs, notes); at least recordings_days. Left out: "
                             "kept."),
    }, "How long this practice's calls are kept; purged automatically, every deletion "
       "logged.")
    top = _obj(v.TOP_KEYS, {
        "practice": practice, "hours": hours, "holidays": holidays,
        "overrides": {"type": "array", "items": override}, "prompts": prompts,
        "intake": intake, "triage": triage, "overflow": overflow, "on_call": on_call,
        "fallback_numbers": PHONES, "delivery": delivery, "retention": retention,
    }, "One practice of the after-hours answering service.")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Practice routing rules",
        **top,
        "$defs": {"time": TIME, "period": PERIOD, "phone": PHONE, "local_datetime": LOCAL_DT,
                  "prompt": prompt},
    }


def schema_text() -> str:
    """The schema as the text shipped in routing_rules/schema.json."""
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
