"""`ivr retention run [--dry-run] [--json]` and `ivr retention log [--json]`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from retention_helpers import REPO, SUNNY, store_call

from ivr.cli import main as cli
from ivr.db.engine import Database


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch, databases) -> tuple[Path, list[Path]]:
    """Calls for the CLI (which runs at the real now): the data folder, their recordings."""
    data = tmp_path / "data"
    monkeypatch.setenv("IVR_DATA_DIR", str(data))
    monkeypatch.setenv("IVR_RULES_PATH", str(REPO / "routing_rules"))
    url = databases.new(data / "ivr.sqlite3")
    databases.use_in_cli(monkeypatch, url)
    now = datetime.now(UTC)

    async def seed() -> None:
        db = Database(url)
        await db.create()
        try:
            await store_call(db, data, started=now - timedelta(days=400))  # recordings due
            await store_call(db, data, started=now - timedelta(days=2200))  # record due
            await store_call(db, data, started=now - timedelta(days=400), practice_id=None)
            await store_call(db, data, started=now - timedelta(days=10))  # nothing due
        finally:
            await db.close()

    asyncio.run(seed())
    return data, sorted((data / "recordings").rglob("*.wav"))


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_dry_run_then_run_then_log(seeded, capsys):
    data, files = seeded
    assert len(files) == 8
    code, out = _run(capsys, "retention", "log", "--json")
    assert code == 0 and json.loads(out) == []

    code, out = _run(capsys, "retention", "run", "--dry-run", "--json")
    dry = json.loads(out)
    assert code == 0 and dry["dry_run"] is True
    practices = {p["practice_id"]: p for p in dry["practices"]}
    assert list(practices) == ["mesa-family", SUNNY, None]
    assert practices[SUNNY] == {
        "practice_id": SUNNY, "recordings_days": 365, "records_days": 2190,
        "calls_purged": 1, "recordings_deleted": 4, "calls_deleted": 1,
        "documents_deleted": 0, "bytes_freed": 4000, "files_refused": 0, "calls_held": 0}
    assert practices[None]["calls_purged"] == 1 and practices[None]["records_days"] is None
    assert dry["totals"]["recordings_deleted"] == 6
    assert all(f.exists() for f in files)  # a dry run deletes nothing

    code, out = _run(capsys, "retention", "run", "--json")
    real = json.loads(out)
    assert code == 0 and real["dry_run"] is False and real["totals"] == dry["totals"]
    assert sum(f.exists() for f in files) == 2  # only the 10-day-old call's recordings

    code, out = _run(capsys, "retention", "run")
    assert code == 0 and out.startswith("retention run ") and ": deleted" in out
    assert (f"  {SUNNY} [recordings 365 d, records 2190 d]: 0 recording file(s) of 0 call(s), "
            "0 call record(s), 0 document file(s), 0 bytes; 0 held, 0 refused") in out
    assert "  (unknown numbers) [recordings 365 d, records kept]: " in out

    code, out = _run(capsys, "retention", "log", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 9
    assert [r["dry_run"] for r in rows[-3:]] == [True] * 3
    assert rows[-1]["worker"].startswith("cli:")
    code, out = _run(capsys, "retention", "log", "--practice", SUNNY)
    assert code == 0 and len(out.splitlines()) == 3 and "calls_deleted=1" in out


def test_without_loadable_rules_nothing_is_purged(seeded, capsys, monkeypatch, tmp_path):
    data, files = seeded
    monkeypatch.setenv("IVR_RULES_PATH", str(tmp_path / "missing"))
    with pytest.raises(SystemExit) as stop:
        cli.main(["retention", "run"])
    assert stop.value.code == 1 and all(f.exists() for f in files)
    monkeypatch.setenv("IVR_RULES_PATH", str(REPO / "routing_rules"))
    assert json.loads(_run(capsys, "retention", "log", "--json")[1]) == []
