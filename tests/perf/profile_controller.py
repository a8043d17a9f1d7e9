"""Profile (a script, not a test): where `ivr serve` spends its time during real calls.

Run: .venv/bin/python -m tests.perf.profile_controller [--calls 30] [--spread 3]
     [--compare main] [--top 25] [--keep]
     (about 2 minutes; with --compare about 3). Prints numbers only; asserts nothing.

Uses tests/perf/bench_capacity.py's stack and callers (a throwaway Asterisk, SIPp callers
doing the whole after-hours call, all started within --spread seconds) and runs one level
of --calls calls through the plain dialplan (the baseline, no controller) and then through
`ivr serve` started inside this file's own wrapper (`--inside`). The wrapper runs the
controller under cProfile and counts, in that process:

- AGI commands (AgiChannel.command) and the time until their reply (mostly Asterisk
  playing the prompt: that is the caller's time, not the controller's cost);
- database round trips (SQLAlchemy's before/after_cursor_execute on every engine: the
  wall time from sending a statement to its result, the aiosqlite thread included) and
  commits (the engine's `commit` event: the transaction's whole span), and the pool's
  resets of a returned connection (a rollback: one more trip to the driver's thread);
- prompt lookups (PromptLibrary.items / flow / text: synchronous, on the event loop, so
  their time is CPU spent while every other call waits);
- the profile's own time (tottime: CPU time of the event loop's thread, so a loaded
  machine does not inflate it) summed by area: SQLAlchemy, the SQLite driver, the AGI
  layer, prompts, sealing (ivr.secure + cryptography), asyncio, the rest.

Everything is divided by the calls the controller started. `--compare REF` runs the
same level a second time with the controller's code of git ref REF (an exported copy of
that commit; the database and the PBX stay the same), so the table holds the change
and what it is measured against, side by side, in one run. cProfile slows the profiled
process down (about 2x on the flow's Python code): compare the columns with each other,
not with bench_capacity.py's CPU numbers.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: Areas of the profile, by the file a function lives in (first match wins).
AREAS = (("waiting in epoll", "select.epoll"), ("sqlalchemy", "/sqlalchemy/"),
         ("sqlite driver", "aiosqlite"),
         ("sqlite driver", "sqlite3"), ("AGI layer", "/ivr/agi/"),
         ("prompts", "/ivr/flows/speech.py"), ("sealing", "/ivr/secure/"),
         ("sealing", "/ivr/db/sealed"), ("sealing", "/cryptography/"),
         ("flows+records", "/ivr/flows/"), ("flows+records", "/ivr/records/"),
         ("asyncio", "/asyncio/"), ("logging", "/logging/"))


# --- inside the controller process ----------------------------------------------------

class Counters:
    """Counts and wall times, written as JSON when the process exits."""

    def __init__(self) -> None:
        self.n: dict[str, int] = defaultdict(int)
        self.s: dict[str, float] = defaultdict(float)

    def add(self, name: str, seconds: float) -> None:
        self.n[name] += 1
        self.s[name] += seconds


def _hook(out: Path) -> None:
    """Install the counters and cProfile; at exit write counters.json and profile.pstats."""
    import cProfile

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    from ivr.agi.protocol import AgiChannel
    from ivr.flows.speech import PromptLibrary
    from ivr.records import calls

    c = Counters()
    clock = time.perf_counter

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                many: bool) -> None:
        conn.info.setdefault("ivr_t0", []).append(clock())

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
               many: bool) -> None:
        t0 = conn.info["ivr_t0"].pop()
        verb = statement.lstrip().split(None, 1)[0].upper()
        c.add("db.statement", clock() - t0)
        c.add(f"db.{verb}", clock() - t0)

    @event.listens_for(Engine, "begin")
    def _begin(conn: Any) -> None:
        conn.info["ivr_tx"] = clock()

    @event.listens_for(Engine, "commit")
    def _commit(conn: Any) -> None:
        c.add("db.commit(transaction)", clock() - conn.info.pop("ivr_tx", clock()))

    @event.listens_for(Pool, "reset")
    def _reset(dbapi_conn: Any, record: Any, *rest: Any) -> None:
        c.add("db.pool_reset(rollback on return)", 0.0)

    command = AgiChannel.command

    async def counted_command(self: Any, name: str, *args: Any, **kw: Any) -> Any:
        t0 = clock()
        try:
            return await command(self, name, *args, **kw)
        finally:
            c.add(f"agi.{name}", clock() - t0)
            c.add("agi.command", clock() - t0)

    AgiChannel.command = counted_command  # type: ignore[method-assign]

    for meth in ("items", "flow", "text"):
        original = getattr(PromptLibrary, meth)

        def timed(self: Any, *a: Any, _o: Any = original, _m: str = meth, **kw: Any) -> Any:
            t0 = clock()
            try:
                return _o(self, *a, **kw)
            finally:
                c.add("prompt.lookup", clock() - t0)
                c.add(f"prompt.{_m}", clock() - t0)

        setattr(PromptLibrary, meth, timed)

    start_call = calls.start_call

    async def counted_start(*a: Any, **kw: Any) -> str:
        if not c.n["calls.started"]:
            prof.enable()  # from the first call: start-up (imports, rules) is not counted
        c.add("calls.started", 0.0)
        return await start_call(*a, **kw)

    calls.start_call = counted_start  # type: ignore[assignment]

    # The event loop thread's CPU time, not wall time: other processes' load on a shared
    # machine does not inflate it, and a wait (epoll) costs next to nothing, as it should.
    prof = cProfile.Profile(time.thread_time)

    def dump() -> None:
        prof.disable()
        prof.dump_stats(str(out / "profile.pstats"))
        (out / "counters.json").write_text(json.dumps({"n": c.n, "s": c.s}))

    atexit.register(dump)


def inside(out: Path) -> int:
    _hook(out)
    from ivr.cli.main import main

    return main(["serve"])


# --- outside: the bench --------------------------------------------------------------

def areas(stats_file: Path) -> dict[str, float]:
    """The profile's tottime (seconds) summed by area."""
    st = pstats.Stats(str(stats_file))
    out: dict[str, float] = defaultdict(float)
    for (file, _line, _fn), row in st.stats.items():  # type: ignore[attr-defined]
        where = f"{file}:{_fn}"
        area = next((name for name, part in AREAS if part in where), "other")
        out[area] += row[2]
    return out


