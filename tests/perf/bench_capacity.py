"""Benchmark (a script, not a test): concurrent callers through the full after-hours call.

Run: .venv/bin/python -m tests.perf.bench_capacity [--quick] [--levels 5,10,20,40,60]
     [--spread 3] [--budget 290] [--json out.json] [--keep]
     (about 4.8 minutes; --quick, levels 10 and 40, about 2). Prints numbers only;
     asserts nothing. Traffic stays on 127.0.0.1.

Each level places that many SIPp callers, all started within --spread seconds so that
they are all up at once (a burst of arrivals, harsher than real traffic): first through
the plain-dialplan baseline, then through the controller. A variant's ramp stops at its
first level with a failed call, or when its next level would overrun the time budget.

- controller: the real `ivr serve` (a subprocess, production log level) against a
  throwaway Asterisk instance, Sunny Pediatrics forced closed by a manual override
  (`ivr override set`). Every caller does the whole after-hours call: greeting (skipped
  with #), emergency notice (skipped), accepts its caller ID (1), keys and confirms the
  date of birth, speaks its name and reason (speech RTP, # ends each recording), picks
  "routine" (4), and hears the callback promise; Asterisk hangs up. No clinician legs.
  A call counts as completed only if the database says so: routine disposition, result
  done, ended completed, caller ID and date of birth confirmed at the first attempt, two
  voiced recordings at the first attempt, one menu key, the callback promise told.
- plain: the same menu as plain dialplan, no controller running (a bench-only context
  appended to this instance's extensions.conf, as bench_agi.py does): Answer, Playback
  the greeting, Read a key over the menu prompt, Playback "ask name", Record a short
  message (# ends it), Playback goodbye. Same prompt files, same speech RTP, same kind of
  SIPp caller; completed when the key read is 4, the Record ended on # and the file holds
  a voice. Its calls are shorter (no intake, no read-backs), so compare CPU per active
  call-second (the %core columns), not only per call.

Columns, per level and variant:
- ok/fail: calls completed or not (above). peak: most calls up at once, from the
  dialplan's UserEvents (answer to hang-up handler). call s: mean call length.
- 1st prompt: time from answer to the first prompt, from Asterisk's clock to ours:
  the UserEvent the dialplan emits right after Answer() (AMI Timestamp) to the
  controller's `prompt.greeting` timeline event in the database (written just before
  its STREAM FILE); for plain, to a UserEvent just before Playback().
- CPU: user+system seconds of the Asterisk process and of the controller process over
  the level (psutil, before the first call and after the last one ended; idle CPU
  included, printed below the table), per call placed, and as % of one core per call
  up (CPU / sum of call lengths).
- RSS: peak resident memory (psutil, sampled every 0.2 s) and its growth over the
  level's start divided by the peak number of calls up at once.
SIPp (the callers' side) runs on the same machine and its CPU is not counted.

The bench dialplan exists only in this instance: an exact extension appended to the
rendered [ivr-inbound] leads to a bench-only [ivr-bench-plain] context. Ports come from
a tests/harness.PortPlan slot no test worker of `make test` uses. The instance,
its database and recordings are deleted at the end (--keep keeps the work folder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from ivr import config
from tests.perf.benchlib import (
    REPO,
    Sampler,
    UserEvents,
    cpu_s,
    idle_cpu_pct,
    percentile,
    run_sipp,
    sipp_counts,
    stamps,
    use_port_slot,
)

PLAIN, CONTROLLER = "plain", "controller"
VARIANTS = (PLAIN, CONTROLLER)
SUNNY_DID = "+16175550100"
PLAIN_NUMBER = "benchplain"
CALLER_ID = "+16175550142"
DOB_KEYS, DOB_ISO = "01021990", "1990-01-02"
SPEECH = "Alex Smith. My daughter has had a fever since this morning."
DEFAULT_LEVELS = (5, 10, 20, 40, 60)
QUICK_LEVELS = (10, 40)
BEEP_MS = 500  # Asterisk's beep before a recording, with some slack
SPEAK_MS = 1500  # how long each recording is talked into before the # ends it
# Worker slots (tests/harness.PortPlan) tried for this run's ports; make test uses 0-2.
PORT_SLOTS = (23, 22, 21, 20, 19, 18)


# --- the callers ------------------------------------------------------------------------

Timeline = tuple[list[tuple[int, str]], int]


def controller_timeline(ask_name_s: float, ask_reason_s: float) -> Timeline:
    """Keys (ms after the answer) for the full after-hours call, and when to give up.

    Keys interrupt every prompt that takes them, so the call re-synchronises at each
    key; each lands at least a second inside the prompt it answers. The two recording
    prompts cannot be skipped: their length comes from the prompt files.
    """
    keys = [(1000, "#"), (2000, "#"), (3000, "1")]  # greeting, notice, "press 1" for caller ID
    # After the 1 the flow waits 1.5 s for more keys, then asks for the date of birth.
    keys += [(6000 + 300 * i, d) for i, d in enumerate(DOB_KEYS)]
    keys.append((9100, "1"))  # during "You entered <date>. If this is correct, press 1"
    name_end = 9100 + int(ask_name_s * 1000) + BEEP_MS + SPEAK_MS
    reason_end = name_end + int(ask_reason_s * 1000) + BEEP_MS + SPEAK_MS
    menu = reason_end + 1200
    keys += [(name_end, "#"), (reason_end, "#"), (menu, "4")]
    return keys, menu + 25000  # the callback promise lasts about 9 s


def plain_timeline(greeting_s: float, ask_name_s: float) -> Timeline:
    menu = int(greeting_s * 1000) + 1500  # inside Read()'s menu prompt
    name_end = menu + int(ask_name_s * 1000) + BEEP_MS + SPEAK_MS
    return [(menu, "4"), (name_end, "#")], name_end + 20000


# --- one level's results ----------------------------------------------------------------

@dataclass
class LevelResult:
    variant: str
    concurrency: int
    calls: int
    wall_s: float = 0.0
    completed: int = 0
    sipp_ok: int = 0
    sipp_failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    intervals: list[tuple[float, float]] = field(default_factory=list)  # answer, end
    first_prompt_ms: list[float] = field(default_factory=list)
    controller_part_ms: list[float] = field(default_factory=list)  # call.started -> greeting
    cpu: dict[str, float] = field(default_factory=dict)  # "asterisk" / "controller"
    rss_peak: dict[str, int] = field(default_factory=dict)
    rss_start: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def failed(self) -> int:
        return self.calls - self.completed

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def peak(self) -> int:
        edges = sorted([(a, 1) for a, _ in self.intervals] + [(b, -1) for _, b in self.intervals])
        best = now = 0
        for _, step in edges:
            now += step
            best = max(best, now)
        return best

    def call_seconds(self) -> float:
        return sum(b - a for a, b in self.intervals)

    def cpu_ms_per_call(self, who: str) -> float:
        return self.cpu[who] * 1000 / self.calls if who in self.cpu else math.nan

    def core_pct_per_call(self, who: str) -> float:
        seconds = self.call_seconds()
        return self.cpu[who] * 100 / seconds if who in self.cpu and seconds else math.nan

    def rss_mb(self, who: str) -> float:
        return self.rss_peak[who] / 2**20 if who in self.rss_peak else math.nan

    def rss_kb_per_call(self, who: str) -> float:
        if who not in self.rss_peak:
            return math.nan
        return (self.rss_peak[who] - self.rss_start[who]) / 1024 / max(self.peak(), 1)


def controller_verdict(call: dict[str, Any]) -> str | None:
    """None when the stored call is the full after-hours call it should be; else why not."""
    if call.get("abandoned_step"):
        return f"hung up at {call['abandoned_step']}"
    if call.get("disposition") != "routine":
        return f"disposition {call.get('disposition')}"
    if call.get("result") != "done" or call.get("end_reason") != "completed":
        return f"ended {call.get('result')}/{call.get('end_reason')}"
    intake = call.get("intake", {})
    cb, dob = intake.get("callback", {}), intake.get("dob", {})
    if not (cb.get("source") == "caller_id" and cb.get("confirmed") and cb.get("attempts") == 1):
        return "callback not accepted at once"
    if not (dob.get("value") == DOB_ISO and dob.get("confirmed") and dob.get("attempts") == 1):
        return "date of birth not confirmed at once"
    for name in ("name", "reason"):
        entry = intake.get(name, {})
        if entry.get("source") != "recording" or entry.get("attempts") != 1:
            return f"{name} not recorded at once"
    if [e["kind"] for e in call.get("timeline", [])].count("menu.key") != 1:
        return "menu played more than once"
    if "call you back after" not in (call.get("caller_told") or ""):
        return "no callback promise"
    return None


async def _read_calls(url: str, node: str, since: datetime) -> list[dict[str, Any]]:
    from ivr.db.engine import Database
    from ivr.records import calls

    db = Database(url)
    try:
        rows = await calls.list_calls(db, since=since, limit=1000)
        out = []
        for row in rows:
            if row["node"] == node and row["dialled"] == SUNNY_DID:
                detail = await calls.show_call(db, row["id"])
                if detail is not None:
                    out.append(detail)
        return out
    finally:
        await db.close()


# --- the bench ---------------------------------------------------------------------------

def plain_dialplan(prompts: dict[str, str], spool: str) -> str:
    """The bench-only plain menu appended to this instance's rendered extensions.conf."""
    return f"""
; ---- Appended by tests/perf/bench_capacity.py to this throwaway instance only. ----
[ivr-inbound]
exten => {PLAIN_NUMBER},1,Goto(ivr-bench-plain,s,1)

[ivr-bench-plain]
exten => s,1,Set(CHANNEL(hangup_handler_push)=ivr-bench-plain-end,s,1)
 same => n,Answer()
 same => n,UserEvent(BenchAnswered)
 same => n,UserEvent(BenchPrompt)
 same => n,Playback({prompts['greeting']})
 same => n,Read(KEY,{prompts['menu']},1,,1,6)
 same => n,UserEvent(BenchPrompt)
 same => n,Playback({prompts['ask_name']})
 same => n,Record({spool}/${{UNIQUEID}}.wav,3,8)
 same => n,UserEvent(BenchPrompt)
 same => n,Playback({prompts['goodbye']})
 same => n,UserEvent(BenchDone,Key: ${{FILTER(0-9,${{KEY}})}},Record: ${{RECORD_STATUS}})
 same => n,Hangup()

[ivr-bench-plain-end]
exten => s,1,UserEvent(BenchEnded)
 same => n,Return()
"""


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from harness import Stack

        self.args = args
        self.started = time.monotonic()
        self.deadline = self.started + args.budget
        self.workdir = Path(tempfile.mkdtemp(prefix="ivr-capacity-"))
        # Stack takes its ports from the pytest-xdist worker name (tests/harness.PortPlan):
        # naming a slot of our own keeps clear of a test run on the same machine.
        use_port_slot(PORT_SLOTS)
        # The product's bounds, not the suite's (a starved test machine's controller is
        # late, not overloaded): what sheds a call is part of what is measured.
        product = config.Settings()
        self.stack = Stack(name=f"cap{os.getpid()}", workdir=self.workdir, overrides={
            "controller_answer_seconds": product.controller_answer_seconds,
            "admission_max_lag_ms": product.admission_max_lag_ms})
        self.controller: subprocess.Popen[bytes] | None = None
        self.events: UserEvents | None = None

    # --- set-up -----------------------------------------------------------------------
    def setup(self) -> None:
        from harness import timed_caller_scenario
        from support.sipp import CallerSpec, speech_pcap

        from ivr.pbx.instance import AMI_USER
        from ivr.rules import load_rules

        pbx = self.stack.pbx
        pbx.start()
        self.asterisk = psutil.Process(pbx.pid())
        self.start_controller()  # makes the prompt files and the database
        self.idle = {"asterisk": idle_cpu_pct(self.asterisk),
                     "controller": idle_cpu_pct(self.controller_ps)}
        until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
        self.ivr_cli("override", "set", "--practice", "sunny-pediatrics", "--closed",
                     "--until", until.isoformat(), "--reason", "bench: after hours")
        self.stop_controller()

        from ivr.flows.speech import PlayFile, PromptLibrary

        lib = PromptLibrary(pbx.host_dir / "sounds" / "ivr", pbx.inner_path,
                            self.stack.settings.cache_dir)
        sunny = load_rules(REPO / "routing_rules", now=datetime.now(UTC)).rules \
            .practices["sunny-pediatrics"]

        def one(pid: str) -> str:
            items = lib.items(sunny, pid)
            assert len(items) == 1 and isinstance(items[0], PlayFile), pid
            return items[0].path

        prompts = {pid: one(pid) for pid in ("greeting", "menu", "ask_name", "ask_reason")}
        prompts["goodbye"] = lib.flow("goodbye").path
        self.prompt_s = {pid: self._seconds(path) for pid, path in prompts.items()}
        spool = pbx.spool_dir / "bench-capacity"
        spool.mkdir(parents=True, exist_ok=True)
        pbx.give_to_pbx(spool)  # Asterisk records there as the PBX user
        self.spool = spool
        etc = pbx.host_dir / "etc" / "extensions.conf"
        with open(etc, "a") as handle:
            handle.write(plain_dialplan(prompts, pbx.inner_path(spool)))
        pbx.cli("dialplan reload")
        shown = pbx.cli(f"dialplan show {PLAIN_NUMBER}@ivr-inbound")
        if "ivr-bench-plain" not in shown:
            raise RuntimeError("the bench dialplan did not load:\n" + shown)

        self.events = UserEvents(self.stack.settings.ami_port, AMI_USER, pbx.ami_secret)
        speech = speech_pcap(SPEECH, self.workdir / "speech.pcap", repeat=16,
                             tail_silence_s=1)
        spec = CallerSpec(caller_id=CALLER_ID, audio_pcap=str(speech))
        keys, end = controller_timeline(self.prompt_s["ask_name"], self.prompt_s["ask_reason"])
        self.scenario = {CONTROLLER: timed_caller_scenario(spec, keys, end)}
        self.call_s = {CONTROLLER: (keys[-1][0] + 9500) / 1000}
        keys, end = plain_timeline(self.prompt_s["greeting"], self.prompt_s["ask_name"])
        self.scenario[PLAIN] = timed_caller_scenario(spec, keys, end)
        self.call_s[PLAIN] = (keys[-1][0] + 1500 + int(self.prompt_s["goodbye"] * 1000)) / 1000

    def _seconds(self, inner: str) -> float:
        pbx = self.stack.pbx
        host = pbx.host_dir / Path(inner + ".wav").relative_to(pbx.inner_dir)
        with wave.open(str(host)) as w:
            return w.getnframes() / w.getframerate()

    def ivr_cli(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=self.stack.env,
                             capture_output=True, text=True, cwd=REPO, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"ivr {' '.join(args[:2])} failed: {out.stderr.strip()}")
        return out.stdout

    # --- the controller (production log level, not the harness's DEBUG) ---------------
    def start_controller(self, timeout: float = 60) -> None:
        log_path = self.workdir / "controller.log"
        before = log_path.read_text(errors="replace").count("controller ready") \
            if log_path.exists() else 0
        with open(log_path, "ab") as log:
            self.controller = subprocess.Popen(
                [sys.executable, "-m", "ivr.cli", "serve"], env=self.stack.env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
        deadline = time.monotonic() + timeout
        while log_path.read_text(errors="replace").count("controller ready") <= before:
            if self.controller.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the controller did not start; see {log_path}")
            time.sleep(0.1)
        self.controller_ps = psutil.Process(self.controller.pid)
        time.sleep(0.5)  # let start-up work (reconciliation, prompt checks) settle

    def stop_controller(self) -> None:
        if self.controller is not None and self.controller.poll() is None:
            self.controller.send_signal(signal.SIGTERM)
            try:
                self.controller.wait(20)
            except subprocess.TimeoutExpired:
                self.controller.kill()
                self.controller.wait(5)
        self.controller = None

    def close(self) -> None:
        self.stop_controller()
        if self.events is not None:
            self.events.close()
        try:
            self.stack.stop()
        finally:
            shutil.rmtree(self.stack.pbx.host_dir, ignore_errors=True)
            if not self.args.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def need_s(self, variant: str, concurrency: int) -> float:
        return self.call_s[variant] + self.args.spread + 5

    # --- one level --------------------------------------------------------------------
    def run_level(self, variant: str, concurrency: int) -> LevelResult:
        assert self.events is not None
        calls = concurrency
        result = LevelResult(variant, concurrency, calls)
        if variant == CONTROLLER:
            self.start_controller()
        started_at = datetime.now(UTC)
        mark = self.events.mark()
        procs = {"asterisk": self.asterisk}
        if variant == CONTROLLER:
            procs["controller"] = self.controller_ps
        cpu0 = {name: cpu_s(p) for name, p in procs.items()}
        sampler = Sampler(procs)
        timeout_s = int(self.call_s[variant] * 2 + self.args.spread + 30)
        t0 = time.monotonic()
        number = SUNNY_DID if variant == CONTROLLER else PLAIN_NUMBER
        done = run_sipp(self.scenario[variant], self.stack.target, number,
                        self.workdir / f"{variant}-{concurrency}", calls=calls,
                        spread_s=self.args.spread,
                        local_port=self.stack.ports.next(),
                        media_port=self.stack.ports.next(4), timeout_s=timeout_s)
        result.wall_s = time.monotonic() - t0
        begin, end = ("IvrInbound", "IvrCallEnded") if variant == CONTROLLER \
            else ("BenchAnswered", "BenchEnded")
        # Every answered call's hang-up handler has run: the level's work is over.
        deadline = time.monotonic() + 15
        while (time.monotonic() < deadline
               and self.events.count(mark, end) < self.events.count(mark, begin)):
            time.sleep(0.1)
        time.sleep(0.5)  # the controller's reconciliation of the last hang-ups
        sampler.stop()
        result.cpu = {name: cpu_s(p) - cpu0[name] for name, p in procs.items()}
        result.rss_start, result.rss_peak = sampler.start_rss, sampler.peak_rss
        result.sipp_ok, result.sipp_failed = sipp_counts(done.stdout)
        if done.returncode not in (0, 1):
            result.note = f"sipp exit {done.returncode}"
        if self.stack.channels():
            result.note = (result.note + "; " if result.note else "") + "channels left over"
            self.stack.hangup_all()

        events = self.events.since(mark)
        answered, ended = stamps(events, begin), stamps(events, end)
        result.intervals = [(answered[u], ended[u]) for u in answered if u in ended]
        if variant == CONTROLLER:
            self._judge_controller(result, answered, started_at)
            self.stop_controller()
        else:
            self._judge_plain(result, events, answered)
        return result

    def _judge_controller(self, result: LevelResult, answered: dict[str, float],
                          since: datetime) -> None:
        rows = asyncio.run(_read_calls(self.stack.settings.database_url,
                                       self.stack.settings.instance, since))
        for call in rows:
            times = {}
            for event in call["timeline"]:
                times.setdefault(event["kind"], datetime.fromisoformat(event["at"]).timestamp())
            if "prompt.greeting" in times:
                if call["uniqueid"] in answered:
                    result.first_prompt_ms.append(
                        (times["prompt.greeting"] - answered[call["uniqueid"]]) * 1000)
                if "call.started" in times:
                    result.controller_part_ms.append(
                        (times["prompt.greeting"] - times["call.started"]) * 1000)
            verdict = controller_verdict(call)
            if verdict is None:
                result.completed += 1
            else:
                result.fail(verdict)
        for _ in range(result.calls - len(rows)):
            result.fail("no call stored")
        result.completed = min(result.completed, result.sipp_ok)

    def _judge_plain(self, result: LevelResult, events: list[dict[str, str]],
                     answered: dict[str, float]) -> None:
        from ivr.flows.audio import analyse

        prompted = stamps(events, "BenchPrompt")
        result.first_prompt_ms = [(prompted[u] - answered[u]) * 1000
                                  for u in answered if u in prompted]
        done = {e["Uniqueid"]: e for e in events if e.get("UserEvent") == "BenchDone"}
        for uid in answered:
            e = done.get(uid)
            recording = self.spool / f"{uid}.wav"
            if e is None:
                result.fail("did not reach the end")
            elif e.get("Key") != "4":
                result.fail("menu key not read")
            elif e.get("Record") != "DTMF":
                result.fail(f"recording ended by {e.get('Record') or '?'}")
            elif not recording.exists() or not analyse(recording).has_voice:
                result.fail("recording without voice")
            else:
                result.completed += 1
            recording.unlink(missing_ok=True)
        for _ in range(result.calls - len(answered)):
            result.fail("not answered")
        result.completed = min(result.completed, result.sipp_ok)

    # --- the ramp ---------------------------------------------------------------------
    def run(self) -> list[LevelResult]:
        args = self.args
        load = os.getloadavg()
        print(f"Asterisk {self.stack.pbx.root.version}; {psutil.cpu_count()} CPUs; load "
              f"{load[0]:.1f} {load[1]:.1f}; levels {', '.join(map(str, args.levels))}; "
              f"each level's calls started within {args.spread:g} s; budget "
              f"{args.budget:.0f} s; calls about "
              f"{self.call_s[CONTROLLER]:.0f} s (controller) and {self.call_s[PLAIN]:.0f} s "
              "(plain)", flush=True)
        results: list[LevelResult] = []
        stopped: dict[str, str] = {}
        for concurrency in args.levels:
            for variant in VARIANTS:
                if variant in stopped:
                    continue
                if self.remaining() < self.need_s(variant, concurrency):
                    stopped[variant] = f"time budget spent before level {concurrency}"
                    print(f"  {variant:10s} c={concurrency:<3d} skipped: time budget spent",
                          flush=True)
                    continue
                res = self.run_level(variant, concurrency)
                results.append(res)
                print(f"  {variant:10s} c={concurrency:<3d} {res.completed}/{res.calls} "
                      f"completed, peak {res.peak()} up at once, {res.wall_s:.0f} s",
                      flush=True)
                if res.failed:
                    stopped[variant] = f"failed calls at level {concurrency}"
        self.stopped = stopped
        return results


# --- reporting ---------------------------------------------------------------------------

def _f(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table(results: list[LevelResult]) -> str:
    head = ("conc", "variant", "calls", "ok", "fail", "peak", "call", "1st prompt",
            "p99", "Ast CPU", "Ast", "ctl CPU", "ctl", "Ast RSS", "Ast", "ctl RSS", "ctl")
    units = ("", "", "", "", "", "", "s", "p50 ms", "ms", "ms/call", "%core/call",
             "ms/call", "%core/call", "peak MB", "KB/call", "peak MB", "KB/call")
    rows = [head, units]
    for r in sorted(results, key=lambda r: (r.concurrency, VARIANTS.index(r.variant))):
        n = len(r.intervals)
        rows.append((str(r.concurrency), r.variant, str(r.calls), str(r.completed),
                     str(r.failed), str(r.peak()), _f(r.call_seconds() / n if n else math.nan),
                     _f(percentile(r.first_prompt_ms, 50)),
                     _f(percentile(r.first_prompt_ms, 99)),
                     _f(r.cpu_ms_per_call("asterisk"), 0),
                     _f(r.core_pct_per_call("asterisk"), 2),
                     _f(r.cpu_ms_per_call("controller"), 0),
                     _f(r.core_pct_per_call("controller"), 2),
                     _f(r.rss_mb("asterisk")), _f(r.rss_kb_per_call("asterisk"), 0),
                     _f(r.rss_mb("controller")), _f(r.rss_kb_per_call("controller"), 0)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 1 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(2, "-" * len(lines[0]))
    return "\n".join(lines)


def summary(results: list[LevelResult], stopped: dict[str, str]) -> list[str]:
    out = []
    for variant in VARIANTS:
        mine = [r for r in results if r.variant == variant]
        clean = [r for r in mine if not r.failed]
        best = max(clean, key=lambda r: r.concurrency, default=None)
        reached = (f"level {best.concurrency} with no failed call ({best.peak()} calls up "
                   "at once)") if best else "no level without a failed call"
        why = stopped.get(variant, "all levels run")
        out.append(f"{variant}: {reached}; ramp ended: {why}")
    return out


def notes(results: list[LevelResult]) -> list[str]:
    out = []
    for r in results:
        extra = [f"{reason} x{n}" for reason, n in sorted(r.failures.items())]
        if r.sipp_failed:
            extra.append(f"SIPp counted {r.sipp_failed} failed")
        if r.note:
            extra.append(r.note)
        if extra:
            out.append(f"  {r.variant} c={r.concurrency}: " + "; ".join(extra))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help="levels 10,40 (about 2 minutes)")
    parser.add_argument("--levels", help="comma-separated concurrency levels (calls at once)")
    parser.add_argument("--spread", type=float, default=3.0,
                        help="seconds over which a level's calls start (default 3)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run; a level that would not fit ends "
                             "that variant's ramp (default 290; quick 140)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    args.levels = (tuple(int(x) for x in args.levels.split(",")) if args.levels
                   else QUICK_LEVELS if args.quick else DEFAULT_LEVELS)
    if any(c < 1 or c > 300 for c in args.levels):  # Asterisk's RTP range holds 500 calls
        parser.error("--levels: each level must be 1-300")
    if not 0.1 <= args.spread <= 60:
        parser.error("--spread: 0.1-60 seconds")
    args.budget = args.budget or (140.0 if args.quick else 290.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    try:
        bench.setup()
        results = bench.run()
    finally:
        bench.close()
    print()
    print("Full after-hours call (controller: `ivr serve` + FastAGI) vs the same menu as "
          "plain dialplan, concurrent SIPp callers")
    print(table(results))
    print("peak: calls up at once. call: mean length. 1st prompt: answer (UserEvent after "
          "Answer(), Asterisk's AMI timestamp) to\nthe first prompt (controller: its "
          "prompt.greeting DB event; plain: a UserEvent before Playback()).\nCPU: process "
          "user+system over the level per call placed, and as % of one core per call up. "
          "RSS: peak, and growth per call up.\nctl: the controller process (none for plain). "
          "SIPp runs on the same machine.")
    print(f"idle, no call up: Asterisk {bench.idle['asterisk']:.2f}% of a core, controller "
          f"{bench.idle['controller']:.2f}% (included in the CPU columns)")
    ctl_part = [ms for r in results for ms in r.controller_part_ms]
    if ctl_part:
        print(f"controller's own part of the first-prompt delay (call.started to "
              f"prompt.greeting): p50 {percentile(ctl_part, 50):.1f} ms, "
              f"p99 {percentile(ctl_part, 99):.1f} ms")
    for line in summary(results, bench.stopped) + notes(results):
        print(line)
    print(f"total {time.monotonic() - bench.started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([{
            "variant": r.variant, "concurrency": r.concurrency, "calls": r.calls,
            "completed": r.completed, "failed": r.failed, "failures": r.failures,
            "peak": r.peak(), "wall_s": r.wall_s,
            "mean_call_s": r.call_seconds() / len(r.intervals) if r.intervals else None,
            "first_prompt_ms_p50": percentile(r.first_prompt_ms, 50),
            "first_prompt_ms_p99": percentile(r.first_prompt_ms, 99),
            "cpu_s": r.cpu, "rss_peak_bytes": r.rss_peak, "rss_start_bytes": r.rss_start,
            } for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
