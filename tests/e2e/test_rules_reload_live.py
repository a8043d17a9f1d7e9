"""Reloading rules in a running controller: a call in progress keeps the rules it started
with and is not dropped; broken rules are refused and the previous ones stay in force."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
from harness import REPO, wait_for

from ivr.caller.plan import CallPlan, Hangup, Listen

IN_GREETING = Listen(quiet_ms=0, min_voice_ms=1000)  # a second of the greeting heard

pytestmark = pytest.mark.pbx


def _reload(stack) -> tuple[int, dict]:
    out = subprocess.run([sys.executable, "-m", "ivr.cli", "rules", "reload", "--json",
                          "--timeout", "120"],  # a starved machine loads slowly
                         env=stack.env, capture_output=True, text=True, cwd=REPO, timeout=180)
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
    # The caller listens to the greeting and hangs up at the first question: the reload
    # happens while it is greeted (the test waits until it hears the greeting).
    call = live.start(CallPlan(steps=(IN_GREETING, Listen(), Hangup())))
    uniqueid = wait_for(lambda: live.recorder.last_inbound_uniqueid(mark), 20, "the call")
    before = wait_for(lambda: (c := live.call_by_uniqueid(uniqueid)) and c.get("rules_digest")
                      and c, 20, "the call's rules to be recorded", interval=0.3)
    wait_for(lambda: any(e["event"] == "heard" for e in call.events()), 60,
             "the caller to hear the greeting")
    sunny = own_rules / "sunny-pediatrics.yaml"
    sunny.write_text(sunny.read_text().replace("name: Sunny", "name: Sunny Reloaded", 1))
    code, status = _reload(live)
    assert code == 0, status
    assert status["digest"] != before["rules_digest"]
    report = call.wait()
    assert report.ok, report.explain()
    after = wait_for(lambda: (c := live.call_by_uniqueid(uniqueid)) and c["end_reason"] and c,
                     30, "the call to end", interval=0.5)
    assert after["end_reason"] == "caller_hangup"  # the caller's own hang-up
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
    report = live.place(CallPlan(steps=(IN_GREETING, Hangup())))
    assert report.ok, report.explain()
    uniqueid = wait_for(lambda: live.recorder.last_inbound_uniqueid(mark), 20, "the call")
    third = wait_for(lambda: (c := live.call_by_uniqueid(uniqueid)) and c["end_reason"] and c,
                     30, "the call to end", interval=0.5)
    assert third["rules_digest"] == good
