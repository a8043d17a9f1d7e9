"""What the benchmarks share: percentiles, SIPp runs and their counts, the AMI event
listener, CPU and memory sampling, a port slot clear of the test workers, another git
ref's tree."""

from __future__ import annotations

import math
import os
import re
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


_SIPP_COUNT = re.compile(r"^\s*(Successful|Failed) call\s*\|\s*\d+\s*\|\s*(\d+)", re.M)


def sipp_counts(stdout: str) -> tuple[int, int]:
    found = {kind: int(n) for kind, n in _SIPP_COUNT.findall(stdout)}
    return found.get("Successful", 0), found.get("Failed", 0)


def run_sipp(xml: str, target: str, number: str, workdir: Path, *, calls: int,
             spread_s: float, local_port: int, media_port: int,
             timeout_s: int) -> subprocess.CompletedProcess[str]:
    """`calls` SIPp callers playing one scenario, all started within `spread_s`."""
    from support.sipp import sipp_binary

    workdir.mkdir(parents=True, exist_ok=True)
    scenario = workdir / "caller.xml"
    scenario.write_text(xml)
    argv = [sipp_binary(), target, "-sf", str(scenario), "-s", number, "-m", str(calls),
            "-l", str(calls), "-r", str(calls), "-rp", f"{int(spread_s * 1000)}ms",
            "-i", "127.0.0.1",
            "-p", str(local_port), "-mp", str(media_port), "-timeout", f"{timeout_s}s",
            "-timeout_error", "-nostdin", "-trace_err",
            "-error_file", str(workdir / "errors.log")]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 30,
                              stdin=subprocess.DEVNULL, cwd=workdir)
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        return subprocess.CompletedProcess(argv, -9, str(exc.stdout or ""), "timed out")


class UserEvents:
    """The instance's AMI UserEvents only (Events: user keeps the stream small), each with
    Asterisk's own Timestamp. A raw socket: the AmiClient would subscribe to everything.
    `classes` and `kinds` widen it (bench_bridge.py also keeps call and DTMF events)."""

    def __init__(self, port: int, user: str, secret: str, classes: str = "user",
                 kinds: frozenset[str] = frozenset({"UserEvent"})) -> None:
        self.events: list[dict[str, str]] = []
        self._kinds = kinds
        self._lock = threading.Lock()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._sock.sendall((f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n"
                            f"Events: {classes}\r\n\r\n").encode())
        self._logged_in = threading.Event()
        self._login_ok = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._logged_in.wait(10) or not self._login_ok:
            self.close()
            raise RuntimeError("AMI login for the bench's event listener failed")

    def _run(self) -> None:
        self._sock.settimeout(None)
        buf = b""
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                block, buf = buf.split(b"\r\n\r\n", 1)
                msg: dict[str, str] = {}
                for line in block.decode(errors="replace").split("\r\n"):
                    key, sep, value = line.partition(": ")
                    if sep:
                        msg.setdefault(key, value)
                if "Response" in msg and not self._logged_in.is_set():
                    self._login_ok = msg["Response"] == "Success"
                    self._logged_in.set()
                elif msg.get("Event") in self._kinds:
                    with self._lock:
                        self.events.append(msg)

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def since(self, mark: int) -> list[dict[str, str]]:
        with self._lock:
            return list(self.events[mark:])

    def count(self, mark: int, name: str) -> int:
        return sum(1 for e in self.since(mark) if e.get("UserEvent") == name)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(5)


def stamps(events: list[dict[str, str]], name: str) -> dict[str, float]:
    """Uniqueid -> Asterisk's timestamp of the first UserEvent `name` on that channel."""
    out: dict[str, float] = {}
    for e in events:
        if e.get("UserEvent") == name and e.get("Uniqueid") and e["Uniqueid"] not in out:
            try:
                out[e["Uniqueid"]] = float(e["Timestamp"])
            except (KeyError, ValueError):
                continue
    return out


class Sampler:
    """Peak RSS of named processes, sampled in a thread while a level runs."""

    def __init__(self, procs: dict[str, psutil.Process], every: float = 0.2) -> None:
        self.procs, self.every = procs, every
        self.start_rss = {name: self._rss(p) for name, p in procs.items()}
        self.peak_rss = dict(self.start_rss)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _rss(proc: psutil.Process) -> int:
        try:
            return int(proc.memory_info().rss)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for name, proc in self.procs.items():
                self.peak_rss[name] = max(self.peak_rss[name], self._rss(proc))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def idle_cpu_pct(proc: psutil.Process, seconds: float = 1.5) -> float:
    """% of one core a process uses with no call up (counted in every level's CPU)."""
    before = cpu_s(proc)
    time.sleep(seconds)
    return (cpu_s(proc) - before) * 100 / seconds


def wide_listener(pbx: Any, port: int, user: str, classes: str, kinds: frozenset[str],
                  listener: type[UserEvents] = UserEvents) -> UserEvents:
    """An AMI user of the bench's own on this throwaway instance (read-only, loopback),
    reading more classes than the controller's user may, and a listener logged in as it."""
    secret = secrets.token_hex(16)
    with open(pbx.host_dir / "etc" / "manager.conf", "a") as handle:
        handle.write(f"\n; Appended by tests/perf (benchlib) to this instance only.\n"
                     f"[{user}]\nsecret = {secret}\n"
                     "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.0/255.0.0.0\n"
                     f"read = {classes}\nwrite = call\n")
    pbx.cli("manager reload")
    return listener(port, user, secret, classes=classes, kinds=kinds)


def use_port_slot(slots: tuple[int, ...]) -> int:
    """Point the harness's PortPlan at the first of `slots` whose ports are free (via
    PYTEST_XDIST_WORKER), so a bench keeps clear of a test run on the same machine."""
    from harness import PortPlan, is_free

    offset = int(os.environ.get("IVR_TEST_WORKER_OFFSET", "0") or 0)
    for slot in slots:
        # PortPlan adds the offset to the worker number and keeps it modulo 25.
        worker = slot + 25 * math.ceil(max(offset - slot, 0) / 25)
        plan = PortPlan(worker)
        if all(is_free(plan.fixed(n)) for n in range(5)):
            os.environ["PYTEST_XDIST_WORKER"] = f"gw{worker - offset}"
            return slot
    raise RuntimeError("no free port slot for the bench; is another bench running?")


def export_tree(ref: str, dest: Path) -> Path:
    """The files of `ref` (git archive): its controller code, run from there."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest
