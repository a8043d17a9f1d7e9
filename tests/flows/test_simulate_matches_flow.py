"""`ivr simulate` and the live call take one decision: the same route, state and outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.flows import decide as flow_decide
from ivr.flows.speech import FLOW_TEXTS
from ivr.rules import load_rules
from ivr.rules.simulate import simulate
from ivr.rules.timeutil import fmt_local

REPO = Path(__file__).resolve().parents[2]
EVENING_NY = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)  # Monday 21:30 Boston: closed
AFTERNOON_DENVER = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # Monday 14:00 Denver: open

CASES = {  # route -> (dialled, forwarded from, instant)
    flow_decide.ROUTE_AFTER_HOURS: ("+16175550100", "", EVENING_NY),
    flow_decide.ROUTE_OVERFLOW: ("+16175550999", "+17205550211", AFTERNOON_DENVER),
    flow_decide.ROUTE_OPEN_DIRECT: ("+17205550200", "", AFTERNOON_DENVER),
    flow_decide.ROUTE_UNKNOWN: ("+15555550123", "", EVENING_NY),
}


@pytest.fixture(scope="module")
def rules():
    res = load_rules(REPO / "routing_rules", now=EVENING_NY)
    assert res.ok
    return res.rules


def test_every_route_is_covered():
    assert set(CASES) == set(flow_decide.ROUTES)


@pytest.mark.parametrize("route", sorted(CASES))
def test_simulate_takes_the_flows_decision(rules, route):
    dialled, forwarded, at = CASES[route]
    d = flow_decide.decide(rules, dialled, forwarded, at)
    res = simulate(rules, dialled, forwarded or None, "+16175550171", at, "4")
    assert d.route == route == res["route"]
    assert res["operator_flag"] == d.operator_flag == (route == flow_decide.ROUTE_UNKNOWN)
    assert res["practice"] == (d.practice.id if d.practice else None)
    if d.state is None:
        assert res["state"] is None
    else:
        assert (res["state"]["kind"], res["state"]["is_open"]) == (d.state.kind, d.state.is_open)
        tz = d.practice.tz
        assert res["next_opening"] == (fmt_local(d.reopens_at, tz) if d.reopens_at else None)


def test_unknown_number_is_an_intake_for_an_operator_as_in_the_flow(rules):
    dialled, forwarded, at = CASES[flow_decide.ROUTE_UNKNOWN]
    res = simulate(rules, dialled, None, None, at, "")
    assert res["outcome"] == "operator_intake" and res["dial_list"] == []
    ids = [p["id"] for p in res["prompts"]]
    assert ids == ["generic_greeting", "emergency_notice", "unknown_caller", "ask_callback",
                   "ask_dob", "ask_name", "ask_reason", "operator_closing"]
    texts = {p["id"]: p["text"] for p in res["prompts"]}
    assert texts["generic_greeting"] == FLOW_TEXTS["generic_greeting"]
    assert res["caller_told"] == FLOW_TEXTS["operator_closing"]
