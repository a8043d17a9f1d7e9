"""Test ports: each test process (xdist worker) owns its own ranges, so parallel workers
never race for a port between choosing and binding it."""

from __future__ import annotations

import os
import socket
import threading


class PortPlan:
    """Ports for one test process, disjoint from other xdist workers and from the kernel's
    ephemeral range, so parallel workers never race for a port between choosing and
    binding it. Worker N owns 15000+200N .. 15000+200N+199 and RTP 21000+1000N .. +999;
    the cluster and carrier tests' own ports are 11000-13599, apart from both (an RTP port
    Asterisk picks must never be one another test binds)."""

    def __init__(self, worker: int | None = None) -> None:
        if worker is None:
            name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
            worker = int(name[2:]) if name[2:].isdigit() else 0
            # Another test run on the same machine can hold the first workers' ports.
            worker += int(os.environ.get("IVR_TEST_WORKER_OFFSET", "0") or 0)
        self.worker = worker
        self.base = 15000 + 200 * (worker % 25)
        self.rtp = (21000 + 1000 * (worker % 8), 21000 + 1000 * (worker % 8) + 999)
        self._next = 20
        self._lock = threading.Lock()

    def fixed(self, n: int) -> int:
        """The n-th control port (0-19): SIP, AMI, AGI, web, gateway, ..."""
        return self.base + n

    def next(self, width: int = 1) -> int:
        """A port (or `width` consecutive ports) free right now, cycling in our range."""
        with self._lock:
            for _ in range(200):
                port = self.base + self._next
                self._next = 20 + (self._next - 20 + width) % (180 - width)
                if all(is_free(p) for p in range(port, port + width)):
                    return port
        raise RuntimeError("no free test port left in this worker's range")


def is_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP right now (outside tests' fixed ranges)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if is_free(port):
            return port


_PORTS: list[PortPlan] = []


def worker_ports() -> PortPlan:
    """This process's port plan (one per xdist worker), made on first use."""
    if not _PORTS:
        _PORTS.append(PortPlan())
    return _PORTS[0]
