"""Callers' plans the end-to-end tests share: answer a question, speak, a whole intake."""

from __future__ import annotations

from ivr.caller.plan import Listen, Press, Say, Step

NAME = "Alex Smith."
REASON = "My daughter has had a fever since this morning."
DOB_KEYS = "01021990"  # stored as 1990-01-02


#: The service has had its say and waits. On a loaded machine the controller can leave
#: seconds between two prompts of one turn (4.6 s seen with two CPU hogs beside other
#: suites): a turn ends after 2 s of quiet (well under the practices' key waits) that
#: follow more voice than the end of a prompt cut by a key can hold (~0.4 s). Plans that
#: know a turn's prompts ask for most of their voice (support.reacting).
def hear(min_voice_ms: int = 800) -> Listen:
    """Up to 5 minutes: a starved PBX has stretched a 20 s screening past a minute."""
    return Listen(quiet_ms=2000, min_voice_ms=min_voice_ms, timeout_s=300)


#: "After the tone, please say...": the beep ends the turn, however long the pause
#: before it (a caller who spoke in that pause would not be recorded).
BEEP = Listen(tone=True, timeout_s=300)


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
