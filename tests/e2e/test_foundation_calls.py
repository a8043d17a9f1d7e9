"""Foundation, end to end through the real Asterisk: a call is recorded; killing or
stopping the controller still gets the caller to the fallback clinician or a recording;
calls the controller missed are reconciled when it comes back."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from harness import EXAMPLE_DID, wait_for
from support.plans import OFFER, hear

from ivr.caller.plan import (
    BUSY,
    AwaitEnd,
    CallPlan,
    Cue,
    Hangup,
    Listen,
    Pause,
    Phone,
    PhoneBook,
    Press,
    Say,
)
from ivr.contract import EV_ASK

# The greeting is playing: the caller has heard a second of it.
IN_GREETING = Listen(quiet_ms=0, min_voice_ms=1000)
# A clinician who hears the screening prompt, accepts, talks a little and hangs up.
ACCEPTS = PhoneBook(default=Phone(steps=(Listen(), Press("1"), Pause(2000), Hangup())))

pytestmark = pytest.mark.pbx


def _uniqueid_after(stack, mark, timeout=20):
    return wait_for(lambda: stack.recorder.last_inbound_uniqueid(mark), timeout,
                    "the call to enter the inbound context")


def _record(stack, uniqueid, condition, timeout=40):
    def ready():
        call = stack.call_by_uniqueid(uniqueid)
        return call if call and condition(call) else None
    return wait_for(ready, timeout, f"call {uniqueid} to be recorded", interval=0.5)


def _accepted_once(phones) -> None:
    """One clinician's phone rang, heard the screening prompt and pressed 1."""
    pressed = [e for e in phones.events() if e["event"] == "pressed"]
    assert [e["keys"] for e in pressed] == ["1"], phones.events()


def test_caller_presses_a_key_and_the_call_is_recorded(live):
    """A caller dials the example practice, presses # during the greeting, and hangs up
    soon after: the call and its steps are recorded. (The full flow, path by path, is in
    test_call_flow.py.)"""
    mark = live.recorder.mark()
    report = live.place(CallPlan(steps=(IN_GREETING, Press("#"), Pause(1000), Hangup())))
    assert report.ok, report.explain()
    uniqueid = _uniqueid_after(live, mark)
    call = _record(live, uniqueid, lambda c: c["ended_at"] and c["reconciled_at"])
    assert call["end_reason"] == "caller_hangup"
    assert call["dialled"] == EXAMPLE_DID
    assert call["caller"] == "+16175550199"
    assert call["practice_id"] == "sunny-pediatrics"
    assert call["seen_by_controller"]
    detail = live.show(call["id"])
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[:3] == ["call.started", "route.decided", "prompt.greeting"]
    skipped = [e["detail"] for e in detail["timeline"] if e["kind"] == "prompt.emergency_notice"]
    assert skipped in ([], [{"with_question": True}], [{"skipped": False}],
                       [{"skipped": True}])
    path = live.recorder.path(uniqueid)
    assert path[0] == "IvrInbound"
    assert "IvrControllerReturned" not in path and "IvrFallback" not in path
    assert path[-1] == "IvrCallEnded"


def test_the_first_question_follows_the_notice_with_the_controller_frozen(live):
    """The greeting, the emergency notice and the first question are one command (the
    dialplan's ivr-ask): with the controller stopped (SIGSTOP) once the dialplan has
    them, the caller still hears the offer after the notice and its key is taken; let
    go, the controller carries on from that answer. (Separate commands left gaps a key
    fell into.)"""
    mark = live.recorder.mark()
    thawed = live.workdir / f"thawed-{mark}"
    call = live.start(CallPlan(steps=(OFFER, Press("1"), Cue(str(thawed)), hear(), Hangup())))
    uniqueid = _uniqueid_after(live, mark)
    wait_for(lambda: EV_ASK in live.recorder.path(uniqueid), 120,
             "the notice and the offer to be handed to the dialplan")
    live.controller.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: any(e["event"] == "pressed" for e in call.events()), 240,
                 "the caller to hear the offer and press 1 while the controller is stopped")
    finally:
        live.controller.send_signal(signal.SIGCONT)
    thawed.touch()
    report = call.wait()
    assert report.ok, report.explain()
    record = _record(live, uniqueid, lambda c: c["ended_at"], timeout=120)
    detail = live.show(record["id"])
    assert detail["intake"]["callback"]["source"] == "caller_id"
    assert detail["intake"]["callback"]["confirmed"], (detail["timeline"], report.events)
    notice = [e["detail"] for e in detail["timeline"] if e["kind"] == "prompt.emergency_notice"]
    assert notice == [{"with_question": True}]
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds.index("intake.callback.asked") < kinds.index("intake.dob.asked")


def test_caller_hangs_up_mid_command(live):
    """The caller hangs up during the greeting: the controller sees HANGUP, records it,
    and serves the next call normally."""
    mark = live.recorder.mark()
    report = live.place(CallPlan(steps=(Listen(quiet_ms=0, min_voice_ms=300), Hangup())))
    assert report.ok, report.explain()
    uniqueid = _uniqueid_after(live, mark)
    call = _record(live, uniqueid, lambda c: c["end_reason"] and c["ended_at"])
    assert call["end_reason"] == "caller_hangup"
    assert "IvrControllerReturned" not in live.recorder.path(uniqueid)
    assert "IvrFallback" not in live.recorder.path(uniqueid)
    # and the controller is still fine: the next caller is greeted
    report = live.place(CallPlan(steps=(IN_GREETING, Hangup())))
    assert report.ok, report.explain()


