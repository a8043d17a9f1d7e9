"""The call flow end to end through the real Asterisk: one reacting caller per path.

All calls of this module are placed at once by a module fixture (they run side by side,
so the set takes as long as its longest call), then each test checks its own call: the
stored call, its intake, its recordings (present, voiced), and that its channel ended.

Determinism: the practice state comes from manual overrides set with `ivr override set`
before the calls (Sunny Pediatrics closed, Mesa Family open for the next hours), not from
the wall clock, so the same paths run whatever time the suite runs at. The callers
(ivr.caller) answer each question once the service has asked it and gone quiet, and say
their name and reason as speech, so a slow machine only makes the calls longer.
"""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import REPO, drop_pending_callbacks, run_scenario, timed_caller_scenario, wait_for
from support.plans import accept_caller_id, answer, choose, happy, speak, voices
from support.reacting import cue_when
from support.sipp import CallerSpec

from ivr.caller.client import CallReport
from ivr.caller.plan import AwaitEnd, CallPlan, Cue, Hangup, Listen, Pause, Step
from ivr.flows.audio import analyse
from ivr.records import recordings
from ivr.rules import load_rules
from ivr.rules.model import Override
from ivr.rules.schedule import next_opening
from ivr.rules.timeutil import human_time

pytestmark = pytest.mark.pbx

SUNNY_DID = "+16175550100"
SUNNY_FWD = "+16175550111"
MESA_DID = "+17205550200"
MESA_FWD = "+17205550211"
UNKNOWN_DID = "+15555550123"
SHARED_TRUNK_DID = "+16175550999"  # claimed by nobody: only the Diversion names the practice
# The silent caller's wait for the service to end its call (see SCENARIOS).
SILENT_CALL_S = 900
CAMPAIGN_S = SILENT_CALL_S + 120  # the longest caller's wait and its own time-out after it
# A caller who holds for the clinician (the service keeps talking or ringing: no quiet
# turn), then gives up while the chain is rung.
HOLD_THEN_HANG_UP = [Listen(quiet_ms=0, min_voice_ms=4000), Pause(30000), Hangup()]

def say(wav: str) -> list[Step]:
    """Speak after the beep and let the silence end the recording."""
    return speak(wav, pound=False)


# name -> (number dialled, caller ID, Diversion, steps from the voices). These callers
# let the silence after their words end each recording (pound=False): the path a caller
# who does not know '#' takes; the silent caller sets the campaign's length anyway.
SCENARIOS: dict[str, tuple[str, str, str | None, Any]] = {
    "routine": (SUNNY_DID, "+16175550142", None, lambda v: happy(v, pound=False) + choose("4")),
    "urgent": (SUNNY_DID, "+16175550143", None,
               lambda v: happy(v, pound=False) + choose("1") + HOLD_THEN_HANG_UP),
    "emergency": (SUNNY_DID, "+16175550144", None,
                  lambda v: happy(v, pound=False) + choose("9") + HOLD_THEN_HANG_UP),
    "forwarded": (SHARED_TRUNK_DID, "+16175550145",
                  f"<sip:{SUNNY_FWD}@127.0.0.1>;reason=no-answer",
                  lambda v: happy(v, pound=False) + choose("3")),
    "overflow": (MESA_DID, "+16175550146", f"<sip:{MESA_FWD}@127.0.0.1>;reason=user-busy",
                 lambda v: happy(v, pound=False) + choose("2")),
    "unknown": (UNKNOWN_DID, "+16175550147", None, lambda v: happy(v, pound=False)),
    "anonymous": (SUNNY_DID, "anonymous", None,
                  lambda v: [*answer("6175550177#"), *answer("1"), *answer("07041965"),
                             *answer("1"), *say(v["name"]), *say(v["reason"]),
                             *choose("4")]),
    "invalid": (SUNNY_DID, "+16175550148", None,
                lambda v: [*answer("555#"), *answer("1"), *answer("13451990"),
                           *answer("01021990"), *answer("1"), *say(v["name"]),
                           *say(v["reason"]), *choose("7"), *choose("4")]),
    # Says nothing at all, to the end (the line stays open: silence keeps arriving).
    # Every question asked and timed out, then the on-call chain rung unanswered: about
    # 5 minutes idle, 6.5 beside two CPU hogs (runs h14, h15), so the wait is generous.
    "silence": (MESA_DID, "+16175550149", None, lambda v: [AwaitEnd(SILENT_CALL_S)]),
    # Hangs up once the controller has begun to ask for the number (its cue, below): a
    # pause between two prompts on a loaded machine must not make it hang up earlier.
    "hangup_callback": (SUNNY_DID, "+16175550150", None,
                        lambda v: [Listen(), Cue(v["cue"]), Hangup()]),
    "hangup_dob": (SUNNY_DID, "+16175550151", None,
                   lambda v: [*accept_caller_id(), *answer("010"), Hangup()]),
    "hangup_name": (SUNNY_DID, "+16175550152", None,
                    lambda v: [*accept_caller_id(), *answer("01021990"), *answer("1"),
                               *say(v["name"]), Hangup()]),
    "hangup_reason": (SUNNY_DID, "+16175550153", None,
                      lambda v: [*accept_caller_id(), *answer("01021990"), *answer("1"),
                                 *say(v["name"]), *say(v["reason"]), Hangup()]),
}
CALLER_DIGITS = {name: "".join(c for c in spec[1] if c.isdigit() or c == "+")
                 for name, spec in SCENARIOS.items()}
