"""On-call legs under faults, through the real Asterisk: a controller killed while a
call-back is pending, and the AMI connection lost during an Originate. In both, no
clinician may be rung twice for the same leg or attempt.

Each test has its own practice, phone and controller (function-scoped), so they may run
on any worker. Channels to the clinician gateway are counted from the AMI Newchannel
events the EventRecorder saw: an Originated leg's channel carries our ChannelId
(ivrleg-<leg id>) as its Uniqueid.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from harness import wait_for
from oncall_helpers import (
    BRIDGE_WAIT,
    call_of,
    cli_json,
    gateway_channels,
    practice_yaml,
    restore,
    use_rules,
)
from support.faults import DROP_AMI_AFTER_ORIGINATE
from support.reacting import (
    ACCEPTS,
    BackgroundCall,
    bridged,
    cue,
    cue_when,
    greets,
    hears_the_clinician,
    place,
    start_phones,
    urgent,
)

from ivr.caller.plan import BUSY, AwaitEnd, CallPlan, Phone, PhoneBook

pytestmark = pytest.mark.pbx

# A clinician who hears the screening (or the call-back's message) and presses 1; after
# an acknowledgement, "press 1 to call the patient now" goes unanswered.
PRESS_1 = ACCEPTS


def _did(n: int) -> str:
    return f"+1617555{n:04d}"


class Bank:
    """The phones on the gateway port, replaceable mid-test."""

    def __init__(self, stack, workdir: Path) -> None:
        self.stack, self.workdir, self.phones = stack, workdir, None

    def start(self, phones: dict[str, Phone], tag: str) -> None:
        self.stop()
        book = PhoneBook({number[1:]: phone for number, phone in phones.items()}, BUSY)
        self.phones = start_phones(self.stack, book, self.workdir / tag)  # ready to ring

    def stop(self) -> None:
        if self.phones is not None:
            self.phones.stop()
        self.phones = None


@pytest.fixture
def faults(stack, tmp_path):
    bank = Bank(stack, tmp_path)
    try:
        yield stack, bank, tmp_path
    finally:
        bank.stop()
        if stack.channels():
            stack.hangup_all()
        wait_for(lambda: stack.channels() == 0, 30, "no channels left in Asterisk")
        restore(stack)


def _plan(stack, cid: str, *tail) -> CallPlan:
    """The patient: the intake as urgent, then `tail` (else: the service ends the call)."""
    return CallPlan(caller_id=cid, steps=urgent(stack) + (tail or (AwaitEnd(),)))


def _leg_channels(stack, mark: int) -> Counter:
    """ivrleg-<id> -> how many gateway channels were created with that id."""
    return Counter(e.get("Uniqueid", "") for e in gateway_channels(stack, mark))


def test_controller_killed_with_a_callback_pending(faults):
    """SIGKILL while a call-back waits for its first attempt; the restarted controller
    places it once, the clinician acknowledges, and no attempt rings twice."""
    stack, bank, workdir = faults
    did, cid, clin = _did(501), "+16175550591", _did(511)
    rules = workdir / "rules"
    rules.mkdir()
    # Call-back minutes are seconds here: the first attempt is due 60 s after the
    # caller is told to expect a call, long enough to kill and restart in between (the
    # caller hears the promise to its end first: 30 s or more on a loaded machine).
    (rules / "restart.yaml").write_text(practice_yaml(
        "oc-restart", did, [("r1", clin, 6)], max_wait=10, renotify=60))
    use_rules(stack, rules)
    mark = stack.recorder.mark()
    bank.start({}, "busy")  # everyone busy: the live search ends at once
    report = place(stack, _plan(stack, cid), did, workdir / "caller")
    assert report.ok, report.explain()
    call = wait_for(lambda: (c := call_of(stack, did)) is not None and c.get("callback")
                    and c, 30, "the call's pending call-back")
    cb = call["callback"]
    assert cb["status"] == "pending" and cb["attempts"] == 0, cb
    assert "will call you back by" in call["caller_told"]

    stack.kill_controller(signal.SIGKILL)
    killed = [r for r in cli_json(stack, "callbacks", "list", "--all")
              if r["id"] == cb["id"]][0]
    assert killed["attempts"] == 0, "the attempt was placed before the kill: too slow"
    # The clinician is reachable again, and a new controller starts.
    bank.start({clin: PRESS_1}, "ack")
    connected = stack.controller_log().count("AMI connected")
    stack.start_controller()
    wait_for(lambda: stack.controller_log().count("AMI connected") > connected, 90,
             "the restarted controller's AMI")

    done = wait_for(lambda: (c := call_of(stack, did)) is not None
                    and c["callback"]["status"] == "acknowledged"
                    and all(leg["ended_at"] for leg in c["oncall_legs"]) and c,
                    150, "the call-back acknowledged after the restart")
    cb = done["callback"]
    assert cb["acknowledged_by"] == "r1" and cb["acknowledged_via"] == "callback"
    attempts = [leg for leg in done["oncall_legs"] if leg["kind"] == "callback"]
    assert [a["attempt_no"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert attempts[-1]["status"] == "accepted" and attempts[-1]["number"] == clin
    # The live search met a 486 on every ring: recorded as busy, not as a failure.
    live = [leg["status"] for leg in done["oncall_legs"] if leg["kind"] == "live"]
    assert live and set(live) == {"busy"}, done["oncall_legs"]
    # Every leg rang exactly once (one gateway channel per leg row, none re-sent), and
    # nothing else rang the gateway (no patient dial: the clinician did not press 1).
    ids = {f"ivrleg-{leg['id']}" for leg in done["oncall_legs"]}
    channels = _leg_channels(stack, mark)
    assert set(channels) <= ids, channels
    assert {f"ivrleg-{a['id']}" for a in attempts} <= set(channels), channels
    assert all(n == 1 for n in channels.values()), channels


def test_ami_dropped_during_the_originate(faults):
    """The controller's AMI connection is cut right after the Originate is sent: the
    leg is not re-sent after the reconnect, and the clinician is rung exactly once."""
    stack, bank, workdir = faults
    did, cid, clin = _did(502), "+16175550592", _did(521)
    rules = workdir / "rules"
    rules.mkdir()
    (rules / "drop.yaml").write_text(practice_yaml("oc-drop", did, [("f1", clin, 8)],
                                                   max_wait=BRIDGE_WAIT))
    use_rules(stack, rules, {DROP_AMI_AFTER_ORIGINATE: "1"})
    mark = stack.recorder.mark()
    bridge = workdir / "cue-bridged"
    bank.start({clin: greets(stack, bridge)}, "accept")
    cue_when(bridge, lambda: bridged(stack, cid, mark), "the caller bridged")
    report = place(stack, _plan(stack, cid, *hears_the_clinician(bridge)), did,
                   workdir / "caller")
    assert report.ok, report.explain()
    call = wait_for(lambda: (c := call_of(stack, did)) is not None and c["reconciled_at"]
                    and all(leg["ended_at"] for leg in c["oncall_legs"]) and c,
                    45, "the call's record")
    log = stack.controller_log()
    assert "fault injection: dropping AMI after Originate" in log
    assert "AMI lost during the Originate; not re-sent" in log
    live = [leg for leg in call["oncall_legs"] if leg["kind"] == "live"]
    assert live and live[0]["clinician_id"] == "f1"
    channels = _leg_channels(stack, mark)
    # One gateway channel per leg row: the Originate lost in flight was never re-sent.
    assert all(n == 1 for n in channels.values()), channels
    assert set(channels) == {f"ivrleg-{leg['id']}" for leg in call["oncall_legs"]
                             if leg["kind"] != "patient"}, channels
    # The leg survived the reconnect (its channel was up), so the caller was bridged.
    assert [(leg["clinician_id"], leg["status"]) for leg in live] == [("f1", "accepted")]
    assert call["oncall_outcome"] == "connected"


def test_controller_killed_during_a_bridge(faults):
    """SIGKILL while the caller talks to the clinician: the bridge goes on in the PBX,
    and the restarted controller closes the leg with the call's real end and length."""
    stack, bank, workdir = faults
    did, cid, clin = _did(503), "+16175550593", _did(531)
    rules = workdir / "rules"
    rules.mkdir()
    (rules / "bridge.yaml").write_text(practice_yaml("oc-bridge", did, [("b1", clin, 20)],
                                                     max_wait=BRIDGE_WAIT))
    use_rules(stack, rules)
    # The caller and the clinician talk once the controller is gone: the clinician
    # greets the caller, who hangs up once it has heard that.
    talk = workdir / "cue-talk"
    bank.start({clin: greets(stack, talk)}, "accept")
    mark = stack.recorder.mark()
    caller = BackgroundCall(stack, _plan(stack, cid, *hears_the_clinician(talk)), did,
                            workdir / "caller")
    bridged_now = wait_for(lambda: caller.done or bridged(stack, cid, mark), 180,
                           "the caller bridged to the clinician", interval=0.2)
    assert not caller.done, caller.join(1).explain()
    assert bridged_now
    bridged_call = wait_for(lambda: (c := call_of(stack, did)) is not None
                            and any(leg["bridged_at"] for leg in c["oncall_legs"]) and c,
                            60, "the bridged leg's record", interval=0.5)
    stack.kill_controller(signal.SIGKILL)
    cue(talk)
    report = caller.join()
    assert report.ok and report.ended_by == "us", report.explain()
    wait_for(lambda: stack.channels() == 0, 30, "the bridged call to end")
    stack.start_controller()
    done = wait_for(lambda: (c := call_of(stack, did)) is not None and c["reconciled_at"]
                    and all(leg["ended_at"] for leg in c["oncall_legs"]) and c,
                    60, "the call reconciled and its legs closed", interval=0.5)
    (leg,) = [leg for leg in done["oncall_legs"] if leg["bridged_at"]]
    assert leg["id"] == next(x["id"] for x in bridged_call["oncall_legs"]
                             if x["bridged_at"])
    assert leg["status"] == "accepted" and leg["bridge_seconds"] > 0
    assert leg["ended_at"] >= leg["bridged_at"]
    assert done["end_reason"] == "completed"  # they talked; hanging up ends that
