"""A trunk with `media_encryption: dtls`, against a carrier that takes DTLS-SRTP only
(tests/support/carrier.py with media="dtls": no SDES, nothing optimistic). A call in and
a clinician call out each come up with SRTP on the carrier's side: with SDES refused
there, the keys can only have come from the DTLS handshake on the media path, which the
call in also shows on the wire (root: a loopback capture)."""

from __future__ import annotations

import pytest
from harness import EXAMPLE_DID, wait_for
from media_capture import G711, LoopbackCapture, can_capture
from support import carrier as c
from support.reacting import start_phones

from ivr.caller.plan import BUSY, AwaitEnd, CallPlan, Hangup, Listen, Phone, PhoneBook

pytestmark = pytest.mark.pbx

CLINICIAN = "16175550321"


@pytest.fixture(scope="module")
def dtls_edge():
    with c.edge_stack("dtls", media="dtls") as stack:
        wait_for(lambda: c.registered(stack), 60, "the registration to the carrier")
        yield stack


def test_the_trunk_and_the_carrier_both_want_dtls(dtls_edge):
    ours = dtls_edge.pbx.cli("pjsip show endpoint carrier")
    theirs = dtls_edge.carrier.cli(f"pjsip show endpoint {c.ACCOUNT}")
    for shown in (ours, theirs):
        words = shown.split()
        assert words[words.index("media_encryption") + 2] == "dtls", shown[-2000:]


def test_a_call_in_is_dtls_srtp(dtls_edge, tmp_path):
    cmark = dtls_edge.carrier_events.mark()
    s = dtls_edge.settings
    service = range(s.rtp_start, s.rtp_end + 1)
    capture = LoopbackCapture(service, [s.sip_host]).start() if can_capture() else None
    try:
        # Until the greeting is heard: media flowed, so the handshake was done.
        plan = CallPlan(caller_id="+16175550197",
                        steps=(Listen(quiet_ms=0, min_voice_ms=1000), Hangup()))
        report = c.place_in(dtls_edge, plan, EXAMPLE_DID, tmp_path / "in")
    finally:
        packets = capture.stop() if capture else None
    assert report.ok, report.explain()
    [leg] = wait_for(lambda: c.carrier_legs(dtls_edge, cmark), 30, "the carrier's leg")
    assert leg["Direction"] == "to-service" and leg["Secure"] == "1" and leg["Tls"] == "1"
    if packets is not None:
        # The DTLS handshake on the media ports (RFC 7983: first byte 20-63 is DTLS;
        # 22: a handshake record), both ways, then SRTP-sized audio.
        handshakes = {p.ports() for p in packets if p.data[:1] == b"\x16"}
        assert len(handshakes) >= 2, handshakes
        audio = [p for p in packets if p.is_rtp and p.payload_type in G711]
        assert audio and 160 not in {len(p.rtp_payload()) for p in audio}  # tagged


def test_a_clinician_call_out_is_dtls_srtp(dtls_edge, tmp_path):
    cmark = dtls_edge.carrier_events.mark()
    phones = start_phones(dtls_edge, PhoneBook({CLINICIAN: Phone(steps=(AwaitEnd(60),))},
                                               BUSY), tmp_path / "phones")
    try:
        c.originate(dtls_edge, f"PJSIP/{CLINICIAN}@clinician-gateway")
        [leg] = wait_for(lambda: c.carrier_legs(dtls_edge, cmark), 30, "the carrier's leg")
        assert leg["Direction"] == "from-service" and leg["Endpoint"] == c.ACCOUNT
        assert leg["Secure"] == "1" and leg["Tls"] == "1", leg
        wait_for(lambda: any(e["event"] == "answered" for e in phones.events(CLINICIAN)),
                 60, "the phone behind the carrier to answer")
    finally:
        phones.stop()
