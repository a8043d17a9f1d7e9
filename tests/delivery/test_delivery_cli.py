"""`ivr deliveries list --json [--failed]` and `ivr deliveries retry` on a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from ivr import config
from ivr.db.engine import Database
from ivr.delivery import outbox
from ivr.delivery.outbox import DeliveryError, Job, RetryPolicy, SendResult, Worker

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


class AlwaysDown:
    channel, timeout = "webhook", 5.0

    async def send(self, job: Job) -> SendResult:
        raise DeliveryError("HTTP 503")


def _ivr(settings: config.Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **config.to_env(settings))
    return subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


async def test_failed_deliveries_are_listed_and_can_be_retried(tmp_path: Path,
                                                              databases) -> None:
    data = tmp_path / "data"
    settings = config.Settings(data_dir=data, db_url=databases.new(data / "ivr.sqlite3"))
    settings = settings.validate()
    db = Database(settings.database_url)
    try:
        await db.create()
        bad = await outbox.enqueue(db, practice_id="sunny", channel="webhook",
                                   destination="https://hooks.sunny.example/ivr",
                                   document_kind="morning_report", document_id="2026-11-27",
                                   now=T0, max_attempts=1)
        pending = await outbox.enqueue(db, practice_id="sunny", channel="email",
                                       destination="desk@sunny.example", document_kind="note",
                                       document_id="n1", now=T0)
        await Worker(db, {"webhook": AlwaysDown()}, worker_id="w",
                     policy=RetryPolicy(max_attempts=1)).run_due(T0)
    finally:
        await db.close()

    out = _ivr(settings, "deliveries", "list", "--json", "--failed")
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert row["id"] == bad and row["status"] == "failed" and row["last_error"] == "HTTP 503"
    assert [a["result"] for a in row["attempt_log"]] == ["failed"]

    out = _ivr(settings, "deliveries", "list", "--json")
    assert {r["id"] for r in json.loads(out.stdout)} == {bad, pending}
    out = _ivr(settings, "deliveries", "list")
    assert out.returncode == 0 and f"id={bad}" in out.stdout

    assert _ivr(settings, "deliveries", "retry", bad).returncode == 0
    assert _ivr(settings, "deliveries", "retry", pending).returncode == 1
    out = _ivr(settings, "deliveries", "list", "--json", "--failed")
    assert json.loads(out.stdout) == []
