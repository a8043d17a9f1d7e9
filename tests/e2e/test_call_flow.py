"""The call flow end to end through the real Asterisk: one SIPp caller per path.

All calls of this module are placed at once by a module fixture (they run side by side,
so the set takes as long as its longest call), then each test checks its own call: the
stored call, its intake, its recordings (present, voiced), and that its channel ended.

Determinism: the practice state comes from manual overrides set with `ivr override set`
before the calls (Sunny Pediatrics closed, Mesa Family open for the next hours), not from
the wall clock, so the same paths run whatever time the suite runs at. Keys are sent by
SIP INFO at fixed times after the answer; prompts are interruptible by keys, so each key
lands inside the prompt it answers (times below follow the prompts' lengths). The caller
speaks continuously (real speech RTP), and presses # to end each recording.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import (
    REPO,
    drop_pending_callbacks,
    run_scenario,
    silence_pcap,
    timed_caller_scenario,
    wait_for,
)

from ivr.flows.audio import analyse
from ivr.records import recordings
from ivr.rules import load_rules
from ivr.rules.model import Override
from ivr.rules.schedule import next_opening
from ivr.rules.timeutil import human_time
from ivr.sipp import CallerSpec, speech_pcap

pytestmark = pytest.mark.pbx

SUNNY_DID = "+16175550100"
SUNNY_FWD = "+16175550111"
MESA_DID = "+17205550200"
MESA_FWD = "+17205550211"
UNKNOWN_DID = "+15555550123"
SHARED_TRUNK_DID = "+16175550999"  # claimed by nobody: only the Diversion names the practice

SKIP = [(1000, "#"), (2000, "#")]  # skip the greeting, then the emergency notice
ACCEPT = [(3000, "1")]  # "press 1 to be called back at <caller ID>"
DOB = [(5500 + 300 * i, d) for i, d in enumerate("01021990")] + [(9500, "1")]
RECORD = [(17500, "#"), (25000, "#")]  # end the name, then the reason recording
HAPPY = SKIP + ACCEPT + DOB + RECORD


def _menu(key: str) -> list[tuple[int, str]]:
    return [(27000, key)]


def _keys(text: str, start: int, step: int = 300) -> list[tuple[int, str]]:
    return [(start + step * i, k) for i, k in enumerate(text)]


# name -> (number dialled, caller spec fields, timeline, end ms, hang up ourselves, audio)
SCENARIOS = {
    "routine": (SUNNY_DID, {"caller_id": "+16175550142"}, HAPPY + _menu("4"), 70000, False,
                "speech"),
    "urgent": (SUNNY_DID, {"caller_id": "+16175550143"}, HAPPY + _menu("1"), 45000, True,
               "speech"),
    "emergency": (SUNNY_DID, {"caller_id": "+16175550144"}, HAPPY + _menu("9"), 55000, True,
                  "speech"),
    "forwarded": (SHARED_TRUNK_DID, {"caller_id": "+16175550145",
                                     "diversion": f"sip:{SUNNY_FWD}@127.0.0.1;reason=no-answer"},
                  HAPPY + _menu("3"), 70000, False, "speech"),
    "overflow": (MESA_DID, {"caller_id": "+16175550146",
                            "diversion": f"sip:{MESA_FWD}@127.0.0.1;reason=user-busy"},
                 HAPPY + _menu("2"), 70000, False, "speech"),
    "unknown": (UNKNOWN_DID, {"caller_id": "+16175550147"}, HAPPY, 70000, False, "speech"),
    "anonymous": (SUNNY_DID, {"caller_id": "anonymous"},
                  SKIP + _keys("6175550177#", 3000) + [(8000, "1")]
                  + _keys("07041965", 9000) + [(13000, "1"), (21000, "#"), (28500, "#"),
                                               (30500, "4")], 75000, False, "speech"),
    "invalid": (SUNNY_DID, {"caller_id": "+16175550148"},
                SKIP + _keys("555#", 3000) + [(8500, "1")] + _keys("13451990", 11000)
                + _keys("01021990", 17000) + [(21000, "1"), (29000, "#"), (36500, "#"),
                                              (38500, "7"), (43000, "4")], 80000, False,
                "speech"),
    "silence": (MESA_DID, {"caller_id": "+16175550149"}, [], 250000, False, "silence"),
    "hangup_callback": (SUNNY_DID, {"caller_id": "+16175550150"}, SKIP, 3500, True,
                        "speech"),
    "hangup_dob": (SUNNY_DID, {"caller_id": "+16175550151"}, SKIP + ACCEPT + DOB[:3], 7000,
                   True, "speech"),
    "hangup_name": (SUNNY_DID, {"caller_id": "+16175550152"}, SKIP + ACCEPT + DOB, 17000,
                    True, "speech"),
    "hangup_reason": (SUNNY_DID, {"caller_id": "+16175550153"}, HAPPY[:-1], 24000, True,
                      "speech"),
    # Hostile caller-supplied values: dialplan/AGI/command syntax in every field we can.
    "hostile": (SUNNY_DID, {"caller_id": "+16175550166"}, SKIP + ACCEPT, 7000, True,
                "speech"),
}
CALLER_DIGITS = {name: "".join(c for c in spec[1]["caller_id"] if c.isdigit() or c == "+")
                 for name, spec in SCENARIOS.items()}
# The hostile From user part is no strict number: the dialplan keeps no caller ID at all.
CALLER_DIGITS["hostile"] = ""
# Hostile caller-supplied values, sent byte for byte: dialplan, AGI and shell syntax.
HOSTILE_HEADERS = (
    'From: "Evil\\" ${SHELL(id)} | & , \' ' + "A" * 300
    + '" <sip:+16175550166&PJSIP/evil,x$@127.0.0.1:[local_port]>;tag=[call_number]',
    'Diversion: <sip:+16175550111&Dial(PJSIP/x),$@127.0.0.1>;reason="a,b|c&${EXTEN}"',
    "X-Evil: ${SHELL(touch /tmp/ivr-pwned)}&|,\"'" + "B" * 600,
)


class Campaign:
    """Every scenario's SIPp run, started together; results by scenario name."""

    def __init__(self, stack, workdir: Path) -> None:
        self.stack = stack
        self.results: dict[str, subprocess.CompletedProcess[str]] = {}
        speech = speech_pcap("Alex Smith. My daughter has had a fever since this morning.",
                             workdir / "speech.pcap", repeat=30, tail_silence_s=1)
        silence = silence_pcap(workdir / "silence.pcap", 245)
        self.threads = []
        for name, (number, fields, timeline, end_ms, hangup, audio) in SCENARIOS.items():
            spec = CallerSpec(audio_pcap=str(speech if audio == "speech" else silence),
                              **fields)
            xml = timed_caller_scenario(spec, timeline, end_ms, hangup,
                                        HOSTILE_HEADERS if name == "hostile" else ())
            thread = threading.Thread(target=self._run, args=(name, xml, number, workdir),
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, name: str, xml: str, number: str, workdir: Path) -> None:
        self.results[name] = run_scenario(xml, self.stack.target, number, workdir / name)

    def result(self, name: str) -> subprocess.CompletedProcess[str]:
        wait_for(lambda: name in self.results, 320, f"the {name} caller to finish",
                 interval=0.5)
        return self.results[name]


