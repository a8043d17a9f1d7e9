"""Outbox tables: one row per document to deliver per channel and destination, one per attempt.

No patient data here: destinations are the practice's own fax number, address or URL;
payloads are referenced by path (the files belong to the documents' owner); error texts
are written by the senders and name only protocol facts (status codes, fax error names).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ivr.db.models import Base, UtcDateTime

# Channels
FAX = "fax"
EMAIL = "email"
WEBHOOK = "webhook"
CHANNELS = (FAX, EMAIL, WEBHOOK)

# Delivery status: pending -> sending -> succeeded | pending (retry) | failed.
PENDING = "pending"
SENDING = "sending"  # claimed by a worker until lease_expires_at
SUCCEEDED = "succeeded"
FAILED = "failed"  # out of attempts, or a permanent error: listed, never dropped
STATUSES = (PENDING, SENDING, SUCCEEDED, FAILED)

# Attempt results (NULL while the attempt is in flight).
ATTEMPT_OK = "ok"
ATTEMPT_RETRY = "retry"  # failed, another attempt is scheduled
ATTEMPT_FAILED = "failed"  # failed, and it was the last one (or a permanent error)
ATTEMPT_LOST = "lost"  # the worker's lease ran out (crashed or hung); outcome unknown


class Delivery(Base):
    """One document to one destination over one channel (the outbox row)."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # sha256 of channel, destination, document kind and id: the same document is never
    # enqueued twice for the same channel and destination.
    idempotency_key: Mapped[str] = mapped_column(String(64))
    practice_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(500))
    document_kind: Mapped[str] = mapped_column(String(32))
    document_id: Mapped[str] = mapped_column(String(64))
    pdf_path: Mapped[str | None] = mapped_column(Text)
    json_path: Mapped[str | None] = mapped_column(Text)
    # JSON object of sender options (subject, body, filename, secret_env); no secrets.
    meta: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # attempts started
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Bumped by every state change; claims and results are compare-and-set on it.
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    remote_id: Mapped[str | None] = mapped_column(String(200))

    attempt_log: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery", order_by="DeliveryAttempt.attempt_no",
        cascade="all, delete-orphan")

    __table_args__ = (
        Index("ix_deliveries_idempotency_key", "idempotency_key", unique=True),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_deliveries_document", "document_kind", "document_id"),
    )


class DeliveryAttempt(Base):
    """One try at sending a delivery, kept forever (the delivery's audit trail)."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    result: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    remote_id: Mapped[str | None] = mapped_column(String(200))

    delivery: Mapped[Delivery] = relationship(back_populates="attempt_log")

    __table_args__ = (
        Index("ix_delivery_attempts_no", "delivery_id", "attempt_no", unique=True),
    )
