"""Simulated calls on the example practices: Thanksgiving night, a DST night, menus, routes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rules_helpers import DENVER, NY

from ivr.rules import Override
from ivr.rules.simulate import format_text, run_menu, simulate


def test_thanksgiving_night_routine(examples):
    res = simulate(examples, "+16175550100", None, "+16175559876",
                   datetime(2026, 11, 26, 21, 30, tzinfo=NY), "4")
    json.dumps(res)  # JSON-able
    assert res["practice"] == "sunny-pediatrics"
    assert res["route"] == "after_hours"
    assert res["state"]["kind"] == "holiday" and "Thanksgiving" in res["state"]["reason"]
    assert res["disposition"] == "routine" and res["outcome"] == "message"
    assert "call you back after 8:00 AM tomorrow" in res["caller_told"]
    ids = [p["id"] for p in res["prompts"]]
    assert ids == ["greeting", "emergency_notice", "ask_callback", "ask_dob", "ask_name",
                   "ask_reason", "menu", "callback_promise"]
    assert res["prompts"][0]["file"] is None  # the example names no recording
    assert res["dial_list"] == []


def test_thanksgiving_night_urgent_goes_to_holiday_shift(examples):
    res = simulate(examples, "+16175550100", None, "+16175559876",
                   datetime(2026, 11, 26, 23, 0, tzinfo=NY), "1")
    assert res["outcome"] == "bridge"
    assert [d["clinician_id"] for d in res["dial_list"]] == [
        "nurse-avery", "nurse-avery", "dr-lindqvist", "dr-lindqvist", "dr-lindqvist"]
    assert [d["ring_seconds"] for d in res["dial_list"]] == [25, 25, 30, 30, 30]
    assert res["max_caller_wait_seconds"] == 180


def test_dst_night_fall_back(examples):
    # 01:30 EST, the second 01:30 of 2026-11-01 (06:30Z).
    res = simulate(examples, "+16175550100", None, "+16175559876",
                   datetime(2026, 11, 1, 6, 30, tzinfo=UTC), "2")
    assert res["local_time"] == "2026-11-01T01:30-05:00"
    assert res["route"] == "after_hours" and res["disposition"] == "prescription"
    assert "after 8:00 AM tomorrow" in res["caller_told"]  # Monday 08:00
    assert res["next_opening"] == "2026-11-02T08:00-05:00"


def test_dst_night_spring_forward_urgent(examples):
    res = simulate(examples, "+16175550100", None, None,
                   datetime(2027, 3, 14, 3, 30, tzinfo=NY), "1")
    assert res["local_time"] == "2027-03-14T03:30-04:00"
    assert [d["clinician_id"] for d in res["dial_list"]][2] == "dr-okafor"  # the DST swap shift
    assert "unknown_caller" in [p["id"] for p in res["prompts"]]  # no caller id


def test_overflow_bridge_to_front_desk(examples):
    res = simulate(examples, "+16175550100", "+16175550111", "+16175559876",
                   datetime(2026, 11, 24, 10, 0, tzinfo=NY), "4")
    assert res["route"] == "overflow"
    assert res["prompts"][0]["id"] == "overflow_greeting"
    assert [d["number"] for d in res["dial_list"]] == ["+16175550115"]


def test_open_direct_same_day_callback(examples):
    res = simulate(examples, "+17205550200", None, "+17205559876",
                   datetime(2026, 11, 24, 10, 0, tzinfo=DENVER), "2")
    assert res["route"] == "open_direct"
    assert res["outcome"] == "message"
    assert "call you back today, before 5:30 PM today" in res["caller_told"]


def test_menu_retries_then_default(examples, sunny):
    assert run_menu(sunny, "")[0] == "urgent"  # no input three times
    disp, trace = run_menu(sunny, "7.3")
    assert disp == "appointment"
    assert [t["result"] for t in trace] == ["invalid", "no_input", "appointment"]
    disp, trace = run_menu(sunny, "777")
    assert disp == "urgent" and trace[-1]["result"] == "default: urgent"
    res = simulate(examples, "+16175550100", None, None,
                   datetime(2026, 11, 24, 22, 0, tzinfo=NY), "7")
    ids = [p["id"] for p in res["prompts"]]
    assert ids.count("menu") == 3 and "menu_invalid" in ids and ids.count("menu_no_input") == 2


def test_emergency_advice_then_bridge(examples):
    res = simulate(examples, "+16175550100", None, None,
                   datetime(2026, 11, 24, 22, 0, tzinfo=NY), "9")
    ids = [p["id"] for p in res["prompts"]]
    assert ids[-2:] == ["emergency_advice", "connecting"]
    assert res["outcome"] == "bridge"


def test_manual_override_in_simulation(examples):
    at = datetime(2026, 11, 24, 10, 0, tzinfo=NY)
    closed = Override(at, None, False, "night mode", manual=True)
    res = simulate(examples, "+16175550100", None, None, at, "4", (closed,))
    assert res["route"] == "after_hours" and res["state"]["kind"] == "override"
    assert res["next_opening"] is None
    assert "the office reopens" in res["caller_told"]


def test_unknown_number(examples):
    res = simulate(examples, "+19995550100", None, None, datetime(2026, 11, 24, tzinfo=NY))
    assert res["route"] == "unknown_number" and res["practice"] is None
    assert res["outcome"] == "operator_intake" and res["operator_flag"]
    assert any("911" in p["text"] for p in res["prompts"])
    assert "unknown_number" in format_text(res)


def test_text_report(examples):
    text = format_text(simulate(examples, "+16175550100", None, None,
                                datetime(2026, 11, 24, 22, 0, tzinfo=NY), "1"))
    assert "Route:      after_hours" in text and "+16175550121" in text
