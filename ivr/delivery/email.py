"""E-mail sender: the document's PDF attached to a short message, over SMTP with STARTTLS.

The body carries the minimum (what kind of document, where it came from); the patient data
is in the attachment only. The Message-ID is derived from the delivery id, so a duplicate
from an at-least-once retry can be recognised by the practice's mail system.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import aiosmtplib

from ivr.delivery.models import EMAIL
from ivr.delivery.outbox import DeliveryError, Job, SendResult

TLS_MODES = ("starttls", "tls", "none")
DEFAULT_BODY = (
    "A new {kind} from the after-hours answering service is attached ({ident}).\n\n"
    "The attachment may contain patient information: handle it under your practice's "
    "privacy policy. Reply to this address only for questions about delivery.\n")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = "answering-service@localhost"
    # starttls: required (the connection fails rather than go on in clear text);
    # tls: implicit TLS (port 465); none: only for a relay on loopback.
    tls: str = "starttls"
    username: str | None = None
    password: str | None = None
    cafile: str | None = None  # a private CA for the relay's certificate
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ValueError(f"IVR_SMTP_TLS={self.tls!r}: expected one of {', '.join(TLS_MODES)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpConfig | None:
        """IVR_SMTP_HOST/_PORT/_FROM/_TLS/_USER/_PASSWORD/_CAFILE; None if no host is set."""
        host = env.get("IVR_SMTP_HOST", "").strip()
        if not host:
            return None
        raw_port = env.get("IVR_SMTP_PORT", "") or "587"
        try:
            port = int(raw_port)
        except ValueError:
            raise ValueError(f"IVR_SMTP_PORT={raw_port!r}: expected a port number") from None
        return cls(host=host, port=port,
                   sender=env.get("IVR_SMTP_FROM") or cls.sender,
                   tls=env.get("IVR_SMTP_TLS") or "starttls",
                   username=env.get("IVR_SMTP_USER") or None,
                   password=env.get("IVR_SMTP_PASSWORD") or None,
                   cafile=env.get("IVR_SMTP_CAFILE") or None)

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)


def _header_text(value: object, limit: int = 200) -> str:
    return re.sub(r"[\r\n\t]+", " ", str(value))[:limit]


def _filename(job: Job) -> str:
    name = str(job.meta.get("filename") or f"{job.document_kind}-{job.document_id}.pdf")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]
    return name if name.lower().endswith(".pdf") else name + ".pdf"


def build_message(job: Job, sender: str) -> EmailMessage:
    """The message for one delivery: minimal body, the PDF attached."""
    if not job.pdf_path:
        raise DeliveryError("e-mail delivery without a PDF", permanent=True)
    try:
        pdf = Path(job.pdf_path).read_bytes()
    except OSError as exc:
        raise DeliveryError(f"PDF unreadable ({type(exc).__name__})") from exc
    kind = job.document_kind.replace("_", " ")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = job.destination
    message["Subject"] = _header_text(job.meta.get("subject")
                                      or f"After-hours {kind} ({job.document_id})")
    message["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<delivery-{job.id}@{domain}>"
    message["X-IVR-Delivery"] = job.id
    body = str(job.meta.get("body") or DEFAULT_BODY.format(
        kind=kind, ident=f"{job.document_kind} {job.document_id}"))
    message.set_content(body)
    message.add_attachment(pdf, maintype="application", subtype="pdf",
                           filename=_filename(job))
    return message


class EmailSender:
    channel = EMAIL

    def __init__(self, config: SmtpConfig, tls_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.timeout = config.timeout + 10
        self._tls_context = tls_context

    async def send(self, job: Job) -> SendResult:
        c = self.config
        message = build_message(job, c.sender)
        context = self._tls_context or (c.tls_context() if c.tls != "none" else None)
        try:
            _errors, reply = await aiosmtplib.send(
                message, hostname=c.host, port=c.port, username=c.username,
                password=c.password, use_tls=c.tls == "tls", start_tls=c.tls == "starttls",
                tls_context=context, timeout=c.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise DeliveryError(f"recipient refused (SMTP {codes})",
                                permanent=all(500 <= code < 600 for code in codes)) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login refused ({exc.code})", permanent=True) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.code} {_header_text(exc.message, 120)}") from exc
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"SMTP failed ({type(exc).__name__}: "
                                f"{_header_text(exc, 160)})") from exc
        return SendResult(remote_id=_header_text(reply, 150) or None)
