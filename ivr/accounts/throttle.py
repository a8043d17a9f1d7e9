"""Log-in throttling per client address: a sliding window of failures (pure, time given).

The account lock-out (ivr.accounts.store) protects one account; this protects all of
them from one address trying many names. It lives in the portal process's memory:
a restart forgets it, which the per-account lock-out, kept in the database, does not.
"""

from __future__ import annotations

from collections import deque

WINDOW_SECONDS = 600.0
MAX_FAILURES = 20  # per address per window
MAX_ADDRESSES = 10000  # memory bound: the oldest addresses are forgotten first


class Throttle:
    def __init__(self, window: float = WINDOW_SECONDS, limit: int = MAX_FAILURES) -> None:
        self.window, self.limit = window, limit
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        seen = self._failures.get(address)
        if seen is None:
            return deque()
        while seen and now - seen[0] >= self.window:
            seen.popleft()
        if not seen:
            del self._failures[address]
        return seen

    def blocked(self, address: str, now: float) -> bool:
        return len(self._recent(address, now)) >= self.limit

    def failed(self, address: str, now: float) -> None:
        if address not in self._failures and len(self._failures) >= MAX_ADDRESSES:
            self._failures.pop(next(iter(self._failures)))
        self._recent(address, now)
        self._failures.setdefault(address, deque()).append(now)
