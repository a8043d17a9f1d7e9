"""`python -m ivr.caller call|phones ...`: the agent in its own process (see client.py)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ivr.caller.plan import CallPlan, PhoneBook


def _call(args: argparse.Namespace) -> int:
    from ivr.caller.agent import Engine

    plan = CallPlan.from_json(json.loads(Path(args.plan).read_text()))
    workdir = Path(args.workdir)
    engine = Engine(workdir, port=args.port, media_port=args.media_port,
                    media_ports=args.media_ports, codec=plan.codec,
                    events=workdir / "events.jsonl")
    runner = engine.place(plan, f"sip:{args.number}@{args.target}")
    finished = engine.run(lambda: runner.ok is not None and runner.ended,
                          time.monotonic() + args.timeout)
    if not finished:
        runner.ok, runner.error = False, f"no end within {args.timeout} s"
    report = {"ok": runner.ok, "error": runner.error, "sip_status": runner.sip_status,
              "ended_by": runner.ended_by, "events": engine.log.items,
              "heard": str(runner.heard_path)}
    Path(args.report).write_text(json.dumps(report))
    engine.close()
    return 0 if runner.ok else 1


def _phone_agent(args: argparse.Namespace) -> int:
    """One agent of a bank: answers what the relay hands it (at most AGENT_CALLS)."""
    from ivr.caller.agent import Engine

    book = PhoneBook.from_json(json.loads(Path(args.book).read_text()))
    workdir = Path(args.workdir)
    engine = Engine(workdir, port=args.port, media_port=args.media_port,
                    media_ports=args.media_ports, events=workdir / "phones.jsonl",
                    identity="sip:phones@127.0.0.1", name=args.name)
    engine.book = book
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    engine.log.add("phones", "agent_ready", agent=args.name, port=engine.port)
    engine.run(lambda: bool(stopping), float("inf"))
    engine.close()
    return 0


def _phones(args: argparse.Namespace) -> int:
    """The bank: its agents on ports of their own, and the relay on the bank's port."""
    from ivr.caller.agent import EventLog
    from ivr.caller.relay import Relay

    workdir = Path(args.workdir)
    events = workdir / "phones.jsonl"
    log = EventLog(events)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    share = args.media_ports // args.agents
    agents = []
    for n in range(1, args.agents + 1):
        media = args.media_port + (n - 1) * share if args.media_port else 0
        argv = [sys.executable, "-m", "ivr.caller", "phone-agent", "--book", args.book,
                "--workdir", str(workdir), "--port", "0", "--media-port", str(media),
                "--media-ports", str(share), "--name", f"{n}."]
        with (workdir / f"phones-agent{n}.log").open("w") as out:
            agents.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL))
    tail = _Tail(events)
    ports: dict[str, int] = {}
    relay = None
    code = 0
    try:
        while len(ports) < len(agents):
            if stopping or any(a.poll() is not None for a in agents):
                return 1
            ports.update((e["agent"], e["port"]) for e in tail.read()
                         if e["event"] == "agent_ready")
            time.sleep(0.05)
        relay = Relay(args.port, [ports[f"{n}."] for n in range(1, len(agents) + 1)])
        log.add("phones", "ready", port=args.port, agents=len(agents))
        while not stopping:
            relay.pump(0.05)
            for event in tail.read():
                if event["event"] == "ended" and "#" in event["call"]:
                    relay.calls.ended[int(event["call"].split("#")[1].split(".")[0]) - 1] += 1
            if any(a.poll() is not None for a in agents):
                log.add("phones", "agent_died")
                code = 1
                break
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
        for agent in agents:
            try:
                agent.wait(10)
            except subprocess.TimeoutExpired:
                agent.kill()
        if relay is not None:
            relay.close()
    return code


class _Tail:
    """The events appended to a JSON-lines file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        whole = data[: data.rfind(b"\n") + 1]
        self.offset += len(whole)
        return [json.loads(line) for line in whole.splitlines() if line.strip()]


#: The niceness the caller's processes take (their threads and agents inherit it).
NICE_VARIABLE = "IVR_CALLER_NICE"


def _take_niceness() -> None:
    """IVR_CALLER_NICE=N: run at niceness N. The suite sets -5 (as root): its callers and
    phones stand in for devices on other machines, which a busy service machine does
    not slow down; a caller that heard a prompt's end seconds late missed the prompt's
    wait for a key. Set before pjsua2 starts its threads; refused (not root): as is."""
    value = os.environ.get(NICE_VARIABLE, "").strip()
    if not value:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, int(value))
    except (ValueError, PermissionError) as exc:
        print(f"{NICE_VARIABLE}={value!r} not taken ({type(exc).__name__})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    _take_niceness()
    parser = argparse.ArgumentParser(prog="python -m ivr.caller",
                                     description="a SIP caller or phones that react")
    sub = parser.add_subparsers(dest="mode", required=True)
    call = sub.add_parser("call", help="place one call and run its plan")
    call.add_argument("--plan", required=True, help="the plan (JSON, CallPlan)")
    call.add_argument("--report", required=True, help="where the report goes (JSON)")
    call.add_argument("--target", required=True, help="host:port of the service")
    call.add_argument("--number", required=True, help="the number to dial")
    call.add_argument("--timeout", type=float, default=300, help="seconds for the whole call")
    phones = sub.add_parser("phones", help="answer calls to many numbers until SIGTERM")
    phones.add_argument("--agents", type=int, default=4,
                        help="agent processes behind the port (each takes 4 calls at once)")
    agent = sub.add_parser("phone-agent", help="one agent of `phones` (it starts them)")
    agent.add_argument("--name", default="", help="its tag in the calls' labels")
    for p in (phones, agent):
        p.add_argument("--book", required=True, help="the phones (JSON, PhoneBook)")
    for p in (call, phones, agent):
        p.add_argument("--workdir", required=True, help="events and what was heard")
        p.add_argument("--port", type=int, default=0, help="local SIP port (UDP)")
        p.add_argument("--media-port", type=int, default=0, help="first RTP port")
        p.add_argument("--media-ports", type=int, default=40, help="RTP ports to use")
    args = parser.parse_args(argv)
    code = {"call": _call, "phones": _phones, "phone-agent": _phone_agent}[args.mode](args)
    sys.stdout.flush()
    # pjsua2's objects may assert while Python tears them down after libDestroy.
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
