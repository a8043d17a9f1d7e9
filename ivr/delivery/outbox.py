"""The delivery outbox: enqueue documents, claim due deliveries, send, record, retry.

Guarantees and their limits:
- The same document is enqueued at most once per channel and destination (a unique
  idempotency key; a second enqueue returns the first delivery's id).
- A delivery is claimed by exactly one worker at a time: the claim is an UPDATE that
  compares the row's `version` (and status) and bumps it, so of two controllers against
  one database only one gets rowcount 1 (on PostgreSQL after taking the row's lock with
  SKIP LOCKED, ivr.db.claims: a worker passes over a delivery another one is claiming).
  A claim carries a lease (the sender's timeout plus a margin); a worker that crashed or
  hung loses the delivery when the lease ends, its attempt is marked `lost`, and another
  worker (or itself after a restart) tries again.
- A delivery marked `succeeded` is never sent again: only pending deliveries and expired
  leases are claimed, and a success is written even if the lease was lost meanwhile.
- At-least-once, not exactly-once: between the far end accepting a document and our
  commit of `succeeded` there is a window (one short UPDATE, retried a few times) in which
  a crash, or a database outage, leads to a second send after the lease expires. Senders
  give receivers what they need to drop the duplicate (webhook `X-IVR-Delivery` and
  `Idempotency-Key` headers, e-mail Message-ID derived from the delivery id); a fax has no
  such field, so a practice may, rarely, receive a fax twice, never none.
- A delivery that runs out of attempts, or hits a permanent error, ends `failed`: listed
  by `ivr deliveries list --failed`, never dropped silently.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import re
import secrets
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from ivr import clock
from ivr.db.claims import lock_or_skip
from ivr.db.engine import Database
from ivr.delivery.models import (
    ATTEMPT_FAILED,
    ATTEMPT_LOST,
    ATTEMPT_OK,
    ATTEMPT_RETRY,
    CHANNELS,
    EMAIL,
    FAILED,
    FAX,
    PENDING,
    SENDING,
    SUCCEEDED,
    WEBHOOK,
    Delivery,
    DeliveryAttempt,
)
from ivr.secure import files

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500
_FAX_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_EMAIL = re.compile(r"[^@\s<>,;\"']+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_DOC_FIELD = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class DeliveryError(Exception):
    """A send failed; the message goes into the attempt log, so it names no patient data.

    `permanent` errors (a bad destination, a missing secret) are not retried.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Job:
    """What a sender gets: a snapshot of the claimed delivery."""

    id: str
    practice_id: str
    channel: str
    destination: str
    document_kind: str
    document_id: str
    pdf_path: str | None
    json_path: str | None
    meta: Mapping[str, Any]
    attempt_no: int


@dataclass(frozen=True)
class SendResult:
    remote_id: str | None = None  # the far end's id for what it accepted, if it gives one


