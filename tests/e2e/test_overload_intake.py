"""Degrade, never collapse, end to end through the real Asterisk: a controller at its
admission limit sheds the next call, and a stalled one (SIGSTOP) misses its bound; either
way the caller reaches the dialplan's own intake at once (greeting, emergency notice,
"urgent? press 1", a message), and the call reaches the record from its hang-up stamp."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest
from harness import EXAMPLE_DID, wait_for

from ivr import contract
from ivr.caller.plan import AwaitEnd, CallPlan, Cue, Hangup, Listen, Phone, PhoneBook, Press, Say

pytestmark = pytest.mark.pbx

#: The intake's prompt: the greeting, the notice, the choice (about 17 s of speech); the
#: key waits 5 s after it. More voice than anything before it could hold.
INTAKE = Listen(quiet_ms=2000, min_voice_ms=9000, timeout_s=120)
BEEP = Listen(tone=True, timeout_s=120)
MESSAGE = "Please call me back about my son's cough."
#: A clinician who hears the fallback's screening prompt and accepts.
ACCEPTS = PhoneBook(default=Phone(steps=(Listen(), Press("1"), AwaitEnd(120))))


def _record(stack, uniqueid, condition, timeout=60):
    def ready():
        call = stack.call_by_uniqueid(uniqueid)
        return call if call and condition(call) else None
    return wait_for(ready, timeout, f"call {uniqueid} to be recorded", interval=0.5)


def _inbound(stack, mark, count):
    """The uniqueids of the first `count` calls into the inbound context after `mark`."""
    def seen():
        ids = list(dict.fromkeys(e["Uniqueid"] for e in stack.recorder.events[mark:]
                                 if e.get("UserEvent") == contract.EV_INBOUND))
        return ids if len(ids) >= count else None
    return wait_for(seen, 60, f"{count} calls to enter the inbound context")


@pytest.fixture
def one_call_at_a_time(live):
    """The controller admits one call at a time (a setting), for this test only; its
    event loop's lateness is no reason here (tests/unit/test_admission.py has that)."""
    live.stop_controller()
    live.extra_env = {"IVR_ADMISSION_MAX_CALLS": "1", "IVR_ADMISSION_MAX_LAG_MS": "0"}
    try:
        live.start_controller()
        yield live
    finally:
        live.stop_controller()
        live.extra_env = {}


def test_over_the_admission_limit_the_next_call_is_shed_to_the_intake(one_call_at_a_time):
    """One call in progress, the limit 1: the next caller hears the dialplan's intake at
    once, does not say it is urgent, leaves a message, and the call enters the record as
    a shed call with its caller ID and the sealed recording."""
    stack = one_call_at_a_time
    cue = Path(tempfile.mkdtemp(dir=stack.workdir)) / "second-shed"
    mark = stack.recorder.mark()
    first = stack.start(CallPlan(steps=(Listen(), Cue(str(cue), 240), Hangup())))
    try:
        [held] = _inbound(stack, mark, 1)
        # The first call is the controller's (its record started) before the second dials.
        wait_for(lambda: stack.call_by_uniqueid(held), 60, "the first call's record")
        message = stack.voice(MESSAGE)
        second = stack.start(CallPlan(caller_id="+16175550142", steps=(
            INTAKE, BEEP, Say(message), Press("#"), AwaitEnd(120))))
        shed = _inbound(stack, mark, 2)[1]
        report = second.wait()
    finally:
        cue.touch()
        first.wait()
    assert report.ok, report.explain()
    assert report.ended_by == "far"  # the intake thanked the caller and hung up
    path = stack.recorder.path(shed)
    assert path[:6] == [contract.EV_INBOUND, contract.EV_CONTROLLER_RETURNED,
                        contract.EV_FALLBACK, contract.EV_FALLBACK_INTAKE,
                        contract.EV_FALLBACK_INTAKE_CHOICE, contract.EV_FALLBACK_RECORD], path
    events = {e["UserEvent"]: e for e in stack.recorder.user_events(shed)}
    assert events[contract.EV_CONTROLLER_RETURNED]["Result"] == contract.RESULT_SHED
    assert events[contract.EV_FALLBACK]["Reason"] == contract.REASON_SHED
    assert events[contract.EV_FALLBACK_INTAKE_CHOICE]["Urgent"] == "no"
    assert events[contract.EV_FALLBACK_RECORDED]["Status"] == "DTMF"  # ended by its '#'
    assert contract.EV_FALLBACK_DIAL not in path  # nobody was rung for a message
    record = _record(stack, shed, lambda c: c["reconciled_at"])
    assert record["fallback_reason"] == contract.REASON_SHED
    assert record["end_reason"] == "fallback_recorded"
    assert record["dialled"] == EXAMPLE_DID
    assert record["caller"] == "+16175550142"
    assert record["seen_by_controller"] is False  # shed: no database work for it
    recording = Path(record["fallback_recording"])
    assert recording.is_file() and recording.stat().st_size > 8000
    # Counted by the controller (its log names the shed, no caller data).
    log = stack.controller_log()
    assert f"call {shed}: shed to the dialplan's intake (calls: 1 in progress" in log
    assert "+16175550142" not in log


def test_a_stalled_controller_sends_its_calls_to_the_intake_within_the_bound(live):
    """The controller stops answering (SIGSTOP) with its port open: the caller still
    hears the intake after the dialplan's bound, says it is urgent, and reaches the
    fallback clinician; when the controller runs again the call is reconciled."""
    phones = live.phones(ACCEPTS)
    live.controller.send_signal(signal.SIGSTOP)
    try:
        mark = live.recorder.mark()
        report = live.place(CallPlan(steps=(INTAKE, Press("1"), AwaitEnd(180))))
        [uniqueid] = _inbound(live, mark, 1)
        accepted = [e for e in phones.events() if e["event"] == "pressed"]
    finally:
        live.controller.send_signal(signal.SIGCONT)
        phones.stop()
    assert report.ok, report.explain()
    assert [e["keys"] for e in accepted] == ["1"], phones.events()
    path = live.recorder.path(uniqueid)
    assert path[:5] == [contract.EV_INBOUND, contract.EV_CONTROLLER_TIMEOUT,
                        contract.EV_FALLBACK, contract.EV_FALLBACK_INTAKE,
                        contract.EV_FALLBACK_INTAKE_CHOICE], path
    events = {e["UserEvent"]: e for e in live.recorder.user_events(uniqueid)}
    assert events[contract.EV_FALLBACK]["Reason"] == contract.REASON_CONTROLLER_TIMEOUT
    assert events[contract.EV_FALLBACK_INTAKE_CHOICE]["Urgent"] == "yes"
    assert contract.EV_FALLBACK_DIAL in path
    record = _record(live, uniqueid, lambda c: c["reconciled_at"])
    assert record["end_reason"] == "fallback_answered"
    assert record["fallback_reason"] == contract.REASON_CONTROLLER_TIMEOUT
    assert record["seen_by_controller"] is False
