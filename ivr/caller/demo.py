"""A whole after-hours call as a person makes it, for `ivr demo-call` and the tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ivr.caller.plan import (
    BEEP,
    BEFORE_POUND_MS,
    MENU_VOICE_MS,
    OFFER_VOICE_MS,
    AwaitEnd,
    CallPlan,
    Pause,
    Press,
    Say,
    Step,
    turn,
)
from ivr.pbx.prompts import synthesize


@dataclass(frozen=True)
class Patient:
    """What the demo caller answers: its keys and, as generated speech, its words."""

    caller_id: str = "+16175550199"
    caller_name: str = "Demo Caller"
    dob_keys: str = "01022015"  # MMDDYYYY
    name: str = "Alex Smith."
    reason: str = "My son has had a fever since this morning and he is very tired."
    menu_key: str = "2"


def intake_steps(patient: Patient, voices: Path) -> list[tuple[Step, str]]:
    """The steps of a full intake, each with what it means (printed by demo-call)."""
    name = synthesize(patient.name, voices)
    reason = synthesize(patient.reason, voices)
    return [
        (turn(OFFER_VOICE_MS), "heard the greeting and the offer to call back the caller ID"),
        (Press("1"), "pressed 1: yes, call me back on this number"),
        (turn(), "heard the date of birth question"),
        (Press(patient.dob_keys), f"keyed the date of birth {patient.dob_keys}"),
        (turn(), "heard the date read back"),
        (Press("1"), "pressed 1: that is right"),
        (BEEP, "heard 'say the patient's name after the beep', and the beep"),
        (Say(str(name)), f"said {patient.name!r}"),
        (Pause(BEFORE_POUND_MS), "took a breath"),
        (Press("#"), "pressed # to end the recording"),
        (BEEP, "heard 'say why you are calling', and the beep"),
        (Say(str(reason)), f"said {patient.reason!r}"),
        (Pause(BEFORE_POUND_MS), "took a breath"),
        (Press("#"), "pressed # to end the recording"),
        (turn(MENU_VOICE_MS), "heard the menu"),
        (Press(patient.menu_key), f"pressed {patient.menu_key} in the menu"),
        (AwaitEnd(), "the service ended the call"),
    ]


def intake_plan(patient: Patient, voices: Path) -> tuple[CallPlan, list[str]]:
    steps = intake_steps(patient, voices)
    plan = CallPlan(caller_id=patient.caller_id, caller_name=patient.caller_name,
                    steps=tuple(step for step, _ in steps))
    return plan, [note for _, note in steps]
