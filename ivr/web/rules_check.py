"""The Rules page's check of the files on disk: `ivr rules check`, run in a thread and
kept until a file changes (or an hour passes: coverage warnings look ahead from now).

Not the rules in force: those are what the portal and the controller loaded last; the
check says what a reload would do with the files as they are now.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ivr.rules import Issue, LoadResult, load_rules, rule_files
from ivr.rules.limits import MAX_RULES_FILES

KEEP_FOR = timedelta(hours=1)

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Checked:
    at: datetime
    fingerprint: Fingerprint
    result: LoadResult


class RulesCheck:
    """One rules path, checked at most once per change of its files."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._last: Checked | None = None
        self._lock = asyncio.Lock()

    def fingerprint(self) -> Fingerprint:
        """(name, mtime_ns, size) of the YAML files and calendars beside them."""
        paths = set(rule_files(self.path, MAX_RULES_FILES)) if self.path.exists() else set()
        if self.path.is_dir():
            paths.update(p for p in self.path.iterdir() if p.suffix == ".ics")
        out = []
        for p in sorted(paths):
            try:
                st = p.stat()
                out.append((p.name, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((p.name, -1, -1))
        return tuple(out)

    async def result(self, now: datetime) -> Checked:
        async with self._lock:  # two pages at once check once
            seen = await asyncio.to_thread(self.fingerprint)
            last = self._last
            if last is None or last.fingerprint != seen or now - last.at >= KEEP_FOR:
                self._last = last = Checked(now, seen,
                                            await asyncio.to_thread(self._load, now))
            return last

    def _load(self, now: datetime) -> LoadResult:
        try:
            return load_rules(self.path, now=now)
        except Exception as exc:  # as `ivr rules check`: one located line, never a 500
            return LoadResult(None, [Issue(str(self.path), 1, 1, "", None, "",
                                           f"internal error while checking: "
                                           f"{type(exc).__name__}")])
