"""A practice's real receivers on loopback, as delivery tests and the load drill use them:
an SMTP server (aiosmtpd, STARTTLS required, a self-signed certificate) and a webhook
endpoint (aiohttp) that checks every signature itself; both keep what they received.

`serving` runs an aiohttp application in a thread of its own, for a synchronous test
whose senders are other processes (the cluster's controllers)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key: (cert, key) in `folder`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ivr test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Mailbox:
    """The SMTP server's handler: every message accepted, with whether it came over TLS."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, bool]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append((envelope, session.ssl is not None))
        return "250 2.0.0 Ok: queued as TEST42"


@contextmanager
def smtp_server(folder: Path, port: int) -> Iterator[tuple[Mailbox, Path]]:
    """An SMTP server on 127.0.0.1:port that requires STARTTLS: (its mailbox, the
    certificate a client must trust)."""
    cert, key = self_signed(folder)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            tls_context=server_ctx, require_starttls=True)
    controller.start()
    try:
        yield mailbox, cert
    finally:
        controller.stop()


class Receiver:
    """A practice's webhook endpoint: checks the signature with `secret` itself, answers
    scripted status codes per path (`statuses`), else 200. With `hold_after` set, every
    valid request after that many is kept unanswered (counted in `held`) until `release`
    is set (from any thread)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.statuses: dict[str, list[int]] = {}
        self.hold_after: int | None = None
        self.release = threading.Event()
        self.held = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers.get("X-IVR-Signature", "")
        parts = dict(p.split("=", 1) for p in header.split(","))
        mac = hmac.new(self.secret.encode(), parts["t"].encode() + b"." + body,
                       hashlib.sha256)
        valid = hmac.compare_digest(mac.hexdigest(), parts["v1"]) and abs(
            time.time() - int(parts["t"])) < 300
        self.received.append({"path": request.path, "valid": valid, "body": json.loads(body),
                              "delivery": request.headers.get("X-IVR-Delivery"),
                              "idempotency": request.headers.get("Idempotency-Key")})
        if not valid:
            return web.Response(status=401)
        if self.hold_after is not None and sum(
                r["valid"] for r in self.received) > self.hold_after:
            self.held += 1
            while not self.release.is_set():  # set by the test's thread
                await asyncio.sleep(0.05)
        script = self.statuses.get(request.path, [])
        status = script.pop(0) if script else 200
        return web.Response(status=status, headers={"X-Request-Id": "rq-1"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{name}", self.handle)
        return app


@contextmanager
def serving(app: web.Application, port: int) -> Iterator[None]:
    """`app` on 127.0.0.1:port, served by an event loop in a thread of its own."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()
