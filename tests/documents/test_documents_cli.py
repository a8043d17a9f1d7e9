"""`ivr notes show`, `ivr report`, `ivr reports list` against a seeded database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from doc_helpers import REPO, ny, store_call

from ivr.cli import main as cli
from ivr.db.engine import Database


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch, databases):
    monkeypatch.setenv("IVR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IVR_RULES_PATH", str(REPO / "routing_rules"))
    url = databases.new(tmp_path / "data" / "ivr.sqlite3")
    databases.use_in_cli(monkeypatch, url)
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)  # PostgreSQL makes no file there

    async def seed() -> list[str]:
        db = Database(url)
        await db.create()
        try:
            return [await store_call(db, started=ny("2026-11-19 21:00"), uniqueid="u-1"),
                    await store_call(db, started=ny("2026-11-20 02:00"), disposition=None,
                                     abandoned_step="triage", end_reason="caller_hangup",
                                     uniqueid="u-2")]
        finally:
            await db.close()

    return asyncio.run(seed())


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_notes_show(seeded, capsys, tmp_path: Path):
    routine, _ = seeded
    code, out, _ = _run(capsys, "notes", "show", routine)
    assert code == 0 and "Callback number: +16175550142 (confirmed, caller ID)" in out
    assert "Call time: Thu Nov 19, 2026 9:00 PM EST" in out
    code, out, _ = _run(capsys, "notes", "show", "u-1", "--json")  # by uniqueid too
    doc = json.loads(out)
    assert code == 0 and doc["call_id"] == routine and doc["dob"]["value"] == "1990-01-02"
    target = tmp_path / "note.pdf"
    code, out, err = _run(capsys, "notes", "show", routine, "--pdf", str(target))
    assert code == 0 and target.read_bytes().startswith(b"%PDF") and out == ""
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert _run(capsys, "notes", "show", "nope")[0] == 1


def test_report_preview_then_deliver_once(seeded, capsys, tmp_path: Path):
    routine, abandoned = seeded
    code, out, _ = _run(capsys, "report", "--practice", "sunny-pediatrics", "--night",
                        "2026-11-19")
    assert code == 0 and "2 call(s), 1 need action" in out
    lines = out.splitlines()
    assert lines[3].startswith("  NEEDS ACTION") and abandoned in lines[3]
    code, out, _ = _run(capsys, "report", "--practice", "sunny-pediatrics", "--night",
                        "2026-11-19", "--json")
    doc = json.loads(out)
    assert [c["call_id"] for c in doc["calls"]] == [routine, abandoned]
    assert doc["counts"]["by_disposition"] == {"none": 1, "routine": 1}
    pdf = tmp_path / "report.pdf"
    assert _run(capsys, "report", "--practice", "sunny-pediatrics", "--night", "2026-11-19",
                "--pdf", str(pdf))[0] == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert json.loads(_run(capsys, "deliveries", "list", "--json")[1]) == []  # preview only

    code, out, _ = _run(capsys, "report", "--practice", "sunny-pediatrics", "--night",
                        "2026-11-19", "--deliver", "--json")
    made = json.loads(out)
    assert code == 0 and made["status"] == "made" and len(made["deliveries"]) == 5
    code, out, _ = _run(capsys, "report", "--practice", "sunny-pediatrics", "--night",
                        "2026-11-19", "--deliver", "--json")
    assert code == 0 and json.loads(out)["status"] == "exists"
    deliveries = json.loads(_run(capsys, "deliveries", "list", "--json")[1])
    assert len(deliveries) == 5 and {d["status"] for d in deliveries} == {"pending"}
    [row] = json.loads(_run(capsys, "reports", "list", "--json")[1])
    assert row["night"] == "2026-11-19" and row["status"] == "made" and row["calls"] == 2


def test_report_refuses_bad_arguments(seeded, capsys):
    assert _run(capsys, "report", "--practice", "nobody")[0] == 2
    code, _, err = _run(capsys, "report", "--practice", "sunny-pediatrics", "--night",
                        "26/11/2026")
    assert code == 2 and "expected a date" in err


def test_a_night_that_is_not_over_is_not_delivered(seeded, capsys):
    from datetime import UTC, datetime, timedelta

    tonight = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    code, _, err = _run(capsys, "report", "--practice", "sunny-pediatrics", "--night",
                        tonight, "--deliver")
    assert code == 1 and "not over yet" in err
    assert json.loads(_run(capsys, "reports", "list", "--json")[1]) == []


def test_report_defaults_to_the_last_night_whose_opening_passed(seeded, capsys):
    code, out, _ = _run(capsys, "report", "--practice", "sunny-pediatrics", "--json")
    doc = json.loads(out)
    from datetime import UTC, datetime

    opening = datetime.fromisoformat(doc["window"]["opening"]["utc"])
    assert code == 0 and opening <= datetime.now(UTC)
