"""Test harness: an isolated Asterisk instance, the controller as a real process, SIPp
callers and phones, and an AMI event recorder. Shared by the e2e tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ivr import config  # noqa: E402
from ivr.ami import AmiClient  # noqa: E402
from ivr.caller.client import CallReport, Phones, place_call  # noqa: E402
from ivr.caller.plan import CallPlan, PhoneBook  # noqa: E402
from ivr.pbx.instance import AMI_USER, PbxInstance  # noqa: E402
from ivr.pbx.prompts import synthesize  # noqa: E402
from ivr.pbx.root import ensure_root  # noqa: E402
from ivr.secure import keys  # noqa: E402
from ivr.sipp import CallerSpec, PhoneSpec, run_caller, start_phone  # noqa: E402

EXAMPLE_DID = "+16175550100"  # sunny-pediatrics


class PortPlan:
    """Ports for one test process, disjoint from other xdist workers and from the kernel's
    ephemeral range, so parallel workers never race for a port between choosing and
    binding it. Worker N owns 15000+200N .. 15000+200N+199 and RTP 21000+1000N .. +999."""

    def __init__(self, worker: int | None = None) -> None:
        if worker is None:
            name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
            worker = int(name[2:]) if name[2:].isdigit() else 0
            # Another test run on the same machine can hold the first workers' ports.
            worker += int(os.environ.get("IVR_TEST_WORKER_OFFSET", "0") or 0)
        self.worker = worker
        self.base = 15000 + 200 * (worker % 25)
        self.rtp = (21000 + 1000 * (worker % 8), 21000 + 1000 * (worker % 8) + 999)
        self._next = 20
        self._lock = threading.Lock()

    def fixed(self, n: int) -> int:
        """The n-th control port (0-19): SIP, AMI, AGI, web, gateway, ..."""
        return self.base + n

    def next(self, width: int = 1) -> int:
        """A port (or `width` consecutive ports) free right now, cycling in our range."""
        with self._lock:
            for _ in range(200):
                port = self.base + self._next
                self._next = 20 + (self._next - 20 + width) % (180 - width)
                if all(_is_free(p) for p in range(port, port + width)):
                    return port
        raise RuntimeError("no free test port left in this worker's range")


def _is_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP right now (outside tests' fixed ranges)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if _is_free(port):
            return port


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class EventRecorder:
    """Collects AMI events in a background thread so sync tests can assert on them."""

    def __init__(self, settings: config.Settings, secret: str) -> None:
        self.settings, self.secret = settings, secret
        self.events: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> EventRecorder:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("AMI event recorder could not connect")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        client = AmiClient(self.settings.ami_host, self.settings.ami_port, AMI_USER,
                           self.secret)
        client.subscribe("*", self._record)
        await client.connect()
        self._ready.set()
        await self._stop.wait()
        await client.close()

    def _record(self, event: Any) -> None:
        flat = {k: (v[-1] if isinstance(v, list) else v) for k, v in dict(event).items()}
        with self._lock:
            self.events.append(flat)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def user_events(self, uniqueid: str | None = None) -> list[dict[str, str]]:
        with self._lock:
            return [e for e in self.events if e.get("Event") == "UserEvent"
                    and (uniqueid is None or e.get("Uniqueid") == uniqueid)]

    def path(self, uniqueid: str) -> list[str]:
        """The UserEvent names one call emitted, in order."""
        return [e.get("UserEvent", "") for e in self.user_events(uniqueid)]

    def last_inbound_uniqueid(self, after: int = 0) -> str | None:
        with self._lock:
            for e in reversed(self.events[after:]):
                if e.get("UserEvent") == "IvrInbound":
                    return e.get("Uniqueid")
        return None

    def mark(self) -> int:
        with self._lock:
            return len(self.events)


@dataclass
class Stack:
    """One isolated PBX instance plus a controller process, on free loopback ports."""

    name: str
    workdir: Path
    settings: config.Settings = field(init=False)
    pbx: PbxInstance = field(init=False)
    controller: subprocess.Popen[bytes] | None = None
    recorder: EventRecorder | None = None
    _controller_log: Any = None
    # Extra IVR_* variables for the controller process (e.g. IVR_ONCALL_MINUTE_SECONDS).
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ports = _worker_ports()
        self.settings = config.Settings(
            instance=self.name, sip_port=self.ports.fixed(0), ami_port=self.ports.fixed(1),
            agi_port=self.ports.fixed(2), web_port=self.ports.fixed(3),
            gateway_port=self.ports.fixed(4), rtp_start=self.ports.rtp[0],
            rtp_end=self.ports.rtp[1],
            data_dir=self.workdir / "data", rules_path=REPO / "routing_rules",
            cache_dir=config.Settings().cache_dir,
            # The tests' own keyring (conftest), else one beside the data: never the
            # user's. The controller makes it on its first start.
            key_file=Path(os.environ.get("IVR_KEY_FILE") or self.workdir / "keys.json"),
        ).validate()
        keys.use(keys.KeySource(self.settings))  # this process reads what the stack sealed
        self.pbx = PbxInstance(self.settings, ensure_root(self.settings.cache_dir))

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **config.to_env(self.settings), **self.extra_env}

    @property
    def target(self) -> str:
        return f"{self.settings.sip_host}:{self.settings.sip_port}"

    # --- PBX --------------------------------------------------------------------------
    def start_pbx(self) -> None:
        self.pbx.start()
        self.recorder = EventRecorder(self.settings, self.pbx.ami_secret).start()

    def stop(self) -> None:
        self.stop_controller()
        if self.recorder:
            self.recorder.stop()
        self.pbx.stop()

    def channels(self) -> int:
        out = self.pbx.cli("core show channels count")
        for line in out.splitlines():
            if "active channel" in line:
                return int(line.split()[0])
        return 0

    def hangup_all(self) -> None:
        self.pbx.cli("channel request hangup all")

    # --- controller -------------------------------------------------------------------
    def start_controller(self, timeout: float = 30) -> None:
        if self._controller_log is not None:
            self._controller_log.close()
        log = self._controller_log = open(self.workdir / "controller.log", "ab")
        self.controller = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "support" / "controller.py"), "serve",
             "--log-level", "DEBUG"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        wait_for(self._controller_ready, timeout, "the controller to listen")

    def _controller_ready(self) -> bool:
        if self.controller is None or self.controller.poll() is not None:
            raise AssertionError("controller exited; see " + str(self.workdir / "controller.log"))
        text = (self.workdir / "controller.log").read_text(errors="replace")
        return "controller ready" in text.split("controller stopping")[-1]

    def kill_controller(self, sig: int = signal.SIGKILL) -> None:
        if self.controller and self.controller.poll() is None:
            self.controller.send_signal(sig)
            self.controller.wait(20)

    def stop_controller(self) -> None:
        self.kill_controller(signal.SIGTERM)
        self.controller = None
        if self._controller_log is not None:
            self._controller_log.close()
            self._controller_log = None

    def controller_log(self) -> str:
        path = self.workdir / "controller.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- calls ------------------------------------------------------------------------
    def call(self, spec: CallerSpec, number: str = EXAMPLE_DID,
             timeout_s: int = 90) -> subprocess.CompletedProcess[str]:
        return run_caller(spec, self.target, number, timeout_s=timeout_s,
                          local_port=self.ports.next(), media_port=self.ports.next(4))

    def call_async(self, spec: CallerSpec, number: str = EXAMPLE_DID,
                   timeout_s: int = 90) -> BackgroundCall:
        return BackgroundCall(self, spec, number, timeout_s)

    def place(self, plan: CallPlan, number: str = EXAMPLE_DID, workdir: Path | None = None,
              timeout_s: float = 300) -> CallReport:
        """One reacting caller (ivr.caller) through the PBX; its files in `workdir`."""
        folder = workdir or Path(tempfile.mkdtemp(prefix="call-", dir=self.workdir))
        return place_call(plan, self.target, number, workdir=folder, port=self.ports.next(),
                          media_port=self.ports.next(4), media_ports=4, timeout_s=timeout_s)

    def phones(self, book: PhoneBook, workdir: Path | None = None) -> Phones:
        """Reacting phones on the clinician gateway, answering by dialled number."""
        folder = workdir or Path(tempfile.mkdtemp(prefix="phones-", dir=self.workdir))
        return Phones(book, self.settings.gateway_port, folder,
                      media_port=self.ports.next(40), media_ports=40)

    def voice(self, text: str) -> str:
        """`text` as speech a caller can Say (8 kHz WAV, made once)."""
        return str(synthesize(text, self.workdir / "voices"))

    def phone(self, spec: PhoneSpec, calls: int = 1) -> subprocess.Popen[str]:
        return start_phone(spec, self.settings.gateway_port, calls=calls,
                           workdir=self.workdir, media_port=self.ports.next(4))

    def calls(self) -> list[dict[str, Any]]:
        out = subprocess.run([sys.executable, "-m", "ivr.cli", "calls", "list", "--json"],
                             env=self.env, capture_output=True, text=True, cwd=REPO,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        import json

        return json.loads(out.stdout)

    def show(self, ident: str) -> dict[str, Any]:
        import json

        out = subprocess.run([sys.executable, "-m", "ivr.cli", "calls", "show", ident,
                              "--json"], env=self.env, capture_output=True, text=True,
                             cwd=REPO, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def call_by_uniqueid(self, uniqueid: str) -> dict[str, Any] | None:
        return next((c for c in self.calls() if c["uniqueid"] == uniqueid), None)


class BackgroundCall:
    """A SIPp call running in a thread, so the test can act while it is in progress."""

    def __init__(self, stack: Stack, spec: CallerSpec, number: str, timeout_s: int) -> None:
        self.result: subprocess.CompletedProcess[str] | None = None
        self._thread = threading.Thread(
            target=lambda: setattr(self, "result", stack.call(spec, number, timeout_s)),
            daemon=True)
        self._thread.start()

    def join(self, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        self._thread.join(timeout)
        assert self.result is not None, "the SIPp caller did not finish"
        return self.result


# --- scripted callers (the call-flow e2e tests) ------------------------------------------

def timed_caller_scenario(spec: CallerSpec, timeline: list[tuple[int, str]],
                          end_ms: int, hangup: bool = False,
                          raw_headers: tuple[str, ...] = ()) -> str:
    """A caller that presses keys at given times (ms after the answer), then waits for the
    PBX's BYE until `end_ms` (or hangs up itself at `end_ms` when `hangup`).

    Built from the same pieces as ivr.sipp.caller_scenario, with explicit pauses so a test
    can place each key inside the prompt it answers. `raw_headers` replace same-named
    INVITE headers (or are added) byte for byte: CallerSpec's values are XML-escaped
    inside CDATA, so '<', '&' or quotes would reach the PBX as entities, not as
    themselves."""
    from ivr import sipp

    base = sipp.caller_scenario(CallerSpec(
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
        parts.append(sipp._info(key))
    rest = max(end_ms - now, 0)
    if hangup:
        parts.append(f'  <pause milliseconds="{rest}"/>\n')
        parts.append(sipp._bye_uac())
    else:
        parts.append(f'  <recv request="BYE" timeout="{max(rest, 1000)}" ontimeout="hangup"/>\n')
        parts.append(sipp._ok_to_bye())
        parts.append('  <nop next="end"/>\n  <label id="hangup"/>\n')
        parts.append(sipp._bye_uac())
        parts.append('  <label id="end"/>\n')
    parts.append("</scenario>\n")
    return "".join(parts)


def run_scenario(xml: str, target: str, number: str, workdir: Path,
                 timeout_s: int = 300) -> subprocess.CompletedProcess[str]:
    """Run one SIPp scenario on ports from this worker's own range (see run_scenario_in)."""
    return _run_sipp(xml, target, number, workdir, timeout_s, _worker_ports())