class Sender(Protocol):
    channel: str
    timeout: float  # seconds one send may take at most; the claim's lease covers it

    async def send(self, job: Job) -> SendResult: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter: attempt n waits between d/2 and d, d = base*2^(n-1)."""

    max_attempts: int = 8
    base_delay: float = 30.0
    max_delay: float = 3600.0
    lease_margin: float = 60.0  # added to the sender's timeout for the claim's lease

    def delay(self, attempt_no: int, rng: random.Random) -> timedelta:
        full = min(self.max_delay, self.base_delay * 2 ** max(0, attempt_no - 1))
        return timedelta(seconds=full / 2 + rng.uniform(0, full / 2))


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class Outcome:
    """What one run_due did with one delivery (for logs and tests)."""

    delivery_id: str
    attempt_no: int
    result: str  # ATTEMPT_OK, ATTEMPT_RETRY, ATTEMPT_FAILED, or ATTEMPT_LOST
    error: str | None = None
    next_attempt_at: datetime | None = None


utcnow = clock.now  # the outbox's clock


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


# --- enqueue -----------------------------------------------------------------------------

def normalize_destination(channel: str, destination: str) -> str:
    """The canonical form of a destination; ValueError naming the channel if it is invalid."""
    if channel not in CHANNELS:
        raise ValueError(f"channel {channel!r}: expected one of {', '.join(CHANNELS)}")
    value = destination.strip()
    if channel == FAX:
        value = re.sub(r"[\s().-]", "", value)
        if not _FAX_NUMBER.fullmatch(value):
            raise ValueError("fax destination: expected a phone number (digits, optional +)")
    elif channel == EMAIL:
        if not _EMAIL.fullmatch(value):
            raise ValueError("email destination: expected one address like a@b.org")
        local, _, domain = value.rpartition("@")
        value = f"{local}@{domain.lower()}"
    elif channel == WEBHOOK:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(
                c in value for c in "\r\n\t "):
            raise ValueError("webhook destination: expected an http(s) URL")
    return value


def idempotency_key(channel: str, destination: str, document_kind: str,
                    document_id: str) -> str:
    text = "\n".join((channel, normalize_destination(channel, destination), document_kind,
                      document_id))
    return hashlib.sha256(text.encode()).hexdigest()


async def enqueue(db: Database | AsyncSession, *, practice_id: str, channel: str,
                  destination: str, document_kind: str, document_id: str,
                  pdf_path: str | Path | None = None, json_path: str | Path | None = None,
                  meta: Mapping[str, Any] | None = None, now: datetime | None = None,
                  max_attempts: int | None = None) -> str:
    """Put a document in the outbox; return the delivery id (the existing one if it is there).

    Given an AsyncSession it joins the caller's transaction (the document and its delivery
    commit together); given a Database it commits on its own.
    """
    destination = normalize_destination(channel, destination)
    for name, value in (("document_kind", document_kind), ("document_id", document_id),
                        ("practice_id", practice_id)):
        if not _DOC_FIELD.fullmatch(value):
            raise ValueError(f"{name} {value!r}: expected 1-64 of [A-Za-z0-9._:-]")
    meta_text = json.dumps(dict(meta or {}), sort_keys=True)
    now = now or utcnow()
    key = idempotency_key(channel, destination, document_kind, document_id)
    values = dict(
        id=secrets.token_hex(16), idempotency_key=key, practice_id=practice_id,
        channel=channel, destination=destination, document_kind=document_kind,
        document_id=document_id, pdf_path=str(pdf_path) if pdf_path else None,
        json_path=str(json_path) if json_path else None, meta=meta_text, status=PENDING,
        attempts=0, max_attempts=max_attempts or DEFAULT_POLICY.max_attempts,
        next_attempt_at=now, version=0, created_at=now, updated_at=now)
    if isinstance(db, AsyncSession):
        return await _insert_once(db, key, values)
    async with db.session() as session:
        return await _insert_once(session, key, values)


async def _insert_once(session: AsyncSession, key: str, values: dict[str, Any]) -> str:
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        await session.execute(insert(Delivery).values(**values).on_conflict_do_nothing(
            index_elements=["idempotency_key"]))
    else:  # pragma: no cover - other databases: check, then insert
        existing = await session.scalar(select(Delivery.id).where(
            Delivery.idempotency_key == key))
        if existing is None:
            session.add(Delivery(**values))
            await session.flush()
    found = await session.scalar(select(Delivery.id).where(Delivery.idempotency_key == key))
    assert found is not None
    if found == values["id"]:
        log.info("delivery %s enqueued (%s, %s %s)", found, values["channel"],
                 values["document_kind"], values["document_id"])
    return found


def write_payload(folder: Path, name: str, pdf: bytes | None = None,
                  document: Mapping[str, Any] | None = None) -> tuple[Path | None, Path | None]:
    """Write a PDF and/or JSON document atomically (mode 0600) for enqueue's payload refs."""
    if not _DOC_FIELD.fullmatch(name):
        raise ValueError(f"payload name {name!r}: expected 1-64 of [A-Za-z0-9._:-]")
    files.private_dir(folder)
    out: list[Path | None] = []
    for suffix, data in ((".pdf", pdf), (".json", None if document is None else
                                         json.dumps(document, indent=1).encode())):
        if data is None:
            out.append(None)
            continue
        target = folder / f"{name}{suffix}"
        tmp = folder / f".{name}{suffix}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        out.append(target)
    return out[0], out[1]


# --- the worker --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Candidate:
    """A due delivery as read before the claim (the claim re-checks `version`)."""

    id: str
    version: int
    status: str
    attempts: int
    max_attempts: int
    channel: str


@dataclass
class _Claim:
    job: Job
    version: int  # the row's version after our claim
    sender: Sender
    max_attempts: int