# The hostile caller: SIPp, since its headers must reach the PBX byte for byte (a SIP
# stack would refuse to send them). It says nothing and hangs up during the intake.
HOSTILE = "hostile"
# The hostile From user part is no strict number: the dialplan keeps no caller ID at all.
CALLER_DIGITS[HOSTILE] = ""
HOSTILE_HANGUP_MS = 40000  # past the greeting and notice, into the first questions
# Hostile caller-supplied values, sent byte for byte: dialplan, AGI and shell syntax.
HOSTILE_HEADERS = (
    'From: "Evil\\" ${SHELL(id)} | & , \' ' + "A" * 300
    + '" <sip:+16175550166&PJSIP/evil,x$@127.0.0.1:[local_port]>;tag=[call_number]',
    'Diversion: <sip:+16175550111&Dial(PJSIP/x),$@127.0.0.1>;reason="a,b|c&${EXTEN}"',
    "X-Evil: ${SHELL(touch /tmp/ivr-pwned)}&|,\"'" + "B" * 600,
)
ALL_SCENARIOS = [*SCENARIOS, HOSTILE]


class Campaign:
    """Every scenario's caller, started together; reports by scenario name."""

    def __init__(self, stack, workdir: Path) -> None:
        self.stack = stack
        self.results: dict[str, CallReport | subprocess.CompletedProcess[str]] = {}
        cue = workdir / "hangup_callback.cue"
        said = {**voices(stack), "cue": str(cue)}
        self.threads = [cue_when(cue, lambda: self._asked("+16175550150", "callback"),
                                 "the callback question asked", interval=1.0)]
        for name, (number, caller_id, diversion, steps) in SCENARIOS.items():
            plan = CallPlan(caller_id=caller_id, steps=tuple(steps(said)),
                            headers=(("Diversion", diversion),) if diversion else ())
            self._start(name, lambda plan=plan, number=number, name=name: stack.place(
                plan, number, workdir / name, timeout_s=SILENT_CALL_S + 60))
        xml = timed_caller_scenario(CallerSpec(caller_id="+16175550166"), [],
                                    HOSTILE_HANGUP_MS, True, HOSTILE_HEADERS)
        self._start(HOSTILE, lambda: run_scenario(xml, stack.target, SUNNY_DID,
                                                  workdir / HOSTILE))

    def _asked(self, caller: str, field: str) -> bool:
        """The controller has started to ask this caller for `field`."""
        found = [c for c in self.stack.calls() if c["caller"] == caller
                 and c["dialled"] == SUNNY_DID and not c["reconciled_at"]]
        return any(e["kind"] == f"intake.{field}.asked"
                   for c in found for e in self.stack.show(c["id"])["timeline"])

    def _start(self, name: str, place: Any) -> None:
        thread = threading.Thread(target=lambda: self.results.__setitem__(name, place()),
                                  daemon=True)
        thread.start()
        self.threads.append(thread)

    def result(self, name: str) -> CallReport | subprocess.CompletedProcess[str]:
        wait_for(lambda: name in self.results, CAMPAIGN_S, f"the {name} caller to finish",
                 interval=0.5)
        return self.results[name]


