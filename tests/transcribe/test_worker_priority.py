"""A transcription worker runs below the calls: its initializer lowers its priority."""

from __future__ import annotations

import subprocess
import sys

from ivr.transcribe.worker import WORKER_NICE


def test_the_workers_initializer_lowers_its_priority_and_never_raises_it():
    probe = ("import os; from ivr.transcribe import worker; "
             "worker.watch_parent(os.getppid()); print(os.getpriority(os.PRIO_PROCESS, 0))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True)
    assert int(out.stdout) == WORKER_NICE
    # Started nicer than that (an operator's choice): kept, not raised back.
    out = subprocess.run(["nice", "-n", "15", sys.executable, "-c", probe],
                         capture_output=True, text=True, timeout=60, check=True)
    assert int(out.stdout) == 15
