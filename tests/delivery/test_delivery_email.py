"""E-mail delivery against a real SMTP server (aiosmtpd) on loopback, with STARTTLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import free_port
from support import receivers

from ivr.db.engine import Database
from ivr.delivery import outbox
from ivr.delivery.email import EmailSender, SmtpConfig, build_message
from ivr.delivery.models import SUCCEEDED
from ivr.delivery.outbox import Job, RetryPolicy, Worker

T0 = dt.datetime(2026, 11, 26, 23, 0, tzinfo=dt.UTC)
PDF = b"%PDF-1.4\n% two pages, trust me\n%%EOF\n"


@pytest.fixture
def smtp_server(tmp_path: Path):
    port = free_port()
    with receivers.smtp_server(tmp_path, port) as (mailbox, cert):
        yield mailbox, port, cert


async def _enqueue(db: Database, tmp_path: Path, **meta: str) -> str:
    pdf, _ = outbox.write_payload(tmp_path / "payload", "note-7", PDF)
    return await outbox.enqueue(db, practice_id="sunny", channel="email",
                                destination="frontdesk@sunny.example", document_kind="note",
                                document_id="note-7", pdf_path=pdf, meta=meta, now=T0)


async def test_mail_goes_out_over_starttls_with_the_pdf_attached(
        outbox_db: Database, smtp_server, tmp_path: Path) -> None:
    mailbox, port, cert = smtp_server
    delivery_id = await _enqueue(outbox_db, tmp_path)
    config = SmtpConfig(host="127.0.0.1", port=port, sender="service@answering.example",
                        tls="starttls", cafile=str(cert), timeout=10)
    worker = Worker(outbox_db, {"email": EmailSender(config)}, worker_id="w")
    [outcome] = await worker.run_due(T0)
    assert outcome.result == "ok", outcome.error

    [(envelope, over_tls)] = mailbox.messages
    assert over_tls, "the message must travel after STARTTLS"
    assert envelope.mail_from == "service@answering.example"
    assert envelope.rcpt_tos == ["frontdesk@sunny.example"]
    message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Message-ID"] == f"<delivery-{delivery_id}@answering.example>"
    assert message["Subject"] == "After-hours note (note-7)"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "note note-7" in text and "patient information" in text
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "note-note-7.pdf"
    assert attachment.get_content() == PDF

    row = await outbox.get_delivery(outbox_db, delivery_id)
    assert row is not None and row["status"] == SUCCEEDED
    assert "TEST42" in (row["remote_id"] or "")


async def test_an_untrusted_certificate_is_refused_and_retried(
        outbox_db: Database, smtp_server, tmp_path: Path) -> None:
    mailbox, port, _cert = smtp_server
    delivery_id = await _enqueue(outbox_db, tmp_path)
    config = SmtpConfig(host="127.0.0.1", port=port, tls="starttls", timeout=10)
    worker = Worker(outbox_db, {"email": EmailSender(config)}, worker_id="w",
                    policy=RetryPolicy(max_attempts=2), rng=random.Random(1))
    [outcome] = await worker.run_due(T0)
    assert outcome.result == "retry" and "SMTP failed" in (outcome.error or "")
    assert mailbox.messages == []
    assert (await outbox.get_delivery(outbox_db, delivery_id))["status"] == "pending"  # type: ignore[index]


async def test_a_server_that_is_down_is_retried(outbox_db: Database, tmp_path: Path) -> None:
    await _enqueue(outbox_db, tmp_path)
    config = SmtpConfig(host="127.0.0.1", port=free_port(), tls="starttls", timeout=3)
    [outcome] = await Worker(outbox_db, {"email": EmailSender(config)}, worker_id="w"
                             ).run_due(T0)
    assert outcome.result == "retry"
    await asyncio.sleep(0)


def test_message_headers_cannot_be_injected(tmp_path: Path) -> None:
    pdf = tmp_path / "x.pdf"
    pdf.write_bytes(PDF)
    job = Job(id="abc", practice_id="p", channel="email", destination="a@b.org",
              document_kind="morning_report", document_id="2026-11-27", pdf_path=str(pdf),
              json_path=None, meta={"subject": "Report\r\nBcc: evil@x.org",
                                    "filename": "../../etc/passwd"}, attempt_no=1)
    message = build_message(job, "svc@example.org")
    assert message["Bcc"] is None and "\n" not in message["Subject"]
    [attachment] = list(message.iter_attachments())
    assert "/" not in (attachment.get_filename() or "")


def test_smtp_config_from_env() -> None:
    assert SmtpConfig.from_env({}) is None
    config = SmtpConfig.from_env({"IVR_SMTP_HOST": "127.0.0.1", "IVR_SMTP_PORT": "2525",
                                  "IVR_SMTP_FROM": "a@b.org"})
    assert config is not None and config.port == 2525 and config.tls == "starttls"
    with pytest.raises(ValueError, match="IVR_SMTP_TLS"):
        SmtpConfig.from_env({"IVR_SMTP_HOST": "h", "IVR_SMTP_TLS": "maybe"})
    with pytest.raises(ValueError, match="IVR_SMTP_PORT"):
        SmtpConfig.from_env({"IVR_SMTP_HOST": "h", "IVR_SMTP_PORT": "x"})
