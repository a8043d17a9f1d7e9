"""Webhook delivery against a real aiohttp server on loopback: signature, retries, failure."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from support.receivers import Receiver

from ivr.db.engine import Database
from ivr.delivery import outbox
from ivr.delivery.models import FAILED, SUCCEEDED
from ivr.delivery.outbox import RetryPolicy, Worker
from ivr.delivery.webhook import WebhookSender, sign, verify_signature

SECRET = "s3cret-for-tests"
T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


@pytest.fixture
async def receiver():
    rec = Receiver(SECRET)
    runner = web.AppRunner(rec.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield rec, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _worker(db: Database) -> Worker:
    sender = WebhookSender(timeout=5, env={"PRACTICE_HOOK_SECRET": SECRET})
    return Worker(db, {"webhook": sender}, worker_id="w",
                  policy=RetryPolicy(max_attempts=3, base_delay=10), rng=random.Random(3))


async def _enqueue(db: Database, url: str, doc: str, tmp_path: Path) -> str:
    pdf, data = outbox.write_payload(tmp_path / "payload", doc, b"%PDF-1.4 fake",
                                     {"summary": "routine", "doc": doc})
    return await outbox.enqueue(db, practice_id="sunny", channel="webhook", destination=url,
                                document_kind="note", document_id=doc, pdf_path=pdf,
                                json_path=data, meta={"secret_env": "PRACTICE_HOOK_SECRET"},
                                now=T0, max_attempts=3)


async def test_signed_post_carries_the_json_and_the_pdf(outbox_db: Database, receiver,
                                                       tmp_path: Path) -> None:
    rec, base = receiver
    delivery_id = await _enqueue(outbox_db, f"{base}/ok", "note-1", tmp_path)
    [outcome] = await _worker(outbox_db).run_due(T0)
    assert outcome.result == "ok"
    [got] = rec.received
    assert got["valid"] and got["delivery"] == delivery_id == got["idempotency"]
    body = got["body"]
    assert body["document"] == {"kind": "note", "id": "note-1"}
    assert body["data"] == {"summary": "routine", "doc": "note-1"}
    assert base64.b64decode(body["pdf_base64"]) == b"%PDF-1.4 fake"
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None and row["status"] == SUCCEEDED and row["remote_id"] == "http-200 rq-1"


async def test_a_500_is_retried_then_succeeds(outbox_db: Database, receiver,
                                             tmp_path: Path) -> None:
    rec, base = receiver
    rec.statuses["/flaky"] = [500, 502]
    delivery_id = await _enqueue(outbox_db, f"{base}/flaky", "note-2", tmp_path)
    worker = _worker(outbox_db)
    now = T0
    results = []
    for _ in range(3):
        [outcome] = await worker.run_due(now)
        results.append((outcome.result, outcome.error))
        now = outcome.next_attempt_at or now
    assert results == [("retry", "HTTP 500"), ("retry", "HTTP 502"), ("ok", None)]
    assert [r["body"]["attempt"] for r in rec.received] == [1, 2, 3]
    assert all(r["valid"] for r in rec.received)
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None and row["status"] == SUCCEEDED


async def test_a_permanently_failing_endpoint_ends_failed_and_listed(
        outbox_db: Database, receiver, tmp_path: Path) -> None:
    rec, base = receiver
    rec.statuses["/broken"] = [500] * 10
    delivery_id = await _enqueue(outbox_db, f"{base}/broken", "note-3", tmp_path)
    worker = _worker(outbox_db)
    now = T0
    for _ in range(5):
        outcomes = await worker.run_due(now)
        now += timedelta(hours=1)
        if outcomes and outcomes[0].result == "failed":
            break
    assert len(rec.received) == 3
    [failed] = await outbox.list_deliveries(outbox_db, failed_only=True)
    assert failed["id"] == delivery_id and failed["status"] == FAILED
    assert failed["last_error"] == "HTTP 500"
    assert [a["result"] for a in failed["attempt_log"]] == ["retry", "retry", "failed"]


async def test_unreachable_endpoint_is_a_retry_not_a_crash(outbox_db: Database,
                                                          tmp_path: Path) -> None:
    from harness import free_port

    delivery_id = await _enqueue(outbox_db, f"http://127.0.0.1:{free_port()}/x", "n4", tmp_path)
    [outcome] = await _worker(outbox_db).run_due(T0)
    assert outcome.result == "retry" and "connection failed" in (outcome.error or "")
    assert (await outbox.get_delivery(outbox_db, delivery_id))["status"] == "pending"  # type: ignore[index]


async def test_missing_secret_or_plain_http_to_the_internet_fail_at_once(
        outbox_db: Database, tmp_path: Path) -> None:
    plain = await _enqueue(outbox_db, "http://practice.example/hook", "n5", tmp_path)
    no_secret = await outbox.enqueue(outbox_db, practice_id="sunny", channel="webhook",
                                     destination="https://127.0.0.1:9/hook",
                                     document_kind="note", document_id="n6",
                                     meta={"secret_env": "UNSET_SECRET"}, now=T0)
    outcomes = {o.delivery_id: o for o in await _worker(outbox_db).run_due(T0)}
    assert outcomes[plain].result == "failed" and "https" in (outcomes[plain].error or "")
    assert outcomes[no_secret].result == "failed"
    assert "UNSET_SECRET is not set" in (outcomes[no_secret].error or "")


def test_verify_signature() -> None:
    body = b'{"a":1}'
    header = sign("k", body, 1_000_000)
    assert verify_signature("k", header, body, now=1_000_010)
    assert not verify_signature("k", header, body + b" ", now=1_000_010)
    assert not verify_signature("other", header, body, now=1_000_010)
    assert not verify_signature("k", header, body, now=1_000_000 + 3600)  # replayed later
    assert not verify_signature("k", "garbage", body, now=1_000_000)
