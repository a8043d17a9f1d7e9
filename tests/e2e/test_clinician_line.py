"""The clinician line through the real Asterisk: a clinician calls the service from their
own phone, keys the PIN, hears the message waiting, acknowledges it and calls the patient.

Scenario: an urgent patient call that nobody takes live (the only clinician's phone is
busy) leaves a pending call-back, re-notified every 8 s (call-back minutes are seconds
here). Then nurse-avery calls the DID from +16175550121 and keys 4821#, 1 (acknowledge),
1 (call the patient now: the patient's phone is busy, so the Dial ends at once). The
call-back must be acknowledged by nurse-avery via the clinician line, no call-back leg may
be placed after that, and the patient must be dialled once, through the gateway, from
the clinician's own inbound channel.
"""

from __future__ import annotations

import time

import pytest
from harness import wait_for
from oncall_helpers import dial_begins, practice_yaml, restore, use_rules
from support.reacting import HEAR, LINE_MESSAGE, TAKEN, place, start_phones, urgent

from ivr.caller.plan import BUSY, AwaitEnd, CallPlan, PhoneBook, Press

pytestmark = pytest.mark.pbx

DID = "+16175550601"
PATIENT = "+16175550691"
NURSE = "+16175550121"  # nurse-avery's phone, as in sunny-pediatrics
RENOTIFY = 8  # seconds between call-back attempts here
# The clinician: hears the offer ("Clinicians, enter your PIN followed by pound...") and
# keys the PIN; hears "You have 1 message waiting", the message and its menu, and
# acknowledges (1); hears "press 1 to call the patient now" and does (1). The Dial ends
# at once (busy), and the service says there are no more messages and hangs up.
CLINICIAN = (HEAR, Press("4821#"), LINE_MESSAGE, Press("1"), TAKEN, Press("1"), AwaitEnd())


@pytest.fixture
def line(stack, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "line.yaml").write_text(practice_yaml(
        "cl-line", DID, [("nurse-avery", NURSE, 6)], max_wait=10, renotify=RENOTIFY,
        pins={"nurse-avery": "4821"}, max_attempts=40))  # pending while the nurse listens
    use_rules(stack, rules)
    assert "rules refused" not in stack.controller_log().split("controller stopping")[-1]
    # Every number on the gateway is busy: the nurse's phone when the chain rings it,
    # and the patient's when the nurse calls them back.
    phones = start_phones(stack, PhoneBook({}, BUSY), tmp_path / "phones")
    try:
        yield stack, tmp_path
    finally:
        phones.stop()
        if stack.channels():
            stack.hangup_all()
        wait_for(lambda: stack.channels() == 0, 30, "no channels left in Asterisk")
        restore(stack)


def _call_from(stack, caller: str) -> dict | None:
    found = [c for c in stack.calls() if c["dialled"] == DID and c["caller"] == caller]
    return stack.show(found[0]["id"]) if found else None


def _callback_legs(call: dict) -> list[dict]:
    return [leg for leg in call["oncall_legs"] if leg["kind"] == "callback"]


def test_clinician_acknowledges_by_phone_and_calls_the_patient(line):
    stack, workdir = line
    mark = stack.recorder.mark()
    patient = CallPlan(caller_id=PATIENT, steps=urgent(stack) + (AwaitEnd(),))
    report = place(stack, patient, DID, workdir / "patient")
    assert report.ok, report.explain()
    message = wait_for(lambda: (c := _call_from(stack, PATIENT)) is not None
                       and c.get("callback") and c, 30, "the patient's pending call-back")
    assert message["callback"]["status"] == "pending", message["callback"]
    assert "will call you back by" in message["caller_told"]

    report = place(stack, CallPlan(caller_id=NURSE, steps=CLINICIAN), DID,
                   workdir / "clinician")
    assert report.ok, report.explain()

    done = wait_for(lambda: (c := _call_from(stack, PATIENT)) is not None
                    and c["callback"]["status"] == "acknowledged"
                    and any(leg["kind"] == "patient" and leg["ended_at"]
                            for leg in c["oncall_legs"]) and c,
                    30, "the call-back acknowledged on the clinician line")
    cb = done["callback"]
    assert (cb["acknowledged_by"], cb["acknowledged_via"]) == ("nurse-avery", "clinician-line")
    assert done["oncall_outcome"] == "acknowledged"
    assert done["oncall_clinician"] == "nurse-avery"
    # "Call the patient now": one patient leg, the confirmed number, dialled once from
    # the clinician's own inbound channel through the gateway (busy here).
    [patient] = [leg for leg in done["oncall_legs"] if leg["kind"] == "patient"]
    assert (patient["number"], patient["clinician_id"], patient["status"]) == \
        (PATIENT, "nurse-avery", "busy")
    assert len(dial_begins(stack, PATIENT[1:], mark)) == 1

    # The clinician's own call: on the clinician line, never a patient message.
    own = wait_for(lambda: (c := _call_from(stack, NURSE)) is not None
                   and c["reconciled_at"] and c, 30, "the clinician's call record")
    kinds = [e["kind"] for e in own["timeline"]]
    for kind in ("clinician.offered", "clinician.pin_ok", "route.changed",
                 "clinician.acknowledged"):
        assert kind in kinds, kind
    assert "clinician.pin_failed" not in kinds and "prompt.greeting" not in kinds
    assert own["route"] == "clinician_line" and own["result"] == "done"
    assert own["end_reason"] == "completed" and own["intake"] == {}
    assert "IvrFallback" not in stack.recorder.path(own["uniqueid"])

    # The acknowledgement stopped the call-backs: no attempt after it, for longer than
    # two re-notification intervals.
    acked_at = cb["acknowledged_at"]
    before = len(_callback_legs(done))
    time.sleep(2 * RENOTIFY + 2)
    after = _call_from(stack, PATIENT)
    assert after is not None
    legs = _callback_legs(after)
    assert len(legs) == before, legs
    assert all(leg["placed_at"] < acked_at for leg in legs), (legs, acked_at)
    assert after["callback"]["status"] == "acknowledged"
