"""Load rules in a child process that is killed at a deadline (the controller's loads).

Why a process and not a thread: a thread cannot be stopped. A load that runs long
(a calendar whose rule never matches makes dateutil walk to the year 9999) would go
on holding the GIL against the calls the controller is serving, keep the memory it
took, and, as an executor thread, hold up the interpreter's exit on SIGTERM. A
child can be killed at once, with a memory cap and a lower CPU priority, and takes
nothing with it. The cost is a fresh interpreter per load (about 0.2 s here) and
pickling the RuleSet back, which reloads (at start-up, on a change, daily) afford.

The child is `python -m ivr.rules.sandbox`: a JSON request on stdin, a pickled
LoadResult on stdout. Inside it, the load also runs with its own time budget and
interval timer, so an over-long load usually ends with a located error before the
parent's kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import io
import json
import logging
import os
import pickle
import sys
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ivr.rules import LoadResult, load_rules
from ivr.rules.limits import LOAD_BUDGET_SECONDS
from ivr.rules.model import Issue, frozen_map

log = logging.getLogger(__name__)

LOAD_DEADLINE_SECONDS = 20.0  # the parent's hard kill; the child's own budget ends first
MEMORY_LIMIT_BYTES = 1 << 30  # the child's address space (1,000 practices: 63 MB resident)
CHILD_NICENESS = 5  # live calls get the CPU first on a small machine
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


def refused(path: str | Path, expected: str, message: str) -> LoadResult:
    """A LoadResult with one error for the rules path (the load itself went wrong)."""
    return LoadResult(None, [Issue(str(path), 1, 1, "", None, expected, message)])


def over_deadline(path: str | Path, seconds: float) -> LoadResult:
    result = refused(path, f"rules that load within {seconds:g} s",
                     f"the rules load did not finish within {seconds:g} s and was stopped")
    result.cut_short = True
    return result


# --- the parent's side ---------------------------------------------------------------------

async def load_in_child(path: str | Path, now: datetime, *,
                        deadline: float = LOAD_DEADLINE_SECONDS,
                        budget: float | None = None) -> LoadResult:
    """load_rules(path, now=now) in a child process, killed after `deadline` seconds.

    Never raises but CancelledError (and then the child is killed first): a failed,
    killed or silent child is a refused load with one located error.
    """
    if budget is None:
        budget = min(LOAD_BUDGET_SECONDS, max(deadline - 2.0, deadline / 2))
    request = json.dumps({"path": str(path), "now": now.isoformat(), "budget": budget,
                          "deadline": deadline}).encode()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr.rules.sandbox", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(request), deadline)
    except TimeoutError:
        log.error("rules load in pid %d passed its %g s deadline; killed", proc.pid, deadline)
        return over_deadline(path, deadline)
    finally:
        if proc.returncode is None:  # deadline, or the controller is stopping
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        log.error("rules loader process exited with %s: %s", proc.returncode, last[0][:300])
        return refused(path, "", f"the rules loader process failed (exit code "
                                 f"{proc.returncode})")
    try:
        # Our own child's output, never the files' bytes. In a thread: 1,000 practices
        # take about 0.15 s, which calls in progress should not wait for.
        result = await asyncio.to_thread(pickle.loads, out)
    except Exception as exc:
        log.error("rules loader process sent an unreadable result: %s", exc)
        return refused(path, "", "the rules loader process sent an unreadable result")
    if not isinstance(result, LoadResult):
        return refused(path, "", "the rules loader process sent an unreadable result")
    return result


# --- the child's side ----------------------------------------------------------------------

def _reduce_mapping(proxy: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return frozen_map, (dict(proxy),)


def dumps(result: LoadResult) -> bytes:
    """Pickle a LoadResult; the RuleSet's read-only maps are rebuilt by frozen_map."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    table: dict[Any, Any] = dict(copyreg.dispatch_table)
    table[MappingProxyType] = _reduce_mapping
    pickler.dispatch_table = table
    pickler.dump(result)
    return buf.getvalue()


def _limit_self(deadline: float) -> None:
    import resource

    with contextlib.suppress(OSError, ValueError):
        os.nice(CHILD_NICENESS)
    with contextlib.suppress(OSError, ValueError):
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(
            hard, MEMORY_LIMIT_BYTES)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    with contextlib.suppress(OSError, ValueError):
        # Should the parent be gone, the kernel ends a child that spins past this.
        seconds = int(deadline) + 5
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if hard == resource.RLIM_INFINITY or hard > seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (seconds, hard))


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    _limit_self(float(request["deadline"]))
    path = request["path"]
    try:
        result = load_rules(path, now=datetime.fromisoformat(request["now"]),
                            budget=float(request["budget"]), interrupt=True)
    except Exception as exc:  # load_rules reports file problems itself; this is a bug
        result = refused(path, "", f"internal error while checking {path}: "
                                   f"{type(exc).__name__}")
    try:
        data = dumps(result)
    except Exception:  # an unpicklable value in an issue: send the issues as text
        result.errors = [Issue(i.file, i.line, i.column, i.key, str(i.value), i.expected,
                               i.message, i.severity) for i in result.errors]
        result.warnings = [Issue(i.file, i.line, i.column, i.key, str(i.value), i.expected,
                                 i.message, i.severity) for i in result.warnings]
        data = dumps(result)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
