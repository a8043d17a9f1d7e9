"""Caller data is data: header injections and malformed numbers through the real PBX.

Each attack is a SIPp caller whose SIP From user part (percent-decoded by Asterisk into
the caller ID) or request URI carries what once reached the FastAGI header block: a
newline and a header of the attacker's choosing. The dialplan's [ivr-strict] reduces
every caller value before AGI(); the controller refuses what is left of any other shape.
Asserted: another patient's record is byte-for-byte unchanged, the attacker's own call
is recorded as a new call with the values dropped and the refusal on its timeline.
"""

from __future__ import annotations

import json

import pytest
from harness import EXAMPLE_DID, wait_for
from support.sipp import CallerSpec

pytestmark = pytest.mark.pbx


def _place(live, spec: CallerSpec, number: str = EXAMPLE_DID) -> str:
    """Place the call, wait for its end; its Asterisk uniqueid."""
    mark = live.recorder.mark()
    result = live.call(spec, number)
    assert result.returncode == 0, result.stderr[-2000:]
    return wait_for(lambda: live.recorder.last_inbound_uniqueid(mark), 30, "the call's events")


def _reconciled(live, uniqueid: str) -> dict:
    call = wait_for(lambda: (c := live.call_by_uniqueid(uniqueid)) and c["reconciled_at"]
                    and c, 60, "the call to be stored and reconciled", interval=0.5)
    return live.show(call["id"])


def _kinds(record: dict) -> list[str]:
    return [event["kind"] for event in record["timeline"]]


def _refused_fields(record: dict) -> list[str]:
    return [field for event in record["timeline"] if event["kind"] == "caller_data.refused"
            for field in event["detail"]["fields"]]


@pytest.fixture
def victim(live):
    """Another patient's finished call, as the record shows it."""
    uniqueid = _place(live, CallerSpec(caller_id="+16175550161", keys="",
                                       hangup_after_ms=4000))
    record = _reconciled(live, uniqueid)
    assert record["caller"] == "+16175550161"
    return record


ATTACKS = {
    # The victim's uniqueid after a newline: once attached the call to the victim's record.
    "uniqueid": "+16175550162%0Aagi_uniqueid%3A%20{victim}",
    # Another route for a patient's call (the benchmark's, no intake).
    "network_script": "+16175550163%0Aagi_network_script%3A%20bench",
    # A blank line: ended the header block early, so the stream was lost with the call.
    "early_end": "+16175550164%0A%0Aagi_uniqueid%3A%20{victim}",
    # Dialplan and AGI syntax.
    "syntax": "+16175550165%24%7BSHELL(id)%7D%22%20EXEC%20System%2C%7C",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_injected_caller_id_leaves_other_records_untouched(live, victim, attack):
    before = json.dumps(victim, sort_keys=True)
    caller_id = ATTACKS[attack].format(victim=victim["uniqueid"])
    uniqueid = _place(live, CallerSpec(caller_id=caller_id, keys="", hangup_after_ms=4000))
    assert uniqueid != victim["uniqueid"]
    mine = _reconciled(live, uniqueid)

    after = json.dumps(live.show(victim["id"]), sort_keys=True)
    assert after == before, "the victim's record changed"
    # The attacker's call is a new record of its own, run by the inbound flow.
    assert mine["id"] != victim["id"] and mine["uniqueid"] == uniqueid
    assert mine["caller"] == ""
    assert "route.decided" in _kinds(mine)
    assert _refused_fields(mine) == ["caller"]
    assert mine["ended_at"] is not None
    # Nothing of the injected text is stored or logged.
    assert "agi_" not in json.dumps(mine) and "SHELL" not in json.dumps(mine)
    assert "agi_uniqueid" not in live.controller_log()


def test_a_plus_inside_a_number_is_no_number_and_the_call_is_still_recorded(live):
    """'+' inside the caller ID, the Diversion and the request URI once passed the
    dialplan's FILTER and then made the hang-up stamp unreadable: no end, no record."""
    spec = CallerSpec(caller_id="+1617+5550166", keys="", hangup_after_ms=4000,
                      diversion="<sip:+1617+5550111@127.0.0.1>;reason=no-answer")
    uniqueid = _place(live, spec, number="+1617+5550100")
    record = _reconciled(live, uniqueid)
    assert (record["caller"], record["dialled"], record["forwarded_from"]) == ("", "", "")
    assert sorted(_refused_fields(record)) == ["caller", "dialled", "forwarded"]
    assert record["ended_at"] is not None and record["end_reason"] == "caller_hangup"


def test_with_the_controller_down_a_malformed_number_still_enters_the_record(live):
    live.stop_controller()
    try:
        spec = CallerSpec(caller_id="+1617+5550167%0Aagi_x%3A%201", keys="",
                          hangup_after_ms=5000)
        uniqueid = _place(live, spec, number="+1617+5550100")
    finally:
        live.start_controller()
    record = _reconciled(live, uniqueid)
    assert not record["seen_by_controller"]
    assert record["ended_at"] is not None
    assert record["end_reason"].startswith("fallback")
    assert (record["caller"], record["dialled"]) == ("", "")
