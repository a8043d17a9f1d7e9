"""`/metrics` in the Prometheus text format (prometheus_client), read from the database
at each scrape.

The portal is its own process: it counts what the database says (calls, legs,
call-backs, deliveries) and reads the controller's rules status file, so every
controller of a cluster is counted once and a restart loses nothing. Counters count
the rows kept (retention purges lower them; Prometheus reads that as a reset).

Labels are ids and codes from the rules and the code only (practice id, route,
disposition, end reason, channel, status): never a number, name or any patient data.
Only an operator's API token may scrape it (ivr.accounts.access: Need.METRICS).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from ivr.db.engine import Database
from ivr.db.kinds import CallbackStatus, LegKind
from ivr.db.models import AuditEntry, Call, CallEvent, OncallCallback, OncallLeg
from ivr.delivery.models import Delivery
from ivr.records import audit
from ivr.rules.runtime import read_status, status_path
from ivr.web.pages import Ctx

LIVE_WINDOW = timedelta(hours=12)  # as Tonight: older open rows are not "up now"
# Seconds; a caller waits at most a few minutes for a clinician (max_caller_wait_seconds).
BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0)
NONE = "none"  # the label of an empty value (a call no practice claims, no disposition)
# The timeline's triage events (ivr.flows.triage): the last one is the menu's decision.
TRIAGE_EVENTS = ("menu.key", "menu.default")


def _label(value: Any) -> str:
    return NONE if value in (None, "") else str(value)


def histogram(name: str, doc: str, values: Iterable[float]) -> HistogramMetricFamily:
    counts = [0] * len(BUCKETS)
    total, n = 0.0, 0
    for value in values:
        n += 1
        total += value
        for i, edge in enumerate(BUCKETS):
            if value <= edge:
                counts[i] += 1
    cumulative = [(str(edge), float(c)) for edge, c in zip(BUCKETS, counts, strict=True)]
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], [*cumulative, ("+Inf", float(n))], total)
    return family


async def snapshot(db: Database, now: datetime) -> list[Metric]:
    """Every family, from a handful of grouped queries."""
    out: list[Metric] = []
    async with db.session() as s:
        calls = CounterMetricFamily(
            "ivr_calls", "Calls ended, by practice, route, triage result and end reason",
            labels=["practice", "route", "disposition", "end_reason"])
        for pid, route, disp, reason, n in (await s.execute(
                select(Call.practice_id, Call.route, Call.disposition, Call.end_reason,
                       func.count()).where(Call.ended_at.is_not(None))
                .group_by(Call.practice_id, Call.route, Call.disposition,
                          Call.end_reason))).all():
            calls.add_metric([_label(pid), _label(route), _label(disp), _label(reason)], n)
        out.append(calls)

        up = GaugeMetricFamily("ivr_calls_in_progress", "Calls up now", labels=["practice"])
        for pid, n in (await s.execute(
                select(Call.practice_id, func.count())
                .where(Call.ended_at.is_(None), Call.started_at >= now - LIVE_WINDOW)
                .group_by(Call.practice_id))).all():
            up.add_metric([_label(pid)], n)
        out.append(up)

        legs = CounterMetricFamily("ivr_clinician_legs", "Calls placed to clinicians, by "
                                   "practice, kind and how they ended",
                                   labels=["practice", "kind", "status"])
        for pid, kind, status, n in (await s.execute(
                select(OncallLeg.practice_id, OncallLeg.kind, OncallLeg.status, func.count())
                .group_by(OncallLeg.practice_id, OncallLeg.kind, OncallLeg.status))).all():
            legs.add_metric([_label(pid), _label(kind), _label(status)], n)
        out.append(legs)

        cbs = GaugeMetricFamily("ivr_callbacks", "Call-backs by status (pending: waiting "
                                "for a clinician to acknowledge)",
                                labels=["practice", "status"])
        pending = GaugeMetricFamily("ivr_callbacks_pending", "Call-backs not acknowledged "
                                    "yet", labels=["practice"])
        for pid, status, n in (await s.execute(
                select(OncallCallback.practice_id, OncallCallback.status, func.count())
                .group_by(OncallCallback.practice_id, OncallCallback.status))).all():
            cbs.add_metric([_label(pid), _label(status)], n)
            if status == CallbackStatus.PENDING:
                pending.add_metric([_label(pid)], n)
        out += [cbs, pending]

        deliveries = GaugeMetricFamily("ivr_deliveries", "Deliveries of notes and reports "
                                       "by channel and status", labels=["practice", "channel",
                                                                        "status"])
        failed = GaugeMetricFamily("ivr_deliveries_failed", "Deliveries that ran out of "
                                   "attempts (listed for a retry)",
                                   labels=["practice", "channel"])
        for pid, channel, status, n in (await s.execute(
                select(Delivery.practice_id, Delivery.channel, Delivery.status, func.count())
                .group_by(Delivery.practice_id, Delivery.channel, Delivery.status))).all():
            deliveries.add_metric([_label(pid), _label(channel), _label(status)], n)
            if status == "failed":
                failed.add_metric([_label(pid), _label(channel)], n)
        out += [deliveries, failed]

        changes = CounterMetricFamily("ivr_rules_changes", "Rules loads the controllers "
                                      "wrote to the audit log: loaded (a new digest) or "
                                      "refused (broken files; the rules before stay)",
                                      labels=["result"])
        for action, n in (await s.execute(
                select(AuditEntry.action, func.count())
                .where(AuditEntry.action.in_((audit.RULES_RELOAD, audit.RULES_REFUSED)))
                .group_by(AuditEntry.action))).all():
            changes.add_metric(["loaded" if action == audit.RULES_RELOAD else "refused"], n)
        out.append(changes)

        # Live legs: the caller waits. First ring = the first leg placed; clinician = the
        # first leg bridged to the caller.
        rows = (await s.execute(
            select(Call.started_at, func.min(OncallLeg.placed_at), func.min(OncallLeg.bridged_at))
            .join(OncallLeg, OncallLeg.call_id == Call.id)
            .where(OncallLeg.kind == LegKind.LIVE).group_by(Call.id))).all()
        # Triage to first ring: from the menu's last answer to the first live leg placed
        # (the on-call search's own delay, without the intake before it).
        triaged = (select(CallEvent.call_id, func.max(CallEvent.at).label("at"))
                   .where(CallEvent.kind.in_(TRIAGE_EVENTS))
                   .group_by(CallEvent.call_id).subquery())
        triage_rows = (await s.execute(
            select(triaged.c.at, func.min(OncallLeg.placed_at))
            .join(OncallLeg, OncallLeg.call_id == triaged.c.call_id)
            .where(OncallLeg.kind == LegKind.LIVE).group_by(triaged.c.call_id))).all()
    out.append(histogram("ivr_call_start_to_first_ring_seconds",
                         "From the call's start to the first clinician rung",
                         ((ring - start).total_seconds() for start, ring, _ in rows if ring)))
    out.append(histogram("ivr_triage_to_first_ring_seconds",
                         "From the caller's triage answer to the first clinician rung",
                         (max((ring - at).total_seconds(), 0.0) for at, ring in triage_rows
                          if at and ring)))
    out.append(histogram("ivr_call_start_to_clinician_seconds",
                         "From the call's start to a clinician bridged to the caller",
                         ((bridged - start).total_seconds() for start, _, bridged in rows
                          if bridged)))
    return out


def rules_families(doc: dict[str, Any] | None) -> list[Metric]:
    """The controller's rules status file as gauges (absent: no controller has run)."""
    ok = GaugeMetricFamily("ivr_rules_last_load_ok", "1 when the controller's last rules "
                           "load succeeded, 0 when it was refused (the rules before stay)")
    errors = GaugeMetricFamily("ivr_rules_last_load_errors", "Errors of the last refused "
                               "rules load (0 when it loaded)")
    attempts = CounterMetricFamily("ivr_rules_loads", "Rules loads the controller attempted "
                                   "since it started")
    if doc:
        ok.add_metric([], 1.0 if doc.get("last_attempt_ok") else 0.0)
        errors.add_metric([], float(doc.get("error_count") or 0))
        attempts.add_metric([], float(doc.get("attempts") or 0))
    return [ok, errors, attempts]


class _Families:
    """A collector over families already made (prometheus_client collectors are
    synchronous; the database is read before, asynchronously)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def metrics(ctx: Ctx) -> web.StreamResponse:
    families = await snapshot(ctx.db, ctx.now)
    families += rules_families(read_status(status_path(ctx.settings)))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return web.Response(body=generate_latest(registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})
