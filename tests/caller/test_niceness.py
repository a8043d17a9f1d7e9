"""IVR_CALLER_NICE: the reacting caller's processes take that niceness before pjsua2
starts (the suite's callers stand in for devices on other machines)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ivr.caller.__main__ import NICE_VARIABLE

PROBE = ("import os, sys; from ivr.caller.__main__ import _take_niceness; "
         "_take_niceness(); print(os.getpriority(os.PRIO_PROCESS, 0))")


def _run(value: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, NICE_VARIABLE: value}
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60, check=True)


def test_a_nicer_value_is_taken():
    assert int(_run("7").stdout) == 7


@pytest.mark.skipif(os.geteuid() != 0, reason="a negative niceness needs root")
def test_as_root_a_higher_priority_is_taken():
    assert int(_run("-5").stdout) == -5


def test_a_value_that_is_no_number_is_reported_and_left():
    out = _run("fast")
    assert int(out.stdout) == os.getpriority(os.PRIO_PROCESS, 0)
    assert "IVR_CALLER_NICE='fast' not taken (ValueError)" in out.stderr
