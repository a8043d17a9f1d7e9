"""SIPp scenarios built from parameters: byte-exact (hostile) callers, load callers for
the benchmarks, and the timed helpers those need. Everything that can react uses
ivr.caller instead; SIPp stays where a test needs bytes a SIP stack would not send.

Keys are sent as SIP INFO (application/dtmf-relay), which Asterisk takes in any order
and repetition; the RFC 2833 captures shipped with SIPp only work in one fixed order
(docs/platform.md). Values inside the SIP messages (CDATA) are sent as given, so callers
of this module choose whether it is a well-formed number or a hostile string (tests send both);
attribute values are XML-escaped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from ivr.caller.__main__ import NICE_VARIABLE
from support.ports import PortPlan, worker_ports

DTMF_PCAP_DIR = Path("/usr/share/sip-tester")
KEYS = set("0123456789*#")

_HEADER = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n'

_CODECS = {"PCMU": 0, "PCMA": 8}


def _sdp(codec: str = "PCMU") -> str:
    payload = _CODECS[codec]
    return f"""
      v=0
      o=ivr 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {payload} 101
      a=rtpmap:{payload} {codec}/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=sendrecv"""


def _info(key: str) -> str:
    return f"""  <send>
    <![CDATA[
      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [cseq] INFO
      Contact: <sip:[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={key}
      Duration=160
    ]]>
  </send>
  <recv response="200"/>
"""


@dataclass(frozen=True)
class CallerSpec:
    """What a test caller does: who it claims to be, which keys it presses, when."""

    caller_id: str = "+16175550199"
    caller_name: str = "Test Caller"
    keys: str = ""
    before_keys_ms: int = 1500
    between_keys_ms: int = 400
    # Either wait for the PBX to hang up (wait_bye_ms) or hang up ourselves afterwards.
    wait_bye_ms: int = 30000
    hangup_after_ms: int | None = None
    diversion: str | None = None  # a Diversion header value, sent raw (escaped for XML)
    audio_pcap: str | None = None  # RTP to play after the answer (speech for recordings)
    audio_delay_ms: int = 0  # when to start it (after the prompts before a recording)
    codec: str = "PCMU"  # PCMA for the a-law capture shipped with SIPp
    extra_headers: tuple[str, ...] = ()


def _cdata(value: str) -> str:
    return value.replace("]]>", "]] >")


def caller_scenario(spec: CallerSpec) -> str:
    """A UAC scenario: INVITE, answer, keys by SIP INFO, then BYE one way or the other."""
    for key in spec.keys:
        if key not in KEYS and key != ",":
            raise ValueError(f"not a phone key: {key!r}")
    # Values go inside CDATA, where XML escapes would reach the PBX literally; only the
    # CDATA terminator must not appear. Everything else is sent as given, hostile or not.
    name = _cdata(spec.caller_name).replace('"', "")
    cid = _cdata(spec.caller_id)
    headers = []
    if spec.diversion:
        headers.append(f"Diversion: {_cdata(spec.diversion)}")
    headers += [_cdata(h) for h in spec.extra_headers]
    extra = "".join(f"\n      {h}" for h in headers)
    parts = [_HEADER.format(name="ivr caller"), f"""  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{name}" <sip:{cid}@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70{extra}
      Content-Type: application/sdp
      Content-Length: [len]
{_sdp(spec.codec)}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""]
    if spec.audio_pcap:
        if spec.audio_delay_ms:
            parts.append(f'  <pause milliseconds="{spec.audio_delay_ms}"/>\n')
        parts.append(f'  <nop><action><exec play_pcap_audio="{escape(spec.audio_pcap)}"/>'
                     f'</action></nop>\n')
    parts.append(f'  <pause milliseconds="{spec.before_keys_ms}"/>\n')
    for key in spec.keys:
        if key == ",":  # a comma is a longer pause, like a dialler's
            parts.append('  <pause milliseconds="2000"/>\n')
            continue
        parts.append(_info(key))
        parts.append(f'  <pause milliseconds="{spec.between_keys_ms}"/>\n')
    if spec.hangup_after_ms is not None:
        parts.append(f'  <pause milliseconds="{spec.hangup_after_ms}"/>\n')
        parts.append(_bye_uac())
    else:
        parts.append(f'  <recv request="BYE" timeout="{spec.wait_bye_ms}" ontimeout="hangup"/>\n')
        parts.append(_ok_to_bye())
        parts.append('  <nop next="end"/>\n')
        parts.append('  <label id="hangup"/>\n')
        parts.append(_bye_uac())
        parts.append('  <label id="end"/>\n')
    parts.append("</scenario>\n")
    return "".join(parts)


