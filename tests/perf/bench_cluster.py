"""Benchmark (a script, not a test): calls up at once through Kamailio, 1 node vs 2 nodes.

Run: .venv/bin/python -m tests.perf.bench_cluster [--levels 16,48,96,144] [--hold 8]
     (`make bench` runs it; about 2-3 minutes). Prints numbers only; asserts nothing.

One local cluster (`ivr cluster up --nodes 2`: PostgreSQL, Kamailio on 127.0.0.4, two
Asterisk nodes with two controllers each, the drills' test rules with short prompts,
transcription off). At each level, that many SIPp callers dial Kamailio within about a
second and each stays `--hold` seconds, then hangs up: all of a level's calls are up at
once. First with node 2 drained (Kamailio sends every call to node 1), then with both
nodes, in the same run; a ramp stops at its first level with a failed call.

A call counts as ok when SIPp completed it (INVITE answered, BYE answered) and its record
in the database says a controller served it: the practice's route decided, the greeting
started (`prompt.greeting` on its timeline) and no fallback. Kamailio's CPU: user+system
seconds of its processes (the main one and its children, psutil) over each level,
summed over a ramp and divided by its calls (one level's few calls are below the 10 ms
clock tick); also without its idle CPU (the OPTIONS probes every second), measured for
10 s before the ramps. Each node gets media ports for the largest level, so a ramp ends
where the machine gives up, not where a port range does.

What the numbers mean: here every part shares one 2-core machine with the others' work
(and the callers), so a second node adds no CPU, only a second Asterisk and two more
controllers competing for the same two cores: "2 nodes" says little more than "1 node"
(it spreads each process's queue, so it may hold a few more, or fewer). On separate
machines each node brings its own cores, so the calls a cluster holds grow with the
nodes (roughly the one-node figure per node, while the shared PostgreSQL keeps up), and
Kamailio's CPU per call (it handles only the signalling: a few SIP messages per call,
no media) says how many calls one entry can front: divide a core's second by it, per
second of arrivals.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import select
from support.cluster import (
    CALLER_SCENARIO,
    E2E_CLUSTER_PORTS,
    QUICK,
    RealCluster,
    e2e_port_base,
    running_cluster,
)
from support.polling import wait_for
from support.sipp import sipp_binary

from ivr.db.models import Call, CallEvent

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

_COUNT = re.compile(r"(Successful|Failed) call\s+\|\s+\d+\s+\|\s+(\d+)")


def kamailio_cpu(pid: int) -> float:
    main = psutil.Process(pid)
    total = 0.0
    for proc in [main, *main.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def idle_cpu(cluster: RealCluster, seconds: float = 10.0) -> float:
    """Kamailio's CPU seconds per second with no call (its probes, its timers)."""
    pid = cluster.status()["entry"]["pid"]
    before = kamailio_cpu(pid)
    time.sleep(seconds)  # a measurement window, not a wait for the system under test
    return (kamailio_cpu(pid) - before) / seconds


def place(cluster: RealCluster, calls: int, hold_s: float, port: int) -> tuple[int, int]:
    """`calls` SIPp calls at once to QUICK through Kamailio; (successful, failed)."""
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "caller.xml"
        scenario.write_text(CALLER_SCENARIO.replace(
            '<pause milliseconds="300"/>', f'<pause milliseconds="{int(hold_s * 1000)}"/>'))
        done = subprocess.run(
            [sipp_binary(), cluster.entry, "-sf", str(scenario), "-s", QUICK.lstrip("+"),
             "-m", str(calls), "-l", str(calls), "-r", str(calls), "-rp", "1000",
             "-i", "127.0.0.1", "-p", str(port), "-mp", str(port + 2),
             "-nostdin", "-timeout", f"{int(hold_s + 60)}s", "-timeout_error"],
            capture_output=True, text=True, timeout=hold_s + 120, stdin=subprocess.DEVNULL,
            cwd=tmp)
    found = {kind: int(n) for kind, n in _COUNT.findall(done.stdout)}
    return found.get("Successful", 0), found.get("Failed", calls - found.get("Successful", 0))


async def served(db: Any, since: datetime) -> tuple[int, int, dict[str, int]]:
    """Calls started since `since`: (ended, served by a controller, by node)."""
    async with db.session() as s:
        rows = (await s.scalars(select(Call).where(Call.started_at >= since))).all()
        greeted = set((await s.scalars(select(CallEvent.call_id).where(
            CallEvent.call_id.in_([c.id for c in rows]),
            CallEvent.kind == "prompt.greeting"))).all())
    ok = [c for c in rows if c.id in greeted and not c.fallback_reason and c.route]
    nodes: dict[str, int] = {}
    for c in ok:
        nodes[c.node] = nodes.get(c.node, 0) + 1
    return sum(1 for c in rows if c.ended_at is not None), len(ok), nodes


