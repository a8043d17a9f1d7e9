"""The controller's report task: each minute, make the reports of nights whose opening passed.

Which nights: for each practice, those whose morning opening is after the opening of its
last report made (or after its first call, before it has any report) and not after now,
at most `max_days` back. So a controller that was down over an opening makes the missed
reports when it comes back, and a fresh install does not invent reports for nights before
its first call. Of several controllers on one database, one makes each report (the claim
in ivr.documents.store); the others find it made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from ivr import clock
from ivr.db.engine import Database
from ivr.db.models import REPORT_MADE, Report
from ivr.delivery.outbox import default_worker_id, utcnow
from ivr.documents.report import LOOKBACK_DAYS, due_nights
from ivr.documents.store import Made, first_call_at, make_report, manual_overrides
from ivr.rules import RuleSet
from ivr.rules.model import Practice

log = logging.getLogger(__name__)

TICK_SECONDS = 60.0
MAX_DAYS = 7  # nights older than this are made by hand: `ivr report --deliver`


class ReportScheduler:
    def __init__(self, db: Database, rules: Callable[[], RuleSet | None], out_dir: Path, *,
                 worker: str | None = None, interval: float = TICK_SECONDS,
                 clock: Callable[[], datetime] = utcnow, max_days: int = MAX_DAYS,
                 link_base: str = "") -> None:
        self.db, self.rules, self.out_dir = db, rules, out_dir
        self.link_base = link_base  # IVR_WEB_PUBLIC_URL: each call's page in the documents
        self.worker = worker or default_worker_id()
        self.interval, self.clock, self.max_days = interval, clock, max_days

    async def run(self) -> None:
        log.info("report scheduler %s started", self.worker)

        async def one_round() -> None:
            await self.tick(self.clock())

        # The database may be down: a failed round is logged, the next comes on time.
        await clock.every(self.interval, one_round, "report round", log=log, first_delay=0)

    async def tick(self, now: datetime) -> list[Made]:
        """One round over every practice in the rules in force."""
        rules = self.rules()
        if rules is None:
            return []
        out: list[Made] = []
        for practice in rules.practices.values():
            out.extend(await self.for_practice(practice, now))
        return out

    async def for_practice(self, practice: Practice, now: datetime) -> list[Made]:
        async with self.db.session() as s:
            after = await s.scalar(select(func.max(Report.opening)).where(
                Report.practice_id == practice.id, Report.status == REPORT_MADE))
        if after is None:
            after = await first_call_at(self.db, practice.id)
            if after is None:
                return []  # no call yet, so nothing to report
        horizon = now - timedelta(days=self.max_days + LOOKBACK_DAYS)
        manual = await manual_overrides(self.db, practice.id, horizon, now + timedelta(days=2))
        made = []
        for window in due_nights(practice, now, manual, after=after, max_days=self.max_days):
            result = await make_report(self.db, practice, window.night, now,
                                       out_dir=self.out_dir, worker=self.worker,
                                       link_base=self.link_base)
            made.append(result)
        return made
