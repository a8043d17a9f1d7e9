"""`ivr users add|list|disable|passwd|token`: passwords never as arguments, secrets shown
once, bad input named, and what the commands make works in the portal."""

from __future__ import annotations

import io
import json

import pytest
from web_helpers import PASSWORD, SUNNY, db_run

from ivr.accounts import store
from ivr.cli.main import main


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("IVR_DATA_DIR", str(data))
    monkeypatch.delenv("IVR_DB_URL", raising=False)
    return data


def _run(monkeypatch, capsys, argv, stdin=""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_passwd_disable(cli_env, monkeypatch, capsys):
    code, out, _ = _run(monkeypatch, capsys, ["users", "add", "desk-1", "--role", "front_desk",
                                              "--practice", SUNNY, "--password-stdin",
                                              "--json"], PASSWORD + "\n")
    assert code == 0 and json.loads(out)["role"] == "front_desk"
    assert PASSWORD not in out
    code, out, _ = _run(monkeypatch, capsys, ["users", "list", "--json"])
    [row] = json.loads(out)
    assert row["username"] == "desk-1" and row["practice_id"] == SUNNY and not row["disabled"]
    assert "password" not in json.dumps(row)
    code, out, _ = _run(monkeypatch, capsys, ["users", "passwd", "desk-1", "--totp",
                                              "--password-stdin"], "another long secret\n")
    assert code == 0 and "otpauth://totp/" in out
    code, out, _ = _run(monkeypatch, capsys, ["users", "disable", "desk-1"])
    assert code == 0 and "disabled" in out
    result = db_run(cli_env, lambda db, now: store.check_password(db, "desk-1",
                                                                  "another long secret", now))
    assert result.reason == "disabled"


@pytest.mark.parametrize("argv, words", [
    (["users", "add", "x1", "--role", "front_desk", "--password-stdin"], "give --practice"),
    (["users", "add", "op", "--role", "operator", "--practice", SUNNY, "--password-stdin"],
     "give no --practice"),
    (["users", "add", "nurse", "--role", "clinician", "--practice", SUNNY,
      "--password-stdin"], "give --clinician"),
    (["users", "add", "Bad Name", "--role", "operator", "--password-stdin"], "user name"),
])
def test_bad_input_is_named(cli_env, monkeypatch, capsys, argv, words):
    code, _, err = _run(monkeypatch, capsys, argv, PASSWORD + "\n")
    assert code == 2 and words in err and PASSWORD not in err


def test_short_password_refused(cli_env, monkeypatch, capsys):
    code, _, err = _run(monkeypatch, capsys, ["users", "add", "op", "--role", "operator",
                                              "--password-stdin"], "short\n")
    assert code == 2 and "at least 12 characters" in err and "short" not in err.split(":")[-1]


def test_token_made_once_listed_and_revoked(cli_env, monkeypatch, capsys):
    _run(monkeypatch, capsys, ["users", "add", "op", "--role", "operator",
                               "--password-stdin"], PASSWORD + "\n")
    code, out, _ = _run(monkeypatch, capsys, ["users", "token", "op", "--name", "phone",
                                              "--json"])
    made = json.loads(out)
    assert code == 0 and made["token"].startswith("ivr_")
    who = db_run(cli_env, lambda db, now: store.principal_for_token(db, made["token"], now))
    assert who.username == "op" and who.via == "api"
    code, out, _ = _run(monkeypatch, capsys, ["users", "token", "op", "--list", "--json"])
    listed = json.loads(out)
    assert [t["id"] for t in listed] == [made["id"]] and made["token"] not in out
    code, out, _ = _run(monkeypatch, capsys, ["users", "token", "op", "--revoke", made["id"]])
    assert code == 0
    assert db_run(cli_env, lambda db, now: store.principal_for_token(
        db, made["token"], now)) is None


def test_first_operator_only_on_an_empty_database(cli_env):
    from ivr.cli.users import first_operator

    made = first_operator()
    assert made is not None and made[0] == "admin" and len(made[1]) >= 16
    assert first_operator() is None
