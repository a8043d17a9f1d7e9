"""Reloading rules in a running controller: a call in progress keeps the rules it started
with and is not dropped; broken rules are refused and the previous ones stay in force."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from harness import REPO, wait_for
from support.sipp import CallerSpec

pytestmark = pytest.mark.pbx


def _reload(stack) -> tuple[int, dict]:
    out = subprocess.run([sys.executable, "-m", "ivr.cli", "rules", "reload", "--json"],
                         env=stack.env, capture_output=True, text=True, cwd=REPO, timeout=60)
    return out.returncode, json.loads(out.stdout or "{}")


@pytest.fixture
def own_rules(live, tmp_path):
    """The live controller restarted on a copy of the example rules we may edit."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "routing_rules", rules)
    original = live.settings
    live.stop_controller()
    live.settings = replace(original, rules_path=rules)
    live.start_controller()
    try:
        yield rules
    finally:
        live.stop_controller()
        live.settings = original
        live.start_controller()


def test_reload_mid_call_keeps_the_call_and_its_rules(live, own_rules):
    mark = live.recorder.mark()
    call = live.call_async(CallerSpec(keys="", hangup_after_ms=12000))
    uniqueid = wait_for(lambda: live.recorder.last_inbound_uniqueid(mark), 20, "the call")
    before = wait_for(lambda: (c := live.call_by_uniqueid(uniqueid)) and c.get("rules_digest")
                      and c, 20, "the call's rules to be recorded", interval=0.3)
    time.sleep(2)
    sunny = own_rules / "sunny-pediatrics.yaml"
    sunny.write_text(sunny.read_text().replace("name: Sunny", "name: Sunny Reloaded", 1))
    code, status = _reload(live)
    assert code == 0, status
    assert status["digest"] != before["rules_digest"]
    result = call.join()
    assert result.returncode == 0, result.stderr
    after = wait_for(lambda: (c := live.call_by_uniqueid(uniqueid)) and c["end_reason"] and c,
                     30, "the call to end", interval=0.5)
    assert after["end_reason"] == "caller_hangup"  # the caller's own hang-up, at 12 s
    assert after["rules_digest"] == before["rules_digest"]
    assert "IvrFallback" not in live.recorder.path(uniqueid)

    # Broken rules are refused, the reloaded ones stay in force for the next call.
    good = status["digest"]
    sunny.write_text(sunny.read_text().replace("timezone: America/New_York",
                                               "timezone: Mars/Olympus_Mons", 1))
    code, refused = _reload(live)
    assert code == 1
    assert refused["digest"] == good and refused["last_error"]
    mark = live.recorder.mark()
    result = live.call(CallerSpec(keys="", hangup_after_ms=4000))
    assert result.returncode == 0, result.stderr
    uniqueid = wait_for(lambda: live.recorder.last_inbound_uniqueid(mark), 20, "the call")
    third = wait_for(lambda: (c := live.call_by_uniqueid(uniqueid)) and c["end_reason"] and c,
                     30, "the call to end", interval=0.5)
    assert third["rules_digest"] == good
