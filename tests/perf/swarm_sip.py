"""The swarm caller's wire formats, pure functions of bytes: SIP messages, SDP, RTP
packets, RFC 4733 key events, G.711 µ-law (tests/perf/swarm.py puts them on sockets).

Only what one caller dialling Asterisk over UDP on 127.0.0.1 needs; anything else is
refused (parse returns None) rather than guessed at, and never raises.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np

from ivr.caller.hearing import VOICE_RMS

SAMPLES = 160  # one 20 ms frame at 8 kHz: one PCMU packet
PCMU = 0
#: RFC 3261 compact header names, so a message that uses them reads the same.
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
           "l": "content-length", "c": "content-type", "k": "supported", "s": "subject",
           "e": "content-encoding"}
REQUIRED = ("via", "from", "to", "call-id", "cseq")
_TOKEN = re.compile(r"^[A-Z]{2,16}$")
_TAG = re.compile(r";\s*tag=([^;,\s]+)", re.IGNORECASE)
DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
#: One key (pjmedia's rhythm, ivr/caller/agent.py KEY_MS): 8 event packets (160 ms), the
#: end packet three times (RFC 4733 2.5.1.4: the end is repeated against loss), a gap.
KEY_FRAMES, KEY_ENDS, KEY_GAP = 8, 3, 2
DTMF_VOLUME = 10  # -10 dBm0


# --- SIP ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SipMessage:
    """A request (method, uri) or a response (status, reason); header names lower-case,
    compact forms spelt out, in the order received."""

    method: str | None
    uri: str | None
    status: int | None
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def get(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]

    @property
    def call_id(self) -> str:
        return self.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, method = (self.get("cseq") or "").split()
        return int(number), method


def parse(data: bytes) -> SipMessage | None:
    """The message in one datagram, or None if it is not one we can trust."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = data.partition(sep)
        if found:
            break
    else:
        return None
    lines = head.decode("utf-8", "replace").splitlines()
    if not lines:
        return None
    first = lines[0].strip()
    method = uri = None
    status, reason = None, ""
    if first.startswith("SIP/2.0 "):
        parts = first.split(" ", 2)
        if len(parts) < 2 or not (parts[1].isdigit() and len(parts[1]) == 3):
            return None
        status, reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
        if not 100 <= status <= 699:
            return None
    else:
        parts = first.split(" ")
        if len(parts) != 3 or parts[2] != "SIP/2.0" or not _TOKEN.match(parts[0]):
            return None
        method, uri = parts[0], parts[1]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # a folded line continues the last header
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name or " " in name:
            return None
        headers.append((COMPACT.get(name, name), value.strip()))
    message = SipMessage(method, uri, status, reason, tuple(headers), body)
    if any(message.get(h) is None for h in REQUIRED):
        return None
    try:
        number, cseq_method = message.cseq
    except ValueError:
        return None
    if not _TOKEN.match(cseq_method) or number < 0:
        return None
    length = message.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > len(body):
            return None  # not a number, or the datagram was cut short
        body = body[:int(length)]
    return SipMessage(method, uri, status, reason, tuple(headers), body)


def tag(value: str) -> str | None:
    """The tag parameter of a From/To value (after the URI's closing >, if any)."""
    params = value.rsplit(">", 1)[1] if "<" in value else value
    found = _TAG.search(params)
    return found.group(1) if found else None


