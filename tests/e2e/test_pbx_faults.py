"""Calls cut by the PBX itself are recorded as such, never blamed on the patient.

A PBX stopped (or restarted) mid-call hangs the channel up with nobody as the hang-up
source: the hang-up stamp says so and the call is `pbx_restart`. A PBX killed outright
writes no stamp at all: once the controller reconnects, a call with no channel and no
stamp is `pbx_failure`.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from harness import wait_for
from support.sipp import CallerSpec

pytestmark = pytest.mark.pbx



def _connections(live) -> int:
    found = re.findall(r"AMI connected to .* \(connection (\d+)\)", live.controller_log())
    return int(found[-1]) if found else 0


def _call_in_progress(live, caller_id: str):
    mark = live.recorder.mark()
    spec = CallerSpec(caller_id=caller_id, keys="", hangup_after_ms=60000)
    background = live.call_async(spec, timeout_s=70)
    uniqueid = wait_for(lambda: live.recorder.last_inbound_uniqueid(mark), 30, "the call")
    # The controller has the call (its record exists) before the PBX goes.
    wait_for(lambda: live.call_by_uniqueid(uniqueid), 30, "the call's record", interval=0.3)
    return background, uniqueid


def _reconciled(live, uniqueid: str) -> dict:
    return wait_for(lambda: (c := live.call_by_uniqueid(uniqueid)) and c["reconciled_at"]
                    and c, 60, "the call to be reconciled", interval=0.5)


def test_a_pbx_restart_mid_call_is_pbx_restart(live):
    background, uniqueid = _call_in_progress(live, "+16175550181")
    before = _connections(live)
    live.pbx.stop()
    live.pbx.start()
    wait_for(lambda: _connections(live) > before, 30, "the controller's AMI to reconnect")
    background.join(90)
    call = _reconciled(live, uniqueid)
    assert call["end_reason"] == "pbx_restart", call
    assert call["ended_at"] is not None


def test_a_pbx_killed_mid_call_is_pbx_failure(live):
    background, uniqueid = _call_in_progress(live, "+16175550182")
    before = _connections(live)
    pid = live.pbx.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # Gone from the process table, not only from the pid file: until then it holds its ports.
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 20, "Asterisk to die")
    live.pbx.start()
    wait_for(lambda: _connections(live) > before, 30, "the controller's AMI to reconnect")
    background.join(90)
    call = _reconciled(live, uniqueid)
    assert call["end_reason"] == "pbx_failure", call
    assert call["ended_at"] is not None
    shown = live.show(call["id"])
    ended = [e for e in shown["timeline"] if e["kind"] == "call.ended"]
    assert ended and ended[-1]["detail"]["source"] == "no-channel-no-stamp"
