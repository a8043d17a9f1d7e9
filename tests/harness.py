"""One import line for the tests and benchmarks: the parts live in tests/support/ by role
(ports, polling, the AMI recorder, the stack, SIPp). Importing it also puts the
repository on sys.path, for the benchmark scripts run directly."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.polling import wait_for  # noqa: E402
from support.ports import PortPlan, free_port, is_free, worker_ports  # noqa: E402
from support.recorder import EventRecorder  # noqa: E402
from support.sipp import (  # noqa: E402
    run_scenario,
    run_scenario_in,
    silence_pcap,
    timed_caller_scenario,
)
from support.stack import EXAMPLE_DID, REPO, BackgroundCall, Stack, drop_pending_callbacks  # noqa: E402

__all__ = ["EXAMPLE_DID", "REPO", "BackgroundCall", "EventRecorder", "PortPlan", "Stack",
           "drop_pending_callbacks", "free_port", "is_free", "run_scenario",
           "run_scenario_in", "silence_pcap", "timed_caller_scenario", "wait_for",
           "worker_ports"]
