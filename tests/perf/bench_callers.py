"""Benchmark (a script, not a test): what callers feel, with callers who wait for each
prompt, through the full after-hours call and through the plain dialplan, in one run.

Run: .venv/bin/python -m tests.perf.bench_callers [--levels 50,100,200,300]
     [--overload | --no-overload] [--rates 10,20] [--rate-seconds 10]
     [--caller swarm|pjsua2] [--keep]
     Prints numbers only; asserts nothing. Traffic stays on 127.0.0.1. The defaults take
     about 15 minutes (7 arrival patterns; a phase lasts its longest call: ~80 s through
     the controller, ~25 s plain).

The callers wait for each prompt: each Listens until the service has spoken and gone
quiet, then Presses or Says, as tests/support/plans.py's routine patient does (caller ID
accepted, date of birth keyed and confirmed, name and reason said after the beeps,
"routine" in the menu, the callback promise heard). Two implementations of the same
plans (ivr.caller.plan) and the same hearing (ivr.caller.hearing):
- swarm (default): tests/perf/swarm.py, a minimal SIP/RTP caller in asyncio holding
  --swarm-calls calls a process, a few ms of CPU per call: the bench reaches 300 calls
  at once and more on 2 cores;
- pjsua2: the tests' own caller (tests/perf/callers.py), 4 calls a process, ~80 ms of
  CPU per call-second: up to ~24 calls on 2 cores; to cross-check the swarm at small
  levels.
The callers' CPU per call is printed: a reader sees whether they were the limit.

Arrivals: burst levels (N calls started within --spread seconds), then the overload
level (1.5 x the highest burst level the plain dialplan carried with 0 failed calls),
then steady rates (R new calls a second for --rate-seconds). Each runs through the plain
dialplan first (bench_capacity's menu: greeting, a key, a recording, goodbye; its
callers listen, press 4, speak after the beep, press #), then through `ivr serve`.

The controller runs with the product's bounds (controller_answer_seconds,
admission_max_lag_ms: ivr.config's defaults), not the suite's relaxed ones.

Measured on the PBX, from AMI events with Asterisk's timestamps (a bench-only AMI user
reading call, dtmf, user and agi events):
- first prompt: the call's answer (IvrInbound / BenchAnswered) to its first prompt (the
  controller's first STREAM FILE/GET DATA/SAY/RECORD as AGIExecStart; plain: the
  UserEvent before Playback);
- key to next prompt: a key's DTMFEnd (the last key of a run) to the next prompt's start,
  less the time the flow spends by design waiting for more keys (WAIT FOR DIGIT, or the
  rest of the Read the key came in);
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
SWARM_CALLS = 150  # calls per swarm process: two processes at 300, as 2 cores have
CALLER_MODULES = {"swarm": "tests.perf.swarm", "pjsua2": "tests.perf.callers"}
OVERLOAD = 1.5
MAX_LEVEL = 450  # Asterisk's RTP range here (1000 ports) holds 500 calls
KINDS = frozenset({"UserEvent", "DTMFEnd", "AGIExecStart", "AGIExecEnd"})
#: AGI commands that start something the caller hears (a prompt, a read-back, the beep).
PROMPT_COMMANDS = ("STREAM FILE", "GET DATA", "SAY ", "RECORD FILE", "GOSUB",
                   "CONTROL STREAM FILE", "GET OPTION", "EXEC Playback", "EXEC Background",
                   "EXEC Read")
WAIT_COMMAND = "WAIT FOR DIGIT"
READ_COMMAND = "EXEC Read"


@dataclass
class Phase:
    variant: str
    label: str  # "burst 24" / "10/s x 3 s"
    starts: list[float]
    ok: int = 0  # completed through the controller (or, plain, through the dialplan)
    failed: dict[str, int] = field(default_factory=dict)
    shed: int = 0
    #: Shed calls the dialplan's intake served: their message recorded, the caller still
    #: on the line when Record() ended (IvrFallbackRecorded), or a fallback number answered.
    served: int = 0
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
    """The phase's callers, AGENT_CALLS (pjsua2) or --swarm-calls (swarm) a process;
    their reports, their CPU seconds."""
    t0 = time.time() + 2.0  # every process up before the first call
    number = SUNNY_DID if variant == CONTROLLER else PLAIN_NUMBER
    caller = bench.args.caller
    per = AGENT_CALLS if caller == "pjsua2" else bench.args.swarm_calls
    # Round-robin: each swarm process gets calls spread over the whole arrival window.
    groups = [starts[i::math.ceil(len(starts) / per)] for i in
              range(math.ceil(len(starts) / per))] if caller == "swarm" else [
        starts[i:i + per] for i in range(0, len(starts), per)]
    procs = []
    for i, group in enumerate(groups):
        work = folder / f"agent{i}"
        work.mkdir(parents=True)
        spec = {"target": bench.stack.target, "number": number, "plan": plan.to_json(),
                "starts": group, "t0": t0, "timeout_s": 150, "tag": f"a{i}"}
        (work / "spec.json").write_text(json.dumps(spec))
        log = open(work / "agent.log", "w")
        # A swarm's profile, if asked (python -m pstats agentN/profile.out).
        extra = ["--profile", str(work / "profile.out")] if caller == "swarm" and \
            bench.args.profile_callers else []
        nice = ["nice", "-n", str(bench.args.caller_nice)] if bench.args.caller_nice else []
        procs.append((work, log, subprocess.Popen(
            [*nice, sys.executable, "-m", CALLER_MODULES[caller], "--spec", str(work / "spec.json"),
             "--out", str(work / "out.json"), *extra], cwd=REPO, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)))
    # All processes watched at once (each one's CPU as last seen alive, every 0.5 s).
    watched = {proc.pid: psutil.Process(proc.pid) for _, _, proc in procs}
    last = dict.fromkeys(watched, 0.0)
    while any(proc.poll() is None for _, _, proc in procs):
        for pid, ps in watched.items():
            try:
                last[pid] = cpu_s(ps)
            except psutil.Error:
                pass  # ended since: its last reading stands
        time.sleep(0.5)
    reports: list[dict[str, Any]] = []
    for work, log, proc in procs:
        proc.wait()
        log.close()
        out = work / "out.json"
        reports += json.loads(out.read_text()) if out.exists() else [
            {"ok": False, "error": "caller process failed", "events": []}]
    cpu = sum(last.values())
    return reports, cpu


def was_shed(items: list[dict[str, str]]) -> bool:
    return any(e.get("UserEvent") == "IvrControllerTimeout" or e.get("Result") == "shed"
               for e in items)


def intake_served(items: list[dict[str, str]]) -> bool:
    """The dialplan's intake ended its part with the caller there: a message recorded,
    or a fallback number answered."""
    return any(e.get("UserEvent") == "IvrFallbackRecorded" or (
        e.get("UserEvent") == "IvrFallbackDialResult" and e.get("DialStatus") == "ANSWER")
        for e in items)


def judge(phase: Phase, events: list[dict[str, str]], reports: list[dict[str, Any]]) -> None:
    """Each report's outcome (completed, shed and served, failed); the call's prompts
    and keys from its AMI events.

    A shed call's caller follows the controller's script, which the dialplan's intake
    does not ask: its report fails, so the intake's own events say whether it was served.
    A report is found among the events by its caller name (the swarm's tag); without one
    (pjsua2 callers) a shed call counts as its report says."""
    begin = "IvrInbound" if phase.variant == CONTROLLER else "BenchAnswered"
    by_call: dict[str, list[dict[str, str]]] = {}
    for e in events:
        by_call.setdefault(e.get("Uniqueid", ""), []).append(e)
    by_name = {e.get("CallerIDName", ""): items for items in by_call.values()
               for e in items if e.get("UserEvent") == begin}
    for report in reports:
        items = by_name.get(report.get("name") or "\0", [])
        if items and was_shed(items):
            if intake_served(items):
                phase.served += 1
                continue
            reason = "shed, the dialplan intake did not finish"
        elif report["ok"]:
            phase.ok += 1
            continue
        else:
            reason = (report["error"] or "?").split(" (")[0][:60]
        phase.failed[reason] = phase.failed.get(reason, 0) + 1
    for items in by_call.values():
        if not any(e.get("UserEvent") == begin for e in items):
            continue
        if was_shed(items):
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
        waited, started, inside = 0.0, None, True
        for later in timeline[i + 1:]:
            if later.get("Event") == "DTMFEnd":
                break  # not the last key of its run
            if later.get("Event") == "AGIExecStart":
                inside = False
            if inside and later.get("Event") == "AGIExecEnd" and later.get(
                    "Command", "").startswith(READ_COMMAND):
                # The key came in a Read, which waits by design for more keys (a lone
                # "1" of the offer: TIMEOUT(digit)); the controller's time starts at its end.
                waited += float(later["Timestamp"]) - float(e["Timestamp"])
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


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _pair(values: list[float]) -> str:
    return f"{_f(percentile(values, 50))}/{_f(percentile(values, 99))}"


def by_arrival(phases: list[Phase]) -> dict[str, dict[str, Phase]]:
    out: dict[str, dict[str, Phase]] = {}
    for p in phases:
        out.setdefault(p.label, {})[p.variant] = p
    return out


def table(phases: list[Phase]) -> str:
    """One row per arrival pattern: the controller's run beside the plain dialplan's."""
    head = ("arrivals", "calls", "completed ctl/plain", "shed (served)", "1st prompt ms ctl",
            "plain", "key->prompt ms ctl", "plain", "Ast ms/call ctl", "plain",
            "ctl ms/call", "ctl/Ast", "callers ms/call")
    rows = [head, ("", "", "", "", "p50/p99", "p50/p99", "p50/p99", "p50/p99", "", "", "",
                   "", "ctl/plain")]
    nan = Phase("", "", [])
    for label, pair in by_arrival(phases).items():
        ctl, plain = pair.get(CONTROLLER, nan), pair.get(PLAIN, nan)
        calls = max(ctl.calls, plain.calls)
        ast, own = ctl.cpu_ms_per_call("asterisk"), ctl.cpu_ms_per_call("controller")
        rows.append((label, str(calls),
                     f"{ctl.ok if ctl.calls else '-'}/{plain.ok if plain.calls else '-'}",
                     f"{ctl.shed} ({ctl.served})", _pair(ctl.first_prompt_ms),
                     _pair(plain.first_prompt_ms),
                     _pair(ctl.key_ms), _pair(plain.key_ms), _f(ast),
                     _f(plain.cpu_ms_per_call("asterisk")), _f(own),
                     _f(own / ast if ast else math.nan, 2),
                     f"{_f(caller_ms(ctl))}/{_f(caller_ms(plain))}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(2, "-" * len(lines[0]))
    return "\n".join(lines)


def caller_ms(p: Phase) -> float:
    return p.callers_cpu_s * 1000 / p.calls if p.calls else math.nan


def clean(p: Phase | None) -> bool:
    """No failed call: each completed, or was shed and served by the dialplan's intake."""
    return p is not None and p.calls > 0 and p.ok + p.served == p.calls


def full(p: Phase | None) -> bool:
    """Every call completed the controller's whole intake (none shed)."""
    return p is not None and p.calls > 0 and p.ok == p.calls


def targets(phases: list[Phase], overload: str | None) -> list[str]:
    """The issue's target ratios, from this run's burst levels."""
    bursts = {label: pair for label, pair in by_arrival(phases).items()
              if label.startswith("burst ")}
    level = {label: int(label.split()[1]) for label in bursts}
    plain_best = max((level[k] for k, v in bursts.items() if clean(v.get(PLAIN))), default=0)
    ctl_best = max((level[k] for k, v in bursts.items() if clean(v.get(CONTROLLER))),
                   default=0)
    ctl_full = max((level[k] for k, v in bursts.items() if full(v.get(CONTROLLER))),
                   default=0)
    out = [f"highest burst level with 0 failed calls (shed calls served by the dialplan's "
           f"intake are not failed): controller {ctl_best}, plain {plain_best}: ratio "
           f"{_f(ctl_best / plain_best if plain_best else math.nan, 2)} (target >= 0.9); "
           f"every call through the controller's whole intake, none shed: up to {ctl_full}"]
    best = next((v[CONTROLLER] for k, v in bursts.items()
                 if level[k] == ctl_best and CONTROLLER in v), None)
    if best is not None:
        ast, own = best.cpu_ms_per_call("asterisk"), best.cpu_ms_per_call("controller")
        out.append(f"controller CPU per call / Asterisk's at burst {ctl_best}: {_f(own)} / "
                   f"{_f(ast)} ms = {_f(own / ast if ast else math.nan, 2)} (target <= 0.25)")
    upto = [v[CONTROLLER] for k, v in bursts.items()
            if level[k] <= plain_best and CONTROLLER in v]
    worst = max((percentile(p.key_ms, 99) for p in upto if p.key_ms), default=math.nan)
    out.append(f"key-to-next-prompt p99 through the controller, worst burst level up to "
               f"{plain_best}: {_f(worst)} ms (target < 100)")
    over = by_arrival(phases).get(overload or "", {}).get(CONTROLLER)
    if over is not None:
        silent = max(over.calls - over.ok - over.served, 0)
        out.append(f"under overload ({overload}): {over.ok} completed through the "
                   f"controller, {over.shed} shed to the dialplan intake and {over.served} "
                   f"served by it (a message recorded or a fallback number answered), "
                   f"{silent} left otherwise (in silence or failed; target 0)")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--levels", default="50,100,200,300",
                        help="burst levels: calls started within --spread s "
                             "(default 50,100,200,300)")
    parser.add_argument("--overload", action=argparse.BooleanOptionalAction, default=True,
                        help=f"after the bursts, {OVERLOAD:g} x the highest level the plain "
                             "dialplan carried with 0 failed calls (default on)")
    parser.add_argument("--rates", default="10,20",
                        help="steady arrival rates, new calls a second (default 10,20)")
    parser.add_argument("--rate-seconds", type=float, default=10.0,
                        help="how long each rate lasts (default 10 s)")
    parser.add_argument("--spread", type=float, default=3.0,
                        help="seconds over which a burst starts (default 3)")
    parser.add_argument("--variants", default="plain,controller",
                        help="which to run, in order (default plain,controller)")
    parser.add_argument("--caller", choices=sorted(CALLER_MODULES), default="swarm",
                        help="the reacting caller: swarm (tests/perf/swarm.py, hundreds of "
                             "calls a process; default) or pjsua2 (the tests' caller, 4 "
                             "calls a process, up to ~24 calls on 2 cores)")
    parser.add_argument("--swarm-calls", type=int, default=SWARM_CALLS,
                        help=f"calls per swarm process (default {SWARM_CALLS})")
    parser.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=False,
                        help="the controller on uvloop (IVR_UVLOOP=1) instead of asyncio's "
                             "own loop (the default, as in production): to compare the two")
    parser.add_argument("--caller-nice", type=int, default=0, metavar="N",
                        help="run the callers at niceness N (default 0): they stand in for "
                             "phones on other machines, and at 10 they take only the CPU "
                             "the PBX and the controller leave")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument("--profile-callers", action="store_true",
                        help="the swarm processes write a cProfile to the work folder "
                             "(implies --keep; their CPU then counts the profiler too)")
    args = parser.parse_args(argv)
    args.keep = args.keep or args.profile_callers
    args.levels = [int(x) for x in args.levels.split(",") if x]
    args.rates = [float(x) for x in args.rates.split(",") if x]
    args.variants = [v for v in args.variants.split(",") if v]
    if any(v not in (PLAIN, CONTROLLER) for v in args.variants):
        parser.error("--variants: plain and/or controller")
    if any(not 1 <= n <= 300 for n in args.levels):
        parser.error("--levels: 1-300 calls")
    if any(not 0 < r <= 50 for r in args.rates) or not 0 < args.rate_seconds <= 60:
        parser.error("--rates: 0-50 calls a second; --rate-seconds: 0-60")
    if not 1 <= args.swarm_calls <= 500:
        parser.error("--swarm-calls: 1-500")
    args.budget = 3600.0  # Bench's; this bench runs what it is asked to
    return args


