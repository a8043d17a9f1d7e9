"""The AMI client against the real Asterisk: login, actions, and a PBX restart while
the controller runs (it reconnects by itself and keeps recording calls)."""

from __future__ import annotations

import asyncio
import re

import pytest
from harness import wait_for

from ivr.ami import AmiAuthError, AmiClient
from ivr.caller.plan import CallPlan, Hangup, Listen
from ivr.pbx.instance import AMI_USER

pytestmark = pytest.mark.pbx


def test_bad_secret_is_refused_loudly(stack):
    async def attempt() -> None:
        client = AmiClient(stack.settings.ami_host, stack.settings.ami_port, AMI_USER,
                           "not-the-secret")
        await client.connect(timeout=10)

    with pytest.raises(AmiAuthError) as err:
        asyncio.run(attempt())
    assert "not-the-secret" not in str(err.value)
    assert AMI_USER in str(err.value)


def test_actions_with_least_privileges(stack):
    """The controller's AMI user can do what it needs (channel list, AstDB reads, ping)
    and nothing that needs `system` or `command` (see tests/e2e/test_pbx_privileges.py)."""
    async def run() -> dict[str, object]:
        client = AmiClient(stack.settings.ami_host, stack.settings.ami_port, AMI_USER,
                           stack.pbx.ami_secret)
        await client.connect(timeout=10)
        try:
            await client.action({"Action": "Ping"})
            tree = await client.db_get_tree("ivrtest")  # DBGetTree: system or reporting
            channels = await client.action({"Action": "CoreShowChannels"}, as_list=True)
            put = await client.action({"Action": "DBPut", "Family": "ivrtest", "Key": "k1",
                                       "Val": "v1"}, check=False)
            # Not granted: the controller never needs to run CLI commands over AMI.
            command = await client.action({"Action": "Command", "Command": "core show uptime"},
                                          check=False)
            return {"tree": tree, "put": put, "channels": channels, "command": command}
        finally:
            await client.close()

    out = asyncio.run(run())
    assert out["tree"] == {}
    assert isinstance(out["channels"], list)
    assert out["put"].get("Response") == "Error"
    assert out["command"].get("Response") == "Error"


def test_controller_reconnects_after_asterisk_restart(live):
    """Restart Asterisk under a running controller: AMI reconnects within seconds, the
    fallback numbers are still in their files, and the next call is recorded and
    reconciled."""
    def connections() -> int:
        found = re.findall(r"AMI connected to .* \(connection (\d+)\)", live.controller_log())
        return int(found[-1]) if found else 0

    before = connections()
    live.pbx.stop()
    live.pbx.start()
    wait_for(lambda: connections() > before, 30, "the controller's AMI to reconnect")
    assert "16175550121" in (live.pbx.fallback_dir / "16175550100").read_text()
    mark = live.recorder.mark()
    report = live.place(CallPlan(steps=(Listen(quiet_ms=0, min_voice_ms=1000), Hangup())))
    assert report.ok, report.explain()
    uniqueid = wait_for(lambda: live.recorder.last_inbound_uniqueid(mark), 20, "the call")
    call = wait_for(lambda: (c := live.call_by_uniqueid(uniqueid)) and c["reconciled_at"] and c,
                    40, "the call to be reconciled", interval=0.5)
    assert call["seen_by_controller"] and call["end_reason"] == "caller_hangup"
    assert call["practice_id"] == "sunny-pediatrics"