def top(stats_file: Path, n: int) -> list[str]:
    st = pstats.Stats(str(stats_file))
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:n]  # type: ignore[attr-defined]
    return [f"  {r[2] * 1000:9.1f} ms {r[1]:8d}x  {Path(k[0]).name}:{k[1]} {k[2]}"
            for k, r in rows]


def profile_run(bench: Any, tree: Path, label: str, calls: int, work: Path) -> dict[str, Any]:
    """One level through the controller run from `tree` under the wrapper."""
    out = work / label
    out.mkdir(parents=True)
    wrapper = [sys.executable, str(HERE / "profile_controller.py"), "--inside", str(out)]
    env = dict(bench.stack.env, PYTHONPATH=str(tree), IVR_PROFILE_TREE=str(tree))
    bench.controller_argv, bench.controller_env, bench.controller_cwd = wrapper, env, tree
    result = bench.run_level("controller", calls)
    counters = json.loads((out / "counters.json").read_text())
    return {"label": label, "result": result, "n": counters["n"], "s": counters["s"],
            "areas": areas(out / "profile.pstats"), "pstats": out / "profile.pstats"}


def report(plain: Any, runs: list[dict[str, Any]], topn: int) -> None:
    from tests.perf.benchlib import percentile

    print()
    print(f"Per call, {plain.calls} calls at once (controller under cProfile); "
          "baseline: the plain dialplan in the same run")
    head = f"{'':36s}" + "".join(f"{r['label']:>22s}" for r in runs)
    print(head)

    def row(name: str, values: list[str]) -> None:
        print(f"{name:36s}" + "".join(f"{v:>22s}" for v in values))

    def per_call(r: dict[str, Any]) -> float:
        return max(r["n"].get("calls.started", 0), 1)

    row("completed", [f"{r['result'].completed}/{r['result'].calls}" for r in runs])
    for r in runs:
        if r["result"].failures:
            print(f"  {r['label']} failed: {r['result'].failures}")
    row("  (plain dialplan, same run)", [f"{plain.completed}/{plain.calls}"] * len(runs))
    row("first prompt p50 / p99 ms", [
        f"{percentile(r['result'].first_prompt_ms, 50):.0f} / "
        f"{percentile(r['result'].first_prompt_ms, 99):.0f}" for r in runs])
    row("  (plain dialplan, same run)", [
        f"{percentile(plain.first_prompt_ms, 50):.0f} / "
        f"{percentile(plain.first_prompt_ms, 99):.0f}"] * len(runs))
    row("controller CPU ms/call (profiled)", [
        f"{r['result'].cpu['controller'] * 1000 / r['result'].calls:.0f}" for r in runs])
    row("Asterisk CPU ms/call", [
        f"{r['result'].cpu['asterisk'] * 1000 / r['result'].calls:.0f}" for r in runs])
    row("  (plain dialplan, Asterisk)", [
        f"{plain.cpu['asterisk'] * 1000 / plain.calls:.0f}"] * len(runs))
    names = sorted({k for r in runs for k in r["n"] if k != "calls.started"},
                   key=lambda k: (k.split(".")[0], k))
    for name in names:
        row(f"{name} count / ms", [
            f"{r['n'].get(name, 0) / per_call(r):.1f} / "
            f"{r['s'].get(name, 0.0) * 1000 / per_call(r):.2f}" for r in runs])
    print("profile tottime by area, ms/call:")
    for area in sorted({a for r in runs for a in r["areas"]}):
        row(f"  {area}", [f"{r['areas'].get(area, 0.0) * 1000 / per_call(r):.2f}"
                          for r in runs])
    row("  total", [f"{sum(r['areas'].values()) * 1000 / per_call(r):.2f}" for r in runs])
    for r in runs:
        print(f"top {topn} functions by own time, {r['label']} (whole level):")
        print("\n".join(top(r["pstats"], topn)))


