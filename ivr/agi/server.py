"""The FastAGI server: one asyncio task per call, routed through an explicit table."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from ivr.agi.protocol import (
    DEFAULT_TIMEOUT,
    MAX_LINE,
    AgiChannel,
    AgiHandshakeError,
    AgiHeaderRefused,
    CommandHook,
    read_headers,
)

log = logging.getLogger(__name__)

Handler = Callable[[AgiChannel], Awaitable[None]]
#: Told of every refused connection: (reason token, uniqueid or "", route or "").
RefusedHook = Callable[[str, str, str], Awaitable[None]]


class AgiServer:
    """Accepts FastAGI connections and runs the route's handler for each call."""

    def __init__(self, routes: Mapping[str, Handler], host: str = "127.0.0.1",
                 port: int = 4573, handshake_timeout: float = 5.0,
                 command_timeout: float = DEFAULT_TIMEOUT,
                 on_refused: RefusedHook | None = None,
                 on_command: CommandHook | None = None) -> None:
        self.routes = dict(routes)
        self.on_refused = on_refused
        self.on_command = on_command  # every command's latency (ivr.controller.metrics)
        self.refused = 0  # connections refused since start (header shape, unknown route)
        self.host = host
        self.port = port
        self.handshake_timeout = handshake_timeout
        self.command_timeout = command_timeout
        self.calls: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port,
                                                  limit=MAX_LINE)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("FastAGI listening on %s:%d (routes: %s)", self.host, self.port,
                 ", ".join(sorted(self.routes)))

    async def stop(self, drain_seconds: float = 0) -> None:
        """Stop accepting; give calls in progress up to drain_seconds, then cancel them."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        if self.calls and drain_seconds > 0:
            await asyncio.wait(set(self.calls), timeout=drain_seconds)
        for task in list(self.calls):
            task.cancel()
        if self.calls:
            await asyncio.gather(*self.calls, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.calls.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cancelled by stop(), which waits for us: end quietly. A cancelled
            # client_connected_cb task makes Python 3.11.7's asyncio log an error
            # traceback ("Exception in callback ...") for every call in progress.
        finally:
            self.calls.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            headers = await read_headers(reader, self.handshake_timeout)
        except AgiHeaderRefused as exc:
            # Nothing of this stream is trusted, so nothing is written to it: closing
            # leaves the sentinel unset and the dialplan's fallback takes the caller.
            await self._refuse(exc.reason, exc.uniqueid, "")
            return
        except AgiHandshakeError as exc:
            log.info("AGI connection dropped before its headers: %s", exc)
            return
        channel = AgiChannel(reader, writer, headers, default_timeout=self.command_timeout,
                             on_command=self.on_command)
        try:
            handler = self.routes.get(channel.route)
            if handler is None:
                # No sentinel will be set, so the dialplan's fallback takes the call.
                await self._refuse("unknown-route", channel.uniqueid, channel.route)
                return
            await handler(channel)
        finally:
            await channel.aclose()

    async def _refuse(self, reason: str, uniqueid: str, route: str) -> None:
        """Log (and report) a refused connection; the tokens hold no caller data."""
        self.refused += 1
        log.warning("call %s: AGI connection refused (%s%s); the dialplan fallback takes "
                    "the call", uniqueid or "-", reason, f", route {route!r}" if route else "")
        if self.on_refused is not None:
            try:
                await self.on_refused(reason, uniqueid, route)
            except Exception as exc:  # reporting must never keep the caller waiting
                log.warning("could not report a refused AGI connection (%s)",
                            type(exc).__name__)
