"""An AMI event recorder in a background thread, so synchronous tests can assert on the
PBX's events (the dialplan's UserEvents, bridges, channels)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ivr import config
from ivr.ami import AmiClient
from ivr.pbx.instance import AMI_USER


class EventRecorder:
    """Collects AMI events in a background thread so sync tests can assert on them."""

    def __init__(self, settings: config.Settings, secret: str) -> None:
        self.settings, self.secret = settings, secret
        self.events: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> EventRecorder:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("AMI event recorder could not connect")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        client = AmiClient(self.settings.ami_host, self.settings.ami_port, AMI_USER,
                           self.secret)
        client.subscribe("*", self._record)
        await client.connect()
        self._ready.set()
        await self._stop.wait()
        await client.close()

    def _record(self, event: Any) -> None:
        flat = {k: (v[-1] if isinstance(v, list) else v) for k, v in dict(event).items()}
        with self._lock:
            self.events.append(flat)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def of_kind(self, event: str) -> list[dict[str, str]]:
        """Every recorded event named `event` (Newchannel, DTMFEnd...), in order."""
        with self._lock:
            return [e for e in self.events if e.get("Event") == event]

    def user_events(self, uniqueid: str | None = None) -> list[dict[str, str]]:
        with self._lock:
            return [e for e in self.events if e.get("Event") == "UserEvent"
                    and (uniqueid is None or e.get("Uniqueid") == uniqueid)]

    def path(self, uniqueid: str) -> list[str]:
        """The UserEvent names one call emitted, in order."""
        return [e.get("UserEvent", "") for e in self.user_events(uniqueid)]

    def last_inbound_uniqueid(self, after: int = 0) -> str | None:
        with self._lock:
            for e in reversed(self.events[after:]):
                if e.get("UserEvent") == "IvrInbound":
                    return e.get("Uniqueid")
        return None

    def mark(self) -> int:
        with self._lock:
            return len(self.events)
