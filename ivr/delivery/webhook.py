"""Webhook sender: the document as a signed JSON POST (HMAC-SHA256 over timestamp.body).

The signature header is `X-IVR-Signature: t=<unix seconds>,v1=<hex>` where
v1 = HMAC-SHA256(secret, f"{t}.{body}"). Receivers check it with `verify_signature` (or the
same three lines in their language), reject old timestamps, and drop duplicates by the
`X-IVR-Delivery` header (the outbox is at-least-once). The secret is read at send time from
the environment variable the practice's rules name (`webhook_secret_env`); it is never
stored in the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ivr.delivery.models import WEBHOOK
from ivr.delivery.outbox import DeliveryError, Job, SendResult

SIGNATURE_HEADER = "X-IVR-Signature"
DELIVERY_HEADER = "X-IVR-Delivery"
DEFAULT_TOLERANCE = 300  # seconds a receiver should accept between t= and its clock


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for this body at this time."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, now: float | None = None,
                     tolerance: int = DEFAULT_TOLERANCE) -> bool:
    """True if `header` signs `body` with `secret` and its timestamp is recent."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookSender:
    """POSTs {delivery, document, data, pdf_base64} as JSON; any non-2xx is retried."""

    channel = WEBHOOK

    def __init__(self, *, timeout: float = 15.0, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time, allow_http: bool = False) -> None:
        self.timeout = timeout
        self._env = env if env is not None else os.environ
        self._clock = clock
        # Plain http only to loopback unless allowed: the body carries patient data.
        self.allow_http = allow_http

    def body(self, job: Job) -> bytes:
        document: dict[str, Any] = {"kind": job.document_kind, "id": job.document_id}
        payload: dict[str, Any] = {
            "delivery_id": job.id, "attempt": job.attempt_no, "practice_id": job.practice_id,
            "document": document, "data": None, "pdf_base64": None,
        }
        try:
            if job.json_path:
                payload["data"] = json.loads(Path(job.json_path).read_text())
            if job.pdf_path:
                payload["pdf_base64"] = base64.b64encode(
                    Path(job.pdf_path).read_bytes()).decode()
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"payload file unreadable ({type(exc).__name__})") from exc
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()

    async def send(self, job: Job) -> SendResult:
        parts = urlsplit(job.destination)
        if parts.scheme != "https" and not (self.allow_http or _is_loopback(parts.hostname or "")):
            raise DeliveryError("webhook URL must be https (plain http only to loopback)",
                                permanent=True)
        secret_env = str(job.meta.get("secret_env") or "")
        secret = self._env.get(secret_env) if secret_env else None
        if not secret:
            raise DeliveryError(f"webhook secret: environment variable {secret_env or '(none)'}"
                                " is not set", permanent=True)
        body = self.body(job)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body, int(self._clock())),
            DELIVERY_HEADER: job.id,
            "Idempotency-Key": job.id,
            "User-Agent": "ivr-answering-service",
        }
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.post(job.destination, data=body, headers=headers,
                                        allow_redirects=False) as response:
                    await response.read()
                    if not 200 <= response.status < 300:
                        raise DeliveryError(f"HTTP {response.status}")
                    remote = response.headers.get("X-Request-Id", "")[:150]
                    return SendResult(remote_id=f"http-{response.status}"
                                      + (f" {remote}" if remote else ""))
        except TimeoutError as exc:
            raise DeliveryError(f"no response within {self.timeout:.0f}s") from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"connection failed ({type(exc).__name__})") from exc
