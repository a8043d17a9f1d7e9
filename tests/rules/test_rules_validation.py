"""Loader and validator: every error located at file:line:column, all errors collected."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_helpers import FIXTURES, NOW, base, load_data, load_text, practice_from

from ivr.rules import load_rules
from ivr.rules.yamlload import load_plain


def only_error(path: Path):
    res = load_rules(path, now=NOW)
    assert not res.ok and res.rules is None
    return res.errors


def where(issue) -> tuple[int, int]:
    return issue.line, issue.column


@pytest.mark.parametrize(
    "fixture, key, line, column, fragment",
    [
        ("broken_unknown_key.yaml", "on_call.clinicians[1].pager", 18, 68, "unknown key 'pager'"),
        ("broken_wrong_type.yaml", "on_call.escalation[0].attempts", 27, 49,
         "'twice' is not a number"),
        ("broken_bad_time.yaml", "hours.monday[0]", 10, 12, "'25:00' is not a time"),
        ("broken_bad_time.yaml", "hours.tuesday[0]", 11, 13, "'8-17' is not a period"),
        ("broken_handoff_time.yaml", "on_call.rotations[0].handoff.time", 22, 40, "'10:75'"),
        ("broken_timezone.yaml", "practice.timezone", 5, 13,
         "'America/Boston' is not a known time zone"),
        ("broken_phone.yaml", "on_call.clinicians[1].phone", 18, 52,
         "'call me' is not a phone number"),
        ("broken_phone.yaml", "on_call.clinicians[2].phone", 19, 52, "not a dialable number"),
        ("broken_unknown_clinician.yaml", "on_call.escalation[1].clinician", 28, 19,
         "no clinician with id 'dr-nobody'"),
        ("broken_empty_rotation.yaml", "on_call.rotations[0].order", 21, 14, "no one in it"),
        ("broken_overlap.yaml", "on_call.shifts[1]", 26, 7, "overlaps on_call.shifts[0]"),
        ("broken_yaml_syntax.yaml", "", 11, 10, "YAML syntax error"),
    ],
)
def test_error_is_located(fixture, key, line, column, fragment):
    errors = only_error(FIXTURES / fixture)
    matching = [e for e in errors if e.key == key and fragment in e.message]
    assert matching, [str(e) for e in errors]
    issue = matching[0]
    assert where(issue) == (line, column)
    assert issue.file.endswith(fixture)
    assert str(issue).startswith(f"{issue.file}:{line}:{column}: ")
    assert issue.expected


def test_issue_str_format():
    errors = only_error(FIXTURES / "broken_bad_time.yaml")
    text = str(errors[0])
    assert text.endswith(
        "broken_bad_time.yaml:10:12: hours.monday[0]: '08:00-25:00' is not a period: "
        "'25:00' is not a time; expected HH:MM-HH:MM, e.g. 08:00-17:00 "
        "(17:00-08:00 crosses midnight)"
    )


def test_duplicate_did_across_files():
    errors = only_error(FIXTURES / "dup_did")
    assert len(errors) == 1
    e = errors[0]
    assert e.file.endswith("dup_did/b.yaml") and where(e) == (6, 10)
    assert e.key == "practice.dids[0]" and e.value == "+16175550400"
    assert "already claimed by practice 'fixture-practice'" in e.message
    assert "dup_did/a.yaml:6" in e.message


def test_all_errors_are_collected():
    errors = only_error(FIXTURES / "broken_many.yaml")
    assert [(e.key, e.line) for e in errors] == [
        ("practice.timezone", 5), ("hours.tuesday[0]", 11), ("triage.default", 14)]


def test_valid_fixture_loads():
    res = load_rules(FIXTURES / "valid_minimal.yaml", now=NOW)
    assert res.ok, [str(e) for e in res.errors]


def test_unquoted_ten_oclock_is_a_time(tmp_path):
    text = (FIXTURES / "valid_minimal.yaml").read_text().replace("time: 08:00", "time: 10:00")
    text = text.replace("monday: [08:00-17:00]", "monday: [10:00-14:30]")
    res = load_text(tmp_path, text)
    assert res.ok, [str(e) for e in res.errors]
    p = res.rules.practices["fixture-practice"]
    assert p.on_call.rotations["nurse"].handoff_minute == 600  # not 600 *seconds* of base 60
    assert (p.hours[0][0].start, p.hours[0][0].end) == (600, 870)
    # YAML 1.1 would have read these as integers and booleans.
    assert load_plain("a: 10:00\nb: no\nc: off\nd: 2026-12-24\ne: yes") == {
        "a": "10:00", "b": "no", "c": "off", "d": "2026-12-24", "e": "yes"}


def test_yes_is_not_a_boolean(tmp_path):
    data = base()
    data["holidays"] = {"observed": "yes"}
    res = load_data(tmp_path, data)
    assert [e.key for e in res.errors] == ["holidays.observed"]
    assert res.errors[0].expected == "true or false"


def test_missing_required_keys(tmp_path):
    data = base()
    del data["practice"]["timezone"]
    del data["triage"]
    res = load_data(tmp_path, data)
    keys = {e.key for e in res.errors}
    assert {"practice.timezone", "triage"} <= keys


def test_wrong_type_mapping_for_list(tmp_path):
    res = load_text(tmp_path, (FIXTURES / "valid_minimal.yaml").read_text().replace(
        "monday: [08:00-17:00]", "monday: {open: 08:00}"))
    assert [(e.key, e.line, e.column) for e in res.errors] == [("hours.monday", 10, 11)]


def test_rotation_role_mismatch_and_second_rotation(tmp_path):
    data = base()
    data["on_call"]["rotations"][1]["order"] = ["n-one"]
    res = load_data(tmp_path, data)
    assert any("is a nurse, not a physician" in e.message for e in res.errors)


def test_escalation_step_needs_exactly_one_target(tmp_path):
    data = base()
    data["on_call"]["escalation"].append({"role": "nurse", "clinician": "n-one"})
    res = load_data(tmp_path, data)
    assert [e.key for e in res.errors] == ["on_call.escalation[2]"]


def test_duplicate_practice_id(tmp_path):
    a = base()
    b = base()
    b["practice"]["dids"] = ["+16175550301"]
    b["practice"]["forwarding_numbers"] = []
    load_data(tmp_path, a, "a.yaml")
    res = load_data(tmp_path, b, "b.yaml")  # loads the single file b only
    assert res.ok
    res = load_rules(tmp_path, now=NOW)
    assert [e.key for e in res.errors] == ["practice.id"]


def test_coverage_gap_warning(tmp_path):
    data = base()
    data["on_call"]["rotations"] = [data["on_call"]["rotations"][1]]  # no nurse rotation
    data["on_call"]["shifts"] = [{"clinician": "n-one", "start": "2026-11-19 08:00",
                                  "end": "2026-12-01 08:00"}]
    res = load_data(tmp_path, data)
    assert res.ok
    assert len(res.warnings) == 1
    w = res.warnings[0]
    assert w.severity == "warning"
    assert "no nurse on call from 2026-12-01T08:00-05:00 to 2026-12-20T07:00-05:00" in w.message


def test_unknown_placeholder_in_prompt(tmp_path):
    data = base()
    data["prompts"] = {"greeting": "Hello {patient}"}
    res = load_data(tmp_path, data)
    assert [e.key for e in res.errors] == ["prompts.greeting"]


def test_digest_changes_with_content(tmp_path):
    one = load_data(tmp_path, base()).rules.digest
    data = base()
    data["practice"]["name"] = "Renamed"
    two = load_data(tmp_path, data).rules.digest
    assert one != two and len(one) == 16


def test_rules_are_immutable(examples, sunny):
    with pytest.raises(TypeError):
        examples.practices["x"] = sunny  # type: ignore[index]
    with pytest.raises(AttributeError):
        sunny.name = "x"  # type: ignore[misc]


def test_route_precedence(examples):
    assert examples.route("+16175550100", None).id == "sunny-pediatrics"
    assert examples.route("6175550100", None).id == "sunny-pediatrics"  # national form
    # Forwarded from Mesa's own number to Sunny's DID: the patient dialled Mesa.
    assert examples.route("+16175550100", "+17205550211").id == "mesa-family"
    # Unknown Diversion falls back to the DID.
    assert examples.route("+17205550200", "+13035550199").id == "mesa-family"
    assert examples.route("+19995550100", None) is None
    assert examples.route("anonymous", None) is None


def test_together_step_rings_several_and_is_checked(tmp_path):
    data = base()
    data["on_call"]["escalation"].append(
        {"together": [{"role": "physician"}, {"clinician": "n-two"}], "ring_seconds": 40})
    p = practice_from(tmp_path, data)
    step = p.on_call.escalation[-1]
    assert [(t.role, t.clinician_id) for t in step.targets] == [("physician", None),
                                                                 (None, "n-two")]
    bad = base()
    bad["on_call"]["escalation"] = [
        {"together": [{"role": "nurse"}]},                                  # only one
        {"together": [{"role": "nurse"}, {"role": "nurse"}]},               # twice
        {"together": [{"clinician": "nobody"}, {"role": "physician"}]},     # unknown id
        {"together": [{"role": "nurse"}, {"role": "physician"}], "role": "nurse"},
        {"together": [{"role": "nurse", "clinician": "n-one"}, {"role": "physician"}]},
    ]
    res = load_data(tmp_path, bad)
    found = {(e.key, e.message.split(";")[0]) for e in res.errors}
    assert ("on_call.escalation[0].together", "a 'together' step rings several at once") \
        in {(k, m.split(",")[0]) for k, m in found}
    assert any(k == "on_call.escalation[1].together[1]" and "twice" in m for k, m in found)
    assert any(k == "on_call.escalation[2].together[0].clinician" for k, _ in found)
    assert any(k == "on_call.escalation[3]" for k, _ in found)
    assert any(k == "on_call.escalation[4].together[0]" for k, _ in found)
    assert all(e.line > 0 for e in res.errors)


def test_fallback_numbers_must_be_named_by_the_rules(tmp_path):
    data = base()
    data["fallback_numbers"] = ["+16175550321", "+16175550399"]
    res = load_data(tmp_path, data)
    assert [(e.key, e.value) for e in res.errors] == [("fallback_numbers[1]", "+16175550399")]
    assert "not a clinician's phone" in res.errors[0].message
    data["fallback_numbers"] = ["+16175550321"]
    assert not load_data(tmp_path, data).errors
