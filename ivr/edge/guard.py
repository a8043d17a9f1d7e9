"""The guard: Asterisk's security events in, bans of scanning and flooding sources out.

`Watch` is the pure part (events and times in, addresses to ban out): a source is banned
after `failures` failed or unknown requests (a wrong password, an account that does not
exist, a malformed request) or `requests` challenged requests of any kind (a flood)
within `window_seconds`. Addresses of the trunks' own carriers and `never_ban` networks
are never banned: a carrier's misconfiguration must not cut the practice off.

`run` is the I/O part: an AMI session as the guard's own user (read = security only),
bans written through BanList, and expiry every few seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import defaultdict, deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ivr.edge.bans import BanList
from ivr.trunks.model import Guard

log = logging.getLogger("ivr.edge.guard")

#: Security events that mean "this source is not who it says" (main/security_events.c).
FAILURES = frozenset({"InvalidAccountID", "ChallengeResponseFailed", "InvalidPassword",
                      "RequestBadFormat", "UnexpectedAddress", "AuthMethodNotAllowed",
                      "RequestNotAllowed"})
#: Events every challenged request raises: the flood count.
REQUESTS = frozenset({"ChallengeSent"}) | FAILURES


def source_of(event: dict[str, Any]) -> str | None:
    """The source address of a security event: RemoteAddress IPV4/UDP/203.0.113.9/5060."""
    raw = str(event.get("RemoteAddress", ""))
    parts = raw.split("/")
    if len(parts) < 4:
        return None
    try:
        return str(ipaddress.ip_address(parts[2]))
    except ValueError:
        return None


class Watch:
    """Counts per source in a sliding window; says when a source has to be banned."""

    def __init__(self, guard: Guard, trusted: Iterable[str] = ()) -> None:
        self.guard = guard
        self.trusted = [ipaddress.ip_network(n, strict=False)
                        for n in (*guard.never_ban, *trusted)]
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._requests: dict[str, deque[float]] = defaultdict(deque)

    def observe(self, name: str, address: str, at: float) -> str | None:
        """Count one event (at: seconds, any clock); the reason to ban, or None."""
        if name not in REQUESTS or self.is_trusted(address):
            return None
        reason = None
        if name in FAILURES and self._count(self._failures[address], at) >= self.guard.failures:
            reason = name
        if self._count(self._requests[address], at) >= self.guard.requests:
            reason = reason or "flood"
        if reason is not None:
            self.forget(address)
        return reason

    def _count(self, times: deque[float], at: float) -> int:
        times.append(at)
        while times and times[0] <= at - self.guard.window_seconds:
            times.popleft()
        return len(times)

    def forget(self, address: str) -> None:
        self._failures.pop(address, None)
        self._requests.pop(address, None)

    def is_trusted(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in self.trusted)


def trusted_networks(trunks: Any) -> list[str]:
    """The carriers' own addresses (trunks' inbound.match), never banned."""
    if trunks is None:
        return []
    return [net for t in trunks.trunks for net in t.match]


async def run(pbx: Any, guard: Guard, trusted: Iterable[str], stop: asyncio.Event,
              expire_every: float = 5.0) -> None:
    """Watch the PBX's security events until `stop` is set."""
    from ivr.ami import AmiClient
    from ivr.pbx.instance import GUARD_USER

    watch = Watch(guard, trusted)
    bans = BanList(pbx)
    loop = asyncio.get_running_loop()
    pending: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def on_event(event: Any) -> None:
        address = source_of(dict(event))
        name = str(event.get("Event", ""))
        if address is None:
            return
        reason = watch.observe(name, address, loop.time())
        if reason is not None:
            pending.put_nowait((address, reason))

    client = AmiClient(pbx.settings.ami_host, pbx.settings.ami_port, GUARD_USER,
                       pbx.guard_secret)
    client.subscribe("*", on_event)
    await client.connect()
    log.info("guard ready")
    try:
        while not stop.is_set():
            try:
                address, reason = await asyncio.wait_for(pending.get(), expire_every)
            except TimeoutError:
                await asyncio.to_thread(bans.expire, datetime.now(UTC))
                continue
            # The ban is logged by address and event name only; no SIP user or header.
            await asyncio.to_thread(bans.add, address, reason, datetime.now(UTC),
                                    guard.ban_seconds)
            log.warning("banned %s for %ss (%s)", address, guard.ban_seconds, reason)
    finally:
        await client.close()