def _cli(stack, *args: str) -> str:
    return stack.cli(*args)


@pytest.fixture(scope="module")
def campaign(stack, tmp_path_factory):
    if stack.controller is None or stack.controller.poll() is not None:
        stack.start_controller()
    until = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    _cli(stack, "override", "set", "--practice", "sunny-pediatrics", "--closed", "--until",
         until.isoformat(), "--reason", "e2e: after hours")
    _cli(stack, "override", "set", "--practice", "mesa-family", "--open", "--until",
         until.isoformat(), "--reason", "e2e: open, overflow")
    run = Campaign(stack, tmp_path_factory.mktemp("calls"))
    run.until = until  # type: ignore[attr-defined]
    try:
        yield run
        for thread in run.threads:
            thread.join(CAMPAIGN_S)
        wait_for(lambda: stack.channels() == 0, 30, "no channels left in Asterisk")
    finally:
        for thread in run.threads:
            thread.join(5)
        if stack.channels():
            stack.hangup_all()
        for practice in ("sunny-pediatrics", "mesa-family"):
            _cli(stack, "override", "clear", "--practice", practice)
        drop_pending_callbacks(stack)  # nobody answers here: stop their call-backs


def _finished(campaign, name: str) -> dict:
    """The stored call of scenario `name`, once reconciled (its channel has ended)."""
    result = campaign.result(name)
    if isinstance(result, CallReport):
        assert result.ok, f"{name}: {result.explain()}"
    else:
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
    stack = campaign.stack
    caller = CALLER_DIGITS[name] if name != "anonymous" else ""

    def ready():
        calls = [c for c in stack.calls() if c["caller"] == caller
                 and c["started_at"] >= (campaign.until - timedelta(hours=4)).isoformat()]
        # Two callers without a caller ID dial Sunny: the hostile one is known by the
        # name its From header gave the channel (as Asterisk created it, before
        # [ivr-strict]), whatever became of either intake.
        if name in ("anonymous", HOSTILE):
            hostile = _hostile_uniqueid(stack)
            calls = [c for c in calls if c["dialled"] == SUNNY_DID and hostile is not None
                     and (c["uniqueid"] == hostile) == (name == HOSTILE)]
        return calls[0] if calls and calls[0]["reconciled_at"] else None

    call = wait_for(ready, 60, f"the {name} call to be stored and reconciled", interval=0.5)
    detail = stack.show(call["id"])
    # The test's own AMI recorder may read the event after the controller reconciled the
    # call from it (its thread starved beside the hogs): waited for, not asserted at once.
    wait_for(lambda: [e for e in stack.recorder.user_events(call["uniqueid"])
                      if e.get("UserEvent") == "IvrCallEnded"],
             30, f"{name}: the channel's end (IvrCallEnded)", interval=0.5)
    return detail


def _hostile_uniqueid(stack) -> str | None:
    """The hostile caller's channel: the one Asterisk created with its From's name."""
    return next((e.get("Uniqueid") for e in stack.recorder.of_kind("Newchannel")
                 if e.get("CallerIDName", "").startswith("Evil")), None)


def _voiced(detail: dict, field: str) -> None:
    entry = detail["intake"][field]
    path = Path(entry["recording_path"])
    assert path.is_file() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert path.parent.name == detail["id"] and path.name == f"{field}.wav.enc"  # sealed
    assert entry["duration_seconds"] > 0.5 and entry["source"] == "recording"
    assert analyse(recordings.read(path)).has_voice
    assert any(r["path"] == str(path) for r in detail["recordings"])


