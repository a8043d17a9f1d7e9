"""The drill under load (`make drill`, issue 15 item 6c): PostgreSQL restarted while 20
calls go through Kamailio to two real nodes, placed continuously by reacting callers,
four at once. Counted and printed: intake fields lost, duplicate clinician calls,
duplicate deliveries; each must be 0.

Every fifth call is urgent (key 1): the on-call chain rings the clinicians on the
gateway, whose phones are busy, so each urgent call rings the chain's five legs (nurse
twice, physician twice, the director once) and is promised a call-back. The others leave
a message; every fourth call takes the whole intake (date of birth, name, reason), the
rest only the callback number. PostgreSQL is stopped (a crash: immediate) once six calls
have ended and started again a few seconds later. A call the controller was serving goes
on from its journal; a call that arrives while no controller can create its record goes
to the dialplan's fallback (message, record made from its stamp later): counted apart,
its keys were never captured as intake. After the calls, the night's report is made by
two workers at once (two nodes' schedulers) and the controllers' outboxes deliver it.

Slow (about 4 minutes on a loaded 2-core machine): runs with IVR_DRILLS=1 (`make drill`,
which .ci/run runs after `make test`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import wait_for
from sqlalchemy import select
from support.cluster import QUICK, QUICK_PRACTICE, SUNNY, RealCluster, running_cluster
from support.plans import answer

from ivr.caller.plan import CallPlan
from ivr.db.models import OncallCallback, OncallLeg
from ivr.delivery.models import Delivery, DeliveryAttempt
from ivr.documents import store
from ivr.documents.report import NightWindow
from ivr.rules import load_rules

pytestmark = [
    pytest.mark.pbx,
    pytest.mark.skipif(os.environ.get("IVR_DRILLS") != "1",
                       reason="a drill: `make drill` (IVR_DRILLS=1) runs it"),
    pytest.mark.skipif(not Path("/usr/sbin/kamailio").exists() or
                       not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")),
                       reason="kamailio or postgresql is not installed (make test does)"),
]
CALLS, AT_ONCE, CRASH_AFTER = 20, 4, 6
LIVE_LEGS = 5  # the quick practice's chain: nurse x2, physician x2, director x1 (busy)


def _call(cluster: RealCluster, n: int) -> tuple[str, str, CallPlan, list[str]]:
    """Call n: (dialled, caller, plan, the intake fields its caller gives)."""
    caller = f"+1617555{1000 + n:04d}"
    if n % 5 == 4:  # urgent: the on-call chain
        return QUICK, caller, CallPlan(caller_id=caller, steps=(
            *answer("1"), *answer("1"))), ["callback"]
    if n % 4 == 0:
        return SUNNY, caller, cluster.intake_plan(caller), [
            "callback", "dob", "name", "reason"]
    return QUICK, caller, RealCluster.quick_plan(caller), ["callback"]


@pytest.fixture(scope="module")
def cluster():
    with running_cluster("ivr-test-load-", "load drill: after hours") as c:
        yield c


def _place_all(cluster: RealCluster, on_ended) -> dict[int, Any]:  # noqa: ANN001
    """CALLS calls, AT_ONCE at a time: each slot places its next call when its last one
    ends. Returns the reports by call number."""
    reports: dict[int, Any] = {}
    numbers = iter(range(CALLS))
    lock = threading.Lock()

    def slot(k: int) -> None:
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            dialled, _caller, plan, _fields = _call(cluster, n)
            reports[n] = cluster.dial(plan, k, to=dialled).wait()
            on_ended(len(reports))

    threads = [threading.Thread(target=slot, args=(k,)) for k in range(AT_ONCE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return reports


def test_postgresql_restarted_during_20_calls(cluster, capsys):
    started = datetime.now(UTC)
    crashed = threading.Event()

    def on_ended(ended: int) -> None:
        if ended >= CRASH_AFTER and not crashed.is_set():
            crashed.set()
            cluster.postgres.stop("immediate")
            threading.Timer(3.0, cluster.postgres.start).start()  # a restart, a few s

    reports = _place_all(cluster, on_ended)
    assert crashed.is_set()
    wait_for(lambda: cluster.postgres.is_running(), 60, "PostgreSQL back")
    records: dict[int, dict[str, Any]] = {}
    for n in range(CALLS):
        _dialled, caller, _plan, _fields = _call(cluster, n)
        records[n] = cluster.finished(caller, timeout=180)

    # Intake: every field a served caller gave is in the record (the journal's writes
    # land a few seconds after the database is back: waited for).
    def lost_fields() -> tuple[list[str], list[int]]:
        lost, fallback = [], []
        for n in range(CALLS):
            detail = cluster.show(records[n]["id"])
            if detail["fallback_reason"] or not detail["seen_by_controller"]:
                fallback.append(n)
                continue
            lost += [f"call {n}: {f}" for f in _call(cluster, n)[3] if f not in detail["intake"]]
        return lost, fallback
    try:
        lost, fallback = wait_for(lambda: (got := lost_fields()) and not got[0] and got,
                                  90, "every served caller's answers in the record")
    except AssertionError:
        lost, fallback = lost_fields()
    # Every call a controller served went as planned (one in the fallback hears another
    # script than its plan's, so its plan may not fit).
    failed = [n for n, r in reports.items() if not r.ok and n not in fallback]
    assert not failed, {n: reports[n].explain() for n in failed}

    # Clinician calls: the chain's legs of each urgent call, each placed once.
    urgent = [records[n]["id"] for n in range(CALLS) if n % 5 == 4 and n not in fallback]
    legs, callbacks = cluster.read(lambda db: _legs_and_callbacks(db, urgent))
    extra_legs = sum(max(0, legs[c] - LIVE_LEGS) for c in urgent)
    cb_attempts = Counter((leg.callback_id, leg.attempt_no) for leg in callbacks)
    duplicate_clinician_calls = extra_legs + sum(v - 1 for v in cb_attempts.values())

    # Deliveries: the night's report, made by two workers at once, delivered by the
    # controllers' outboxes (4 of them on 2 nodes).
    made = cluster.read(lambda db: _two_reports(db, cluster, started))
    assert sorted(m.status for m in made).count("made") == 1, made
    ids = next(m.deliveries for m in made if m.status == "made")
    wait_for(lambda: cluster.read(lambda db: _attempted(db, ids)), 120,
             "each delivery tried at least once")
    deliveries, attempts = cluster.read(lambda db: _deliveries(db, ids))
    keys = Counter((d.document_kind, d.document_id, d.channel, d.destination)
                   for d in deliveries)
    tries = Counter((a.delivery_id, a.attempt_no) for a in attempts)
    duplicate_deliveries = sum(v - 1 for v in keys.values()) + sum(
        v - 1 for v in tries.values())

    with capsys.disabled():
        print(f"\n  load drill: {CALLS} calls ({AT_ONCE} at once), PostgreSQL crashed "
              f"after {CRASH_AFTER} ended and started 3 s later; served by a controller "
              f"{CALLS - len(fallback)}, by the fallback while no record could be made "
              f"{len(fallback)}; intake fields lost {len(lost)}; duplicate clinician calls "
              f"{duplicate_clinician_calls} ({sum(legs.values())} chain legs for "
              f"{len(urgent)} urgent calls, {len(callbacks)} call-back legs); "
              f"duplicate deliveries {duplicate_deliveries} ({len(deliveries)} deliveries, "
              f"{len(attempts)} attempts)")
    assert lost == [], lost
    assert duplicate_clinician_calls == 0
    assert duplicate_deliveries == 0


async def _legs_and_callbacks(db, urgent: list[str]) -> tuple[Counter, list]:  # noqa: ANN001
    async with db.session() as s:
        legs = (await s.scalars(select(OncallLeg).where(OncallLeg.call_id.in_(urgent)))).all()
        cbs = (await s.scalars(select(OncallCallback.id).where(
            OncallCallback.call_id.in_(urgent)))).all()
    live = Counter(leg.call_id for leg in legs if leg.kind == "live")
    return live, [leg for leg in legs if leg.kind == "callback" and leg.callback_id in cbs]


async def _two_reports(db, cluster: RealCluster, since: datetime) -> list:  # noqa: ANN001
    """The quick practice's report over the drill, made by two workers at once."""
    now = datetime.now(UTC)
    practice = load_rules(cluster.env["IVR_RULES_PATH"], now=now).rules.practices[
        QUICK_PRACTICE]
    window = NightWindow(night=now.date(), closing=since, opening=now,
                         covers_from=since - timedelta(minutes=1))
    out = cluster.folder / "reports"
    return list(await asyncio.gather(*(
        store.make_report(db, practice, window, now, out_dir=out, worker=f"drill-{w}")
        for w in "ab")))


async def _attempted(db, ids: tuple[str, ...]) -> bool:  # noqa: ANN001
    async with db.session() as s:
        tried = set((await s.scalars(select(DeliveryAttempt.delivery_id).where(
            DeliveryAttempt.delivery_id.in_(ids)))).all())
    return tried == set(ids)


async def _deliveries(db, ids: tuple[str, ...]) -> tuple[list, list]:  # noqa: ANN001
    async with db.session() as s:
        deliveries = (await s.scalars(select(Delivery).where(
            Delivery.practice_id == QUICK_PRACTICE))).all()
        attempts = (await s.scalars(select(DeliveryAttempt).where(
            DeliveryAttempt.delivery_id.in_([d.id for d in deliveries])))).all()
    return list(deliveries), list(attempts)
