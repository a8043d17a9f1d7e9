"""Local times that do not exist or happen twice (DST changes) are said, with the time taken."""

from __future__ import annotations

import json

from rules_helpers import NOW, base, load_data

from ivr import clock
from ivr.cli import rules as cli_rules


def _warnings(tmp_path, data):
    res = load_data(tmp_path, data, now=NOW)
    assert res.ok, [str(e) for e in res.errors]
    return res.warnings


def test_override_in_the_missing_hour_warns_with_the_time_taken(tmp_path):
    data = base()
    data["overrides"] = [{"from": "2027-03-14 02:30", "until": "2027-03-14 09:00",
                          "state": "closed", "reason": "x"}]
    [w] = _warnings(tmp_path, data)
    assert w.key == "overrides[0].from" and w.line > 1
    assert "does not exist" in w.message and "03:30-04:00" in w.message


def test_shift_in_the_repeated_hour_warns_with_the_first_taken(tmp_path):
    data = base()
    data["on_call"]["shifts"] = [{"clinician": "n-one", "start": "2026-11-01 01:30",
                                  "end": "2026-11-01 09:00"}]
    [w] = _warnings(tmp_path, data)
    assert w.key == "on_call.shifts[0].start"
    assert "happens twice" in w.message and "01:30-04:00" in w.message


def test_opening_hours_in_the_missing_hour_warn_with_the_date(tmp_path):
    data = base()
    data["hours"]["sunday"] = ["02:30-06:00"]
    [w] = _warnings(tmp_path, data)
    assert w.key == "hours.sunday[0]"
    assert "2027-03-14" in w.message and "03:30-04:00" in w.message


def test_an_offset_or_a_normal_time_is_quiet(tmp_path):
    data = base()
    data["overrides"] = [{"from": "2027-03-14 02:30-05:00", "state": "closed", "reason": "x"},
                         {"from": "2027-03-15 02:30", "state": "closed", "reason": "y"}]
    assert not _warnings(tmp_path, data)


def test_simulate_and_oncall_say_which_time_they_took(capsys, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: NOW)  # the CLI reads the one clock
    assert cli_rules.run(["simulate", "--to", "+16175550100", "--at", "2026-11-01 01:30"]) == 0
    out = capsys.readouterr().out
    assert "2026-11-01 01:30 happens twice" in out and "01:30-04:00" in out
    assert cli_rules.run(["simulate", "--to", "+16175550100", "--at", "2027-03-14 02:30",
                          "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "does not exist" in doc["local_time_note"]
    assert cli_rules.run(["oncall", "--practice", "sunny-pediatrics",
                          "--at", "2026-11-01 01:30"]) == 0
    assert "happens twice" in capsys.readouterr().out


def test_a_handoff_in_the_missing_hour_warns(tmp_path):
    data = base()
    data["on_call"]["rotations"][0]["handoff"] = {"every_days": 1, "time": "02:30"}
    [w] = _warnings(tmp_path, data)
    assert w.key == "on_call.rotations[0].handoff.time" and "2027-03-14" in w.message