def _cli(stack, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=stack.env,
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


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
            thread.join(330)
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
    assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
    stack = campaign.stack
    caller = CALLER_DIGITS[name] if name != "anonymous" else ""

    def keyed(call: dict) -> str | None:
        return (call["intake"].get("callback") or {}).get("value")

    def ready():
        calls = [c for c in stack.calls() if c["caller"] == caller
                 and c["started_at"] >= (campaign.until - timedelta(hours=4)).isoformat()]
        # Two callers without a caller ID dial Sunny: the anonymous one keys a number.
        if name == "anonymous":
            calls = [c for c in calls if c["dialled"] == SUNNY_DID
                     and keyed(c) == "+16175550177"]
        if name == "hostile":
            calls = [c for c in calls if c["dialled"] == SUNNY_DID
                     and keyed(c) != "+16175550177"]
        return calls[0] if calls and calls[0]["reconciled_at"] else None

    call = wait_for(ready, 60, f"the {name} call to be stored and reconciled", interval=0.5)
    detail = stack.show(call["id"])
    ended = [e for e in stack.recorder.user_events(call["uniqueid"])
             if e.get("UserEvent") == "IvrCallEnded"]
    assert ended, f"{name}: the channel did not end"
    return detail


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
    assert call["abandoned_step"] in ("intake.callback", "intake.dob")
    assert call["fallback_reason"] != "controller-error"
    log = campaign.stack.controller_log()
    assert "Traceback" not in log and "flow failed" not in log
    assert "IvrFallback" not in campaign.stack.recorder.path(call["uniqueid"])
    assert not Path("/tmp/ivr-pwned").exists()


def test_patient_data_never_reaches_the_controller_log(campaign):
    for name in SCENARIOS:
        campaign.result(name)
    log = campaign.stack.controller_log()
    assert "call " in log  # the log is there and carries call ids
    secrets = ["6175550142", "6175550177", "6175550148", "01021990", "1990-01-02",
               "07041965", "1965-07-04", "Alex Smith"]
    leaked = [s for s in secrets if s in log]
    assert leaked == [], json.dumps(leaked)
