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


def speak(wav: str) -> list[Step]:
    """Wait for the beep, then speak."""
    return [BEEP, Say(wav)]


def voices(stack) -> dict[str, str]:  # noqa: ANN001 (harness.Stack; no import circle)
    """The name and reason as speech files."""
    return {"name": stack.voice(NAME), "reason": stack.voice(REASON)}


def happy(v: dict[str, str]) -> list[Step]:
    """Caller ID accepted, date of birth keyed and confirmed, name and reason said."""
    return [*answer("1"), *answer(DOB_KEYS), *answer("1"), *speak(v["name"]),
            *speak(v["reason"])]
