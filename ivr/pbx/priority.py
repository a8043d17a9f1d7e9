"""The service's processes run ahead of batch work on their machine (IVR_SERVICE_NICE).

Asterisk mixes and sends a caller's audio every 20 ms and the controller has to answer
each key with the next prompt; a backup, a report or another program's build on the same
cores must not make a caller hear gaps or wait in silence. So Asterisk, the controller
and Kamailio start at a lower niceness (-5 by default). It is a share, not a real-time
class: a busy service still leaves the machine to everything else, which Asterisk's own
`highpriority` (SCHED_RR) would not guarantee. Transcription workers set their own,
higher niceness (ivr/transcribe/worker.py).

Lowering a niceness takes root (CAP_SYS_NICE); a service started without it keeps the
niceness it inherited.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def _allowed(niceness: int) -> bool:
    """Whether this process may run (or start a program) at `niceness`."""
    return niceness >= os.getpriority(os.PRIO_PROCESS, 0) or os.geteuid() == 0


def nice_argv(niceness: int) -> list[str]:
    """The `nice` prefix that starts a program at `niceness` (none where it cannot)."""
    if niceness == os.getpriority(os.PRIO_PROCESS, 0) or not _allowed(niceness):
        return []
    return ["nice", "-n", str(niceness - os.getpriority(os.PRIO_PROCESS, 0))]


def take(niceness: int) -> None:
    """Run this process at `niceness`; called before it starts any thread (each thread
    keeps the niceness of the thread that made it)."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness == current:
        return
    if not _allowed(niceness):
        log.info("running at niceness %d: %d (IVR_SERVICE_NICE) needs root", current,
                 niceness)
        return
    os.setpriority(os.PRIO_PROCESS, 0, niceness)
