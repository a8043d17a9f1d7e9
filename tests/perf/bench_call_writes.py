"""Benchmark (a script, not a test): a call's database writes, many calls at once, no PBX.

Run: .venv/bin/python -m tests.perf.bench_call_writes [--calls 40] [--rounds 3]
     [--compare REF]  (the baseline; main by default when the clone has it)
     (seconds). Prints numbers only; asserts nothing.

Each simulated call makes the writes the full after-hours call of
tests/perf/bench_capacity.py makes, in its order, through ivr.records.calls (start,
route, 12 timeline events, caller ID and date of birth captured and confirmed, two
recordings and their fields, disposition, what the caller was told, the finish), with a
yield to the event loop between steps (where the real call waits for Asterisk).
--calls of them run at once on one event loop against a fresh SQLite database (WAL, the
controller's settings), in a subprocess per run. Per call: the event loop thread's CPU
time (time.thread_time), the process's CPU (threads included), and the wall time of
each write (p50 / p99: the caller's wait at that step, lock waits included).

`--compare REF` runs git ref REF's ivr.records.calls (an exported copy of that commit)
alternately with this tree's, --rounds times each, so both see the same machine; the
medians are printed side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


# --- inside one run (a subprocess with the tree on sys.path) --------------------------

async def one_call(db: Any, n: int, waits: list[float]) -> None:
    from datetime import UTC, datetime

    from ivr.records import calls

    async def step(coro: Any) -> Any:
        t0 = time.perf_counter()
        out = await coro
        waits.append(time.perf_counter() - t0)
        await asyncio.sleep(0)  # the real call waits for Asterisk here
        return out

    call_id = await step(calls.start_call(
        db, uniqueid=f"bench-{n}", node="bench", dialled="+16175550100",
        forwarded_from="", caller="+16175550142", started_at=datetime.now(UTC)))
    await step(calls.update_call(db, call_id, practice_id="sunny-pediatrics",
                                 route="after_hours", state_kind="closed",
                                 operator_flag=False))
    for kind in ("route.decided", "prompt.greeting", "prompt.emergency_notice",
                 "intake.callback.asked"):
        await step(calls.add_event(db, call_id, kind, route="after_hours"))
    await step(calls.save_intake(db, call_id, "callback", value="+16175550142",
                                 source="caller_id", confirmed=True))
    await step(calls.add_event(db, call_id, "intake.dob.asked"))
    await step(calls.save_intake(db, call_id, "dob", value="1990-01-02", source="keyed"))
    await step(calls.confirm_intake(db, call_id, "dob"))
    for field in ("name", "reason"):
        await step(calls.add_event(db, call_id, f"intake.{field}.asked"))
        await step(calls.add_recording(db, call_id, field, path=f"/r/{n}/{field}.wav.enc",
                                       duration_seconds=1.5, size_bytes=24000, peak=9000,
                                       rms=2000.0))
        await step(calls.save_intake(db, call_id, field, recording_path=f"/r/{n}/{field}",
                                     duration_seconds=1.5, source="recording"))
    await step(calls.add_event(db, call_id, "menu.key", attempt=1, key="4",
                               result="routine"))
    await step(calls.update_call(db, call_id, disposition="routine"))
    await step(calls.update_call(db, call_id, caller_told="We will call you back."))
    await step(calls.add_event(db, call_id, "action", disposition="routine"))
    await step(calls.finish_call(db, call_id, result="done", hung_up=False))


async def inside(calls_at_once: int, folder: Path) -> dict[str, Any]:
    from ivr import config
    from ivr.db.engine import Database
    from ivr.secure import keys

    settings = config.Settings(key_file=folder / "keys.json")
    keys.init(settings)
    keys.use(keys.KeySource(settings))
    db = Database("sqlite+aiosqlite:///" + str(folder / "bench.sqlite3"))
    await db.create()
    await one_call(db, -1, [])  # one-time costs (mapper set-up, statement compilation)
    waits: list[float] = []
    loop0, cpu0, wall0 = time.thread_time(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(one_call(db, n, waits) for n in range(calls_at_once)))
    loop_s, cpu_s = time.thread_time() - loop0, time.process_time() - cpu0
    wall_s = time.perf_counter() - wall0
    await db.close()
    waits.sort()
    return {"loop_ms": loop_s * 1000 / calls_at_once, "cpu_ms": cpu_s * 1000 / calls_at_once,
            "wall_s": wall_s, "writes": len(waits) / calls_at_once,
            "p50_ms": waits[len(waits) // 2] * 1000,
            "p99_ms": waits[min(len(waits) - 1, int(len(waits) * 0.99))] * 1000}


# --- outside ----------------------------------------------------------------------------

def run_once(tree: Path, calls_at_once: int, loop: str = "asyncio") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ivr-writes-") as folder:
        env = dict(os.environ, PYTHONPATH=str(tree), IVR_BENCH_TREE=str(tree),
                   IVR_DATA_DIR=folder, IVR_BENCH_LOOP=loop)
        out = subprocess.run([sys.executable, str(HERE / "bench_call_writes.py"),
                              "--inside", folder, "--calls", str(calls_at_once)],
                             env=env, cwd=tree, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"run failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=40, help="calls at once (default 40)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs per tree, alternating (default 3)")
    parser.add_argument("--compare", metavar="REF", default=None,
                        help="the baseline: git ref REF's code (default: main, when this "
                             "clone has it)")
    parser.add_argument("--uvloop", action="store_true",
                        help="also run this tree on uvloop (installed by hand: an experiment)")
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside is not None:
        sys.path.insert(0, os.environ.get("IVR_BENCH_TREE", str(REPO)))
        if os.environ.get("IVR_BENCH_LOOP") == "uvloop":
            import uvloop  # an experiment (--uvloop): not a dependency of the controller

            print(json.dumps(uvloop.run(inside(args.calls, args.inside))))
        else:
            print(json.dumps(asyncio.run(inside(args.calls, args.inside))))
        return 0
    if args.compare is None and subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--verify", "-q", "main"],
            capture_output=True).returncode == 0:
        args.compare = "main"
    trees: list[tuple[str, Path]] = []
    work = Path(tempfile.mkdtemp(prefix="ivr-writes-ref-"))
    if args.compare:
        from tests.perf.benchlib import export_tree

        trees.append((f"{args.compare} (before)", export_tree(args.compare, work / "ref")))
    trees.append(("this tree", REPO))
    loops = {label: "asyncio" for label, _ in trees}
    if args.uvloop:
        trees.append(("this tree, uvloop", REPO))
        loops["this tree, uvloop"] = "uvloop"
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in trees}
    for _ in range(args.rounds):
        for label, tree in trees:
            results[label].append(run_once(tree, args.calls, loops[label]))
    subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"A call's database writes, {args.calls} calls at once on one event loop, "
          f"SQLite; median of {args.rounds} alternating runs; load "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'':34s}" + "".join(f"{label:>20s}" for label, _ in trees))
    for key, name in (("writes", "writes per call"), ("loop_ms", "event loop CPU ms/call"),
                      ("cpu_ms", "process CPU ms/call"), ("p50_ms", "write wait p50 ms"),
                      ("p99_ms", "write wait p99 ms"), ("wall_s", "wall s (all calls)")):
        print(f"{name:34s}" + "".join(
            f"{statistics.median(r[key] for r in results[label]):20.2f}"
            for label, _ in trees))
    return 0


if __name__ == "__main__":
    sys.exit(main())