@dataclass
class Worker:
    """Claims and sends due deliveries; one per controller process."""

    db: Database
    senders: Mapping[str, Sender]
    worker_id: str = field(default_factory=default_worker_id)
    policy: RetryPolicy = DEFAULT_POLICY
    rng: random.Random = field(default_factory=random.Random)
    limit: int = 10

    async def run_due(self, now: datetime | None = None) -> list[Outcome]:
        """Claim up to `limit` due deliveries, send them concurrently, record each attempt."""
        now = now or utcnow()
        claims, outcomes = await self._claim_due(now)
        if claims:
            outcomes += await asyncio.gather(*(self._attempt(c, now) for c in claims))
        return outcomes

    async def _claim_due(self, now: datetime,
                         limit: int | None = None) -> tuple[list[_Claim], list[Outcome]]:
        channels = list(self.senders)
        due = or_(and_(Delivery.status == PENDING, Delivery.next_attempt_at <= now),
                  and_(Delivery.status == SENDING, Delivery.lease_expires_at <= now))
        # Read outside a write transaction; each claim below is its own short write.
        async with self.db.sessions() as session:
            rows = (await session.execute(
                select(Delivery.id, Delivery.version, Delivery.status, Delivery.attempts,
                       Delivery.max_attempts, Delivery.channel)
                .where(due, Delivery.channel.in_(channels))
                .order_by(Delivery.next_attempt_at).limit(limit or self.limit))).all()
        claims: list[_Claim] = []
        outcomes: list[Outcome] = []
        for row in rows:
            got = await self._claim(_Candidate(*row), now)
            if isinstance(got, _Claim):
                claims.append(got)
            elif got is not None:
                outcomes.append(got)
        return claims, outcomes

    async def _claim(self, c: _Candidate, now: datetime) -> _Claim | Outcome | None:
        # The compare-and-set comes first in the transaction: it takes the write lock (and
        # waits for it), so no read snapshot can go stale between our read and our write.
        # Whoever changed the row since we read it bumped `version`: then we lost, no harm.
        sender = self.senders[c.channel]
        expired = c.status == SENDING
        async with self.db.session() as session:
            if not await lock_or_skip(session, Delivery.id, Delivery.id == c.id,
                                      Delivery.version == c.version):
                return None  # another worker is claiming it, or has claimed it
            if expired and c.attempts >= c.max_attempts:
                # The last attempt's worker died: its outcome is unknown, and no tries are
                # left. Failed, and visible; a human decides whether to send again.
                error = "the last attempt's worker stopped answering (lease expired)"
                won = await self._cas(session, c.id, c.version, dict(
                    status=FAILED, claimed_by=None, lease_expires_at=None, finished_at=now,
                    last_error=error, updated_at=now))
                if not won:
                    return None
                await self._mark_lost(session, c.id, now)
                log.warning("delivery %s failed: lease of its last attempt expired", c.id)
                return Outcome(c.id, c.attempts, ATTEMPT_FAILED, error)
            attempt_no = c.attempts + 1
            lease = now + timedelta(seconds=sender.timeout + self.policy.lease_margin)
            won = await self._cas(session, c.id, c.version, dict(
                status=SENDING, claimed_by=self.worker_id, lease_expires_at=lease,
                attempts=attempt_no, updated_at=now))
            if not won:
                return None
            if expired:
                await self._mark_lost(session, c.id, now)
            session.add(DeliveryAttempt(delivery_id=c.id, attempt_no=attempt_no,
                                        worker=self.worker_id, started_at=now))
            row = await session.get(Delivery, c.id)
            assert row is not None
            job = Job(id=row.id, practice_id=row.practice_id, channel=row.channel,
                      destination=row.destination, document_kind=row.document_kind,
                      document_id=row.document_id, pdf_path=row.pdf_path,
                      json_path=row.json_path, meta=json.loads(row.meta or "{}"),
                      attempt_no=attempt_no)
            return _Claim(job, c.version + 1, sender, c.max_attempts)

    @staticmethod
    async def _cas(session: AsyncSession, delivery_id: str, version: int,
                   values: dict[str, Any]) -> bool:
        result = await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.version == version,
                   Delivery.status.in_((PENDING, SENDING)))
            .values(version=version + 1, **values)
            .execution_options(synchronize_session=False))
        return result.rowcount == 1  # type: ignore[attr-defined]

    @staticmethod
    async def _mark_lost(session: AsyncSession, delivery_id: str, now: datetime) -> None:
        await session.execute(
            update(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id,
                   DeliveryAttempt.result.is_(None))
            .values(result=ATTEMPT_LOST, finished_at=now,
                    error="worker stopped answering before recording a result "
                          "(lease expired); outcome unknown")
            .execution_options(synchronize_session=False))

    async def _attempt(self, claim: _Claim, now: datetime) -> Outcome:
        job, sender = claim.job, claim.sender
        started = time.monotonic()
        error: str | None = None
        permanent = False
        remote_id: str | None = None
        try:
            result = await asyncio.wait_for(sender.send(job), sender.timeout)
            remote_id = result.remote_id
        except DeliveryError as exc:
            error, permanent = str(exc), exc.permanent
        except TimeoutError:
            error = f"no result within {sender.timeout:.0f}s"
        except Exception as exc:  # a sender bug must not stop the outbox
            # The type only: an unexpected exception's text could carry anything.
            error = f"unexpected {type(exc).__name__} in the {job.channel} sender"
            log.error("delivery %s: %s", job.id, error, exc_info=exc)
        finished = now + timedelta(seconds=time.monotonic() - started)
        if error is not None:
            error = error.replace("\r", " ").replace("\n", " ")[:MAX_ERROR_CHARS]
        return await self._record(claim, finished, error, permanent, remote_id)

    async def _record(self, claim: _Claim, finished: datetime, error: str | None,
                      permanent: bool, remote_id: str | None) -> Outcome:
        job = claim.job
        if error is None:
            result, next_at = ATTEMPT_OK, None
            values: dict[str, Any] = dict(
                status=SUCCEEDED, finished_at=finished, remote_id=remote_id, last_error=None,
                claimed_by=None, lease_expires_at=None, updated_at=finished)
        elif permanent or job.attempt_no >= claim.max_attempts:
            result, next_at = ATTEMPT_FAILED, None
            values = dict(status=FAILED, finished_at=finished, last_error=error,
                          claimed_by=None, lease_expires_at=None, updated_at=finished)
        else:
            result = ATTEMPT_RETRY
            next_at = finished + self.policy.delay(job.attempt_no, self.rng)
            values = dict(status=PENDING, next_attempt_at=next_at, last_error=error,
                          claimed_by=None, lease_expires_at=None, updated_at=finished)
        # The crash window of at-least-once is this write after a successful send: keep it
        # one short transaction, and retry it through a brief database hiccup.
        for attempt in range(4):
            try:
                await self._write_result(claim, values, result, finished, error, remote_id)
                break
            except SQLAlchemyError as exc:
                if attempt == 3:
                    log.error("delivery %s: could not record attempt %d (%s); the lease "
                              "will expire and it will be tried again", job.id,
                              job.attempt_no, type(exc).__name__)
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        log.info("delivery %s attempt %d (%s): %s%s", job.id, job.attempt_no, job.channel,
                 result, f" ({error})" if error else "")
        return Outcome(job.id, job.attempt_no, result, error, next_at)

    async def _write_result(self, claim: _Claim, values: dict[str, Any], result: str,
                            finished: datetime, error: str | None,
                            remote_id: str | None) -> None:
        job = claim.job
        async with self.db.session() as session:
            stmt = update(Delivery).where(Delivery.id == job.id)
            if result == ATTEMPT_OK:
                # A success is a fact even if our lease ran out meanwhile: whoever holds
                # the delivery now will find it succeeded and not record over it.
                stmt = stmt.where(Delivery.status != SUCCEEDED).values(
                    version=Delivery.version + 1, **values)
            else:
                stmt = stmt.where(Delivery.version == claim.version,
                                  Delivery.claimed_by == self.worker_id).values(
                    version=claim.version + 1, **values)
            changed = (await session.execute(
                stmt.execution_options(synchronize_session=False))).rowcount  # type: ignore[attr-defined]
            if not changed and result != ATTEMPT_OK:
                log.warning("delivery %s attempt %d: lease lost before the result was "
                            "recorded; only the attempt log keeps it", job.id, job.attempt_no)
            await session.execute(
                update(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == job.id,
                       DeliveryAttempt.attempt_no == job.attempt_no)
                .values(result=result, finished_at=finished, error=error, remote_id=remote_id)
                .execution_options(synchronize_session=False))