def _bye_uac() -> str:
    return """  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [cseq] BYE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
"""


def _ok_to_bye() -> str:
    return """  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
"""


@dataclass(frozen=True)
class PhoneSpec:
    """What a clinician's phone does when the PBX rings it."""

    answer: bool = True
    ring_ms: int = 500
    busy: bool = False
    key: str | None = "1"  # pressed after answering (RFC 2833 capture); None: silent
    key_after_ms: int = 3000
    wait_bye_ms: int = 60000


def phone_scenario(spec: PhoneSpec) -> str:
    """A UAS scenario for one incoming call."""
    parts = [_HEADER.format(name="clinician phone"),
             '  <recv request="INVITE" crlf="true" rrs="true"/>\n']
    if spec.busy:
        parts.append(_reply("486 Busy Here"))
        parts.append('  <recv request="ACK" optional="true"/>\n</scenario>\n')
        return "".join(parts)
    parts.append(_reply("180 Ringing"))
    if not spec.answer:
        parts.append(f'  <recv request="CANCEL" timeout="{spec.wait_bye_ms}"/>\n')
        parts.append(_reply("200 OK"))
        parts.append(_reply("487 Request Terminated", cseq_invite=True))
        parts.append('  <recv request="ACK" optional="true"/>\n</scenario>\n')
        return "".join(parts)
    parts.append(f'  <pause milliseconds="{spec.ring_ms}"/>\n')
    parts.append(_reply("200 OK", sdp=True))
    parts.append('  <recv request="ACK" rtd="true" crlf="true"/>\n')
    if spec.key is not None:
        key_name = {"*": "star", "#": "pound"}.get(spec.key, spec.key)
        pcap = DTMF_PCAP_DIR / f"dtmf_2833_{key_name}.pcap"
        parts.append(f'  <pause milliseconds="{spec.key_after_ms}"/>\n')
        parts.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n')
    parts.append(f'  <recv request="BYE" timeout="{spec.wait_bye_ms}" ontimeout="hangup"/>\n')
    parts.append(_ok_to_bye())
    parts.append('  <nop next="end"/>\n  <label id="hangup"/>\n')
    parts.append(_bye_uac())
    parts.append('  <label id="end"/>\n</scenario>\n')
    return "".join(parts)


def _reply(status: str, sdp: bool = False, cseq_invite: bool = False) -> str:
    body = f"\n      Content-Type: application/sdp\n      Content-Length: [len]\n{_sdp()}" \
        if sdp else "\n      Content-Length: 0"
    return f"""  <send>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>{body}
    ]]>
  </send>
"""


def _free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sipp_binary() -> str:
    binary = shutil.which("sipp")
    if not binary:
        raise RuntimeError("sipp is not installed: apt-get install sip-tester (make run does)")
    return binary


def sipp_command() -> list[str]:
    """SIPp's argv start: at IVR_CALLER_NICE when the suite sets it (as root), as the
    reacting callers are (ivr/caller/__main__.py). A starved SIPp phone answered an
    INVITE late, got Asterisk's retransmission where its scenario expects the ACK, and
    aborted the call."""
    nice = os.environ.get(NICE_VARIABLE, "").strip()
    return ["nice", "-n", nice, sipp_binary()] if nice else [sipp_binary()]


