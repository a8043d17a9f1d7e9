"""Fuzz: thousands of mutated rules files and calendars; only located errors or success.

Bounded by a number of cases and a time budget per case, never by a timed assertion:
on a busy machine the run takes longer but finds the same things. A case whose load
takes longer than its budget plus a margin is a hang, whatever it returned.

IVR_FUZZ_CASES and IVR_FUZZ_SEED run more or other cases (e.g. overnight):
  IVR_FUZZ_CASES=50000 IVR_FUZZ_SEED=7 .venv/bin/python -m pytest -q tests/rules/test_rules_fuzz.py
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections import Counter

from rules_fuzz import BUDGET_STOP, TracebackKeeper, cases, run_case, seeds
from rules_helpers import EXAMPLES, FIXTURES, NOW

from ivr.cli.rules import run as cli_run

CASES = int(os.environ.get("IVR_FUZZ_CASES", "1500"))
SEED = int(os.environ.get("IVR_FUZZ_SEED", "20261120"))
CASE_BUDGET = 2.0  # seconds: the loader's own budget for one case
HANG_AFTER = CASE_BUDGET + 2.0  # a case over this was not stopped by the budget
CLI_EVERY = 100  # every Nth case also goes through `ivr rules check`


def test_mutated_rules_never_crash_or_hang(tmp_path):
    seed_files = seeds(EXAMPLES, FIXTURES)
    by_name = {s.name: s for s in seed_files}
    keeper = TracebackKeeper()
    logger = logging.getLogger("ivr.rules")
    logger.addHandler(keeper)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    kinds: Counter[str] = Counter()
    crashes, hangs, malformed, cli_problems = [], [], [], []
    slowest = (0.0, "")
    started = time.monotonic()
    try:
        for case in cases(seed_files, CASES, SEED):
            out = run_case(case, by_name[case.seed], tmp_path / "case", NOW, CASE_BUDGET)
            label = f"case {case.number} ({case.seed}: {'; '.join(case.mutations)})"
            if out.seconds > slowest[0]:
                slowest = (out.seconds, label)
            if out.escaped is not None:
                crashes.append(f"{label}: {type(out.escaped).__name__}: {out.escaped}")
            elif out.internal:
                crashes.append(f"{label}: {out.internal[0]} [{'; '.join(keeper.seen[-1:])}]")
            if out.seconds > HANG_AFTER:
                hangs.append(f"{label}: {out.seconds:.1f} s")
            malformed += [f"{label}: {m}" for m in out.malformed]
            result = out.result
            if result is None:
                kinds["crash"] += 1
            elif result.ok:
                kinds["loaded"] += 1
            elif any(BUDGET_STOP in e.message for e in result.errors):
                kinds["stopped by the budget"] += 1
            else:
                kinds["refused"] += 1
            if case.number % CLI_EVERY == 0:
                cli_problems += _check_cli(tmp_path / "case", label)
    finally:
        logger.removeHandler(keeper)
        logger.setLevel(level)
    took = time.monotonic() - started
    summary = (f"{CASES} cases (seed {SEED}) in {took:.1f} s: {dict(kinds)}; slowest "
               f"{slowest[0]:.2f} s, {slowest[1]}")
    print(summary)
    assert not crashes, f"{len(crashes)} crashes; {summary}\n" + "\n".join(crashes[:20])
    assert not hangs, f"{len(hangs)} hangs; {summary}\n" + "\n".join(hangs[:20])
    assert not malformed, "\n".join(malformed[:20])
    assert not cli_problems, "\n".join(cli_problems[:20])
    # The mutations must reach past the parser: most cases are refused by the validator.
    assert kinds["refused"] > CASES // 3 and kinds["loaded"] > 0, summary


def _check_cli(folder, label: str) -> list[str]:
    """`ivr rules check` on the case: exit 0 or 1 and no traceback."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_run(["rules", "check", str(folder), "--now", "2026-11-20T12:00Z"])
    text = out.getvalue() + err.getvalue()
    problems = []
    if code not in (0, 1):
        problems.append(f"{label}: `ivr rules check` exited {code}")
    if "Traceback" in text:
        problems.append(f"{label}: `ivr rules check` printed a traceback")
    return problems
