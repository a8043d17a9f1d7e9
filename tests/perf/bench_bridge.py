"""Benchmark (a script, not a test): triage to a ringing clinician, and 1 to the bridge.

Run: .venv/bin/python -m tests.perf.bench_bridge [--quick] [--urgent 20] [--load 40]
     [--gap 3] [--json out.json] [--keep]
     (about 3.5 minutes; --quick: 5 urgent callers 2 s apart, load 20, under 2).
     Prints numbers only; asserts nothing. Traffic stays on 127.0.0.1.

The real `ivr serve` (a subprocess, production log level) against a throwaway Asterisk
instance, Sunny Pediatrics forced closed by a manual override, as in bench_capacity.py
(whose set-up, callers and SIPp runner this script imports). Urgent callers do the same
intake as its callers (greeting and notice skipped, caller ID accepted, date of birth
keyed and confirmed, name and reason spoken) and then press 1 (urgent) in the menu, one
caller every --gap seconds. The escalation chain rings the on-call nurse through the
clinician gateway, where one multi-number SIPp phone (support.sipp.start_multi_phone) plays
every clinician: 180 Ringing, answers 0.5 s later, presses 1 (RFC 2833) 2.5 s after the
answer, and again at 8 s in case the first press was lost. Once a caller and a clinician
are bridged the bench hangs the caller up (AMI Hangup, 1 s later), so calls do not
linger. Two phases, in the same run and with the same controller process:

- quiet: the urgent callers only. They overlap each other (an urgent call lasts about
  30 s), so "quiet" means about 30 / --gap calls up, all urgent.
- load: the same urgent callers while --load routine callers of bench_capacity.py (its
  full after-hours call, routine key 4) keep arriving, `load` per call length, from one
  SIPp: after one call length there are about --load of them up at once. The urgent
  callers start so that the first reaches the menu when the load is up to size. The load
  is cut once the last urgent call should be bridged (SIPp's global timeout; SIPp sends
  no BYE then, so the bench has Asterisk hang up what is left).

Per urgent call, times from two clocks of the same machine: AMI event Timestamps
(Asterisk's wall clock, `timestampevents`) and the controller's timeline events in the
database (its wall clock, datetime.now(UTC) at the write):
- t_triage: the controller's `menu.key` event with result urgent (database), written as
  soon as the key is read; the first ring is placed next, then the caller hears the
  "connecting" prompt while it rings.
- t_placed: its first `oncall.leg` event (database), written just before the Originate.
- t_ring: the earliest AMI Newstate to Ringing (ChannelState 5) of the call's clinician
  legs (channel Uniqueid `ivrleg-<leg id>`, the leg rows in oncall_legs): the first
  ring's, since every clinician's phone rings here.
- t_key: the AMI DTMFEnd of 1 received on the accepting leg, the last one before the
  bridge (so a first press Asterisk dropped shows as a second-key acceptance).
- t_accepted: the `oncall.leg.result` event with result accepted (database): the
  caller's side of the controller has seen the screen's accept.
- t_bridge: the later of the two AMI BridgeEnter events (caller and accepting leg) of
  the bridge they share: the moment both are in.

Columns, per phase (quiet, load): n, p50, p99 and max in milliseconds, of
- ring: t_ring - t_triage (what the issue asks), split into triage->placed (controller
  clock only) and placed->ringing (controller to Asterisk);
- bridge: t_bridge - t_key, split into key->accepted (Asterisk to controller: the
  screen's DTMF, its database writes and sentinel) and accepted->bridged (controller to
  Asterisk: the caller's side sets the bridge target and the sentinel, the dialplan's
  Bridge()).
With 20 calls a phase p99 is the largest value (nearest rank); --urgent 100 for a real
p99.
Below the table: urgent calls bridged or not (and why, from the database), calls up at
each urgent call's triage (from the dialplan's IvrInbound / IvrCallEnded UserEvents),
how the load calls ended, and the CPU of Asterisk and the controller in each phase.
SIPp (callers and phones) runs on the same machine.

The bench's own AMI user (read call,dtmf,user: the controller's user cannot see DTMF)
is appended to this instance's manager.conf only. Ports come from a tests/harness
PortPlan slot that neither `make test`'s workers (0-7, or 12-19 with
IVR_TEST_WORKER_OFFSET=12) nor bench_capacity.py (18-23) use. The instance, its database
and recordings are deleted at the end (--keep keeps the work folder).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from tests.perf.bench_capacity import (
    CONTROLLER,
    SUNNY_DID,
    Bench,
    UserEvents,
    _read_calls,
    controller_timeline,
    controller_verdict,
)
from tests.perf.benchlib import (
    REPO,
    cpu_s,
    percentile,
    run_sipp,
    sipp_counts,
    use_port_slot,
    wide_listener,
)

QUIET, LOAD = "quiet", "load"
URGENT_CALLER = "+16175550177"  # the load's callers use bench_capacity.CALLER_ID
# ms after the answer; the 2nd if the 1st is lost. The first phones ring while the caller
# still hears "connecting" (about 4 s): a clinician pressing 1 within it would wait for
# the prompt's end, so the key comes after it, as it would from a clinician who listened.
CLINICIAN_KEYS = ((5000, "1"), (10000, "1"))
HOLD_MS = 60000  # an urgent caller not bridged by then (after the menu) hangs up
HANGUP_AFTER_BRIDGE_S = 1.0
BRIDGE_BY_S = 16.0  # menu to bridge, with the second key and slack: the load lasts this long
# PortPlan slots (tests/harness) as PortPlan sees them, IVR_TEST_WORKER_OFFSET included:
# not 0-7 (make test), 12-19 (make test with offset 12), 18-23 (bench_capacity.py).
PORT_SLOTS = (24, 11, 10, 9, 8)
BENCH_AMI_USER = "ivrbench"
KINDS = frozenset({"UserEvent", "Newstate", "DTMFEnd", "BridgeEnter"})


class AmiEvents(UserEvents):
    """bench_capacity's raw AMI listener, with call and DTMF events, and Hangup."""

    def hangup(self, channel: str) -> None:
        try:
            self._sock.sendall(f"Action: Hangup\r\nChannel: {channel}\r\n\r\n".encode())
        except OSError:
            pass


