"""`python -m ivr.caller call|phones ...`: the agent in its own process (see client.py)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

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


def _phones(args: argparse.Namespace) -> int:
    from ivr.caller.agent import Engine

    book = PhoneBook.from_json(json.loads(Path(args.book).read_text()))
    workdir = Path(args.workdir)
    engine = Engine(workdir, port=args.port, media_port=args.media_port,
                    media_ports=args.media_ports, events=workdir / "phones.jsonl",
                    identity=f"sip:phones@127.0.0.1:{args.port}")
    engine.book = book
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    engine.log.add("phones", "ready", port=args.port)
    engine.run(lambda: bool(stopping), float("inf"))
    engine.close()
    return 0


def main(argv: list[str] | None = None) -> int:
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
    phones.add_argument("--book", required=True, help="the phones (JSON, PhoneBook)")
    for p in (call, phones):
        p.add_argument("--workdir", required=True, help="events and what was heard")
        p.add_argument("--port", type=int, default=0, help="local SIP port (UDP)")
        p.add_argument("--media-port", type=int, default=0, help="first RTP port")
        p.add_argument("--media-ports", type=int, default=40, help="RTP ports to use")
    args = parser.parse_args(argv)
    code = _call(args) if args.mode == "call" else _phones(args)
    sys.stdout.flush()
    # pjsua2's objects may assert while Python tears them down after libDestroy.
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