def level(cluster: RealCluster, calls: int, hold_s: float, port: int) -> dict[str, Any]:
    pid = cluster.status()["entry"]["pid"]
    since = datetime.now(UTC) - timedelta(seconds=1)
    cpu0, t0 = kamailio_cpu(pid), time.monotonic()
    good, failed = place(cluster, calls, hold_s, port)
    cpu = kamailio_cpu(pid) - cpu0
    wall = time.monotonic() - t0
    try:
        wait_for(lambda: cluster.read(lambda db: served(db, since))[0] >= good, 60,
                 "the level's calls to end in the record", interval=1)
    except AssertionError:
        pass  # counted as not served below
    ended, ok, nodes = cluster.read(lambda db: served(db, since))
    return {"calls": calls, "sipp_ok": good, "sipp_failed": failed, "served": ok,
            "ended": ended, "nodes": nodes, "kamailio_cpu_s": cpu, "wall_s": wall,
            "failed": calls - min(good, ok)}


def ramp(cluster: RealCluster, label: str, levels: list[int], hold_s: float,
         port: int) -> tuple[int, list[dict[str, Any]]]:
    best, rows = 0, []
    for n in levels:
        row = level(cluster, n, hold_s, port)
        row["variant"] = label
        rows.append(row)
        print(f"  {label:7} {n:4d} at once: SIPp ok {row['sipp_ok']:3d} failed "
              f"{row['sipp_failed']:3d}, served {row['served']:3d} "
              f"{dict(sorted(row['nodes'].items()))}, Kamailio CPU "
              f"{row['kamailio_cpu_s'] * 1000 / n:.1f} ms/call", flush=True)
        if row["failed"]:
            break
        best = n
    return best, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="16,48,96,144",
                        help="calls up at once, per step of each ramp (comma-separated)")
    parser.add_argument("--hold", type=float, default=8.0,
                        help="seconds each caller stays on the line before hanging up")
    parser.add_argument("--keep", action="store_true", help="keep the cluster's folder")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    started = time.monotonic()
    print("bench_cluster: starting a 2-node cluster ...", flush=True)
    # Media ports enough for every level (RTP and RTCP per call), so the ramp finds
    # where the machine gives up, not where a port range ends.
    rtp_per_node = 2 * max(levels) + 20
    rtp_start = 40000 + 2000 * (e2e_port_base() - E2E_CLUSTER_PORTS) // 250
    with running_cluster("ivr-bench-cluster-", "bench: after hours", keep=args.keep,
                         rtp=(rtp_start, rtp_per_node)) as cluster:
        sipp_port = cluster.base + 60  # the drills' caller slots are base+50..53
        node2 = cluster.names[1]
        print(f"calls up at once through Kamailio, each held {args.hold:.0f} s "
              f"(levels {levels}; machine: {os.cpu_count()} cores, load "
              f"{os.getloadavg()[0]:.1f})", flush=True)
        idle = idle_cpu(cluster)
        cluster.ivr("cluster", "drain", node2)
        one, rows1 = ramp(cluster, "1 node", levels, args.hold, sipp_port)
        cluster.ivr("cluster", "undrain", node2)
        wait_for(lambda: cluster.dispatcher(node2).startswith("active"), 60,
                 f"{node2} active again")
        two, rows2 = ramp(cluster, "2 nodes", levels, args.hold, sipp_port)
    def most(best: int) -> str:
        return f"{best}" if best < levels[-1] else f">= {best} (no failure up to the last level)"
    print(f"most calls up at once with 0 failures: 1 node {most(one)}, 2 nodes {most(two)} "
          f"(levels tried {levels}; a ramp stops at its first failure)")
    for label, rows in (("1 node", rows1), ("2 nodes", rows2)):
        # Summed over the ramp: one level's few calls are below the 10 ms clock tick.
        calls = sum(r["calls"] for r in rows)
        cpu = sum(r["kamailio_cpu_s"] for r in rows)
        probes = idle * sum(r["wall_s"] for r in rows)
        print(f"Kamailio CPU per call, {label}: {cpu * 1000 / calls:.2f} ms over {calls} "
              f"calls ({max(cpu - probes, 0) * 1000 / calls:.2f} ms without its OPTIONS "
              f"probes: {idle * 1000:.2f} ms per second when idle)")
    print("same machine: the second node shares the same 2 cores (see the docstring "
          "for what the numbers mean on separate machines)")
    print(f"took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