def run_caller(spec: CallerSpec, target: str, number: str, *, local_port: int = 0,
               media_port: int = 0, timeout_s: int = 120, calls: int = 1,
               rate: float | None = None,
               concurrent: int | None = None,
               log_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Place `calls` calls to sip:number@target and wait for them to end."""
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "caller.xml"
        scenario.write_text(caller_scenario(spec))
        argv = [*sipp_command(), target, "-sf", str(scenario), "-s", number, "-m", str(calls),
                "-i", "127.0.0.1", "-timeout", f"{timeout_s}s", "-timeout_error",
                "-nostdin", "-trace_err", "-error_file", str(Path(tmp) / "errors.log")]
        # Always an explicit port: left alone, SIPp takes 5060 when it is free, which is
        # the PBX's own port in a default set-up.
        argv += ["-p", str(local_port or _free_udp_port())]
        if media_port:
            argv += ["-mp", str(media_port)]
        if rate is not None:
            argv += ["-r", str(rate)]
        if concurrent is not None:
            argv += ["-l", str(concurrent)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 30,
                                stdin=subprocess.DEVNULL, cwd=tmp)
        errors = Path(tmp) / "errors.log"
        if log_dir is not None and errors.exists():
            log_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(errors, log_dir / "sipp-errors.log")
        if result.returncode != 0 and errors.exists():
            result.stderr += "\n" + errors.read_text()[-4000:]
        return result


def start_phone(spec: PhoneSpec, port: int, calls: int = 1,
                workdir: Path | None = None, media_port: int = 0) -> subprocess.Popen[str]:
    """A clinician phone listening on 127.0.0.1:port for `calls` calls (background)."""
    folder = Path(workdir or tempfile.mkdtemp(prefix="ivr-phone-"))
    scenario = folder / f"phone-{port}.xml"
    scenario.write_text(phone_scenario(spec))
    argv = [*sipp_command(), "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port),
            "-m", str(calls), "-nostdin", "-trace_err",
            "-error_file", str(folder / f"phone-{port}-errors.log")]
    if media_port:
        argv += ["-mp", str(media_port)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, cwd=folder)


def speech_pcap(text: str, dest: Path, *, lead_silence_s: float = 0.0,
                tail_silence_s: float = 6.0, repeat: int = 1) -> Path:
    """A pcap of G.711 u-law RTP saying `text` (espeak-ng), for SIPp's play_pcap_audio.

    Silence before lets prompts finish; silence after lets the PBX's silence detection end
    a recording, which it can only do while RTP keeps arriving.
    """
    import struct

    from ivr.pbx.prompts import synthesize

    wav = synthesize(text, dest.parent / "tts-cache")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "speech.ul"
        subprocess.run(["sox", str(wav), "-t", "ul", "-r", "8000", "-c", "1", str(raw)],
                       check=True, capture_output=True, timeout=60)
        speech = raw.read_bytes()
    silence = b"\xff"  # u-law digital silence
    audio = (silence * int(lead_silence_s * 8000)
             + (speech + silence * 4000) * repeat + silence * int(tail_silence_s * 8000))
    frames = [audio[i:i + 160].ljust(160, silence) for i in range(0, len(audio), 160)]
    packets = [(n * 20, struct.pack("!BBHII", 0x80, 0x80 if n == 0 else 0x00, n & 0xFFFF,
                                    n * 160, 0x1D5C0DE5) + payload)
               for n, payload in enumerate(frames)]
    return _write_pcap(packets, dest)


def _write_pcap(packets: list[tuple[int, bytes]], dest: Path) -> Path:
    """A pcap of RTP packets sent at the given ms, as SIPp's play_pcap_audio reads it
    (Ethernet + IPv4 + UDP around each packet; SIPp re-addresses them)."""
    import struct

    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for n, (ms, rtp) in enumerate(packets):
        udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64,
                                17, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        frame = b"\x00" * 12 + b"\x08\x00" + ip_header + udp
        # SIPp takes a packet time of exactly zero for "no previous packet" and does not
        # wait before the next one; starting the capture's clock at 1 s avoids that.
        usec = (1000 + ms) * 1000
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame),
                           len(frame)) + frame
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(bytes(out))
    return dest


# --- clinician phones that behave per dialled number ---------------------------------------

_DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def dtmf_pcap(timeline: tuple[tuple[int, str], ...], dest: Path) -> Path:
    """RFC 2833 (payload 101) key presses at given ms, one RTP stream, for play_pcap_audio.

    One stream with rising sequence numbers, so any keys in any order and repetition
    arrive (SIPp's shipped captures each restart their numbering, docs/platform.md). It opens
    with one packet of silence at 0 ms: SIPp times a capture from its first packet, so
    without it the first key would be sent at once, whatever its time.
    """
    import struct

    silence = struct.pack("!BBHII", 0x80, 0, 1, 0, 0x2833D7F1) + b"\xff" * 160  # PCMU
    packets: list[tuple[int, bytes]] = [(0, silence)]
    seq = 2
    for at_ms, key in sorted(timeline):
        event = _DTMF_EVENTS[key]
        ts = at_ms * 8
        for n in range(8):  # 5 updates every 20 ms, then 3 end packets
            end = n >= 5
            duration = min(n + 1, 5) * 160
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
            rtp = struct.pack("!BBHII", 0x80, (0x80 if n == 0 else 0) | 101, seq & 0xFFFF,
                              ts, 0x2833D7F1) + payload
            packets.append((at_ms + 20 * min(n, 5) + (n - 5 if end else 0), rtp))
            seq += 1
    return _write_pcap(packets, dest)


@dataclass(frozen=True)
class PhoneBehaviour:
    """One clinician's phone in a multi-number UAS: ring, answer or not, keys after answer."""

    answer: bool = True
    busy: bool = False
    ring_ms: int = 500
    keys: tuple[tuple[int, str], ...] = ()  # (ms after the answer, key)
    wait_bye_ms: int = 120000
    # RTP played after the answer when no keys are (a voicemail greeting: speech_pcap)
    audio_pcap: str | None = None


def _branch(label: str, spec: PhoneBehaviour, pcap: Path | None) -> str:
    parts = [f'  <label id="{label}"/>\n']
    if spec.busy:
        parts.append(_reply("486 Busy Here"))
        parts.append('  <recv request="ACK" timeout="5000" ontimeout="end"/>\n'
                     '  <nop next="end"/>\n')
        return "".join(parts)
    parts.append(_reply("180 Ringing"))
    if not spec.answer:
        parts.append(f'  <recv request="CANCEL" timeout="{spec.wait_bye_ms}"/>\n')
        parts.append(_reply("200 OK"))
        parts.append(_reply("487 Request Terminated"))
        parts.append('  <recv request="ACK" timeout="5000" ontimeout="end"/>\n'
                     '  <nop next="end"/>\n')
        return "".join(parts)
    parts.append(f'  <pause milliseconds="{spec.ring_ms}"/>\n')
    parts.append(_reply("200 OK", sdp=True))
    parts.append('  <recv request="ACK" crlf="true"/>\n')
    if pcap is not None:
        parts.append(f'  <nop><action><exec play_pcap_audio="{escape(str(pcap))}"/>'
                     f'</action></nop>\n')
    parts.append(f'  <recv request="BYE" timeout="{spec.wait_bye_ms}" ontimeout="end"/>\n')
    parts.append(_ok_to_bye())
    parts.append('  <nop next="end"/>\n')
    return "".join(parts)


def multi_phone_scenario(behaviours: dict[str, PhoneBehaviour], default: PhoneBehaviour,
                         workdir: Path) -> str:
    """A UAS whose behaviour depends on the dialled number (digits, no '+').

    Real phones differ by number; so do these: one SIPp on the gateway port plays every
    clinician (and patient) of a test at once, calls in any order and concurrently.
    """
    items = list(behaviours.items())
    # SIPp refuses a variable that is assigned but never tested: no numbers, no ereg.
    number = ('    <action>\n      <ereg regexp="INVITE sip:[0-9]+@" search_in="msg" '
              'check_it="false" assign_to="num"/>\n    </action>\n') if items else ""
    parts = [_HEADER.format(name="clinician phones"),
             f'  <recv request="INVITE" crlf="true" rrs="true">\n{number}  </recv>\n']
    for i, (number, _spec) in enumerate(items):
        if not number.isdigit():
            raise ValueError(f"phone numbers here are digits only: {number!r}")
        parts.append(f'  <nop><action><strcmp assign_to="c{i}" variable="num" '
                     f'value="INVITE sip:{number}@"/><test assign_to="t{i}" variable="c{i}" '
                     f'compare="equal" value="0"/></action></nop>\n')
        parts.append(f'  <nop next="b{i}" test="t{i}"/>\n')
    parts.append('  <nop next="bdefault"/>\n')
    for i, (number, spec) in enumerate([*items, ("default", default)]):
        pcap = (dtmf_pcap(spec.keys, workdir / f"keys-{number}.pcap") if spec.keys
                else Path(spec.audio_pcap) if spec.audio_pcap else None)
        parts.append(_branch(f"b{i}" if number != "default" else "bdefault", spec, pcap))
    parts.append('  <label id="end"/>\n</scenario>\n')
    return "".join(parts)


def start_multi_phone(behaviours: dict[str, PhoneBehaviour], default: PhoneBehaviour,
                      port: int, workdir: Path, media_port: int = 0,
                      calls: int = 10000) -> subprocess.Popen[str]:
    """The multi-number phone listening on 127.0.0.1:port (background; stop it yourself)."""
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = workdir / f"phones-{port}.xml"
    scenario.write_text(multi_phone_scenario(behaviours, default, workdir))
    argv = [*sipp_command(), "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port),
            "-m", str(calls), "-nostdin", "-trace_err", "-trace_msg",
            "-message_file", str(workdir / f"phones-{port}-messages.log"),
            "-error_file", str(workdir / f"phones-{port}-errors.log")]
    if media_port:
        argv += ["-mp", str(media_port)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            text=True, stdin=subprocess.DEVNULL, cwd=workdir)


# --- scripted callers (the call-flow e2e tests) ------------------------------------------

def timed_caller_scenario(spec: CallerSpec, timeline: list[tuple[int, str]],
                          end_ms: int, hangup: bool = False,
                          raw_headers: tuple[str, ...] = ()) -> str:
    """A caller that presses keys at given times (ms after the answer), then waits for the
    PBX's BYE until `end_ms` (or hangs up itself at `end_ms` when `hangup`).

    Built from the same pieces as caller_scenario, with explicit pauses so a test
    can place each key inside the prompt it answers. `raw_headers` replace same-named
    INVITE headers (or are added) byte for byte: CallerSpec's values are XML-escaped
    inside CDATA, so '<', '&' or quotes would reach the PBX as entities, not as
    themselves."""
    base = caller_scenario(CallerSpec(
        caller_id=spec.caller_id, caller_name=spec.caller_name, diversion=spec.diversion,
        extra_headers=spec.extra_headers, audio_pcap=spec.audio_pcap, codec=spec.codec,
        keys="", before_keys_ms=0, hangup_after_ms=0))
    head = base.split('  <pause milliseconds="0"/>\n')[0]
    for header in raw_headers:
        assert "]]>" not in header and "\n" not in header
        name = header.split(":", 1)[0]
        lines = head.split("\n")
        at = next((i for i, line in enumerate(lines)
                   if line.strip().lower().startswith(name.lower() + ":")), None)
        if at is None:
            at = next(i for i, line in enumerate(lines) if "Max-Forwards: 70" in line)
            lines.insert(at + 1, "      " + header)
        else:
            lines[at] = "      " + header
        head = "\n".join(lines)
    parts = [head]
    now = 0
    for at, key in sorted(timeline):
        if at > now:
            parts.append(f'  <pause milliseconds="{at - now}"/>\n')
            now = at
        parts.append(_info(key))
    rest = max(end_ms - now, 0)
    if hangup:
        parts.append(f'  <pause milliseconds="{rest}"/>\n')
        parts.append(_bye_uac())
    else:
        parts.append(f'  <recv request="BYE" timeout="{max(rest, 1000)}" ontimeout="hangup"/>\n')
        parts.append(_ok_to_bye())
        parts.append('  <nop next="end"/>\n  <label id="hangup"/>\n')
        parts.append(_bye_uac())
        parts.append('  <label id="end"/>\n')
    parts.append("</scenario>\n")
    return "".join(parts)


def run_scenario(xml: str, target: str, number: str, workdir: Path,
                 timeout_s: int = 300) -> subprocess.CompletedProcess[str]:
    """Run one SIPp scenario on ports from this worker's own range (see run_scenario_in)."""
    return _run_sipp(xml, target, number, workdir, timeout_s, worker_ports())


def _run_sipp(xml: str | bytes, target: str, number: str, workdir: Path, timeout_s: int,
              ports: PortPlan) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = workdir / "caller.xml"
    # bytes: a scenario carrying bytes that are not UTF-8 (a caller name that is invalid)
    if isinstance(xml, bytes):
        scenario.write_bytes(xml)
    else:
        scenario.write_text(xml)
    argv = [*sipp_command(), target, "-sf", str(scenario), "-s", number, "-m", "1",
            "-i", "127.0.0.1", "-p", str(ports.next()), "-mp", str(ports.next(4)),
            "-timeout", f"{timeout_s}s", "-timeout_error", "-nostdin", "-trace_err",
            "-error_file", str(workdir / "errors.log")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 30,
                            stdin=subprocess.DEVNULL, cwd=workdir)
    errors = workdir / "errors.log"
    if result.returncode != 0 and errors.exists():
        result.stderr += "\n" + errors.read_text()[-4000:]
    return result


def silence_pcap(dest: Path, seconds: float) -> Path:
    """RTP of u-law digital silence (a caller who says nothing, with the line open)."""
    # speech_pcap needs some text; a single pause character speaks as (near) silence, and
    # the long lead keeps the whole stream silent for `seconds`.
    return speech_pcap(".", dest, lead_silence_s=seconds, tail_silence_s=0)


def run_scenario_in(stack: Any, xml: str | bytes, number: str, workdir: Path,
                    timeout_s: int = 300) -> subprocess.CompletedProcess[str]:
    """run_scenario on ports from the stack's own range (SIP, and 4 media ports: SIPp
    binds audio and video RTP and RTCP next to each other), free of other workers' calls
    and of the kernel's ephemeral ports."""
    return _run_sipp(xml, stack.target, number, workdir, timeout_s, stack.ports)
