"""The rules commands: exit codes, JSON output, the shipped schema kept in sync."""

from __future__ import annotations

import json

import jsonschema
import pytest
from rules_helpers import EXAMPLES, FIXTURES

from ivr.cli.rules import run
from ivr.rules.schema import json_schema, schema_text
from ivr.rules.yamlload import load_plain

NOW = ["--now", "2026-11-20T12:00Z"]


def test_check_valid(capsys):
    assert run(["rules", "check", str(EXAMPLES), *NOW]) == 0
    assert "ok: 2 practice(s)" in capsys.readouterr().out


def test_check_invalid_lists_every_error(capsys):
    assert run(["rules", "check", str(FIXTURES / "broken_many.yaml"), *NOW]) == 1
    out = capsys.readouterr().out
    assert out.count("error: ") == 3 and "broken_many.yaml:5:13: practice.timezone" in out


def test_check_json(capsys):
    assert run(["rules", "check", str(FIXTURES / "broken_timezone.yaml"), "--json", *NOW]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert (doc["errors"][0]["line"], doc["errors"][0]["column"]) == (5, 13)


def test_check_default_path_from_env(monkeypatch, capsys):
    monkeypatch.setenv("IVR_RULES_PATH", str(FIXTURES / "valid_minimal.yaml"))
    assert run(["rules", "check", *NOW]) == 0
    monkeypatch.setenv("IVR_RULES_PATH", str(FIXTURES / "does-not-exist"))
    assert run(["rules", "check", *NOW]) == 1


def test_schema_file_in_sync(capsys):
    assert run(["rules", "schema"]) == 0
    printed = capsys.readouterr().out
    shipped = (EXAMPLES / "schema.json").read_text()
    assert printed == schema_text() == shipped, "run: ivr rules schema > routing_rules/schema.json"


def test_schema_accepts_examples_and_rejects_unknown_keys():
    validator = jsonschema.Draft202012Validator(json_schema())
    jsonschema.Draft202012Validator.check_schema(json_schema())
    for path in EXAMPLES.glob("*.yaml"):
        text = path.read_text()
        assert text.startswith("# yaml-language-server: $schema=schema.json")
        assert not list(validator.iter_errors(load_plain(text)))
    bad = load_plain((FIXTURES / "broken_unknown_key.yaml").read_text())
    assert list(validator.iter_errors(bad))


def test_simulate_command(capsys):
    code = run(["simulate", "--rules", str(EXAMPLES), "--to", "+16175550100",
                "--at", "2026-11-26T21:30", "--keys", "4", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["local_time"] == "2026-11-26T21:30-05:00"  # no offset: practice local time
    code = run(["simulate", "--rules", str(EXAMPLES), "--to", "+16175550100",
                "--at", "2026-11-27T02:30Z", "--keys", "4"])
    assert code == 0
    assert "2026-11-26T21:30-05:00" in capsys.readouterr().out  # Z: an instant


def test_simulate_bad_time_and_bad_rules(capsys):
    assert run(["simulate", "--rules", str(EXAMPLES), "--to", "+16175550100",
                "--at", "tomorrow"]) == 2
    assert run(["simulate", "--rules", str(FIXTURES / "broken_bad_time.yaml"),
                "--to", "+16175550400", "--at", "2026-11-26T21:30"]) == 1


def test_oncall_command(capsys):
    assert run(["oncall", "--rules", str(EXAMPLES), "--practice", "mesa-family",
                "--at", "2026-12-25T03:00", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["on_call"]["physician"] == {"clinician_id": "dr-holt", "source": "ical",
                                           "name": "Dr. Megan Holt"}
    assert run(["oncall", "--rules", str(EXAMPLES), "--practice", "sunny-pediatrics",
                "--from", "2026-11-25", "--to", "2026-11-28"]) == 0
    assert "dr-lindqvist" in capsys.readouterr().out
    assert run(["oncall", "--rules", str(EXAMPLES), "--practice", "nope"]) == 2


def test_add_commands_contract():
    import argparse

    from ivr.cli.rules import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    for argv in (["rules", "check"], ["rules", "schema"],
                 ["simulate", "--to", "1", "--at", "now"], ["oncall", "--practice", "x"]):
        assert callable(parser.parse_args(argv).func)
    with pytest.raises(SystemExit):
        parser.parse_args(["rules"])
