"""Benchmark (a script, not a test): load 1,000 practices, then time routing decisions.

Run: .venv/bin/python -m tests.perf.bench_rules [--practices N] [--decisions N]
Prints numbers only; asserts nothing. The baseline is a bare yaml.safe_load of the
same files (what any YAML-config project pays), measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from ivr.rules import load_rules
from ivr.rules.oncall import dial_list
from ivr.rules.schedule import state_at

ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"]
AREA = ["617", "312", "720", "415"]
STATES = ["MA", "IL", "CO", "CA"]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def practice_yaml(i: int) -> str:
    """One synthetic practice; numbers are unique per index."""
    z = i % 4
    area = AREA[z]

    def num(kind: int) -> str:
        return f"+1{area}2{kind}{i:05d}"[:12]

    # The two rotation lines are one YAML flow mapping each and run past 100 columns; the
    # noqa (E501) after the closing quotes keeps the fixture text as it is.
    return f"""# synthetic practice {i}
practice:
  id: practice-{i:04d}
  name: Practice {i}
  timezone: {ZONES[z]}
  country: US
  subdivision: {STATES[z]}
  dids: ["{num(0)}"]
  forwarding_numbers: ["{num(1)}"]
hours:
  monday: [08:00-17:00]
  tuesday: [08:00-17:00]
  wednesday: [08:00-12:00, 13:00-19:00]
  thursday: [08:00-17:00]
  friday: [08:00-17:00]
  saturday: [09:00-12:00]
holidays:
  dates:
    - {{date: 12-24, name: Christmas Eve, closed_from: 12:00}}
triage:
  keys: {{1: urgent, 2: prescription, 3: appointment, 4: routine, 9: emergency}}
  default: urgent
on_call:
  clinicians:
    - {{id: n-a, name: Nurse A, role: nurse, phone: "{num(2)}"}}
    - {{id: n-b, name: Nurse B, role: nurse, phone: "{num(3)}"}}
    - {{id: d-a, name: Doctor A, role: physician, phone: "{num(4)}"}}
    - {{id: d-b, name: Doctor B, role: physician, phone: "{num(5)}"}}
  rotations:
    - {{role: nurse, order: [n-a, n-b], handoff: {{weekday: monday, time: 08:00}}, anchor: 2026-11-02}}
    - {{role: physician, order: [d-a, d-b], handoff: {{weekday: friday, time: 17:00}}, anchor: 2026-11-06}}
  shifts:
    - {{clinician: d-b, start: 2026-11-25 17:00, end: 2026-11-27 08:00}}
  escalation:
    - {{role: nurse, ring_seconds: 25, attempts: 2}}
    - {{role: physician, ring_seconds: 30, attempts: 2}}
"""  # noqa: E501


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--practices", type=int, default=1000)
    ap.add_argument("--decisions", type=int, default=20000)
    args = ap.parse_args()
    rng = random.Random(7)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.practices):
            (root / f"practice-{i:04d}.yaml").write_text(practice_yaml(i))
        files = sorted(root.glob("*.yaml"))

        def baseline() -> int:
            n = 0
            for f in files:
                with f.open() as fh:
                    n += len(yaml.safe_load(fh))
            return n

        _, base_s = timed(baseline)
        res, load_s = timed(lambda: load_rules(root, now=NOW))
        if not res.ok:
            for e in res.errors[:10]:
                print(e)
            raise SystemExit("generated rules are invalid")
        rules = res.rules
        assert rules is not None

    practices = list(rules.practices.values())
    numbers = [(p.dids[0], None) for p in practices] + \
        [("+16175550999", p.forwarding_numbers[0]) for p in practices]
    span = timedelta(days=400).total_seconds()
    calls = [(rng.choice(numbers), NOW + timedelta(seconds=rng.uniform(0, span)))
             for _ in range(args.decisions)]

    # Baseline for decisions: the dict lookup alone (route without the engine).
    t0 = time.perf_counter()
    for (to, fwd), _at in calls:
        rules.route(to, fwd)
    route_only = time.perf_counter() - t0

    latencies = []
    t_all = time.perf_counter()
    for (to, fwd), at in calls:
        t0 = time.perf_counter()
        p = rules.route(to, fwd)
        assert p is not None
        state_at(p, at)
        dial_list(p, at)
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]

    print(f"practices: {len(practices)}  (files in a temp dir)")
    print(f"{'':34}{'this project':>16}{'baseline':>16}")
    print(f"{'load (validate, build objects) s':34}{load_s:>16.3f}{base_s:>16.3f}"
          "   baseline = bare yaml.safe_load of the same files")
    print(f"{'per file ms':34}{load_s / len(files) * 1000:>16.3f}"
          f"{base_s / len(files) * 1000:>16.3f}")
    print(f"{'decisions/s (route+state+dial)':34}{len(calls) / total:>16.0f}"
          f"{len(calls) / route_only:>16.0f}   baseline = route() lookup only")
    print(f"{'p50 latency ms':34}{statistics.median(latencies) * 1000:>16.3f}")
    print(f"{'p99 latency ms':34}{p99 * 1000:>16.3f}")
    print(f"{'max latency ms':34}{latencies[-1] * 1000:>16.3f}")


if __name__ == "__main__":
    main()
