"""Benchmark (a script, not a test): a night measured, as a practice would judge it.

Run: .venv/bin/python -m tests.perf.bench_night [--quick] [--calls 40] [--seed 7]
     [--minute-seconds 4] [--json out.json] [--keep]
     (about 6 minutes; --quick: 12 calls, about 3). Prints numbers only; asserts nothing.
     Traffic stays on 127.0.0.1.

The real controller (`ivr serve`, via tests/harness.Stack) and a throwaway Asterisk
instance run a copy of the two example practices, both made closed for the night with
`ivr override set`. SIPp callers arrive at seeded random times with a mix of routine,
urgent and emergency calls, hang-ups at random steps and calls to an unknown number.
Clinicians' phones are one multi-number SIPp phone behind the gateway:

- Sunny Pediatrics: the nurse on call declines (presses 2), the physician on call's
  voicemail answers and plays a greeting (no key), Dr. Lindqvist presses 1: urgent calls
  are taken live at the third step.
- Mesa Family Medicine: the physician on call never answers, and the caller's wait
  ends before the `together` step, so nobody answers live; the call-backs ring the
  on-call physician (attempts_per_person times) and then the next physician, who
  presses 1 and acknowledges.

The copy differs from the examples in what keeps a run short and local: ring times
shortened, one attempt per Sunny step, Mesa's caller wait cut to one step, and only the
e-mail delivery kept (fax and webhook would dial or leave the machine). The e-mail goes to
an aiosmtpd server inside this script on 127.0.0.1, over STARTTLS with a self-signed
certificate (IVR_SMTP_HOST/_PORT/_TLS/_CAFILE in the controller's environment). Rules
minutes (call-back intervals) last --minute-seconds real seconds
(IVR_ONCALL_MINUTE_SECONDS); ring, prompt and intake times are real seconds.

The morning: when the call-backs are over, the practices open a few seconds later. The
copy's weekly hours are cut to one period two days on and the night's override cleared,
then `ivr override set --open --from T` makes T the first opening after local midnight,
i.e. the morning opening that ends the night. At T the bench runs `ivr report --practice
ID --night DATE --deliver` (what the controller's report task does at an opening), waits
(bounded) for the controller's outbox, and reads `ivr deliveries list --json` and the
SMTP server's log. A call counts as delivered by opening time when it is in its
practice's report and that report's e-mail reached the SMTP server within
OPENING_GRACE_MIN rules minutes of T (the report cannot exist before T: it is made at the
opening, so the grace is the outbox's).

The figures come from the records only: `ivr calls list --json`, each call as `ivr calls
show` has it (read in-process with the same function, to keep 40 reads fast), `ivr
callbacks list --all --json`, the report made at the opening (its JSON, as sent), `ivr
deliveries list --json`, and the arrival times the SMTP server logged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from tests.perf.bench_bridge import CLINICIAN_KEYS, PORT_SLOTS
from tests.perf.bench_capacity import SPEECH, controller_timeline
from tests.perf.benchlib import REPO, percentile, use_port_slot

SUNNY, MESA = "sunny-pediatrics", "mesa-family"
DIDS = {SUNNY: "+16175550100", MESA: "+17205550200"}
UNKNOWN_DID = "+15085550199"  # no practice has it: generic greeting, operator intake
MENU_KEYS = {SUNNY: {"routine": "4", "urgent": "1", "emergency": "9"},
             MESA: {"routine": "0", "urgent": "1", "emergency": "*"}}
KINDS = ("routine", "urgent", "emergency", "hangup", "unknown")
# Share of each kind in a night (the rest of the rounding goes to routine).
MIX = {"urgent": 0.25, "emergency": 0.10, "hangup": 0.15, "unknown": 0.10}
RING_SECONDS = 8
MESA_CALLER_WAIT_S = 18  # two 8 s rings of the on-call, never the `together` step
HOLD_S = 150  # an urgent caller waits this long after the menu for the PBX's BYE
TALK_S = 3.0  # caller and clinician bridged this long, then the bench hangs up
WINDOW_MIN = 15  # "within 15 minutes", in rules minutes
OPENING_LEAD_S = 12.0  # the practices open this long after the night's end
OPENING_GRACE_MIN = 5  # rules minutes after the opening a report may take to arrive
DELIVERY_WAIT_S = 90.0  # after the deadline, how long the outbox is waited for at most


@dataclass
class Planned:
    n: int
    kind: str
    practice: str | None  # None: the unknown number
    caller: str
    start_s: float
    hangup_ms: int | None = None
    rc: int | None = None


@dataclass
class Night:
    planned: list[Planned] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_s: float = 0.0
    drained: bool = True
    # The morning: opening and deadline (epoch s), what `ivr report --deliver` made per
    # practice, the outbox's rows, and the SMTP server's log.
    opening: float | None = None
    deadline: float | None = None
    made: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    morning_error: str | None = None


# --- the rules copy and the phones -----------------------------------------------------

class _RulesLoader(yaml.SafeLoader):
    """YAML 1.1 reads 13:00 as the number 780 and 2026-12-28 as a date; the project's
    loader reads them as text, and so must this copy, or the times would change."""


_RulesLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_RulesLoader.add_implicit_resolver("tag:yaml.org,2002:int",
                                   re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"),
                                   list("-+0123456789"))


def rules_copy(dest: Path) -> Path:
    """The example practices, changed only where a short local run needs it."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "routing_rules" / "mesa-family-oncall.ics", dest)
    for pid in (SUNNY, MESA):
        data = yaml.load((REPO / "routing_rules" / f"{pid}.yaml").read_text(),
                         Loader=_RulesLoader)  # noqa: S506 (a safe loader)
        oc = data["on_call"]
        for step in oc["escalation"]:
            step["ring_seconds"] = RING_SECONDS
            if pid == SUNNY:
                step["attempts"] = 1
        if pid == MESA:
            oc["escalation"][0]["attempts"] = 2
            oc["max_caller_wait_seconds"] = MESA_CALLER_WAIT_S
        data["delivery"] = {"email": data["delivery"]["email"]}
        data.pop("fallback_numbers", None)  # the computed one: the chain's phones
        (dest / f"{pid}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def phones(rules: Any, now: datetime, workdir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Behaviour per dialled number (digits) and who plays what, from tonight's chains."""
    from support.sipp import PhoneBehaviour, speech_pcap

    from ivr.rules.oncall import dial_list

    accept = PhoneBehaviour(keys=CLINICIAN_KEYS)
    decline = PhoneBehaviour(keys=((5000, "2"), (10000, "2")))
    greeting = speech_pcap("Hi, you have reached my voicemail. Please leave a message "
                           "after the tone.", workdir / "voicemail.pcap",
                           tail_silence_s=40)
    voicemail = PhoneBehaviour(audio_pcap=str(greeting))
    behaviours: dict[str, Any] = {}
    roles: dict[str, str] = {}
    for pid in (SUNNY, MESA):
        practice = rules.practices[pid]
        for c in practice.on_call.clinicians.values():
            behaviours[c.phone.lstrip("+")] = accept
        chain = [s for s in dial_list(practice, now) if s.clinician_id]
        firsts = list(dict.fromkeys(s.clinician_id for s in chain))
        numbers = {s.clinician_id: s.number for s in chain}
        if pid == SUNNY:
            plays = dict(zip(firsts, ("declines (2)", "voicemail (no key)"), strict=False))
        else:
            plays = {firsts[0]: "no answer"}
        for cid, what in plays.items():
            behaviours[numbers[cid].lstrip("+")] = {
                "declines (2)": decline, "voicemail (no key)": voicemail,
                "no answer": PhoneBehaviour(answer=False)}[what]
            roles[f"{pid}/{cid}"] = what
        for cid in firsts:
            roles.setdefault(f"{pid}/{cid}", "presses 1")
    return behaviours, roles


# --- the callers -----------------------------------------------------------------------

def plan(total: int, window_s: float, seed: int) -> list[Planned]:
    """The night's calls: kinds by MIX, practices alternating, seeded arrival times."""
    rng = random.Random(seed)
    counts = {k: max(1, round(total * share)) for k, share in MIX.items()}
    counts["routine"] = max(1, total - sum(counts.values()))
    kinds = [k for k in KINDS for _ in range(counts[k])]
    rng.shuffle(kinds)
    starts = sorted(rng.uniform(0, window_s) for _ in kinds)
    seen: dict[str, int] = {}
    out = []
    for n, (kind, start) in enumerate(zip(kinds, starts, strict=True)):
        seen[kind] = seen.get(kind, 0) + 1
        practice = None if kind == "unknown" else (SUNNY, MESA)[seen[kind] % 2]
        prefix = "+1720555" if practice == MESA else "+1617555"
        out.append(Planned(n, kind, practice, f"{prefix}3{n:03d}", round(start, 1)))
    return out


def scenario(p: Planned, ask_s: dict[str, tuple[float, float]], speech: Path,
             rng: random.Random) -> str:
    """The SIPp caller of one planned call (bench_capacity's intake, then the menu)."""
    from harness import timed_caller_scenario
    from support.sipp import CallerSpec

    keys, _ = controller_timeline(*ask_s[p.practice or SUNNY])
    menu_at = keys[-1][0]
    intake = keys[:-1]
    spec = CallerSpec(caller_id=p.caller, audio_pcap=str(speech))
    if p.kind == "unknown":
        return timed_caller_scenario(spec, intake, menu_at + 30000)
    if p.kind == "routine":
        return timed_caller_scenario(spec, [*intake, (menu_at, MENU_KEYS[p.practice or
                                                                     SUNNY]["routine"])],
                                     menu_at + 30000)
    key = MENU_KEYS[p.practice or SUNNY]["emergency" if p.kind == "emergency" else "urgent"]
    timeline = [*intake, (menu_at, key)]
    if p.kind == "hangup":
        # Anywhere from the greeting to the on-call search, seeded.
        p.hangup_ms = rng.randint(1500, menu_at + 20000)
        return timed_caller_scenario(spec, [k for k in timeline if k[0] < p.hangup_ms],
                                     p.hangup_ms, hangup=True)
    return timed_caller_scenario(spec, timeline, menu_at + HOLD_S * 1000)


def prompt_seconds(stack: Any, practice: Any, pid: str) -> float:
    """Length of a practice's (single-file) prompt, as bench_capacity measures it."""
    from ivr.flows.speech import PlayFile, PromptLibrary

    pbx = stack.pbx
    lib = PromptLibrary(pbx.host_dir / "sounds" / "ivr", pbx.inner_path,
                        stack.settings.cache_dir)
    total = 0.0
    for item in lib.items(practice, pid):
        if isinstance(item, PlayFile):
            host = pbx.host_dir / Path(item.path + ".wav").relative_to(pbx.inner_dir)
            with wave.open(str(host)) as w:
                total += w.getnframes() / w.getframerate()
    return total


# --- the practices' mail server and the morning ----------------------------------------

class Inbox:
    """The practices' mail server side: every message with when it arrived (epoch s)."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        entry = {"at": time.time(), "delivery": message.get("X-IVR-Delivery"),
                 "to": list(envelope.rcpt_tos), "subject": str(message.get("Subject", "")),
                 "tls": session.ssl is not None,
                 "attachments": sum(1 for _ in message.iter_attachments())}
        with self._lock:
            self.log.append(entry)
        return "250 2.0.0 queued"


def start_smtp(workdir: Path) -> tuple[Any, Inbox, dict[str, str]]:
    """An aiosmtpd server on 127.0.0.1 that requires STARTTLS, and the controller's env."""
    from aiosmtpd.controller import Controller
    from delivery.test_delivery_email import _self_signed
    from harness import free_port

    cert, key = _self_signed(workdir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                        require_starttls=True)
    server.start()
    env = {"IVR_SMTP_HOST": "127.0.0.1", "IVR_SMTP_PORT": str(port),
           "IVR_SMTP_TLS": "starttls", "IVR_SMTP_CAFILE": str(cert),
           "IVR_SMTP_FROM": "answering-service@bench.example"}
    return server, inbox, env


def open_in_the_morning(stack: Any, folder: Path, rules: Any) -> datetime:
    """Make the practices' morning opening a few seconds from now; return it (UTC).

    In the copy, the weekly hours keep one short period two days on (a practice that never
    opens by its own rules has no night to report) and lose the rest, and the file's
    overrides go, so nothing earlier on the opening's day counts as the morning's; the
    night's override is cleared, and an open override starts at the opening: the first
    opening after local midnight, which ends the night.
    """
    opening = (datetime.now(UTC) + timedelta(seconds=OPENING_LEAD_S)).replace(microsecond=0)
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for pid in (SUNNY, MESA):
        later = opening.astimezone(ZoneInfo(rules.practices[pid].timezone)) + timedelta(days=2)
        path = folder / f"{pid}.yaml"
        data = yaml.load(path.read_text(), Loader=_RulesLoader)  # noqa: S506 (a safe loader)
        data["hours"] = {day: ["09:00-10:00"] if day == days[later.weekday()] else []
                         for day in days}
        data.pop("overrides", None)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        cli(stack, "override", "clear", "--practice", pid)
    for pid in (SUNNY, MESA):
        cli(stack, "override", "set", "--practice", pid, "--open", "--from",
            opening.isoformat(), "--until", (opening + timedelta(hours=2)).isoformat(),
            "--reason", "bench: the morning")
    if datetime.now(UTC) >= opening:
        raise RuntimeError("the morning's set-up took longer than OPENING_LEAD_S")
    return opening


def morning(stack: Any, folder: Path, rules: Any, inbox: Inbox, night: Night,
            minute_s: float) -> None:
    """At the opening: make and deliver each practice's report; wait for the outbox."""
    from oncall_helpers import cli_json

    opening = open_in_the_morning(stack, folder, rules)
    night.opening = opening.timestamp()
    night.deadline = night.opening + OPENING_GRACE_MIN * minute_s
    time.sleep(max(0.0, night.opening + 0.2 - time.time()))
    for pid in (SUNNY, MESA):
        date = (opening.astimezone(ZoneInfo(rules.practices[pid].timezone)).date()
                - timedelta(days=1))
        made = json.loads(cli(stack, "report", "--practice", pid, "--night",
                              date.isoformat(), "--deliver", "--json"))
        if made.get("json_path"):
            made["document"] = json.loads(Path(made["json_path"]).read_text())
        night.made[pid] = made
    wanted = {d for m in night.made.values() for d in m.get("deliveries", [])}
    until = night.deadline + DELIVERY_WAIT_S
    while True:
        rows = cli_json(stack, "deliveries", "list")
        mine = [r for r in rows if r["id"] in wanted]
        if len(mine) == len(wanted) and all(r["status"] in ("succeeded", "failed")
                                            for r in mine):
            break
        if time.time() > until:
            break
        time.sleep(1)
    night.deliveries = rows
    with inbox._lock:
        night.received = list(inbox.log)


# --- the run ---------------------------------------------------------------------------

def cli(stack: Any, *args: str, timeout: float = 60) -> str:
    out = subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=stack.env,
                         capture_output=True, text=True, cwd=REPO, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"ivr {' '.join(args[:2])}: {out.stderr.strip()[-400:]}")
    return out.stdout


