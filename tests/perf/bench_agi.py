"""Benchmark (a script, not a test): the bench flow through a real Asterisk, FastAGI vs pyst2.

Run: .venv/bin/python -m tests.perf.bench_agi [--quick] [--levels 1,5,10,20,40,80]
     (`make bench` runs it; about 3.5 minutes, --quick about one). Prints numbers only;
     asserts nothing about time.

SIPp callers dial into a throwaway Asterisk instance on free loopback ports. Each call
runs the short fixed flow of tests/perf/bench_flow.py (answer, read a variable, set a variable,
play a short prompt, read one key, set the sentinel), either
- over FastAGI, served by a process running the controller's own AgiServer and the
  production `bench` route (from ivr.flows.routes), or
- as the baseline: the same flow as a pyst2 process-per-call AGI script
  (tests/perf/bench_pyst2_agi.py), which Asterisk forks once per call inside its root.
Both variants run at each concurrency level, one after the other, in the same run.
A call lasts about 2.3 s whatever serves it (Answer() waiting 0.5 s for media SIPp does not
send, a 0.8 s prompt, the key, a 0.2 s Wait()), so calls/s grows with concurrency until
a side runs out of CPU: that knee is what the levels look for.

Per level and variant: calls/s, completed and failed calls, AGI command round trip p50/p99
(timed inside the flow around each command; GET VARIABLE and SET VARIABLE only, since
STREAM FILE and WAIT FOR DIGIT last as long as the audio and the caller), the delay from
the dialplan's AGI() to the flow's first command (process start vs socket connect), and
CPU per call: the flow's side (the FastAGI process; for pyst2 the forked scripts, read
from Asterisk's reaped-children CPU times) and Asterisk's own.

The bench dialplan exists only in this instance: after the normal render, two exact
extensions are appended to the rendered [ivr-inbound] (Asterisk merges a repeated context;
an exact extension wins over the `_X.` patterns) leading to a bench-only [ivr-bench]
context. Production instances never contain it; no template or renderer knows of it.

Round trips are timed without touching the production code: the FastAGI process wraps
each call's `AgiChannel.command` in its own route wrapper before handing the channel to
the production bench handler; the pyst2 script wraps `AGI.execute` the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ivr import contract
from tests.perf.benchlib import REPO, percentile, sipp_counts

HERE = Path(__file__).resolve().parent

FASTAGI, PYST2 = "fastagi", "pyst2"
NUMBERS = {FASTAGI: "benchfastagi", PYST2: "benchpyst2"}
ROUTE_BENCH = "bench"  # the benchmark's own route, on its own AgiServer
BENCH_PROMPT_TEXT = "Hello."
INSTANT = ("GET VARIABLE", "SET VARIABLE")  # commands whose reply needs no media or caller
DEFAULT_LEVELS = (1, 5, 10, 20, 40, 80)
QUICK_LEVELS = (1, 10, 40)


# --- the FastAGI side (runs in its own process: `bench_agi.py --serve-agi ...`) ---------

def serve_agi(port: int, prompt: str, dump: Path) -> int:
    """The controller's AgiServer with only the production `bench` route, timed per command.

    SIGUSR1 writes the records collected so far to `dump` (atomically) and clears them;
    SIGTERM stops the server.
    """
    import logging

    from ivr.agi.server import AgiServer
    from tests.perf.bench_flow import handle as bench_flow

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bench_handler = functools.partial(bench_flow, prompt=prompt)
    records: list[dict[str, Any]] = []

    async def timed_bench(channel: Any) -> None:
        record: dict[str, Any] = {"uid": channel.uniqueid, "ok": False, "err": None,
                                  "cmds": [], "stamp": None, "key": None,
                                  "t_start": None, "t_end": None}
        inner = channel.command

        async def command(name: str, *args: object, **kwargs: Any) -> Any:
            started = time.time()
            if record["t_start"] is None:
                record["t_start"] = started
            t0 = time.perf_counter()
            try:
                reply = await inner(name, *args, **kwargs)
            finally:
                record["cmds"].append([name, (time.perf_counter() - t0) * 1000.0])
            if name == "GET VARIABLE":
                record["stamp"] = reply.data
            elif name == "WAIT FOR DIGIT":
                record["key"] = chr(reply.result_int) if reply.result_int > 0 else ""
            return reply

        # An instance attribute shadows the method: the production handler and the
        # channel's own helpers (answer, get_variable, ...) all go through it.
        channel.command = command
        try:
            await bench_handler(channel)
            record["ok"] = True
        except Exception as exc:  # counted as a failed call, never raised into the server
            record["err"] = type(exc).__name__
        finally:
            record["t_end"] = time.time()
            records.append(record)

    def write_dump() -> None:
        part = dump.with_suffix(".part")
        part.write_text(json.dumps(records))
        part.replace(dump)
        records.clear()

    async def main() -> None:
        server = AgiServer({ROUTE_BENCH: timed_bench}, "127.0.0.1", port)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, write_dump)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        print("ready", flush=True)
        await stop.wait()
        await server.stop(drain_seconds=2)

    asyncio.run(main())
    return 0


class FastAgiProcess:
    """The FastAGI bench server as a child process; its records come back on request."""

    def __init__(self, port: int, prompt: str, workdir: Path) -> None:
        self.dump = workdir / "fastagi-records.json"
        self.log = open(workdir / "fastagi.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.perf.bench_agi", "--serve-agi", str(port),
             "--prompt", prompt, "--dump", str(self.dump)],
            stdout=subprocess.PIPE, stderr=self.log, cwd=REPO, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        if b"ready" not in line:
            self.stop()
            raise RuntimeError(f"FastAGI bench server did not start; see {workdir}/fastagi.log")
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def take_records(self, timeout: float = 10) -> list[dict[str, Any]]:
        self.dump.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.dump.exists():
                records: list[dict[str, Any]] = json.loads(self.dump.read_text())
                return records
            time.sleep(0.05)
        raise RuntimeError("FastAGI bench server did not hand over its records")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


# --- the pyst2 side (a script Asterisk forks inside its root) ------------------------

class Pyst2Script:
    """bench_pyst2_agi.py with pyst2 and six copied into the instance folder in the root."""

    def __init__(self, pbx: Any) -> None:
        import asterisk  # pyst2, from the venv (test extra)
        import six

        self.folder = pbx.host_dir / "bench"
        lib = self.folder / "pylib"
        shutil.rmtree(self.folder, ignore_errors=True)
        lib.mkdir(parents=True)
        shutil.copytree(Path(asterisk.__file__).parent, lib / "asterisk",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(six.__file__, lib / "six.py")
        script = self.folder / "bench_pyst2_agi.py"
        shutil.copy(HERE / "bench_pyst2_agi.py", script)
        # Asterisk runs the script as the PBX user, and it writes its results here.
        pbx.give_to_pbx(self.folder)
        script.chmod(0o700)
        self.inner_script = pbx.inner_path(script)
        self.results = self.folder / "results.jsonl"
        self._offset = 0

    def take_records(self) -> list[dict[str, Any]]:
        if not self.results.exists():
            return []
        with open(self.results, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


def bench_dialplan(agi_port: int, script: str, prompt: str) -> str:
    """The bench-only dialplan appended to this instance's rendered extensions.conf.

    Answer() comes first, as in the production [ivr-call]: the flow's ANSWER is then the
    same cheap no-op for both variants. BENCH_IN carries the time AGI() was reached, so
    the flow's GET VARIABLE also measures the start-up delay. The short Wait() before the
    hang-up keeps Asterisk's BYE out of the pause SIPp's caller scenario makes after each
    key (a BYE during a pause is an "unexpected message", a failed call for SIPp).
    """
    stamp = "${STRFTIME(,,%s.%6q)}"
    return f"""