def uri_of(value: str) -> str:
    """The URI of a Contact/From/To value: inside <...>, else up to its parameters."""
    if "<" in value and ">" in value.split("<", 1)[1]:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def build(start: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """A message: start line, headers, Content-Length, the body."""
    lines = [start, *(f"{n}: {v}" for n, v in headers), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def response(request: SipMessage, status: int, reason: str, to_tag: str,
             extra: list[tuple[str, str]] | None = None, body: bytes = b"") -> bytes:
    """An answer to `request`: its Vias, From, Call-ID and CSeq; its To with our tag."""
    to = request.get("to") or ""
    if tag(to) is None:
        to += f";tag={to_tag}"
    headers = [("Via", v) for v in request.all("via")]
    headers += [("From", request.get("from") or ""), ("To", to),
                ("Call-ID", request.call_id), ("CSeq", request.get("cseq") or "")]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return build(f"SIP/2.0 {status} {reason}", headers + (extra or []), body)


# --- SDP ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Media:
    """Where the far end wants our audio, and its telephone-event payload type."""

    ip: str
    port: int
    event_pt: int | None


def offer(ip: str, port: int, session: int) -> bytes:
    """PCMU and telephone-event/8000, 20 ms packets."""
    return "\r\n".join([
        "v=0", f"o=- {session} {session} IN IP4 {ip}", "s=swarm", f"c=IN IP4 {ip}", "t=0 0",
        f"m=audio {port} RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20",
        "a=sendrecv", ""]).encode()


def answer_media(body: bytes) -> Media | None:
    """The audio stream of an SDP answer; None if none usable (no PCMU, port 0, junk)."""
    ip, port, formats, event_pt = None, None, [], None
    in_audio = False
    for raw in body.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if port is not None:
                break  # only the first audio stream
            fields = line[2:].split()
            in_audio = len(fields) >= 4 and fields[0] == "audio" and fields[1].isdigit()
            if in_audio:
                port, formats = int(fields[1]), fields[3:]
        elif line.startswith("c=") and (in_audio or port is None):
            fields = line[2:].split()
            if len(fields) == 3 and fields[:2] == ["IN", "IP4"]:
                ip = fields[2]
        elif in_audio and line.lower().startswith("a=rtpmap:"):
            pt, _, codec = line[9:].partition(" ")
            if codec.lower().startswith("telephone-event/8000") and pt.isdigit():
                event_pt = int(pt)
    if ip is None or port is None or not 0 < port < 65536 or str(PCMU) not in formats:
        return None
    return Media(ip, port, event_pt if event_pt is not None and 96 <= event_pt <= 127
                 else None)


# --- RTP ---------------------------------------------------------------------------------

def rtp_packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes,
               marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def rtp_payload(packet: bytes) -> tuple[int, bytes] | None:
    """(payload type, payload) of an RTP packet; None if it is not one."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    start = 12 + 4 * (packet[0] & 0x0F)  # CSRCs
    if packet[0] & 0x10:  # a header extension: 4 bytes, then its length in words
        if len(packet) < start + 4:
            return None
        start += 4 + 4 * struct.unpack_from("!H", packet, start + 2)[0]
    end = len(packet)
    if packet[0] & 0x20:  # padding: its length is the last byte
        end -= packet[-1]
    if start > end:
        return None
    return packet[1] & 0x7F, packet[start:end]


def dtmf_payload(key: str, duration: int, end: bool) -> bytes:
    """RFC 4733 event: the event code, E bit and volume, duration in samples."""
    return struct.pack("!BBH", DTMF_CODES[key], (0x80 if end else 0) | DTMF_VOLUME,
                       duration)


def key_schedule(keys: str) -> list[tuple[str, int, bool] | None]:
    """Per 20 ms tick while pressing `keys`: (key, duration so far, end) for an event
    packet, None for a tick of silence between keys. A key's first entry starts its
    event (marker bit, the event's timestamp)."""
    out: list[tuple[str, int, bool] | None] = []
    for key in keys:
        out += [(key, SAMPLES * (i + 1), False) for i in range(KEY_FRAMES)]
        out += [(key, SAMPLES * KEY_FRAMES, True)] * KEY_ENDS
        out += [None] * KEY_GAP
    return out


# --- G.711 µ-law -------------------------------------------------------------------------

def _ulaw_decode(byte: int) -> int:
    b = ~byte & 0xFF
    magnitude = (((b & 0x0F) << 3) + 0x84 << ((b >> 4) & 7)) - 0x84
    return -magnitude if b & 0x80 else magnitude


ULAW = np.array([_ulaw_decode(b) for b in range(256)], dtype=np.int64)
SQUARES = ULAW * ULAW
NEGATIVE = ULAW < 0  # as Hearing's `a < 0`
SILENCE = bytes([0xFF]) * SAMPLES  # µ-law zero, what transmit_silence sends


def ulaw_encode(samples: np.ndarray) -> bytes:
    """16-bit linear samples to µ-law (G.711's segment encoding, vectorised)."""
    x = samples.astype(np.int32)
    sign = (x < 0).astype(np.int32) << 7
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def classify(frames: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Per 20 ms µ-law frame of `frames` (whole frames, back to back, any number): its
    RMS on the 16-bit scale and its zero crossings, as ivr.caller.hearing measures
    them; crossings 0 for a frame under VOICE_RMS (Hearing does not look at them).
    One numpy pass for all: a swarm classifies every frame its calls got in a tick."""
    codes = np.frombuffer(frames, np.uint8).reshape(-1, SAMPLES)
    rms = np.sqrt(SQUARES.take(codes).sum(axis=1) / SAMPLES)
    crossings = np.zeros(len(codes), np.int64)
    voiced = rms >= VOICE_RMS
    if voiced.any():
        signs = NEGATIVE.take(codes[voiced])
        crossings[voiced] = np.count_nonzero(signs[:, 1:] != signs[:, :-1], axis=1)
    return rms, crossings
