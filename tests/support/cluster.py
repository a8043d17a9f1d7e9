"""Cluster test support: ports in 11000-11999, SIPp stand-ins for answering nodes (they
answer OPTIONS probes and calls, and count the calls), and a caller that follows the
proxy's Record-Route for its ACK and BYE; and a real local cluster (RealCluster, ports
12000-12999) with its test rules, for the drills and the cluster benchmark."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ivr import config
from ivr.caller.client import Phones, RunningCall, start_call
from ivr.caller.plan import BUSY, CallPlan, PhoneBook, Step
from ivr.cluster.local import LocalCluster
from ivr.cluster.postgres import PostgresServer
from ivr.db.engine import Database
from ivr.pbx.prompts import synthesize
from ivr.records import calls
from support.plans import DOB_KEYS, NAME, REASON, accept_caller_id, answer, choose, speak
from support.polling import wait_for
from support.ports import worker_ports
from support.sipp import sipp_command
from support.stack import REPO

# Below the per-worker control ports (15000-19999) and RTP ranges (21000-28999) of
# tests/support/ports.py: an Asterisk picking an RTP port must never take one a cluster
# test binds, nor the other way round.
CLUSTER_PORTS = 11000
E2E_CLUSTER_PORTS = 12000


def cluster_port_base() -> int:
    """50 ports for this test process in 11000-11999 (its xdist worker and run offset)."""
    return CLUSTER_PORTS + 50 * (worker_ports().worker % 20)


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
            [*sipp_command(), "-sf", str(scenario), "-i", self.host, "-p", str(self.port),
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
            [*sipp_command(), target, "-sf", str(scenario), "-s", number, "-m", str(calls),
             "-l", "1", "-i", "127.0.0.1", "-p", str(local_port), "-nostdin",
             "-timeout", f"{timeout_s}s", "-timeout_error"],
            capture_output=True, text=True, timeout=timeout_s + 30, stdin=subprocess.DEVNULL,
            cwd=tmp)


# --- a real local cluster (`ivr cluster up`), as the drills and the benchmark drive it ----

SUNNY = "+16175550100"  # the test rules' full practice: callback, date of birth, name, reason
QUICK = "+16175550200"  # their quick practice: the callback number, then the menu
PRACTICE, QUICK_PRACTICE = "sunny-pediatrics", "quick-test"
#: The test rules' prompts: a few words each, so a drill's call spends its time on what
#: it checks, not on listening (the flow's own sentences, such as the read-back, stay).
SHORT_PROMPTS = """prompts:
  greeting: Sunny test line.
  emergency_notice: In an emergency, dial 911.
  ask_dob: Date of birth, eight digits.
  ask_name: Name, after the tone.
  ask_reason: Why you call, after the tone.
  callback_promise: Thank you, goodbye.

