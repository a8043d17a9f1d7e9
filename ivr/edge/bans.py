"""The ban list: source addresses the PBX refuses for a time, as its own PJSIP ACL.

State is a small JSON file in the instance folder (root's, 0600: addresses, times and a
reason, no caller data); what Asterisk reads is `etc/pjsip_bans.conf`, an `acl` section
pjsip.conf includes. Applying is a res_pjsip reload, which leaves calls in progress and
registrations alone. Every address is normalised by `ipaddress` before it is written.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ivr.pbx import safefs

STATE_FILE = "bans.json"
ACL_FILE = "pjsip_bans.conf"


@dataclass(frozen=True)
class Ban:
    address: str
    since: str  # ISO UTC
    until: str
    reason: str  # an event name, e.g. ChallengeResponseFailed


def _address(text: str) -> str:
    return str(ipaddress.ip_address(text))


class BanList:
    """The bans of one PBX instance (pbx: ivr.pbx.instance.PbxInstance)."""

    def __init__(self, pbx: Any) -> None:
        self.pbx = pbx

    @property
    def state_path(self) -> os.PathLike[str]:
        return self.pbx.host_dir / STATE_FILE

    def load(self) -> dict[str, Ban]:
        try:
            doc = json.loads(open(self.state_path).read())
        except (OSError, ValueError):
            return {}
        out = {}
        for row in doc if isinstance(doc, list) else []:
            with contextlib.suppress(TypeError, ValueError, KeyError):
                ban = Ban(_address(row["address"]), str(row["since"]), str(row["until"]),
                          str(row["reason"])[:40])
                out[ban.address] = ban
        return out

    def active(self, now: datetime) -> list[Ban]:
        return sorted((b for b in self.load().values()
                       if datetime.fromisoformat(b.until) > now), key=lambda b: b.since)

    def add(self, address: str, reason: str, now: datetime, seconds: int) -> Ban:
        bans = self.load()
        until = datetime.fromtimestamp(now.timestamp() + seconds, UTC)
        ban = Ban(_address(address), now.isoformat(), until.isoformat(), reason)
        bans[ban.address] = ban
        self._save(bans, now)
        return ban

    def clear(self, address: str | None, now: datetime) -> list[str]:
        """Lift one ban (or all); the addresses lifted."""
        bans = self.load()
        gone = [a for a in bans if address is None or a == _address(address)]
        for a in gone:
            del bans[a]
        self._save(bans, now)
        return gone

    def expire(self, now: datetime) -> list[str]:
        """Drop bans whose time is up; re-apply only when something changed."""
        bans = self.load()
        gone = [a for a, b in bans.items() if datetime.fromisoformat(b.until) <= now]
        if gone:
            for a in gone:
                del bans[a]
            self._save(bans, now)
        return gone

    def _save(self, bans: dict[str, Ban], now: datetime) -> None:
        live = [b for b in bans.values() if datetime.fromisoformat(b.until) > now]
        tmp = f"{self.state_path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump([asdict(b) for b in live], handle, indent=1)
        os.replace(tmp, self.state_path)
        self.write_acl(live)
        self.apply()

    def write_acl(self, live: list[Ban]) -> None:
        lines = ["; Written by ivr/edge/bans.py: sources banned by the guard. Do not edit;",
                 "; `ivr pbx bans clear` lifts a ban."]
        if live:
            lines += ["[ivr-bans]", "type = acl"]
            lines += [f"deny = {ipaddress.ip_network(b.address)}" for b in live]
        safefs.write_file(self.pbx.host_dir, f"etc/{ACL_FILE}",
                          ("\n".join(lines) + "\n").encode(), self.pbx.pbx_owner())

    def apply(self) -> None:
        """Make the running PBX read the ACL again (a no-op when it is not running)."""
        if self.pbx.is_running():
            self.pbx.cli("module reload res_pjsip.so")
