"""Cluster test support: ports in 26000-26999, SIPp stand-ins for answering nodes (they
answer OPTIONS probes and calls, and count the calls), and a caller that follows the
proxy's Record-Route for its ACK and BYE."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from support.sipp import sipp_binary

CLUSTER_PORTS = 26000


def cluster_port_base() -> int:
    """50 ports for this test process in 26000-26999 (its xdist worker and run offset)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    worker = int(name[2:]) if name[2:].isdigit() else 0
    worker += int(os.environ.get("IVR_TEST_WORKER_OFFSET", "0") or 0)
    return CLUSTER_PORTS + 50 * (worker % 20)


_SDP = """v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000"""

_REPLY_HEADERS = """[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]"""

_EMPTY_OK = f"""  <send><![CDATA[
SIP/2.0 200 OK
{_REPLY_HEADERS}
Content-Length: 0

]]></send>
"""

NODE_SCENARIO = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="an answering node: OPTIONS probes and calls">
  <recv request="OPTIONS" optional="true" next="probe"/>
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
{_REPLY_HEADERS}
[last_Record-Route:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
{_REPLY_HEADERS}
[last_Record-Route:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

{_SDP}

]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
{_EMPTY_OK}  <nop next="done"/>
  <label id="probe"/>
{_EMPTY_OK}  <label id="done"/>
</scenario>
"""

_CALLER_HEADERS = """Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: caller <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
Call-ID: [call_id]
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70"""

CALLER_SCENARIO = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="a carrier's call through the proxy">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{_CALLER_HEADERS}
To: <sip:[service]@[remote_ip]:[remote_port]>
CSeq: 1 INVITE
Content-Type: application/sdp
Content-Length: [len]

{_SDP}

]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
{_CALLER_HEADERS}
[last_To:]
[routes]
CSeq: 1 ACK
Content-Length: 0

]]></send>
  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
{_CALLER_HEADERS}
[last_To:]
[routes]
CSeq: 2 BYE
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


class FakeNode:
    """A SIPp standing in for an Asterisk node at host:port; counts the calls it answered."""

    def __init__(self, host: str, port: int, folder: Path | None = None) -> None:
        self.host, self.port = host, port
        self.folder = Path(folder or tempfile.mkdtemp(prefix="ivr-node-"))
        self.proc: subprocess.Popen[str] | None = None
        self.messages = self.folder / f"node-{port}-messages.log"

    def start(self) -> FakeNode:
        scenario = self.folder / f"node-{self.port}.xml"
        scenario.write_text(NODE_SCENARIO)
        self.proc = subprocess.Popen(
            [sipp_binary(), "-sf", str(scenario), "-i", self.host, "-p", str(self.port),
             "-mi", self.host, "-nostdin", "-trace_msg", "-message_file", str(self.messages)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            cwd=self.folder, text=True)
        return self

    def calls(self) -> int:
        if not self.messages.exists():
            return 0
        return sum(1 for line in self.messages.read_text(errors="replace").splitlines()
                   if line.startswith("INVITE sip:"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def place_calls(target: str, number: str, calls: int, local_port: int,
                timeout_s: int = 60) -> subprocess.CompletedProcess[str]:
    """`calls` calls, one after another, from 127.0.0.1:local_port to sip:number@target."""
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "caller.xml"
        scenario.write_text(CALLER_SCENARIO)
        return subprocess.run(
            [sipp_binary(), target, "-sf", str(scenario), "-s", number, "-m", str(calls),
             "-l", "1", "-i", "127.0.0.1", "-p", str(local_port), "-nostdin",
             "-timeout", f"{timeout_s}s", "-timeout_error"],
            capture_output=True, text=True, timeout=timeout_s + 30, stdin=subprocess.DEVNULL,
            cwd=tmp)
