"""One SIP port for a bank of phones wider than one agent.

pjsua answers at most PJSUA_MAX_CALLS calls per process, and the wheel is built with the
library's default of 4, while the PBX rings many clinicians at once on one gateway
port. So `phones` runs several agents on ports of their own, and this relay on the
bank's port hands each new call to the least busy one. It forwards datagrams as they
are, by Call-ID: the PBX's requests to the agent that took the call, the agents'
answers back to the PBX. In-dialog requests go to an agent's Contact directly.

Hand-written (some 60 lines) rather than a SIP proxy library: it never parses more
than the first line and the Call-ID, and needs no state beyond Call-ID -> agent.
"""

from __future__ import annotations

import re
import select
import socket
from dataclasses import dataclass, field

AGENT_CALLS = 4  # PJSUA_MAX_CALLS of the pjsua2-python wheel's build
_CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def call_id(datagram: bytes) -> bytes | None:
    """The Call-ID header's value (or its compact form `i`), None when there is none."""
    head = datagram.split(b"\r\n\r\n", 1)[0]
    match = _CALL_ID.search(head)
    return match.group(1) if match else None


def method(datagram: bytes) -> bytes | None:
    """A request's method; None for a response."""
    first = datagram.split(b"\r\n", 1)[0]
    if first.startswith(b"SIP/2.0 "):
        return None
    return first.split(b" ", 1)[0] or None


@dataclass
class Calls:
    """Which agent has which call, and how many calls each has taken (`ended` is
    counted by the caller of `take`: the agents' own events say when a call ended)."""

    agents: int
    taken: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    owner: dict[bytes, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.taken = [0] * self.agents
        self.ended = [0] * self.agents

    def take(self, cid: bytes, invite: bool) -> int:
        """The agent for this Call-ID: the one that has it, else the least busy one."""
        if cid in self.owner:
            return self.owner[cid]
        busy = [t - e for t, e in zip(self.taken, self.ended, strict=True)]
        agent = busy.index(min(busy))
        self.owner[cid] = agent
        if invite:
            self.taken[agent] += 1
        return agent


class Relay:
    """The bank's socket; `pump` moves what arrived within `timeout` seconds."""

    def __init__(self, port: int, agent_ports: list[int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.agents = [("127.0.0.1", p) for p in agent_ports]
        self.calls = Calls(len(agent_ports))
        self.peer: dict[bytes, tuple[str, int]] = {}  # Call-ID -> who sent it to the bank

    def pump(self, timeout: float) -> None:
        if not select.select([self.sock], [], [], timeout)[0]:
            return
        data, source = self.sock.recvfrom(65535)
        cid = call_id(data)
        if cid is None:
            return
        if source in self.agents:  # an agent's answer: back to the PBX
            if cid in self.peer:
                self.sock.sendto(data, self.peer[cid])
            return
        self.peer.setdefault(cid, source)
        agent = self.calls.take(cid, invite=method(data) == b"INVITE")
        self.sock.sendto(data, self.agents[agent])

    def close(self) -> None:
        self.sock.close()