async def run_due(db: Database, senders: Mapping[str, Sender] | Iterable[Sender],
                  now: datetime | None = None, *, worker: str | None = None,
                  policy: RetryPolicy = DEFAULT_POLICY, rng: random.Random | None = None,
                  limit: int = 10) -> list[Outcome]:
    """One round: claim the due deliveries (up to `limit`), send them, record the attempts."""
    return await Worker(db, _sender_map(senders), worker_id=worker or default_worker_id(),
                        policy=policy, rng=rng or random.Random(), limit=limit).run_due(now)


def _sender_map(senders: Mapping[str, Sender] | Iterable[Sender]) -> dict[str, Sender]:
    if isinstance(senders, Mapping):
        return dict(senders)
    out: dict[str, Sender] = {}
    for sender in senders:
        if sender.channel in out:
            raise ValueError(f"two senders for channel {sender.channel!r}")
        out[sender.channel] = sender
    return out


async def run_forever(db: Database, senders: Mapping[str, Sender] | Iterable[Sender], *,
                      interval: float = 5.0, policy: RetryPolicy = DEFAULT_POLICY,
                      worker: str | None = None, limit: int = 10) -> None:
    """The controller's outbox task: claims due deliveries every `interval` seconds and sends
    each in its own task (at most `limit` at once), so a 10-minute fax does not hold up an
    e-mail. Cancelled (controller stop), sends in flight are abandoned: their leases run
    out and they are tried again, at-least-once."""
    runner = Worker(db, _sender_map(senders), worker_id=worker or default_worker_id(),
                    policy=policy, limit=limit)
    inflight: set[asyncio.Task[Outcome]] = set()

    def done(task: asyncio.Task[Outcome]) -> None:
        inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task %s failed: %s", task.get_name(),
                      type(task.exception()).__name__)

    log.info("delivery worker %s started for %s", runner.worker_id, ", ".join(runner.senders))
    try:
        while True:
            room = runner.limit - len(inflight)
            if room > 0:
                now = utcnow()
                try:
                    claims, _ = await runner._claim_due(now, room)
                except Exception as exc:  # the database may be down; try again next round
                    log.warning("delivery round failed: %s", type(exc).__name__)
                    claims = []
                for claim in claims:
                    task = asyncio.create_task(runner._attempt(claim, now),
                                               name=f"delivery-{claim.job.id}")
                    inflight.add(task)
                    task.add_done_callback(done)
            await asyncio.sleep(interval)
    finally:
        for task in list(inflight):
            task.cancel()
        await asyncio.gather(*inflight, return_exceptions=True)


