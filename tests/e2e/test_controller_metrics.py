"""The controller's own /metrics (IVR_CONTROLLER_METRICS_PORT) scraped as Prometheus would,
around real calls through the PBX: a reacting caller with a hostile display name is
counted among the calls up while it talks, every AGI command of its call lands in the
latency histogram by verb, a SIPp call with dialplan syntax in its caller ID is counted
too, and nothing either caller sent appears in the scrape."""

from __future__ import annotations

import pytest
from harness import wait_for
from metrics_helpers import ENV, operator_token, samples
from metrics_helpers import scraper as make_scraper
from support.plans import answer
from support.sipp import CallerSpec

from ivr.caller.plan import CallPlan, Hangup

pytestmark = pytest.mark.pbx

HOSTILE_NAME = '<script>alert(1)</script> "Robert\'); DROP TABLE calls;--'
CALLER = "+16175550177"
HOSTILE_ID = "+16175550165%24%7BSHELL(id)%7D%22%20EXEC%20System%2C%7C"


@pytest.fixture
def scraper(live):
    """The live controller restarted with its metrics port on, and an operator's token."""
    port = live.ports.next()
    live.extra_env[ENV] = str(port)
    live.stop_controller()
    live.start_controller()
    try:
        yield make_scraper(port, operator_token(live.settings))
    finally:
        live.extra_env.pop(ENV, None)
        live.stop_controller()  # the next test's `live` starts one without the port


def _commands(text: str) -> dict[str, float]:
    """Command verb -> commands counted (all outcomes)."""
    out: dict[str, float] = {}
    for (name, labels), value in samples(text).items():
        if name == "ivr_agi_command_seconds_count":
            verb = dict(labels)["command"]
            out[verb] = out.get(verb, 0) + value
    return out


def test_a_real_call_is_counted_up_then_its_commands_timed(live, scraper):
    status, text = scraper(with_token=False)
    assert status == 401
    status, before = scraper()
    assert status == 200, before
    counted = _commands(before)

    plan = CallPlan(caller_id=CALLER, caller_name=HOSTILE_NAME,
                    steps=(*answer("1"), *answer("0"), Hangup()))
    call = live.start(plan, timeout_s=180)
    try:
        wait_for(lambda: samples(scraper()[1]).get(
            ("ivr_controller_calls_in_progress", ()), 0) >= 1, 120,
            "the call counted as up on this controller", interval=0.3)
    finally:
        report = call.wait()
    assert report.ok, report.explain()
    wait_for(lambda: samples(scraper()[1]).get(
        ("ivr_controller_calls_in_progress", ()), 1) == 0, 60, "the call no longer up")

    after = scraper()[1]
    grown = {verb: n - counted.get(verb, 0) for verb, n in _commands(after).items()
             if n > counted.get(verb, 0)}
    # The flow (the dialplan answered) played prompts (the greeting, the notice and the
    # first question in one GOSUB; the next questions' Reads), took the keys, set its
    # result.
    assert grown.get("GOSUB", 0) == 1 and grown.get("EXEC", 0) >= 1, grown
    assert grown.get("SET VARIABLE", 0) >= 1, grown
    assert set(grown) <= {"ANSWER", "GET DATA", "STREAM FILE", "GET VARIABLE", "GOSUB",
                          "GET FULL VARIABLE", "SET VARIABLE", "WAIT FOR DIGIT", "GET OPTION",
                          "EXEC", "RECORD FILE", "SAY DIGITS", "HANGUP"}, grown
    # A histogram whose buckets add up: the +Inf bucket is the count.
    seen = samples(after)
    for (name, labels), value in seen.items():
        if name == "ivr_agi_command_seconds_count":
            assert seen[("ivr_agi_command_seconds_bucket",
                            tuple(sorted((*labels, ("le", "+Inf")))))] == value

    # A SIPp caller whose caller ID carries dialplan syntax: its call is served (the
    # number refused as caller data) and counted, and none of it becomes a label.
    served = sum(_commands(after).values())
    spec = CallerSpec(caller_id=HOSTILE_ID, keys="", hangup_after_ms=4000)
    assert live.call(spec).returncode == 0
    wait_for(lambda: sum(_commands(scraper()[1]).values()) > served, 60,
             "the hostile caller's commands counted")

    text = scraper()[1]
    for secret in (CALLER, CALLER[2:], "5550165", "SHELL", "System", "script", "DROP",
                   "Robert", "%"):
        assert secret not in text, secret
    assert "ivr_controller_ami_connected 1.0" in text
