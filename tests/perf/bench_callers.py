"""Benchmark (a script, not a test): what callers feel, with callers who wait for each
prompt, through the full after-hours call and through the plain dialplan, in one run.

Run: .venv/bin/python -m tests.perf.bench_callers [--levels 8,24] [--rates 10,20]
     [--rate-seconds 3] [--max-calls 1] [--keep]
     Prints numbers only; asserts nothing. Traffic stays on 127.0.0.1.

The callers are the reacting caller of the tests (ivr.caller, pjsua2): each Listens until
the service has spoken and gone quiet, then Presses or Says, as tests/support/plans.py's
routine patient does (caller ID accepted, date of birth keyed and confirmed, name and
reason said after the beeps, "routine" in the menu, the callback promise heard). A
pjsua2 process holds 4 calls, so a level of N calls is N/4 processes (tests/perf/
callers.py) on this same machine: their CPU is the limit of how far this bench goes on 2
cores (it is printed); bench_capacity.py (SIPp with timed keys) covers the levels above.

Arrivals: a burst level (N calls started within --spread seconds) or a steady rate (R new
calls a second for --rate-seconds). Each level runs through the plain dialplan first
(bench_capacity's menu: greeting, a key, a recording, goodbye; its callers listen, press
4, speak after the beep, press #), then through `ivr serve`.

Measured on the PBX, from AMI events with Asterisk's timestamps (a bench-only AMI user
reading call, dtmf, user and agi events):
- first prompt: the call's answer (IvrInbound / BenchAnswered) to its first prompt (the
  controller's first STREAM FILE/GET DATA/SAY/RECORD as AGIExecStart; plain: the
  UserEvent before Playback);
- key to next prompt: a key's DTMFEnd (the last key of a run) to the next prompt's start,
  less the time the flow spends by design waiting for more keys (WAIT FOR DIGIT);
- completed: the caller's plan ran to its end and the service then hung up;
- shed: calls the controller shed or that missed its bound (IvrControllerReturned
  Result: shed, IvrControllerTimeout), which went to the dialplan's intake;
- CPU per call: user+system of the Asterisk process and of the controller over the level,
  divided by the calls placed; the callers' processes, summed, for the record.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ivr.caller.plan import AwaitEnd, CallPlan, Listen, Press, Say
from tests.perf.bench_capacity import CALLER_ID, CONTROLLER, PLAIN, PLAIN_NUMBER, SUNNY_DID, Bench
from tests.perf.benchlib import REPO, cpu_s, percentile, wide_listener

AGENT_CALLS = 4
KINDS = frozenset({"UserEvent", "DTMFEnd", "AGIExecStart", "AGIExecEnd"})
#: AGI commands that start something the caller hears (a prompt, a read-back, the beep).
PROMPT_COMMANDS = ("STREAM FILE", "GET DATA", "SAY ", "RECORD FILE", "CONTROL STREAM FILE",
                   "GET OPTION", "EXEC Playback", "EXEC Background")
WAIT_COMMAND = "WAIT FOR DIGIT"


@dataclass
class Phase:
    variant: str
    label: str  # "burst 24" / "10/s x 3 s"
    starts: list[float]
    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    shed: int = 0
    first_prompt_ms: list[float] = field(default_factory=list)
    key_ms: list[float] = field(default_factory=list)
    #: (key, the prompt command it led to, ms): which step a slow answer came from.
    key_detail: list[tuple[str, str, float]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    callers_cpu_s: float = 0.0
    peak_load: float = 0.0
    wall_s: float = 0.0
    idle_pct: dict[str, float] = field(default_factory=dict)

    def cpu_ms_per_call(self, who: str) -> float:
        """CPU over the phase less what the process burns idle, per call placed."""
        if who not in self.cpu:
            return math.nan
        busy = self.cpu[who] - self.idle_pct.get(who, 0.0) / 100 * self.wall_s
        return max(busy, 0.0) * 1000 / self.calls

    @property
    def calls(self) -> int:
        return len(self.starts)


def plans(bench: Bench) -> dict[str, CallPlan]:
    name = bench.stack.voice("Alex Smith.")
    reason = bench.stack.voice("My daughter has had a fever since this morning.")
    listen, beep = Listen(), Listen(tone=True)
    routine = (listen, Press("1"), listen, Press("01021990"), listen, Press("1"),
               beep, Say(name), Press("#"), beep, Say(reason), Press("#"), listen,
               Press("4"), AwaitEnd(90))
    menu_ms = int((bench.prompt_s["greeting"] + bench.prompt_s["menu"]) * 600)
    plain = (Listen(quiet_ms=1500, min_voice_ms=menu_ms), Press("4"), beep, Say(name),
             Press("#"), AwaitEnd(60))
    return {CONTROLLER: CallPlan(caller_id=CALLER_ID, steps=routine),
            PLAIN: CallPlan(caller_id=CALLER_ID, steps=plain)}


def run_callers(bench: Bench, variant: str, plan: CallPlan, starts: list[float],
                folder: Path) -> tuple[list[dict[str, Any]], float]:
    """The phase's callers, AGENT_CALLS per process; their reports, their CPU seconds."""
    t0 = time.time() + 2.0  # every process up before the first call
    number = SUNNY_DID if variant == CONTROLLER else PLAIN_NUMBER
    procs = []
    for i in range(0, len(starts), AGENT_CALLS):
        work = folder / f"agent{i // AGENT_CALLS}"
        work.mkdir(parents=True)
        spec = {"target": bench.stack.target, "number": number, "plan": plan.to_json(),
                "starts": starts[i:i + AGENT_CALLS], "t0": t0, "timeout_s": 150}
        (work / "spec.json").write_text(json.dumps(spec))
        log = open(work / "agent.log", "w")
        procs.append((work, log, subprocess.Popen(
            [sys.executable, "-m", "tests.perf.callers", "--spec", str(work / "spec.json"),
             "--out", str(work / "out.json")], cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)))
    reports: list[dict[str, Any]] = []
    cpu = 0.0
    for work, log, proc in procs:
        ps = psutil.Process(proc.pid)
        last = 0.0
        while proc.poll() is None:
            try:
                last = cpu_s(ps)
            except psutil.Error:
                break
            time.sleep(0.5)
        proc.wait()
        log.close()
        cpu += last
        out = work / "out.json"
        reports += json.loads(out.read_text()) if out.exists() else [
            {"ok": False, "error": "caller process failed", "events": []}]
    return reports, cpu