# --- reading and requeueing --------------------------------------------------------------

def _row(d: Delivery, attempts: list[DeliveryAttempt] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": d.id, "practice_id": d.practice_id, "channel": d.channel,
        "destination": d.destination, "document_kind": d.document_kind,
        "document_id": d.document_id, "status": d.status, "attempts": d.attempts,
        "max_attempts": d.max_attempts, "next_attempt_at": clock.iso(d.next_attempt_at),
        "created_at": clock.iso(d.created_at), "finished_at": clock.iso(d.finished_at),
        "claimed_by": d.claimed_by, "lease_expires_at": clock.iso(d.lease_expires_at),
        "last_error": d.last_error, "remote_id": d.remote_id,
    }
    if attempts is not None:
        out["attempt_log"] = [{
            "attempt_no": a.attempt_no, "worker": a.worker, "started_at": clock.iso(a.started_at),
            "finished_at": clock.iso(a.finished_at), "result": a.result, "error": a.error,
            "remote_id": a.remote_id} for a in attempts]
    return out


async def list_deliveries(db: Database, *, failed_only: bool = False,
                          status: str | None = None, practice: str | None = None,
                          limit: int = 200, with_attempts: bool = True) -> list[dict[str, Any]]:
    """Deliveries, newest first, each with its attempt log."""
    stmt = select(Delivery).order_by(Delivery.created_at.desc(), Delivery.id).limit(limit)
    if failed_only:
        stmt = stmt.where(Delivery.status == FAILED)
    if status:
        stmt = stmt.where(Delivery.status == status)
    if practice:
        stmt = stmt.where(Delivery.practice_id == practice)
    async with db.sessions() as session:
        rows = list((await session.scalars(stmt)).all())
        attempts: dict[str, list[DeliveryAttempt]] = {r.id: [] for r in rows}
        if with_attempts and rows:
            for a in (await session.scalars(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.delivery_id.in_(list(attempts)))
                    .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.attempt_no))).all():
                attempts[a.delivery_id].append(a)
    return [_row(r, attempts[r.id] if with_attempts else None) for r in rows]


async def get_delivery(db: Database, delivery_id: str) -> dict[str, Any] | None:
    async with db.sessions() as session:
        row = await session.get(Delivery, delivery_id)
        if row is None:
            return None
        attempts = list((await session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(DeliveryAttempt.attempt_no))).all())
    return _row(row, attempts)


async def requeue(db: Database, delivery_id: str, now: datetime | None = None,
                  extra_attempts: int | None = None) -> bool:
    """Give a failed delivery more attempts, due now (an admin decision; logged)."""
    now = now or utcnow()
    extra = extra_attempts or DEFAULT_POLICY.max_attempts
    async with db.session() as session:
        result = await session.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.status == FAILED)
            .values(status=PENDING, next_attempt_at=now, finished_at=None,
                    max_attempts=Delivery.attempts + extra, version=Delivery.version + 1,
                    updated_at=now)
            .execution_options(synchronize_session=False))
        changed = result.rowcount == 1  # type: ignore[attr-defined]
    if changed:
        log.info("delivery %s requeued with %d more attempts", delivery_id, extra)
    return changed