"""


def write_test_rules(folder: Path, quick_webhook: str | None = None) -> Path:
    """The repository's Sunny Pediatrics with short prompts and a one-key menu, and a quick
    practice like it on QUICK that collects the callback number only (its webhook
    `quick_webhook` when given, else the rules' unreachable one)."""
    src = (REPO / "routing_rules" / "sunny-pediatrics.yaml").read_text()
    start, end = src.index("prompts:\n"), src.index("# Intake:")
    src = src[:start] + SHORT_PROMPTS + src[end:]
    start = src.index("triage:\n  prompt: >-")
    src = src[:start] + "triage:\n  prompt: Press 4 for a message.\n" + \
        src[src.index("  keys:\n", start):]
    quick = (src.replace("id: sunny-pediatrics", f"id: {QUICK_PRACTICE}")
             .replace(SUNNY, QUICK).replace("+16175550111", "+16175550211")
             .replace("collect: [callback, dob, name, reason]", "collect: [callback]"))
    assert quick.count(QUICK_PRACTICE) == 1 and "collect: [callback] " in quick
    if quick_webhook:
        hook = "url: https://ehr.sunny-pediatrics.example/hooks/answering"
        assert quick.count(hook) == 1
        quick = quick.replace(hook, f"url: {quick_webhook}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{PRACTICE}.yaml").write_text(src)
    (folder / f"{QUICK_PRACTICE}.yaml").write_text(quick)
    return folder


def e2e_port_base() -> int:
    """250 ports in 12000-12999 for this test process (its xdist worker and run offset)."""
    return E2E_CLUSTER_PORTS + 250 * (worker_ports().worker % 4)


class RealCluster:
    """A local cluster of real nodes as tests drive it: `ivr cluster up` and its other
    commands, the record read straight from its PostgreSQL (a test's many polls cost no
    process each), reacting callers to Kamailio. Kamailio on 127.0.0.4, nodes from
    127.0.0.5, ports from `base` (e2e_port_base)."""

    def __init__(self, folder: Path, nodes: int = 2, base: int | None = None,
                 rtp: tuple[int, int] | None = None, extra_env: dict[str, str] | None = None,
                 quick_webhook: str | None = None) -> None:
        """`rtp`: (first port, ports per node) for the nodes' media, else 40 per node in
        this worker's range (20 calls a node: plenty for a drill, not for a benchmark).
        `extra_env`: more settings for the controllers (IVR_SMTP_*, a webhook secret);
        `quick_webhook`: the quick practice's webhook URL (write_test_rules)."""
        self.folder = folder
        self.nodes = nodes
        self.base = base = e2e_port_base() if base is None else base
        self.prefix = f"e{os.getpid()}n"
        self.entry = f"127.0.0.4:{base}"
        self.up_args = [
            "--nodes", str(nodes), "--controllers", "2", "--prefix", self.prefix,
            "--entry", self.entry, "--first-node", "127.0.0.5",
            "--db-port", str(base + 1), "--sip-port", str(base + 10),
            "--ami-port", str(base + 11), "--agi-port", str(base + 12), "--port-step", "10",
            "--rtp-start", str(rtp[0] if rtp else base + 100),
            "--rtp-per-node", str(rtp[1] if rtp else 40), "--probe-seconds", "1",
            "--fail-over-ms", "1500"]
        self.gateway_port = base + 40
        rules = write_test_rules(folder / "rules", quick_webhook)
        # Transcription off: no drill reads a transcript, and four controllers' speech
        # models would take the cores the calls need. The load bounds are the suite's
        # (tests/support/stack.py): beside a CPU hog a controller late by seconds is
        # starved, not overloaded, and no cluster test is about shedding.
        self.env = {**os.environ, "IVR_DATA_DIR": str(folder / "base"),
                    "IVR_CLUSTER_DIR": str(folder), "IVR_TRUNK_MATCH": "127.0.0.1",
                    "IVR_GATEWAY_PORT": str(self.gateway_port),
                    "IVR_FAX_PORT": str(base + 41), "IVR_RULES_PATH": str(rules),
                    "IVR_TRANSCRIBE_ENGINE": "off", "IVR_CONTROLLER_ANSWER_SECONDS": "10",
                    "IVR_ADMISSION_MAX_LAG_MS": "0", **(extra_env or {})}
        # The cluster's database, for the commands that read it (`calls`, `override`).
        self.db_env = {"IVR_DB_URL": f"postgresql+asyncpg://ivr@127.0.0.1:{base + 1}/ivr",
                       "IVR_DB_PASSWORD_FILE": str(folder / "postgres" / "password")}
        self.voices = folder / "voices"
        self._slots = iter(range(10_000))
        self.phones: Phones | None = None
        self._books = 0

    def answer_phones(self, book: PhoneBook) -> None:
        """The clinician gateway's phones answer by `book` from now on (the bank is
        stopped and a new one started: a call to it meanwhile finds no phone)."""
        if self.phones is not None:
            self.phones.stop()
            self.phones = None
        self._books += 1
        self.phones = Phones(book, self.gateway_port, self.folder / f"phones-{self._books}",
                             media_port=self.base + 244, media_ports=6)

    @property
    def postgres(self) -> PostgresServer:
        return PostgresServer(self.folder / "postgres", port=self.base + 1)

    @property
    def names(self) -> list[str]:
        return [f"{self.prefix}{i + 1}" for i in range(self.nodes)]

    def remove(self, keep: bool = False) -> None:
        """`ivr cluster down`, then the nodes' instance folders and (unless `keep` or
        IVR_KEEP_TEST_DIRS=1) the cluster's folder."""
        self.ivr("cluster", "down", check=False)
        try:
            nodes = self.status()["nodes"]
        except Exception:  # noqa: BLE001 (never made: nothing to clean)
            nodes = []
        for node in nodes:
            if node["asterisk"]["folder"]:
                shutil.rmtree(node["asterisk"]["folder"], ignore_errors=True)
        if not keep and os.environ.get("IVR_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(self.folder, ignore_errors=True)

    def ivr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:

        env = self.env if args[0] == "cluster" else {**self.env, **self.db_env}
        out = subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=env,
                             capture_output=True, text=True, cwd=REPO, timeout=400)
        if check:
            assert out.returncode == 0, f"ivr {' '.join(args[:3])}: {out.stderr[-3000:]}"
        return out

    def up(self) -> dict[str, Any]:

        return json.loads(self.ivr("cluster", "up", *self.up_args, "--json").stdout)

    def status(self) -> dict[str, Any]:
        """`ivr cluster status`'s JSON, made in this process."""
        return LocalCluster.found(self.folder, config.from_env(self.env)).status()

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.status()["nodes"] if n["name"] == name)

    def dispatcher(self, name: str) -> str:
        return str(self.node(name)["dispatcher"])

    # --- the record -------------------------------------------------------------------
    def read(self, fn: Callable[[Database], Awaitable[Any]]) -> Any:
        """`fn` run on the cluster's database, from this (synchronous) test."""
        async def run() -> Any:
            db = Database(self.postgres.url())
            try:
                return await fn(db)
            finally:
                await db.close()
        return asyncio.run(run())

    def calls_from(self, caller: str) -> list[dict[str, Any]]:

        return self.read(lambda db: calls.list_calls(db, caller=caller))

    def show(self, call_id: str) -> dict[str, Any]:

        return self.read(lambda db: calls.show_call(db, call_id))

    def started(self, caller: str) -> dict[str, Any]:
        """The (only) call from `caller`, once its record exists."""
        found = wait_for(lambda: self.calls_from(caller), 90,
                         f"the call from {caller} to be recorded", interval=0.3)
        assert len(found) == 1, found
        return found[0]

    def finished(self, caller: str, timeout: float = 120) -> dict[str, Any]:
        """The call from `caller` once ended and reconciled (its channel's stamp in)."""
        def done() -> dict[str, Any] | None:
            found = self.calls_from(caller)
            return found[0] if found and found[0]["ended_at"] and found[0][
                "reconciled_at"] else None
        return wait_for(done, timeout, f"the call from {caller} to end and be reconciled",
                        interval=0.5)

    # --- callers ----------------------------------------------------------------------
    def dial(self, plan: CallPlan, slot: int | None = None, to: str = SUNNY,
             timeout_s: float = 300) -> RunningCall:
        """A reacting caller from 127.0.0.1 to Kamailio, dialling `to`; `slot` 0-3 (or
        the next of 4 in turn): its ports (one call per slot at a time)."""
        slot = next(self._slots) % 4 if slot is None else slot
        work = Path(tempfile.mkdtemp(prefix=f"call{slot}-", dir=self.folder))
        return start_call(plan, self.entry, to, workdir=work, port=self.base + 50 + slot,
                          media_port=self.base + 180 + 16 * slot, media_ports=16,
                          timeout_s=timeout_s)

    def intake_plan(self, caller: str) -> CallPlan:
        """The whole intake on SUNNY: the caller ID accepted, the date of birth keyed and
        confirmed, name and reason said (each recording ended with '#'), a message."""
        def said(text: str) -> list[Step]:
            return speak(str(synthesize(text, self.voices)))
        return CallPlan(caller_id=caller, steps=(
            *accept_caller_id(), *answer(DOB_KEYS), *answer("1"), *said(NAME),
            *said(REASON), *choose("4")))

    @staticmethod
    def quick_plan(caller: str) -> CallPlan:
        """A call to QUICK: the caller ID accepted, a message (dial it with to=QUICK)."""
        return CallPlan(caller_id=caller, steps=(*accept_caller_id(), *answer("4")))


