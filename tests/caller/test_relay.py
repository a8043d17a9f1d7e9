"""The phone bank's relay, its pure parts: reading a datagram, sharing calls out."""

from __future__ import annotations

from ivr.caller.relay import Calls, call_id, method

INVITE = (b"INVITE sip:16175550411@127.0.0.1:15004 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 127.0.0.1:15000;rport;branch=z9hG4bK1\r\n"
          b"Call-ID: abc-123@x\r\nCSeq: 1 INVITE\r\nContent-Length: 4\r\n\r\n"
          b"Call-ID: not-this-one\r\n")


def test_the_call_id_comes_from_the_headers_only():
    assert call_id(INVITE) == b"abc-123@x"
    assert call_id(b"BYE sip:x SIP/2.0\r\ni:  compact-1\r\n\r\n") == b"compact-1"
    assert call_id(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n") is None


def test_requests_have_a_method_responses_none():
    assert method(INVITE) == b"INVITE"
    assert method(b"SIP/2.0 486 Busy Here\r\nCall-ID: a\r\n\r\n") is None


def test_a_new_call_goes_to_the_least_busy_agent_and_stays_there():
    calls = Calls(3)
    assert [calls.take(cid, invite=True) for cid in (b"a", b"b", b"c")] == [0, 1, 2]
    assert calls.take(b"a", invite=False) == 0  # its CANCEL, ACK or BYE: same agent
    calls.ended[1] += 1  # b is over
    assert calls.take(b"d", invite=True) == 1
    assert calls.take(b"options", invite=False) == 0  # not a call: counted nowhere
    assert calls.taken == [1, 2, 1]
