"""Packets on the loopback interface, for proving what crossed a media link in clear.

A raw AF_PACKET socket on `lo` (root only) sees every UDP datagram between the processes
of a test; the capture keeps the RTP and RTCP ones. A socket of the standard library
rather than tcpdump: nothing to install, no pcap file to parse, and the test reads the
packets while it runs. Loopback shows each datagram twice (sent and received): only
the received copy is kept.

`plain_audio_crossed` is the check itself (see its docstring for what it proves).
"""

from __future__ import annotations

import math
import os
import select
import socket
import struct
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4  # sll_pkttype of the sender's copy
G711 = {0, 8}  # PCMU, PCMA
#: AES_CM_128_HMAC_SHA1_80, the suite Asterisk offers first over SDES: 80-bit tag.
SRTP_TAG = 10
#: SRTCP adds the E flag + 31-bit index before the tag.
SRTCP_TRAILER = 4 + SRTP_TAG


def can_capture() -> bool:
    return hasattr(socket, "AF_PACKET") and os.geteuid() == 0


@dataclass(frozen=True)
class Datagram:
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes

    def ports(self) -> tuple[int, int]:
        return self.src[1], self.dst[1]

    def ends(self) -> set[tuple[str, int]]:
        return {self.src, self.dst}

    @property
    def is_rtcp(self) -> bool:
        return len(self.data) >= 8 and self.data[0] >> 6 == 2 and 200 <= self.data[1] <= 207

    @property
    def is_rtp(self) -> bool:
        return len(self.data) >= 12 and self.data[0] >> 6 == 2 and not self.is_rtcp

    @property
    def payload_type(self) -> int:
        return self.data[1] & 0x7F

    def rtp_payload(self) -> bytes:
        """What follows the RTP header (CSRCs and extension skipped); SRTP's tag too."""
        b = self.data
        at = 12 + 4 * (b[0] & 0x0F)
        if b[0] & 0x10 and len(b) >= at + 4:  # header extension
            at += 4 + 4 * struct.unpack("!H", b[at + 2:at + 4])[0]
        return b[at:]


class LoopbackCapture:
    """Captures the UDP datagrams on `lo` that touch `ports` of `hosts`, from start() to
    stop(). The host matters: other tests' processes on other loopback addresses (a
    cluster's nodes, Kamailio) may use the same port numbers at the same time."""

    def __init__(self, ports: Iterable[int], hosts: Iterable[str]) -> None:
        self.ports = frozenset(ports)
        self.hosts = frozenset(hosts)
        self.packets: list[Datagram] = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sock.bind(("lo", 0))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LoopbackCapture:
        self._thread.start()
        return self

    def stop(self) -> list[Datagram]:
        self._stop.set()
        self._thread.join(10)
        self._sock.close()
        return self.packets

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.2)
            if not ready:
                continue
            frame, address = self._sock.recvfrom(65535)
            if address[2] == PACKET_OUTGOING:
                continue
            packet = _udp(frame)
            if packet is not None and any(
                    host in self.hosts and port in self.ports
                    for host, port in (packet.src, packet.dst)):
                self.packets.append(packet)


def _udp(frame: bytes) -> Datagram | None:
    ip = frame[14:]  # loopback frames carry an Ethernet header of zeros
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
        return None
    header = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    udp = ip[header:total]
    if len(udp) < 8:
        return None
    sport, dport = struct.unpack("!HH", udp[:4])
    return Datagram((socket.inet_ntoa(ip[12:16]), sport), (socket.inet_ntoa(ip[16:20]), dport),
                    udp[8:])


def entropy(chunks: Iterable[bytes]) -> float:
    """Shannon entropy of the bytes of `chunks`, in bits per byte (8: random)."""
    counts: Counter[int] = Counter()
    for chunk in chunks:
        counts.update(chunk)
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values()) if total else 0.0


WINDOW = 16


def voiced(frame: bytes) -> bool:
    """A G.711 frame with sound in it: silence and hum repeat a handful of codes."""
    return len(set(frame)) >= 24


def plain_audio_crossed(secured: list[Datagram], plain: list[Datagram]) -> int:
    """How many voiced G.711 frames of the plain legs appear, in clear, in `secured`.

    The carrier relays G.711 unchanged between its plain legs (caller, phone) and the
    service's encrypted ones, so every sound frame it sends or receives in clear also
    crossed the service's link: had that link carried plain RTP, the same bytes would be
    found in it. Each frame's 16-byte pieces are looked for at every offset of every
    secured packet (so re-framing cannot hide a match); 0: none crossed in clear."""
    frames = [p.rtp_payload() for p in plain if p.is_rtp and p.payload_type in G711]
    frames = [f for f in frames if voiced(f)]
    owner = {f[i:i + WINDOW]: n for n, f in enumerate(frames)
             for i in range(0, len(f) - WINDOW + 1, WINDOW)}
    found = {owner[d[i:i + WINDOW]] for d in (p.data for p in secured)
             for i in range(len(d) - WINDOW + 1) if d[i:i + WINDOW] in owner}
    return len(found)


def by_far_port(packets: list[Datagram], near: range) -> list[list[Datagram]]:
    """RTP packets grouped by the port of their other end (not in `near`): the legs of
    a relay whose ports are `near`, the busiest first."""
    legs: dict[int, list[Datagram]] = defaultdict(list)
    for p in packets:
        if p.is_rtp:
            legs[p.dst[1] if p.src[1] in near else p.src[1]].append(p)
    return sorted(legs.values(), key=len, reverse=True)