def run_arrival(bench: Bench, args: argparse.Namespace, label: str, starts: list[float],
                plan: dict[str, CallPlan], phases: list[Phase]) -> None:
    for variant in args.variants:
        phase = run_phase(bench, variant, label, starts, plan[variant])
        phases.append(phase)
        print(f"  {label:16s} {variant:10s} {phase.ok}/{phase.calls} completed, "
              f"{phase.shed} shed ({phase.served} served by the intake), callers "
              f"{caller_ms(phase):.0f} ms/call "
              f"({phase.callers_cpu_s * 100 / max(phase.wall_s, 1):.0f}% of a core), load "
              f"{phase.peak_load:.1f}", flush=True)


def burst(n: int, spread: float) -> list[float]:
    return [spread * i / n for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    bench.stack.extra_env["IVR_UVLOOP"] = "1" if args.uvloop else "0"
    phases: list[Phase] = []
    overload: str | None = None
    try:
        bench.setup()
        assert bench.events is not None
        bench.events.close()  # UserEvents only; ours reads DTMF and AGI events too
        bench.events = wide_listener(bench.stack.pbx, bench.stack.settings.ami_port,
                                     "ivrbenchcallers", "call,dtmf,user,agi", KINDS)
        plan = plans(bench)
        load = os.getloadavg()
        print(f"Asterisk {bench.stack.pbx.root.version}; {psutil.cpu_count()} CPUs; load "
              f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at start; callers: {args.caller}; "
              f"controller loop: {'uvloop' if args.uvloop else 'asyncio'}",
              flush=True)
        for n in args.levels:
            run_arrival(bench, args, f"burst {n}", burst(n, args.spread), plan, phases)
        plain_best = max((int(p.label.split()[1]) for p in phases
                          if p.variant == PLAIN and clean(p)), default=0)
        if args.overload and plain_best:
            n = min(math.ceil(plain_best * OVERLOAD), MAX_LEVEL)
            overload = f"burst {n}"
            run_arrival(bench, args, overload, burst(n, args.spread), plan, phases)
        for r in args.rates:
            run_arrival(bench, args, f"{r:g}/s x {args.rate_seconds:g} s",
                        [i / r for i in range(int(r * args.rate_seconds))], plan, phases)
    finally:
        bench.close()
    print()
    print(f"Callers that wait for each prompt ({args.caller}) through the controller vs "
          "the plain dialplan, same run")
    print(table(phases))
    print("CPU: user+system over the phase less the process's idle use "
          f"(Asterisk {bench.idle['asterisk']:.2f}%, controller "
          f"{bench.idle['controller']:.2f}% of a core), per call placed. Callers: their "
          "processes, same machine, not less idle.")
    for line in targets(phases, overload):
        print(line)
    for p in phases:
        if p.failed:
            print(f"  {p.label} {p.variant}: " + "; ".join(
                f"{why} x{n}" for why, n in sorted(p.failed.items())))
    if args.json:
        args.json.write_text(json.dumps([{
            "arrivals": p.label, "variant": p.variant, "calls": p.calls, "completed": p.ok,
            "shed": p.shed, "served": p.served, "failed": p.failed,
            "first_prompt_ms": p.first_prompt_ms,
            "key_ms": p.key_ms, "key_detail": p.key_detail, "cpu_s": p.cpu,
            "callers_cpu_s": p.callers_cpu_s, "caller": args.caller,
            "load": p.peak_load, "wall_s": p.wall_s} for p in phases], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
