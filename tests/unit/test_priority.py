"""The service's niceness (ivr/pbx/priority.py): a `nice` prefix and a take that do
nothing where the niceness cannot be had, and a setting with a clear range."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ivr import config
from ivr.pbx import priority


def test_the_prefix_starts_a_program_at_the_niceness():
    current = os.getpriority(os.PRIO_PROCESS, 0)
    assert priority.nice_argv(current) == []
    higher = min(current + 3, 19)
    argv = [*priority.nice_argv(higher), sys.executable, "-c",
            "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"]
    assert int(subprocess.run(argv, capture_output=True, text=True, check=True).stdout) \
        == higher


def test_a_lower_niceness_is_left_alone_without_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    current = os.getpriority(os.PRIO_PROCESS, 0)
    assert priority.nice_argv(current - 1) == []
    priority.take(current - 1)  # logs, does not raise
    assert os.getpriority(os.PRIO_PROCESS, 0) == current


def test_take_sets_the_process_niceness():
    script = ("import os; from ivr.pbx import priority; "
              "priority.take(os.getpriority(os.PRIO_PROCESS, 0) + 2); "
              "print(os.getpriority(os.PRIO_PROCESS, 0))")
    before = os.getpriority(os.PRIO_PROCESS, 0)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert int(out) == min(before + 2, 19)


@pytest.mark.parametrize("raw, message", [
    ("-21", "IVR_SERVICE_NICE=-21: expected a niceness between -20 and 19"),
    ("low", "IVR_SERVICE_NICE='low': expected a whole number"),
])
def test_the_setting_names_a_bad_value(raw, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(")):
        config.from_env({"IVR_SERVICE_NICE": raw})