def judge(phase: Phase, events: list[dict[str, str]], reports: list[dict[str, Any]]) -> None:
    begin = "IvrInbound" if phase.variant == CONTROLLER else "BenchAnswered"
    by_call: dict[str, list[dict[str, str]]] = {}
    for e in events:
        by_call.setdefault(e.get("Uniqueid", ""), []).append(e)
    for report in reports:
        if report["ok"]:
            phase.ok += 1
        else:
            reason = (report["error"] or "?").split(" (")[0][:60]
            phase.failed[reason] = phase.failed.get(reason, 0) + 1
    for items in by_call.values():
        if not any(e.get("UserEvent") == begin for e in items):
            continue
        if any(e.get("UserEvent") == "IvrControllerTimeout" or e.get("Result") == "shed"
               for e in items):
            phase.shed += 1
            continue
        timeline = sorted(items, key=lambda e: float(e.get("Timestamp", 0)))
        answered = next(float(e["Timestamp"]) for e in timeline if e.get("UserEvent") == begin)
        prompts = [float(e["Timestamp"]) for e in timeline if is_prompt(e, phase.variant)]
        if prompts:
            phase.first_prompt_ms.append((prompts[0] - answered) * 1000)
        detail = key_latencies(timeline, phase.variant)
        phase.key_detail += detail
        phase.key_ms += [ms for _, _, ms in detail]


def is_prompt(e: dict[str, str], variant: str) -> bool:
    if variant == PLAIN:
        return e.get("UserEvent") == "BenchPrompt"
    return e.get("Event") == "AGIExecStart" and e.get("Command", "").startswith(
        PROMPT_COMMANDS)


def key_latencies(timeline: list[dict[str, str]],
                  variant: str) -> list[tuple[str, str, float]]:
    """Per key (the last of a run): the key, the next prompt, the ms to it less the
    flow's designed waits for more keys."""
    out = []
    for i, e in enumerate(timeline):
        if e.get("Event") != "DTMFEnd" or e.get("Direction") != "Received":
            continue
        waited, started = 0.0, None
        for later in timeline[i + 1:]:
            if later.get("Event") == "DTMFEnd":
                break  # not the last key of its run
            if later.get("Event") == "AGIExecStart" and later.get("Command", "").startswith(
                    WAIT_COMMAND):
                started = float(later["Timestamp"])
            elif later.get("Event") == "AGIExecEnd" and started is not None:
                waited += float(later["Timestamp"]) - started
                started = None
            elif is_prompt(later, variant):
                ms = (float(later["Timestamp"]) - float(e["Timestamp"]) - waited) * 1000
                what = later.get("Command", later.get("UserEvent", ""))[:40]
                out.append((e.get("Digit", ""), what, ms))
                break
    return out