def outside(args: argparse.Namespace) -> int:
    from tests.perf import bench_capacity as bc
    from tests.perf.benchlib import export_tree

    class ProfiledBench(bc.Bench):
        """bench_capacity's Bench whose controller may be started another way."""

        controller_argv: list[str] | None = None
        controller_env: dict[str, str] | None = None
        controller_cwd: Path = REPO

        def start_controller(self, timeout: float = 60) -> None:
            if self.controller_argv is None:
                return super().start_controller(timeout)
            log_path = self.workdir / "controller.log"
            before = log_path.read_text(errors="replace").count("controller ready") \
                if log_path.exists() else 0
            with open(log_path, "ab") as log:
                self.controller = subprocess.Popen(
                    self.controller_argv, env=self.controller_env, stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self.controller_cwd)
            deadline = time.monotonic() + timeout
            while log_path.read_text(errors="replace").count("controller ready") <= before:
                if self.controller.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the controller did not start; see {log_path}")
                time.sleep(0.1)
            self.controller_ps = bc.psutil.Process(self.controller.pid)
            time.sleep(0.5)

    ns = argparse.Namespace(spread=args.spread, budget=900.0, keep=args.keep, levels=())
    bench = ProfiledBench(ns)
    work = Path(tempfile.mkdtemp(prefix="ivr-profile-"))
    runs: list[dict[str, Any]] = []
    try:
        bench.setup()
        plain = bench.run_level("plain", args.calls)
        print(f"  plain      {plain.completed}/{plain.calls} completed", flush=True)
        trees = [(f"{args.compare} (before)", export_tree(args.compare, work / "ref"))] \
            if args.compare else []
        trees.append(("this tree", REPO))
        for label, tree in trees:
            run = profile_run(bench, tree, label, args.calls, work)
            runs.append(run)
            print(f"  {label:10s} {run['result'].completed}/{run['result'].calls} "
                  "completed", flush=True)
    finally:
        bench.close()
    report(plain, runs, args.top)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"profiles kept in {work}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=30,
                        help="calls at once, each the full after-hours call (default 30)")
    parser.add_argument("--spread", type=float, default=3.0,
                        help="seconds over which the calls start (default 3)")
    parser.add_argument("--compare", metavar="REF",
                        help="also profile the controller code of this git ref (before)")
    parser.add_argument("--top", type=int, default=25,
                        help="functions listed by own time per run (default 25)")
    parser.add_argument("--keep", action="store_true", help="keep logs and .pstats files")
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside is not None:
        tree = os.environ.get("IVR_PROFILE_TREE")
        if tree:
            sys.path.insert(0, tree)
        return inside(args.inside)
    if not 1 <= args.calls <= 300:
        parser.error("--calls: 1-300")
    return outside(args)


if __name__ == "__main__":
    sys.exit(main())