# --- one urgent call, measured -------------------------------------------------------------

@dataclass
class Sample:
    uniqueid: str
    bridged: bool = False
    why: str = ""  # why not bridged
    ring_ms: float | None = None
    placed_ms: float | None = None  # triage -> leg placed
    leg_ring_ms: float | None = None  # placed -> ringing
    bridge_ms: float | None = None
    accept_ms: float | None = None  # key -> accepted
    join_ms: float | None = None  # accepted -> bridged
    second_key: bool = False
    up_at_triage: int | None = None  # calls up (all kinds) at t_triage
    load_up_at_triage: int | None = None


@dataclass
class Phase:
    name: str
    load: int
    urgent: int
    started: datetime
    mark: int
    wall_s: float = 0.0
    cut_s: float | None = None  # load cut, seconds after the phase began
    samples: list[Sample] = field(default_factory=list)
    load_ok: int = 0
    load_failed: dict[str, int] = field(default_factory=dict)
    load_cut: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core over the phase
    sipp: dict[str, tuple[int, int]] = field(default_factory=dict)
    note: str = ""


def _ts(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


class Index:
    """The AMI events of one phase, by what the measurements look up."""

    def __init__(self, events: list[dict[str, str]]) -> None:
        self.ringing: dict[str, float] = {}
        self.keys: dict[str, list[float]] = {}
        self.enters: list[tuple[float, str, str]] = []  # (ts, bridge, uniqueid)
        self.answered: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        for e in events:
            try:
                ts = float(e["Timestamp"])
            except (KeyError, ValueError):
                continue
            uid, kind = e.get("Uniqueid", ""), e.get("Event")
            if kind == "Newstate" and e.get("ChannelState") == "5":
                self.ringing.setdefault(uid, ts)
            elif kind == "DTMFEnd" and e.get("Direction") == "Received" \
                    and e.get("Digit") == "1":
                self.keys.setdefault(uid, []).append(ts)
            elif kind == "BridgeEnter":
                self.enters.append((ts, e.get("BridgeUniqueid", ""), uid))
            elif kind == "UserEvent" and e.get("UserEvent") == "IvrInbound":
                self.answered.setdefault(uid, ts)
            elif kind == "UserEvent" and e.get("UserEvent") == "IvrCallEnded":
                self.ended.setdefault(uid, ts)

    def bridge(self, caller: str, leg: str) -> float | None:
        """When caller and leg were both in one bridge (the later BridgeEnter)."""
        legs = {b: ts for ts, b, u in self.enters if u == leg}
        both = [max(ts, legs[b]) for ts, b, u in self.enters if u == caller and b in legs]
        return min(both, default=None)

    def up_at(self, t: float, only: set[str] | None = None) -> int:
        return sum(1 for u, a in self.answered.items()
                   if a <= t < self.ended.get(u, math.inf) and (only is None or u in only))


def measure(call: dict[str, Any], ix: Index, load_ids: set[str]) -> Sample:
    """One urgent call's sample from its database record and the phase's AMI events."""
    s = Sample(call["uniqueid"])
    times: dict[str, float] = {}
    accepted_at = None
    for event in call["timeline"]:
        at = _ts(event["at"])
        assert at is not None
        detail = event.get("detail") or {}
        if event["kind"] == "menu.key" and detail.get("result") == "urgent":
            times.setdefault("triage", at)
        elif event["kind"] == "oncall.leg":
            times.setdefault("placed", at)
        elif event["kind"] == "oncall.leg.result" and detail.get("result") == "accepted":
            accepted_at = accepted_at or at
    triage = times.get("triage")
    if triage is not None:
        s.up_at_triage = ix.up_at(triage)
        s.load_up_at_triage = ix.up_at(triage, load_ids)
    legs = [leg for leg in call.get("oncall_legs", []) if leg["kind"] == "live"]
    rings = [ix.ringing[f"ivrleg-{leg['id']}"] for leg in legs
             if f"ivrleg-{leg['id']}" in ix.ringing]
    if triage is not None and rings:
        s.ring_ms = (min(rings) - triage) * 1000
        if "placed" in times:
            s.placed_ms = (times["placed"] - triage) * 1000
            s.leg_ring_ms = (min(rings) - times["placed"]) * 1000
    accepted = next((leg for leg in legs if leg["status"] == "accepted"), None)
    if triage is None:
        s.why = f"disposition {call.get('disposition')}"
    elif not legs:
        s.why = "no clinician leg"
    elif accepted is None:
        s.why = "no leg accepted (" + ", ".join(leg["status"] for leg in legs) + ")"
    else:
        leg_uid = f"ivrleg-{accepted['id']}"
        t_bridge = ix.bridge(call["uniqueid"], leg_uid)
        keys = [t for t in ix.keys.get(leg_uid, []) if t_bridge is None or t <= t_bridge]
        if t_bridge is None:
            s.why = "accepted, no bridge seen"
        elif not keys:
            s.why = "bridged, no key seen"
        else:
            s.bridged = True
            s.bridge_ms = (t_bridge - keys[-1]) * 1000
            s.second_key = len(keys) > 1
            if accepted_at is not None:
                s.accept_ms = (accepted_at - keys[-1]) * 1000
                s.join_ms = (t_bridge - accepted_at) * 1000
    if not s.bridged and call.get("abandoned_step"):
        s.why += f"; caller gone at {call['abandoned_step']}"
    return s


# --- the bench -----------------------------------------------------------------------------

class BridgeBench(Bench):
    """bench_capacity's Bench (set-up, controller, clean-up), with phones and phases."""

    def __init__(self, args: argparse.Namespace) -> None:
        from harness import Stack

        # Not Bench.__init__: its port slots are bench_capacity's own.
        self.args = args
        self.started = time.monotonic()
        self.deadline = math.inf
        self.workdir = Path(tempfile.mkdtemp(prefix="ivr-bridge-"))
        self.slot = use_port_slot(PORT_SLOTS)
        self.stack = Stack(name=f"brg{os.getpid()}", workdir=self.workdir)
        self.controller: subprocess.Popen[bytes] | None = None
        self.events: UserEvents | None = None
        self.phone: subprocess.Popen[str] | None = None
        self.connecting_s = math.nan

    def setup(self) -> None:
        """bench_capacity's set-up, then our AMI user, the urgent caller and the phones."""
        from harness import timed_caller_scenario
        from support.sipp import CallerSpec, PhoneBehaviour, start_multi_phone

        from ivr.flows.speech import PlayFile, PromptLibrary
        from ivr.rules import load_rules

        # What judging needs, loaded now: a run is judged by the code it ran with.
        for module in ("ivr.records.calls", "ivr.oncall.callbacks", "ivr.db.engine"):
            importlib.import_module(module)
        super().setup()
        assert self.events is not None
        self.events.close()  # its listener sees UserEvents only; ours replaces it
        self.events = None
        pbx = self.stack.pbx
        self.events = wide_listener(pbx, self.stack.settings.ami_port, BENCH_AMI_USER,
                                    "call,dtmf,user", KINDS, AmiEvents)
        keys, _ = controller_timeline(self.prompt_s["ask_name"], self.prompt_s["ask_reason"])
        self.menu_ms = keys[-1][0]
        spec = CallerSpec(caller_id=URGENT_CALLER,
                          audio_pcap=str(self.workdir / "speech.pcap"))
        self.urgent_xml = timed_caller_scenario(spec, [*keys[:-1], (self.menu_ms, "1")],
                                                self.menu_ms + HOLD_MS)
        # Every clinician the chain may ring answers and presses 1; other numbers: busy.
        sunny = load_rules(REPO / "routing_rules", now=datetime.now(UTC)).rules \
            .practices["sunny-pediatrics"]
        phones = {c.phone.lstrip("+"): PhoneBehaviour(keys=CLINICIAN_KEYS)
                  for c in sunny.on_call.clinicians.values()}
        lib = PromptLibrary(self.stack.pbx.host_dir / "sounds" / "ivr",
                            self.stack.pbx.inner_path, self.stack.settings.cache_dir)
        self.connecting_s = sum(self._seconds(item.path) for item in
                                lib.items(sunny, "connecting") if isinstance(item, PlayFile))
        self.phone = start_multi_phone(phones, PhoneBehaviour(busy=True),
                                       self.stack.settings.gateway_port,
                                       self.workdir / "phones",
                                       media_port=self.stack.ports.next(4))
        time.sleep(1)
        if self.phone.poll() is not None:
            errors = self.workdir / "phones"
            raise RuntimeError(f"the clinicians' SIPp phone exited; see {errors}")

    def close(self) -> None:
        if self.phone is not None and self.phone.poll() is None:
            self.phone.send_signal(signal.SIGTERM)
            try:
                self.phone.wait(10)
            except subprocess.TimeoutExpired:
                self.phone.kill()
                self.phone.wait(5)
        super().close()

    # --- one phase ----------------------------------------------------------------------
    def run_phase(self, name: str, load: int) -> Phase:
        assert self.events is not None
        args = self.args
        phase = Phase(name, load, args.urgent, datetime.now(UTC), self.events.mark())
        procs = {"asterisk": self.asterisk, "controller": self.controller_ps}
        cpu0 = {who: cpu_s(p) for who, p in procs.items()}
        t0 = time.monotonic()
        results: dict[str, subprocess.CompletedProcess[str]] = {}
        threads = []
        urgent_spread = args.urgent * args.gap
        if load:
            call_s = self.call_s[CONTROLLER]
            # The first urgent caller reaches the menu as the load is up to size.
            lead = max(0.0, call_s - self.menu_ms / 1000)
            cut = lead + (args.urgent - 1) * args.gap + self.menu_ms / 1000 + BRIDGE_BY_S
            waves = math.ceil(cut / call_s) + 1
            phase.cut_s = cut
            # `load` arrivals per call length, evenly spaced: `load` calls up after one
            # call length. SIPp's global timeout ends the load (and its calls) at `cut`.
            threads.append(self._sipp(results, "load", self.scenario[CONTROLLER],
                                      load * waves, call_s * waves, int(cut)))
            time.sleep(lead)
        threads.append(self._sipp(results, "urgent", self.urgent_xml, args.urgent,
                                  urgent_spread, int(urgent_spread + HOLD_MS / 1000
                                                     + self.menu_ms / 1000 + 30)))
        self._hang_up_bridged(phase.mark, threads)
        for thread in threads:
            thread.join()
        phase.wall_s = time.monotonic() - t0
        phase.cpu = {who: (cpu_s(p) - cpu0[who]) * 100 / phase.wall_s
                     for who, p in procs.items()}
        phase.sipp = {k: sipp_counts(r.stdout) for k, r in results.items()}
        self._drain(phase)
        return phase

    def _sipp(self, results: dict[str, subprocess.CompletedProcess[str]], key: str,
              xml: str, calls: int, spread_s: float, timeout_s: int) -> threading.Thread:
        def run() -> None:
            results[key] = run_sipp(xml, self.stack.target, SUNNY_DID,
                                    self.workdir / f"{key}-{time.monotonic():.0f}",
                                    calls=calls, spread_s=spread_s,
                                    local_port=self.stack.ports.next(),
                                    media_port=self.stack.ports.next(4),
                                    timeout_s=timeout_s)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def _hang_up_bridged(self, mark: int, threads: list[threading.Thread]) -> None:
        """Until the callers are done: hang up each caller 1 s after its bridge."""
        assert isinstance(self.events, AmiEvents)
        seen = mark
        members: dict[str, list[tuple[str, str]]] = {}
        due: list[tuple[float, str]] = []
        done: set[str] = set()
        while any(t.is_alive() for t in threads):
            new = self.events.since(seen)
            seen += len(new)
            for e in new:
                if e.get("Event") != "BridgeEnter":
                    continue
                bridge = e.get("BridgeUniqueid", "")
                members.setdefault(bridge, []).append((e.get("Uniqueid", ""),
                                                       e.get("Channel", "")))
                uids = [u for u, _ in members[bridge]]
                if any(u.startswith("ivrleg-") for u in uids):
                    for uid, channel in members[bridge]:
                        if not uid.startswith("ivrleg-") and uid not in done:
                            done.add(uid)
                            due.append((time.monotonic() + HANGUP_AFTER_BRIDGE_S, channel))
            now = time.monotonic()
            for at, channel in [d for d in due if d[0] <= now]:
                self.events.hangup(channel)
                due.remove((at, channel))
            time.sleep(0.2)

    def _drain(self, phase: Phase) -> None:
        """No calls left before the next phase. SIPp's global timeout (the load's cut)
        sends no BYE: Asterisk still holds those calls, and is told to hang them up."""
        deadline = time.monotonic() + 3
        while self.stack.channels() and time.monotonic() < deadline:
            time.sleep(0.5)
        if self.stack.channels():
            if not phase.load:
                phase.note = "channels left after the phase, hung up"
            self.stack.hangup_all()
            deadline = time.monotonic() + 15
            while self.stack.channels() and time.monotonic() < deadline:
                time.sleep(0.5)
        time.sleep(1)  # the controller's records of the last hang-ups

    # --- the run ------------------------------------------------------------------------
    def run(self) -> list[Phase]:
        args = self.args
        load = os.getloadavg()
        print(f"Asterisk {self.stack.pbx.root.version}; {psutil.cpu_count()} CPUs; load "
              f"{load[0]:.1f} {load[1]:.1f}; port slot {self.slot}; {args.urgent} urgent "
              f"callers a phase, one every {args.gap:g} s; load {args.load} routine callers "
              f"(calls about {self.call_s[CONTROLLER]:.0f} s, menu at "
              f"{self.menu_ms / 1000:.1f} s)", flush=True)
        self.start_controller()
        phases = []
        try:
            for name, level in ((QUIET, 0), (LOAD, args.load)):
                phase = self.run_phase(name, level)
                phases.append(phase)
                print(f"  {name:5s} {phase.wall_s:.0f} s", flush=True)
            self.judge(phases)
        finally:
            self.stop_controller()
        return phases

    def judge(self, phases: list[Phase]) -> None:
        """Each phase's urgent calls measured, its load calls counted (from the DB)."""
        assert self.events is not None
        rows = asyncio.run(_read_calls(self.stack.settings.database_url,
                                       self.stack.settings.instance, phases[0].started))
        for i, phase in enumerate(phases):
            end = phases[i + 1].mark if i + 1 < len(phases) else None
            events = self.events.since(phase.mark)
            if end is not None:
                events = events[:end - phase.mark]
            ix = Index(events)
            until = phases[i + 1].started if i + 1 < len(phases) else datetime.now(UTC)
            mine = [c for c in rows
                    if phase.started <= datetime.fromisoformat(c["started_at"]) < until]
            urgent = [c for c in mine if (c.get("caller") or "").endswith(URGENT_CALLER[2:])]
            load_calls = [c for c in mine if c not in urgent]
            load_ids = {c["uniqueid"] for c in load_calls}
            phase.samples = [measure(c, ix, load_ids) for c in urgent]
            for _ in range(phase.urgent - len(urgent)):
                phase.samples.append(Sample("", why="no call stored"))
            cut_at = phase.started.timestamp() + (phase.cut_s or math.inf)
            for call in load_calls:
                verdict = controller_verdict(call)
                ended = _ts(call.get("ended_at")) or math.inf
                if verdict is None:
                    phase.load_ok += 1
                elif ended >= cut_at - 1:  # still up when the load was cut
                    phase.load_cut += 1
                else:
                    phase.load_failed[verdict] = phase.load_failed.get(verdict, 0) + 1


# --- reporting -----------------------------------------------------------------------------

ROWS = (("ring: triage -> ringing", "ring_ms"), ("  triage -> leg placed", "placed_ms"),
        ("  leg placed -> ringing", "leg_ring_ms"), ("bridge: key 1 -> bridged", "bridge_ms"),
        ("  key -> accepted", "accept_ms"), ("  accepted -> bridged", "join_ms"))


def _f(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.0f}"


def stats(phase: Phase, attr: str) -> tuple[int, float, float, float]:
    values = [v for s in phase.samples if (v := getattr(s, attr)) is not None]
    return (len(values), percentile(values, 50), percentile(values, 99),
            max(values, default=math.nan))


def table(phases: list[Phase]) -> str:
    head = ["", *[x for p in phases for x in
                  (f"{p.name} n", "p50", "p99", "max")]]
    units = ["ms", *["", "ms", "ms", "ms"] * len(phases)]
    rows = [head, units]
    for label, attr in ROWS:
        row = [label]
        for p in phases:
            n, p50, p99, top = stats(p, attr)
            row += [str(n), _f(p50), _f(p99), _f(top)]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    lines.insert(2, "-" * len(lines[0]))
    return "\n".join(lines)


def details(phases: list[Phase]) -> list[str]:
    out = []
    for p in phases:
        bridged = sum(s.bridged for s in p.samples)
        why: dict[str, int] = {}
        for s in p.samples:
            if not s.bridged:
                why[s.why] = why.get(s.why, 0) + 1
        line = f"{p.name}: {bridged}/{len(p.samples)} urgent calls bridged"
        if why:
            line += " (not: " + "; ".join(f"{w} x{n}" for w, n in sorted(why.items())) + ")"
        second = sum(s.second_key for s in p.samples)
        if second:
            line += f"; {second} accepted only on the clinician's second 1"
        out.append(line)
        ups = [s.up_at_triage for s in p.samples if s.up_at_triage is not None]
        loads = [s.load_up_at_triage for s in p.samples if s.load_up_at_triage is not None]
        if ups:
            out.append(f"  calls up at each triage: mean {sum(ups) / len(ups):.0f} "
                       f"(min {min(ups)}, max {max(ups)}), of them routine load: mean "
                       f"{sum(loads) / len(loads):.0f} (min {min(loads)}, max {max(loads)})")
        if p.load:
            failed = sum(p.load_failed.values())
            line = (f"  load calls: {p.load_ok} completed as routine, {failed} failed, "
                    f"{p.load_cut} cut at the end ({p.cut_s:.0f} s)")
            if failed:
                line += " (" + "; ".join(f"{w} x{n}" for w, n in
                                         sorted(p.load_failed.items())) + ")"
            out.append(line)
        out.append(f"  CPU over the phase ({p.wall_s:.0f} s): Asterisk "
                   f"{p.cpu.get('asterisk', math.nan):.0f}% of a core, controller "
                   f"{p.cpu.get('controller', math.nan):.0f}%"
                   + (f"; {p.note}" if p.note else ""))
    return out


def _no_nan(value: Any) -> Any:
    """JSON has no NaN: an empty statistic is null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help="5 urgent callers, load 20 (under 2 minutes)")
    parser.add_argument("--urgent", type=int, help="urgent callers a phase (default 20)")
    parser.add_argument("--load", type=int,
                        help="routine callers up at once in the load phase (default 40)")
    parser.add_argument("--gap", type=float,
                        help="seconds between urgent callers (default 3; quick 2)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    args.urgent = args.urgent or (5 if args.quick else 20)
    args.load = args.load if args.load is not None else (20 if args.quick else 40)
    args.gap = args.gap or (2.0 if args.quick else 3.0)
    if not 1 <= args.urgent <= 200:
        parser.error("--urgent: 1-200")
    if not 1 <= args.load <= 300:  # Asterisk's RTP range holds 500 calls
        parser.error("--load: 1-300")
    if not 0.2 <= args.gap <= 60:
        parser.error("--gap: 0.2-60 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = BridgeBench(args)
    try:
        bench.setup()
        phases = bench.run()
    finally:
        bench.close()
    print()
    print(f"Urgent call to the on-call clinician: quiet PBX vs {args.load} routine callers "
          "up (bench_capacity's full after-hours call)")
    print(table(phases))
    print("triage: the controller's menu.key event (DB, controller clock). ringing: AMI "
          "Newstate Ringing of the first clinician leg\n(Asterisk clock). key: AMI DTMFEnd "
          "'1' from the clinician. bridged: the later BridgeEnter of caller and clinician.\n"
          "placed / accepted: the controller's oncall.leg / oncall.leg.result events (DB).\n"
          f"The first ring is placed before the \"connecting\" prompt "
          f"({bench.connecting_s * 1000:.0f} ms of audio) the caller hears while it rings.")
    for line in details(phases):
        print(line)
    print(f"total {time.monotonic() - bench.started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(_no_nan([{
            "phase": p.name, "load": p.load, "urgent": p.urgent, "wall_s": p.wall_s,
            "cut_s": p.cut_s, "bridged": sum(s.bridged for s in p.samples),
            **{f"{attr}_{k}": v for _, attr in ROWS
               for k, v in zip(("n", "p50", "p99", "max"), stats(p, attr), strict=True)},
            "load_ok": p.load_ok, "load_failed": p.load_failed, "load_cut": p.load_cut,
            "connecting_prompt_s": bench.connecting_s, "cpu_pct": p.cpu, "sipp": p.sipp,
            "samples": [asdict(s) for s in p.samples],
        } for p in phases]), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
