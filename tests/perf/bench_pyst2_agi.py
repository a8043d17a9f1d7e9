#!/usr/bin/python3
"""Benchmark baseline: the bench flow as a classic pyst2 process-per-call AGI script.

Asterisk runs it as `AGI(<this file>,<prompt>)` inside its root; tests/perf/bench_agi.py
copies it, with pyst2 (and the `six` it imports) into a `pylib` folder next to it. It
does exactly what ivr/flows/bench.py does (answer, read a variable, set a variable, play
a short prompt, read one key, set the sentinel), times each AGI command the same way the
FastAGI side does, and appends one JSON line per call to `results.jsonl` next to it.
Standard library and pyst2 only: the root has no virtualenv and no `ivr` package.
"""

import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "pylib"))

from asterisk.agi import AGI  # noqa: E402  (pyst2, copied next to this file)


def main() -> int:
    record = {"ok": False, "err": None, "cmds": [], "stamp": None, "key": None,
              "t_start": None, "t_end": None, "uid": None, "cpu": None}
    try:
        agi = AGI()
    except Exception as exc:  # no headers: nothing to answer
        record["err"] = f"headers: {type(exc).__name__}"
        _finish(record)
        return 0
    record["uid"] = agi.env.get("agi_uniqueid")
    execute = agi.execute

    def timed_execute(command, *args):
        started = time.time()
        if record["t_start"] is None:
            record["t_start"] = started
        t0 = time.perf_counter()
        try:
            result = execute(command, *args)
        finally:
            record["cmds"].append([command, (time.perf_counter() - t0) * 1000.0])
        if command == "GET VARIABLE":
            record["stamp"] = result.get("result", ("", ""))[1]
        return result

    agi.execute = timed_execute  # pyst2's helpers all go through self.execute
    prompt = sys.argv[1] if len(sys.argv) > 1 else "beep"
    try:
        agi.answer()
        agi.get_variable("BENCH_IN")
        agi.set_variable("BENCH_OUT", "1")
        agi.stream_file(prompt)
        record["key"] = agi.wait_for_digit(2000)
        agi.set_variable("IVR_RESULT", "done")
        record["ok"] = True
    except Exception as exc:  # pyst2 raises ValueError on a HANGUP line, AGIHangup on SIGHUP
        record["err"] = type(exc).__name__
    _finish(record)
    return 0


def _finish(record: dict) -> None:
    record["t_end"] = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record["cpu"] = usage.ru_utime + usage.ru_stime
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    # One O_APPEND write per call: concurrent scripts do not interleave lines.
    fd = os.open(os.path.join(HERE, "results.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
