"""Callers' plans the end-to-end tests share: answer a question, speak, a whole intake."""

from __future__ import annotations

from ivr.caller.plan import (
    BEEP,
    BEFORE_POUND_MS,
    MENU_VOICE_MS,
    OFFER_VOICE_MS,
    Pause,
    Press,
    Say,
    Step,
    turn,
)

NAME = "Alex Smith."
REASON = "My daughter has had a fever since this morning."
DOB_KEYS = "01021990"  # stored as 1990-01-02


hear = turn  # a turn of the service heard to its end

def answer(keys: str) -> list[Step]:
    """Wait for the question, then key the answer."""
    return [hear(), Press(keys)]


#: The offer to call back the caller ID heard to its end (the greeting's voice alone
#: must not end this turn: ivr.caller.plan).
OFFER = hear(OFFER_VOICE_MS)


def accept_caller_id() -> list[Step]:
    """Wait for the whole offer, then take it (1)."""
    return [OFFER, Press("1")]


#: The triage menu heard to its end (a gap before it or inside it, 2 s after 0.9 s of
#: voice seen beside two CPU hogs, is not its end).
MENU = hear(MENU_VOICE_MS)


def choose(key: str) -> list[Step]:
    """Wait for the whole menu, then press its key."""
    return [MENU, Press(key)]


def speak(wav: str, pound: bool = True) -> list[Step]:
    """Wait for the beep, speak, then end the recording with '#'; without `pound`, wait
    for the recording's silence to end it (ivr.flows.intake.SILENCE_SECONDS), as a
    caller who does not know the key does."""
    return [BEEP, Say(wav), Pause(BEFORE_POUND_MS), Press("#")] if pound else [BEEP, Say(wav)]


def voices(stack) -> dict[str, str]:  # noqa: ANN001 (harness.Stack; no import circle)
    """The name and reason as speech files."""
    return {"name": stack.voice(NAME), "reason": stack.voice(REASON)}


def happy(v: dict[str, str], pound: bool = True) -> list[Step]:
    """Caller ID accepted, date of birth keyed and confirmed, name and reason said (each
    ended with '#', or with `pound` False by the silence after it)."""
    return [*accept_caller_id(), *answer(DOB_KEYS), *answer("1"), *speak(v["name"], pound),
            *speak(v["reason"], pound)]
