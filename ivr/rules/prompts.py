"""The prompt catalogue: every prompt id a practice may set, with its default English text."""

from __future__ import annotations

import string
from collections.abc import Mapping
from types import MappingProxyType

# Placeholders a prompt text may use; filled by the call flow (and by simulate).
PLACEHOLDERS = frozenset({"practice", "callback_time", "closing_time"})

DEFAULT_PROMPTS: Mapping[str, str] = MappingProxyType(
    {
        "greeting": "Thank you for calling {practice}. Our office is closed right now.",
        "overflow_greeting": (
            "Thank you for calling {practice}. Our staff are busy helping other callers."
        ),
        "emergency_notice": "If this is a life-threatening emergency, hang up and dial 911.",
        "unknown_caller": "We could not see the number you are calling from.",
        "ask_callback": (
            "Please enter the phone number where we can reach you, then press the pound key."
        ),
        "ask_dob": "Please enter the patient's date of birth as eight digits: month, day, year.",
        "ask_name": "After the tone, please say the patient's first and last name.",
        "ask_reason": "After the tone, please tell us briefly why you are calling.",
        "menu": "",  # built from the triage keys when not set
        "menu_invalid": "Sorry, that is not one of the choices.",
        "menu_no_input": "Sorry, we did not receive a choice.",
        "emergency_advice": (
            "If you believe this is a medical emergency, hang up and dial 911 now. "
            "If you stay on the line, we will connect you with the clinician on call."
        ),
        "connecting": "Please stay on the line while we connect you with the clinician on call.",
        "callback_promise": (
            "Thank you. Your message has been recorded. "
            "The office will call you back after {callback_time}."
        ),
        "same_day_callback": (
            "Thank you. Your message has been recorded. "
            "The office will call you back today, before {closing_time}."
        ),
        "no_answer": (
            "We could not reach the clinician right away. Your message has been recorded, "
            "and the clinician on call will call you back as soon as possible."
        ),
    }
)

# What the flow says to a call no practice claims, before and after the intake it takes
# for an operator (the controller's own wording: there is no practice to take it from).
# ivr.flows.speech.FLOW_TEXTS plays these; a test keeps the two the same.
OPERATOR_GREETING_TEXT = "Thank you for calling the after hours answering service."
OPERATOR_CLOSING_TEXT = ("Thank you. Your message has been recorded, and an operator will make "
                         "sure it reaches the right office. Goodbye.")

# Words the generated menu prompt uses for each disposition.
DISPOSITION_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "emergency": "a life-threatening emergency",
        "urgent": "an urgent problem that cannot wait until morning",
        "prescription": "a prescription refill",
        "appointment": "an appointment",
        "routine": "anything else, to leave a message for the office",
    }
)


def placeholders_in(text: str) -> set[str]:
    """Names used as {placeholders} in a prompt text (raises ValueError if malformed)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill placeholders; unknown ones are left visible rather than failing a call."""

    class _Keep(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    return text.format_map(_Keep(values))


def default_menu_text(options: Mapping[str, str]) -> str:
    """A menu prompt generated from the key table, e.g. 'For a prescription refill, press 2.'"""
    parts = [f"For {DISPOSITION_LABELS[disp]}, press {key}." for key, disp in options.items()]
    return " ".join(parts)
