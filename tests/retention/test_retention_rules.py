"""The rules' `retention` section: defaults, limits, located errors, the schema."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from retention_helpers import REPO

from ivr.rules import load_rules
from ivr.rules.model import Retention
from ivr.rules.schema import json_schema
from ivr.rules.yamlload import load_plain

MINIMAL = (REPO / "tests" / "rules" / "fixtures" / "valid_minimal.yaml").read_text()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def load(tmp_path: Path, section: str):
    """The minimal practice with `section` appended; (result, line of the section)."""
    text = MINIMAL.rstrip("\n") + "\n" + section
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return load_rules(path, now=NOW), MINIMAL.rstrip("\n").count("\n") + 2


def test_defaults_when_absent_and_the_examples(tmp_path, rules):
    res, _ = load(tmp_path, "")
    assert res.ok and res.rules is not None
    assert next(iter(res.rules.practices.values())).retention == Retention(365, None)
    assert rules.practices["sunny-pediatrics"].retention == Retention(365, 2190)
    assert rules.practices["mesa-family"].retention == Retention(365, None)


@pytest.mark.parametrize("section, retention", [
    ("retention:\n  recordings_days: 7\n", Retention(7, None)),
    ("retention:\n  records_days: 365\n", Retention(365, 365)),
    ("retention:\n  recordings_days: 30\n  records_days: 30\n", Retention(30, 30)),
    ("retention:\n  recordings_days: 3650\n  records_days: 3650\n", Retention(3650, 3650)),
])
def test_valid_sections(tmp_path, section, retention):
    res, _ = load(tmp_path, section)
    assert res.ok and res.rules is not None, [str(e) for e in res.errors]
    assert next(iter(res.rules.practices.values())).retention == retention


@pytest.mark.parametrize("section, row, column, key, fragment", [
    ("retention:\n  recordings_days: 6\n", 1, 20, "retention.recordings_days",
     "6 is out of range"),
    ("retention:\n  recordings_days: 3651\n", 1, 20, "retention.recordings_days",
     "out of range"),
    ("retention:\n  records_days: 29\n", 1, 17, "retention.records_days", "29 is out of range"),
    ("retention:\n  records_days: six years\n", 1, 17, "retention.records_days",
     "'six years' is not a number"),
    ("retention:\n  recordings_days: 30.5\n", 1, 20, "retention.recordings_days",
     "not a number"),
    ("retention:\n  keep_days: 30\n", 1, 3, "retention.keep_days", "unknown key 'keep_days'"),
    ("retention: forever\n", 0, 12, "retention", "is not a mapping"),
    ("retention:\n  recordings_days: 400\n  records_days: 365\n", 2, 17,
     "retention.records_days", "records_days 365 is shorter than recordings_days 400"),
    ("retention:\n  records_days: 100\n", 1, 17, "retention.records_days",
     "records_days 100 is shorter than recordings_days 365 (the default)"),
])
def test_errors_are_located(tmp_path, section, row, column, key, fragment):
    res, first = load(tmp_path, section)
    assert not res.ok
    matching = [e for e in res.errors if e.key == key and fragment in e.message]
    assert matching, [str(e) for e in res.errors]
    issue = matching[0]
    assert (issue.line, issue.column) == (first + row, column)
    assert str(issue).startswith(f"{tmp_path / 'p.yaml'}:{first + row}:{column}: {key}: ")
    assert issue.expected


def test_schema_matches_the_validator():
    schema = json_schema()
    section = schema["properties"]["retention"]
    assert section["additionalProperties"] is False
    assert section["properties"]["recordings_days"]["minimum"] == 7
    assert section["properties"]["records_days"]["maximum"] == 3650
    base = load_plain(MINIMAL)  # the sunny example is checked by tests/rules
    jsonschema.validate({**base, "retention": {"recordings_days": 30, "records_days": 60}},
                        schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**base, "retention": {"recordings_days": 1}}, schema)
