"""Triage: the practice's menu (keys -> dispositions), then what each disposition does.

The menu follows the rules' semantics exactly as `ivr.rules.simulate.run_menu` states
them: one key per attempt, no key is "no input", a key not in the menu is "invalid",
after 1 + retries failed attempts the menu's default applies.
"""

from __future__ import annotations

from ivr.flows import bridge
from ivr.flows.runner import Outcome
from ivr.flows.session import Session
from ivr.flows.speech import ALL_KEYS, ask, play
from ivr.records import calls
from ivr.rules.model import BRIDGE_DISPOSITIONS, Disposition
from ivr.rules.prompts import render
from ivr.rules.timeutil import human_time

EMERGENCY_WAIT_MS = 3000  # after the 911 advice: time to hang up before we connect
REASON_URGENT = "urgent-bridge"  # when the controller cannot place legs: dialplan fallback
REASON_OVERFLOW = "overflow-bridge"


async def run_menu(s: Session) -> str:
    """Play the menu until a valid key or the retries run out; the disposition."""
    assert s.practice is not None
    menu = s.practice.menu
    for attempt in range(1, menu.retries + 2):
        key = await ask(s.channel, s.prompt("menu"), ALL_KEYS, menu.timeout_seconds * 1000)
        await s.settle()  # the intake is committed before its menu answer is acted on
        if key is None:
            s.event_soon("menu.key", attempt=attempt, key=None, result="no_input")
            await play(s.channel, s.prompt("menu_no_input"))
        elif key in menu.options:
            s.event_soon("menu.key", attempt=attempt, key=key, result=menu.options[key])
            return menu.options[key]
        else:
            s.event_soon("menu.key", attempt=attempt, key=key, result="invalid")
            await play(s.channel, s.prompt("menu_invalid"))
    s.event_soon("menu.default", disposition=menu.default)
    return menu.default


def told_text(s: Session, pid: str) -> str:
    """The words of a prompt as this caller heard them (for the record)."""
    assert s.practice is not None
    tz, at = s.practice.tz, s.instant
    values = {"practice": s.practice.name}
    if s.decision.reopens_at is not None:
        values["callback_time"] = human_time(s.decision.reopens_at, tz, at, s.language)
    else:
        values["callback_time"] = s.library_text("reopening_unknown")
    if s.decision.closes_at is not None:
        values["closing_time"] = human_time(s.decision.closes_at, tz, at, s.language)
    return render(s.practice.prompts_in(s.language)[pid].text, values)


async def _say(s: Session, pid: str) -> None:
    s.told.append(told_text(s, pid))
    await play(s.channel, s.prompt(pid))


async def act(s: Session, disposition: str) -> Outcome:
    """Do what the disposition means on this route; say exactly what happens next."""
    assert s.practice is not None
    overflow = s.decision.is_overflow
    mode = s.practice.overflow.mode
    s.step = f"action.{disposition}"
    if disposition == Disposition.EMERGENCY:
        await _say(s, "emergency_advice")
        # The advice says "hang up and dial 911"; a caller who stays is connected.
        await s.channel.wait_for_digit(EMERGENCY_WAIT_MS)
    if overflow and mode == "intake_then_bridge":
        return await bridge.connect(s, REASON_OVERFLOW, overflow=True,
                                    announce=lambda: _say(s, "connecting"))
    if disposition in BRIDGE_DISPOSITIONS:
        return await bridge.connect(s, REASON_URGENT, announce=lambda: _say(s, "connecting"))
    if overflow:  # intake_same_day_callback
        s.soon(calls.update_call(s.db, s.call_id, same_day_callback=True))
        await _say(s, "same_day_callback")
    else:
        await _say(s, "callback_promise")
    return Outcome()