def run_phase(bench: Bench, variant: str, label: str, starts: list[float],
              plan: CallPlan) -> Phase:
    assert bench.events is not None
    phase = Phase(variant, label, starts)
    if variant == CONTROLLER:
        bench.start_controller()
    procs = {"asterisk": bench.asterisk}
    if variant == CONTROLLER:
        procs["controller"] = bench.controller_ps
    cpu0 = {name: cpu_s(p) for name, p in procs.items()}
    t0 = time.monotonic()
    mark = bench.events.mark()
    folder = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=bench.workdir))
    reports, phase.callers_cpu_s = run_callers(bench, variant, plan, starts, folder)
    time.sleep(1.0)  # the last hang-up handlers
    phase.cpu = {name: cpu_s(p) - cpu0[name] for name, p in procs.items()}
    phase.wall_s = time.monotonic() - t0
    phase.idle_pct = {name: bench.idle[name] for name in procs}
    phase.peak_load = os.getloadavg()[0]
    judge(phase, bench.events.since(mark), reports)
    if variant == CONTROLLER:
        bench.stop_controller()
    if bench.stack.channels():
        bench.stack.hangup_all()
    return phase


def _f(value: float, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table(phases: list[Phase]) -> str:
    head = ("arrivals", "variant", "calls", "completed", "shed", "1st prompt p50/p99 ms",
            "key->prompt p50/p99 ms", "Asterisk ms/call", "controller ms/call",
            "callers ms/call")
    rows = [head]
    for p in phases:
        rows.append((p.label, p.variant, str(p.calls), str(p.ok), str(p.shed),
                     f"{_f(percentile(p.first_prompt_ms, 50))} / "
                     f"{_f(percentile(p.first_prompt_ms, 99))}",
                     f"{_f(percentile(p.key_ms, 50))} / {_f(percentile(p.key_ms, 99))}",
                     _f(p.cpu_ms_per_call("asterisk")), _f(p.cpu_ms_per_call("controller")),
                     _f(p.callers_cpu_s * 1000 / p.calls)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--levels", default="8,24",
                        help="burst levels: calls started within --spread s (default 8,24)")
    parser.add_argument("--rates", default="10,20",
                        help="steady arrival rates, new calls a second (default 10,20)")
    parser.add_argument("--rate-seconds", type=float, default=3.0,
                        help="how long each rate lasts (default 3 s)")
    parser.add_argument("--spread", type=float, default=3.0,
                        help="seconds over which a burst starts (default 3)")
    parser.add_argument("--variants", default="plain,controller",
                        help="which to run, in order (default plain,controller)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",") if x]
    args.rates = [float(x) for x in args.rates.split(",") if x]
    args.variants = [v for v in args.variants.split(",") if v]
    if any(v not in (PLAIN, CONTROLLER) for v in args.variants):
        parser.error("--variants: plain and/or controller")
    if any(not 1 <= n <= 300 for n in args.levels):
        parser.error("--levels: 1-300 calls")
    args.budget = 3600.0  # Bench's; this bench runs what it is asked to
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    phases: list[Phase] = []
    try:
        bench.setup()
        assert bench.events is not None
        bench.events.close()  # UserEvents only; ours reads DTMF and AGI events too
        bench.events = wide_listener(bench.stack.pbx, bench.stack.settings.ami_port,
                                     "ivrbenchcallers", "call,dtmf,user,agi", KINDS)
        plan = plans(bench)
        arrivals = [(f"burst {n}", [args.spread * i / n for i in range(n)])
                    for n in args.levels]
        arrivals += [(f"{r:g}/s x {args.rate_seconds:g} s",
                      [i / r for i in range(int(r * args.rate_seconds))]) for r in args.rates]
        load = os.getloadavg()
        print(f"Asterisk {bench.stack.pbx.root.version}; {psutil.cpu_count()} CPUs; load "
              f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at start", flush=True)
        for label, starts in arrivals:
            for variant in args.variants:
                phase = run_phase(bench, variant, label, starts, plan[variant])
                phases.append(phase)
                print(f"  {label:14s} {variant:10s} {phase.ok}/{phase.calls} completed, "
                      f"{phase.shed} shed, load {phase.peak_load:.1f}", flush=True)
    finally:
        bench.close()
    print()
    print("Reacting callers (pjsua2, wait for each prompt) vs the plain dialplan, same run")
    print(table(phases))
    print("CPU: user+system over the phase less the process's idle use "
          f"(Asterisk {bench.idle['asterisk']:.2f}%, controller "
          f"{bench.idle['controller']:.2f}% of a core), per call placed. Callers: the "
          "pjsua2 processes, same machine.")
    for p in phases:
        if p.failed:
            print(f"  {p.label} {p.variant}: " + "; ".join(
                f"{why} x{n}" for why, n in sorted(p.failed.items())))
    if args.json:
        args.json.write_text(json.dumps([{
            "arrivals": p.label, "variant": p.variant, "calls": p.calls, "completed": p.ok,
            "shed": p.shed, "failed": p.failed, "first_prompt_ms": p.first_prompt_ms,
            "key_ms": p.key_ms, "key_detail": p.key_detail, "cpu_s": p.cpu,
            "callers_cpu_s": p.callers_cpu_s,
            "load": p.peak_load, "wall_s": p.wall_s} for p in phases], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