_PORTS: list[PortPlan] = []


def _worker_ports() -> PortPlan:
    """This process's port plan (one per xdist worker), made on first use."""
    if not _PORTS:
        _PORTS.append(PortPlan())
    return _PORTS[0]


def _run_sipp(xml: str | bytes, target: str, number: str, workdir: Path, timeout_s: int,
              ports: PortPlan) -> subprocess.CompletedProcess[str]:
    from ivr.sipp import sipp_binary

    workdir.mkdir(parents=True, exist_ok=True)
    scenario = workdir / "caller.xml"
    # bytes: a scenario carrying bytes that are not UTF-8 (a caller name that is invalid)
    if isinstance(xml, bytes):
        scenario.write_bytes(xml)
    else:
        scenario.write_text(xml)
    argv = [sipp_binary(), target, "-sf", str(scenario), "-s", number, "-m", "1",
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
    from ivr.sipp import speech_pcap

    # speech_pcap needs some text; a single pause character speaks as (near) silence, and
    # the long lead keeps the whole stream silent for `seconds`.
    return speech_pcap(".", dest, lead_silence_s=seconds, tail_silence_s=0)


def run_scenario_in(stack: Stack, xml: str | bytes, number: str, workdir: Path,
                    timeout_s: int = 300) -> subprocess.CompletedProcess[str]:
    """run_scenario on ports from the stack's own range (SIP, and 4 media ports: SIPp
    binds audio and video RTP and RTCP next to each other), free of other workers' calls
    and of the kernel's ephemeral ports."""
    return _run_sipp(xml, stack.target, number, workdir, timeout_s, stack.ports)


def drop_pending_callbacks(stack: Stack) -> int:
    """End a module's pending call-backs, so later tests' controllers do not ring them."""
    from sqlalchemy import update

    from ivr.db.engine import Database
    from ivr.db.models import CB_NOT_ACKNOWLEDGED, CB_PENDING, OncallCallback

    async def run() -> int:
        db = Database(stack.settings.database_url)
        try:
            async with db.session() as s:
                res = await s.execute(update(OncallCallback)
                                      .where(OncallCallback.status == CB_PENDING)
                                      .values(status=CB_NOT_ACKNOWLEDGED))
                return int(res.rowcount or 0)  # type: ignore[attr-defined]
        finally:
            await db.close()

    return asyncio.run(run())
