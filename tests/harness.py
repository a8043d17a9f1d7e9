"""Test harness: an isolated Asterisk instance, the controller as a real process, SIPp
callers and phones, and an AMI event recorder. Shared by the e2e tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ivr import config  # noqa: E402
from ivr.ami import AmiClient  # noqa: E402
from ivr.pbx.instance import AMI_USER, PbxInstance  # noqa: E402
from ivr.pbx.root import ensure_root  # noqa: E402
from ivr.sipp import CallerSpec, PhoneSpec, run_caller, start_phone  # noqa: E402

EXAMPLE_DID = "+16175550100"  # sunny-pediatrics


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP right now."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
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

    def start(self) -> "EventRecorder":
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

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.settings = config.Settings(
            instance=self.name, sip_port=free_port(socket.SOCK_DGRAM), ami_port=free_port(),
            agi_port=free_port(), web_port=free_port(),
            gateway_port=free_port(socket.SOCK_DGRAM),
            data_dir=self.workdir / "data", rules_path=REPO / "routing_rules",
            cache_dir=config.Settings().cache_dir).validate()
        self.pbx = PbxInstance(self.settings, ensure_root(self.settings.cache_dir))

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, **config.to_env(self.settings))

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
            [sys.executable, "-m", "ivr.cli", "serve", "--log-level", "DEBUG"],
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
        return run_caller(spec, self.target, number, timeout_s=timeout_s)

    def call_async(self, spec: CallerSpec, number: str = EXAMPLE_DID,
                   timeout_s: int = 90) -> "BackgroundCall":
        return BackgroundCall(self, spec, number, timeout_s)

    def phone(self, spec: PhoneSpec, calls: int = 1) -> subprocess.Popen[str]:
        return start_phone(spec, self.settings.gateway_port, calls=calls,
                           workdir=self.workdir)

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
