"""One isolated Asterisk instance and the controller as a real process, on this test
process's own ports; callers and phones placed through it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr import config
from ivr.caller.client import CallReport, Phones, RunningCall, start_call
from ivr.caller.plan import CallPlan, PhoneBook
from ivr.pbx.instance import PbxInstance
from ivr.pbx.prompts import synthesize
from ivr.pbx.root import ensure_root
from ivr.secure import keys
from ivr.transcribe.registry import OFF
from support import cli as ivr_cli
from support.polling import exit_or_dump, wait_for
from support.ports import worker_ports
from support.recorder import EventRecorder
from support.sipp import CallerSpec, PhoneSpec, run_caller, start_phone

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DID = "+16175550100"  # sunny-pediatrics

#: How long a stopped controller may take to exit before the test takes it for hung (and
#: asks for its threads' stacks): an orderly stop drains calls for 5 s, ends the
#: transcription workers and closes the database; beside two CPU hogs, with a clinician's
#: leg still in its screening, that took just over 20 s (run h23, exit code 0).
STOP_BOUND_S = 60.0


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
    # Settings that replace the suite's own below (the benchmarks: the product's bounds).
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ports = worker_ports()
        self.settings = config.Settings(
            instance=self.name, sip_port=self.ports.fixed(0), ami_port=self.ports.fixed(1),
            agi_port=self.ports.fixed(2), web_port=self.ports.fixed(3),
            gateway_port=self.ports.fixed(4), rtp_start=self.ports.rtp[0],
            rtp_end=self.ports.rtp[1],
            data_dir=self.workdir / "data", rules_path=REPO / "routing_rules",
            cache_dir=config.Settings().cache_dir,
            # No speech model in every test controller (its load and each recording's
            # transcript cost CPU the other calls need): tests/e2e/test_transcripts.py
            # and the transcribe tests turn it on where transcripts are what is tested.
            transcribe_engine=OFF,
            # The suite's machine is starved by design (make test beside a CPU hog): a
            # controller late by seconds is slow there, not overloaded. The overload
            # tests (test_overload_intake, test_admission) set their own bounds.
            controller_answer_seconds=10, admission_max_lag_ms=0,
            # The tests' own keyring (conftest), else one beside the data: never the
            # user's. The controller makes it on its first start.
            key_file=Path(os.environ.get("IVR_KEY_FILE") or self.workdir / "keys.json"),
        ).with_overrides(**self.overrides).validate()
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
        """Stop the controller, then the PBX, even when the controller would not stop (a
        PBX left running keeps this worker's ports, and every later file here fails)."""
        try:
            self.stop_controller()
        finally:
            if self.controller is not None and self.controller.poll() is None:
                self.controller.kill()
                self.controller.wait()
            if self.recorder:
                self.recorder.stop()
            self.pbx.stop()

    def remove(self) -> None:
        """Stop everything; remove the instance and (unless IVR_KEEP_TEST_DIRS=1) the
        work folder."""
        self.stop()
        shutil.rmtree(self.pbx.host_dir, ignore_errors=True)
        if os.environ.get("IVR_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def channels(self) -> int:
        out = self.pbx.cli("core show channels count")
        for line in out.splitlines():
            if "active channel" in line:
                return int(line.split()[0])
        return 0

    def hangup_all(self) -> None:
        self.pbx.cli("channel request hangup all")

    # --- controller -------------------------------------------------------------------
    def start_controller(self, timeout: float = 180) -> None:
        if self._controller_log is not None:
            self._controller_log.close()
        log = self._controller_log = open(self.workdir / "controller.log", "ab")
        self.controller = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "support" / "controller.py"), "serve",
             "--log-level", "DEBUG"],
            env={**self.env, "PYTHONFAULTHANDLER": "1"}, stdout=log, stderr=subprocess.STDOUT,
            cwd=REPO)
        wait_for(self._controller_ready, timeout, "the controller to listen")

    def _controller_ready(self) -> bool:
        if self.controller is None or self.controller.poll() is not None:
            raise AssertionError("controller exited; see " + str(self.workdir / "controller.log"))
        text = (self.workdir / "controller.log").read_text(errors="replace")
        return "controller ready" in text.split("controller stopping")[-1]

    def kill_controller(self, sig: int = signal.SIGKILL) -> None:
        if self.controller and self.controller.poll() is None:
            self.controller.send_signal(sig)
            exit_or_dump(self.controller, self.workdir / "controller.log", STOP_BOUND_S,
                         f"the controller (signal {sig})")

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

    def start(self, plan: CallPlan, number: str = EXAMPLE_DID, workdir: Path | None = None,
              timeout_s: float = 300) -> RunningCall:
        """A reacting caller (ivr.caller) dialling through the PBX, in the background."""
        folder = workdir or Path(tempfile.mkdtemp(prefix="call-", dir=self.workdir))
        return start_call(plan, self.target, number, workdir=folder, port=self.ports.next(),
                          media_port=self.ports.next(4), media_ports=4, timeout_s=timeout_s)

    def place(self, plan: CallPlan, number: str = EXAMPLE_DID, workdir: Path | None = None,
              timeout_s: float = 300) -> CallReport:
        """One reacting caller through the PBX, to the end of its call."""
        return self.start(plan, number, workdir, timeout_s).wait()

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

    def cli(self, *args: str, timeout: float = 60) -> str:
        """`ivr ARGS` against this stack, in this process (support/cli.py); its standard
        output (a failure fails the test)."""
        out = ivr_cli.run(args, self.env, timeout)
        assert out.code == 0, f"ivr {' '.join(args[:2])}: {out.stderr[-3000:]}"
        return out.stdout

    def calls(self) -> list[dict[str, Any]]:
        return json.loads(self.cli("calls", "list", "--json"))

    def show(self, ident: str) -> dict[str, Any]:
        return json.loads(self.cli("calls", "show", ident, "--json"))

    def call_by_uniqueid(self, uniqueid: str) -> dict[str, Any] | None:
        return next((c for c in self.calls() if c["uniqueid"] == uniqueid), None)


@contextmanager
def own_stack(prefix: str, **overrides: Any) -> Iterator[Stack]:
    """A Stack (not started) on control ports of its own, so the suite's stack may run
    beside it, with these settings `overrides`; stopped and removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"ivr-{prefix}-test-"))
    s = Stack(name=f"{prefix}{os.getpid()}", workdir=workdir)
    p = s.ports
    s.settings = s.settings.with_overrides(
        sip_port=p.next(), ami_port=p.next(), agi_port=p.next(), web_port=p.next(),
        gateway_port=p.next(), **overrides)
    s.pbx = PbxInstance(s.settings, s.pbx.root)
    try:
        yield s
    finally:
        s.remove()


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
