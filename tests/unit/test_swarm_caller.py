"""The swarm caller's wire formats (tests/perf/swarm_sip.py): odd and hostile SIP, SDP
answers, RTP parsing, the RFC 4733 key layout, µ-law and the frame classifier. No
sockets, no Asterisk: the bench (tests/perf/bench_callers.py) runs it against the PBX."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from tests.perf import swarm_sip as wire

OK = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKa\r\n"
      b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
      b"Contact: <sip:b@127.0.0.1:5060;transport=udp>\r\nContent-Length: 4\r\n\r\nv=0\n")


def test_a_plain_answer_parses() -> None:
    msg = wire.parse(OK)
    assert msg is not None and msg.status == 200 and msg.cseq == (1, "INVITE")
    assert msg.body == b"v=0\n" and wire.tag(msg.get("to") or "") == "2"
    assert wire.uri_of(msg.get("contact") or "") == "sip:b@127.0.0.1:5060;transport=udp"


def test_compact_names_bare_newlines_and_folded_lines_read_the_same() -> None:
    data = (b"SIP/2.0 180 Ringing\nv: SIP/2.0/UDP h;branch=z9hG4bKb\nf: <sip:a@x>;tag=1\n"
            b"t: <sip:b@y>\ni: c2\nCSeq: 1\n  INVITE\nl: 0\n\n")
    msg = wire.parse(data)
    assert msg is not None and msg.call_id == "c2" and msg.cseq == (1, "INVITE")
    assert wire.tag(msg.get("to") or "") is None


@pytest.mark.parametrize("data", [
    b"", b"\x00" * 40, b"garbage\r\n\r\n", b"SIP/2.0 2000 OK\r\n\r\n",
    b"SIP/2.0 099 Early\r\nCall-ID: x\r\n\r\n", b"SIP/2.0 OK\r\n\r\n",
    OK.replace(b"Content-Length: 4", b"Content-Length: 400"),  # cut short
    OK.replace(b"Content-Length: 4", b"Content-Length: -1"),
    OK.replace(b"Content-Length: 4", b"Content-Length: 4x"),
    OK.replace(b"Call-ID: c1\r\n", b""),  # a required header missing
    OK.replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"),
    OK.replace(b"CSeq: 1 INVITE", b"CSeq: 1 INVITE extra"),
    OK.replace(b"To: <sip:b@y>;tag=2\r\n", b"To <sip:b@y>\r\n"),  # no colon
    OK.split(b"\r\n\r\n")[0],  # no end of headers
    b"invite sip:x SIP/2.0\r\n\r\n", b"INVITE sip:x HTTP/1.1\r\n\r\n",
    OK.replace(b"OK", "OK \u00e9".encode() + b"\xff\xfe"),  # odd bytes in the reason: fine
])
def test_hostile_datagrams_never_raise(data: bytes) -> None:
    msg = wire.parse(data)
    if b"\xff\xfe" in data:
        assert msg is not None and msg.status == 200
    else:
        assert msg is None


def test_a_tag_inside_the_uri_is_not_the_header_tag() -> None:
    assert wire.tag("<sip:b@y;tag=fake>") is None
    assert wire.tag('"B" <sip:b@y;tag=fake>;tag=real') == "real"
    assert wire.tag("sip:b@y;tag=bare") == "bare"


def test_a_response_copies_every_via_and_adds_our_tag() -> None:
    bye = wire.parse(b"BYE sip:s@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
                     b"Via: SIP/2.0/UDP b;branch=z9hG4bK2\r\nFrom: <sip:x@y>;tag=9\r\n"
                     b"To: <sip:s@z>\r\nCall-ID: k\r\nCSeq: 7 BYE\r\n\r\n")
    assert bye is not None and bye.method == "BYE"
    out = wire.parse(wire.response(bye, 200, "OK", "mine"))
    assert out is not None and out.all("via") == bye.all("via")
    assert wire.tag(out.get("to") or "") == "mine" and out.cseq == (7, "BYE")


SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\n"
       b"m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
       b"a=rtpmap:101 telephone-event/8000\r\n")


def test_sdp_answers() -> None:
    assert wire.answer_media(SDP) == wire.Media("127.0.0.9", 30000, 101)
    media_c = SDP + b"c=IN IP4 127.0.0.7\r\n"  # a media-level address wins
    assert wire.answer_media(media_c) == wire.Media("127.0.0.7", 30000, 101)
    assert wire.answer_media(SDP.replace(b"audio 30000", b"audio 0")) is None  # refused
    assert wire.answer_media(SDP.replace(b"RTP/AVP 0 101", b"RTP/AVP 8 101")) is None
    assert wire.answer_media(SDP.replace(b"audio 30000", b"audio 99999")) is None
    no_keys = wire.answer_media(SDP.replace(b"telephone-event", b"other"))
    assert no_keys is not None and no_keys.event_pt is None
    assert wire.answer_media(b"\xff\x00 junk") is None
    offer = wire.offer("127.0.0.1", 4000, 5)
    assert b"m=audio 4000 RTP/AVP 0 101" in offer and b"telephone-event/8000" in offer


def test_rtp_payload_skips_csrcs_extensions_and_padding() -> None:
    plain = wire.rtp_packet(0, 1, 2, 3, b"abc")
    assert wire.rtp_payload(plain) == (0, b"abc")
    header = bytes([0x80 | 0x20 | 0x10 | 1, 0]) + b"\x00" * 10 + b"CSRC"
    packet = header + b"\xbe\xde\x00\x01" + b"EXT!" + b"data" + b"\x00\x00\x03"
    assert wire.rtp_payload(packet) == (0, b"data")
    assert wire.rtp_payload(b"\x80\x00") is None
    assert wire.rtp_payload(b"\x40" + b"\x00" * 20) is None  # version 1
    assert wire.rtp_payload(bytes([0xA0]) + b"\x00" * 10 + b"\xff") is None  # padding > all


def test_a_key_is_eight_events_three_ends_and_a_gap() -> None:
    schedule = wire.key_schedule("5#")
    per_key = wire.KEY_FRAMES + wire.KEY_ENDS + wire.KEY_GAP
    assert len(schedule) == 2 * per_key
    first = schedule[:per_key]
    assert first[0] == ("5", 160, False) and first[7] == ("5", 1280, False)
    assert first[8:11] == [("5", 1280, True)] * 3 and first[11:] == [None, None]
    assert schedule[per_key] == ("#", 160, False)
    event, flags, duration = struct.unpack("!BBH", wire.dtmf_payload("#", 1280, True))
    assert (event, flags & 0x80, flags & 0x3F, duration) == (11, 0x80, 10, 1280)
    packet = wire.rtp_packet(101, 65536 + 7, 2**32 + 9, 0xABCD, b"x", marker=True)
    assert packet[1] == 0x80 | 101 and struct.unpack("!HII", packet[2:12]) == (7, 9, 0xABCD)


def test_ulaw_round_trip_and_the_classifier_match_hearing() -> None:
    codes = bytes(range(256))
    decoded = wire.ULAW[np.frombuffer(codes, np.uint8)]
    again = wire.ulaw_encode(decoded)
    assert all(a == b or (a, b) == (0x7F, 0xFF) for a, b in zip(codes, again, strict=True))
    tone = (8000 * np.sin(2 * np.pi * 1000 * np.arange(160) / 8000)).astype(np.int16)
    hiss = np.full(160, 30, np.int16)
    noise = np.random.default_rng(7).integers(-9000, 9000, 160 * 20).astype(np.int16)
    frames = wire.SILENCE + wire.ulaw_encode(tone) + wire.ulaw_encode(hiss) + \
        wire.ulaw_encode(noise)
    rms, crossings = wire.classify(frames)
    assert rms[0] == 0 and crossings[0] == 0
    assert math.isclose(rms[1], 8000 / math.sqrt(2), rel_tol=0.05) and crossings[1] in (39, 40)
    assert rms[2] < wire.VOICE_RMS and crossings[2] == 0
    for i, frame in enumerate(frames[j:j + 160] for j in range(0, len(frames), 160)):
        x = [int(wire.ULAW[b]) for b in frame]  # as ivr.caller.hearing measures a frame
        expect = math.sqrt(sum(v * v for v in x) / 160)
        assert math.isclose(rms[i], expect, rel_tol=1e-9, abs_tol=1e-9)
        if expect >= wire.VOICE_RMS:
            assert crossings[i] == sum((a < 0) != (b < 0) for a, b in
                                        zip(x, x[1:], strict=False))
