"""`ivr web`: serve the portal on IVR_WEB_HOST:IVR_WEB_PORT (HTTPS with IVR_WEB_TLS_*)."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from aiohttp import web

from ivr.config import Settings
from ivr.web.app import make_app

log = logging.getLogger(__name__)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.web_tls_cert_file is None or settings.web_tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.web_tls_cert_file, settings.web_tls_key_file)
    return context


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT."""
    # No access log: its lines would carry paths with call ids and query strings
    # (filters), and the audit log already says who read what.
    # A short shutdown: live pages' event streams would otherwise hold a stop for a minute.
    runner = web.AppRunner(make_app(settings), access_log=None, shutdown_timeout=3.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_host, settings.web_port,
                       ssl_context=tls_context(settings))
    await site.start()
    scheme = "https" if settings.web_tls_cert_file else "http"
    print(f"portal listening on {scheme}://{settings.web_host}:{settings.web_port}",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