def hang_up_bridged(stack: Any, seen: int, due: dict[str, float], done: set[str]) -> int:
    """Callers bridged to a clinician for TALK_S are hung up (the conversation is over)."""
    recorder = stack.recorder
    with recorder._lock:
        new = list(recorder.events[seen:])
        bridges: dict[str, list[tuple[str, str]]] = getattr(recorder, "_night_bridges", {})
        recorder._night_bridges = bridges
    for e in new:
        if e.get("Event") == "BridgeEnter":
            members = bridges.setdefault(e.get("BridgeUniqueid", ""), [])
            members.append((e.get("Uniqueid", ""), e.get("Channel", "")))
            if any(u.startswith("ivrleg-") for u, _ in members):
                for uid, channel in members:
                    if not uid.startswith("ivrleg-") and channel not in due:
                        due[channel] = time.monotonic() + TALK_S
    for channel, at in list(due.items()):
        if at <= time.monotonic() and channel not in done:
            done.add(channel)
            stack.pbx.cli(f"channel request hangup {channel}")
    return seen + len(new)


def run_night(args: argparse.Namespace, workdir: Path) -> tuple[Night, dict[str, Any]]:
    from harness import Stack, run_scenario_in
    from oncall_helpers import cli_json, use_rules
    from support.sipp import PhoneBehaviour, speech_pcap, start_multi_phone

    from ivr.rules import load_rules

    night = Night()
    info: dict[str, Any] = {}
    slot = use_port_slot(PORT_SLOTS)
    stack = Stack(name=f"ngt{os.getpid()}", workdir=workdir)
    phone = smtp = None
    try:
        smtp, inbox, smtp_env = start_smtp(workdir)
        stack.start_pbx()
        folder = rules_copy(workdir / "rules")
        use_rules(stack, folder, {"IVR_ONCALL_MINUTE_SECONDS": str(args.minute_seconds),
                                  **smtp_env})
        until = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
        for pid in (SUNNY, MESA):
            cli(stack, "override", "set", "--practice", pid, "--closed", "--until",
                until.isoformat(), "--reason", "bench: the night")
        now = datetime.now(UTC)
        rules = load_rules(folder, now=now).rules
        behaviours, info["phones"] = phones(rules, now, workdir)
        phone = start_multi_phone(behaviours, PhoneBehaviour(busy=True),
                                  stack.settings.gateway_port, workdir / "phones",
                                  media_port=stack.ports.next(4))
        ask_s = {pid: (prompt_seconds(stack, rules.practices[pid], "ask_name"),
                       prompt_seconds(stack, rules.practices[pid], "ask_reason"))
                 for pid in (SUNNY, MESA)}
        speech = speech_pcap(SPEECH, workdir / "speech.pcap", repeat=16, tail_silence_s=1)
        rng = random.Random(args.seed + 1)
        night.planned = plan(args.calls, args.window, args.seed)
        xmls = [scenario(p, ask_s, speech, rng) for p in night.planned]
        info.update(slot=slot, load=os.getloadavg())
        started = datetime.now(UTC)
        t0 = time.monotonic()
        deadline = t0 + args.window + HOLD_S + 60

        def place(p: Planned, xml: str) -> None:
            time.sleep(max(0.0, t0 + p.start_s - time.monotonic()))
            number = DIDS[p.practice] if p.practice else UNKNOWN_DID
            result = run_scenario_in(stack, xml, number, workdir / f"call-{p.n:02d}",
                                     timeout_s=HOLD_S + 120)
            p.rc = result.returncode

        threads = [threading.Thread(target=place, args=(p, x), daemon=True)
                   for p, x in zip(night.planned, xmls, strict=True)]
        for t in threads:
            t.start()
        seen, due, done = stack.recorder.mark(), {}, set()  # type: ignore[union-attr]
        print(f"  {len(threads)} calls arriving over {args.window:.0f} s", flush=True)
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            seen = hang_up_bridged(stack, seen, due, done)
            time.sleep(0.3)
        print(f"  callers done at {time.monotonic() - t0:.0f} s; waiting for call-backs",
              flush=True)
        # Call-backs run on after the callers are gone, until acknowledged or given up.
        cb_deadline = time.monotonic() + args.callback_wait
        while time.monotonic() < cb_deadline:
            seen = hang_up_bridged(stack, seen, due, done)
            if not cli_json(stack, "callbacks", "list") and not stack.channels():
                break
            time.sleep(3)
        night.wall_s = time.monotonic() - t0
        if stack.channels():
            night.drained = False
            stack.hangup_all()
            time.sleep(2)
        print("  night over; the practices open in a few seconds", flush=True)
        try:
            morning(stack, folder, rules, inbox, night, args.minute_seconds)
        except (RuntimeError, OSError, ValueError, AssertionError) as exc:
            night.morning_error = f"{type(exc).__name__}: {str(exc)[:300]}"
        night.calls, night.callbacks, night.reports = collect(stack, started, rules)
        for pid, made in night.made.items():
            if "document" in made:  # the report as it was sent
                night.reports[pid] = made["document"]
    finally:
        if smtp is not None:
            smtp.stop()
        if phone is not None and phone.poll() is None:
            phone.terminate()
            try:
                phone.wait(10)
            except subprocess.TimeoutExpired:
                phone.kill()
        stack.stop()
        shutil.rmtree(stack.pbx.host_dir, ignore_errors=True)
    return night, info


