"""The key captures SIPp plays for clinician phones: timing and numbering."""

from __future__ import annotations

import struct

from support.sipp import dtmf_pcap


def _packets(path):
    """(ms, payload type, sequence, event or None) of each RTP packet in a pcap."""
    data = path.read_bytes()[24:]
    out = []
    while data:
        sec, usec, size, _ = struct.unpack("<IIII", data[:16])
        frame, data = data[16:16 + size], data[16 + size:]
        rtp = frame[14 + 20 + 8:]
        pt, seq = rtp[1] & 0x7F, struct.unpack("!H", rtp[2:4])[0]
        out.append((sec * 1000 + usec // 1000 - 1000, pt, seq,
                    rtp[12] if pt == 101 else None))
    return out


def test_keys_keep_their_time_after_a_silent_first_packet(tmp_path):
    packets = _packets(dtmf_pcap(((2500, "1"), (6000, "#")), tmp_path / "k.pcap"))
    # SIPp times a capture from its first packet: silence at 0 ms anchors the keys, and
    # the capture's clock starts at 1 s (SIPp reads a time of zero as "no packet yet").
    assert packets[0][:2] == (0, 0)
    assert struct.unpack("<I", (tmp_path / "k.pcap").read_bytes()[24:28])[0] == 1
    keys = [(ms, event) for ms, pt, _, event in packets if pt == 101]
    assert keys[0] == (2500, 1) and [e for _, e in keys].count(11) == 8
    assert min(ms for ms, e in keys if e == 11) == 6000
    seqs = [seq for _, _, seq, _ in packets]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
