"""The SIP edge's "done when" as one call: a caller on the public network dials the
practice at the carrier (tests/support/carrier.py), which forwards the call to the
service over TLS + SRTP (digest-authenticated registration); the caller goes through the
intake and picks urgent; the service dials the on-call clinician's E.164 number out of
the clinician trunk, back through the carrier (TLS + SRTP, digest), with the practice's
caller ID; the clinician's phone behind the carrier hears the screening, accepts, and
both are bridged.

While the call goes on, the loopback interface is captured (media_capture, root only):
the packets of the service's media ports are checked for plain audio.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from harness import wait_for
from media_capture import (
    G711,
    SRTCP_TRAILER,
    SRTP_TAG,
    LoopbackCapture,
    by_far_port,
    can_capture,
    entropy,
    plain_audio_crossed,
)
from oncall_helpers import BRIDGE_WAIT, call_of, gateway_channels, practice_yaml, use_rules
from support import carrier as c
from support.reacting import (
    bridged,
    cue_when,
    greets,
    hears_the_clinician,
    start_phones,
    urgent,
)

from ivr.caller.plan import BUSY, CallPlan, PhoneBook

pytestmark = pytest.mark.pbx

DID = "+16175550470"  # the test practice's number: its caller ID to clinicians
CALLER = "+16175550471"
CLINICIAN = "+16175550472"


class Chain:
    """The one call, run once for the module; the tests check its parts."""

    def __init__(self, stack, workdir: Path) -> None:
        self.stack = stack
        wait_for(lambda: c.registered(stack), 60, "the registration to the carrier")
        self.mark, self.cmark = stack.recorder.mark(), stack.carrier_events.mark()
        cue = workdir / "cue-bridged"
        self.phones = start_phones(stack, PhoneBook({CLINICIAN[1:]: greets(stack, cue)}, BUSY),
                                   workdir / "phones")
        s = stack.settings
        carrier = stack.carrier.settings
        self.service_ports = range(s.rtp_start, s.rtp_end + 1)
        self.carrier_ports = range(carrier.rtp_start, carrier.rtp_end + 1)
        capture = (LoopbackCapture([*self.service_ports, *self.carrier_ports],
                                   [s.sip_host, carrier.sip_host])
                   if can_capture() else None)
        try:
            if capture:
                capture.start()
            cue_when(cue, lambda: bridged(stack, CALLER, self.mark), "the caller bridged")
            plan = CallPlan(caller_id=CALLER, steps=urgent(stack) + hears_the_clinician(cue))
            self.report = c.place_in(stack, plan, DID, workdir / "caller", timeout_s=300)
            self.ringing = [e for e in self.phones.events(CLINICIAN[1:])
                            if e["event"] == "ringing"]
        finally:
            self.packets = capture.stop() if capture else None
            self.phones.stop()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    with c.edge_stack("chain") as stack:
        rules = tmp_path_factory.mktemp("chain-rules")
        (rules / "chain.yaml").write_text(
            practice_yaml("chain", DID, [("k1", CLINICIAN, 40)], max_wait=BRIDGE_WAIT))
        use_rules(stack, rules, {c.PASSWORD_ENV: c.Carrier.password})
        yield Chain(stack, tmp_path_factory.mktemp("chain-call"))


def test_a_caller_through_the_carrier_is_bridged_to_the_clinician_behind_it(chain):
    assert chain.report.ok, chain.report.explain()
    assert chain.report.named("cued")  # it heard the clinician once bridged
    stack = chain.stack
    call = wait_for(lambda: (r := call_of(stack, DID)) is not None and r["reconciled_at"]
                    and all(leg["ended_at"] for leg in r["oncall_legs"]) and r, 90,
                    "the call's record")
    # The call came in through the carrier's registration, forwarded from the practice.
    assert call["forwarded_from"] == c.FORWARDED and call["dialled"] == DID
    # The record shows the bridge to the clinician who took it.
    legs = call["oncall_legs"]
    assert [(leg["clinician_id"], leg["status"]) for leg in legs] == [("k1", "accepted")]
    assert legs[0]["number"] == CLINICIAN and legs[0]["bridged_at"]
    assert call["oncall_outcome"] == "connected" and call["result"] == "bridge"
    assert "IvrBridge" in stack.recorder.path(call["uniqueid"])
    # The clinician was dialled by number on the clinician trunk's endpoint ...
    out = [e for e in gateway_channels(stack, chain.mark)
           if e["Uniqueid"] == f"ivrleg-{legs[0]['id']}"]
    assert len(out) == 1, out
    # ... which reached the carrier as the account: both legs there TLS + SRTP, the
    # caller's (the carrier's call to the service) and the clinician's (the service's
    # call to the carrier), as the carrier's own channels report them.
    carrier_legs = c.carrier_legs(stack, chain.cmark)
    seen = {(e["Direction"], e["CallerID"]) for e in carrier_legs}
    assert seen == {("to-service", CALLER), ("from-service", DID)}, carrier_legs
    for leg in carrier_legs:
        assert leg["Endpoint"] == c.ACCOUNT
        assert leg["Secure"] == "1" and leg["Tls"] == "1", leg
    # The clinician's phone showed the practice's number.
    assert len(chain.ringing) == 1, chain.ringing
    assert f"sip:{DID}@" in chain.ringing[0]["remote"], chain.ringing


@pytest.mark.skipif(not can_capture(), reason="capturing loopback packets needs root")
def test_no_plain_audio_crossed_the_service_media_ports(chain):
    """What this proves, for the whole call above (intake prompts, the caller's speech,
    the screening, both voices in the bridge):
    - every datagram to or from the service's RTP ports was RTP or RTCP, sized for SRTP:
      a 20 ms G.711 frame carries 160 + 10 bytes (the 80-bit authentication tag), never
      the 160 of a plain one (the shorter ones are prompts' last frames); a DTMF event 4
      + 10; RTCP has the SRTCP index with its E flag set (encrypted);
    - their payloads are random to the byte (entropy near 8 bits per byte; the plain
      G.711 of the same call, on the carrier's legs to the caller and the phone,
      measures far lower, so the measure does tell plain audio);
    - no voiced frame the carrier relayed in clear to or from the caller or the phone is
      found anywhere in them. The carrier and the service's bridge pass G.711 unchanged
      (shown here: the clinician's and the caller's voices are found, byte for byte, on
      the other one's plain leg), so plain RTP on the service's link would have carried
      those very bytes.
    Not proven here: that the SDES keys were secret (they travel in the SDP, inside the
    TLS that test_carrier_edge shows with certificate checks)."""
    assert chain.report.ok, chain.report.explain()
    packets = chain.packets
    assert packets is not None
    # The service's media ends are its address's ports (another test's process may use
    # the same port numbers on another loopback address).
    service = {(chain.stack.settings.sip_host, port) for port in chain.service_ports}
    secured = [p for p in packets if service & p.ends()]
    plain = [p for p in packets if not service & p.ends()]
    # Enough media to judge (a 50 packets/s stream each way for most of the call).
    assert len(secured) > 1000 and len(plain) > 1000, (len(secured), len(plain))
    assert not [p for p in secured if not (p.is_rtp or p.is_rtcp)]
    audio = [p for p in secured if p.is_rtp and p.payload_type in G711]
    sizes = Counter(len(p.rtp_payload()) for p in audio)
    assert 160 not in sizes and sizes[160 + SRTP_TAG] > 0.9 * len(audio), sizes
    assert all(len(p.rtp_payload()) == 4 + SRTP_TAG for p in secured
               if p.is_rtp and p.payload_type not in G711)
    assert all(len(p.data) >= 8 + SRTCP_TRAILER and p.data[-SRTCP_TRAILER] & 0x80
               for p in secured if p.is_rtcp)
    ciphered = entropy(p.rtp_payload() for p in audio)
    clear = entropy(p.rtp_payload() for p in plain if p.is_rtp and p.payload_type in G711)
    assert ciphered > 7.9 and clear < 7.0, (ciphered, clear)
    caller_leg, phone_leg = by_far_port(plain, chain.carrier_ports)[:2]
    assert plain_audio_crossed(caller_leg, phone_leg) > 0  # the check sees relayed audio
    assert plain_audio_crossed(secured, plain) == 0