@contextmanager
def running_cluster(prefix: str, why: str, keep: bool = False,
                    rtp: tuple[int, int] | None = None, extra_env: dict[str, str] | None = None,
                    quick_webhook: str | None = None) -> Iterator[RealCluster]:
    """A 2-node cluster, both practices closed by an override (after hours), busy phones
    on the clinician gateway (a fallback goes on to its message at once; an on-call chain
    rings through; `RealCluster.answer_phones` changes them), both nodes active in
    Kamailio; taken down and removed after. `extra_env`, `quick_webhook`: RealCluster's."""
    c = RealCluster(Path(tempfile.mkdtemp(prefix=prefix)), rtp=rtp, extra_env=extra_env,
                    quick_webhook=quick_webhook)
    try:
        status = c.up()
        assert all(n["asterisk"]["running"] for n in status["nodes"]), status
        until = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
        for practice in (PRACTICE, QUICK_PRACTICE):
            c.ivr("override", "set", "--practice", practice, "--closed", "--until",
                  until.isoformat(), "--reason", why)
        c.answer_phones(PhoneBook(default=BUSY))
        for name in c.names:
            wait_for(lambda name=name: c.dispatcher(name).startswith("active"), 60,
                     f"{name} active in Kamailio")
        yield c
    finally:
        if c.phones is not None:
            c.phones.stop()
        c.remove(keep)
