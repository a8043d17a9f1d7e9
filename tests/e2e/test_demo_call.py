"""`ivr demo-call` against a running service: a whole intake as a person makes it, what
the caller did step by step, then the call's summary from its record."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from harness import REPO

pytestmark = pytest.mark.pbx

SUNNY_DID = "+16175550100"
CALLER = "+16175550198"


def test_demo_call_goes_through_a_whole_intake_and_prints_the_summary(stack):
    if stack.controller is None or stack.controller.poll() is not None:
        stack.start_controller()
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0).isoformat()
    stack.cli("override", "set", "--practice", "sunny-pediatrics", "--closed", "--until",
              until, "--reason", "e2e: demo call after hours")
    try:
        out = subprocess.run([sys.executable, "-m", "ivr.cli", "demo-call", "--to", SUNNY_DID,
                              "--caller-id", CALLER], env=stack.env, capture_output=True,
                             text=True, cwd=REPO, timeout=420)
    finally:
        stack.cli("override", "clear", "--practice", "sunny-pediatrics")
    text = out.stdout
    assert out.returncode == 0, text[-3000:] + out.stderr[-3000:]
    # What the caller did, in order, each after the service had asked for it.
    said = ["pressed 1: yes, call me back on this number", "keyed the date of birth 01022015",
            "pressed 1: that is right", "said 'Alex Smith.'", "pressed 2 in the menu",
            "the call ended by the service"]
    where = [text.find(words) for words in said]
    assert -1 not in where and where == sorted(where), text
    assert "the whole intake went through" in text
    # The summary is the record's: the keyed date, the caller ID confirmed, the choice.
    found = re.search(r"^call (\S+) \(all of it: ivr calls show \1\)$", text, re.M)
    assert found, text
    assert "  disposition: prescription" in text and "  route: after_hours" in text
    assert f"  intake callback: {CALLER} (caller_id, confirmed)" in text
    assert "  intake dob: 2015-01-02 (keyed, confirmed)" in text
    call = stack.show(found.group(1))
    assert {"name", "reason"} <= set(call["intake"])
    assert all(call["intake"][f]["recording_path"] for f in ("name", "reason"))
