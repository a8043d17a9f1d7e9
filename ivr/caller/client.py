"""Run the agent in a child process: place a call, or keep a bank of phones answering.

A child keeps pjsua2 (one library per process, native threads, asserts that end the
process) away from the caller's own process: a test or the CLI only reads JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.caller.plan import CallPlan, PhoneBook


def available() -> bool:
    """pjsua2 is installed (the `demo` extra; make run and make test install it)."""
    try:
        import pjsua2  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class CallReport:
    """How a call went: ok when every step happened and the call then ended."""

    ok: bool
    error: str | None
    sip_status: int | None
    ended_by: str | None  # "far" (the service hung up) or "us"
    events: list[dict[str, Any]] = field(default_factory=list)
    heard: Path | None = None  # what the caller heard, as a WAV file
    log: str = ""

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def explain(self) -> str:
        """For an assertion message: the error, the steps taken, the agent's last words."""
        steps = ", ".join(f"{e['t']:.1f}s {e['event']}" for e in self.events)
        return f"{self.error}; events: {steps}; heard: {self.heard}\n{self.log[-1500:]}"


def _argv(mode: str, workdir: Path, port: int, media_port: int,
          media_ports: int) -> list[str]:
    return [sys.executable, "-m", "ivr.caller", mode, "--workdir", str(workdir),
            "--port", str(port), "--media-port", str(media_port),
            "--media-ports", str(media_ports)]


def _read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


class RunningCall:
    """A call in progress in its child process: follow its events, then wait for it."""

    def __init__(self, plan: CallPlan, target: str, number: str, workdir: Path, *,
                 port: int, media_port: int, media_ports: int, timeout_s: float) -> None:
        self.workdir = workdir
        self.timeout_s = timeout_s
        workdir.mkdir(parents=True, exist_ok=True)
        plan_file, self.report_file = workdir / "plan.json", workdir / "report.json"
        # 0600: a plan with an account holds its password.
        plan_file.unlink(missing_ok=True)
        with os.fdopen(os.open(plan_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                       "w") as out:
            out.write(json.dumps(plan.to_json()))
        for stale in (self.report_file, workdir / "events.jsonl"):
            stale.unlink(missing_ok=True)
        argv = _argv("call", workdir, port, media_port, media_ports) + [
            "--plan", str(plan_file), "--report", str(self.report_file), "--target", target,
            "--number", number, "--timeout", str(timeout_s)]
        self._log = (workdir / "agent.log").open("w")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def events(self) -> list[dict[str, Any]]:
        """What the caller did and heard so far."""
        return _read_events(self.workdir / "events.jsonl")

    def wait(self) -> CallReport:
        try:
            code = self.proc.wait(self.timeout_s + 60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._log.close()
        text = (self.workdir / "agent.log").read_text(errors="replace")
        if not self.report_file.exists():
            return CallReport(False, f"the caller exited {code} without a report", None, None,
                              self.events(), log=text)
        data = json.loads(self.report_file.read_text())
        return CallReport(bool(data["ok"]), data["error"], data["sip_status"],
                          data["ended_by"], data["events"], Path(data["heard"]), text)


def start_call(plan: CallPlan, target: str, number: str, *, workdir: Path | None = None,
               port: int = 0, media_port: int = 0, media_ports: int = 40,
               timeout_s: float = 300) -> RunningCall:
    """Dial sip:number@target in a child process and run the plan there."""
    folder = workdir or Path(tempfile.mkdtemp(prefix="ivr-call-"))
    return RunningCall(plan, target, number, folder, port=port, media_port=media_port,
                       media_ports=media_ports, timeout_s=timeout_s)


def place_call(plan: CallPlan, target: str, number: str, *, workdir: Path | None = None,
               port: int = 0, media_port: int = 0, media_ports: int = 40,
               timeout_s: float = 300) -> CallReport:
    """Dial sip:number@target, run the plan, and wait for the call to end."""
    return start_call(plan, target, number, workdir=workdir, port=port,
                      media_port=media_port, media_ports=media_ports,
                      timeout_s=timeout_s).wait()


class Phones:
    """A bank of phones on 127.0.0.1:port, answering per dialled number until stopped.

    `agents` processes answer behind the port, 4 calls at once each (relay.py says why);
    `media_ports` are shared out between them (2 a call)."""

    def __init__(self, book: PhoneBook, port: int, workdir: Path, *, media_port: int = 0,
                 media_ports: int = 40, agents: int = 4, ready_s: float = 60) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.events_file = workdir / "phones.jsonl"
        self.events_file.unlink(missing_ok=True)
        (workdir / "book.json").write_text(json.dumps(book.to_json()))
        argv = _argv("phones", workdir, port, media_port, media_ports) + [
            "--book", str(workdir / "book.json"), "--agents", str(agents)]
        self._log = (workdir / "phones.log").open("w")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + ready_s
        while not any(e["event"] == "ready" for e in self.events()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the phones did not start; see "
                                   f"{workdir / 'phones.log'}")
            time.sleep(0.05)

    def events(self, number: str | None = None) -> list[dict[str, Any]]:
        """What the phones did so far (for one dialled number when given)."""
        items = _read_events(self.events_file)
        if number is None:
            return items
        return [e for e in items if e["call"].split("#")[0] == number]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
