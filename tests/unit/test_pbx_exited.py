"""When a stopped Asterisk counts as gone: only once the kernel has closed its files
(gone from the process table, or a zombie), not when its pid file is."""

from __future__ import annotations

import subprocess

from ivr.pbx.instance import _exited
from tests.support.polling import wait_for


def test_a_running_process_has_not_exited_a_zombie_and_a_reaped_one_have() -> None:
    running = subprocess.Popen(["sleep", "30"])
    done = subprocess.Popen(["true"])
    try:
        assert not _exited(running.pid)
        # Not waited for: it stays a zombie, its files already closed.
        wait_for(lambda: _exited(done.pid), 30, "the child to become a zombie")
    finally:
        running.kill()
        running.wait()
        done.wait()
    assert _exited(done.pid)
