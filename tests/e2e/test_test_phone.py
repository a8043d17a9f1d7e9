"""The test phone (IVR_TEST_PHONE=1, ivr/edge/testphone.py) end to end, with a reacting
caller acting as the softphone a newcomer would set up: it registers with the account
`ivr run` prints (user testphone, the instance's test-phone secret), dials 100 as the
printout says, and hears the example practice's greeting. A wrong password is refused,
for the registration and for the call; with the setting off there is no such account:
nothing registers, and its user is challenged and refused like any unknown one."""

from __future__ import annotations

import pytest
from harness import wait_for
from support.stack import own_stack

from ivr.caller.plan import CallPlan, Hangup, Listen, SipAccount
from ivr.edge.testphone import ENDPOINT, USERNAME, first_did
from ivr.pbx.instance import TEST_PHONE_SECRET

pytestmark = pytest.mark.pbx


#: The softphone calls from 127.0.0.1, so loopback must not be the legacy trunk's address
#: (IVR_TRUNK_MATCH, 127.0.0.1 by default): a phone on the LAN is not the carrier either.
NOT_US = "127.0.0.13"


@pytest.fixture(scope="module")
def with_phone():
    with own_stack("tp", test_phone=True, trunk_match=NOT_US) as s:
        s.start_pbx()
        s.start_controller()
        yield s


@pytest.fixture(scope="module")
def without_phone():
    with own_stack("ntp", trunk_match=NOT_US) as s:
        s.start_pbx()
        yield s


def _softphone(password: str, steps) -> CallPlan:
    return CallPlan(caller_id=USERNAME, caller_name="Newcomer", steps=steps,
                    account=SipAccount(USERNAME, password))


def _registration(report) -> dict:
    [event] = [e for e in report.events if e["event"] in ("registered", "not_registered")]
    return event


def test_the_printed_account_registers_and_reaches_the_greeting(with_phone, tmp_path):
    password = with_phone.pbx.private_secret(TEST_PHONE_SECRET)  # what `ivr run` prints
    mark = with_phone.recorder.mark()
    report = with_phone.place(_softphone(password, (Listen(), Hangup())), "100",
                              tmp_path / "call", timeout_s=90)
    assert report.ok, report.explain()
    assert _registration(report) == {**_registration(report), "event": "registered",
                                     "status": 200}
    assert report.named("heard")  # the greeting, to its end
    uid = wait_for(lambda: with_phone.recorder.last_inbound_uniqueid(mark), 30, "the call")
    call = wait_for(lambda: with_phone.call_by_uniqueid(uid), 30, "the call's record")
    assert call["dialled"] == first_did(with_phone.settings.rules_path)
    with with_phone.recorder._lock:
        chans = [e.get("Channel", "") for e in with_phone.recorder.events[mark:]
                 if e.get("Uniqueid") == uid and e.get("Event") == "Newchannel"]
    assert chans and chans[0].startswith(f"PJSIP/{ENDPOINT}-")


def test_a_wrong_password_is_refused(with_phone, tmp_path):
    mark = with_phone.recorder.mark()
    report = with_phone.place(_softphone("not-the-password", (Listen(), Hangup())), "100",
                              tmp_path / "call", timeout_s=60)
    assert not report.ok
    assert _registration(report)["event"] == "not_registered"
    assert _registration(report)["status"] in (401, 403)
    assert report.sip_status in (401, 403), report.explain()
    assert not report.named("heard")
    assert with_phone.recorder.last_inbound_uniqueid(mark) is None


def test_without_the_setting_there_is_no_test_phone(without_phone, tmp_path):
    stack = without_phone
    assert not stack.settings.test_phone
    assert ENDPOINT not in stack.pbx.cli("pjsip show endpoints")
    assert not (stack.pbx.host_dir / TEST_PHONE_SECRET).exists()
    mark = stack.recorder.mark()
    report = stack.place(_softphone("any-password-1", (Listen(), Hangup())), "100",
                         tmp_path / "call", timeout_s=60)
    # Nothing registers (no registrar at all), and the call is challenged and refused.
    assert _registration(report)["event"] == "not_registered"
    assert _registration(report)["status"] >= 400
    assert not report.ok and report.sip_status in (401, 403), report.explain()
    assert stack.recorder.last_inbound_uniqueid(mark) is None
