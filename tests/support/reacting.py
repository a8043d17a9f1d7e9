"""The reacting caller (ivr.caller) as the e2e tests use it: calls and phones on the
worker's own ports, voices, the steps every on-call scenario shares, and cues.

A cue is for a moment the call's own audio does not show but the system under test does
(the caller and a clinician in one bridge, a clinician done hearing the screening, a
controller killed): the test sees it in the AMI events or the phones' events and creates
the cue file, which both ends of a call may wait for (ivr.caller.plan.Cue).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Stack, wait_for

from ivr.caller.client import CallReport, Phones, place_call
from ivr.caller.plan import (
    AwaitEnd,
    CallPlan,
    Cue,
    Hangup,
    Listen,
    Phone,
    PhoneBook,
    Press,
    Say,
    Step,
)
from support.plans import BEEP, MENU, NAME, OFFER, hear

GREETING = "Hello, this is the nurse on call. How can I help you?"
#: Each turn asks for most of its prompts' voice, as measured idle (the prompts are fixed
#: TTS), more than what comes before its last prompt. A prompt shortened below these
#: makes its Listen time out, saying what it heard.
HEAR = hear()
SCREENING = hear(14000)  # who calls, the name, the number (15 s), "To accept..." (4 s)
LINE_MESSAGE = hear(15000)  # clinician line: count, message, number (16 s), its menu (4 s)
TAKEN = hear(3500)  # "you have the message" (2 s), "press 1 to call the patient now" (3.5 s)


def urgent(stack: Stack) -> tuple[Step, ...]:
    """A patient of oncall_helpers' practices, up to the on-call search: hears the
    greeting, the notice and the offer to call back the caller ID and takes it (1), says
    the name after the beep and ends it with #, then picks urgent (1) in the menu."""
    return (OFFER, Press("1"), BEEP, Say(stack.voice(NAME)), Press("#"), MENU, Press("1"))


def hears_the_clinician(cue: Path) -> tuple[Step, ...]:
    """The caller, once cued that it is bridged: hears the clinician greet it, hangs up.

    More voice than a prompt's last syllable read before the cue could hold."""
    return (Cue(str(cue), 600), Listen(min_voice_ms=1000), Hangup())


def greets(stack: Stack, cue: Path) -> Phone:
    """A clinician who hears the screening, takes the call (1) and, once the bridge is
    made (the cue), greets the caller."""
    return Phone(steps=(SCREENING, Press("1"), Cue(str(cue)), Say(stack.voice(GREETING)),
                        AwaitEnd(600)))


#: Hears the screening (or a call-back's message) and presses 1.
ACCEPTS = Phone(steps=(SCREENING, Press("1"), AwaitEnd(600)))
#: Hears the screening and passes the call on (2).
PASSES = Phone(steps=(SCREENING, Press("2"), AwaitEnd(120)))
#: A call-back leg: hears the message, acknowledges it (1), then "press 1 to call the
#: patient now" (1).
ACKNOWLEDGES_AND_DIALS = Phone(steps=(SCREENING, Press("1"), TAKEN, Press("1"),
                                      AwaitEnd(600)))


def place(stack: Stack, plan: CallPlan, number: str, workdir: Path,
          timeout_s: float = 300) -> CallReport:
    """Dial `number` at the stack's PBX and run `plan` to the call's end."""
    return place_call(plan, stack.target, number, workdir=workdir, port=stack.ports.next(),
                      media_port=stack.ports.next(4), media_ports=4, timeout_s=timeout_s)


class BackgroundCall:
    """`place` in a thread, so the test can watch and cue while the call goes on."""

    def __init__(self, stack: Stack, plan: CallPlan, number: str, workdir: Path,
                 timeout_s: float = 300) -> None:
        self.workdir = workdir
        self.report: CallReport | None = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        args=(stack, plan, number, workdir, timeout_s))
        self._thread.start()

    def _run(self, *args: Any) -> None:
        self.report = place(*args)

    @property
    def done(self) -> bool:
        return self.report is not None

    def join(self, timeout: float = 360) -> CallReport:
        self._thread.join(timeout)
        assert self.report is not None, f"the caller did not finish; see {self.workdir}"
        return self.report


def start_phones(stack: Stack, book: PhoneBook, workdir: Path) -> Phones:
    """The phone bank on the clinician gateway's port (every number the PBX dials out)."""
    return Phones(book, stack.settings.gateway_port, workdir,
                  media_port=stack.ports.next(40), media_ports=40)


def bridged(stack: Stack, caller_id: str, after: int = 0) -> bool:
    """The call from `caller_id` and the clinician leg it bridges to are both in one
    bridge (AMI: the dialplan's IvrBridge event names the leg, then two BridgeEnter)."""
    assert stack.recorder is not None
    with stack.recorder._lock:
        events = list(stack.recorder.events[after:])
    bridge_of = {e.get("Uniqueid"): e.get("BridgeUniqueid") for e in events
                 if e.get("Event") == "BridgeEnter"}
    for start in events:
        if (start.get("UserEvent") == "IvrBridge"
                and start.get("CallerIDNum", "").lstrip("+") == caller_id.lstrip("+")):
            mine = bridge_of.get(start.get("Uniqueid"))
            if mine and mine == bridge_of.get(f"ivrleg-{start.get('Leg', '')}"):
                return True
    return False


def heard(phones: Phones, number: str, turns: int = 1) -> bool:
    """The phone called on `number` has heard `turns` turns of the service to their end."""
    return sum(1 for e in phones.events(number.lstrip("+"))
               if e["event"] == "heard") >= turns


def cue(path: Path) -> None:
    path.touch()


def cue_when(path: Path, ready: Callable[[], Any], what: str,
             timeout: float = 300, interval: float = 0.2) -> threading.Thread:
    """Give the cue once `ready()` holds, from a thread (a daemon: a test that fails
    first does not wait for it). No cue within `timeout`: the call's Cue step fails."""

    def watch() -> None:
        try:
            wait_for(ready, timeout, what, interval=interval)
        except AssertionError:
            return
        cue(path)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread
