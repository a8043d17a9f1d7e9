"""The outbox: idempotent enqueue, claims, retries with back-off, failure, leases, two workers."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ivr.db.engine import Database
from ivr.delivery import outbox
from ivr.delivery.models import FAILED, PENDING, SENDING, SUCCEEDED
from ivr.delivery.outbox import DeliveryError, Job, RetryPolicy, SendResult, Worker

T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base_delay=30, max_delay=3600, lease_margin=60)


class ScriptedSender:
    """A sender whose results are scripted: an exception instance raises, else succeeds."""

    def __init__(self, channel: str = "webhook", script: list[object] | None = None,
                 timeout: float = 10.0, delay: float = 0.0) -> None:
        self.channel, self.timeout, self.delay = channel, timeout, delay
        self.script = list(script or [])
        self.sent: list[Job] = []
        self.always_fail: set[str] = set()

    async def send(self, job: Job) -> SendResult:
        self.sent.append(job)
        if self.delay:
            await asyncio.sleep(self.delay)
        step = self.script.pop(0) if self.script else None
        if job.id in self.always_fail:
            step = DeliveryError("HTTP 500")
        if isinstance(step, BaseException):
            raise step
        return SendResult(remote_id=f"r-{job.id[:6]}-{job.attempt_no}")


async def _enqueue(db: Database, doc: str = "note-1", dest: str = "https://x.test/hook",
                   channel: str = "webhook", max_attempts: int = POLICY.max_attempts) -> str:
    return await outbox.enqueue(db, practice_id="sunny", channel=channel, destination=dest,
                                document_kind="note", document_id=doc, now=T0,
                                max_attempts=max_attempts)


def _worker(db: Database, sender: ScriptedSender, name: str = "w1") -> Worker:
    return Worker(db, {sender.channel: sender}, worker_id=name, policy=POLICY,
                  rng=random.Random(7))


async def test_enqueue_is_idempotent_per_channel_and_destination(outbox_db: Database) -> None:
    first = await _enqueue(outbox_db, channel="fax", dest="+1 (617) 555-0123")
    assert await _enqueue(outbox_db, channel="fax", dest="+16175550123") == first
    other_dest = await _enqueue(outbox_db, channel="fax", dest="+16175550124")
    other_channel = await _enqueue(outbox_db, channel="email", dest="desk@Sunny.example")
    assert await _enqueue(outbox_db, channel="email", dest="desk@sunny.EXAMPLE") == other_channel
    other_doc = await _enqueue(outbox_db, doc="note-2", channel="fax", dest="+16175550123")
    assert len({first, other_dest, other_channel, other_doc}) == 4
    rows = await outbox.list_deliveries(outbox_db)
    assert len(rows) == 4 and all(r["status"] == PENDING for r in rows)


async def test_enqueue_joins_the_callers_transaction(outbox_db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with outbox_db.session() as session:
            await outbox.enqueue(session, practice_id="sunny", channel="webhook",
                                 destination="https://x.test/h", document_kind="note",
                                 document_id="n1", now=T0)
            raise RuntimeError("the note could not be stored")
    assert await outbox.list_deliveries(outbox_db) == []
    async with outbox_db.session() as session:
        a = await outbox.enqueue(session, practice_id="sunny", channel="webhook",
                                 destination="https://x.test/h", document_kind="note",
                                 document_id="n1", now=T0)
        b = await outbox.enqueue(session, practice_id="sunny", channel="webhook",
                                 destination="https://x.test/h", document_kind="note",
                                 document_id="n1", now=T0)
    assert a == b and len(await outbox.list_deliveries(outbox_db)) == 1


@pytest.mark.parametrize("channel,dest", [
    ("fax", "555-CALL-NOW"), ("fax", "12"), ("email", "not an address"),
    ("email", "a@b.org\r\nBcc: x@y.org"), ("webhook", "ftp://x.test/"),
    ("webhook", "https://x.test/a b"), ("pigeon", "x")])
async def test_enqueue_refuses_bad_destinations(outbox_db: Database, channel: str,
                                                dest: str) -> None:
    with pytest.raises(ValueError, match=channel):
        await _enqueue(outbox_db, channel=channel, dest=dest)


async def test_success_is_sent_once_and_never_again(outbox_db: Database) -> None:
    delivery_id = await _enqueue(outbox_db)
    sender = ScriptedSender()
    worker = _worker(outbox_db, sender)
    outcomes = await worker.run_due(T0)
    assert [(o.delivery_id, o.result) for o in outcomes] == [(delivery_id, "ok")]
    for later in (T0, T0 + timedelta(days=1)):
        assert await worker.run_due(later) == []
    # A restarted controller (new worker, new engine) does not send it either.
    again = Database(outbox_db.url)
    try:
        assert await _worker(again, sender, "w2").run_due(T0 + timedelta(days=2)) == []
    finally:
        await again.close()
    assert len(sender.sent) == 1
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None
    assert row["status"] == SUCCEEDED and row["attempts"] == 1
    assert row["remote_id"] == f"r-{delivery_id[:6]}-1"
    assert row["claimed_by"] is None and row["lease_expires_at"] is None
    [attempt] = row["attempt_log"]
    assert attempt["result"] == "ok" and attempt["worker"] == "w1"
    assert attempt["started_at"] == T0.isoformat() and attempt["finished_at"] is not None


async def test_retries_back_off_exponentially_with_jitter(outbox_db: Database) -> None:
    delivery_id = await _enqueue(outbox_db)
    sender = ScriptedSender(script=[DeliveryError("HTTP 500"), DeliveryError("HTTP 503")])
    worker = _worker(outbox_db, sender)

    [first] = await worker.run_due(T0)
    assert first.result == "retry" and first.error == "HTTP 500"
    assert first.next_attempt_at is not None
    wait1 = first.next_attempt_at - T0
    assert timedelta(seconds=15) <= wait1 <= timedelta(seconds=30.5)
    assert await worker.run_due(first.next_attempt_at - timedelta(seconds=1)) == []

    [second] = await worker.run_due(first.next_attempt_at)
    assert second.result == "retry" and second.attempt_no == 2
    assert second.next_attempt_at is not None
    wait2 = second.next_attempt_at - first.next_attempt_at
    assert timedelta(seconds=30) <= wait2 <= timedelta(seconds=60.5)

    [third] = await worker.run_due(second.next_attempt_at)
    assert third.result == "ok" and third.attempt_no == 3
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None and row["status"] == SUCCEEDED and row["last_error"] is None
    assert [a["result"] for a in row["attempt_log"]] == ["retry", "retry", "ok"]
    assert [a["error"] for a in row["attempt_log"]] == ["HTTP 500", "HTTP 503", None]


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(base_delay=30, max_delay=600)
    rng = random.Random(1)
    delays = [policy.delay(n, rng).total_seconds() for n in range(1, 12)]
    for n, d in enumerate(delays, start=1):
        full = min(600, 30 * 2 ** (n - 1))
        assert full / 2 <= d <= full
    assert len({round(d, 3) for d in delays[6:]}) > 1  # capped ones still jitter


async def test_out_of_attempts_ends_failed_and_listed(outbox_db: Database) -> None:
    delivery_id = await _enqueue(outbox_db)
    ok_id = await _enqueue(outbox_db, doc="note-ok")
    sender = ScriptedSender()
    sender.always_fail.add(delivery_id)
    worker = _worker(outbox_db, sender)
    now = T0
    for _ in range(10):
        outcomes = await worker.run_due(now)
        if not outcomes:
            now += timedelta(hours=2)
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None
    assert row["status"] == FAILED and row["attempts"] == 3
    assert row["last_error"] == "HTTP 500" and row["finished_at"] is not None
    assert [a["result"] for a in row["attempt_log"]] == ["retry", "retry", "failed"]
    failed = await outbox.list_deliveries(outbox_db, failed_only=True)
    assert [r["id"] for r in failed] == [delivery_id]
    assert (await outbox.get_delivery(outbox_db, ok_id))["status"] == SUCCEEDED  # type: ignore[index]
    assert await worker.run_due(now + timedelta(days=30)) == []

    assert await outbox.requeue(outbox_db, delivery_id, now=now) is True
    assert await outbox.requeue(outbox_db, ok_id, now=now) is False
    sender.always_fail.clear()
    [again] = await worker.run_due(now)
    assert again.result == "ok" and again.attempt_no == 4


async def test_permanent_error_fails_at_once(outbox_db: Database) -> None:
    delivery_id = await _enqueue(outbox_db)
    sender = ScriptedSender(script=[DeliveryError("secret env X is not set", permanent=True)])
    [outcome] = await _worker(outbox_db, sender).run_due(T0)
    assert outcome.result == "failed"
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None and row["status"] == FAILED and row["attempts"] == 1


async def test_unexpected_exception_is_recorded_without_its_text(outbox_db: Database) -> None:
    delivery_id = await _enqueue(outbox_db)
    sender = ScriptedSender(script=[KeyError("Jane Doe 2019-04-01")])
    [outcome] = await _worker(outbox_db, sender).run_due(T0)
    assert outcome.result == "retry"
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None
    assert row["last_error"] == "unexpected KeyError in the webhook sender"
    assert "Jane" not in str(row)


async def test_a_hung_sender_times_out_and_is_retried(outbox_db: Database) -> None:
    await _enqueue(outbox_db)
    sender = ScriptedSender(timeout=0.05, delay=1.0)
    [outcome] = await _worker(outbox_db, sender).run_due(T0)
    assert outcome.result == "retry" and outcome.error == "no result within 0s"


async def test_crashed_worker_lease_expires_and_another_sends(outbox_db: Database) -> None:
    delivery_id = await _enqueue(outbox_db)
    sender = ScriptedSender(timeout=10)
    crashed = _worker(outbox_db, sender, "crashed")
    claims, _ = await crashed._claim_due(T0)  # claimed, then the process died
    assert len(claims) == 1
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None and row["status"] == SENDING and row["claimed_by"] == "crashed"
    lease_end = T0 + timedelta(seconds=10 + POLICY.lease_margin)
    assert row["lease_expires_at"] == lease_end.isoformat()

    survivor = _worker(outbox_db, sender, "survivor")
    assert await survivor.run_due(lease_end - timedelta(seconds=1)) == []
    [outcome] = await survivor.run_due(lease_end)
    assert outcome.result == "ok" and outcome.attempt_no == 2
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None and row["status"] == SUCCEEDED
    assert [(a["worker"], a["result"]) for a in row["attempt_log"]] == [
        ("crashed", "lost"), ("survivor", "ok")]
    assert "lease expired" in row["attempt_log"][0]["error"]


async def test_lease_expiry_on_the_last_attempt_fails_visibly(outbox_db: Database) -> None:
    delivery_id = await _enqueue(outbox_db, max_attempts=1)
    sender = ScriptedSender(timeout=10)
    await _worker(outbox_db, sender, "crashed")._claim_due(T0)
    [outcome] = await _worker(outbox_db, sender, "w2").run_due(T0 + timedelta(hours=1))
    assert outcome.result == "failed" and sender.sent == []
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None and row["status"] == FAILED
    assert [a["result"] for a in row["attempt_log"]] == ["lost"]


async def test_a_late_success_wins_over_a_reclaim(outbox_db: Database) -> None:
    """The slow worker's success is recorded; the reclaimer's later failure does not undo it."""
    delivery_id = await _enqueue(outbox_db)
    sender = ScriptedSender(timeout=10)
    slow = _worker(outbox_db, sender, "slow")
    [slow_claim], _ = await slow._claim_due(T0)
    fast = _worker(outbox_db, sender, "fast")
    [fast_claim], _ = await fast._claim_due(T0 + timedelta(hours=1))
    ok = await slow._record(slow_claim, T0 + timedelta(hours=1, seconds=1), None, False, "r1")
    assert ok.result == "ok"
    await fast._record(fast_claim, T0 + timedelta(hours=1, seconds=2), "HTTP 500", False, None)
    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None and row["status"] == SUCCEEDED and row["remote_id"] == "r1"
    assert await fast.run_due(T0 + timedelta(days=3)) == []


async def test_two_workers_on_one_database_never_send_twice(tmp_path: Path, databases) -> None:
    url = databases.new(tmp_path / "shared.sqlite3")
    first, second = Database(url), Database(url)  # two engines: two controllers' pools
    try:
        await first.create()
        ids = [await _enqueue(first, doc=f"note-{i}") for i in range(40)]
        sender_a = ScriptedSender(delay=0.005)
        sender_b = ScriptedSender(delay=0.005)
        worker_a = Worker(first, {"webhook": sender_a}, worker_id="a", policy=POLICY, limit=7)
        worker_b = Worker(second, {"webhook": sender_b}, worker_id="b", policy=POLICY, limit=7)

        async def drain(worker: Worker) -> None:
            for _ in range(40):
                await worker.run_due(T0)
                await asyncio.sleep(0)

        await asyncio.gather(drain(worker_a), drain(worker_b))
        sent = [job.id for job in sender_a.sent + sender_b.sent]
        assert sorted(sent) == sorted(ids)  # every one exactly once
        assert sender_a.sent and sender_b.sent  # and both did work
        rows = await outbox.list_deliveries(first)
        assert {r["status"] for r in rows} == {SUCCEEDED}
        assert all(len(r["attempt_log"]) == 1 for r in rows)
    finally:
        await first.close()
        await second.close()


async def test_run_forever_sends_until_cancelled(outbox_db: Database) -> None:
    delivery_id = await outbox.enqueue(outbox_db, practice_id="sunny", channel="webhook",
                                       destination="https://x.test/h", document_kind="note",
                                       document_id="n9")
    sender = ScriptedSender()
    task = asyncio.create_task(outbox.run_forever(outbox_db, [sender], interval=0.02))
    try:
        for _ in range(200):
            row = await outbox.get_delivery(outbox_db, delivery_id)
            if row and row["status"] == SUCCEEDED:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert row is not None and row["status"] == SUCCEEDED and len(sender.sent) == 1


def test_write_payload_is_private_and_atomic(tmp_path: Path) -> None:
    pdf, doc = outbox.write_payload(tmp_path / "out", "note-1", b"%PDF-1.4", {"a": 1})
    assert pdf is not None and doc is not None
    assert pdf.read_bytes() == b"%PDF-1.4" and doc.read_text().startswith("{")
    assert pdf.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["note-1.json", "note-1.pdf"]
    with pytest.raises(ValueError):
        outbox.write_payload(tmp_path, "../evil", b"x")


async def test_controller_senders_make_unconfigured_channels_fail_visibly(
        outbox_db: Database, tmp_path: Path) -> None:
    from ivr.ami import AmiClient
    from ivr.delivery.wiring import build_senders

    class FakePbx:
        spool_dir = tmp_path / "spool"

        def inner_path(self, host: Path) -> str:
            return "/var/lib/ivr-pbx/x/" + str(host.relative_to(tmp_path))

    ami = AmiClient("127.0.0.1", 1, "ivr", "x")
    senders = build_senders(ami, FakePbx(), env={})
    assert set(senders) == {"fax", "email", "webhook"}
    delivery_id = await _enqueue(outbox_db, channel="email", dest="desk@sunny.example")
    [outcome] = await Worker(outbox_db, senders, worker_id="w").run_due(T0)
    assert outcome.result == "failed"
    assert outcome.error == "e-mail is not configured (IVR_SMTP_HOST)"
    assert (await outbox.get_delivery(outbox_db, delivery_id))["status"] == FAILED  # type: ignore[index]


async def test_run_forever_does_not_let_a_slow_send_hold_up_the_others(
        outbox_db: Database) -> None:
    class SlowFax(ScriptedSender):
        async def send(self, job: Job) -> SendResult:
            self.sent.append(job)
            await asyncio.sleep(30)
            return SendResult()

    fax = SlowFax(channel="fax", timeout=60)
    mail = ScriptedSender(channel="email")
    await outbox.enqueue(outbox_db, practice_id="sunny", channel="fax", destination="+16175550123",
                         document_kind="note", document_id="n1")
    mail_id = await outbox.enqueue(outbox_db, practice_id="sunny", channel="email",
                                   destination="desk@sunny.example", document_kind="note",
                                   document_id="n1")
    task = asyncio.create_task(outbox.run_forever(outbox_db, [fax, mail], interval=0.02))
    try:
        for _ in range(200):
            row = await outbox.get_delivery(outbox_db, mail_id)
            if row and row["status"] == SUCCEEDED:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert row is not None and row["status"] == SUCCEEDED
    assert len(fax.sent) == 1  # still in flight when the e-mail went out