def _kinds(detail: dict) -> list[str]:
    return [e["kind"] for e in detail["timeline"]]


def _full_intake(detail: dict, caller: str) -> None:
    intake = detail["intake"]
    assert intake["callback"]["value"] == caller
    assert intake["callback"]["source"] == "caller_id" and intake["callback"]["confirmed"]
    assert intake["dob"]["value"] == "1990-01-02" and intake["dob"]["confirmed"]
    _voiced(detail, "name")
    _voiced(detail, "reason")


def test_after_hours_routine_message(campaign):
    call = _finished(campaign, "routine")
    assert call["practice_id"] == "sunny-pediatrics" and call["route"] == "after_hours"
    assert call["state"] == "override" and "manual override" in call["state_reason"]
    assert call["disposition"] == "routine" and call["result"] == "done"
    assert call["end_reason"] == "completed" and call["abandoned_step"] is None
    assert call["rules_digest"]
    _full_intake(call, "+16175550142")
    # The caller was told when the office calls back, computed in the practice's zone.
    sunny = load_rules(REPO / "routing_rules", now=datetime.now(UTC)).rules \
        .practices["sunny-pediatrics"]
    started = datetime.fromisoformat(call["started_at"])
    closed = Override(started - timedelta(hours=1), campaign.until, False, "e2e", True)
    reopen = next_opening(sunny, started, (closed,))
    assert f"call you back after {human_time(reopen, sunny.tz, started)}" in call["caller_told"]
    assert "menu.key" in _kinds(call)


def test_urgent_searches_the_on_call_chain(campaign):
    """No phone answers the gateway in this module: the chain is rung (each leg stored),
    and the call is never handed to the dialplan fallback while the controller is up."""
    call = _finished(campaign, "urgent")
    assert call["disposition"] == "urgent"
    assert call["fallback_reason"] is None
    assert "connect you with the clinician on call" in call["caller_told"]
    _full_intake(call, "+16175550143")
    assert call["oncall_legs"] and call["oncall_legs"][0]["kind"] == "live"
    assert "IvrFallback" not in campaign.stack.recorder.path(call["uniqueid"])


def test_emergency_plays_the_911_advice_then_connects(campaign):
    call = _finished(campaign, "emergency")
    assert call["disposition"] == "emergency"
    assert "dial 911 now" in call["caller_told"]
    assert call["fallback_reason"] is None and call["oncall_legs"]
    _full_intake(call, "+16175550144")


def test_forwarded_call_is_matched_by_its_diversion_number(campaign):
    call = _finished(campaign, "forwarded")
    assert call["dialled"] == SHARED_TRUNK_DID and call["forwarded_from"] == SUNNY_FWD
    assert call["practice_id"] == "sunny-pediatrics" and call["route"] == "after_hours"
    assert call["disposition"] == "appointment" and call["result"] == "done"
    _full_intake(call, "+16175550145")


def test_overflow_during_open_hours_promises_a_same_day_callback(campaign):
    call = _finished(campaign, "overflow")
    assert call["practice_id"] == "mesa-family" and call["route"] == "overflow"
    assert call["forwarded_from"] == MESA_FWD
    assert call["disposition"] == "prescription" and call["same_day_callback"] is True
    assert "call you back today, before" in call["caller_told"]
    assert call["result"] == "done"
    _full_intake(call, "+16175550146")


def test_unknown_number_gets_the_generic_flow_flagged_for_an_operator(campaign):
    call = _finished(campaign, "unknown")
    assert call["practice_id"] is None and call["route"] == "unknown_number"
    assert call["operator_flag"] is True and call["result"] == "done"
    assert "operator" in call["caller_told"]
    _full_intake(call, "+16175550147")