def collect(stack: Any, started: datetime, rules: Any
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The night as the records have it: calls (with timelines), call-backs, reports."""
    from oncall_helpers import cli_json

    from ivr.db.engine import Database
    from ivr.records import calls as records

    listed = [c for c in cli_json(stack, "calls", "list")
              if datetime.fromisoformat(c["started_at"]) >= started - timedelta(seconds=5)]

    async def shows() -> list[dict[str, Any]]:
        db = Database(stack.settings.database_url)
        try:
            out = []
            for c in listed:
                detail = await records.show_call(db, c["id"])
                if detail is not None:
                    out.append(detail)
            return out
        finally:
            await db.close()

    detailed = asyncio.run(shows())
    callbacks = cli_json(stack, "callbacks", "list", "--all")
    reports: dict[str, dict[str, Any]] = {}
    for pid in (SUNNY, MESA):
        tz = ZoneInfo(rules.practices[pid].timezone)
        local = datetime.now(UTC).astimezone(tz).date()
        for night in (local, local - timedelta(days=1)):
            try:
                rep = cli_json(stack, "report", "--practice", pid, "--night", night.isoformat())
            except (AssertionError, json.JSONDecodeError):
                continue
            window = rep.get("window", {})
            begin = window.get("covers_from", {}).get("utc")
            end = window.get("opening", {}).get("utc")
            if begin and end and datetime.fromisoformat(begin) <= started \
                    < datetime.fromisoformat(end):
                reports[pid] = rep
                break
    return detailed, callbacks, reports


# --- the figures -----------------------------------------------------------------------

def _ts(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def _pct(num: int, den: int) -> str:
    return f"{num}/{den} ({100 * num / den:.0f}%)" if den else "-"


def _dist(values: list[float], unit: str = "s") -> str:
    if not values:
        return "-"
    return (f"{percentile(values, 50):.1f} / {percentile(values, 90):.1f} {unit} "
            f"(n={len(values)})")


def figures(night: Night, minute_s: float) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    by_caller = {p.caller: p for p in night.planned}
    ours = [c for c in night.calls if (c.get("caller") or "") in by_caller]
    answered = [c for c in ours if any(e["kind"].startswith("prompt.") for e in c["timeline"])]
    urgent = [c for c in ours if c.get("disposition") in ("urgent", "emergency")]
    cbs = {cb["call_id"]: cb for cb in night.callbacks}
    live_s: list[float] = []
    live = within = 0
    for c in urgent:
        start = _ts(c["started_at"]) or 0.0
        bridged = [t for leg in c.get("oncall_legs", []) if leg["kind"] == "live"
                   and leg["status"] == "accepted" and (t := _ts(leg.get("bridged_at")))]
        cb = cbs.get(c["id"])
        if bridged:
            live += 1
            within += 1
            live_s.append(min(bridged) - start)
        elif cb and cb["status"] == "acknowledged":
            delay = (_ts(cb["acknowledged_at"]) or 0) - (_ts(cb["created_at"]) or 0)
            within += delay <= WINDOW_MIN * minute_s
    acked = [cb for cb in night.callbacks if cb["call_id"] in {c["id"] for c in ours}]
    ack_delay = [((_ts(cb["acknowledged_at"]) or 0) - (_ts(cb["created_at"]) or 0))
                 for cb in acked if cb["status"] == "acknowledged"]
    practice_calls = {c["id"] for c in ours if c.get("practice_id") in (SUNNY, MESA)}
    documented: set[str] = set()
    needs_action = 0
    for rep in night.reports.values():
        documented |= {n.get("call_id") or n.get("id") for n in rep.get("calls", [])}
        needs_action += sum(1 for n in rep.get("needs_action", [])
                            if n.get("call_id") in practice_calls)
    operator = sum(1 for c in ours if c.get("operator_flag"))
    delivered, arrivals, extra_mail = delivered_by_opening(night)
    rows = [
        ("calls placed / with a record", f"{len(night.planned)} / {len(ours)}"),
        ("calls answered (greeting played)", _pct(len(answered), len(night.planned))),
        ("urgent + emergency callers reaching a clinician live", _pct(live, len(urgent))),
        (f"  ... live or acknowledged call-back within {WINDOW_MIN} rules min",
         _pct(within, len(urgent))),
        ("call start -> clinician on the line (live), p50 / p90", _dist(live_s)),
        ("call-backs acknowledged", _pct(len(ack_delay), len(acked))),
        ("  call-back made -> acknowledged, p50 / p90 (real)", _dist(ack_delay)),
        ("  the same in rules minutes", _dist([d / minute_s for d in ack_delay], "min")),
        ("calls documented in the morning report",
         _pct(len(practice_calls & documented), len(practice_calls))),
        (f"calls documented and delivered by opening time (+{OPENING_GRACE_MIN} rules min)",
         _pct(len(practice_calls & delivered), len(practice_calls))
         if night.opening is not None else f"- ({night.morning_error})"),
        ("  report e-mails: opening -> at the SMTP server (real)", _dist(arrivals)),
        ("calls needing action (report)", str(needs_action)),
        ("  unknown-number calls flagged for an operator", str(operator)),
    ]
    extra = {
        "dispositions": _count(c.get("disposition") or "none" for c in ours),
        "outcomes": _count(c.get("oncall_outcome") or "-" for c in urgent),
        "callbacks": _count(cb["status"] for cb in acked),
        "abandoned": _count(c.get("abandoned_step") for c in ours if c.get("abandoned_step")),
        "sipp_failed": sum(1 for p in night.planned if p.rc not in (0, None)),
        **extra_mail,
    }
    return rows, extra


def delivered_by_opening(night: Night) -> tuple[set[str], list[float], dict[str, Any]]:
    """Calls whose report's e-mail reached the SMTP server by the deadline; arrival delays.

    A delivery counts when the outbox has it succeeded and the server logged its message
    (matched by the X-IVR-Delivery header) no later than the deadline.
    """
    arrived = {m["delivery"]: m for m in night.received if m.get("delivery")}
    rows = {r["id"]: r for r in night.deliveries}
    delivered: set[str] = set()
    arrivals: list[float] = []
    statuses: dict[str, str] = {}
    for pid, made in night.made.items():
        calls = {n.get("call_id") for n in made.get("document", {}).get("calls", [])}
        for did in made.get("deliveries", []):
            row = rows.get(did, {})
            mail = arrived.get(did)
            statuses[f"{pid}/{row.get('channel', '?')}"] = row.get("status", "not listed")
            if mail is None or night.opening is None:
                continue
            arrivals.append(mail["at"] - night.opening)
            if row.get("status") == "succeeded" and night.deadline is not None \
                    and mail["at"] <= night.deadline and mail["tls"]:
                delivered |= calls
    extra = {"report_status": {pid: m.get("status") for pid, m in night.made.items()},
             "deliveries": statuses, "mails": len(night.received)}
    return delivered, arrivals, extra


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[str(item)] = out.get(str(item), 0) + 1
    return dict(sorted(out.items()))


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  value", "-" * (width + 30)]
    lines += [f"{label:{width}}  {value}" for label, value in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="12 calls (about 3 minutes)")
    parser.add_argument("--calls", type=int, help="calls in the night (default 40; quick 12)")
    parser.add_argument("--seed", type=int, default=7, help="arrivals, kinds, hang-ups")
    parser.add_argument("--minute-seconds", type=float, default=4.0,
                        help="real seconds per rules minute (IVR_ONCALL_MINUTE_SECONDS)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    args.calls = args.calls or (12 if args.quick else 40)
    if not 5 <= args.calls <= 80:
        parser.error("--calls: 5-80")
    if not 1 <= args.minute_seconds <= 60:
        parser.error("--minute-seconds: 1-60")
    # Arrivals spread so that about 10 calls are up at once at 40 calls.
    args.window = 45.0 if args.quick else 6.0 * args.calls
    args.callback_wait = 120.0 if args.quick else 180.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="ivr-night-"))
    began = time.monotonic()
    try:
        night, info = run_night(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    rows, extra = figures(night, args.minute_seconds)
    print()
    print(f"A night measured: {len(night.planned)} calls over {args.window:.0f} s to a copy "
          f"of {SUNNY} and {MESA} (closed by override), seed {args.seed}")
    print(f"scaling: 1 rules minute = {args.minute_seconds:g} s (IVR_ONCALL_MINUTE_SECONDS); "
          f"{WINDOW_MIN} rules min = {WINDOW_MIN * args.minute_seconds:g} s; rings, prompts "
          f"and intake are real time (ring {RING_SECONDS} s a step)")
    print("calls by kind: " + ", ".join(
        f"{k} {sum(1 for p in night.planned if p.kind == k)}" for k in KINDS))
    print("phones: " + "; ".join(f"{k} {v}" for k, v in info["phones"].items()))
    print(table(rows))
    print(f"dispositions {extra['dispositions']}; urgent outcomes {extra['outcomes']}; "
          f"call-backs {extra['callbacks']}; abandoned at {extra['abandoned']}")
    print(f"morning: opening {OPENING_LEAD_S:g} s after the night's end, "
          f"report made there by `ivr report --deliver`; deadline opening + "
          f"{OPENING_GRACE_MIN} rules min = {OPENING_GRACE_MIN * args.minute_seconds:g} s; "
          f"reports {extra['report_status']}; e-mail deliveries {extra['deliveries']}; "
          f"messages at the SMTP server (STARTTLS) {extra['mails']}"
          + (f"; morning failed: {night.morning_error}" if night.morning_error else ""))
    print(f"\"within {WINDOW_MIN} min\": taken live, or the call-back acknowledged within "
          f"{WINDOW_MIN} rules minutes of being made. Live times are from the call's start "
          "(intake included) to the bridge.")
    load = info.get("load", (math.nan,) * 3)
    print(f"load before the night {load[0]:.1f}; port slot {info.get('slot')}; SIPp exits "
          f"non-zero: {extra['sipp_failed']}" + ("" if night.drained else
                                                 "; channels left at the end, hung up"))
    print(f"night {night.wall_s:.0f} s, total {time.monotonic() - began:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, **extra, "planned":
                                         [asdict(p) for p in night.planned]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