def test_controller_killed_mid_call_caller_reaches_fallback_clinician(live):
    """SIGKILL the controller during the greeting: AGISTATUS says SUCCESS, but the missing
    sentinel sends the caller to the fallback, which dials the practice's fallback number;
    the clinician's phone accepts with 1. The restarted controller reconciles."""
    phones = live.phones(ACCEPTS)
    try:
        mark = live.recorder.mark()
        call = live.start(CallPlan(steps=(IN_GREETING, AwaitEnd(180))))
        uniqueid = _uniqueid_after(live, mark)
        wait_for(lambda: any(e["event"] == "heard" for e in call.events()), 60,
                 "the caller to hear the controller's greeting")
        live.kill_controller(signal.SIGKILL)
        report = call.wait()
        assert report.ok, report.explain()
        _accepted_once(phones)
    finally:
        phones.stop()
    events = live.recorder.user_events(uniqueid)
    names = [e["UserEvent"] for e in events]
    assert "IvrControllerReturned" not in names
    fallback = next(e for e in events if e["UserEvent"] == "IvrFallback")
    assert fallback["Reason"] == "controller-missing"
    assert "IvrFallbackDial" in names
    accepted = [e for e in live.recorder.user_events()
                if e["UserEvent"] == "IvrFallbackAccepted" and e.get("Linkedid") == uniqueid]
    assert len(accepted) == 1
    # The controller comes back and reconciles the call it never saw end.
    live.start_controller()
    record = _record(live, uniqueid, lambda c: c["reconciled_at"])
    assert record["end_reason"] == "fallback_answered"
    assert record["seen_by_controller"] is True
    assert record["last_stage"] == "fallback-answered"


def test_controller_stopped_before_call_caller_reaches_fallback_clinician(live):
    """With no controller at all, the call still reaches the fallback clinician, and the
    controller creates the record from the hang-up stamp when it starts."""
    live.stop_controller()
    phones = live.phones(ACCEPTS)
    try:
        mark = live.recorder.mark()
        report = live.place(CallPlan(steps=(AwaitEnd(180),)))
        assert report.ok, report.explain()
        uniqueid = _uniqueid_after(live, mark)
        _accepted_once(phones)
    finally:
        phones.stop()
    names = live.recorder.path(uniqueid)
    assert "IvrFallbackDial" in names and "IvrFallbackRecord" not in names
    assert live.call_by_uniqueid(uniqueid) is None  # nobody has recorded it yet
    live.start_controller()
    record = _record(live, uniqueid, lambda c: c["reconciled_at"])
    assert record["seen_by_controller"] is False
    assert record["end_reason"] == "fallback_answered"
    assert record["dialled"] == EXAMPLE_DID
    assert record["fallback_reason"] == "controller-missing"


def test_no_controller_and_no_clinician_caller_leaves_a_recording(live):
    """Nobody takes the call (both fallback numbers busy): the caller speaks after the
    tone, Record() writes the message into the spool, and the controller moves it into the
    data folder and records the call when it starts."""
    live.stop_controller()
    phones = live.phones(PhoneBook(default=BUSY))
    message = live.voice("This is a test message. Please call me back.")
    try:
        mark = live.recorder.mark()
        # The apology, the busy numbers, "leave a message after the tone": then speak.
        report = live.place(CallPlan(steps=(Listen(), Say(message), AwaitEnd(120))))
        assert report.ok, report.explain()
        assert len(phones.events()) >= 2  # both fallback numbers were tried
    finally:
        phones.stop()
    uniqueid = _uniqueid_after(live, mark)
    names = live.recorder.path(uniqueid)
    assert "IvrFallbackRecord" in names and "IvrFallbackRecorded" in names, names
    live.start_controller()
    record = _record(live, uniqueid, lambda c: c["reconciled_at"])
    assert record["end_reason"] == "fallback_recorded"
    recording = Path(record["fallback_recording"])
    assert recording.is_file() and recording.stat().st_size > 8000
    assert recording.is_relative_to(live.settings.recordings_dir)
    assert not (live.pbx.fallback_recordings_dir / f"{uniqueid}.wav").exists()


def test_logs_carry_call_ids_not_caller_numbers(live):
    """After the calls above (and one more, forwarded), the controller's log (at DEBUG)
    holds call ids but no caller number, dialled number or Diversion number."""
    mark = live.recorder.mark()
    report = live.place(CallPlan(
        caller_id="+16175550177", steps=(IN_GREETING, Hangup()),
        headers=(("Diversion", "<sip:+16175550111@127.0.0.1>;reason=no-answer"),)))
    assert report.ok, report.explain()
    uniqueid = _uniqueid_after(live, mark)
    call = _record(live, uniqueid, lambda c: c["end_reason"])
    assert call["forwarded_from"] == "+16175550111"
    text = live.controller_log()
    assert f"call {call['id']}" in text
    for number in ("6175550199", "6175550177", "6175550111", "6175550100"):
        assert number not in text, f"{number} appears in the controller log"
