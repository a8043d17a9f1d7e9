"""Callers' plans the end-to-end tests share: answer a question, speak, a whole intake."""

from __future__ import annotations

from ivr.caller.plan import BEEP, Press, Say, Step, turn

NAME = "Alex Smith."
REASON = "My daughter has had a fever since this morning."
DOB_KEYS = "01021990"  # stored as 1990-01-02


hear = turn  # a turn of the service heard to its end

def answer(keys: str) -> list[Step]:
    """Wait for the question, then key the answer."""
    return [hear(), Press(keys)]


#: The offer to call back the caller ID heard to its end: "To be called back at <digits>"
#: (8 s), "press 1. To give..." (4.3 s). The greeting before it is another command; a
#: starved controller can leave seconds of quiet between them, and a key pressed there
#: is lost (docs/platform.md), so the greeting's voice alone must not end this turn.
OFFER = hear(9500)


def accept_caller_id() -> list[Step]:
    """Wait for the whole offer, then take it (1)."""
    return [OFFER, Press("1")]


#: The triage menu heard to its end: every example practice's menu names four or more
#: choices (7 s of speech or more), so a gap a starved PBX leaves inside it or before it
#: (2 s after 0.9 s of voice, seen beside two CPU hogs) is not taken for its end.
MENU = hear(5000)


def choose(key: str) -> list[Step]:
    """Wait for the whole menu, then press its key."""
    return [MENU, Press(key)]


def speak(wav: str) -> list[Step]:
    """Wait for the beep, then speak."""
    return [BEEP, Say(wav)]


def voices(stack) -> dict[str, str]:  # noqa: ANN001 (harness.Stack; no import circle)
    """The name and reason as speech files."""
    return {"name": stack.voice(NAME), "reason": stack.voice(REASON)}


def happy(v: dict[str, str]) -> list[Step]:
    """Caller ID accepted, date of birth keyed and confirmed, name and reason said."""
    return [*accept_caller_id(), *answer(DOB_KEYS), *answer("1"), *speak(v["name"]),
            *speak(v["reason"])]