; ---- Appended by tests/perf/bench_agi.py to this throwaway instance only. ----
[{contract.CTX_INBOUND}]
exten => {NUMBERS[FASTAGI]},1,Goto(ivr-bench,{FASTAGI},1)
exten => {NUMBERS[PYST2]},1,Goto(ivr-bench,{PYST2},1)

[ivr-bench]
exten => {FASTAGI},1,Answer()
 same => n,Set(BENCH_IN={stamp})
 same => n,AGI(agi://127.0.0.1:{agi_port}/{ROUTE_BENCH})
 same => n,Wait(0.2)
 same => n,Hangup()
exten => {PYST2},1,Answer()
 same => n,Set(BENCH_IN={stamp})
 same => n,AGI({script},{prompt})
 same => n,Wait(0.2)
 same => n,Hangup()
"""


# --- measuring ------------------------------------------------------------------------

@dataclass
class LevelResult:
    variant: str
    concurrency: int
    calls: int
    wall_s: float = 0.0
    sipp_ok: int = 0
    sipp_failed: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    flow_cpu_s: float = 0.0
    asterisk_cpu_s: float = 0.0
    self_cpu_s: float | None = None  # pyst2: what the scripts measured of themselves
    note: str = ""

    @property
    def ok(self) -> int:
        return sum(1 for r in self.records if r.get("ok"))

    @property
    def failed(self) -> int:
        return self.calls - min(self.ok, self.sipp_ok)

    @property
    def completed(self) -> int:
        return min(self.ok, self.sipp_ok)

    def rtts(self) -> list[float]:
        return [ms for r in self.records for name, ms in r.get("cmds", []) if name in INSTANT]

    def start_delays(self) -> list[float]:
        out = []
        for r in self.records:
            try:
                out.append((r["t_start"] - float(r["stamp"])) * 1000.0)
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def peak(self) -> int:
        """Most flows in progress at once, from the records' start and end times."""
        edges = sorted([(r["t_start"], 1) for r in self.records if r.get("t_start")]
                       + [(r["t_end"], -1) for r in self.records if r.get("t_start")])
        best = now = 0
        for _, step in edges:
            now += step
            best = max(best, now)
        return best

    def keys_missed(self) -> int:
        return sum(1 for r in self.records if r.get("ok") and not r.get("key"))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from harness import Stack

        self.args = args
        self.started = time.monotonic()
        self.deadline = self.started + args.budget
        self.workdir = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
        self.stack = Stack(name=f"bench{os.getpid()}", workdir=self.workdir)
        self.server: FastAgiProcess | None = None

    def setup(self) -> None:
        """Start Asterisk, add the bench dialplan and the pyst2 script, start FastAGI."""
        from support.sipp import CallerSpec

        from ivr.pbx import prompts

        pbx = self.stack.pbx
        # No AMI event recorder: its event stream would be billed to Asterisk's CPU.
        pbx.start()
        wav = prompts.install(BENCH_PROMPT_TEXT, pbx.host_dir / "sounds" / "ivr" / "bench.wav",
                              self.stack.settings.prompts_cache_dir)
        pbx.give_to_pbx(pbx.host_dir / "sounds")
        self.prompt = pbx.inner_path(wav.with_suffix(""))
        with wave.open(str(wav)) as w:
            self.prompt_ms = int(w.getnframes() * 1000 / w.getframerate())
        self.pyst2 = Pyst2Script(pbx)
        etc = pbx.host_dir / "etc" / "extensions.conf"
        with open(etc, "a") as handle:
            handle.write(bench_dialplan(self.stack.settings.agi_port, self.pyst2.inner_script,
                                        self.prompt))
        pbx.cli("dialplan reload")
        shown = pbx.cli(f"dialplan show {NUMBERS[PYST2]}@{contract.CTX_INBOUND}")
        if "ivr-bench" not in shown:
            raise RuntimeError("the bench dialplan did not load:\n" + shown)
        self.asterisk = psutil.Process(pbx.pid())
        self.server = FastAgiProcess(self.stack.settings.agi_port, self.prompt, self.workdir)
        # The key goes in once the prompt has played, so the flow is in WAIT FOR DIGIT:
        # Answer() waits up to 500 ms for the caller's media (SIPp sends none), then the
        # prompt plays. A key sent during the prompt is dropped (no escape digits) and
        # WAIT FOR DIGIT times out after 2 s: slow flows show up as "key missed".
        answer_ms = 500
        self.spec = CallerSpec(keys="1", before_keys_ms=answer_ms + self.prompt_ms + 400,
                               between_keys_ms=0, wait_bye_ms=15000)
        self.call_s = (answer_ms + self.prompt_ms + 700) / 1000

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        try:
            self.stack.stop()
        finally:
            shutil.rmtree(self.stack.pbx.host_dir, ignore_errors=True)
            if not self.args.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def drain(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stack.channels() == 0:
                return
            time.sleep(0.2)
        self.stack.hangup_all()

    def take(self, variant: str) -> list[dict[str, Any]]:
        assert self.server is not None
        return self.server.take_records() if variant == FASTAGI else self.pyst2.take_records()

    def run_level(self, variant: str, concurrency: int, calls: int) -> LevelResult:
        from support.sipp import run_caller

        assert self.server is not None
        result = LevelResult(variant, concurrency, calls)
        waves = math.ceil(calls / concurrency)
        timeout_s = int(min(max(20, waves * self.call_s * 4 + 15), max(5, self.remaining())))
        self.take(variant)  # nothing left over from an earlier run
        ast0 = self.asterisk.cpu_times()
        flow0 = self.server.cpu()
        t0 = time.monotonic()
        done = run_caller(self.spec, self.stack.target, NUMBERS[variant], calls=calls,
                          concurrent=concurrency, rate=max(concurrency, 1),
                          timeout_s=timeout_s)
        result.wall_s = time.monotonic() - t0
        ast1 = self.asterisk.cpu_times()
        flow1 = self.server.cpu()
        result.sipp_ok, result.sipp_failed = sipp_counts(done.stdout)
        if done.returncode not in (0, 1):
            result.note = f"sipp exit {done.returncode}"
        self.drain()
        result.records = self.take(variant)
        result.asterisk_cpu_s = (ast1.user + ast1.system) - (ast0.user + ast0.system)
        if variant == FASTAGI:
            result.flow_cpu_s = flow1 - flow0
        else:
            # Asterisk reaps each script, so the kernel adds the script's CPU to Asterisk's
            # children times: interpreter start, imports and exit all included.
            result.flow_cpu_s = ((ast1.children_user + ast1.children_system)
                                 - (ast0.children_user + ast0.children_system))
            result.self_cpu_s = sum(r.get("cpu") or 0.0 for r in result.records)
        return result

    def run(self) -> list[LevelResult]:
        levels = self.args.levels
        print(f"Asterisk {self.stack.pbx.root.version}; {psutil.cpu_count()} CPUs; "
              f"prompt {self.prompt_ms} ms; levels {', '.join(map(str, levels))}; "
              f"budget {self.args.budget:.0f} s", flush=True)
        for variant in (FASTAGI, PYST2):  # warm-up: first fork, .pyc files, connections
            self.run_level(variant, 2, 2)
        results: list[LevelResult] = []
        for concurrency in levels:
            calls = max(self.args.min_calls, self.args.rounds * concurrency)
            if self.args.max_calls:
                calls = min(calls, self.args.max_calls)
            for variant in (FASTAGI, PYST2):
                need = math.ceil(calls / concurrency) * self.call_s * 2 + 10
                if self.remaining() < need:
                    print(f"  skipped {variant} at {concurrency}: time budget spent", flush=True)
                    continue
                res = self.run_level(variant, concurrency, calls)
                results.append(res)
                print(f"  {variant:8s} c={concurrency:<3d} {res.completed}/{calls} ok "
                      f"in {res.wall_s:.1f} s", flush=True)
        return results


# --- reporting ------------------------------------------------------------------------

def table(results: list[LevelResult]) -> str:
    head = ("conc", "variant", "calls", "ok", "fail", "calls/s", "rtt p50", "rtt p99",
            "start p50", "start p99", "flow CPU", "Ast CPU", "peak")
    units = ("", "", "", "", "", "", "ms", "ms", "ms", "ms", "ms/call", "ms/call", "")
    rows = [head, units]
    for r in results:
        per = max(r.completed, 1)
        rtts, starts = r.rtts(), r.start_delays()
        rows.append((str(r.concurrency), "FastAGI" if r.variant == FASTAGI else "pyst2",
                     str(r.calls), str(r.completed), str(r.failed),
                     f"{r.completed / r.wall_s:.2f}" if r.wall_s else "-",
                     f"{percentile(rtts, 50):.2f}", f"{percentile(rtts, 99):.2f}",
                     f"{percentile(starts, 50):.1f}", f"{percentile(starts, 99):.1f}",
                     f"{r.flow_cpu_s * 1000 / per:.1f}", f"{r.asterisk_cpu_s * 1000 / per:.1f}",
                     str(r.peak())))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i not in (1,) else c.ljust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(2, "-" * len(lines[0]))
    return "\n".join(lines)


def notes(results: list[LevelResult]) -> list[str]:
    out = []
    for r in results:
        extra = []
        if r.sipp_failed:
            extra.append(f"SIPp counted {r.sipp_failed} failed")
        errors: dict[str, int] = {}
        for rec in r.records:
            if rec.get("err"):
                errors[rec["err"]] = errors.get(rec["err"], 0) + 1
        if errors:
            extra.append("flow errors " + ", ".join(f"{k}x{v}" for k, v in errors.items()))
        missed = r.keys_missed()
        if missed:
            extra.append(f"{missed} calls' key arrived outside WAIT FOR DIGIT")
        if r.note:
            extra.append(r.note)
        if extra:
            out.append(f"  {r.variant} c={r.concurrency}: " + "; ".join(extra))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help="levels 1,10,40 and fewer calls (about a minute)")
    parser.add_argument("--levels", help="comma-separated concurrency levels")
    parser.add_argument("--rounds", type=int, default=None,
                        help="calls per level = rounds x concurrency (default 6; quick 3)")
    parser.add_argument("--min-calls", type=int, default=None,
                        help="at least this many calls per level (default 10; quick 5)")
    parser.add_argument("--max-calls", type=int, default=0, help="at most this many per level")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run; levels that would not fit are "
                             "skipped (default 270; quick 75)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument("--serve-agi", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prompt", help=argparse.SUPPRESS)
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    args.levels = (tuple(int(x) for x in args.levels.split(",")) if args.levels
                   else QUICK_LEVELS if quick else DEFAULT_LEVELS)
    if any(c < 1 or c > 200 for c in args.levels):
        parser.error("--levels: each level must be 1-200")
    args.rounds = args.rounds or (3 if quick else 6)
    args.min_calls = args.min_calls or (5 if quick else 10)
    args.budget = args.budget or (75.0 if quick else 270.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_agi:
        return serve_agi(args.serve_agi, args.prompt, args.dump)
    bench = Bench(args)
    try:
        bench.setup()
        results = bench.run()
    finally:
        bench.close()
    print()
    print("AGI bench flow through Asterisk: FastAGI (controller's AgiServer) vs pyst2 "
          "process-per-call")
    print(table(results))
    print("rtt: GET/SET VARIABLE round trip timed inside the flow. start: dialplan AGI() "
          "to the flow's first command.\nflow CPU: the FastAGI process / the forked pyst2 "
          "scripts (Asterisk's reaped-children CPU). Ast CPU: Asterisk itself.\n"
          "peak: most flows in progress at once. SIPp runs on the same machine.")
    for line in notes(results):
        print(line)
    pyst = [r for r in results if r.self_cpu_s is not None and r.completed]
    if pyst:
        own = sum(r.self_cpu_s or 0 for r in pyst) / sum(r.completed for r in pyst)
        reaped = sum(r.flow_cpu_s for r in pyst) / sum(r.completed for r in pyst)
        print(f"pyst2 scripts' own getrusage: {own * 1000:.1f} ms/call "
              f"(vs {reaped * 1000:.1f} ms/call reaped by Asterisk)")
    print(f"total {time.monotonic() - bench.started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([{
            "variant": r.variant, "concurrency": r.concurrency, "calls": r.calls,
            "completed": r.completed, "failed": r.failed, "wall_s": r.wall_s,
            "calls_per_s": r.completed / r.wall_s if r.wall_s else None,
            "rtt_ms_p50": percentile(r.rtts(), 50), "rtt_ms_p99": percentile(r.rtts(), 99),
            "start_ms_p50": percentile(r.start_delays(), 50),
            "start_ms_p99": percentile(r.start_delays(), 99),
            "flow_cpu_ms_per_call": r.flow_cpu_s * 1000 / max(r.completed, 1),
            "asterisk_cpu_ms_per_call": r.asterisk_cpu_s * 1000 / max(r.completed, 1),
            "peak": r.peak()} for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
