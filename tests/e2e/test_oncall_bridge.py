"""Reaching the on-call through the real Asterisk: screened bridging, escalation, call-backs.

All scenarios of this module run at once (a module fixture), each with its own test
practice and clinicians' numbers, against one bank of reacting phones on the gateway
(ivr.caller; oncall_helpers). Callers and clinicians act on what they hear, and on cues
for what only the system shows (support.reacting): nothing is timed against the service.
Each test then checks its call: the stored legs and outcome, and the AMI events
(BridgeEnter, the dialplan's UserEvents, Newchannel/DialBegin to the gateway).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import wait_for
from oncall_helpers import (
    BRIDGE_WAIT,
    call_of,
    cli_json,
    dial_begins,
    gateway_channels,
    practice_yaml,
    restore,
    use_rules,
)
from support.reacting import (
    ACKNOWLEDGES_AND_DIALS,
    PASSES,
    SCREENING,
    TAKEN,
    BackgroundCall,
    bridged,
    cue_when,
    greets,
    hear,
    heard,
    hears_the_clinician,
    start_phones,
    urgent,
)

from ivr.caller.plan import (
    BUSY,
    NO_ANSWER,
    VOICEMAIL,
    AwaitEnd,
    CallPlan,
    Cue,
    Hangup,
    Phone,
    PhoneBook,
    Press,
)

pytestmark = pytest.mark.pbx


def _did(n: int) -> str:
    return f"+1617555{n:04d}"


# What the caller does after the intake (urgent), while the chain is rung:
BRIDGED = "bridged"  # talks to the clinician who takes it, then hangs up
TOLD = "told"  # hears the call-back promise; the service ends the call
LEAVES = "leaves"  # hangs up while the clinician is screening (cued: see `heard`)

# The callers who reach a clinician wait long enough for a loaded machine.
LONG_WAIT = {"max_wait": BRIDGE_WAIT}
# name -> (DID, caller ID, clinicians (id, phone, ring s), practice options, caller)
SCENARIOS = {
    "accept": (_did(401), "+16175550491", [("a1", _did(411), 8)], LONG_WAIT, BRIDGED),
    "decline_voicemail_accept": (
        _did(402), "+16175550492",
        [("b1", _did(421), 8), ("b2", _did(422), 8), ("b3", _did(423), 8)], LONG_WAIT,
        BRIDGED),
    # c2 rings until the caller's wait is over (whatever the load made of c1's turn), so
    # c3 is never rung live: it takes the call-back.
    "callback_ack": (
        _did(403), "+16175550493",
        [("c1", _did(431), 8), ("c2", _did(432), 90), ("c3", _did(433), 8)],
        {"max_wait": 30, "renotify": 2}, TOLD),
    "caller_gone": (_did(404), "+16175550494", [("d1", _did(441), 8)], {}, LEAVES),
    # `together` steps (`rings`): three phones at once, the first 1 takes it (g1 still
    # rings then: its ring outlasts g2's hearing the whole screening, which a loaded
    # machine stretches from 20 s to 45 s);
    # then a ring where one is busy and the other passes, so the chain moves on.
    "together": (_did(405), "+16175550495",
                 [("g1", _did(451), 80), ("g2", _did(452), 80), ("g3", _did(453), 80)],
                 {"rings": [("g1", "g2", "g3")], **LONG_WAIT}, BRIDGED),
    "together_fail": (_did(406), "+16175550496",
                      [("h1", _did(461), 8), ("h2", _did(462), 8), ("h3", _did(463), 8)],
                      {"rings": [("h1", "h2"), ("h3",)], **LONG_WAIT}, BRIDGED),
}
# The clinician who takes each bridged call (and greets the caller once cued).
TAKES = {"accept": _did(411), "decline_voicemail_accept": _did(423),
         "together": _did(452), "together_fail": _did(463)}
# d1 hears the screening to its end; then the caller hangs up (cued), d1 hears that the
# caller has gone, takes the call-back (1) and calls the patient (1).
SCREENER = _did(441)
STAYS_FOR_THE_CALLBACK = Phone(steps=(SCREENING, hear(3000), Press("1"), TAKEN, Press("1"),
                                      AwaitEnd(600)))


def _phones(stack, cues: dict[str, Path]) -> PhoneBook:
    book = {
        _did(421): PASSES,
        _did(422): VOICEMAIL,  # answers, never presses anything
        _did(431): BUSY,
        _did(432): NO_ANSWER,
        _did(433): ACKNOWLEDGES_AND_DIALS,  # the call-back (it is never rung live)
        SCREENER: STAYS_FOR_THE_CALLBACK,
        _did(451): NO_ANSWER,
        # Hears the screening and says nothing: by then g2 has taken the call.
        _did(453): Phone(steps=(SCREENING, AwaitEnd(120))),
        _did(461): BUSY,
        _did(462): PASSES,
        # Patients: busy, so the clinician's Dial ends at once.
        "+16175550493": BUSY,
        "+16175550494": BUSY,
    }
    book.update({number: greets(stack, cues[name]) for name, number in TAKES.items()})
    return PhoneBook({number[1:]: phone for number, phone in book.items()}, BUSY)


def _caller(stack, name: str, cue: Path) -> CallPlan:
    _did_, cid, _people, _opts, kind = SCENARIOS[name]
    tail = {BRIDGED: hears_the_clinician(cue), TOLD: (AwaitEnd(),),
            LEAVES: (Cue(str(cue), 600), Hangup())}[kind]
    return CallPlan(caller_id=cid, steps=urgent(stack) + tail)


class Campaign:
    def __init__(self, stack, workdir: Path, phones, cues: dict[str, Path]) -> None:
        self.stack, self.phones, self.cues = stack, phones, cues
        self.mark = stack.recorder.mark()
        self.calls: dict[str, BackgroundCall] = {}
        for name, (did, cid, _people, _opts, kind) in SCENARIOS.items():
            if kind == BRIDGED:
                cue_when(self.cues[name], lambda cid=cid: bridged(stack, cid, self.mark),
                         f"the {name} caller bridged")
            elif kind == LEAVES:
                cue_when(self.cues[name], lambda: heard(self.phones, SCREENER),
                         "d1 to hear the screening")
            self.calls[name] = BackgroundCall(stack, _caller(stack, name, self.cues[name]),
                                              did, workdir / name, timeout_s=700)

    def finished(self, name: str):
        return self.calls[name].join(760)


@pytest.fixture(scope="module")
def oncall(stack, tmp_path_factory):
    rules = tmp_path_factory.mktemp("oncall-rules")
    for name, (did, _cid, people, opts, _kind) in SCENARIOS.items():
        (rules / f"{name.replace('_', '-')}.yaml").write_text(
            practice_yaml(f"oc-{name.replace('_', '-')}", did, people, **opts))
    workdir = tmp_path_factory.mktemp("oncall-calls")
    use_rules(stack, rules)
    cues = {name: workdir / f"cue-{name}" for name in SCENARIOS}
    phones = start_phones(stack, _phones(stack, cues), workdir / "phones")
    try:
        run = Campaign(stack, workdir, phones, cues)
        yield run
        for call in run.calls.values():
            call.join(760)
        wait_for(lambda: stack.channels() == 0, 60, "no channels left in Asterisk")
    finally:
        phones.stop()
        if stack.channels():
            stack.hangup_all()
        restore(stack)


def _legs(call: dict) -> list[dict]:
    return call["oncall_legs"]


def _call(oncall, name: str, ready=lambda c: True) -> dict:
    report = oncall.finished(name)
    assert report.ok, f"{name}: {report.explain()}"
    did = SCENARIOS[name][0]
    try:
        return wait_for(lambda: (c := call_of(oncall.stack, did)) is not None and ready(c)
                        and c, 90, f"the {name} call's record")
    except AssertionError as exc:  # show what the record had instead
        last = call_of(oncall.stack, did) or {}
        raise AssertionError(f"{exc}; its legs: {last.get('oncall_legs')}; timeline: "
                             f"{[e['kind'] for e in last.get('timeline', [])]}") from None


def test_first_step_accepts_and_is_bridged(oncall):
    call = _call(oncall, "accept", lambda c: c["reconciled_at"] and all(
        leg["ended_at"] for leg in c["oncall_legs"]))
    legs = _legs(call)
    assert [(leg["clinician_id"], leg["status"]) for leg in legs] == [("a1", "accepted")]
    leg = legs[0]
    assert leg["number"] == _did(411) and leg["kind"] == "live"
    assert leg["ring_ms"] is not None and leg["answered_at"] and leg["bridged_at"]
    # The caller stayed on the bridge until it had heard the clinician greet it (over a
    # second of voice, then a second of quiet): a length load can only stretch.
    assert leg["bridge_seconds"] and leg["bridge_seconds"] > 1
    assert oncall.finished("accept").named("cued")
    assert call["oncall_outcome"] == "connected" and call["oncall_clinician"] == "a1"
    assert call["result"] == "bridge"
    rec = oncall.stack.recorder
    path = rec.path(call["uniqueid"])
    assert "IvrBridge" in path
    result = [e for e in rec.user_events(call["uniqueid"])
              if e.get("UserEvent") == "IvrBridgeResult"]
    # The caller hangs up while bridged, so Bridge() may never return to the dialplan;
    # if it did, it must have succeeded (a failure would go to the fallback).
    assert all(e["Result"] == "SUCCESS" for e in result)
    assert "IvrFallback" not in path
    with rec._lock:
        enters = [e for e in rec.events if e.get("Event") == "BridgeEnter"]
    assert any(e.get("Uniqueid") == call["uniqueid"] for e in enters)
    assert any(e.get("Channel") == leg["channel"] or e.get("Uniqueid") ==
               f"ivrleg-{leg['id']}" for e in enters)



def _statuses(call: dict, kind: str) -> list[tuple[str, str]]:
    return [(leg["clinician_id"], leg["status"]) for leg in _legs(call) if leg["kind"] == kind]


def test_decline_then_voicemail_then_accept(oncall):
    call = _call(oncall, "decline_voicemail_accept",
                 lambda c: c["oncall_outcome"] == "connected" and c["reconciled_at"])
    assert _statuses(call, "live") == [("b1", "declined"), ("b2", "screen_timeout"),
                                       ("b3", "accepted")]
    assert call["oncall_clinician"] == "b3"
    assert "IvrBridge" in oncall.stack.recorder.path(call["uniqueid"])


def test_nobody_live_then_callback_acknowledged_and_patient_dialled(oncall):
    call = _call(oncall, "callback_ack", lambda c: c["oncall_outcome"] == "acknowledged"
                 and any(leg["kind"] == "patient" and leg["ended_at"]
                         for leg in c["oncall_legs"]))
    live = _statuses(call, "live")
    # A 486: busy (from DialEnd; the OriginateResponse alone says Reason 0).
    assert live[0] == ("c1", "busy") and live[1][0] == "c2", _legs(call)
    assert live[1][1] == "no_answer"
    assert "will call you back by" in call["caller_told"]
    cb = call["callback"]
    assert cb["status"] == "acknowledged" and cb["acknowledged_by"] == "c3"
    assert cb["acknowledged_via"] == "callback"
    attempts = [leg for leg in _legs(call) if leg["kind"] == "callback"]
    assert [a["attempt_no"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert attempts[-1]["clinician_id"] == "c3" and attempts[-1]["status"] == "accepted"
    patient = [leg for leg in _legs(call) if leg["kind"] == "patient"]
    assert len(patient) == 1 and patient[0]["number"] == "+16175550493"
    assert patient[0]["status"] == "busy"
    # The clinician's own channel dialled the validated number through the gateway.
    assert len(dial_begins(oncall.stack, "16175550493", oncall.mark)) == 1
    # Every leg rang exactly once: one gateway channel per leg row, none re-sent.
    ids = {f"ivrleg-{leg['id']}" for leg in _legs(call) if leg["kind"] != "patient"}
    seen = [e["Uniqueid"] for e in gateway_channels(oncall.stack, oncall.mark)
            if e["Uniqueid"] in ids]
    assert sorted(seen) == sorted(ids)


def test_caller_hangs_up_during_screening(oncall):
    call = _call(oncall, "caller_gone", lambda c: c["oncall_outcome"] == "acknowledged"
                 and any(leg["kind"] == "patient" and leg["ended_at"]
                         for leg in c["oncall_legs"]))
    assert _statuses(call, "live") == [("d1", "caller_gone")]
    assert call["end_reason"] == "caller_hangup"
    cb = call["callback"]
    assert cb["acknowledged_by"] == "d1" and cb["acknowledged_via"] == "live"
    assert len(dial_begins(oncall.stack, "16175550494", oncall.mark)) == 1


def test_pending_callbacks_listed_as_json(oncall):
    rows = cli_json(oncall.stack, "callbacks", "list", "--all")
    assert {r["status"] for r in rows} <= {"pending", "acknowledged", "not_acknowledged"}
    assert any(r["acknowledged_by"] == "c3" for r in rows)


def test_together_first_to_accept_takes_the_call(oncall):
    call = _call(oncall, "together", lambda c: c["oncall_outcome"] == "connected"
                 and c["reconciled_at"] and all(leg["ended_at"] for leg in c["oncall_legs"]))
    assert sorted(_statuses(call, "live")) == [("g1", "taken_by_other"), ("g2", "accepted"),
                                               ("g3", "taken_by_other")]
    assert call["oncall_clinician"] == "g2"
    legs = {leg["clinician_id"]: leg for leg in _legs(call)}
    assert legs["g3"]["answered_at"] and not legs["g1"]["answered_at"]
    # All three were rung at once: each one's channel was made before any of them ended
    # (rung one after another, each would end before the next began).
    ids = {f"ivrleg-{leg['id']}" for leg in _legs(call)}
    with oncall.stack.recorder._lock:
        events = list(oncall.stack.recorder.events[oncall.mark:])
    made = [i for i, e in enumerate(events)
            if e.get("Event") == "Newchannel" and e.get("Uniqueid") in ids]
    ends = [i for i, e in enumerate(events)
            if e.get("Event") == "Hangup" and e.get("Uniqueid") in ids]
    assert len(made) == 3 and ends and max(made) < min(ends), (made, ends)
    assert "IvrBridge" in oncall.stack.recorder.path(call["uniqueid"])


def test_together_ring_that_fails_moves_on(oncall):
    call = _call(oncall, "together_fail", lambda c: c["oncall_outcome"] == "connected"
                 and c["reconciled_at"])
    live = dict(_statuses(call, "live"))
    assert live["h1"] == "busy" and live["h2"] == "declined", _legs(call)
    assert live["h3"] == "accepted" and call["oncall_clinician"] == "h3"
