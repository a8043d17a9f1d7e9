"""Reaching the on-call through the real Asterisk: screened bridging, escalation, call-backs.

All scenarios of this module run at once (a module fixture), each with its own test
practice and clinicians' numbers, against one multi-number SIPp phone on the gateway
(oncall_helpers). Each test then checks its call: the stored legs and outcome, and the
AMI events (BridgeEnter, the dialplan's UserEvents, Newchannel/DialBegin to the gateway).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from harness import run_scenario, timed_caller_scenario, wait_for
from oncall_helpers import (
    call_of,
    cli_json,
    dial_begins,
    gateway_channels,
    practice_yaml,
    restore,
    use_rules,
)
from support.sipp import CallerSpec, PhoneBehaviour, speech_pcap, start_multi_phone

pytestmark = pytest.mark.pbx

# Caller keys (ms after the answer): skip greeting and notice, accept the caller ID,
# say the name (speech RTP) and end it with #, then 1 (urgent) in the menu.
URGENT = [(800, "#"), (1600, "#"), (2600, "1"), (9500, "#"), (11500, "1")]


def _did(n: int) -> str:
    return f"+1617555{n:04d}"


# name -> (DID, caller ID, clinicians (id, phone, ring s), practice options, caller end ms,
#          caller hangs up itself)
SCENARIOS = {
    "accept": (_did(401), "+16175550491", [("a1", _did(411), 8)], {}, 40000, True),
    "decline_voicemail_accept": (
        _did(402), "+16175550492",
        [("b1", _did(421), 8), ("b2", _did(422), 8), ("b3", _did(423), 8)], {}, 120000, True),
    "callback_ack": (
        _did(403), "+16175550493",
        [("c1", _did(431), 8), ("c2", _did(432), 6), ("c3", _did(433), 8)],
        {"max_wait": 12, "renotify": 2}, 60000, False),
    "caller_gone": (_did(404), "+16175550494", [("d1", _did(441), 8)], {}, 21000, True),
    # `together` steps (`rings`): three phones at once, the first 1 takes it;
    # then a ring where one is busy and the other passes, so the chain moves on.
    "together": (_did(405), "+16175550495",
                 [("g1", _did(451), 8), ("g2", _did(452), 8), ("g3", _did(453), 8)],
                 {"rings": [("g1", "g2", "g3")]}, 40000, True),
    "together_fail": (_did(406), "+16175550496",
                      [("h1", _did(461), 8), ("h2", _did(462), 8), ("h3", _did(463), 8)],
                      {"rings": [("h1", "h2"), ("h3",)]}, 60000, True),
}
PHONES = {
    _did(411)[1:]: PhoneBehaviour(keys=((2500, "1"),)),
    _did(421)[1:]: PhoneBehaviour(keys=((2500, "2"),)),
    _did(422)[1:]: PhoneBehaviour(),  # a voicemail: answers, never presses anything
    _did(423)[1:]: PhoneBehaviour(keys=((2500, "1"),)),
    _did(431)[1:]: PhoneBehaviour(busy=True),
    _did(432)[1:]: PhoneBehaviour(answer=False),
    # Acknowledges the call-back (1), then "press 1 to call the patient now" (1).
    _did(433)[1:]: PhoneBehaviour(keys=((2500, "1"), (6000, "1"))),
    # Listens past the caller's hang-up, then takes the call-back and calls the patient.
    _did(441)[1:]: PhoneBehaviour(keys=((9000, "1"), (13000, "1"))),
    _did(451)[1:]: PhoneBehaviour(answer=False),
    _did(452)[1:]: PhoneBehaviour(keys=((2500, "1"),)),
    # Listens too, and would press 1 later: by then g2 has the call.
    _did(453)[1:]: PhoneBehaviour(keys=((9000, "1"),)),
    _did(461)[1:]: PhoneBehaviour(busy=True),
    _did(462)[1:]: PhoneBehaviour(keys=((2500, "2"),)),
    _did(463)[1:]: PhoneBehaviour(keys=((2500, "1"),)),
    # Patients: busy, so the clinician's Dial ends at once.
    "16175550493": PhoneBehaviour(busy=True),
    "16175550494": PhoneBehaviour(busy=True),
}


class Campaign:
    def __init__(self, stack, workdir: Path) -> None:
        self.stack = stack
        self.mark = stack.recorder.mark()
        self.results: dict = {}
        speech = speech_pcap("Alex Smith.", workdir / "speech.pcap", repeat=40,
                             tail_silence_s=1)
        self.threads = []
        for name, (did, cid, _people, _opts, end_ms, hangup) in SCENARIOS.items():
            xml = timed_caller_scenario(CallerSpec(caller_id=cid, audio_pcap=str(speech)),
                                        URGENT, end_ms, hangup)
            thread = threading.Thread(target=self._run, args=(name, xml, did, workdir),
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, name, xml, did, workdir) -> None:
        self.results[name] = run_scenario(xml, self.stack.target, did, workdir / name)

    def finished(self, name: str):
        wait_for(lambda: name in self.results, 200, f"the {name} caller", interval=0.5)
        return self.results[name]


@pytest.fixture(scope="module")
def oncall(stack, tmp_path_factory):
    rules = tmp_path_factory.mktemp("oncall-rules")
    for name, (did, _cid, people, opts, _end, _hangup) in SCENARIOS.items():
        (rules / f"{name.replace('_', '-')}.yaml").write_text(
            practice_yaml(f"oc-{name.replace('_', '-')}", did, people, **opts))
    workdir = tmp_path_factory.mktemp("oncall-calls")
    use_rules(stack, rules)
    phone = start_multi_phone(PHONES, PhoneBehaviour(busy=True),
                              stack.settings.gateway_port, workdir,
                              media_port=stack.ports.next(4))
    try:
        run = Campaign(stack, workdir)
        yield run
        for thread in run.threads:
            thread.join(200)
        wait_for(lambda: stack.channels() == 0, 60, "no channels left in Asterisk")
    finally:
        phone.send_signal(signal.SIGTERM)
        phone.wait(10)
        if stack.channels():
            stack.hangup_all()
        restore(stack)


def _legs(call: dict) -> list[dict]:
    return call["oncall_legs"]


def _call(oncall, name: str, ready=lambda c: True) -> dict:
    result = oncall.finished(name)
    assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
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
    assert leg["bridge_seconds"] and leg["bridge_seconds"] > 1
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
    # All three were rung at once: their channels appeared within a second or two.
    ids = {f"ivrleg-{leg['id']}" for leg in _legs(call)}
    made = [float(e["Timestamp"]) for e in gateway_channels(oncall.stack, oncall.mark)
            if e["Uniqueid"] in ids]
    assert len(made) == 3 and max(made) - min(made) < 2
    assert "IvrBridge" in oncall.stack.recorder.path(call["uniqueid"])


def test_together_ring_that_fails_moves_on(oncall):
    call = _call(oncall, "together_fail", lambda c: c["oncall_outcome"] == "connected"
                 and c["reconciled_at"])
    live = dict(_statuses(call, "live"))
    assert live["h1"] == "busy" and live["h2"] == "declined", _legs(call)
    assert live["h3"] == "accepted" and call["oncall_clinician"] == "h3"
