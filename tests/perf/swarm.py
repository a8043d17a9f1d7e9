"""A swarm of cheap reacting callers: one asyncio process holding hundreds of calls.

Run by bench_callers.py: `python -m tests.perf.swarm --spec spec.json --out out.json`,
the spec and the report as tests/perf/callers.py's (the pjsua2 callers), any number of
starts. Each call runs the same CallPlan steps as ivr.caller's Runner (Listen, Press,
Say, Pause, Cue, Hangup, AwaitEnd) and hears with the same ivr.caller.hearing.Hearing
(its thresholds: a frame's RMS and zero crossings, measured here on µ-law bytes by
tests/perf/swarm_sip.classify).

Why hand-written SIP and RTP (tests/perf/swarm_sip.py) rather than a library: pjsua2,
the tests' caller, holds 4 calls a process (its build limit) and mixes their audio in
its conference bridge, so 2 cores hold a few dozen reacting calls at most; SIPp holds
thousands but plays keys at fixed times and cannot wait for what it hears. This UA does
only what dialling Asterisk on 127.0.0.1 needs: INVITE (PCMU, telephone-event/8000),
provisional and final answers, ACK, CANCEL, BYE both ways, answers to
re-INVITE/UPDATE/OPTIONS; RTP at 20 ms with RFC 4733 keys. One 20 ms ticker sends every
call's packet, classifies every frame heard since the last tick in one numpy pass, and
moves each call's steps on: no timer per call. A call's dialog and steps:
tests/perf/swarm_call.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import wave
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from ivr.caller.plan import CallPlan
from tests.perf import swarm_sip as wire
from tests.perf.swarm_call import LOCAL, TICK_S, Call, grow_buffer


class Swarm:
    """The SIP socket, the calls by Call-ID, the ticker."""

    def __init__(self, target: str, number: str, tag: str = "") -> None:
        host, _, port = target.rpartition(":")
        self.target, self.number = target, number
        #: Added to each call's caller name (with the call's label): the bench finds a
        #: report's call among the PBX's AMI events by it (their CallerIDName).
        self.tag = tag
        self.remote = (host, int(port))
        self.calls: dict[str, Call] = {}
        self.sip: asyncio.DatagramTransport | None = None
        self.sip_port = 0
        self.junk = 0  # datagrams that were not SIP we could trust
        self.heard: list[tuple[Call, bytes]] = []  # audio since the last tick
        self._speech: dict[str, bytes] = {}

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.sip, _ = await loop.create_datagram_endpoint(lambda: _Sip(self),
                                                          local_addr=(LOCAL, 0))
        grow_buffer(self.sip)
        self.sip_port = self.sip.get_extra_info("sockname")[1]

    def send_sip(self, data: bytes) -> None:
        assert self.sip is not None
        self.sip.sendto(data, self.remote)

    def on_sip(self, data: bytes) -> None:
        msg = wire.parse(data)
        if msg is None:
            self.junk += 1
            return
        call = self.calls.get(msg.call_id)
        if msg.status is not None:
            if call is not None:
                call.on_response(msg)
        elif call is not None:
            call.on_request(msg)
        elif msg.method == "OPTIONS":
            self.send_sip(wire.response(msg, 200, "OK", "swarm"))
        elif msg.method != "ACK":
            self.send_sip(wire.response(msg, 481, "Call/Transaction Does Not Exist", "swarm"))

    def hear(self) -> None:
        """Every frame the calls got since the last tick, to their Hearing, in order."""
        if not self.heard:
            return
        heard, self.heard = self.heard, []
        rms, crossings = wire.classify(b"".join(p for _, p in heard))
        i = 0
        for call, payload in heard:
            for _ in range(len(payload) // wire.SAMPLES):
                call.hearing.heard_frame(float(rms[i]), int(crossings[i]))
                i += 1

    def speech(self, path: str) -> bytes:
        """A WAV (16-bit mono, 8 kHz) as µ-law, encoded once per file."""
        if path not in self._speech:
            with wave.open(path, "rb") as w:
                if (w.getsampwidth(), w.getnchannels(), w.getframerate()) != (2, 1, 8000):
                    raise ValueError(f"{path}: expected 16-bit mono 8 kHz")
                samples = np.frombuffer(w.readframes(w.getnframes()), "<i2")
            self._speech[path] = wire.ulaw_encode(samples)
        return self._speech[path]

    async def run(self, plan: CallPlan, starts: list[float], t0: float,
                  timeout_s: float) -> list[Call]:
        """Place a call at each start (seconds after the time.time() `t0`); tick until all
        are over or the last start plus `timeout_s`."""
        await self.open()
        pending = deque(sorted(starts))
        calls: list[Call] = []
        deadline = time.monotonic() + (t0 - time.time()) + (pending[-1] if pending else 0) \
            + timeout_s
        next_tick = time.monotonic()
        while time.monotonic() < deadline:
            while pending and time.time() >= t0 + pending[0]:
                pending.popleft()
                call = Call(self, f"c{len(calls)}", plan)
                self.calls[call.call_id] = call
                calls.append(call)
                await call.place()
            self.hear()
            now = time.monotonic()
            for call in calls:
                if call.sent is not None or not call.ended:
                    call.tick(now)
            if not pending and all(c.ended and c.ok is not None and c.sent is None
                                   for c in calls):
                break
            # A fixed 20 ms rhythm; a late tick is not made up (packets then come late,
            # as from a phone on a busy network).
            next_tick = max(next_tick + TICK_S, time.monotonic())
            await asyncio.sleep(next_tick - time.monotonic())
        for call in calls:
            if not call.ended:
                call.hang_up()
        await asyncio.sleep(0.2)  # the last BYEs on their way
        return calls


class _Sip(asyncio.DatagramProtocol):
    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.swarm.on_sip(data)


def run(spec: dict[str, Any]) -> list[dict[str, Any]]:
    swarm = Swarm(str(spec["target"]), str(spec["number"]), str(spec.get("tag", "")))
    plan = CallPlan.from_json(spec["plan"])
    starts = [float(s) for s in spec["starts"]]

    async def main() -> list[Call]:
        return await swarm.run(plan, starts, float(spec["t0"]), float(spec["timeout_s"]))

    try:
        import uvloop
        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        calls = runner.run(main())
    out = [c.report() for c in calls]
    out += [{"ok": False, "error": "never placed", "events": []}] * (len(starts) - len(calls))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--spec", type=Path, required=True, help="the calls (JSON)")
    parser.add_argument("--out", type=Path, required=True, help="the report (JSON)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run here")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    if args.profile:
        import cProfile

        # CPU time, not wall time: on a loaded machine the wall clock charges others.
        with cProfile.Profile(time.process_time) as profile:
            report = run(spec)
        profile.dump_stats(args.profile)
    else:
        report = run(spec)
    args.out.write_text(json.dumps(report))
    print(f"swarm {os.getpid()}: {sum(r['ok'] for r in report)}/{len(report)} ok, "
          f"{time.process_time():.2f} s of CPU (user {os.times().user:.2f}, system "
          f"{os.times().system:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
