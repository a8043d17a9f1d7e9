"""One caller of the swarm (tests/perf/swarm.py): its SIP dialog, its RTP socket, its
CallPlan steps, moved on by the swarm's 20 ms ticker."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr.caller.hearing import Hearing
from ivr.caller.plan import CallPlan, Hangup, Press, Say, Step
from ivr.caller.steps import begin, end_verdict, follow, step_name, waiting
from tests.perf import swarm_sip as wire

if TYPE_CHECKING:
    from tests.perf.swarm import Swarm

TICK_S = 0.020
LOCAL = "127.0.0.1"
RETRANSMIT_S, GIVE_UP_S = 0.5, 32.0  # RFC 3261's T1 and 64*T1
NO_MEDIA_S = 0.2  # no packet for this long: the caller hears quiet (pjsua's bridge does)
SOCKET_BUFFER = 1 << 20


class Call:
    """One caller: its dialog, its RTP socket, its steps."""

    def __init__(self, swarm: Swarm, label: str, plan: CallPlan) -> None:
        self.swarm, self.label, self.plan = swarm, label, plan
        self.steps: list[Step] = list(plan.steps)
        self.call_id = f"{label}-{random.getrandbits(64):016x}@{LOCAL}"
        # Letters, digits and spaces only: the dialplan refuses other names (ivr-strict).
        self.name = " ".join(x for x in (plan.caller_name, swarm.tag + label) if x) \
            if swarm.tag else plan.caller_name
        self.from_tag = f"{random.getrandbits(32):08x}"
        self.to_tag: str | None = None
        self.cseq = 1
        self.branch = _branch()
        self.events: list[dict[str, Any]] = []
        self.hearing = Hearing(8000)
        self.up = self.ended = False
        self.ok: bool | None = None
        self.error: str | None = None
        self.ended_by: str | None = None
        self.index, self.step_at, self.say_s = 0, 0.0, 0.0
        self.sent: bytes | None = None  # the request being retransmitted (INVITE/BYE)
        self.resend_at, self.resend_s, self.sent_at = 0.0, RETRANSMIT_S, 0.0
        self.answered = False  # any response to the INVITE: stop resending it
        self.ack: bytes | None = None
        self.remote_uri = ""
        self.route: list[str] = []
        self.media: wire.Media | None = None
        self.rtp: asyncio.DatagramTransport | None = None
        self.rtp_port = 0
        self.seq, self.ts = random.getrandbits(16), random.getrandbits(32)
        self.ssrc = random.getrandbits(32)
        self.keys: deque[tuple[str, int, bool] | None] = deque()
        self.event_ts = 0
        self.speech, self.speech_at = b"", 0
        self.last_rx = 0.0
        self.gap_at = 0.0  # the last tick with no packet for over NO_MEDIA_S
        self.placed_at = 0.0

    # --- the dialog ---------------------------------------------------------------------
    def log(self, event: str, **detail: Any) -> None:
        self.events.append({"t": round(time.time(), 3), "call": self.label,
                            "event": event, "step": self.index + 1, **detail})

    def headers(self, method: str, cseq: int, branch: str) -> list[tuple[str, str]]:
        sip = self.swarm.sip_port
        to = f"<sip:{self.swarm.number}@{self.swarm.target}>"
        name = "".join(c for c in self.name if c not in '"\\')
        return [("Via", f"SIP/2.0/UDP {LOCAL}:{sip};branch={branch};rport"),
                ("Max-Forwards", "70"),
                ("From", f'"{name}" <sip:{self.plan.caller_id}@{LOCAL}>;tag={self.from_tag}'),
                ("To", to + (f";tag={self.to_tag}" if self.to_tag else "")),
                ("Call-ID", self.call_id), ("CSeq", f"{cseq} {method}"),
                ("Contact", f"<sip:swarm@{LOCAL}:{sip}>"),
                *(("Route", r) for r in self.route)]

    async def place(self) -> None:
        loop = asyncio.get_running_loop()
        self.rtp, _ = await loop.create_datagram_endpoint(
            lambda: _Rtp(self), local_addr=(LOCAL, 0))
        grow_buffer(self.rtp)
        self.rtp_port = self.rtp.get_extra_info("sockname")[1]
        uri = f"sip:{self.swarm.number}@{self.swarm.target}"
        headers = self.headers("INVITE", self.cseq, self.branch)
        headers += [(k, v) for k, v in self.plan.headers]
        body = wire.offer(LOCAL, self.rtp_port, random.getrandbits(31))
        self.placed_at = time.monotonic()
        self.log("dialling", uri=uri)
        self.send_request(wire.build(f"INVITE {uri} SIP/2.0",
                                     [*headers, ("Content-Type", "application/sdp")], body))

    def send_request(self, data: bytes) -> None:
        self.sent, self.sent_at = data, time.monotonic()
        self.resend_s, self.resend_at = RETRANSMIT_S, self.sent_at + RETRANSMIT_S
        self.swarm.send_sip(data)

    def on_response(self, msg: wire.SipMessage) -> None:
        assert msg.status is not None
        number, method = msg.cseq
        if method == "INVITE" and number == 1:
            self.answered = True
            if self.sent is not None and self.sent.startswith(b"INVITE"):
                self.sent = None
            if msg.status >= 200:
                self._invite_final(msg)
        elif method == "BYE" and msg.status >= 200:
            self.sent = None
            self._ended(None)
        elif method == "CANCEL" and msg.status >= 200 and self.sent is not None \
                and self.sent.startswith(b"CANCEL"):
            self.sent = None

    def _invite_final(self, msg: wire.SipMessage) -> None:
        assert msg.status is not None
        self.to_tag = wire.tag(msg.get("to") or "") or self.to_tag
        if msg.status >= 300:  # the ACK of a refusal belongs to the INVITE's transaction
            headers = self.headers("ACK", 1, self.branch)
            headers[3] = ("To", msg.get("to") or "")
            self.swarm.send_sip(wire.build(
                f"ACK sip:{self.swarm.number}@{self.swarm.target} SIP/2.0", headers))
            if not self.ended:
                self._ended(msg.status)
            return
        if self.ack is not None:  # a 200 resent: our ACK was lost
            self.swarm.send_sip(self.ack)
            return
        contact = msg.get("contact")
        self.remote_uri = wire.uri_of(contact) if contact else \
            f"sip:{self.swarm.number}@{self.swarm.target}"
        self.route = list(reversed(msg.all("record-route")))
        self.ack = wire.build(f"ACK {self.remote_uri} SIP/2.0",
                              self.headers("ACK", 1, _branch()))
        self.swarm.send_sip(self.ack)
        if self.ended or self.ok is not None:  # answered after we gave up: end it now
            self.up, self.ended = True, False
            self.hang_up()
            return
        self.media = wire.answer_media(msg.body)
        if self.media is None:
            self._fail("the 200 OK offered no usable audio (PCMU)")
            return
        self.up = True
        self.log("answered")
        self._start_step()

    def on_request(self, msg: wire.SipMessage) -> None:
        assert msg.method is not None
        tag = self.from_tag
        if msg.method == "BYE":
            self.swarm.send_sip(wire.response(msg, 200, "OK", tag))
            if not self.ended:
                self.ended_by = self.ended_by or "far"
                self._ended(None)
        elif msg.method in ("INVITE", "UPDATE"):  # a refresh or hold: same media, same offer
            media = wire.answer_media(msg.body) if msg.body else None
            if media is not None:
                self.media = media
            sdp = wire.offer(LOCAL, self.rtp_port, 1) if msg.body or msg.method == "INVITE" \
                else b""
            self.swarm.send_sip(wire.response(
                msg, 200, "OK", tag, [("Contact", f"<sip:swarm@{LOCAL}:{self.swarm.sip_port}>")],
                sdp))
        elif msg.method != "ACK":
            self.swarm.send_sip(wire.response(msg, 200, "OK", tag))

    def hang_up(self) -> None:
        """BYE if up; CANCEL while ringing (a refusal or its 487 ends it then)."""
        if self.ended or (self.sent is not None and self.sent[:3] in (b"BYE", b"CAN")):
            return
        self.ended_by = self.ended_by or "us"
        if self.up:
            self.cseq += 1
            self.send_request(wire.build(f"BYE {self.remote_uri} SIP/2.0",
                                         self.headers("BYE", self.cseq, _branch())))
        elif self.answered:
            headers = self.headers("CANCEL", 1, self.branch)
            self.send_request(wire.build(
                f"CANCEL sip:{self.swarm.number}@{self.swarm.target} SIP/2.0", headers))
        else:  # nothing heard back yet: stop resending the INVITE and let it go
            self.sent = None
            self._ended(None)

    def _ended(self, status: int | None) -> None:
        self.ended = True
        self.keys.clear()
        if self.rtp is not None:
            self.rtp.close()
        self.log("ended", by=self.ended_by or "far", status=status)
        if self.ok is None:
            self.ok, self.error = end_verdict(self.steps, self.index, self.up, status,
                                              self.ended_by or "far")

    # --- media --------------------------------------------------------------------------
    def on_rtp(self, packet: bytes) -> None:
        """Keep the frames for the tick's classification (one numpy pass for all calls)."""
        if self.ended:
            return
        if len(packet) == 12 + wire.SAMPLES and packet[0] == 0x80 and packet[1] & 0x7F == 0:
            payload = packet[12:]  # Asterisk's usual packet: no CSRC, extension, padding
        else:
            found = wire.rtp_payload(packet)
            if found is None or found[0] != wire.PCMU:
                return
            payload = found[1][:len(found[1]) // wire.SAMPLES * wire.SAMPLES]
        self.last_rx = time.monotonic()
        if payload:
            self.swarm.heard.append((self, payload))

    def send_media(self, now: float) -> None:
        """This tick's packet: a key event, the speech's next frame, or silence."""
        assert self.rtp is not None and self.media is not None
        item = self.keys.popleft() if self.keys else None
        if item is not None and self.media.event_pt is not None:
            key, duration, end = item
            first = duration == wire.SAMPLES and not end
            if first:
                self.event_ts = self.ts
            packet = wire.rtp_packet(self.media.event_pt, self.seq, self.event_ts, self.ssrc,
                                     wire.dtmf_payload(key, duration, end), marker=first)
        elif self.speech_at < len(self.speech):
            frame = self.speech[self.speech_at:self.speech_at + wire.SAMPLES]
            self.speech_at += wire.SAMPLES
            packet = wire.rtp_packet(wire.PCMU, self.seq, self.ts, self.ssrc,
                                     frame.ljust(wire.SAMPLES, b"\xff"))
        else:
            packet = wire.rtp_packet(wire.PCMU, self.seq, self.ts, self.ssrc, wire.SILENCE)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + wire.SAMPLES) & 0xFFFFFFFF
        self.rtp.sendto(packet, (self.media.ip, self.media.port))
        if now - self.last_rx > NO_MEDIA_S:
            self.gap_at = now
            self.hearing.heard_frame(0.0, 0)
        self.hearing.line_steady((now - self.gap_at) * 1000)

    # --- steps (as ivr.caller.agent.Runner's) -----------------------------------------
    def _step_name(self) -> str:
        return step_name(self.steps, self.index)

    def _start_step(self) -> None:
        self.step_at = time.monotonic()
        step = begin(self.steps, self.index, self.hearing)
        if isinstance(step, Press):
            assert self.media is not None
            if self.media.event_pt is None:
                self._fail("the far end takes no telephone-event: cannot press keys")
                return
            self.keys.extend(wire.key_schedule(step.keys))
            self.hearing.mark()
            self.log("pressed", keys=step.keys)
        elif isinstance(step, Say):
            self.speech, self.speech_at = self.swarm.speech(step.wav), 0
            self.say_s = len(self.speech) / 8000
            self.hearing.mark()
            self.log("saying", wav=Path(step.wav).name)
        elif isinstance(step, Hangup):
            self.log("hanging_up")
            self.hang_up()

    def _next(self) -> None:
        self.index += 1
        self._start_step()

    def tick(self, now: float) -> None:
        """Resend what is unanswered; move the current step on."""
        if self.sent is not None and now >= self.resend_at:
            if now - self.sent_at > GIVE_UP_S:
                self.sent = None
                if not self.ended:
                    self.ok = self.ok if self.ok is not None else False
                    self.error = self.error or "no answer to our SIP request"
                    self._ended(None)
            else:
                self.swarm.send_sip(self.sent)
                self.resend_s = min(self.resend_s * 2, 4.0)
                self.resend_at = now + self.resend_s
        if self.ended:
            return
        if not self.up:
            if now - self.placed_at > self.plan.answer_timeout_s and self.ok is None:
                self._fail(f"not answered within {self.plan.answer_timeout_s:.0f} s")
            return
        if self.media is None or self.rtp is None or self.rtp.is_closing():
            return  # ending (a 200 that came after we gave up): no media, no steps
        self.send_media(now)
        step, elapsed = self.steps[self.index], now - self.step_at
        if isinstance(step, Press):
            if not self.keys:
                self._next()
        elif isinstance(step, Say):
            if elapsed >= self.say_s + 0.1:
                self.speech = b""
                self.hearing.mark()
                self._next()
        else:
            follow(waiting(step, self._step_name, elapsed, self.hearing), self._fail,
                   self.log, self._next)

    def _fail(self, error: str) -> None:
        self.ok, self.error = False, error
        self.log("failed", error=error)
        self.hang_up()

    def report(self) -> dict[str, Any]:
        return {"ok": bool(self.ok), "error": self.error if self.ok is not None
                else "no end in time", "name": self.name, "events": self.events}


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self, call: Call) -> None:
        self.call = call

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.call.on_rtp(data)

    def error_received(self, exc: Exception) -> None:  # ICMP after the far end closed
        pass


def _branch() -> str:
    return f"z9hG4bK{random.getrandbits(64):016x}"


def grow_buffer(transport: asyncio.DatagramTransport) -> None:
    """A bigger receive buffer: a loaded loop reads late, packets must wait, not drop."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        except OSError:
            pass  # the kernel's cap (net.core.rmem_max) stands
