"""Transcripts through the real PBX: a caller speaks a reason with a red flag (espeak-ng
RTP) and picks "routine"; the reason is transcribed by the controller's worker process,
the caller is told it may be urgent and offered the on-call, presses 1 and is bridged
to a SIPp clinician who accepts. `ivr calls show` gives the transcript, marked as a
machine's, and the timeline says which topic matched and what the caller chose (never
the words)."""

from __future__ import annotations

import json
import signal

import pytest
from harness import REPO, run_scenario_in, timed_caller_scenario, wait_for
from oncall_helpers import call_of, practice_yaml, restore, use_rules
from support.sipp import CallerSpec, PhoneBehaviour, speech_pcap, start_multi_phone

from ivr.texts import en

pytestmark = pytest.mark.pbx

DID = "+16175550471"
CALLER = "+16175550472"
NURSE = "+16175550473"
REASON = "My son is having trouble breathing."
# Skip greeting and notice, accept the caller ID (1, then its pause), speak the reason
# after the beep and end it with #, 4 (routine) in the menu; then 1 a few times: the
# first that lands while the red-flag offer plays takes it (one before the offer, while
# the transcript is awaited, is not heard by anyone, which is harmless).
TIMELINE = [(800, "#"), (1600, "#"), (2600, "1"), (14000, "#"), (16500, "4"),
            (24000, "1"), (28000, "1"), (32000, "1"), (36000, "1")]


@pytest.fixture
def red_flag_practice(stack, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    text = practice_yaml("rf-transcripts", DID, [("n1", NURSE, 20)],
                         collect="[callback, reason]")
    # Generous: the machine is shared; the wait only matters when a transcript is late.
    (rules / "rf.yaml").write_text(text + "red_flags:\n  wait_seconds: 20\n")
    use_rules(stack, rules)
    phone = start_multi_phone({NURSE[1:]: PhoneBehaviour(keys=((2500, "1"),))},
                              PhoneBehaviour(busy=True), stack.settings.gateway_port,
                              tmp_path, media_port=stack.ports.next(4))
    try:
        yield stack
        wait_for(lambda: stack.channels() == 0, 60, "no channels left in Asterisk")
    finally:
        phone.send_signal(signal.SIGTERM)
        phone.wait(10)
        if stack.channels():
            stack.hangup_all()
        restore(stack)


def test_red_flag_in_a_routine_reason_offers_the_on_call_and_bridges(red_flag_practice,
                                                                    tmp_path):
    stack = red_flag_practice
    speech = speech_pcap(REASON, tmp_path / "speech.pcap", repeat=30, tail_silence_s=1)
    xml = timed_caller_scenario(CallerSpec(caller_id=CALLER, audio_pcap=str(speech)),
                                TIMELINE, 60000, hangup=True)
    result = run_scenario_in(stack, xml, DID, tmp_path / "call")
    assert result.returncode == 0, result.stderr[-3000:]
    call = wait_for(lambda: (c := call_of(stack, DID)) is not None and c["ended_at"]
                    and c["transcripts"] and c, 90, "the call and its transcript")
    kinds = [e["kind"] for e in call["timeline"]]
    transcript = next(t for t in call["transcripts"] if t["field"] == "reason")
    detail = f"timeline {kinds}; transcript {transcript}"
    assert transcript["status"] == "done", detail
    assert "breathing" in transcript["text"].lower(), detail
    assert transcript["mark"] == en.TRANSCRIPT_MARK
    assert transcript["engine"] == "whisper" and "tiny.en" in transcript["engine_version"]
    assert transcript["red_flag"] == "breathing", detail
    assert transcript["audio_seconds"] > 1 and transcript["cpu_seconds"] > 0
    # Upgraded by the caller's own choice; the timeline names the topic, not the words.
    offer = next(e for e in call["timeline"] if e["kind"] == "redflag.offer")
    assert offer["detail"] == {"topic": "breathing", "chose": "routine",
                               "answer": "on_call"}, detail
    assert call["disposition"] == "urgent" and call["red_flag"] == "breathing"
    assert call["language"] == "en-US"
    assert call["oncall_outcome"] == "connected", detail
    assert [leg["status"] for leg in call["oncall_legs"]][-1] in ("accepted", "completed")
    timeline_text = json.dumps(call["timeline"]).lower()
    assert "trouble" not in timeline_text and "son" not in timeline_text.split('"')
    # The words are stored sealed, and never logged.
    assert REASON.lower().rstrip(".") not in stack.controller_log().lower()
    # The text form of `calls show` shows the transcript too.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ivr.cli", "calls", "show", call["id"]],
                         env=stack.env, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "breathing" in out.stdout.lower() and en.TRANSCRIPT_MARK in out.stdout
