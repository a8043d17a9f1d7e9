"""The `others_of` escalation step: the role's members not yet rung in this chain."""

from __future__ import annotations

from datetime import datetime

from rules_helpers import NY, base, load_data, practice_from

from ivr.rules.oncall import dial_list, rings

AT = datetime(2026, 11, 10, 22, 0, tzinfo=NY)  # n-two's week


def _team() -> dict:
    data = base()
    data["on_call"]["clinicians"] += [
        {"id": "n-three", "name": "Nurse Three", "role": "nurse", "phone": "+16175550325"},
        {"id": "d-two", "name": "Doctor Two", "role": "physician", "phone": "+16175550324"}]
    return data


def test_others_of_rings_the_rest_of_the_role_in_turn(tmp_path):
    data = _team()
    data["on_call"]["escalation"] = [
        {"role": "nurse", "ring_seconds": 20},
        {"clinician": "n-one", "ring_seconds": 20},
        {"others_of": "nurse", "ring_seconds": 25, "attempts": 2}]
    p = practice_from(tmp_path, data)
    steps = dial_list(p, AT)
    assert [(s.clinician_id, s.step_index, s.attempt) for s in steps] == [
        ("n-two", 0, 1), ("n-one", 1, 1), ("n-three", 2, 1), ("n-three", 2, 2)]
    assert steps[-1].role == "nurse" and steps[-1].ring_seconds == 25
    assert len(rings(steps)) == 4  # one at a time


def test_others_of_inside_together_rings_them_at_once(tmp_path):
    data = _team()
    data["on_call"]["escalation"] = [
        {"role": "physician"},
        {"together": [{"others_of": "physician"}, {"others_of": "nurse"}]}]
    p = practice_from(tmp_path, data)
    groups = rings(dial_list(p, AT))
    assert [s.clinician_id for s in groups[0]] == ["d-one"]
    assert sorted(s.clinician_id for s in groups[1]) == ["d-two", "n-one", "n-three", "n-two"]


def test_others_of_with_nobody_left_is_skipped(tmp_path):
    data = base()
    data["on_call"]["escalation"] = [{"role": "physician"}, {"others_of": "physician"}]
    p = practice_from(tmp_path, data)
    assert [s.clinician_id for s in dial_list(p, AT)] == ["d-one"]


def test_others_of_is_checked(tmp_path):
    data = base()
    data["on_call"]["escalation"] = [
        {"others_of": "surgeon"},
        {"others_of": "nurse", "role": "nurse"},
        {"together": [{"others_of": "nurse", "clinician": "n-one"}, {"role": "physician"}]}]
    res = load_data(tmp_path, data)
    keys = [e.key for e in res.errors]
    assert keys == ["on_call.escalation[0].others_of", "on_call.escalation[1]",
                    "on_call.escalation[2].together[0]"], [str(e) for e in res.errors]
    assert all(e.line > 1 and e.expected for e in res.errors)
    assert "'others_of'" in res.errors[1].expected
