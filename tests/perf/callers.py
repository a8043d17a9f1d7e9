"""A few reacting callers (ivr.caller) in one process, each dialling at its own time: the
load of bench_callers.py.

Run by bench_callers.py: `python -m tests.perf.callers --spec spec.json --out out.json`.
One process holds at most AGENT_CALLS calls (pjsua's build limit, ivr/caller/relay.py),
so a level of N calls is N / 4 of these. The spec: {"target", "number", "plan" (a
CallPlan as JSON), "starts" (seconds from "t0", a time.time() instant), "timeout_s"}.
The report: per call, ok, the error, and its events (t: time.time()).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ivr.caller.plan import CallPlan
from ivr.caller.relay import AGENT_CALLS


def run(spec: dict[str, object], workdir: Path) -> list[dict[str, object]]:
    from ivr.caller.agent import Engine

    plan = CallPlan.from_json(spec["plan"])  # type: ignore[arg-type]
    starts = sorted(float(s) for s in spec["starts"])  # type: ignore[attr-defined]
    if len(starts) > AGENT_CALLS:
        raise SystemExit(f"at most {AGENT_CALLS} calls in one process")
    t0 = float(spec["t0"])  # type: ignore[arg-type]
    uri = f"sip:{spec['number']}@{spec['target']}"
    # Ports the kernel chooses: a level's many agents stay clear of the tests' ranges.
    engine = Engine(workdir, port=0, media_port=0, events=workdir / "events.jsonl")
    offset = time.time() - time.monotonic()  # events are monotonic: report wall time
    runners = []

    def placed_and_done() -> bool:
        while len(runners) < len(starts) and time.time() >= t0 + starts[len(runners)]:
            runner = engine.place(plan, uri)
            runner.label = f"c{len(runners)}"  # its own heard-<label>.wav
            runners.append(runner)
        return len(runners) == len(starts) and all(r.ended and r.ok is not None
                                                   for r in runners)

    deadline = time.monotonic() + (t0 - time.time()) + starts[-1] + float(
        spec["timeout_s"])  # type: ignore[arg-type]
    engine.run(placed_and_done, deadline)
    started = engine.log.started + offset
    out = []
    for runner in runners:
        if runner.ok is None:
            runner.ok, runner.error = False, "no end in time"
        events = [{**e, "t": round(e["t"] + started, 3)} for e in engine.log.items
                  if e["call"] == runner.label]
        out.append({"ok": runner.ok, "error": runner.error, "events": events})
    for _ in range(len(starts) - len(runners)):
        out.append({"ok": False, "error": "never placed", "events": []})
    engine.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--spec", type=Path, required=True, help="the calls (JSON)")
    parser.add_argument("--out", type=Path, required=True, help="the report (JSON)")
    args = parser.parse_args(argv)
    report = run(json.loads(args.spec.read_text()), args.spec.parent)
    args.out.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