def test_anonymous_caller_keys_a_number_read_back_and_confirmed(campaign):
    call = _finished(campaign, "anonymous")
    assert call["caller"] == ""
    callback = call["intake"]["callback"]
    assert callback == {**callback, "value": "+16175550177", "source": "keyed",
                        "confirmed": True}
    assert call["intake"]["dob"]["value"] == "1965-07-04"  # before 1970: said back too
    assert call["intake"]["dob"]["confirmed"]
    assert call["disposition"] == "routine"
    _voiced(call, "name")
    _voiced(call, "reason")


def test_invalid_keys_then_valid_ones(campaign):
    call = _finished(campaign, "invalid")
    kinds = _kinds(call)
    assert "intake.callback.invalid" in kinds and "intake.dob.invalid" in kinds
    menu = [e["detail"]["result"] for e in call["timeline"] if e["kind"] == "menu.key"]
    assert menu == ["invalid", "routine"]
    _full_intake(call, "+16175550148")
    assert call["intake"]["dob"]["attempts"] == 2


def test_silence_at_every_prompt_still_ends_somewhere(campaign):
    call = _finished(campaign, "silence")
    assert call["route"] == "open_direct" and call["practice_id"] == "mesa-family"
    callback = call["intake"]["callback"]
    assert (callback["value"], callback["source"], callback["confirmed"]) == \
        ("+16175550149", "caller_id", False)
    assert set(call["intake"]) == {"callback"}
    kinds = _kinds(call)
    assert kinds.count("intake.dob.no_input") == 2  # mesa: 1 + 1 retry
    assert kinds.count("intake.name.silent") == 2 and kinds.count("intake.reason.silent") == 2
    assert "menu.default" in kinds and call["disposition"] == "urgent"
    assert call["recordings"] == [] and call["oncall_legs"]


@pytest.mark.parametrize("step", ["callback", "dob", "name", "reason"])
def test_hang_up_in_the_middle_of_an_intake_step(campaign, step):
    call = _finished(campaign, f"hangup_{step}")
    caller = CALLER_DIGITS[f"hangup_{step}"]
    assert call["abandoned_step"] == f"intake.{step}"
    assert call["end_reason"] == "caller_hangup"
    callback = call["intake"]["callback"]
    assert callback["value"] == caller
    assert callback["confirmed"] is (step != "callback")  # kept unconfirmed from caller ID
    if step in ("name", "reason"):
        assert call["intake"]["dob"]["value"] == "1990-01-02"
    if step == "reason":
        _voiced(call, "name")
    if step == "name":  # what was said before the hang-up is kept
        _voiced(call, "name")


def test_hostile_caller_data_is_inert(campaign):
    call = _finished(campaign, "hostile")
    # Neither the From user part nor the Diversion is a strict number: both are dropped
    # (never trimmed into another number), and the record says so.
    assert call["caller"] == "" and call["forwarded_from"] == ""
    refused = [f for e in call["timeline"] if e["kind"] == "caller_data.refused"
               for f in e["detail"]["fields"]]
    assert {"caller", "forwarded", "name"} <= set(refused)
    assert call["practice_id"] == "sunny-pediatrics"
    # It hangs up after a while, wherever the flow is then (it presses no key).
    assert call["abandoned_step"] in ("greeting", "emergency_notice", "intake.callback",
                                      "intake.dob")
    assert call["fallback_reason"] != "controller-error"
    log = campaign.stack.controller_log()
    assert "Traceback" not in log and "flow failed" not in log
    assert "IvrFallback" not in campaign.stack.recorder.path(call["uniqueid"])
    assert not Path("/tmp/ivr-pwned").exists()


def test_patient_data_never_reaches_the_controller_log(campaign):
    for name in ALL_SCENARIOS:
        campaign.result(name)
    log = campaign.stack.controller_log()
    assert "call " in log  # the log is there and carries call ids
    secrets = ["6175550142", "6175550177", "6175550148", "01021990", "1990-01-02",
               "07041965", "1965-07-04", "Alex Smith"]
    leaked = [s for s in secrets if s in log]
    assert leaked == [], json.dumps(leaked)
