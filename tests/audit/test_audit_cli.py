"""The command line writes one audit entry per read of patient data, per override change
and per retention run, and shows nothing when it cannot write it (fail closed)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audit_helpers import NIGHT, SUNNY, assert_no_patient_data, db_url, entries
from sqlalchemy import text

from ivr.cli import main as cli
from ivr.db.engine import Database
from ivr.records import audit

REPORT = ["report", "--practice", SUNNY, "--night", NIGHT]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# (argv from the seeded ids, action, subject, practice, expected detail items)
READS: dict[str, tuple[Callable, str, Callable, str | None, dict]] = {
    "calls show": (lambda s: ["calls", "show", s.call_id, "--json"], audit.CALL_READ,
                   lambda s: s.call_id, SUNNY, {"format": "json"}),
    "calls show by uniqueid": (lambda s: ["calls", "show", s.uniqueid], audit.CALL_READ,
                               lambda s: s.call_id, SUNNY, {"format": "text"}),
    "calls list": (lambda s: ["calls", "list", "--json"], audit.CALL_READ,
                   lambda s: None, None, {"count": 2, "format": "json"}),
    "calls list of a practice": (lambda s: ["calls", "list", "--practice", SUNNY],
                                 audit.CALL_READ, lambda s: None, SUNNY, {"count": 2}),
    "notes show": (lambda s: ["notes", "show", s.call_id], audit.NOTE_READ,
                   lambda s: s.call_id, SUNNY, {"format": "text"}),
    "notes show --pdf": (lambda s: ["notes", "show", s.call_id, "--pdf",
                                    str(s.data / "note.pdf")],
                         audit.NOTE_READ, lambda s: s.call_id, SUNNY, {"format": "pdf"}),
    "report preview": (lambda s: [*REPORT, "--json"], audit.REPORT_READ,
                       lambda s: f"{SUNNY}:{NIGHT}", SUNNY, {"calls": 2, "format": "json"}),
    "report preview --pdf": (lambda s: [*REPORT, "--pdf", str(s.data / "report.pdf")],
                             audit.REPORT_READ, lambda s: f"{SUNNY}:{NIGHT}", SUNNY,
                             {"calls": 2, "format": "pdf"}),
    "report --deliver": (lambda s: [*REPORT, "--deliver", "--json"], audit.REPORT_DELIVER,
                         lambda s: f"{SUNNY}:{NIGHT}", SUNNY,
                         {"status": "made", "calls": 2, "deliveries": 5}),
    "callbacks list": (lambda s: ["callbacks", "list", "--json"], audit.CALLBACKS_READ,
                       lambda s: None, None, {"count": 1, "all": False}),
    "deliveries list": (lambda s: ["deliveries", "list", "--json"], audit.DELIVERIES_READ,
                        lambda s: None, None, {"count": 0, "failed": False}),
}


@pytest.mark.parametrize("name", list(READS))
def test_each_read_writes_exactly_one_entry(name, seeded, capsys):
    argv, action, subject, practice, detail = READS[name]
    assert entries(seeded.data) == []
    code, out, _ = _run(capsys, *argv(seeded))
    assert code == 0
    [entry] = entries(seeded.data)
    assert entry["action"] == action and entry["subject"] == subject(seeded)
    assert entry["practice_id"] == practice
    assert detail.items() <= entry["detail"].items()
    assert entry["actor"].startswith("cli:") and entry["actor"].endswith(f":{os.getpid()}")
    assert abs(datetime.fromisoformat(entry["at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert_no_patient_data([entry])
    if name == "report --deliver":
        assert entry["detail"]["report_id"] == json.loads(out)["report_id"] is not None


def test_a_miss_shows_nothing_and_logs_nothing(seeded, capsys):
    assert _run(capsys, "calls", "show", "nope")[0] == 1
    assert _run(capsys, "notes", "show", "nope")[0] == 1
    assert entries(seeded.data) == []


@pytest.fixture
def audit_broken(monkeypatch):
    """audit.record fails (the table cannot be written)."""
    async def refuse(*args, **kwargs):
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(audit, "record", refuse)


@pytest.mark.parametrize("name", list(READS))
def test_reads_fail_closed_when_the_entry_cannot_be_written(name, seeded, capsys,
                                                            audit_broken):
    argv = READS[name][0](seeded)
    code, out, err = _run(capsys, *argv)
    assert code == 1 and out == ""
    assert "cannot write the audit log (RuntimeError: disk I/O error)" in err
    assert "shows and writes nothing" in err or "nothing is shown" in err
    assert not (seeded.data / "note.pdf").exists()
    assert not (seeded.data / "report.pdf").exists()
    assert entries(seeded.data) == []


def test_audit_table_gone_also_fails_closed(seeded, capsys):
    """Not only a patched function: the real write failing (no table) refuses too."""
    async def move_table() -> None:
        db = Database(db_url(seeded.data))
        try:
            async with db.engine.begin() as conn:
                await conn.execute(text("ALTER TABLE audit_log RENAME TO audit_log_moved"))
        finally:
            await db.close()

    asyncio.run(move_table())
    code, out, err = _run(capsys, "calls", "show", seeded.call_id, "--json")
    # SQLite says OperationalError (no such table), PostgreSQL ProgrammingError.
    assert code == 1 and out == ""
    assert re.search(r"cannot write the audit log \((Operational|Programming)Error", err), err
    assert "+16175550142" not in err


def test_override_set_and_clear_are_logged_without_the_reason(seeded, capsys):
    until = (datetime.now(UTC) + timedelta(hours=3)).isoformat(timespec="seconds")
    code, out, _ = _run(capsys, "override", "set", "--practice", SUNNY, "--closed",
                        "--until", until, "--reason", "Dr Smith's family emergency",
                        "--json")
    assert code == 0
    row = json.loads(out)
    code, out, _ = _run(capsys, "override", "clear", "--practice", SUNNY)
    assert code == 0 and "1 override(s) cleared" in out
    cleared, made = entries(seeded.data)
    assert made["action"] == audit.OVERRIDE_SET and made["subject"] == str(row["id"])
    assert made["practice_id"] == SUNNY and made["detail"] == {
        "mode": "closed", "start": row["start"], "end": row["end"]}
    assert cleared["action"] == audit.OVERRIDE_CLEAR and cleared["subject"] is None
    assert cleared["detail"] == {"cleared": 1, "ids": [row["id"]]}
    assert "Smith" not in json.dumps([made, cleared])


def test_override_is_not_changed_without_its_entry(seeded, capsys, audit_broken):
    until = (datetime.now(UTC) + timedelta(hours=3)).isoformat(timespec="seconds")
    code, _, err = _run(capsys, "override", "set", "--practice", SUNNY, "--closed",
                        "--until", until, "--reason", "staff meeting")
    assert code == 1 and "the override was not changed" in err
    assert json.loads(_run(capsys, "override", "list", "--json")[1]) == []
    assert entries(seeded.data) == []


def test_override_clear_is_rolled_back_without_its_entry(seeded, capsys, monkeypatch):
    until = (datetime.now(UTC) + timedelta(hours=3)).isoformat(timespec="seconds")
    assert _run(capsys, "override", "set", "--practice", SUNNY, "--open", "--until", until,
                "--reason", "open late")[0] == 0

    async def refuse(*args, **kwargs):
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(audit, "record", refuse)
    code, _, err = _run(capsys, "override", "clear", "--practice", SUNNY)
    assert code == 1 and "the override was not changed" in err
    [still] = json.loads(_run(capsys, "override", "list", "--json")[1])
    assert still["state"] == "active" and still["cleared_at"] is None


def test_retention_runs_are_logged_once_each(seeded, capsys):
    code, out, _ = _run(capsys, "retention", "run", "--dry-run", "--json")
    dry = json.loads(out)
    code, out, _ = _run(capsys, "retention", "run", "--json")
    real = json.loads(out)
    assert code == 0
    second, first = entries(seeded.data, action="retention.run")
    assert first["subject"] == dry["run_id"] and second["subject"] == real["run_id"]
    assert first["detail"]["dry_run"] is True and second["detail"]["dry_run"] is False
    assert second["detail"]["practices"] == len(real["practices"])
    assert second["detail"]["calls_deleted"] == real["totals"]["calls_deleted"]
    assert len(entries(seeded.data)) == 2


def test_audit_list_filters(seeded, capsys):
    assert _run(capsys, "calls", "show", seeded.call_id)[0] == 0
    assert _run(capsys, "calls", "list")[0] == 0
    assert _run(capsys, "callbacks", "list")[0] == 0
    assert _run(capsys, "notes", "show", seeded.other_id, "--json")[0] == 0

    code, out, _ = _run(capsys, "audit", "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["action"] for r in rows] == [
        "note.read", "callbacks.read", "call.read", "call.read"]  # newest first
    assert set(rows[0]) == {"id", "at", "actor", "action", "practice_id", "subject", "detail"}

    def listed(*argv: str) -> list[dict]:
        code, out, _ = _run(capsys, "audit", "list", "--json", *argv)
        assert code == 0
        return json.loads(out)

    assert [r["subject"] for r in listed("--action", "call.read")] == [None, seeded.call_id]
    assert [r["action"] for r in listed("--action", "callbacks")] == ["callbacks.read"]
    assert [r["action"] for r in listed("--practice", SUNNY)] == [
        "note.read", "call.read"]
    assert [r["subject"] for r in listed("--subject", seeded.other_id)] == [seeded.other_id]
    assert listed("--limit", "1") == rows[:1]
    assert listed("--since", rows[-1]["at"]) == rows
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert listed("--since", future) == []
    assert listed("--action", "rules") == []

    code, out, err = _run(capsys, "audit", "list", "--action", "call.delete")
    assert code == 2 and "unknown action 'call.delete'" in err and out == ""
    code, out, _ = _run(capsys, "audit", "list", "--practice", SUNNY)
    assert code == 0 and len(out.splitlines()) == 2 and "note.read" in out
    assert f"subject={seeded.other_id}" in out
    assert len(entries(seeded.data)) == 4  # reading the audit log is not itself logged


def test_the_command_is_in_the_table():
    parser = cli.build_parser()
    args = parser.parse_args(["audit", "list", "--since", "2026-11-26T18:00", "--action",
                              "rules.reload", "--practice", SUNNY, "--limit", "5", "--json"])
    assert args.func is cli.cmd_audit_list and args.limit == 5 and args.json


def test_pdf_file_path_is_created_only_after_the_entry(seeded, capsys, tmp_path: Path):
    target = tmp_path / "note.pdf"
    assert _run(capsys, "notes", "show", seeded.call_id, "--pdf", str(target))[0] == 0
    assert target.read_bytes().startswith(b"%PDF")
    [entry] = entries(seeded.data)
    assert str(tmp_path) not in json.dumps(entry)  # where the copy went is not logged either
